package journal

import (
	"encoding/json"
	"fmt"
	"time"
)

// Retention, as Alertmanager's nflog and silences keep theirs: what
// finished longer ago than the retention is removed, in batches.
const (
	// DefaultRetention is how long finished actions and their entries are
	// kept unless the operator says otherwise.
	DefaultRetention = 90 * 24 * time.Hour
	// gcBatch bounds the actions (and their entries) one transaction
	// removes, so webhooks never wait long behind the GC.
	gcBatch = 500
)

// GCCounts is what one gc call removed.
type GCCounts struct {
	Actions  int `json:"actions"`
	Entries  int `json:"entries"`
	Episodes int `json:"episodes"`
}

// Add returns the sum of both counts.
func (c GCCounts) Add(o GCCounts) GCCounts {
	return GCCounts{c.Actions + o.Actions, c.Entries + o.Entries, c.Episodes + o.Episodes}
}

// IsZero reports whether nothing was removed.
func (c GCCounts) IsZero() bool { return c == GCCounts{} }

// Stats is the size of the journal.
type Stats struct {
	SizeBytes int64
	Actions   int
}

// Collect removes the actions that finished more than retention before
// now, their entries and the episode keys that point at them, and entries
// about no kept action older than that, in transactions of at most gcBatch
// actions; each transaction journals what it removed (a KindGC entry).
// Cooldown, backoff, the hourly attempts, holds and the breaker are kept
// apart from actions, so they stay right whatever is removed.
func Collect(j Journal, now time.Time, retention time.Duration) (GCCounts, error) {
	var total GCCounts
	before := now.Add(-retention)
	for more := true; more; {
		err := j.Update(func(tx Tx) error {
			var n GCCounts
			var err error
			n, more, err = tx.GC(before, gcBatch)
			if err != nil || n.IsZero() {
				return err
			}
			total = total.Add(n)
			data, err := json.Marshal(n)
			if err != nil {
				return err
			}
			return tx.Append(Entry{Kind: KindGC, Data: data, Message: fmt.Sprintf(
				"retention %s: removed %d action(s) finished before %s, %d entries and %d episode key(s)",
				retention, n.Actions, before.UTC().Format(time.RFC3339), n.Entries, n.Episodes)})
		})
		if err != nil {
			return total, fmt.Errorf("journal GC: %w", err)
		}
	}
	return total, nil
}
