package lab

import (
	"fmt"
	"testing"
	"time"

	"xsha/sim/scenario"
	"xsha/sim/xapisim"
)

// returningLab starts the lab with pool HA on in cluster-b, whose
// returning_host behaviour is mode, and loses xs-b1 (the master) until a
// new master serves.
func returningLab(t *testing.T, mode scenario.ReturningHost) (*Lab, string) {
	t.Helper()
	sc := haScenario(0.01)
	sc.Pools[1].HAEnabled = true
	sc.Pools[1].ReturningHost = mode
	l := startLab(t, Options{Scenario: sc})
	if err := l.PowerOff("xs-b1"); err != nil {
		t.Fatal(err)
	}
	var master string
	waitFor(t, "a new master", 20*time.Second, func() (bool, string) {
		b := poolState(l, "cluster-b")
		master = b.Master
		return b.Master != "xs-b1" && hostState(l, b.Master).Role == xapisim.RoleMaster, describeHosts(b)
	})
	return l, master
}

// TestReturningOldMaster: an old master powered back on while pool HA is
// on. stuck (the seed's observation) leaves it in emergency mode; in
// self_rejoin (xapi_ha.ml at XS62: on_server_restart starts xhad, which
// joins the liveset; ha_propose_master is refused and on_master_failure
// makes it a slave of the liveset's master) it comes back a live, armed
// slave by itself and pool HA stays on.
func TestReturningOldMaster(t *testing.T) {
	for _, mode := range []scenario.ReturningHost{scenario.ReturningHostStuck, scenario.ReturningHostSelfRejoin} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			l, master := returningLab(t, mode)
			if got := poolState(l, "cluster-b").ReturningHost; got != string(mode) {
				t.Errorf("state returning_host %q, want %q", got, mode)
			}
			if err := l.PowerOn("xs-b1"); err != nil {
				t.Fatal(err)
			}
			if mode == scenario.ReturningHostStuck {
				waitFor(t, "xs-b1 in emergency mode", 20*time.Second, func() (bool, string) {
					h := hostState(l, "xs-b1")
					return h.Role == xapisim.RoleEmergency, fmt.Sprintf("%+v", h)
				})
				if h := hostState(l, "xs-b1"); h.EmergencyError != scenario.ErrHeartbeatDaemonStartupFailed || !h.HAArmed {
					t.Errorf("stuck old master: %+v", h)
				}
				return
			}
			waitFor(t, "xs-b1 a live slave", 20*time.Second, func() (bool, string) {
				h := hostState(l, "xs-b1")
				return h.Role == xapisim.RoleSlave && h.Live && h.Enabled, fmt.Sprintf("%+v", h)
			})
			h := hostState(l, "xs-b1")
			if !h.HAArmed || h.BelievedMaster != hostState(l, master).Address {
				t.Errorf("rejoined old master: armed=%v follows %s, want armed following %s", h.HAArmed, h.BelievedMaster, master)
			}
			b := poolState(l, "cluster-b")
			if !b.HAEnabled || b.Master != master {
				t.Errorf("after the rejoin: %s", describeHosts(b))
			}
			_, err := client(t, l, "xs-b1").Session.LoginWithPassword("root", "xenroot", "", "")
			if code, addr := errCode(err); code != "HOST_IS_SLAVE" || addr != hostState(l, master).Address {
				t.Errorf("login on the rejoined old master: %v", err)
			}
			// It is an armed liveset member again: emergency_ha_disable
			// would disarm a healthy host, so the product must not call
			// it. A clean disable_ha disarms it with the others.
			if err := l.DisablePoolHA("cluster-b"); err != nil {
				t.Fatal(err)
			}
			if h := hostState(l, "xs-b1"); h.HAArmed || !h.Live {
				t.Errorf("after disable_ha: %+v", h)
			}
		})
	}
}

// TestReturningSlave: a slave powered back on while pool HA is on. stuck
// keeps it answering HOST_IS_SLAVE but not live until pool HA is disabled
// (TestReturningSlaveWaitsForPoolHADisable); self_rejoin lets its daemon
// join the running liveset and the host rejoin live.
func TestReturningSlave(t *testing.T) {
	t.Parallel()
	sc := haScenario(0.01)
	sc.Pools[0].HAEnabled = true
	sc.Pools[0].ReturningHost = scenario.ReturningHostSelfRejoin
	l := startLab(t, Options{Scenario: sc})
	if err := l.PowerOff("xs-a3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-a3 declared dead", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-a3")
		return !h.Live, fmt.Sprintf("%+v", h)
	})
	if err := l.PowerOn("xs-a3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-a3 live", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-a3")
		return h.Role == xapisim.RoleSlave && h.Live && h.Enabled && h.HAArmed, fmt.Sprintf("%+v", h)
	})
	if !poolState(l, "cluster-a").HAEnabled {
		t.Error("pool HA off after the rejoin")
	}
}

// TestRetryingHostDisarmsItself: in self_rejoin an old master that cannot
// reach the statefile retries xhad's start-up every 10 s in emergency mode
// (HA_HOST_CANNOT_ACCESS_STATEFILE); once pool HA is disabled the master
// confirms it and the host disarms itself and rejoins as a slave, with no
// host.emergency_ha_disable (xapi_ha.ml at XS62, on_server_restart). In
// stuck it stays in emergency mode after the disable.
func TestRetryingHostDisarmsItself(t *testing.T) {
	for _, mode := range []scenario.ReturningHost{scenario.ReturningHostStuck, scenario.ReturningHostSelfRejoin} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			l, master := returningLab(t, mode)
			if err := l.UnplugHeartbeatSR("xs-b1"); err != nil {
				t.Fatal(err)
			}
			if err := l.PowerOn("xs-b1"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "xs-b1 in emergency mode", 20*time.Second, func() (bool, string) {
				h := hostState(l, "xs-b1")
				return h.Role == xapisim.RoleEmergency && h.EmergencyError == scenario.ErrHostCannotAccessStatefile, fmt.Sprintf("%+v", h)
			})
			if err := l.DisablePoolHA("cluster-b"); err != nil {
				t.Fatal(err)
			}
			if mode == scenario.ReturningHostStuck {
				if h := hostState(l, "xs-b1"); h.Role != xapisim.RoleEmergency || !h.HAArmed {
					t.Errorf("stuck host after disable_ha: %+v", h)
				}
				return
			}
			waitFor(t, "xs-b1 a live slave", 20*time.Second, func() (bool, string) {
				h := hostState(l, "xs-b1")
				return h.Role == xapisim.RoleSlave && h.Live && !h.HAArmed, fmt.Sprintf("%+v", h)
			})
			if b := poolState(l, "cluster-b"); b.Master != master {
				t.Errorf("master changed to %s", b.Master)
			}
			// Its emergency_ha_disable now answers HA_NOT_ENABLED: done.
			c := client(t, l, "xs-b1")
			local, err := c.Session.SlaveLocalLoginWithPassword("root", "xenroot")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.APICall("host.emergency_ha_disable", string(local)); xenCodeOf(err) != "HA_NOT_ENABLED" {
				t.Errorf("emergency_ha_disable on the rejoined host: %v, want HA_NOT_ENABLED", err)
			}
		})
	}
}
