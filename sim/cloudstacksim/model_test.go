package cloudstacksim

import (
	"strings"
	"testing"
	"time"
)

func allHosts(st State, cluster, state string) bool {
	n := 0
	for _, h := range st.Hosts {
		if h.Cluster != cluster {
			continue
		}
		n++
		if h.State != state {
			return false
		}
	}
	return n > 0
}

// The seed's warning: with XS62ESP1004 and pool HA off, losing the pool
// master leaves no master, CloudStack cannot reach or investigate any host
// of the cluster, and all of them go to Alert after alert.wait; no VM is
// restarted.
func TestMasterLostWithoutPoolHAPutsClusterInAlert(t *testing.T) {
	tests := []struct {
		name      string
		alertWait *int
		// Alert comes at the first check after both the ping timeout and
		// alert.wait have passed since the last ping.
		min, max  time.Duration
		stillUpAt time.Duration
	}{
		{name: "alert.wait 60", alertWait: new(60), min: 150 * time.Second, max: 155 * time.Second, stillUpAt: 149 * time.Second},
		{name: "alert.wait blank", alertWait: nil, min: 1800 * time.Second, max: 1805 * time.Second, stillUpAt: 1000 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			infra := newFakeInfra()
			opts := testOptions()
			opts.AlertWait = tc.alertWait
			s, clock := newModel(t, infra, opts)
			infra.set(powerOff, "xs-a1")
			infra.set(cutOff, "xs-a2", "xs-a3", "xs-a4")

			run(s, clock, tc.stillUpAt)
			if st := s.State(); !allHosts(st, "cluster-a", statusUp) {
				t.Fatalf("after %v hosts left Up already: %+v", tc.stillUpAt, st.Hosts)
			}
			took := tc.stillUpAt + runUntil(t, s, clock, 2*time.Hour, "cluster-a in Alert", func(st State) bool {
				return allHosts(st, "cluster-a", statusAlert)
			})
			if took < tc.min || took > tc.max {
				t.Errorf("cluster-a went to Alert after %v, want between %v and %v", took, tc.min, tc.max)
			}
			t.Logf("all hosts of cluster-a in Alert %v after the master was lost", took)

			// Alert restarts nothing, however long it lasts.
			run(s, clock, time.Hour)
			st := s.State()
			if !allHosts(st, "cluster-a", statusAlert) {
				t.Errorf("cluster-a hosts: %+v, want all Alert", st.Hosts)
			}
			if !allHosts(st, "cluster-b", statusUp) {
				t.Errorf("cluster-b hosts: %+v, want all Up", st.Hosts)
			}
			for _, name := range []string{"win-a1", "win-a4", "r-4-VM"} {
				if v := vmState(st, name); v.State != vmRunning || v.Host != "xs-a1" {
					t.Errorf("VM %s = %+v, want still Running on xs-a1 (no HA for Alert hosts)", name, v)
				}
			}
		})
	}
}

// The seed's test: pool HA elects a new master three minutes after the old
// one lost power; CloudStack then finds the old master Down through its
// neighbours, restarts the VMs whose offering offers HA on the other hosts
// and leaves the others stopped.
func TestPoweredOffMasterWithPoolHARestartsOfferHAVMs(t *testing.T) {
	infra := newFakeInfra()
	s, clock := newModel(t, infra, testOptions())

	infra.set(powerOff, "xs-a1")
	infra.set(cutOff, "xs-a2", "xs-a3", "xs-a4")
	run(s, clock, 3*time.Minute) // XenServer HA takes over
	infra.set(rejoin, "xs-a2", "xs-a3", "xs-a4")

	down := 3*time.Minute + runUntil(t, s, clock, time.Hour, "xs-a1 Down", func(st State) bool {
		return hostState(st, "xs-a1").State == statusDown
	})
	haVMs := []string{"win-a1", "win-a2", "win-a3", "r-4-VM", "s-1-VM", "v-2-VM"}
	running := down + runUntil(t, s, clock, time.Hour, "HA VMs running", func(st State) bool {
		for _, name := range haVMs {
			if v := vmState(st, name); v.State != vmRunning || v.Host == "xs-a1" {
				return false
			}
		}
		return true
	})
	t.Logf("master lost at 0s; xs-a1 Down at %v; Offer-HA VMs Running elsewhere at %v", down, running)
	if down < 3*time.Minute || down > 5*time.Minute {
		t.Errorf("xs-a1 Down after %v, want once the new master is reachable (3-5 min)", down)
	}
	if running-down < s.opts.VMStartTime {
		t.Errorf("VMs running %v after Down, faster than the VM start time %v", running-down, s.opts.VMStartTime)
	}

	run(s, clock, time.Hour)
	st := s.State()
	placed := map[string]int{}
	for _, name := range haVMs {
		v := vmState(st, name)
		if v.State != vmRunning || !strings.HasPrefix(v.Host, "xs-a") || v.Host == "xs-a1" {
			t.Errorf("HA VM %s = %+v, want Running on another host of cluster-a", name, v)
		}
		placed[v.Host]++
	}
	if len(placed) < 2 {
		t.Errorf("HA VMs all restarted on one host: %v", placed)
	}
	for _, name := range []string{"win-a4", "win-a5"} {
		if v := vmState(st, name); v.State != vmStopped || v.Host != "" {
			t.Errorf("VM %s without Offer HA = %+v, want Stopped", name, v)
		}
	}
	for _, h := range []string{"xs-a2", "xs-a3", "xs-a4"} {
		if got := hostState(st, h).State; got != statusUp {
			t.Errorf("host %s = %s, want Up", h, got)
		}
	}
	if !allHosts(st, "cluster-b", statusUp) || vmState(st, "win-b1").Host != "xs-b1" {
		t.Errorf("cluster-b changed: %+v", st)
	}

	// The old master comes back: Connecting, then Up; the VMs without HA
	// stay stopped.
	infra.set(powerOn, "xs-a1")
	runUntil(t, s, clock, 10*time.Minute, "xs-a1 Up again", func(st State) bool {
		return hostState(st, "xs-a1").State == statusUp
	})
	st = s.State()
	if v := vmState(st, "win-a4"); v.State != vmStopped {
		t.Errorf("win-a4 = %+v after the host came back, want Stopped", v)
	}
}

// The lab applies alert.wait to HA restarts of a Down host (see the package
// documentation): with alert.wait 600 the restart waits for it although the
// host is known Down much earlier.
func TestHARestartWaitsForAlertWait(t *testing.T) {
	infra := newFakeInfra()
	opts := testOptions()
	opts.AlertWait = new(600)
	s, clock := newModel(t, infra, opts)

	infra.set(powerOff, "xs-a1")
	infra.set(cutOff, "xs-a2", "xs-a3", "xs-a4")
	run(s, clock, 30*time.Second)
	infra.set(rejoin, "xs-a2", "xs-a3", "xs-a4")
	runUntil(t, s, clock, time.Hour, "xs-a1 Down", func(st State) bool {
		return hostState(st, "xs-a1").State == statusDown
	})
	// Last ping at 0s: nothing starts before 600s.
	for clock.now().Sub(time.Date(2014, 11, 20, 10, 0, 0, 0, time.UTC)) < 599*time.Second {
		run(s, clock, time.Second)
		if v := vmState(s.State(), "win-a1"); v.State != vmRunning || v.Host != "xs-a1" {
			t.Fatalf("win-a1 = %+v at %v, want HA pending until alert.wait has passed", v, clock.now())
		}
	}
	if v := vmState(s.State(), "win-a4"); v.State != vmStopped {
		t.Errorf("win-a4 = %+v, want Stopped as soon as the host is Down", v)
	}
	runUntil(t, s, clock, 10*time.Minute, "win-a1 restarted", func(st State) bool {
		v := vmState(st, "win-a1")
		return v.State == vmRunning && v.Host != "xs-a1"
	})
}

// A host cut off from management whose heartbeat still runs cannot be
// determined Down: it goes to Alert and its VMs are not restarted.
func TestIsolatedHostGoesToAlertWithoutHA(t *testing.T) {
	infra := newFakeInfra()
	opts := testOptions()
	opts.VMs = append(opts.VMs, VM{Name: "web-1", Offering: "Windows HA", Host: "xs-b2"})
	s, clock := newModel(t, infra, opts)

	infra.set(cutOff, "xs-b2")
	runUntil(t, s, clock, time.Hour, "xs-b2 Alert", func(st State) bool {
		return hostState(st, "xs-b2").State == statusAlert
	})
	run(s, clock, time.Hour)
	st := s.State()
	if got := hostState(st, "xs-b2").State; got != statusAlert {
		t.Errorf("xs-b2 = %s, want Alert", got)
	}
	if v := vmState(st, "web-1"); v.State != vmRunning || v.Host != "xs-b2" {
		t.Errorf("web-1 = %+v, want Running on xs-b2", v)
	}
	infra.set(rejoin, "xs-b2")
	runUntil(t, s, clock, 5*time.Minute, "xs-b2 Up", func(st State) bool {
		return hostState(st, "xs-b2").State == statusUp
	})
}

// A powered-off slave in a pool with a working master is Down after the
// ping timeout and its HA VMs move within the cluster.
func TestPoweredOffSlaveIsDown(t *testing.T) {
	infra := newFakeInfra()
	opts := testOptions()
	opts.VMs = append(opts.VMs, VM{Name: "web-1", Offering: "Windows HA", Host: "xs-b2"}, VM{Name: "web-2", Offering: "Windows", Host: "xs-b2"})
	s, clock := newModel(t, infra, opts)

	infra.set(powerOff, "xs-b2")
	took := runUntil(t, s, clock, time.Hour, "xs-b2 Down", func(st State) bool {
		return hostState(st, "xs-b2").State == statusDown
	})
	if took <= s.opts.PingTimeout {
		t.Errorf("Down after %v, before the ping timeout %v", took, s.opts.PingTimeout)
	}
	runUntil(t, s, clock, 10*time.Minute, "web-1 restarted", func(st State) bool {
		v := vmState(st, "web-1")
		return v.State == vmRunning && strings.HasPrefix(v.Host, "xs-b") && v.Host != "xs-b2"
	})
	if v := vmState(s.State(), "web-2"); v.State != vmStopped {
		t.Errorf("web-2 = %+v, want Stopped", v)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no key", func(o *Options) { o.APIKey = "" }, "API key"},
		{"unknown offering", func(o *Options) { o.VMs[0].Offering = "nope" }, "unknown offering"},
		{"unknown host", func(o *Options) { o.VMs[0].Host = "xs-z9" }, "unknown host"},
		{"unknown cluster", func(o *Options) { o.StoragePools[0].Cluster = "nope" }, "unknown cluster"},
		{"duplicate VM", func(o *Options) { o.VMs[1].Name = o.VMs[0].Name }, "twice"},
		{"bad type", func(o *Options) { o.VMs[0].Type = "Desktop" }, "unknown type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			tc.edit(&o)
			_, err := New(newFakeInfra(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New() error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
