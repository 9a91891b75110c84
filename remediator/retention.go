package remediator

import (
	"context"
	"fmt"
	"time"
)

// Journal retention, as Alertmanager's nflog and silences do it: a
// maintenance loop removes what is older than the retention, once at start
// and then every gcInterval.
const (
	// DefaultRetention is how long finished actions and their entries are
	// kept when Options.Retention is zero.
	DefaultRetention = 90 * 24 * time.Hour
	// minRetention keeps the journal longer than every window the gate
	// reads: cooldown, backoff and attempts are kept apart from actions
	// anyway, but an operator reading why an action was skipped yesterday
	// should find it.
	minRetention = 24 * time.Hour
	// gcInterval is how often the maintenance loop removes old actions.
	gcInterval = 15 * time.Minute
	// maintenanceTick is how often the loop ages the breaker's count out.
	maintenanceTick = time.Minute
	// gcBatch bounds the actions (and entries) one transaction removes, so
	// webhooks never wait long behind the GC.
	gcBatch = 500
)

// gcKind is what the GC removed, the values of the kind label of
// xsha_remediator_journal_gc_removed_total.
type gcKind string

// GC kinds.
const (
	gcActions  gcKind = "action"
	gcEntries  gcKind = "entry"
	gcEpisodes gcKind = "episode"
)

var gcKinds = []gcKind{gcActions, gcEntries, gcEpisodes}

// gcCounts is what one gc call removed.
type gcCounts struct {
	Actions  int `json:"actions"`
	Entries  int `json:"entries"`
	Episodes int `json:"episodes"`
}

func (c gcCounts) add(o gcCounts) gcCounts {
	return gcCounts{c.Actions + o.Actions, c.Entries + o.Entries, c.Episodes + o.Episodes}
}

func (c gcCounts) zero() bool { return c == gcCounts{} }

// journalStats is the size of the journal.
type journalStats struct {
	SizeBytes int64
	Actions   int
}

// maintain runs the journal's maintenance until ctx is cancelled: the GC
// at start and every gcInterval, and the breaker's aging every
// maintenanceTick.
func (r *engine) maintain(ctx context.Context) {
	r.maintainOnce(true)
	tick := time.NewTicker(maintenanceTick)
	defer tick.Stop()
	lastGC := time.Now()
	// With a shared journal the running actions of other replicas are
	// read every poll interval: a runner waiting for its pool's lock does
	// not look.
	var shared <-chan time.Time
	if r.locker != nil {
		st := time.NewTicker(r.poll)
		defer st.Stop()
		shared = st.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-shared:
			r.refreshRunning()
		case <-tick.C:
			gc := time.Since(lastGC) >= gcInterval
			if gc {
				lastGC = time.Now()
			}
			r.maintainOnce(gc)
		}
	}
}

// refreshRunning sets xsha_remediator_action_running for every pool from
// the journal.
func (r *engine) refreshRunning() {
	var open []*Action
	err := r.journal.View(func(tx journalTx) (err error) {
		open, err = tx.Open("")
		return err
	})
	r.noteJournal(err)
	if err == nil {
		for _, p := range r.cfg.Pools {
			r.setRunning(p.Name, open)
		}
	}
}

func (r *engine) maintainOnce(gc bool) {
	if err := r.refreshBreaker(); err != nil {
		r.log.Error("journal maintenance failed", "err", err)
	}
	r.refreshRunning()
	if !gc {
		return
	}
	if _, err := r.collectGarbage(); err != nil {
		r.log.Error("journal maintenance failed", "err", err)
	}
}

// collectGarbage removes the finished actions older than the retention,
// their entries and episode keys, in batches, and journals what it
// removed. Cooldown, backoff and the hourly attempts live apart from the
// actions (targets and attempts), so they stay right whatever is removed.
func (r *engine) collectGarbage() (gcCounts, error) {
	var total gcCounts
	if r.retention > 0 {
		before := r.now().Add(-r.retention)
		for more := true; more; {
			err := r.journal.Update(func(tx journalTx) error {
				var n gcCounts
				var err error
				n, more, err = tx.gc(before, gcBatch)
				if err != nil || n.zero() {
					return err
				}
				total = total.add(n)
				return tx.Append(Entry{Kind: KindGC, Data: mustJSON(n), Message: fmt.Sprintf(
					"retention %s: removed %d action(s) finished before %s, %d entries and %d episode key(s)",
					r.retention, n.Actions, before.UTC().Format(time.RFC3339), n.Entries, n.Episodes)})
			})
			if err != nil {
				return total, fmt.Errorf("journal GC: %w", err)
			}
		}
		r.metrics.gcRemoved.WithLabelValues(string(gcActions)).Add(float64(total.Actions))
		r.metrics.gcRemoved.WithLabelValues(string(gcEntries)).Add(float64(total.Entries))
		r.metrics.gcRemoved.WithLabelValues(string(gcEpisodes)).Add(float64(total.Episodes))
		if !total.zero() {
			r.log.Info("journal GC", "retention", r.retention, "actions", total.Actions, "entries", total.Entries, "episodes", total.Episodes)
		}
	}
	return total, r.updateJournalGauges()
}

// updateJournalGauges sets the journal's size metrics.
func (r *engine) updateJournalGauges() error {
	var st journalStats
	err := r.journal.View(func(tx journalTx) error {
		var err error
		st, err = tx.stats()
		return err
	})
	if err != nil {
		return fmt.Errorf("journal size: %w", err)
	}
	r.metrics.journalSize.Set(float64(st.SizeBytes))
	r.metrics.journalActions.Set(float64(st.Actions))
	return nil
}
