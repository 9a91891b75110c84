package xapisim

import (
	"strings"
	"testing"
	"time"

	"xsha/sim/scenario"
)

// TestEnableHAFailures pins pool.enable_ha's refusals in the order of
// Xapi_ha.enable (ocaml/xapi/xapi_ha.ml at XS62 and 1.14-lcm) and what a
// failed enable leaves behind: pool HA off, no host armed, but
// Pool.ha_statefiles and ha_configuration as the attempt recorded them.
func TestEnableHAFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version string
		edition string
		setup   func(t *testing.T, r *rpc)
		want    func(r *rpc) string
		// recorded: the failure comes after the statefile was recorded.
		recorded bool
	}{
		{
			name: "free edition on 6.2", version: scenario.Version62, edition: scenario.EditionFree,
			want: func(*rpc) string { return "LICENSE_RESTRICTION" },
		},
		{
			name: "free edition on 7.1", version: scenario.Version71, edition: scenario.EditionFree,
			want: func(*rpc) string { return "LICENSE_RESTRICTION HA" },
		},
		{
			name: "required PIF unplugged", version: scenario.Version62,
			setup: func(t *testing.T, r *rpc) {
				if err := r.p.SetRequiredPIF("xs-a3", false); err != nil {
					t.Fatal(err)
				}
			},
			want: func(r *rpc) string {
				return "REQUIRED_PIF_IS_UNPLUGGED " + r.p.requiredPIFRef(r.p.byName["xs-a3"])
			},
		},
		{
			name: "a slave cut off during the enable", version: scenario.Version62,
			setup: func(t *testing.T, r *rpc) {
				// Still live in the master's database, so the enable starts.
				if err := r.p.Isolate("xs-a3"); err != nil {
					t.Fatal(err)
				}
			},
			want:     func(*rpc) string { return "HA_FAILED_TO_FORM_LIVESET" },
			recorded: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := fastScenario(0.001)
			sc.Pools[0].ProductVersion = tc.version
			sc.Pools[0].Hotfixes = nil
			if tc.edition != "" {
				sc.Pools[0].Edition = tc.edition
			}
			r := newRPC(t, sc, "cluster-a")
			if tc.setup != nil {
				tc.setup(t, r)
			}
			s := r.login("xs-a1")
			mgmt := r.must("xs-a1", "SR.get_by_name_label", s, String("MGMT-HA")).Elems[0]
			_, e := r.do("xs-a1", "pool.enable_ha", s, Array(mgmt), StringMap(map[string]string{"timeout": "180"}))
			if got, want := strings.Join(e, " "), tc.want(r); got != want {
				t.Fatalf("enable_ha: %q, want %q", got, want)
			}
			pool := r.must("xs-a1", "pool.get_all", s).Elems[0]
			rec := r.must("xs-a1", "pool.get_record", s, pool)
			if on, _ := rec.Get("ha_enabled"); on.Bool {
				t.Error("pool HA on after a failed enable")
			}
			files, _ := rec.Get("ha_statefiles")
			cfg, _ := rec.Get("ha_configuration")
			timeout, _ := cfg.Get("timeout")
			if tc.recorded != (len(files.Elems) == 1) || tc.recorded != (timeout.Str == "180") {
				t.Errorf("ha_statefiles %v, ha_configuration %v; recorded by the attempt: %v", files.Elems, cfg, tc.recorded)
			}
			for _, h := range r.p.State().Hosts {
				if h.HAArmed {
					t.Errorf("%s armed after a failed enable", h.Name)
				}
			}
		})
	}
}

// TestPlannerWithProtectedVM: with a protected VM (ha_always_run,
// priority "restart") no plan survives the loss of every host, so
// pool.ha_compute_max_host_failures_to_tolerate answers hosts-1 and
// raising ha_host_failures_to_tolerate past it while a plan exists fails
// with HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN
// (ocaml/xapi/xapi_ha_vm_failover.ml and xapi_pool.ml at XS62).
func TestPlannerWithProtectedVM(t *testing.T) {
	sc := fastScenario(0.001)
	sc.Pools[0].HAEnabled = true
	r := newRPC(t, sc, "cluster-a")
	s := r.login("xs-a1")
	pool := r.must("xs-a1", "pool.get_all", s).Elems[0]
	if got := r.must("xs-a1", "pool.ha_compute_max_host_failures_to_tolerate", s); got.Str != "4" {
		t.Errorf("max failures without protected VMs: %s, want the host count 4", got.Str)
	}
	vm := r.must("xs-a1", "VM.get_by_name_label", s, String("i-2-101-VM")).Elems[0]
	r.must("xs-a1", "VM.set_ha_restart_priority", s, vm, String("restart"))
	if got := r.must("xs-a1", "pool.ha_compute_max_host_failures_to_tolerate", s); got.Str != "3" {
		t.Errorf("max failures with a protected VM: %s, want hosts-1 = 3", got.Str)
	}
	for _, tc := range []struct {
		n        int64
		err      string
		planFor  string
		tolerate string
	}{
		{n: 3, planFor: "3", tolerate: "3"},
		{n: 4, err: "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN", planFor: "3", tolerate: "3"},
		{n: 1, planFor: "1", tolerate: "1"},
	} {
		_, e := r.do("xs-a1", "pool.set_ha_host_failures_to_tolerate", s, pool, Int(tc.n))
		if strings.Join(e, " ") != tc.err {
			t.Errorf("tolerate %d: %v, want %q", tc.n, e, tc.err)
		}
		if got := r.must("xs-a1", "pool.get_ha_plan_exists_for", s, pool).Str; got != tc.planFor {
			t.Errorf("tolerate %d: ha_plan_exists_for %s, want %s", tc.n, got, tc.planFor)
		}
		if got := r.must("xs-a1", "pool.get_ha_host_failures_to_tolerate", s, pool).Str; got != tc.tolerate {
			t.Errorf("tolerate %d: ha_host_failures_to_tolerate %s, want %s", tc.n, got, tc.tolerate)
		}
	}
	// A best-effort VM is not protected.
	r.must("xs-a1", "VM.set_ha_restart_priority", s, vm, String("best-effort"))
	if got := r.must("xs-a1", "pool.ha_compute_max_host_failures_to_tolerate", s); got.Str != "4" {
		t.Errorf("max failures with a best-effort VM: %s, want 4", got.Str)
	}
}

// returnOldMaster powers off the pool's master with pool HA on, waits for
// the election and powers the old master back on, waiting until it is
// back in the role want.
func returnOldMaster(t *testing.T, p *Pool, want string) {
	t.Helper()
	if err := p.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "a new master", func(st PoolState) bool {
		for _, h := range st.Hosts {
			if h.Name == st.Master && h.Name != "xs-a1" && h.Role == RoleMaster {
				return true
			}
		}
		return false
	})
	if err := p.PowerOn("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "xs-a1 "+want, func(st PoolState) bool { return st.Hosts[0].Role == want })
}

// TestSoftEmergencyHADisableKeepsHostStuck: on 7.x
// host.emergency_ha_disable(soft=true) stops the HA daemon but leaves
// ha.armed set (xapi_ha.ml at 1.14-lcm), so a host in the HA start-up loop
// stays in emergency mode and the calls that need a disarmed host still
// refuse; the hard form then succeeds and lets it carry on.
func TestSoftEmergencyHADisableKeepsHostStuck(t *testing.T) {
	sc := fastScenario(0.002)
	sc.Pools[0].ProductVersion = scenario.Version71
	sc.Pools[0].Hotfixes = nil
	sc.Pools[0].HAEnabled = true
	r := newRPC(t, sc, "cluster-a")
	returnOldMaster(t, r.p, RoleEmergency)
	if err := r.p.DisablePoolHA(t.Context()); err != nil {
		t.Fatal(err)
	}
	local := r.must("xs-a1", "session.slave_local_login_with_password", String("root"), String("xenroot"))
	r.must("xs-a1", "host.emergency_ha_disable", local, Bool(true))
	r.p.mu.Lock()
	h := r.p.byName["xs-a1"]
	armed, leaving := h.armed, h.pendingJoin
	r.p.mu.Unlock()
	if !armed || leaving {
		t.Fatalf("after soft emergency_ha_disable: armed=%v leaving the start-up loop=%v, want armed and stuck", armed, leaving)
	}
	if st := r.p.State().Hosts[0]; st.Role != RoleEmergency || !st.HAArmed {
		t.Errorf("after soft emergency_ha_disable: %+v", st)
	}
	if _, e := r.do("xs-a1", "pool.emergency_transition_to_master", local); strings.Join(e, " ") != "HA_IS_ENABLED" {
		t.Errorf("emergency_transition_to_master after soft disable: %v, want HA_IS_ENABLED", e)
	}
	// Soft again is accepted; hard still finds ha.armed set and clears it.
	r.must("xs-a1", "host.emergency_ha_disable", local, Bool(true))
	r.must("xs-a1", "host.emergency_ha_disable", local, Bool(false))
	waitState(t, r.p, "xs-a1 a live slave", func(st PoolState) bool {
		return st.Hosts[0].Role == RoleSlave && st.Hosts[0].Live && !st.Hosts[0].HAArmed
	})
}

// TestDisableHAWithoutStatefile: a master that cannot reach the statefile
// disables pool HA only when every host answers
// ha_disable_failover_decisions, retrying every 30 s without end
// (Xapi_ha.disable_internal, xapi_ha.ml at XS62 and 1.14-lcm); the call
// does not return meanwhile. Once the master reaches the statefile again
// the next attempt goes through it.
func TestDisableHAWithoutStatefile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offHost string
	}{
		{name: "every host answers"},
		{name: "a host is off", offHost: "xs-a4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := fastScenario(0.002)
			sc.Pools[0].HAEnabled = true
			r := newRPC(t, sc, "cluster-a")
			s := r.login("xs-a1")
			if tc.offHost != "" {
				if err := r.p.PowerOff(tc.offHost); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.p.SetHeartbeatPBD("xs-a1", false); err != nil {
				t.Fatal(err)
			}
			done := make(chan []string, 1)
			go func() {
				_, e := r.do("xs-a1", "pool.disable_ha", s)
				done <- e
			}()
			if tc.offHost == "" {
				if e := <-done; e != nil {
					t.Fatalf("disable_ha: %v", e)
				}
				if r.p.State().HAEnabled {
					t.Fatal("pool HA still on")
				}
				return
			}
			// Ten retry periods pass and the call is still inside.
			time.Sleep(10 * sc.Scale(disableRetry))
			select {
			case e := <-done:
				t.Fatalf("disable_ha returned %v while %s is off and the master has no statefile", e, tc.offHost)
			default:
			}
			if !r.p.State().HAEnabled {
				t.Fatal("pool HA off while the disable is still retrying")
			}
			if err := r.p.SetHeartbeatPBD("xs-a1", true); err != nil {
				t.Fatal(err)
			}
			if e := <-done; e != nil {
				t.Fatalf("disable_ha once the statefile is back: %v", e)
			}
			if r.p.State().HAEnabled {
				t.Fatal("pool HA still on")
			}
		})
	}
}
