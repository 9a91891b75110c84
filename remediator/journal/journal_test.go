package journal

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"xsha/test/etcdcluster"
)

// backend opens a fresh, empty journal of one implementation.
type backend struct {
	name string
	// opener returns a function that opens the same journal each time it
	// is called, as a restart does.
	opener func(t *testing.T) func() (Journal, error)
}

// open opens a fresh journal, closed when the test ends.
func (b backend) open(t *testing.T) Journal {
	t.Helper()
	j, err := b.opener(t)()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// backends are the journal's implementations the same tests run on: bbolt
// in a temporary file, and etcd on a real three-member cluster (one per
// calling test, each journal under its own prefix). Without an etcd binary
// the etcd subtests skip, or fail under CI, as etcdcluster.Start decides.
func backends(t *testing.T) []backend {
	t.Helper()
	var cluster *etcdcluster.Cluster
	if _, err := exec.LookPath("etcd"); err == nil {
		cluster = etcdcluster.Start(t, 3)
	}
	return []backend{
		{name: "bbolt", opener: func(t *testing.T) func() (Journal, error) {
			path := t.TempDir() + "/journal.db"
			return func() (Journal, error) { return OpenBolt(path) }
		}},
		{name: "etcd", opener: func(t *testing.T) func() (Journal, error) {
			if cluster == nil {
				etcdcluster.Start(t, 3) // skips or fails: no etcd binary
			}
			opts := EtcdOptions{Endpoints: cluster.Endpoints(), Prefix: "/xsha-test/" + t.Name()}
			return func() (Journal, error) { return OpenEtcd(opts) }
		}},
	}
}

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Every implementation keeps actions, their open index, entries, episodes,
// holds, cooldown, attempts and the breaker the same way, sees its own
// writes within a transaction, and stores nothing of a failed one.
func TestJournalBackends(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			j := b.open(t)
			clock := newClock()
			j.SetClock(clock.now)
			var a1, a2 *Action
			if err := j.Update(func(tx Tx) error {
				a1 = &Action{Name: "enable_pool_ha", Pool: "pool-a", State: StatePending, Episodes: []string{"ep/1"}}
				a2 = &Action{Name: "rejoin_host", Pool: "pool-b", Host: "h1", State: StatePending, Episodes: []string{"ep/2"}}
				for _, a := range []*Action{a1, a2} {
					if err := tx.Create(a); err != nil {
						return err
					}
					if err := tx.SetEpisode(a.Episodes[0], a.ID); err != nil {
						return err
					}
					if err := tx.AppendFor(a, KindAlert, "alert for "+a.Pool, map[string]string{"pool": a.Pool}); err != nil {
						return err
					}
				}
				// Reads within the transaction see its writes.
				open, err := tx.Open("")
				if err != nil {
					return err
				}
				if len(open) != 2 {
					return fmt.Errorf("open within the transaction: %d actions, want 2", len(open))
				}
				if id, ok := tx.Episode("ep/2"); !ok || id != a2.ID {
					return fmt.Errorf("episode within the transaction: %d %v", id, ok)
				}
				return tx.Append(Entry{Kind: KindNote, Message: "unbound"})
			}); err != nil {
				t.Fatal(err)
			}
			if a1.ID != 1 || a2.ID != 2 {
				t.Errorf("ids %d, %d; want 1, 2", a1.ID, a2.ID)
			}
			// A failed transaction leaves nothing behind.
			boom := errors.New("boom")
			if err := j.Update(func(tx Tx) error {
				if err := tx.Create(&Action{Name: "enable_pool_ha", Pool: "pool-c", State: StatePending}); err != nil {
					return err
				}
				return boom
			}); !errors.Is(err, boom) {
				t.Fatalf("failed update returned %v", err)
			}
			// Closing an action drops it from the open index; Save keeps
			// an episode intake added meanwhile.
			if err := j.Update(func(tx Tx) error {
				stored, err := tx.Get(a1.ID)
				if err != nil {
					return err
				}
				stored.Episodes = append(stored.Episodes, "ep/3")
				return tx.Put(stored)
			}); err != nil {
				t.Fatal(err)
			}
			clock.advance(time.Minute)
			if err := j.Update(func(tx Tx) error {
				a1.State, a1.Finished = StateSuccess, tx.Now()
				if err := tx.Save(a1); err != nil {
					return err
				}
				return tx.AppendFor(a1, KindAction, "success", nil)
			}); err != nil {
				t.Fatal(err)
			}
			if err := j.Update(func(tx Tx) error {
				if err := tx.PutHold(Hold{Pool: "pool-a", Reason: "r", Source: HoldSourceAPI}); err != nil {
					return err
				}
				if err := tx.PutHold(Hold{Reason: "all", Source: HoldSourceAPI}); err != nil {
					return err
				}
				if err := tx.PutTarget("pool-b/h1", Target{Failures: 2}); err != nil {
					return err
				}
				if err := tx.AddAttempt("pool-b", clock.now().Add(-2*time.Hour)); err != nil {
					return err
				}
				if err := tx.AddAttempt("pool-b", clock.now()); err != nil {
					return err
				}
				return tx.PutBreaker(Breaker{Open: true, Reason: "storm"})
			}); err != nil {
				t.Fatal(err)
			}
			if err := j.View(func(tx Tx) error {
				open, err := tx.Open("")
				if err != nil {
					return err
				}
				if len(open) != 1 || open[0].ID != a2.ID {
					t.Errorf("open actions %v, want only %d", ids(open), a2.ID)
				}
				if open, _ := tx.Open("pool-a"); len(open) != 0 {
					t.Errorf("pool-a still has open actions %v", ids(open))
				}
				got, err := tx.Get(a1.ID)
				if err != nil {
					return err
				}
				if got.State != StateSuccess || strings.Join(got.Episodes, ",") != "ep/1,ep/3" {
					t.Errorf("action 1 is %s with episodes %v, want success with ep/1,ep/3", got.State, got.Episodes)
				}
				if _, err := tx.Get(3); err == nil {
					t.Error("the failed transaction's action is in the journal")
				}
				recent, err := tx.Recent(1)
				if err != nil {
					return err
				}
				if len(recent) != 1 || recent[0].ID != a2.ID {
					t.Errorf("recent(1) = %v, want [%d]", ids(recent), a2.ID)
				}
				if id, ok := tx.Episode("ep/1"); !ok || id != a1.ID {
					t.Errorf("episode ep/1 -> %d %v", id, ok)
				}
				if _, ok := tx.Episode("ep/none"); ok {
					t.Error("an unknown episode is known")
				}
				es, err := tx.EntriesFor(a1.ID)
				if err != nil {
					return err
				}
				if len(es) != 2 || es[0].Kind != KindAlert || es[1].Kind != KindAction {
					t.Errorf("entries of action 1: %+v", es)
				}
				all, err := tx.Entries(0, 100)
				if err != nil {
					return err
				}
				if len(all) != 4 {
					t.Fatalf("%d entries, want 4", len(all))
				}
				for i, e := range all {
					if e.Seq != uint64(i+1) {
						t.Errorf("entry %d has seq %d", i, e.Seq)
					}
				}
				page, err := tx.Entries(all[1].Seq, 2)
				if err != nil {
					return err
				}
				if len(page) != 2 || page[0].Seq != all[2].Seq {
					t.Errorf("entries after %d limit 2: %+v", all[1].Seq, page)
				}
				holds, err := tx.Holds()
				if err != nil {
					return err
				}
				if len(holds) != 2 {
					t.Errorf("holds %+v, want 2", holds)
				}
				ts, err := tx.Target("pool-b/h1")
				if err != nil || ts.Failures != 2 {
					t.Errorf("target state %+v %v", ts, err)
				}
				at, err := tx.Attempts("pool-b", clock.now())
				if err != nil || len(at) != 1 {
					t.Errorf("attempts within the hour %v %v, want 1", at, err)
				}
				ss, err := tx.Breaker()
				if err != nil || !ss.Open || ss.Reason != "storm" {
					t.Errorf("breaker %+v %v", ss, err)
				}
				st, err := tx.Stats()
				if err != nil || st.Actions != 2 {
					t.Errorf("stats %+v %v, want 2 actions", st, err)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				pool string
				want bool
			}{{"pool-a", true}, {"pool-a", false}, {"", true}} {
				var had bool
				if err := j.Update(func(tx Tx) (err error) {
					had, err = tx.DeleteHold(tc.pool)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if had != tc.want {
					t.Errorf("DeleteHold(%q) = %v, want %v", tc.pool, had, tc.want)
				}
			}
		})
	}
}

func ids(as []*Action) []uint64 {
	var out []uint64
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}
