package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"xsha/sim/scenario"
)

// The lab runs ten times faster than real XenServer, and so do the alerting
// rules (`for: 5m` becomes 30s): the timeline is the one real pools would see.
const (
	e2eTimeScale = 0.1
	e2eRuleScale = e2eTimeScale
	e2eInterval  = time.Second
	// stepTimeout bounds each wait; every step takes well under a minute.
	stepTimeout = 4 * time.Minute
)

const e2ePolicy = `dry_run: false
actions:
  enable_pool_ha:
    alerts: [XenServerPoolHADisabled]
    pools: [cluster-a, cluster-b]
  clear_emergency_mode:
    alerts: [XenServerHostEmergencyMode]
    pools: [cluster-a, cluster-b]
  rejoin_host:
    alerts: [XenServerHostCannotRejoin]
    pools: [cluster-a, cluster-b]
cooldown: 2s
max_attempts_per_hour: 20
backoff: 2s
poll_interval: 250ms
step_timeout: 3m
`

// e2eHeldPolicy is e2ePolicy with cluster-b on hold.
const e2eHeldPolicy = e2ePolicy + `holds:
  pools: [cluster-b]
`

const e2eDryRunPolicy = `dry_run: true
actions:
  enable_pool_ha:
    alerts: [XenServerPoolHADisabled]
    pools: [cluster-a, cluster-b]
cooldown: 2s
max_attempts_per_hour: 20
poll_interval: 250ms
`

// TestClosedLoop runs the whole chain, exporter → Prometheus → Alertmanager
// → remediator → XAPI, against the lab, and checks that it heals pools by
// itself, leaves a held pool alone and changes nothing in dry-run.
//
// The two pools take the two readings of a host that returns while pool HA
// is on: cluster-a's old master stays in emergency mode, as the seed saw on
// XenServer 6.2, and cluster-b's rejoins by itself, as xen-api's code reads
// (sim/scenario.ReturningHost). The remediator must recover the first and
// leave the second alone.
func TestClosedLoop(t *testing.T) {
	if os.Getenv("XSHA_E2E") == "" {
		t.Skip("end-to-end test: run with `make e2e` (sets XSHA_E2E=1)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	sc := scenario.Default()
	for i := range sc.Pools {
		sc.Pools[i].ReturningHost = map[string]scenario.ReturningHost{
			"cluster-a": scenario.ReturningHostStuck,
			"cluster-b": scenario.ReturningHostSelfRejoin,
		}[sc.Pools[i].Name]
	}
	s, err := Start(ctx, Options{Scenario: sc, TimeScale: e2eTimeScale, RuleScale: e2eRuleScale, Interval: e2eInterval, Policy: e2eHeldPolicy})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer func() {
		if t.Failed() {
			t.Log(s.Logs())
		}
	}()
	// The timeline of everything that happens goes to the test log.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var tlOut strings.Builder
	tl := NewTimeline(s, &tlOut, e2eTimeScale)
	watched := make(chan struct{})
	go func() { tl.Watch(watchCtx); close(watched) }()
	defer func() {
		stopWatch()
		<-watched
		t.Logf("timeline (minutes:seconds at real XenServer speed):\n%s", tlOut.String())
	}()

	start := time.Now()
	lab := func(d time.Duration) string { // real elapsed, and what it stands for on a real pool
		return fmt.Sprintf("%s (%s at real XenServer speed)", d.Round(100*time.Millisecond), (time.Duration(float64(d) / e2eTimeScale)).Round(time.Second))
	}

	// 1. The lab starts as the seed's pools do after XS62ESP1004: pool HA
	// off. cluster-a is healed without anyone acting; cluster-b is on hold.
	waitFor(ctx, t, "pool HA enabled on cluster-a by the remediator", func() (bool, string) {
		st, err := s.State(ctx)
		if err != nil {
			return false, err.Error()
		}
		return poolHA(st, "cluster-a"), "cluster-a ha_enabled=false"
	})
	t.Logf("cluster-a: pool HA off at start, enabled after %s", lab(time.Since(start)))
	waitFor(ctx, t, "the remediator skipping held cluster-b", func() (bool, string) {
		acts, err := s.Actions(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, a := range acts {
			if a.Pool == "cluster-b" && a.State == "skipped" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("actions: %+v", acts)
	})
	if st, err := s.State(ctx); err != nil || poolHA(st, "cluster-b") {
		t.Fatalf("held pool cluster-b was changed: ha_enabled=%v (%v)", poolHA(st, "cluster-b"), err)
	}
	for _, a := range mustActions(ctx, t, s) {
		if a.Pool == "cluster-b" && a.Wrote {
			t.Fatalf("the remediator wrote to held pool cluster-b: %+v", a)
		}
	}

	// 2. Pool HA switched off behind the system's back comes back on.
	t0 := time.Now()
	if err := s.Control(ctx, "pools/cluster-a/ha-disable", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "pool HA off on cluster-a", func() (bool, string) {
		st, err := s.State(ctx)
		return err == nil && !poolHA(st, "cluster-a"), "still on"
	})
	waitFor(ctx, t, "pool HA back on on cluster-a", func() (bool, string) {
		st, err := s.State(ctx)
		return err == nil && poolHA(st, "cluster-a"), "still off"
	})
	t.Logf("cluster-a: pool HA switched off out of band, back on after %s", lab(time.Since(t0)))

	// The hold on cluster-b is lifted: its pool HA comes on too.
	if err := s.StartRemediator(ctx, e2ePolicy); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "pool HA enabled on cluster-b once its hold is lifted", func() (bool, string) {
		st, err := s.State(ctx)
		return err == nil && poolHA(st, "cluster-b"), "cluster-b ha_enabled=false"
	})

	// 3. Master power loss with pool HA on, in both pools: new masters are
	// elected and the exporter follows them.
	t0 = time.Now()
	for _, h := range []string{"xs-a1", "xs-b1"} {
		if err := s.Control(ctx, "hosts/"+h+"/power-off", nil); err != nil {
			t.Fatal(err)
		}
	}
	var newMaster string
	waitFor(ctx, t, "a new master on cluster-a", func() (bool, string) {
		st, err := s.State(ctx)
		if err != nil {
			return false, err.Error()
		}
		newMaster = poolMaster(st, "cluster-a")
		return newMaster != "" && newMaster != "xs-a1", "master " + newMaster
	})
	t.Logf("cluster-a: master xs-a1 lost, %s elected after %s", newMaster, lab(time.Since(t0)))
	waitFor(ctx, t, "Prometheus seeing the new master", func() (bool, string) {
		r, err := s.Query(ctx, `xenserver_pool_master_info{pool="cluster-a"}`)
		if err != nil || len(r) != 1 {
			return false, fmt.Sprintf("%v %v", r, err)
		}
		return r[0].Metric["host"] == newMaster, "master_info host=" + r[0].Metric["host"]
	})
	waitFor(ctx, t, "the master change counted", func() (bool, string) {
		r, err := s.Query(ctx, `xenserver_pool_master_changes_total{pool="cluster-a"}`)
		return err == nil && len(r) == 1 && r[0].Value >= 1, fmt.Sprintf("%v %v", r, err)
	})
	t.Logf("cluster-a: exporter follows %s after %s", newMaster, lab(time.Since(t0)))
	waitFor(ctx, t, "a new master on cluster-b", func() (bool, string) {
		st, err := s.State(ctx)
		if err != nil {
			return false, err.Error()
		}
		m := poolMaster(st, "cluster-b")
		return m != "" && m != "xs-b1", "master " + m
	})

	// 4. The old masters are powered back on. cluster-a's sits in emergency
	// mode and the remediator runs the seed's recovery; cluster-b's rejoins
	// by itself. Pool HA ends up enabled in both.
	t0 = time.Now()
	for _, h := range []string{"xs-a1", "xs-b1"} {
		if err := s.Control(ctx, "hosts/"+h+"/power-on", nil); err != nil {
			t.Fatal(err)
		}
	}
	rejoined := make(chan time.Duration, 1) // when xs-b1 first is a live slave with pool HA on
	go func() {
		defer close(rejoined)
		for ctx.Err() == nil {
			if st, err := s.State(ctx); err == nil && hostRole(st, "cluster-b", "xs-b1") == "slave" &&
				hostLive(st, "cluster-b", "xs-b1") && poolHA(st, "cluster-b") {
				rejoined <- time.Since(t0)
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	}()
	waitFor(ctx, t, "xs-a1 in emergency mode", func() (bool, string) {
		st, err := s.State(ctx)
		return err == nil && hostRole(st, "cluster-a", "xs-a1") == "emergency", "role " + hostRole(st, "cluster-a", "xs-a1")
	})
	t.Logf("cluster-a: xs-a1 back in emergency mode after %s", lab(time.Since(t0)))
	waitFor(ctx, t, "xs-a1 a live slave and pool HA on", func() (bool, string) {
		st, err := s.State(ctx)
		if err != nil {
			return false, err.Error()
		}
		ok := hostRole(st, "cluster-a", "xs-a1") == "slave" && hostLive(st, "cluster-a", "xs-a1") && poolHA(st, "cluster-a")
		return ok, fmt.Sprintf("role %s live %v ha %v", hostRole(st, "cluster-a", "xs-a1"), hostLive(st, "cluster-a", "xs-a1"), poolHA(st, "cluster-a"))
	})
	t.Logf("cluster-a: xs-a1 recovered as a slave and pool HA re-enabled after %s", lab(time.Since(t0)))
	waitFor(ctx, t, "a successful clear_emergency_mode action for xs-a1", func() (bool, string) {
		acts := mustActions(ctx, t, s)
		for _, a := range acts {
			if a.Action == "clear_emergency_mode" && a.Host == "xs-a1" && a.State == "success" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("actions: %+v", acts)
	})
	var rejoinedAfter time.Duration
	select {
	case d, ok := <-rejoined:
		if !ok {
			t.Fatal("xs-b1 never rejoined cluster-b by itself")
		}
		rejoinedAfter = d
	case <-time.After(stepTimeout):
		st, _ := s.State(ctx)
		t.Fatalf("xs-b1 has not rejoined cluster-b by itself: role %s live %v ha %v",
			hostRole(st, "cluster-b", "xs-b1"), hostLive(st, "cluster-b", "xs-b1"), poolHA(st, "cluster-b"))
	}
	t.Logf("cluster-b: xs-b1 rejoined by itself as a slave after %s", lab(rejoinedAfter))
	// Had xs-b1 been seen in emergency mode before it rejoined, the alert
	// (`for: 5m`) and the remediator would have acted by now; give them that
	// long (usually passed already while cluster-a recovered): the host that
	// rejoined must not have been touched.
	if wait := rejoinedAfter + time.Duration(float64(7*time.Minute)*e2eTimeScale) - time.Since(t0); wait > 0 {
		time.Sleep(wait)
	}
	for _, a := range mustActions(ctx, t, s) {
		if a.Pool == "cluster-b" && a.Host == "xs-b1" && a.Wrote {
			t.Errorf("the remediator wrote to cluster-b for xs-b1, which had rejoined by itself: %+v", a)
		}
	}
	if stats, err := s.Stats(ctx); err != nil {
		t.Error(err)
	} else if n := stats.Calls("xs-b1", "host.emergency_ha_disable"); n != 0 {
		t.Errorf("host.emergency_ha_disable called %d times on xs-b1, which had rejoined by itself", n)
	}
	if st, err := s.State(ctx); err != nil || !poolHA(st, "cluster-b") {
		t.Errorf("cluster-b: pool HA not on after xs-b1 rejoined: %v (%v)", poolHA(st, "cluster-b"), err)
	}

	// 5. Dry-run: the remediator sees the alert and records what it would do,
	// and pool HA stays off.
	if err := s.StartRemediator(ctx, e2eDryRunPolicy); err != nil {
		t.Fatal(err)
	}
	if err := s.Control(ctx, "pools/cluster-a/ha-disable", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "a dry-run enable_pool_ha action", func() (bool, string) {
		for _, a := range mustActions(ctx, t, s) {
			if a.Pool == "cluster-a" && a.Action == "enable_pool_ha" && a.State == "dry_run" {
				return true, ""
			}
		}
		return false, "none yet"
	})
	if st, err := s.State(ctx); err != nil || poolHA(st, "cluster-a") {
		t.Fatalf("dry-run changed cluster-a: ha_enabled=%v (%v)", poolHA(st, "cluster-a"), err)
	}
}

// waitFor polls cond until it holds, failing the test after stepTimeout.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %s)", what, ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func mustActions(ctx context.Context, t *testing.T, s *Stack) []Action {
	t.Helper()
	a, err := s.Actions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func poolHA(st LabState, pool string) bool {
	for _, p := range st.Pools {
		if p.Name == pool {
			return p.HAEnabled
		}
	}
	return false
}

func poolMaster(st LabState, pool string) string {
	for _, p := range st.Pools {
		if p.Name == pool {
			return p.Master
		}
	}
	return ""
}

func hostRole(st LabState, pool, host string) string {
	for _, p := range st.Pools {
		for _, h := range p.Hosts {
			if p.Name == pool && h.Name == host {
				return h.Role
			}
		}
	}
	return ""
}

func hostLive(st LabState, pool, host string) bool {
	for _, p := range st.Pools {
		for _, h := range p.Hosts {
			if p.Name == pool && h.Name == host {
				return h.Live
			}
		}
	}
	return false
}
