package remediator

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"xsha/remediator/journal"
	"xsha/test/etcdcluster"
)

// The shared mode's costs, for `make bench` (XSHA_BENCH=1; not part of
// `make test`): webhook answer times on bbolt and on etcd, and how long
// after the replica holding an action dies another resumes it.

func benchEnabled(t *testing.T) {
	t.Helper()
	if os.Getenv("XSHA_BENCH") == "" {
		t.Skip("set XSHA_BENCH=1 (make bench)")
	}
}

// TestBenchWebhookLatency sends 100 webhooks a second for 30 s (open loop:
// each on its own schedule, whatever the answers take) to one replica and
// reports the answer time's p50 and p99 with each journal. The webhooks
// carry twenty alerts, re-sent over and over; all alerts distinct would
// grow one action's episode list without bound, which measures that list,
// not the journal.
func TestBenchWebhookLatency(t *testing.T) {
	benchEnabled(t)
	const rate, dur = 100, 30 * time.Second
	for _, name := range journalNames {
		t.Run(name, func(t *testing.T) {
			open := journalOpeners[name]
			if name == "etcd" { // as in production: three members
				open = etcdOpenerOn(etcdcluster.Start(t, 3))
			}
			withJournal(t, open, func(t *testing.T) {
				p := newFakePool("cluster-a")
				h := newHarness(t, livePolicy, p)
				h.start()
				var (
					mu   sync.Mutex
					took []time.Duration
					bad  int
					wg   sync.WaitGroup
				)
				tick := time.NewTicker(time.Second / rate)
				defer tick.Stop()
				start := time.Now().Add(-time.Minute)
				end := time.Now().Add(dur)
				for i := 0; time.Now().Before(end); i++ {
					<-tick.C
					wg.Go(func() {
						// Twenty alerts, each re-sent over and over, as
						// Alertmanager's repeats and its HA pair do.
						msg := message(firing("XenServerPoolHADisabled", "cluster-a", "", fmt.Sprintf("fp-%d", i%20), start))
						t0 := time.Now()
						code, _ := h.post(msg)
						d := time.Since(t0)
						mu.Lock()
						defer mu.Unlock()
						took = append(took, d)
						if code != 200 {
							bad++
						}
					})
				}
				wg.Wait()
				slices.Sort(took)
				q := func(f float64) time.Duration { return took[int(f*float64(len(took)-1))].Round(10 * time.Microsecond) }
				t.Logf("journal %s: %d webhooks at %d/s for %s: answer time p50 %s, p99 %s, max %s; %d not 200",
					name, len(took), rate, dur, q(0.5), q(0.99), took[len(took)-1].Round(10*time.Microsecond), bad)
				if bad > 0 {
					t.Errorf("%d webhooks not accepted", bad)
				}
			})
		})
	}
}

// TestBenchTakeover kills (without revoking its lease) the replica holding
// a running action, five times for each lease TTL, and reports the time
// from the death to the other replica resuming the action.
func TestBenchTakeover(t *testing.T) {
	benchEnabled(t)
	for _, ttl := range []int{2, 10} {
		var took []time.Duration
		for i := range 5 {
			t.Run(fmt.Sprintf("ttl%d-%d", ttl, i), func(t *testing.T) {
				p := newFakePool("cluster-a")
				old := p.emergencyOldMaster()
				_, hs := sharedCluster(t, 2, ttl, p)
				a, b := hs[0], hs[1]
				for _, h := range hs {
					h.r.poll = sharedPollInterval // as in production
				}
				a.start()
				b.start()
				crashed := make(chan struct{})
				var once sync.Once
				var died time.Time
				p.after = func(method string) {
					if method == "host.emergency_ha_disable" {
						once.Do(func() {
							died = time.Now()
							_ = a.journal.(*journal.Etcd).Abandon() // SIGKILL: the lease is not revoked
							close(crashed)
						})
					}
				}
				// Queue on a; b polls and waits on the pool's lock.
				id := a.queue("XenServerHostEmergencyMode", "cluster-a", old, "fp-em")
				<-crashed
				deadline := time.Now().Add(time.Duration(ttl)*time.Second + 30*time.Second)
				for {
					if strings.Contains(journalText(b.entriesFor(id)), "taken over by replica") {
						took = append(took, time.Since(died))
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("no takeover:\n%s", journalText(b.entriesFor(id)))
					}
					time.Sleep(10 * time.Millisecond)
				}
				if rec := b.waitFinal(id); rec.State != journal.StateSuccess {
					t.Errorf("action %s: %s", rec.State, rec.Reason)
				}
			})
		}
		if len(took) > 0 {
			slices.Sort(took)
			t.Logf("lease TTL %d s: death of the holder to resumption by another replica: min %s, median %s, max %s (%d runs; poll every %s)",
				ttl, took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), len(took), sharedPollInterval)
		}
	}
}
