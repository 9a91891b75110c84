package remediator

import (
	"slices"
	"strings"
	"testing"

	"xsha/remediator/journal"
)

// A remediator killed in the middle of clear_emergency_mode, right after
// an XAPI write went through, and started again on the same journal,
// finishes the repair without making any write twice and keeps every
// journal entry written before the crash.
func TestCrashMidActionResumesWithoutRepeating(t *testing.T) {
	for _, crashAfter := range []string{"pool.disable_ha", "host.emergency_ha_disable", "pool.enable_ha"} {
		t.Run(crashAfter, func(t *testing.T) {
			p := newFakePool("cluster-a")
			old := p.emergencyOldMaster()
			h := newHarness(t, livePolicy, p)
			h.start()
			crashed := make(chan struct{})
			cancel := h.cancel
			p.after = func(method string) {
				if method == crashAfter {
					cancel() // the process dies while XAPI has done the work
					close(crashed)
				}
			}
			id := h.queue("XenServerHostEmergencyMode", "cluster-a", old, "fp-em")
			<-crashed
			h.stop()
			p.after = nil
			if rec := h.record(id); rec.State != journal.StateRunning {
				t.Fatalf("after the crash the action is %s, want running", rec.State)
			}
			before := h.entries()

			h.restart()
			rec := h.waitFinal(id)
			if rec.State != journal.StateSuccess {
				t.Fatalf("after restart: %s: %s\n%s", rec.State, rec.Reason, journalText(h.entriesFor(id)))
			}
			want := []string{"pool.disable_ha", "host.emergency_ha_disable(127.0.9.1)", "pool.enable_ha(sr-cluster-a,map[timeout:180])"}
			if got := p.Calls(); !slices.Equal(got, want) {
				t.Fatalf("calls %v, want each once: %v", got, want)
			}
			if !p.HAEnabled() {
				t.Error("pool HA not re-enabled")
			}
			after := h.entries()
			if len(after) <= len(before) {
				t.Fatalf("journal has %d entries after the restart, %d before", len(after), len(before))
			}
			for i, e := range before {
				if after[i].Seq != e.Seq || after[i].Message != e.Message {
					t.Fatalf("entry %d changed across the restart: %+v -> %+v", i, e, after[i])
				}
			}
			text := journalText(h.entriesFor(id))
			wantText := []string{"resumed after a restart", "resumed after an interruption"}
			if crashAfter == "host.emergency_ha_disable" {
				// The host stays in emergency mode for a few reads after the
				// call: live state alone cannot tell the call was made.
				wantText = append(wantText, crashAfter+" was called before the interruption; not calling it again")
			}
			for _, s := range wantText {
				if !strings.Contains(text, s) {
					t.Errorf("journal lacks %q:\n%s", s, text)
				}
			}
			if rec.Resumed != 1 {
				t.Errorf("resumed %d times", rec.Resumed)
			}
		})
	}
}

// A crash between journaling a write and making it leaves the write
// undone; the resumed action does not make it blindly, finds its effect
// missing, and reports.
func TestCrashBeforeWriteReports(t *testing.T) {
	p := newFakePool("cluster-a")
	pol := strings.Replace(livePolicy, "step_timeout: 30s", "step_timeout: 200ms", 1)
	h := newHarness(t, pol, p)
	// Journal an action that was about to call pool.enable_ha when it died.
	err := h.journal.Update(func(tx journal.Tx) error {
		rec := &journal.Action{Name: ActionEnablePoolHA, Pool: "cluster-a", State: journal.StateRunning, Wrote: true,
			Steps: []journal.Step{{Name: stepNameCheck, State: journal.StepStateDone}, {Name: stepNameEnablePoolHA, State: journal.StepStateStarted, Calls: []string{"pool.enable_ha"}}}}
		return tx.Create(rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	h.start()
	rec := h.waitFinal(1)
	if rec.State != journal.StateFailed || !strings.Contains(rec.Reason, "did not happen") {
		t.Fatalf("got %s: %s", rec.State, rec.Reason)
	}
	if calls := p.Calls(); len(calls) != 0 {
		t.Errorf("calls %v", calls)
	}
}

// An action interrupted before it wrote anything goes through the policy,
// holds and limits again when it resumes, and starts over from its first
// step: a restart with dry-run turned on, the action withdrawn or a hold
// set must not let it write.
func TestResumeBeforeAnyWriteFollowsCurrentPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy string
		state  journal.State
		reason string
		calls  int
	}{
		{"still allowed and live", livePolicy, journal.StateSuccess, "done", 1},
		{"dry-run turned on", strings.Replace(livePolicy, "dry_run: false", "dry_run: true", 1), journal.StateDryRun, "would call pool.enable_ha", 0},
		{"action withdrawn", strings.Replace(livePolicy, "pools: [cluster-a]}", "pools: [cluster-b]}", 1), journal.StateSkipped, "does not allow enable_pool_ha on pool cluster-a", 0},
		{"pool held", livePolicy + "holds: {pools: [cluster-a], reason: frozen}\n", journal.StateSkipped, "frozen", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakePool("cluster-a")
			h := newHarness(t, tc.policy, p)
			// Journal a live action stopped after its check step, before
			// pool.enable_ha was journaled or made.
			err := h.journal.Update(func(tx journal.Tx) error {
				rec := &journal.Action{Name: ActionEnablePoolHA, Pool: "cluster-a", State: journal.StateRunning, Started: t0,
					Steps: []journal.Step{{Name: stepNameCheck, State: journal.StepStateDone}, {Name: stepNameEnablePoolHA, State: journal.StepStateStarted}}}
				return tx.Create(rec)
			})
			if err != nil {
				t.Fatal(err)
			}
			h.start()
			rec := h.waitFinal(1)
			if rec.State != tc.state || !strings.Contains(rec.Reason, tc.reason) {
				t.Fatalf("got %s: %q, want %s: %q\n%s", rec.State, rec.Reason, tc.state, tc.reason, journalText(h.entriesFor(1)))
			}
			if n := p.count("pool.enable_ha"); n != tc.calls {
				t.Errorf("pool.enable_ha called %d times, want %d", n, tc.calls)
			}
			if rec.State == journal.StateSuccess {
				if rec.Resumed != 1 || len(rec.Steps) != 3 || rec.Steps[0].Name != stepNameCheck {
					t.Errorf("the action did not start over: resumed %d, steps %+v", rec.Resumed, rec.Steps)
				}
				if !strings.Contains(journalText(h.entriesFor(1)), "starts again from its first step under the current policy") {
					t.Error("the restart is not journaled")
				}
			}
		})
	}
}
