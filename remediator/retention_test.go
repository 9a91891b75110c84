package remediator

import (
	"strings"
	"testing"
	"time"

	"xsha/remediator/journal"
)

// The retention removes, at start, the finished actions older than it
// with their entries and episode keys, and the old entries about no
// action; it keeps recent actions and open ones, however old, and says what
// it removed in the journal and the metrics.
func TestRetentionRemovesOldFinishedActions(t *testing.T) {
	clock := newTestClock()
	a, b := newFakePool("cluster-a"), newFakePool("cluster-b")
	h := newHarnessClock(t, livePolicy, clock.now, a, b)
	h.r.retention = 90 * 24 * time.Hour

	// Day 0: an action that succeeds, one that is skipped (cluster-b is not
	// in the policy), one queued that never starts, and a hold.
	h.start()
	_, out := h.post(message(haDisabled("cluster-a", clock.now())))
	old := actionIDs(out)[0]
	if rec := h.waitFinal(old); rec.State != journal.StateSuccess {
		t.Fatalf("action %s %q", rec.State, rec.Reason)
	}
	h.stop()
	_, out = h.post(message(haDisabled("cluster-b", clock.now())))
	skipped := actionIDs(out)[0]
	a.withLock(func(p *fakePool) { p.haEnabled = false })
	clock.advance(11 * time.Minute) // past the cooldown
	openStart := clock.now()
	_, out = h.post(message(firing("XenServerPoolHADisabled", "cluster-a", "", "fp-open", openStart)))
	open := actionIDs(out)[0]
	if err := h.r.setHold("cluster-b", "maintenance"); err != nil {
		t.Fatal(err)
	}
	oldEntries := len(h.entries())

	// Day 91: a recent action, then a restart runs the GC.
	clock.advance(91 * 24 * time.Hour)
	_, out = h.post(message(firing("XenServerPoolHADisabled", "cluster-b", "", "fp-new", clock.now())))
	recent := actionIDs(out)[0]
	recentEntries := len(h.entriesFor(recent))

	h.r.maintainOnce(true)

	var kept []uint64
	if err := h.journal.View(func(tx journal.Tx) error {
		for _, id := range []uint64{old, skipped, open, recent} {
			if _, err := tx.Get(id); err == nil {
				kept = append(kept, id)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []uint64{open, recent}; !equalIDs(kept, want) {
		t.Errorf("kept actions %v, want %v (open %d and recent %d)", kept, want, open, recent)
	}
	if n := len(h.entriesFor(old)) + len(h.entriesFor(skipped)); n != 0 {
		t.Errorf("%d entries of removed actions left", n)
	}
	if len(h.entriesFor(open)) == 0 || len(h.entriesFor(recent)) != recentEntries {
		t.Errorf("entries of kept actions removed: open %d, recent %d of %d", len(h.entriesFor(open)), len(h.entriesFor(recent)), recentEntries)
	}
	if err := h.journal.View(func(tx journal.Tx) error {
		if _, ok := tx.Episode(episodeKey(ActionEnablePoolHA, "cluster-a", "fp-cluster-a", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))); ok {
			t.Error("the removed action's episode key is left")
		}
		if _, ok := tx.Episode(episodeKey(ActionEnablePoolHA, "cluster-a", "fp-open", openStart)); !ok {
			t.Error("the open action's episode key was removed")
		}
		holds, err := tx.Holds()
		if len(holds) != 1 {
			t.Errorf("holds %v (%v): the retention removes no hold", holds, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	text := journalText(h.entries())
	if !strings.Contains(text, "retention 2160h0m0s: removed 2 action(s)") {
		t.Errorf("the journal does not say what the GC removed:\n%s", text)
	}
	if strings.Contains(text, "hold set: maintenance") {
		t.Error("an old entry about no action was kept")
	}
	if got := h.counter(h.r.metrics.gcRemoved, gcActions); got != 2 {
		t.Errorf("gc_removed_total{kind=action} = %v, want 2", got)
	}
	if got := h.counter(h.r.metrics.gcRemoved, gcEntries); got == 0 || got >= float64(oldEntries) {
		t.Errorf("gc_removed_total{kind=entry} = %v, want some of the %d old entries (the open action's stay)", got, oldEntries)
	}
	if got := h.counter(h.r.metrics.gcRemoved, gcEpisodes); got != 2 {
		t.Errorf("gc_removed_total{kind=episode} = %v, want 2", got)
	}
	if got := h.counter(h.r.metrics.journalActions); got != 2 {
		t.Errorf("journal_actions = %v, want 2", got)
	}
	if got := h.counter(h.r.metrics.journalSize); got <= 0 {
		t.Errorf("journal_size_bytes = %v", got)
	}

	// A second pass removes nothing more.
	if n, err := h.r.collectGarbage(); err != nil || !n.IsZero() {
		t.Errorf("second GC removed %+v (%v)", n, err)
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Cooldown and the hourly attempt budget are kept apart from the actions,
// so removing the action that set them changes nothing: even a retention
// shorter than the cooldown (which App refuses) cannot let a repair repeat
// too soon.
func TestRetentionKeepsCooldownAndAttempts(t *testing.T) {
	cases := []struct {
		name   string
		policy string
		want   SkipReason
	}{
		{name: "cooldown", policy: "cooldown: 10m\nmax_attempts_per_hour: 5\n", want: SkipCooldown},
		{name: "hourly attempts", policy: "cooldown: 0s\nmax_attempts_per_hour: 1\n", want: SkipBudget},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			pools, pol := fleet(1, tc.policy)
			h := newHarnessClock(t, pol, clock.now, pools...)
			h.r.retention = time.Minute
			h.start()
			_, out := h.post(message(haDisabled("pool-01", clock.now())))
			if rec := h.waitFinal(actionIDs(out)[0]); rec.State != journal.StateSuccess {
				t.Fatalf("first action %s %q", rec.State, rec.Reason)
			}
			h.stop() // the maintenance loop's own GC stays out of the count below
			clock.advance(2 * time.Minute)
			if n, err := h.r.collectGarbage(); err != nil || n.Actions != 1 {
				t.Fatalf("GC removed %+v (%v), want the action", n, err)
			}
			pools[0].withLock(func(p *fakePool) { p.haEnabled = false })
			_, out = h.post(message(haDisabled("pool-01", clock.now())))
			if v := verdictsOf(out); len(v) != 1 || v[0] != string(VerdictSkipped) {
				t.Fatalf("verdicts %v, want skipped", v)
			}
			if got := h.counter(h.r.metrics.skips, ActionEnablePoolHA, tc.want); got != 1 {
				t.Errorf("skips{reason=%s} = %v, want 1", tc.want, got)
			}
		})
	}
}

// App takes the retention from Options: 90 days when unset, and never less
// than a day.
func TestAppRetention(t *testing.T) {
	cases := []struct {
		retention time.Duration
		want      time.Duration
		err       string
	}{
		{0, journal.DefaultRetention, ""},
		{30 * 24 * time.Hour, 30 * 24 * time.Hour, ""},
		{time.Hour, 0, "must be at least 24h0m0s"},
	}
	for _, tc := range cases {
		t.Run(tc.retention.String(), func(t *testing.T) {
			opts := appFiles(t, livePolicy, newFakePool("cluster-a"))
			opts.Retention = tc.retention
			app, err := New(opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			if app.engine.retention != tc.want {
				t.Errorf("retention %s, want %s", app.engine.retention, tc.want)
			}
		})
	}
}
