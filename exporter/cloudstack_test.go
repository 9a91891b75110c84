package exporter

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"xsha/cloudstack"
	"xsha/config"
	"xsha/sim/cloudstacksim"
	"xsha/sim/lab"
	"xsha/sim/scenario"
	"xsha/xapi"
)

type staticCloudStack struct{ s *cloudstack.Snapshot }

func (c staticCloudStack) Snapshot() *cloudstack.Snapshot { return c.s }

var csPools = []config.Pool{
	{Name: "pool-a", CloudStackCluster: "cluster-a", HeartbeatSR: "MGMT-HA"},
	{Name: "pool-b", CloudStackCluster: "cluster-b", HeartbeatSR: "MGMT-HA"},
}

func csSnapshot() *cloudstack.Snapshot {
	return &cloudstack.Snapshot{
		Up: true, Synced: testNow, AlertWait: 60 * time.Second, AlertWaitSet: true,
		Clusters: []cloudstack.Cluster{{Name: "cluster-a", VMsHA: 3, VMsNoHA: 2}, {Name: "cluster-b", VMsHA: 0, VMsNoHA: 1}},
		Hosts: []cloudstack.Host{
			{Name: "xs-a1", Cluster: "cluster-a", State: "Alert", ResourceState: "Enabled"},
			{Name: "xs-b1", Cluster: "cluster-b", State: "Up", ResourceState: "PrepareForMaintenance"},
			{Name: "xs-b1", Cluster: "cluster-b", State: "Down", ResourceState: "Enabled"}, // duplicate name
		},
		StoragePools: []cloudstack.StoragePool{
			{Name: "primary-a", Cluster: "cluster-a"},
			{Name: "MGMT-HA", Cluster: "cluster-b"},
		},
	}
}

func TestCloudStackCollectorValues(t *testing.T) {
	c := newCloudStackCollector(staticCloudStack{csSnapshot()}, csPools)
	const want = `
# HELP cloudstack_alert_wait_seconds Effective alert.wait global setting: seconds CloudStack waits before putting a host whose state it cannot determine in Alert (1800 when the setting is blank).
# TYPE cloudstack_alert_wait_seconds gauge
cloudstack_alert_wait_seconds 60
# HELP cloudstack_alert_wait_set 1 when alert.wait has a value, 0 when it is blank and CloudStack falls back to 1800 s.
# TYPE cloudstack_alert_wait_set gauge
cloudstack_alert_wait_set 1
# HELP cloudstack_cluster_vms Guest VMs placed on the cluster's hosts, by whether their service offering offers HA (ha="true"): only those are restarted when a host goes Down.
# TYPE cloudstack_cluster_vms gauge
cloudstack_cluster_vms{cluster="cluster-a",ha="false"} 2
cloudstack_cluster_vms{cluster="cluster-a",ha="true"} 3
cloudstack_cluster_vms{cluster="cluster-b",ha="false"} 1
cloudstack_cluster_vms{cluster="cluster-b",ha="true"} 0
# HELP cloudstack_cluster_info The CloudStack cluster each configured pool backs (cloudstack_cluster in the configuration); always 1. Joins CloudStack series (cluster) to XenServer ones (pool).
# TYPE cloudstack_cluster_info gauge
cloudstack_cluster_info{cluster="cluster-a",pool="pool-a"} 1
cloudstack_cluster_info{cluster="cluster-b",pool="pool-b"} 1
# HELP cloudstack_up 1 when the latest poll of the CloudStack API succeeded (every call answered), else 0; the other CloudStack-derived series are only exposed while it is 1.
# TYPE cloudstack_up gauge
cloudstack_up 1
# HELP xenserver_ha_heartbeat_sr_cloudstack_primary_storage 1 when a CloudStack primary storage pool serving the pool's cluster has the name of the pool's heartbeat SR, which must be dedicated to Pool HA.
# TYPE xenserver_ha_heartbeat_sr_cloudstack_primary_storage gauge
xenserver_ha_heartbeat_sr_cloudstack_primary_storage{pool="pool-a"} 0
xenserver_ha_heartbeat_sr_cloudstack_primary_storage{pool="pool-b"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"cloudstack_up", "cloudstack_alert_wait_seconds", "cloudstack_alert_wait_set", "cloudstack_cluster_vms",
		"cloudstack_cluster_info", "xenserver_ha_heartbeat_sr_cloudstack_primary_storage"); err != nil {
		t.Error(err)
	}

	got := gatherValues(t, c)
	for _, tc := range []struct {
		family, host string
		states       []string
		current      string
	}{
		{"cloudstack_host_state", "xs-a1", cloudstack.HostStates, "Alert"},
		{"cloudstack_host_state", "xs-b1", cloudstack.HostStates, "Up"},
		{"cloudstack_host_resource_state", "xs-a1", cloudstack.ResourceStates, "Enabled"},
		{"cloudstack_host_resource_state", "xs-b1", cloudstack.ResourceStates, "PrepareForMaintenance"},
	} {
		cluster := "cluster-" + tc.host[3:4]
		for _, st := range tc.states {
			key := tc.family + `{cluster="` + cluster + `",host="` + tc.host + `",state="` + st + `"}`
			v, ok := got[key]
			if !ok {
				t.Errorf("missing %s", key)
			}
			if want := b2f(st == tc.current); v != want {
				t.Errorf("%s = %v, want %v", key, v, want)
			}
		}
	}
	if n := testutil.CollectAndCount(c, "cloudstack_host_state"); n != 2*len(cloudstack.HostStates) {
		t.Errorf("%d host state series, want one set per host (%d)", n, 2*len(cloudstack.HostStates))
	}
}

func TestCloudStackCollectorBlankAlertWait(t *testing.T) {
	s := csSnapshot()
	s.AlertWait, s.AlertWaitSet = cloudstack.DefaultAlertWait, false
	got := gatherValues(t, newCloudStackCollector(staticCloudStack{s}, csPools))
	if got["cloudstack_alert_wait_seconds"] != 1800 || got["cloudstack_alert_wait_set"] != 0 {
		t.Errorf("blank alert.wait: seconds %v set %v, want 1800 and 0", got["cloudstack_alert_wait_seconds"], got["cloudstack_alert_wait_set"])
	}
}

func TestCloudStackCollectorDown(t *testing.T) {
	s := csSnapshot()
	s.Up, s.LastError = false, "listHosts: connection refused"
	got := gatherValues(t, newCloudStackCollector(staticCloudStack{s}, csPools))
	if len(got) != 1 || got["cloudstack_up"] != 0 {
		t.Errorf("down: %v, want only cloudstack_up 0", got)
	}
}

// labCloudStack serves the simulated CloudStack of the default scenario.
func labCloudStack(t *testing.T, edit func(*scenario.Scenario)) (*httptest.Server, *scenario.Scenario) {
	t.Helper()
	sc := scenario.Default()
	if edit != nil {
		edit(sc)
	}
	var hosts []cloudstacksim.HostView
	for _, p := range sc.Pools {
		for _, h := range p.Hosts {
			hosts = append(hosts, cloudstacksim.HostView{Name: h.Name, Cluster: p.Name, Address: h.Address, PoweredOn: true, Reachable: true, Heartbeat: true})
		}
	}
	srv, err := cloudstacksim.New(staticInfra(hosts), cloudstacksim.FromScenario(sc))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, sc
}

type staticInfra []cloudstacksim.HostView

func (s staticInfra) Hosts() []cloudstacksim.HostView { return s }

type oneSnapshot struct {
	mu sync.Mutex
	s  *xapi.Snapshot
}

func (o *oneSnapshot) Snapshots() []*xapi.Snapshot {
	o.mu.Lock()
	defer o.mu.Unlock()
	return []*xapi.Snapshot{o.s}
}

// A CloudStack outage sets cloudstack_up to 0, drops the CloudStack series
// and leaves the XenServer metrics as they were.
func TestCloudStackOutageLeavesXenServerMetrics(t *testing.T) {
	ts, sc := labCloudStack(t, func(sc *scenario.Scenario) {
		sc.CloudStack.PrimaryStorage = append(sc.CloudStack.PrimaryStorage, "MGMT-HA")
	})
	cfg := config.CloudStack{
		URL: ts.URL + "/client/api", APIKey: config.Secret(sc.CloudStack.APIKey), SecretKey: config.Secret(sc.CloudStack.SecretKey),
		Interval: model.Duration(20 * time.Millisecond), Timeout: model.Duration(5 * time.Second),
	}
	pools := []config.Pool{
		{Name: "cluster-a", CloudStackCluster: "cluster-a", HeartbeatSR: "MGMT-HA"},
		{Name: "cluster-b", CloudStackCluster: "cluster-b", HeartbeatSR: "HB-B"},
	}
	csc, stop, err := StartCloudStack(context.Background(), cfg, pools, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	xs := &oneSnapshot{s: &xapi.Snapshot{
		Pool: "cluster-a", Up: true, Synced: time.Now(), PoolUUID: "p", MasterUUID: "u1",
		Hosts: []xapi.Host{{UUID: "u1", Name: "xs-a1", Address: "127.0.1.1", ProductVersion: "6.2.0", Enabled: true, Live: true, IsMaster: true,
			Probe: xapi.Probe{Role: xapi.RoleMaster}}},
	}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newXenServerCollector(xs), csc)

	var before map[string]float64
	waitUntil(t, "CloudStack polled", func() bool {
		before = gatherValues(t, reg)
		return before["cloudstack_up"] == 1
	})
	for key, want := range map[string]float64{
		"cloudstack_alert_wait_seconds":                                                    60,
		`cloudstack_host_state{cluster="cluster-b",host="xs-b2",state="Up"}`:               1,
		`cloudstack_host_resource_state{cluster="cluster-a",host="xs-a4",state="Enabled"}`: 1,
		`cloudstack_cluster_vms{cluster="cluster-a",ha="true"}`:                            3,
		`cloudstack_cluster_vms{cluster="cluster-a",ha="false"}`:                           2,
		`xenserver_ha_heartbeat_sr_cloudstack_primary_storage{pool="cluster-a"}`:           1,
		`xenserver_ha_heartbeat_sr_cloudstack_primary_storage{pool="cluster-b"}`:           0,
		`xenserver_pool_up{pool="cluster-a"}`:                                              1,
		`xenserver_host_role{host="xs-a1",pool="cluster-a",role="master"}`:                 1,
	} {
		if got, ok := before[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}

	ts.Close()
	var after map[string]float64
	waitUntil(t, "outage seen", func() bool {
		after = gatherValues(t, reg)
		return after["cloudstack_up"] == 0
	})
	for key, v := range before {
		isCS := strings.HasPrefix(key, "cloudstack_") || strings.HasPrefix(key, "xenserver_ha_heartbeat_sr_cloudstack_")
		got, ok := after[key]
		switch {
		case key == "cloudstack_up", strings.HasPrefix(key, "xsha_pool_state_age_seconds"): // age grows by itself
		case isCS && ok:
			t.Errorf("%s still exposed during the outage", key)
		case !isCS && (!ok || got != v):
			t.Errorf("XenServer series %s changed during the CloudStack outage: %v -> %v (present %v)", key, v, got, ok)
		}
	}
}

func TestCloudStackMetricNames(t *testing.T) {
	names := MetricNames()
	for _, want := range []string{"cloudstack_up", "cloudstack_alert_wait_seconds", "cloudstack_alert_wait_set",
		"cloudstack_host_state", "cloudstack_host_resource_state", "cloudstack_cluster_vms", "cloudstack_cluster_info",
		"xenserver_ha_heartbeat_sr_cloudstack_primary_storage"} {
		i := sort.SearchStrings(names, want)
		if i >= len(names) || names[i] != want {
			t.Errorf("MetricNames lacks %s", want)
		}
	}
}

// labConfig writes the lab's xsha configuration with short intervals for
// scaled time.
func labConfig(t *testing.T, l *lab.Lab) string {
	t.Helper()
	b, err := os.ReadFile(l.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range doc["pools"].([]any) {
		pool := p.(map[string]any)
		pool["probe_interval"], pool["call_timeout"], pool["event_timeout"] = "200ms", "2s", "1s"
	}
	cs := doc["cloudstack"].(map[string]any)
	cs["interval"], cs["timeout"] = "100ms", "2s"
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "xsha.yml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The seed's test, replayed at 100× on the lab with both clusters at once:
// the masters of cluster-a (pool HA off) and cluster-b (pool HA on) lose
// power. cluster-a keeps no master and all its hosts go to Alert in
// CloudStack with no VM restarted; cluster-b elects a new master,
// CloudStack finds xs-b1 Down and restarts the Offer-HA guests on the other
// hosts after alert.wait, the others stay stopped. The metrics show each
// step.
func TestSeedTimelineMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the lab")
	}
	sc := scenario.Default()
	sc.TimeScale = 0.01
	sc.Pools[1].HAEnabled = true
	ctx := t.Context()
	l, err := lab.Start(ctx, lab.Options{Scenario: sc, CloudStackListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg := prometheus.NewPedanticRegistry()
	app := New(ctx, Options{ConfigFile: labConfig(t, l), Registry: reg, CloudStack: StartCloudStack})
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer app.Stop()

	var m map[string]float64
	scrape := func() map[string]float64 { m = gatherValues(t, reg); return m }
	hostState := func(cluster, host, state string) float64 {
		return m[`cloudstack_host_state{cluster="`+cluster+`",host="`+host+`",state="`+state+`"}`]
	}
	vms := func(cluster, ha string) float64 {
		return m[`cloudstack_cluster_vms{cluster="`+cluster+`",ha="`+ha+`"}`]
	}
	wait := func(what string, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := start.Add(60 * time.Second)
		for scrape(); !cond(); scrape() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reached; lab state %+v", what, l.State().CloudStack)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	scaled := func(d time.Duration) string { return (d * 100).Round(time.Second).String() }

	wait("both pools and CloudStack read", func() bool {
		return m["cloudstack_up"] == 1 && m[`xenserver_pool_up{pool="cluster-a"}`] == 1 && m[`xenserver_pool_up{pool="cluster-b"}`] == 1 &&
			m[`xenserver_pool_ha_enabled{pool="cluster-b"}`] == 1 && hostState("cluster-a", "xs-a1", "Up") == 1
	})
	for key, want := range map[string]float64{
		"cloudstack_alert_wait_seconds": 60, "cloudstack_alert_wait_set": 1,
		`cloudstack_cluster_vms{cluster="cluster-a",ha="true"}`:                            3,
		`cloudstack_cluster_vms{cluster="cluster-a",ha="false"}`:                           2,
		`cloudstack_cluster_vms{cluster="cluster-b",ha="true"}`:                            3,
		`cloudstack_cluster_vms{cluster="cluster-b",ha="false"}`:                           2,
		`xenserver_ha_heartbeat_sr_cloudstack_primary_storage{pool="cluster-a"}`:           0,
		`cloudstack_host_resource_state{cluster="cluster-b",host="xs-b3",state="Enabled"}`: 1,
	} {
		if m[key] != want {
			t.Errorf("before the failure %s = %v, want %v", key, m[key], want)
		}
	}

	start := time.Now()
	for _, h := range []string{"xs-a1", "xs-b1"} {
		if err := l.PowerOff(h); err != nil {
			t.Fatal(err)
		}
	}
	wait("xs-a1 and xs-b1 unreachable", func() bool {
		return m[`xenserver_host_role{host="xs-a1",pool="cluster-a",role="unreachable"}`] == 1 &&
			m[`xenserver_host_role{host="xs-b1",pool="cluster-b",role="unreachable"}`] == 1
	})
	// Every milestone is timed from the power loss by one polling loop.
	guestsBackInB := func() bool {
		n := 0
		for _, v := range l.State().CloudStack.VMs {
			if strings.HasPrefix(v.Name, "i-") && v.HAEnable && v.State == "Running" && strings.HasPrefix(v.Host, "xs-b") && v.Host != "xs-b1" {
				n++
			}
		}
		return n == 3 && vms("cluster-b", "true") == 3 && vms("cluster-b", "false") == 0
	}
	milestones := []struct {
		name string
		cond func() bool
		at   time.Duration
	}{
		{name: "new master in cluster-b", cond: func() bool {
			for _, h := range []string{"xs-b2", "xs-b3", "xs-b4"} {
				if m[`xenserver_host_role{host="`+h+`",pool="cluster-b",role="master"}`] == 1 {
					return true
				}
			}
			return false
		}},
		{name: "xs-b1 Down in CloudStack", cond: func() bool { return hostState("cluster-b", "xs-b1", "Down") == 1 }},
		{name: "Offer-HA guests of cluster-b running on other hosts", cond: guestsBackInB},
		{name: "every host of cluster-a in Alert", cond: func() bool {
			for _, h := range []string{"xs-a1", "xs-a2", "xs-a3", "xs-a4"} {
				if hostState("cluster-a", h, "Alert") != 1 {
					return false
				}
			}
			return true
		}},
	}
	wait("every milestone", func() bool {
		done := true
		for i := range milestones {
			if milestones[i].at == 0 && milestones[i].cond() {
				milestones[i].at = time.Since(start)
			}
			done = done && milestones[i].at != 0
		}
		return done
	})
	for _, ms := range milestones {
		t.Logf("%s after %s (scaled back from %v at 100x)", ms.name, scaled(ms.at), ms.at.Round(time.Millisecond))
	}
	if milestones[1].at < milestones[0].at || milestones[2].at < milestones[1].at {
		t.Errorf("CloudStack acted before the new master: %+v", milestones)
	}

	// Let the model run on: nothing more comes back in cluster-a, and the
	// guests without Offer HA stay stopped in cluster-b.
	time.Sleep(500 * time.Millisecond)
	scrape()
	for key, want := range map[string]float64{
		`cloudstack_cluster_vms{cluster="cluster-b",ha="true"}`:                 3,
		`cloudstack_cluster_vms{cluster="cluster-b",ha="false"}`:                0,
		`cloudstack_cluster_vms{cluster="cluster-a",ha="true"}`:                 3, // still placed on the dead master
		`cloudstack_host_state{cluster="cluster-b",host="xs-b2",state="Up"}`:    1,
		`cloudstack_host_state{cluster="cluster-a",host="xs-a2",state="Alert"}`: 1,
		`xenserver_pool_ha_enabled{pool="cluster-b"}`:                           1,
		"cloudstack_up": 1,
	} {
		if m[key] != want {
			t.Errorf("after the failure %s = %v, want %v", key, m[key], want)
		}
	}
	noHA := map[string]bool{}
	for _, v := range sc.Pools[1].VMs {
		if v.Kind == scenario.KindGuest && v.Offering == "Medium Instance" {
			noHA[v.Name] = true
		}
	}
	for _, v := range l.State().CloudStack.VMs {
		if noHA[v.Name] && (v.State != "Stopped" || v.Host != "") {
			t.Errorf("guest %+v without Offer HA should stay Stopped", v)
		}
	}
	if len(noHA) != 2 {
		t.Errorf("scenario has %d guests without Offer HA in cluster-b, want 2", len(noHA))
	}
}
