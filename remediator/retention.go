package remediator

import (
	"context"
	"fmt"
	"time"

	"xsha/remediator/journal"
)

// Journal retention, as Alertmanager's nflog and silences do it: a
// maintenance loop removes what is older than the retention, once at start
// and then every gcInterval.
const (
	// minRetention keeps the journal longer than every window the gate
	// reads: cooldown, backoff and attempts are kept apart from actions
	// anyway, but an operator reading why an action was skipped yesterday
	// should find it.
	minRetention = 24 * time.Hour
	// gcInterval is how often the maintenance loop removes old actions.
	gcInterval = 15 * time.Minute
	// maintenanceTick is how often the loop ages the breaker's count out.
	maintenanceTick = time.Minute
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
	var open []*journal.Action
	err := r.journal.View(func(tx journal.Tx) (err error) {
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
func (r *engine) collectGarbage() (journal.GCCounts, error) {
	var total journal.GCCounts
	if r.retention > 0 {
		var err error
		if total, err = journal.Collect(r.journal, r.now(), r.retention); err != nil {
			return total, err
		}
		r.metrics.gcRemoved.WithLabelValues(string(gcActions)).Add(float64(total.Actions))
		r.metrics.gcRemoved.WithLabelValues(string(gcEntries)).Add(float64(total.Entries))
		r.metrics.gcRemoved.WithLabelValues(string(gcEpisodes)).Add(float64(total.Episodes))
		if !total.IsZero() {
			r.log.Info("journal GC", "retention", r.retention, "actions", total.Actions, "entries", total.Entries, "episodes", total.Episodes)
		}
	}
	return total, r.updateJournalGauges()
}

// updateJournalGauges sets the journal's size metrics.
func (r *engine) updateJournalGauges() error {
	var st journal.Stats
	err := r.journal.View(func(tx journal.Tx) error {
		var err error
		st, err = tx.Stats()
		return err
	})
	if err != nil {
		return fmt.Errorf("journal size: %w", err)
	}
	r.metrics.journalSize.Set(float64(st.SizeBytes))
	r.metrics.journalActions.Set(float64(st.Actions))
	return nil
}
