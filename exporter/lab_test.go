package exporter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"xsha/sim/lab"
	"xsha/sim/scenario"
)

// TestLabBaseline checks every metric against the lab's default scenario:
// two 6.2 pools with XS62ESP1004, pool HA off, the heartbeat SR plugged
// everywhere, masters xs-a1 and xs-b1.
func TestLabBaseline(t *testing.T) {
	e := startLab(t, testScenario())
	e.waitValue(`xenserver_pool_up{pool="cluster-a"}`, 1)
	e.waitValue(`xenserver_pool_up{pool="cluster-b"}`, 1)
	// Probes run independently; wait until every member has been seen.
	v := e.waitFor("every host probed", func(v map[string]float64) bool {
		for _, p := range []string{"a", "b"} {
			for i := 1; i <= 4; i++ {
				role := "slave"
				if i == 1 {
					role = "master"
				}
				if v[fmt.Sprintf(`xenserver_host_role{host="xs-%s%d",pool="cluster-%s",role="%s"}`, p, i, p, role)] != 1 {
					return false
				}
			}
		}
		return true
	})
	st := e.lab.State()
	for _, ps := range st.Pools {
		p := ps.Name
		want := map[string]float64{
			`xenserver_pool_ha_enabled{pool="` + p + `"}`:            0,
			`xenserver_pool_ha_overcommitted{pool="` + p + `"}`:      0,
			`xenserver_pool_ha_timeout_seconds{pool="` + p + `"}`:    60, // xapi's default: nothing configured
			`xenserver_pool_ha_plan_exists_for{pool="` + p + `"}`:    0,
			`xenserver_pool_master_changes_total{pool="` + p + `"}`:  0,
			`xenserver_ha_heartbeat_sr_present{pool="` + p + `"}`:    1,
			`xenserver_ha_heartbeat_sr_shared{pool="` + p + `"}`:     1,
			`xenserver_ha_heartbeat_sr_size_bytes{pool="` + p + `"}`: 1 << 30,
			`xenserver_ha_heartbeat_sr_statefile{pool="` + p + `"}`:  0,
			`xenserver_pool_vms_ha_protected{pool="` + p + `"}`:      0,
		}
		for _, h := range ps.Hosts {
			hl := `{host="` + h.Name + `",pool="` + p + `"}`
			want[`xenserver_host_info{address="`+h.Address+`",host="`+h.Name+`",host_uuid="`+h.UUID+`",pool="`+p+`",product_version="6.2.0"}`] = 1
			want[`xenserver_host_live`+hl] = 1
			want[`xenserver_host_enabled`+hl] = 1
			want[`xenserver_ha_heartbeat_sr_attached`+hl] = 1
			want[`xenserver_host_ha_statefile_access`+hl] = 0
			want[`xenserver_host_hotfix_applied{host="`+h.Name+`",hotfix="XS62ESP1004",pool="`+p+`"}`] = 1
			if h.Name == ps.Master {
				want[`xenserver_pool_master_info{address="`+h.Address+`",host="`+h.Name+`",host_uuid="`+h.UUID+`",pool="`+p+`"}`] = 1
			}
		}
		for k, w := range want {
			if got, ok := v[k]; !ok {
				t.Errorf("%s missing", k)
			} else if got != w {
				t.Errorf("%s = %v, want %v", k, got, w)
			}
		}
		found := false
		for k := range v {
			if strings.HasPrefix(k, "xenserver_ha_heartbeat_sr_info{") && strings.Contains(k, `pool="`+p+`"`) &&
				strings.Contains(k, `sr="MGMT-HA"`) && strings.Contains(k, `type="nfs"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("no xenserver_ha_heartbeat_sr_info for %s", p)
		}
	}
	// One long-lived session per pool (probes log out at once).
	e.waitValue(`xsha_xapi_sessions_open{pool="cluster-a"}`, 1)
	e.waitValue(`xsha_xapi_sessions_open{pool="cluster-b"}`, 1)
}

// TestLabFaults walks the seed's story on cluster-a and checks that each
// fault shows in the metrics.
func TestLabFaults(t *testing.T) {
	e := startLab(t, testScenario(), "cluster-a")
	const p = `pool="cluster-a"`
	e.waitValue(`xenserver_pool_up{`+p+`}`, 1)
	ctx := context.Background()
	c := e.client("cluster-a")
	snap, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.HeartbeatSR == nil {
		t.Fatal("Client.Read found no heartbeat SR")
	}
	enable := func() {
		t.Helper()
		if err := c.EnableHA(ctx, snap.HeartbeatSR.UUID, map[string]string{"timeout": "180"}); err != nil {
			t.Fatal(err)
		}
	}

	t.Log("HA enabled with the heartbeat SR")
	enable()
	e.waitValue(`xenserver_pool_ha_enabled{`+p+`}`, 1)
	e.waitValue(`xenserver_pool_ha_timeout_seconds{`+p+`}`, 180)
	e.waitValue(`xenserver_ha_heartbeat_sr_statefile{`+p+`}`, 1)
	e.waitValue(`xenserver_host_ha_statefile_access{host="xs-a2",`+p+`}`, 1)

	t.Log("HA switched off out of band")
	if err := e.lab.DisablePoolHA("cluster-a"); err != nil {
		t.Fatal(err)
	}
	e.waitValue(`xenserver_pool_ha_enabled{`+p+`}`, 0)

	t.Log("heartbeat SR unplugged on one host")
	enable()
	e.waitValue(`xenserver_pool_ha_enabled{`+p+`}`, 1)
	if err := e.lab.UnplugHeartbeatSR("xs-a2"); err != nil {
		t.Fatal(err)
	}
	v := e.waitValue(`xenserver_ha_heartbeat_sr_attached{host="xs-a2",`+p+`}`, 0)
	if v[`xenserver_ha_heartbeat_sr_attached{host="xs-a3",`+p+`}`] != 1 {
		t.Error("unplugging on xs-a2 changed xs-a3")
	}
	if err := e.lab.PlugHeartbeatSR("xs-a2"); err != nil {
		t.Fatal(err)
	}
	e.waitValue(`xenserver_ha_heartbeat_sr_attached{host="xs-a2",`+p+`}`, 1)

	t.Log("VM HA priority set")
	if err := e.lab.SetVMHARestartPriority("i-2-101-VM", "restart"); err != nil {
		t.Fatal(err)
	}
	e.waitValue(`xenserver_pool_vms_ha_protected{`+p+`}`, 1)
	if err := e.lab.SetVMHARestartPriority("i-2-101-VM", ""); err != nil {
		t.Fatal(err)
	}
	e.waitValue(`xenserver_pool_vms_ha_protected{`+p+`}`, 0)

	t.Log("master power loss with HA")
	_ = c.Close(ctx) // the remediator's session would not survive either
	if err := e.lab.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	v = e.waitFor("a new master", func(v map[string]float64) bool {
		if v[`xenserver_pool_up{`+p+`}`] != 1 || v[`xenserver_pool_master_changes_total{`+p+`}`] != 1 {
			return false
		}
		for k, x := range v {
			if x == 1 && strings.Contains(k, "xenserver_pool_master_info{") && strings.Contains(k, p) && !strings.Contains(k, `host="xs-a1"`) {
				return true
			}
		}
		return false
	})
	e.waitValue(`xenserver_host_role{host="xs-a1",`+p+`,role="unreachable"}`, 1)
	st := e.lab.State()
	newMaster := st.Pools[0].Master
	if newMaster == "xs-a1" || newMaster == "" {
		t.Fatalf("lab master after failover: %q", newMaster)
	}
	e.waitValue(`xenserver_host_role{host="`+newMaster+`",`+p+`,role="master"}`, 1)

	t.Log("old master back in emergency mode")
	if err := e.lab.PowerOn("xs-a1"); err != nil {
		t.Fatal(err)
	}
	e.waitValue(`xenserver_host_role{host="xs-a1",`+p+`,role="emergency"}`, 1)
	if got := v[`xenserver_pool_master_changes_total{`+p+`}`]; got != 1 {
		t.Errorf("master changes = %v, want 1", got)
	}

	t.Log("a host powered off")
	var victim string
	for _, h := range []string{"xs-a2", "xs-a3", "xs-a4"} {
		if h != newMaster {
			victim = h
			break
		}
	}
	if err := e.lab.PowerOff(victim); err != nil {
		t.Fatal(err)
	}
	e.waitValue(`xenserver_host_role{host="`+victim+`",`+p+`,role="unreachable"}`, 1)
	e.waitValue(`xenserver_host_live{host="`+victim+`",`+p+`}`, 0)
	e.waitValue(`xsha_xapi_sessions_open{`+p+`}`, 1)
}

// TestLabIsolatedPool: with cluster-b's master cut off (it accepts
// connections and never answers), cluster-a's metrics stay present and
// current and cluster-b keeps its last view. BenchmarkScrapeWhilePoolHangs
// measures the scrape time meanwhile.
func TestLabIsolatedPool(t *testing.T) {
	e := startLab(t, testScenario())
	e.waitValue(`xenserver_pool_up{pool="cluster-a"}`, 1)
	e.waitValue(`xenserver_pool_up{pool="cluster-b"}`, 1)
	if err := e.lab.Isolate("xs-b1"); err != nil {
		t.Fatal(err)
	}
	e.waitValue(`xenserver_host_role{host="xs-b1",pool="cluster-b",role="unreachable"}`, 1)
	e.waitValue(`xenserver_pool_up{pool="cluster-b"}`, 0)
	// cluster-a still follows its changes while cluster-b hangs.
	if err := e.lab.SetVMHARestartPriority("i-2-101-VM", "best-effort"); err != nil {
		t.Fatal(err)
	}
	v := e.waitValue(`xenserver_pool_vms_ha_protected{pool="cluster-a"}`, 1)
	if v[`xenserver_pool_up{pool="cluster-a"}`] != 1 {
		t.Error("cluster-a is not up while cluster-b hangs")
	}
	// cluster-b keeps its last view rather than going blank.
	if _, ok := v[`xenserver_pool_ha_enabled{pool="cluster-b"}`]; !ok {
		t.Error("cluster-b's last view is gone")
	}
	if err := e.lab.Reconnect("xs-b1"); err != nil {
		t.Fatal(err)
	}
	e.waitValue(`xenserver_pool_up{pool="cluster-b"}`, 1)
}

// TestLabReload: pools added by a reload are watched, pools removed are
// logged out of and vanish from the metrics.
func TestLabReload(t *testing.T) {
	ctx := t.Context()
	sc := testScenario()
	l, err := lab.Start(ctx, lab.Options{Scenario: sc, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	path := filepath.Join(t.TempDir(), "xsha.yml")
	write := func(pools ...string) {
		var b strings.Builder
		b.WriteString("pools:\n")
		for _, name := range pools {
			p, _ := sc.Pool(name)
			fmt.Fprintf(&b, "  - name: %s\n    hosts: [%s]\n    port: %d\n    tls: {ca_file: %s}\n    password_file: %s\n    %s",
				name, p.Hosts[0].Address, l.XAPIPort(), l.CAFile(), l.PasswordFile(), exporterTiming)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cluster-a")
	reg := prometheus.NewPedanticRegistry()
	a := New(ctx, Options{ConfigFile: path, Registry: reg})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	e := &labEnv{t: t, lab: l, reg: reg}
	e.waitValue(`xenserver_pool_up{pool="cluster-a"}`, 1)
	e.waitValue(`xsha_xapi_sessions_open{pool="cluster-a"}`, 1)

	write("cluster-b")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	e.waitValue(`xenserver_pool_up{pool="cluster-b"}`, 1)
	e.waitFor("cluster-a gone", func(v map[string]float64) bool {
		for k := range v {
			if strings.Contains(k, `pool="cluster-a"`) {
				return false
			}
		}
		return true
	})
	waitUntil(t, "cluster-a's session logged out", func() bool { return e.labSessions("cluster-a") == 0 })
	waitUntil(t, "one session on cluster-b", func() bool { return e.labSessions("cluster-b") == 1 })
}

// TestLabReturningOldMaster: both readings of an old master that returns
// while pool HA is on (sim/scenario.ReturningHost). Stuck, as the seed saw
// it, it answers in emergency mode and the master holds it not live;
// rejoined by itself, as xen-api's code reads, it is a live slave.
func TestLabReturningOldMaster(t *testing.T) {
	for _, tc := range []struct {
		mode scenario.ReturningHost
		role string
		live float64
	}{
		{scenario.ReturningHostStuck, "emergency", 0},
		{scenario.ReturningHostSelfRejoin, "slave", 1},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			sc := testScenario()
			sc.Pools[0].HAEnabled = true
			sc.Pools[0].ReturningHost = tc.mode
			e := startLab(t, sc, "cluster-a")
			const p = `pool="cluster-a"`
			e.waitValue(`xenserver_pool_ha_enabled{`+p+`}`, 1)
			if err := e.lab.PowerOff("xs-a1"); err != nil {
				t.Fatal(err)
			}
			e.waitValue(`xenserver_host_role{host="xs-a1",`+p+`,role="unreachable"}`, 1)
			e.waitValue(`xenserver_pool_master_changes_total{`+p+`}`, 1)
			if err := e.lab.PowerOn("xs-a1"); err != nil {
				t.Fatal(err)
			}
			e.waitValue(`xenserver_host_role{host="xs-a1",`+p+`,role="`+tc.role+`"}`, 1)
			e.waitValue(`xenserver_host_live{host="xs-a1",`+p+`}`, tc.live)
		})
	}
}
