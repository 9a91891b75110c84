package xapisim

import (
	"strings"
	"sync"
	"testing"
	"time"

	"xsha/sim/scenario"
)

// TestSessionTable62 shows why a login-per-scrape client hurts on 6.2: the
// table holds 400 sessions and evicts the least recently used, here
// another client's session.
func TestAuthenticationFailureIsDelayed(t *testing.T) {
	sc := fastScenario(0.05) // 5 s take 250 ms
	r := newRPC(t, sc, "cluster-a")
	start := time.Now()
	_, e := r.do("xs-a1", "session.login_with_password", String("root"), String("wrong"))
	if strings.Join(e, " ") != "SESSION_AUTHENTICATION_FAILED root Authentication failure" {
		t.Errorf("got %v", e)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("failed after %v, want the scaled 5 s delay (250 ms)", el)
	}
	// Local login too; and a modern slave redirects even a bad password.
	if _, e := r.do("xs-a2", "session.slave_local_login_with_password", String("root"), String("wrong")); len(e) == 0 || e[0] != "SESSION_AUTHENTICATION_FAILED" {
		t.Errorf("local login: %v", e)
	}
	if _, e := r.do("xs-a2", "session.login_with_password", String("root"), String("wrong")); strings.Join(e, " ") != "HOST_IS_SLAVE 127.0.1.1" {
		t.Errorf("slave: %v", e)
	}
}

// TestLegacySlaveLogin is XS 6.2 release code: a slave authenticates first
// and, with the master dead, the login hangs.
func TestLegacySlaveLogin(t *testing.T) {
	sc := fastScenario(0.001)
	sc.Pools[0].SlaveLogin = scenario.SlaveLoginLegacy
	r := newRPC(t, sc, "cluster-a")
	if _, e := r.do("xs-a2", "session.login_with_password", String("root"), String("wrong")); len(e) == 0 || e[0] != "SESSION_AUTHENTICATION_FAILED" {
		t.Errorf("bad password on a legacy slave: %v", e)
	}
	if _, e := r.do("xs-a2", "session.login_with_password", String("root"), String("xenroot")); strings.Join(e, " ") != "HOST_IS_SLAVE 127.0.1.1" {
		t.Errorf("good password: %v", e)
	}
	if err := r.p.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	done := make(chan []string, 1)
	go func() {
		_, e := r.do("xs-a2", "session.login_with_password", String("root"), String("xenroot"))
		done <- e
	}()
	select {
	case e := <-done:
		t.Fatalf("login with a dead master returned %v", e)
	case <-time.After(200 * time.Millisecond):
	}
	if err := r.p.PowerOn("xs-a1"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-done:
		if strings.Join(e, " ") != "HOST_IS_SLAVE 127.0.1.1" {
			t.Errorf("after the master returned: %v", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("login still hanging after the master returned")
	}
}

func TestEnableHAPreconditions(t *testing.T) {
	sc := fastScenario(0.001)
	r := newRPC(t, sc, "cluster-a")
	s := r.login("xs-a1")
	sr := func(name string) Value { return r.must("xs-a1", "SR.get_by_name_label", s, String(name)).Elems[0] }
	mgmt, tools := sr("MGMT-HA"), sr("XenServer Tools")
	local := r.must("xs-a1", "SR.get_by_name_label", s, String("Local storage")).Elems[0]
	enable := func(srs ...Value) []string {
		_, e := r.do("xs-a1", "pool.enable_ha", s, Array(srs...), StringMap(map[string]string{"timeout": "180"}))
		return e
	}
	if _, e := r.do("xs-a1", "pool.disable_ha", s); strings.Join(e, " ") != "HA_NOT_ENABLED" {
		t.Errorf("disable_ha when off: %v", e)
	}
	if e := enable(tools); strings.Join(e, " ") != "SR_OPERATION_NOT_SUPPORTED "+tools.Str {
		t.Errorf("ISO SR: %v", e)
	}
	if e := enable(local); strings.Join(e, " ") != "SR_HAS_NO_PBDS "+local.Str {
		t.Errorf("local SR: %v", e)
	}
	if e := enable(String("OpaqueRef:nope")); strings.Join(e, " ") != "HANDLE_INVALID SR OpaqueRef:nope" {
		t.Errorf("bad SR: %v", e)
	}
	if err := r.p.SetHeartbeatPBD("xs-a3", false); err != nil {
		t.Fatal(err)
	}
	if e := enable(mgmt); strings.Join(e, " ") != "SR_HAS_NO_PBDS "+mgmt.Str {
		t.Errorf("unplugged PBD: %v", e)
	}
	if err := r.p.SetHeartbeatPBD("xs-a3", true); err != nil {
		t.Fatal(err)
	}
	// With no SR given, xapi picks the first usable one.
	if e := enable(); e != nil {
		t.Fatalf("enable_ha: %v", e)
	}
	pool := r.must("xs-a1", "pool.get_all", s).Elems[0]
	rec := r.must("xs-a1", "pool.get_record", s, pool)
	files, _ := rec.Get("ha_statefiles")
	cfg, _ := rec.Get("ha_configuration")
	if len(files.Elems) != 1 || !strings.HasPrefix(files.Elems[0].Str, "OpaqueRef:") {
		t.Errorf("ha_statefiles %+v", files)
	}
	if to, _ := cfg.Get("timeout"); to.Str != "180" || r.p.State().HATimeoutSeconds != 180 {
		t.Errorf("timeout %q, state %d", to.Str, r.p.State().HATimeoutSeconds)
	}
	vdi := r.must("xs-a1", "VDI.get_record", s, files.Elems[0])
	if typ, _ := vdi.Get("type"); typ.Str != "ha_statefile" {
		t.Errorf("statefile VDI type %q", typ.Str)
	}
	if e := enable(mgmt); strings.Join(e, " ") != "HA_IS_ENABLED" {
		t.Errorf("second enable: %v", e)
	}
	// The planner finds a plan for any number of failures up to the host
	// count (no protected VMs, so nothing to place).
	for _, n := range []int64{1, 4} {
		r.must("xs-a1", "pool.set_ha_host_failures_to_tolerate", s, pool, Int(n))
		if got := r.must("xs-a1", "pool.get_ha_plan_exists_for", s, pool); got.Str != Int(n).Str {
			t.Errorf("tolerate %d: ha_plan_exists_for %s", n, got.Str)
		}
	}
	if got := r.must("xs-a1", "pool.ha_compute_max_host_failures_to_tolerate", s); got.Str != "4" {
		t.Errorf("ha_compute_max_host_failures_to_tolerate %s, want the host count 4", got.Str)
	}
	if _, e := r.do("xs-a1", "pool.set_ha_host_failures_to_tolerate", s, pool, Int(-1)); strings.Join(e, " ") != "INVALID_VALUE ha_host_failures_to_tolerate -1" {
		t.Errorf("negative tolerance: %v", e)
	}
	r.must("xs-a1", "pool.disable_ha", s)
	// disable_ha leaves statefiles and configuration.
	rec = r.must("xs-a1", "pool.get_record", s, pool)
	if files2, _ := rec.Get("ha_statefiles"); len(files2.Elems) != 1 {
		t.Errorf("statefiles after disable: %+v", files2)
	}
	if on, _ := rec.Get("ha_enabled"); on.Bool {
		t.Error("still enabled")
	}
	// HOST_OFFLINE for a host the master holds dead.
	r.p.mu.Lock()
	r.p.markDead(r.p.byName["xs-a4"])
	ref := r.p.byName["xs-a4"].ref
	r.p.mu.Unlock()
	if e := enable(mgmt); strings.Join(e, " ") != "HOST_OFFLINE "+ref {
		t.Errorf("dead host: %v", e)
	}
}

// TestEnableHAConcurrency: 6.2 serialises enable/disable, 7.x refuses a
// second one with HA_ENABLE_IN_PROGRESS.
func TestEnableHAConcurrency(t *testing.T) {
	for _, version := range []string{scenario.Version62, scenario.Version71} {
		t.Run(version, func(t *testing.T) {
			sc := fastScenario(0.002)
			sc.Pools[0].ProductVersion = version
			r := newRPC(t, sc, "cluster-a")
			s := r.login("xs-a1")
			var wg sync.WaitGroup
			results := make([][]string, 2)
			for i := range results {
				wg.Go(func() {
					_, results[i] = r.do("xs-a1", "pool.enable_ha", s, Array(), StringMap(nil))
				})
				time.Sleep(20 * time.Millisecond)
			}
			wg.Wait()
			// Whichever call got in first enables HA; the other one waits
			// for it (6.2) or is refused at once (7.x).
			want := "HA_IS_ENABLED"
			if version == scenario.Version71 {
				want = "HA_ENABLE_IN_PROGRESS"
			}
			first, second := results[0], strings.Join(results[1], " ")
			if first != nil {
				first, second = results[1], strings.Join(results[0], " ")
			}
			if first != nil || second != want {
				t.Errorf("enable_ha results %q, want one success and %s", results, want)
			}
			if !r.p.State().HAEnabled {
				t.Error("pool HA not enabled")
			}
		})
	}
}

func TestVMHARestartPriority(t *testing.T) {
	r := newRPC(t, fastScenario(0.001), "cluster-a")
	s := r.login("xs-a1")
	vm := r.must("xs-a1", "VM.get_by_name_label", s, String("i-2-101-VM")).Elems[0]
	if _, e := r.do("xs-a1", "VM.set_ha_restart_priority", s, vm, String("2")); strings.Join(e, " ") != "INVALID_VALUE ha_restart_priority 2" {
		t.Errorf("bad priority: %v", e)
	}
	r.must("xs-a1", "VM.set_ha_restart_priority", s, vm, String("restart"))
	if v := r.must("xs-a1", "VM.get_ha_always_run", s, vm); !v.Bool {
		t.Error("ha_always_run not set on a running VM")
	}
	if err := r.p.SetVMHARestartPriority("i-2-101-VM", ""); err != nil {
		t.Fatal(err)
	}
	if v := r.must("xs-a1", "VM.get_ha_restart_priority", s, vm); v.Str != "" {
		t.Errorf("priority %q", v.Str)
	}
}

// TestLocalSessionOnSlave: slave-local sessions work on slaves for
// emergency calls; ordinary reads go through the master.
func TestLocalSessionOnSlave(t *testing.T) {
	r := newRPC(t, fastScenario(0.001), "cluster-a")
	local := r.must("xs-a3", "session.slave_local_login_with_password", String("root"), String("xenroot"))
	pool := r.must("xs-a3", "pool.get_all", local).Elems[0]
	master := r.must("xs-a3", "pool.get_master", local, pool)
	if addr := r.must("xs-a3", "host.get_address", local, master); addr.Str != "127.0.1.1" {
		t.Errorf("master address via the slave: %q", addr.Str)
	}
	if _, e := r.do("xs-a3", "host.emergency_ha_disable", local); strings.Join(e, " ") != "HA_NOT_ENABLED" {
		t.Errorf("emergency_ha_disable on an unarmed host: %v", e)
	}
	if _, e := r.do("xs-a3", "pool.enable_ha", local, Array(), StringMap(nil)); strings.Join(e, " ") != "HOST_IS_SLAVE 127.0.1.1" {
		t.Errorf("enable_ha on a slave: %v", e)
	}
	r.must("xs-a3", "session.local_logout", local)
	// The reference is now unknown to the master's database too.
	if _, e := r.do("xs-a3", "pool.get_all", local); strings.Join(e, " ") != "SESSION_INVALID "+local.Str {
		t.Errorf("after local_logout: %v", e)
	}
}

// TestEmergencyTransitionWithoutHA is the manual recovery of a pool without
// HA whose master died: promote a slave through a slave-local session, then
// recover_slaves; the old master demotes itself when it comes back. A slave
// restarted meanwhile sits in emergency mode asking the dead master until
// recover_slaves points it at the new one.
func TestEmergencyTransitionWithoutHA(t *testing.T) {
	sc := fastScenario(0.002)
	// Long enough that a rejoin scheduled by mistake would still be
	// pending when it is checked.
	sc.Durations.RejoinDelay = scenario.Duration(time.Hour)
	r := newRPC(t, sc, "cluster-a")
	if err := r.p.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	if err := r.p.PowerOff("xs-a4"); err != nil {
		t.Fatal(err)
	}
	if err := r.p.PowerOn("xs-a4"); err != nil {
		t.Fatal(err)
	}
	waitState(t, r.p, "xs-a4 in emergency mode", func(st PoolState) bool {
		return st.Hosts[3].Role == RoleEmergency && st.Hosts[3].EmergencyError == "INTERNAL_ERROR"
	})
	local := r.must("xs-a2", "session.slave_local_login_with_password", String("root"), String("xenroot"))
	r.must("xs-a2", "pool.emergency_transition_to_master", local)
	waitState(t, r.p, "xs-a2 master", func(st PoolState) bool {
		return st.Master == "xs-a2" && st.Hosts[1].Role == RoleMaster
	})
	s := r.login("xs-a2")
	if _, e := r.do("xs-a3", "session.login_with_password", String("root"), String("xenroot")); strings.Join(e, " ") != "HOST_IS_SLAVE 127.0.1.1" {
		t.Errorf("other slave before recover_slaves: %v", e)
	}
	// The restarted slave still asks the dead master: it does not follow
	// the new one by itself.
	r.p.mu.Lock()
	rejoining := r.p.byName["xs-a4"].pendingJoin
	r.p.mu.Unlock()
	if _, e := r.do("xs-a4", "session.login_with_password", String("root"), String("xenroot")); len(e) != 2 || e[0] != "INTERNAL_ERROR" ||
		!strings.HasSuffix(e[1], "connecting to 127.0.1.1") || rejoining {
		t.Errorf("emergency-mode slave before recover_slaves: %v (rejoin pending: %v), want INTERNAL_ERROR connecting to 127.0.1.1", e, rejoining)
	}
	reset := r.must("xs-a2", "pool.recover_slaves", s)
	if len(reset.Elems) != 2 {
		t.Errorf("recover_slaves reset %d hosts", len(reset.Elems))
	}
	waitState(t, r.p, "slaves following xs-a2", func(st PoolState) bool {
		return st.Hosts[2].BelievedMaster == "127.0.1.2" && st.Hosts[3].BelievedMaster == "127.0.1.2" &&
			st.Hosts[2].Role == RoleSlave && st.Hosts[2].Live && st.Hosts[3].Live
	})
	if err := r.p.PowerOn("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitState(t, r.p, "old master demoted", func(st PoolState) bool {
		return st.Hosts[0].Role == RoleSlave && st.Hosts[0].BelievedMaster == "127.0.1.2" && st.Hosts[0].Live
	})
	if _, e := r.do("xs-a1", "session.login_with_password", String("root"), String("xenroot")); strings.Join(e, " ") != "HOST_IS_SLAVE 127.0.1.2" {
		t.Errorf("old master: %v", e)
	}
}

func waitState(t *testing.T, p *Pool, what string, cond func(PoolState) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := p.State()
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestElectionRestartsProtectedVMs: the master elected after a failure
// marks the old one dead; its protected VMs restart, the others halt.
func TestElectionRestartsProtectedVMs(t *testing.T) {
	sc := fastScenario(0.002)
	sc.Pools[0].HAEnabled = true
	r := newRPC(t, sc, "cluster-a")
	if err := r.p.SetVMHARestartPriority("i-2-101-VM", "restart"); err != nil {
		t.Fatal(err)
	}
	if err := r.p.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	var master string
	waitState(t, r.p, "a new master", func(st PoolState) bool {
		master = st.Master
		for _, h := range st.Hosts {
			if h.Name == master && h.Role == RoleMaster && master != "xs-a1" {
				return true
			}
		}
		return false
	})
	s := r.login(master)
	masterRef := r.must(master, "host.get_by_name_label", s, String(master)).Elems[0].Str
	for _, tc := range []struct{ vm, power, residentOn string }{
		{"i-2-101-VM", "Running", masterRef},
		{"i-2-102-VM", "Halted", NullRef},
	} {
		vm := r.must(master, "VM.get_by_name_label", s, String(tc.vm)).Elems[0]
		rec := r.must(master, "VM.get_record", s, vm)
		power, _ := rec.Get("power_state")
		on, _ := rec.Get("resident_on")
		if power.Str != tc.power || on.Str != tc.residentOn {
			t.Errorf("%s: %s on %s, want %s on %s", tc.vm, power.Str, on.Str, tc.power, tc.residentOn)
		}
	}
}

// TestHostEnableDisable: host.disable and host.enable are forwarded to the
// host (message_forwarding.ml at XS62, do_op_on): a host the master holds
// live but cannot reach answers CANNOT_CONTACT_HOST, one it holds dead
// HOST_OFFLINE, and either keeps its state. An administrator's host.disable
// is held in xapi's memory only (xapi_host.ml, user_requested_host_disable):
// a reboot or an xapi restart forgets it and the host re-enables itself.
func TestHostEnableDisable(t *testing.T) {
	sc := fastScenario(0.002)
	sc.Durations.HostAssumedDead = scenario.Duration(300 * time.Second)
	r := newRPC(t, sc, "cluster-a")
	s := r.login("xs-a1")
	ref := func(name string) Value { return r.must("xs-a1", "host.get_by_name_label", s, String(name)).Elems[0] }
	enabled := func(name string) bool { return r.must("xs-a1", "host.get_enabled", s, ref(name)).Bool }

	r.must("xs-a1", "host.disable", s, ref("xs-a2"))
	if enabled("xs-a2") {
		t.Error("xs-a2 enabled after host.disable")
	}
	r.must("xs-a1", "host.enable", s, ref("xs-a2"))
	if !enabled("xs-a2") {
		t.Error("xs-a2 disabled after host.enable")
	}

	if err := r.p.PowerOff("xs-a4"); err != nil {
		t.Fatal(err)
	}
	check := func(want string) {
		t.Helper()
		for _, method := range []string{"host.disable", "host.enable"} {
			if _, e := r.do("xs-a1", method, s, ref("xs-a4")); strings.Join(e, " ") != want+" "+ref("xs-a4").Str {
				t.Errorf("%s on a powered-off host: %v, want %s", method, e, want)
			}
		}
		if !enabled("xs-a4") {
			t.Error("a failed host.disable disabled xs-a4")
		}
	}
	// Still live in the master's database: the forwarding fails.
	check("CANNOT_CONTACT_HOST")
	waitState(t, r.p, "xs-a4 declared dead", func(st PoolState) bool { return !st.Hosts[3].Live })
	check("HOST_OFFLINE")
	if err := r.p.PowerOn("xs-a4"); err != nil {
		t.Fatal(err)
	}
	waitState(t, r.p, "xs-a4 back and enabled", func(st PoolState) bool {
		return st.Hosts[3].Role == RoleSlave && st.Hosts[3].Live && st.Hosts[3].Enabled
	})

	// host.disable does not survive a reboot nor an xapi restart.
	for _, tc := range []struct {
		name  string
		cycle func(host string) error
	}{
		{"reboot", func(h string) error {
			if err := r.p.PowerOff(h); err != nil {
				return err
			}
			return r.p.PowerOn(h)
		}},
		{"xapi restart", r.p.RestartXAPI},
	} {
		r.must("xs-a1", "host.disable", s, ref("xs-a3"))
		if err := tc.cycle("xs-a3"); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		waitState(t, r.p, "xs-a3 back after "+tc.name, func(st PoolState) bool {
			return st.Hosts[2].Role == RoleSlave && st.Hosts[2].Live && st.Hosts[2].Enabled
		})
	}
	// The master's own flag goes with its xapi too.
	r.must("xs-a1", "host.disable", s, ref("xs-a1"))
	if err := r.p.RestartXAPI("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitState(t, r.p, "xs-a1 master and enabled again", func(st PoolState) bool {
		return st.Hosts[0].Role == RoleMaster && st.Hosts[0].Enabled
	})
}

// TestCloseEndsPendingCalls: closing a pool ends calls that wait inside it
// (here a 90 s enable_ha in real time) instead of leaving them behind.
func TestCloseEndsPendingCalls(t *testing.T) {
	r := newRPC(t, fastScenario(1), "cluster-a")
	s := r.login("xs-a1")
	done := make(chan []string, 1)
	go func() {
		_, e := r.do("xs-a1", "pool.enable_ha", s, Array(), StringMap(nil))
		done <- e
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.p.mu.Lock()
		op := r.p.haOp
		r.p.mu.Unlock()
		if op == "ha_enable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("enable_ha did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-done:
		if len(e) == 0 || e[0] != "INTERNAL_ERROR" {
			t.Errorf("enable_ha after Close: %v, want INTERNAL_ERROR", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("enable_ha still running after Close")
	}
	if r.p.State().HAEnabled {
		t.Error("enable_ha completed after Close")
	}
}
