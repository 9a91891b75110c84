package xapi

import (
	"context"
	"reflect"
	"testing"

	xenapi "github.com/terra-farm/go-xen-api-client"

	"xsha/config"
	"xsha/sim/lab"
	"xsha/sim/scenario"
)

// eventConflicts is how many event.from calls the lab's pool ended because
// another one on the same session returned first (real 6.2 behaviour).
func eventConflicts(t *testing.T, l *lab.Lab, pool string) uint64 {
	t.Helper()
	p, ok := l.Pool(pool)
	if !ok {
		t.Fatalf("no pool %s in the lab", pool)
	}
	return p.EventConflicts()
}

func labCalls(l *lab.Lab, method string) uint64 { return l.Stats().Calls[method] }

// haScenario is the default scenario at 1/50 of real time with pool HA on
// in cluster-a.
func haScenario() *scenario.Scenario {
	sc := scenario.Default()
	sc.TimeScale = 0.02
	sc.Pools[0].HAEnabled = true
	return sc
}

// TestWatcherOneEventFromPerSession: XenServer 6.2 ends an event.from with
// SESSION_INVALID when another one on the same session returns first, so
// the watcher must never have two in flight on one session: not when it
// abandons a long poll (network loss), not when the master fails over, and
// not when a configuration reload replaces the watcher while its long poll
// is still in flight in xapi.
func TestWatcherOneEventFromPerSession(t *testing.T) {
	l, pc, log := startLab(t, haScenario(), "cluster-a", "127.0.1.1", "127.0.1.2")
	w := runWatcher(t, pc, WatcherOptions{Logger: log})
	waitFor(t, "the pool read", func() bool { return w.Snapshot().Up && w.Snapshot().HAEnabled })
	polls := labCalls(l, "event.from")
	waitFor(t, "a long poll in flight", func() bool { return labCalls(l, "event.from") > polls })

	// The master's network goes away with a long poll in flight: the
	// watcher abandons it (probe or call timeout) and must not poll that
	// session again once the network is back.
	w.mu.Lock()
	old := w.current.s.ref
	w.mu.Unlock()
	if err := l.Isolate("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool down", func() bool { return !w.Snapshot().Up })
	if err := l.Reconnect("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new session", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.up && w.current != nil && w.current.s.ref != old
	})
	polls = labCalls(l, "event.from")
	waitFor(t, "its long poll", func() bool { return labCalls(l, "event.from") > polls })

	// Failover.
	if err := l.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new master followed", func() bool {
		s := w.Snapshot()
		m, ok := s.Master()
		return s.Up && ok && m.Name != "xs-a1" && s.MasterChanges == 1
	})
	if err := l.SetVMHARestartPriority("i-2-101-VM", "restart"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a change on the new master", func() bool { return w.Snapshot().VMsHAProtected == 1 })

	// Reload: the exporter cancels the watcher and starts another for the
	// same pool at once (exporter.Pools.Apply); xapi still runs the old
	// watcher's long poll until its timeout.
	for range 3 {
		ctx, stop := context.WithCancel(context.Background())
		w2 := NewWatcher(pc, WatcherOptions{Logger: log})
		done := make(chan struct{})
		go func() { w2.Run(ctx); close(done) }()
		waitFor(t, "the reloaded watcher's read", func() bool { return w2.Snapshot().Up })
		polls := labCalls(l, "event.from")
		waitFor(t, "its long poll", func() bool { return labCalls(l, "event.from") > polls })
		stop()
		<-done
	}
	waitFor(t, "the first watcher still current", func() bool { return w.Snapshot().Up })
	if n := eventConflicts(t, l, "cluster-a"); n != 0 {
		t.Errorf("%d event.from calls ended by another on the same session", n)
	}
}

// TestCacheFromEventsEqualsFullRead: a snapshot built from event.from with
// the empty token equals the one built from a full read, on 6.2 (where
// every object comes as an add and a mod, CA-122248) and on 7.x: nothing
// is counted twice.
func TestCacheFromEventsEqualsFullRead(t *testing.T) {
	for _, version := range []string{scenario.Version62, scenario.Version71} {
		t.Run(version, func(t *testing.T) {
			sc := scenario.Default()
			sc.TimeScale = 0.02
			sc.Pools[0].ProductVersion = version
			_, pc, _ := startLab(t, sc, "cluster-a")
			ctx := context.Background()
			d := newDialer(pc, nil)
			defer d.close()
			s, err := d.loginAt(ctx, "127.0.1.1")
			if err != nil {
				t.Fatal(err)
			}
			defer d.logout(ctx, s) //nolint:errcheck // test cleanup
			full := newCache()
			if err := full.load(ctx, s); err != nil {
				t.Fatal(err)
			}
			ev, err := d.dial(s.addr(), d.events)
			if err != nil {
				t.Fatal(err)
			}
			b, err := eventFrom(ctx, ev, s.ref, full.classes(), "", 0)
			if err != nil {
				t.Fatal(err)
			}
			ops := map[string]int{}
			for _, e := range b.events {
				ops[e.operation]++
			}
			if version == scenario.Version62 && ops["mod"] != ops["add"] {
				t.Errorf("6.2 sent %d adds and %d mods for new objects, want as many", ops["add"], ops["mod"])
			}
			fromEvents := cacheLike(full)
			if err := fromEvents.apply(b.events); err != nil {
				t.Fatal(err)
			}
			want, err := full.build(pc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fromEvents.build(pc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("snapshot from events:\n%+v\nfrom a full read:\n%+v", got, want)
			}
		})
	}
}

// cacheLike returns an empty cache subscribed to the classes of c.
func cacheLike(c *cache) *cache {
	n := newCache()
	byClass := map[string]store{}
	for _, st := range n.common() {
		byClass[st.class()] = st
	}
	for _, st := range []store{n.poolPatches, n.hostPatches, n.poolUpdates} {
		byClass[st.class()] = st
	}
	n.stores = nil
	for _, st := range c.stores {
		n.stores = append(n.stores, byClass[st.class()])
	}
	return n
}

// TestWatcherMissesNoChangeOverRestart: xapi keeps its generation count
// over a restart and a failover (so an old token stays "current") but
// forgets its sessions. The watcher must read the pool again on the new
// session rather than trust its token: a change made as soon as the master
// answers again is seen, and every new session starts with event.inject
// and a full read.
func TestWatcherMissesNoChangeOverRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   *scenario.Scenario
	}{
		{"xapi restart without HA", nil},
		{"failover with HA", haScenario()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, pc, log := startLab(t, tc.sc, "cluster-a", "127.0.1.1", "127.0.1.2")
			w := runWatcher(t, pc, WatcherOptions{Logger: log})
			waitFor(t, "the pool read", func() bool { return w.Snapshot().Up })
			w.mu.Lock()
			old := w.current.s.ref
			w.mu.Unlock()
			injects := labCalls(l, "event.inject")
			reads := labCalls(l, "VM.get_all_records")
			if err := l.PowerOff("xs-a1"); err != nil {
				t.Fatal(err)
			}
			if tc.sc == nil {
				waitFor(t, "the pool down", func() bool { return !w.Snapshot().Up })
				if err := l.PowerOn("xs-a1"); err != nil {
					t.Fatal(err)
				}
			}
			// A change as soon as a master answers, racing the watcher.
			waitFor(t, "a master answering", func() bool { return changePriority(pc, "i-2-101-VM", "restart") == nil })
			waitFor(t, "the change seen on a new session", func() bool {
				s := w.Snapshot()
				w.mu.Lock()
				defer w.mu.Unlock()
				return s.Up && s.VMsHAProtected == 1 && w.current != nil && w.current.s.ref != old
			})
			if labCalls(l, "event.inject") == injects || labCalls(l, "VM.get_all_records") == reads {
				t.Error("the new session did not start with event.inject and a full read")
			}
		})
	}
}

// changePriority sets a VM's ha_restart_priority through whichever
// configured host is master, as another XAPI client would.
func changePriority(pc config.Pool, vm, priority string) error {
	ctx := context.Background()
	d := newDialer(pc, nil)
	defer d.close()
	var last error
	for _, addr := range pc.Hosts {
		s, err := d.loginAt(ctx, addr)
		if err != nil {
			last = err
			continue
		}
		defer d.logout(ctx, s) //nolint:errcheck // test helper
		return s.c.call(ctx, "VM.set_ha_restart_priority", 0, func(api *xenapi.Client) error {
			vms, err := api.VM.GetByNameLabel(s.ref, vm)
			if err != nil {
				return err
			}
			return api.VM.SetHaRestartPriority(s.ref, vms[0], priority)
		})
	}
	return last
}
