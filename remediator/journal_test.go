package remediator

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"xsha/test/etcdcluster"
)

// journalBackend opens a fresh, empty journal of one implementation.
type journalBackend struct {
	name string
	// opener returns a function that opens the same journal each time it
	// is called, as a restart does.
	opener func(t *testing.T) func() (journal, error)
}

// open opens a fresh journal, closed when the test ends.
func (b journalBackend) open(t *testing.T) journal {
	t.Helper()
	j, err := b.opener(t)()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// harnessJournal, when set, is the journal harnesses open instead of a
// bbolt file; withJournal sets it for one test.
var harnessJournal func(t *testing.T) func() (journal, error)

// withJournal runs fn with harnesses on the backend's journal. Tests that
// use it must not run in parallel.
func withJournal(t *testing.T, b journalBackend, fn func(t *testing.T)) {
	t.Helper()
	harnessJournal = b.opener
	defer func() { harnessJournal = nil }()
	fn(t)
}

// journalBackends are the journal's implementations the same tests run
// on: bbolt in a temporary file, and etcd on a real three-member cluster
// (one per calling test, each journal under its own prefix). Without an
// etcd binary the etcd subtests skip, or fail under CI, as
// etcdcluster.Start decides.
func journalBackends(t *testing.T) []journalBackend {
	t.Helper()
	var cluster *etcdcluster.Cluster
	if _, err := exec.LookPath("etcd"); err == nil {
		cluster = etcdcluster.Start(t, 3)
	}
	return []journalBackend{
		{name: "bbolt", opener: func(t *testing.T) func() (journal, error) {
			path := t.TempDir() + "/journal.db"
			return func() (journal, error) { return openBoltJournal(path) }
		}},
		{name: "etcd", opener: func(t *testing.T) func() (journal, error) {
			if cluster == nil {
				etcdcluster.Start(t, 3) // skips or fails: no etcd binary
			}
			opts := EtcdOptions{Endpoints: cluster.Endpoints(), Prefix: "/xsha-test/" + t.Name()}
			return func() (journal, error) { return openEtcdJournal(opts) }
		}},
	}
}

func openTestEtcdJournal(t *testing.T, c *etcdcluster.Cluster, prefix string) *etcdJournal {
	t.Helper()
	j, err := openEtcdJournal(EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// Every implementation keeps actions, their open index, entries, episodes,
// holds, cooldown, attempts and the breaker the same way, sees its own
// writes within a transaction, and stores nothing of a failed one.
func TestJournalBackends(t *testing.T) {
	for _, b := range journalBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			j := b.open(t)
			clock := newTestClock()
			j.setClock(clock.now)
			var a1, a2 *Action
			if err := j.Update(func(tx journalTx) error {
				a1 = &Action{Name: ActionEnablePoolHA, Pool: "pool-a", State: StatePending, Episodes: []string{"ep/1"}}
				a2 = &Action{Name: ActionRejoinHost, Pool: "pool-b", Host: "h1", State: StatePending, Episodes: []string{"ep/2"}}
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
			if err := j.Update(func(tx journalTx) error {
				if err := tx.Create(&Action{Name: ActionEnablePoolHA, Pool: "pool-c", State: StatePending}); err != nil {
					return err
				}
				return boom
			}); !errors.Is(err, boom) {
				t.Fatalf("failed update returned %v", err)
			}
			// Closing an action drops it from the open index; Save keeps
			// an episode intake added meanwhile.
			if err := j.Update(func(tx journalTx) error {
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
			if err := j.Update(func(tx journalTx) error {
				a1.State, a1.Finished = StateSuccess, tx.now()
				if err := tx.Save(a1); err != nil {
					return err
				}
				return tx.AppendFor(a1, KindAction, "success", nil)
			}); err != nil {
				t.Fatal(err)
			}
			if err := j.Update(func(tx journalTx) error {
				if err := tx.PutHold(Hold{Pool: "pool-a", Reason: "r", Source: HoldSourceAPI}); err != nil {
					return err
				}
				if err := tx.PutHold(Hold{Reason: "all", Source: HoldSourceAPI}); err != nil {
					return err
				}
				if err := tx.putTarget("pool-b/h1", targetState{Failures: 2}); err != nil {
					return err
				}
				if err := tx.addAttempt("pool-b", clock.now().Add(-2*time.Hour)); err != nil {
					return err
				}
				if err := tx.addAttempt("pool-b", clock.now()); err != nil {
					return err
				}
				return tx.putStormState(stormState{Open: true, Reason: "storm"})
			}); err != nil {
				t.Fatal(err)
			}
			if err := j.View(func(tx journalTx) error {
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
				ts, err := tx.target("pool-b/h1")
				if err != nil || ts.Failures != 2 {
					t.Errorf("target state %+v %v", ts, err)
				}
				at, err := tx.attempts("pool-b", clock.now())
				if err != nil || len(at) != 1 {
					t.Errorf("attempts within the hour %v %v, want 1", at, err)
				}
				ss, err := tx.stormState()
				if err != nil || !ss.Open || ss.Reason != "storm" {
					t.Errorf("breaker %+v %v", ss, err)
				}
				st, err := tx.stats()
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
				if err := j.Update(func(tx journalTx) (err error) {
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

// Replicas sharing one etcd journal see one another's commits, and a
// read-then-create in one Update is atomic across them: the same episode
// created by many replicas at once gives one action. Each Update's fn runs
// once, as with bbolt (callers append to the actions they hold).
func TestEtcdJournalSharedAcrossReplicas(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	prefix := "/xsha-test/" + t.Name()
	const replicas = 3
	js := make([]*etcdJournal, replicas)
	for i := range js {
		js[i] = openTestEtcdJournal(t, c, prefix)
	}
	var wg sync.WaitGroup
	created := make([]bool, replicas*2)
	errs := make([]error, replicas*2)
	var runs atomic.Int32
	for i := range replicas * 2 {
		wg.Go(func() {
			errs[i] = js[i%replicas].Update(func(tx journalTx) error {
				runs.Add(1)
				created[i] = false
				if _, ok := tx.Episode("same-webhook"); ok {
					return nil
				}
				a := &Action{Name: ActionEnablePoolHA, Pool: "pool-a", State: StatePending, Episodes: []string{"same-webhook"}}
				if err := tx.Create(a); err != nil {
					return err
				}
				created[i] = true
				return tx.SetEpisode("same-webhook", a.ID)
			})
		})
	}
	wg.Wait()
	n := 0
	for i := range created {
		if errs[i] != nil {
			t.Errorf("update %d: %v", i, errs[i])
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d updates created an action for the same episode, want 1", n)
	}
	if got := runs.Load(); got != replicas*2 {
		t.Errorf("%d Updates ran their function %d times, want once each", replicas*2, got)
	}
	if err := js[2].View(func(tx journalTx) error {
		open, err := tx.Open("")
		if err != nil {
			return err
		}
		if len(open) != 1 {
			t.Errorf("replica 2 sees open actions %v, want one", ids(open))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Without a quorum the etcd journal fails every call at once with a reason
// that says etcd is unavailable, and works again by itself once the
// quorum is back.
func TestEtcdJournalQuorumLoss(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	j := openTestEtcdJournal(t, c, "/xsha-test/"+t.Name())
	create := func() error {
		return j.Update(func(tx journalTx) error {
			return tx.Create(&Action{Name: ActionEnablePoolHA, Pool: "pool-a", State: StatePending})
		})
	}
	if err := create(); err != nil {
		t.Fatal(err)
	}
	c.LoseQuorum()
	err := create()
	if err == nil || !strings.Contains(err.Error(), "etcd unavailable") {
		t.Fatalf("update without quorum: %v, want etcd unavailable", err)
	}
	c.RestoreQuorum()
	var last error
	for range 20 {
		if last = create(); last == nil {
			break
		}
	}
	if last != nil {
		t.Fatalf("after the quorum came back: %v", last)
	}
	if err := j.View(func(tx journalTx) error {
		open, err := tx.Open("pool-a")
		if len(open) != 2 {
			t.Errorf("open actions %v, want 2 (the one that failed without quorum not stored)", ids(open))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
