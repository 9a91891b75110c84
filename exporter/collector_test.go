package exporter

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"xsha/xapi"
)

type staticSource []*xapi.Snapshot

func (s staticSource) Snapshots() []*xapi.Snapshot { return s }

var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func upSnapshot() *xapi.Snapshot {
	return &xapi.Snapshot{
		Pool: "cluster-a", Up: true, Synced: testNow.Add(-5 * time.Second), MasterChanges: 2,
		PoolUUID: "p-uuid", MasterUUID: "u1", HAEnabled: true, HAHostFailuresToTolerate: 1, HAPlanExistsFor: 1,
		HATimeout: 180 * time.Second, VMsHAProtected: 1,
		Hosts: []xapi.Host{
			{UUID: "u1", Name: "xs-a1", Address: "127.0.1.1", ProductVersion: "6.2.0", Enabled: true, Live: true, IsMaster: true,
				HAStatefiles: []string{"OpaqueRef:vdi"}, Hotfixes: map[string]bool{"XS62ESP1004": true},
				Probe: xapi.Probe{Role: xapi.RoleMaster}},
			{UUID: "u2", Name: "xs-a2", Address: "127.0.1.2", ProductVersion: "6.2.0", Enabled: false, Live: false,
				Hotfixes: map[string]bool{"XS62ESP1004": false},
				Probe:    xapi.Probe{Role: xapi.RoleEmergency, Error: []string{"HOST_STILL_BOOTING"}}},
		},
		HeartbeatSR: &xapi.SR{UUID: "sr-uuid", Name: "MGMT-HA", Type: "nfs", Shared: true, Size: 1 << 30,
			Attached: map[string]bool{"xs-a1": true}, Statefile: true},
	}
}

func TestCollectorValues(t *testing.T) {
	c := newXenServerCollector(staticSource{upSnapshot()})
	c.now = func() time.Time { return testNow }
	want := `
# HELP xenserver_host_role The host's own view from a login probe on its address: master (login accepted), slave (HOST_IS_SLAVE), emergency (any other XAPI error: emergency mode, still booting), unreachable (no answer); one series per role, the current one 1. Absent before the first probe and while the host refuses the credentials (SESSION_AUTHENTICATION_FAILED).
# TYPE xenserver_host_role gauge
xenserver_host_role{host="xs-a1",pool="cluster-a",role="emergency"} 0
xenserver_host_role{host="xs-a1",pool="cluster-a",role="master"} 1
xenserver_host_role{host="xs-a1",pool="cluster-a",role="slave"} 0
xenserver_host_role{host="xs-a1",pool="cluster-a",role="unreachable"} 0
xenserver_host_role{host="xs-a2",pool="cluster-a",role="emergency"} 1
xenserver_host_role{host="xs-a2",pool="cluster-a",role="master"} 0
xenserver_host_role{host="xs-a2",pool="cluster-a",role="slave"} 0
xenserver_host_role{host="xs-a2",pool="cluster-a",role="unreachable"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "xenserver_host_role"); err != nil {
		t.Error(err)
	}
	values := map[string]float64{
		`xenserver_pool_up{pool="cluster-a"}`:                                                                           1,
		`xenserver_pool_ha_enabled{pool="cluster-a"}`:                                                                   1,
		`xenserver_pool_ha_host_failures_to_tolerate{pool="cluster-a"}`:                                                 1,
		`xenserver_pool_ha_plan_exists_for{pool="cluster-a"}`:                                                           1,
		`xenserver_pool_ha_overcommitted{pool="cluster-a"}`:                                                             0,
		`xenserver_pool_ha_timeout_seconds{pool="cluster-a"}`:                                                           180,
		`xenserver_pool_master_info{address="127.0.1.1",host="xs-a1",host_uuid="u1",pool="cluster-a"}`:                  1,
		`xenserver_pool_master_changes_total{pool="cluster-a"}`:                                                         2,
		`xenserver_ha_heartbeat_sr_present{pool="cluster-a"}`:                                                           1,
		`xenserver_ha_heartbeat_sr_info{pool="cluster-a",sr="MGMT-HA",sr_uuid="sr-uuid",type="nfs"}`:                    1,
		`xenserver_ha_heartbeat_sr_shared{pool="cluster-a"}`:                                                            1,
		`xenserver_ha_heartbeat_sr_size_bytes{pool="cluster-a"}`:                                                        1 << 30,
		`xenserver_ha_heartbeat_sr_attached{host="xs-a1",pool="cluster-a"}`:                                             1,
		`xenserver_ha_heartbeat_sr_attached{host="xs-a2",pool="cluster-a"}`:                                             0,
		`xenserver_ha_heartbeat_sr_statefile{pool="cluster-a"}`:                                                         1,
		`xenserver_host_info{address="127.0.1.2",host="xs-a2",host_uuid="u2",pool="cluster-a",product_version="6.2.0"}`: 1,
		`xenserver_host_live{host="xs-a1",pool="cluster-a"}`:                                                            1,
		`xenserver_host_live{host="xs-a2",pool="cluster-a"}`:                                                            0,
		`xenserver_host_enabled{host="xs-a2",pool="cluster-a"}`:                                                         0,
		`xenserver_host_hotfix_applied{host="xs-a1",hotfix="XS62ESP1004",pool="cluster-a"}`:                             1,
		`xenserver_host_hotfix_applied{host="xs-a2",hotfix="XS62ESP1004",pool="cluster-a"}`:                             0,
		`xenserver_host_ha_statefile_access{host="xs-a1",pool="cluster-a"}`:                                             1,
		`xenserver_host_ha_statefile_access{host="xs-a2",pool="cluster-a"}`:                                             0,
		`xenserver_pool_vms_ha_protected{pool="cluster-a"}`:                                                             1,
		`xsha_pool_state_age_seconds{pool="cluster-a"}`:                                                                 5,
	}
	got := gatherValues(t, c)
	for series, v := range values {
		if g, ok := got[series]; !ok {
			t.Errorf("%s missing", series)
		} else if g != v {
			t.Errorf("%s = %v, want %v", series, g, v)
		}
	}
}

// TestCollectorHostRole: the role is a state set over every role with
// exactly one series at 1, or no series at all while the role is unknown.
func TestCollectorHostRole(t *testing.T) {
	tests := []struct {
		name  string
		probe xapi.Probe
		want  xapi.Role // "" = no series
	}{
		{"master", xapi.Probe{Role: xapi.RoleMaster}, xapi.RoleMaster},
		{"slave", xapi.Probe{Role: xapi.RoleSlave, MasterAddress: "127.0.1.1"}, xapi.RoleSlave},
		{"emergency", xapi.Probe{Role: xapi.RoleEmergency, Error: []string{"HOST_STILL_BOOTING"}}, xapi.RoleEmergency},
		{"unreachable", xapi.Probe{Role: xapi.RoleUnreachable, Error: []string{"connection refused"}}, xapi.RoleUnreachable},
		{"not probed yet", xapi.Probe{}, ""},
		{"credentials refused", xapi.Probe{Error: []string{"SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := upSnapshot()
			s.Hosts[1].Probe = tt.probe
			got := gatherValues(t, newXenServerCollector(staticSource{s}))
			n, ones := 0, 0
			for _, r := range xapi.Roles {
				v, ok := got[`xenserver_host_role{host="xs-a2",pool="cluster-a",role="`+string(r)+`"}`]
				if ok {
					n++
				}
				if v == 1 {
					ones++
					if r != tt.want {
						t.Errorf("role %s is 1, want %q", r, tt.want)
					}
				}
			}
			switch {
			case tt.want == "" && n != 0:
				t.Errorf("%d role series for an unknown role, want none", n)
			case tt.want != "" && (n != len(xapi.Roles) || ones != 1):
				t.Errorf("%d role series with %d at 1, want %d with exactly one", n, ones, len(xapi.Roles))
			}
		})
	}
}

func TestCollectorPoolNeverRead(t *testing.T) {
	s := &xapi.Snapshot{Pool: "cluster-b", LastError: "no master found",
		Hosts: []xapi.Host{{Name: "127.0.2.1", Address: "127.0.2.1", Probe: xapi.Probe{Role: xapi.RoleUnreachable}}}}
	got := gatherValues(t, newXenServerCollector(staticSource{s}))
	want := map[string]float64{
		`xenserver_pool_up{pool="cluster-b"}`:                                       0,
		`xenserver_pool_master_changes_total{pool="cluster-b"}`:                     0,
		`xenserver_host_role{host="127.0.2.1",pool="cluster-b",role="unreachable"}`: 1,
		`xenserver_host_role{host="127.0.2.1",pool="cluster-b",role="master"}`:      0,
		`xenserver_host_role{host="127.0.2.1",pool="cluster-b",role="slave"}`:       0,
		`xenserver_host_role{host="127.0.2.1",pool="cluster-b",role="emergency"}`:   0,
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestCollectorDownKeepsLastView(t *testing.T) {
	s := upSnapshot()
	s.Up = false
	got := gatherValues(t, newXenServerCollector(staticSource{s}))
	if got[`xenserver_pool_up{pool="cluster-a"}`] != 0 {
		t.Error("pool_up is not 0")
	}
	if _, ok := got[`xenserver_pool_ha_enabled{pool="cluster-a"}`]; !ok {
		t.Error("the last view's HA state is gone while the pool is down")
	}
}

func TestCollectorDuplicateHostNames(t *testing.T) {
	s := upSnapshot()
	s.Hosts = append(s.Hosts, s.Hosts[1])
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newXenServerCollector(staticSource{s}))
	if _, err := reg.Gather(); err != nil {
		t.Errorf("a duplicate name_label fails the scrape: %v", err)
	}
}

func TestMetricNames(t *testing.T) {
	names := MetricNames()
	for _, want := range []string{"xenserver_pool_up", "xenserver_host_role", "xsha_xapi_calls_total",
		"xsha_xapi_sessions_open", "xsha_pool_state_age_seconds", "xsha_config_last_reload_successful"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("MetricNames lacks %s", want)
		}
	}
}

// gatherValues collects c through a pedantic registry (which checks the
// metrics against Describe) and returns series -> value.
func gatherValues(t testing.TB, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
			}
			key := mf.GetName()
			if len(parts) > 0 {
				key += "{" + strings.Join(parts, ",") + "}"
			}
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// switchSource hands out whatever snapshots it currently holds.
type switchSource struct{ snaps []*xapi.Snapshot }

func (s *switchSource) Snapshots() []*xapi.Snapshot { return s.snaps }

// TestCollectorFollowsNewSnapshots: the metrics kept for a snapshot are
// sent again only while that snapshot is current; a new one is read afresh,
// a pool no longer watched disappears, and the state age follows the clock.
func TestCollectorFollowsNewSnapshots(t *testing.T) {
	first := upSnapshot()
	src := &switchSource{snaps: []*xapi.Snapshot{first}}
	c := newXenServerCollector(src)
	now := testNow
	c.now = func() time.Time { return now }
	const up, age = `xenserver_pool_up{pool="cluster-a"}`, `xsha_pool_state_age_seconds{pool="cluster-a"}`
	if v := gatherValues(t, c); v[up] != 1 || v[age] != 5 {
		t.Fatalf("first snapshot: up %v, age %v", v[up], v[age])
	}
	now = now.Add(10 * time.Second)
	if v := gatherValues(t, c); v[up] != 1 || v[age] != 15 {
		t.Fatalf("same snapshot later: up %v, age %v; want 1, 15", v[up], v[age])
	}
	down := *first
	down.Up = false
	src.snaps = []*xapi.Snapshot{&down}
	if v := gatherValues(t, c); v[up] != 0 {
		t.Fatalf("new snapshot with the pool down: up %v, want 0", v[up])
	}
	src.snaps = nil
	if v := gatherValues(t, c); len(v) != 0 {
		t.Fatalf("no pool watched: %d series left", len(v))
	}
}
