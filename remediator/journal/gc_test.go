package journal

import (
	"fmt"
	"testing"
	"time"
)

// The GC works in batches, so webhooks never wait long behind it: each
// call removes at most its limit and says whether more is left, and the
// batches together remove everything old.
func TestJournalGCInBatches(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { testJournalGCInBatches(t, b.open(t)) })
	}
}

func testJournalGCInBatches(t *testing.T, j Journal) {
	clock := newClock()
	j.SetClock(clock.now)
	if err := j.Update(func(tx Tx) error {
		for i := range 5 {
			a := &Action{Name: "enable_pool_ha", Pool: "cluster-a", State: StateSkipped, Finished: clock.now(),
				Episodes: []string{fmt.Sprintf("episode-%d", i)}}
			if err := tx.Create(a); err != nil {
				return err
			}
			if err := tx.SetEpisode(a.Episodes[0], a.ID); err != nil {
				return err
			}
			for range 3 {
				if err := tx.AppendFor(a, KindNote, "note", nil); err != nil {
					return err
				}
			}
			if err := tx.Append(Entry{Kind: KindAlert, Message: "alert"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	clock.advance(48 * time.Hour)
	before := clock.now().Add(-24 * time.Hour)
	var total GCCounts
	calls := 0
	for more := true; more; calls++ {
		if calls > 10 {
			t.Fatal("the GC does not end")
		}
		if err := j.Update(func(tx Tx) error {
			var n GCCounts
			var err error
			n, more, err = tx.GC(before, 2)
			if n.Actions > 2 || n.Entries > 2*3+2 {
				t.Errorf("one batch removed %+v, over its limit of 2 actions", n)
			}
			total = total.Add(n)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if want := (GCCounts{Actions: 5, Entries: 20, Episodes: 5}); total != want {
		t.Errorf("removed %+v in %d batches, want %+v", total, calls, want)
	}
	if err := j.View(func(tx Tx) error {
		st, err := tx.Stats()
		if st.Actions != 0 {
			t.Errorf("%d actions left", st.Actions)
		}
		es, _ := tx.Entries(0, 100)
		if len(es) != 0 {
			t.Errorf("%d entries left", len(es))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
