package xapi

import (
	"testing"

	"xsha/sim/lab"
)

// loginsOn counts the session.login_with_password calls the lab served on
// each host of pool.
func loginsOn(l *lab.Lab, pool string) map[string]uint64 {
	out := map[string]uint64{}
	for _, h := range l.Stats().Hosts {
		if h.Pool == pool {
			out[h.Name] = h.Calls["session.login_with_password"]
		}
	}
	return out
}

// TestWatcherProbesOnlyOnChange: once every member's role is known, a
// watcher whose background interval has not come probes nobody (not the
// master its session is on, not the live slaves) over several event.from
// rounds; a slave losing power is then probed because the master's view of
// it changes, and shows as unreachable.
func TestWatcherProbesOnlyOnChange(t *testing.T) {
	l, pc, log := startLab(t, haScenario(), "cluster-a")
	w := runWatcher(t, pc, WatcherOptions{Logger: log})
	roles := func() map[string]Role {
		out := map[string]Role{}
		for _, h := range w.Snapshot().Hosts {
			out[h.Name] = h.Probe.Role
		}
		return out
	}
	waitFor(t, "every member's role", func() bool {
		r := roles()
		return r["xs-a1"] == RoleMaster && r["xs-a2"] == RoleSlave && r["xs-a3"] == RoleSlave && r["xs-a4"] == RoleSlave
	})
	before := loginsOn(l, "cluster-a")
	ev := labCalls(l, "event.from")
	// The event timeout is 1 s and the probe interval 200 ms: three
	// event.from rounds span more than ten probe ticks.
	waitFor(t, "three event.from rounds", func() bool { return labCalls(l, "event.from") >= ev+3 })
	after := loginsOn(l, "cluster-a")
	for h, n := range after {
		if n != before[h] {
			t.Errorf("%s: %d logins at steady state, want none", h, n-before[h])
		}
	}
	if r := roles(); r["xs-a1"] != RoleMaster {
		t.Errorf("master's role from its session = %q, want master", r["xs-a1"])
	}

	if err := l.PowerOff("xs-a3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-a3 unreachable", func() bool { return roles()["xs-a3"] == RoleUnreachable })
	if got := loginsOn(l, "cluster-a")["xs-a1"]; got != before["xs-a1"] {
		t.Errorf("the master was probed %d times; its session says it is master", got-before["xs-a1"])
	}
}
