package exporter

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xsha/config"
	"xsha/sim/lab"
	"xsha/sim/scenario"
	"xsha/xapi"
)

// fleetSize is the fleet the lab tests run on: small in make test, 200
// pools of 16 hosts and 500 guests when XSHA_FLEET=1 (make bench).
func fleetSize() scenario.FleetOptions {
	if os.Getenv("XSHA_FLEET") == "1" {
		return scenario.FleetOptions{Pools: 200, HostsPerPool: 16, VMsPerPool: 500}
	}
	return scenario.FleetOptions{Pools: 24, HostsPerPool: 2, VMsPerPool: 4}
}

// startFleet starts a lab on a generated fleet at 1/50 of real time and
// returns it with a configuration of every pool (its first host's address,
// timing as the other lab tests).
func startFleet(t testing.TB, o scenario.FleetOptions) (*lab.Lab, *config.Config) {
	t.Helper()
	o.TimeScale = 0.02
	sc, err := scenario.Fleet(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l, err := lab.Start(ctx, lab.Options{Scenario: sc})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = l.Close() })
	timing := exporterTiming
	if o.VMsPerPool > 100 {
		// Reading 500 VMs of 200 pools on two shared cores takes longer
		// than the small lab tests' 2 s call timeout.
		timing = "probe_interval: 1s\n    call_timeout: 30s\n    event_timeout: 5s\n"
	}
	var b strings.Builder
	b.WriteString("pools:\n")
	for _, p := range sc.Pools {
		fmt.Fprintf(&b, "  - name: %s\n    hosts: [%s]\n    port: %d\n    tls: {ca_file: %s}\n    password_file: %s\n    %s",
			p.Name, p.Hosts[0].Address, l.XAPIPort(), l.CAFile(), l.PasswordFile(), timing)
	}
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return l, cfg
}

// poolCounts returns, per pool, the sessions open on its master and the
// logins its master served (probes of its slaves are not counted).
func poolCounts(l *lab.Lab) (sessions, logins map[string]uint64) {
	sessions, logins = map[string]uint64{}, map[string]uint64{}
	masters := map[string]bool{}
	for _, p := range l.State().Pools {
		masters[p.Master] = true
	}
	for _, h := range l.Stats().Hosts {
		sessions[h.Pool] += uint64(h.Sessions)
		if masters[h.Name] {
			logins[h.Pool] += h.Calls["session.login_with_password"]
		}
	}
	return sessions, logins
}

// TestShardsWatchEveryPoolOnce runs three exporters' watchers, each on its
// shard of the fleet: every pool is watched (up, one session on its master)
// by exactly one. Resharding to four moves exactly the pools whose hashmod
// changed: a pool that stays keeps its session (no new login on its
// master), and none is left with two sessions or none.
func TestShardsWatchEveryPoolOnce(t *testing.T) {
	l, cfg := startFleet(t, fleetSize())
	ctx := t.Context()
	var shards []*poolWatchers
	defer func() {
		for _, s := range shards {
			s.Stop()
		}
	}()
	start := func() *poolWatchers {
		ps := newPoolWatchers(ctx, nil, xapi.NewMetrics(prometheus.NewRegistry()))
		shards = append(shards, ps)
		return ps
	}
	for i := range 3 {
		start().Apply(Shard{Index: uint64(i), Count: 3}.filter(cfg))
	}
	// once says whether every pool is up in exactly one shard and holds
	// exactly one session on its master.
	once := func() bool {
		up := map[string]int{}
		for _, s := range shards {
			for _, snap := range s.Snapshots() {
				if snap.Up {
					up[snap.Pool]++
				}
			}
		}
		sessions, _ := poolCounts(l)
		for _, p := range cfg.Pools {
			if up[p.Name] != 1 || sessions[p.Name] != 1 {
				return false
			}
		}
		return true
	}
	// watchedOnce waits for once, as long as a 200-pool fleet takes to be
	// read.
	watchedOnce := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Minute)
		for !once() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	watchedOnce("every pool watched by one of three shards")
	_, before := poolCounts(l)

	shards[0].Apply(Shard{Index: 0, Count: 4}.filter(cfg))
	shards[1].Apply(Shard{Index: 1, Count: 4}.filter(cfg))
	shards[2].Apply(Shard{Index: 2, Count: 4}.filter(cfg))
	start().Apply(Shard{Index: 3, Count: 4}.filter(cfg))
	watchedOnce("every pool watched by one of four shards")
	_, after := poolCounts(l)
	moved := 0
	for _, p := range cfg.Pools {
		stayed := false
		for i := range uint64(3) {
			stayed = stayed || (Shard{Index: i, Count: 3}.Owns(p.Name) && Shard{Index: i, Count: 4}.Owns(p.Name))
		}
		switch {
		case stayed && after[p.Name] != before[p.Name]:
			t.Errorf("%s stayed in its shard but was logged in to again", p.Name)
		case !stayed:
			moved++
		}
	}
	t.Logf("resharding 3 → 4 moved %d of %d pools", moved, len(cfg.Pools))
}
