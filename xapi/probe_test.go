package xapi

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"xsha/config"
)

// TestProbeDue pins which members a watcher probes: everything while it
// has no session on the master, otherwise only members whose view changed,
// that the master holds not live or that did not answer as a slave, plus
// one steady member per background interval; never the session's master.
func TestProbeDue(t *testing.T) {
	const (
		m  = "10.0.0.1"
		s2 = "10.0.0.2"
		s3 = "10.0.0.3"
		s4 = "10.0.0.4"
	)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	view := func(mut func(*Snapshot)) *Snapshot {
		v := &Snapshot{Pool: "p", PoolUUID: "pool", MasterUUID: "u1"}
		for i, a := range []string{m, s2, s3, s4} {
			v.Hosts = append(v.Hosts, Host{UUID: "u" + string(rune('1'+i)), Name: "h" + string(rune('1'+i)), Address: a,
				Live: true, Enabled: true, IsMaster: i == 0})
		}
		if mut != nil {
			mut(v)
		}
		return v
	}
	slave := func(at time.Duration) Probe { return Probe{Role: RoleSlave, At: now.Add(-at)} }
	steadyProbes := func() map[string]Probe {
		return map[string]Probe{m: {Role: RoleMaster, At: now}, s2: slave(3 * time.Minute), s3: slave(time.Minute), s4: slave(2 * time.Minute)}
	}
	for _, tc := range []struct {
		name       string
		up         bool
		view       *Snapshot // the current view; the probes were taken under the steady one
		probes     map[string]Probe
		background time.Duration // since the last background probe
		want       []string
	}{
		{name: "no session: every address", up: false, view: view(nil), probes: steadyProbes(), want: []string{m, s2, s3, s4}},
		{name: "steady, background not due: nothing", up: true, view: view(nil), probes: steadyProbes(), background: time.Minute},
		{name: "steady, background due: the slave probed longest ago", up: true, view: view(nil), probes: steadyProbes(), background: 2 * time.Minute, want: []string{s2}},
		{name: "never probed", up: true, view: view(nil), background: time.Minute, probes: map[string]Probe{m: {Role: RoleMaster, At: now}}, want: []string{s2, s3, s4}},
		{name: "a member went not live", up: true, background: time.Minute, probes: steadyProbes(),
			view: view(func(v *Snapshot) { v.Hosts[2].Live = false }), want: []string{s3}},
		{name: "a member disabled", up: true, background: time.Minute, probes: steadyProbes(),
			view: view(func(v *Snapshot) { v.Hosts[3].Enabled = false }), want: []string{s4}},
		{name: "pool HA switched on: every member but the master", up: true, background: time.Minute, probes: steadyProbes(),
			view: view(func(v *Snapshot) { v.HAEnabled = true }), want: []string{s2, s3, s4}},
		{name: "a member in emergency mode stays watched", up: true, view: view(nil), background: time.Minute,
			probes: func() map[string]Probe {
				p := steadyProbes()
				p[s2] = Probe{Role: RoleEmergency, At: now}
				return p
			}(), want: []string{s2}},
		{name: "an unreachable member and one refusing the credentials stay watched", up: true, view: view(nil), background: time.Minute,
			probes: func() map[string]Probe {
				p := steadyProbes()
				p[s3] = Probe{Role: RoleUnreachable, At: now}
				p[s4] = Probe{Error: []string{CodeAuthFailed}, At: now}
				return p
			}(), want: []string{s3, s4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steady := view(nil)
			w := &Watcher{
				pool:     config.Pool{Hosts: []string{m}, BackgroundProbeInterval: model.Duration(2 * time.Minute)},
				probes:   tc.probes,
				probedAs: map[string]memberView{},
				view:     tc.view, up: tc.up, masterAddr: m,
				lastBackgroundProbe: now.Add(-tc.background),
			}
			for _, h := range steady.Hosts {
				if _, ok := tc.probes[h.Address]; ok {
					w.probedAs[h.Address] = viewOf(steady, h)
				}
			}
			got := w.probeDueLocked(now)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("due = %v, want %v", got, tc.want)
			}
			// What was just probed is not due again until something changes.
			if tc.up && len(got) > 0 {
				for _, a := range got {
					w.probes[a] = Probe{Role: RoleSlave, At: now}
					if !tc.view.Hosts[slices.IndexFunc(tc.view.Hosts, func(h Host) bool { return h.Address == a })].Live {
						return // a member not live stays due
					}
				}
				if again := w.probeDueLocked(now); len(again) != 0 {
					t.Errorf("due again right after: %v", again)
				}
			}
		})
	}
}
