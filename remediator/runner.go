package remediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xsha/config"
	"xsha/remediator/journal"
)

// retryInterval is how long a pool's runner waits before it tries again
// after the journal failed.
const retryInterval = 30 * time.Second

// Run starts one runner per configured pool and returns when ctx is
// cancelled and every runner has stopped. Each runner first resumes the
// actions a previous run left open, oldest first, then takes new ones as
// the webhook records them: one action per pool at a time.
//
// Cancelling ctx interrupts a running action between journal writes, as a
// crash would; the next Run resumes it without repeating a finished step.
func (r *engine) Run(ctx context.Context) {
	r.restoreWorkflowGauges()
	var wg sync.WaitGroup
	for _, p := range r.cfg.Pools {
		wg.Go(func() { r.worker(ctx, p) })
	}
	wg.Go(func() { r.maintain(ctx) })
	r.running.Store(true)
	wg.Wait()
	r.running.Store(false)
}

func (r *engine) worker(ctx context.Context, pool config.Pool) {
	log := r.log.With("pool", pool.Name)
	for {
		for ctx.Err() == nil {
			var open []*journal.Action
			err := r.journal.View(func(tx journal.Tx) error {
				var err error
				open, err = tx.Open(pool.Name)
				return err
			})
			r.noteJournal(err)
			if err == nil {
				r.setRunning(pool.Name, open)
			}
			if err == nil && len(open) == 0 {
				break
			}
			if err == nil {
				err = r.executeLocked(ctx, pool, open[0])
			}
			if err != nil {
				log.Error("journal failed; retrying later", "err", err)
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake[pool.Name]:
		case <-time.After(r.poll):
		}
	}
}

// setRunning sets xsha_remediator_action_running for the pool from the
// open actions (of any pools).
func (r *engine) setRunning(pool string, open []*journal.Action) {
	r.metrics.actionRunning.DeletePartialMatch(prometheus.Labels{"pool": pool})
	for _, a := range open {
		if a.Pool == pool && a.State == journal.StateRunning {
			r.metrics.actionRunning.WithLabelValues(a.Pool, string(a.Name), a.Replica).Set(1)
		}
	}
}

// executeLocked runs the action while this replica holds its pool, when
// replicas share the journal: the replica that holds the pool runs it,
// the others wait; when the holder dies its lease expires, another takes
// the pool and resumes the action by the restart rules (begin re-reads
// the record: a finished action is left alone). Losing the pool mid-action
// stops it between journal writes, as a crash would.
func (r *engine) executeLocked(ctx context.Context, pool config.Pool, rec *journal.Action) error {
	if r.locker == nil {
		return r.executeLimited(ctx, pool, rec)
	}
	lctx, unlock, err := r.locker.LockPool(ctx, pool.Name)
	if err != nil {
		if ctx.Err() != nil {
			return nil // shutting down
		}
		return err
	}
	defer unlock()
	return r.executeLimited(lctx, pool, rec)
}

// executeLimited runs the action once the storm guard's global limit
// (max_running_pools) lets the pool run one: an action already running
// when the remediator stopped takes its slot at once, as it must finish;
// a pending one waits, in the order actions came.
func (r *engine) executeLimited(ctx context.Context, pool config.Pool, rec *journal.Action) error {
	limit := func() int { return r.policy.Load().MaxRunningPools }
	if err := r.limiter.acquire(ctx, pool.Name, rec.ID, rec.State == journal.StateRunning, limit, r.olderPending); err != nil {
		if ctx.Err() != nil {
			return nil // shutting down
		}
		return err
	}
	defer r.limiter.release(pool.Name)
	return r.execute(ctx, pool, rec)
}

// endError ends an action early: already healthy (success), held or a
// failed precondition (skipped), or dry-run.
type endError struct {
	state  journal.State
	skip   SkipReason
	reason string
}

func (e *endError) Error() string { return string(e.state) + ": " + e.reason }

func end(state journal.State, skip SkipReason, reason string) error {
	return &endError{state: state, skip: skip, reason: reason}
}

// execute runs one open action to its end, or until ctx is cancelled. It
// returns an error only when the journal could not be written.
func (r *engine) execute(ctx context.Context, pool config.Pool, rec *journal.Action) error {
	pol := r.policy.Load()
	spec, ok := lookupAction(rec.Name)
	if !ok {
		return r.finish(rec, journal.StateFailed, "", fmt.Sprintf("unknown action %q", rec.Name))
	}
	steps := spec.steps(rec.Host)
	if run, err := r.begin(pol, rec); err != nil || !run {
		return err
	}
	x := &execution{r: r, rec: rec, pol: pol, pool: pool, client: r.clients[rec.Pool],
		log: r.log.With("action", rec.Name, "id", rec.ID, "pool", rec.Pool, "host", rec.Host)}
	for _, s := range steps {
		if i := stepIndex(rec.Steps, s.name); i >= 0 && rec.Steps[i].State == journal.StepStateDone {
			continue
		}
		if stop, err := r.cancelRequested(rec); err != nil || stop {
			return err
		}
		ended, err := r.runStep(ctx, x, s)
		if err != nil || ended || ctx.Err() != nil {
			return err
		}
	}
	return r.finish(rec, journal.StateSuccess, "", "done")
}

// begin starts an open action and reports whether its steps are to run.
//
// A pending action, and a running one that had not written anything when
// it was interrupted, goes through the gate again under the current policy
// (which may have been reloaded, turned dry-run on, or set a hold since):
// it is skipped, or (re)started from its first step. A running action that
// has written resumes where it stopped, whatever the policy says now:
// stopping a repair between disabling and re-enabling pool HA would leave
// the pool without master failover.
func (r *engine) begin(pol *Policy, rec *journal.Action) (bool, error) {
	var skipKind SkipReason
	var msg string
	err := r.journal.Update(func(tx journal.Tx) error {
		cur, err := tx.Get(rec.ID)
		if err != nil {
			return err
		}
		*rec = *cur
		switch {
		case !rec.Open():
			return nil // cancelled meanwhile
		case rec.State == journal.StateRunning && rec.Wrote:
			rec.Resumed++
			msg = "resumed after a restart: finished steps are not repeated, an interrupted step re-checks live state before acting"
			if rec.Replica != "" && rec.Replica != r.replica {
				msg = fmt.Sprintf("taken over by replica %s from %s, which stopped holding the pool: finished steps are not repeated, an interrupted step re-checks live state before acting", r.replica, rec.Replica)
			}
			rec.Replica = r.replica
			if err := tx.Put(rec); err != nil {
				return err
			}
			return tx.AppendFor(rec, journal.KindAction, msg, nil)
		}
		kind, reason, err := r.gate(tx, pol, rec.Name, rec.Pool, rec.Host)
		if err != nil {
			return err
		}
		if kind != "" {
			skipKind = kind
			return r.finishTx(tx, rec, journal.StateSkipped, reason)
		}
		rec.DryRun = rec.DryRun || pol.dryRunFor(rec.Name)
		rec.Replica = r.replica
		msg = "started"
		if rec.State == journal.StateRunning {
			rec.Resumed++
			rec.Steps = nil
			msg = "resumed after a restart; nothing was written before it stopped, so it starts again from its first step under the current policy"
		} else {
			rec.State, rec.Started = journal.StateRunning, tx.Now()
		}
		if rec.DryRun {
			msg += " in dry-run mode: live state is read, nothing is written"
		}
		if err := tx.Put(rec); err != nil {
			return err
		}
		return tx.AppendFor(rec, journal.KindAction, msg, nil)
	})
	switch {
	case err != nil:
		return false, err
	case skipKind != "":
		r.ended(rec, skipKind)
		return false, nil
	case rec.State != journal.StateRunning:
		return false, nil
	}
	r.log.Info("action running", "resumed", rec.Resumed > 0, "action", rec.Name, "id", rec.ID, "pool", rec.Pool, "host", rec.Host,
		"dry_run", rec.DryRun, "steps_done", len(rec.Steps))
	return true, nil
}

// runStep journals the start of a step, runs it and journals its end. A
// step that ends the action (an error, or an endError) writes the action's
// final state in the same transaction as its own end, so no crash can leave
// an ended step in front of an open action. It reports whether the action
// ended; when ctx is cancelled mid-step nothing more is written and the
// action stays running for the next Run.
func (r *engine) runStep(ctx context.Context, x *execution, s stepSpec) (bool, error) {
	rec := x.rec
	i := stepIndex(rec.Steps, s.name)
	x.resumed = i >= 0
	err := r.journal.Update(func(tx journal.Tx) error {
		msg := fmt.Sprintf("step %s started", s.name)
		if x.resumed {
			rec.Steps[i].Started, rec.Steps[i].Note = tx.Now(), "resumed after an interruption"
			msg = fmt.Sprintf("step %s resumed after an interruption: re-checking live state before acting", s.name)
		} else {
			rec.Steps = append(rec.Steps, journal.Step{Name: s.name, State: journal.StepStateStarted, Started: tx.Now()})
		}
		if err := tx.Save(rec); err != nil {
			return err
		}
		return tx.AppendFor(rec, journal.KindStep, msg, nil)
	})
	if err != nil {
		return false, err
	}
	x.step, x.stepIdx = s.name, stepIndex(rec.Steps, s.name)

	stepCtx, cancel := context.WithTimeout(ctx, time.Duration(x.pol.StepTimeout))
	runErr := s.run(stepCtx, x)
	cancel()
	if ctx.Err() != nil {
		x.log.Warn("action interrupted; it resumes at the next start", "step", s.name)
		return false, nil
	}

	stepState, note := journal.StepStateDone, "done"
	var final journal.State
	var skip SkipReason
	var reason string
	var ee *endError
	switch {
	case runErr == nil:
	case errors.As(runErr, &ee):
		note, final, skip, reason = ee.reason, ee.state, ee.skip, ee.reason
	default:
		stepState, note = journal.StepStateFailed, runErr.Error()
		final, reason = journal.StateFailed, fmt.Sprintf("step %s failed: %v", s.name, runErr)
	}
	err = r.journal.Update(func(tx journal.Tx) error {
		st := &rec.Steps[x.stepIdx]
		st.State, st.Finished, st.Note = stepState, tx.Now(), note
		if err := tx.Save(rec); err != nil {
			return err
		}
		if err := tx.AppendFor(rec, journal.KindStep, fmt.Sprintf("step %s %s: %s", s.name, stepState, note), nil); err != nil {
			return err
		}
		if final == "" {
			return nil
		}
		return r.finishTx(tx, rec, final, reason)
	})
	if err != nil || final == "" {
		return false, err
	}
	r.ended(rec, skip)
	return true, nil
}

func stepIndex(steps []journal.Step, name stepName) int {
	for i := range steps {
		if steps[i].Name == name {
			return i
		}
	}
	return -1
}

// finish records the end of a running action.
func (r *engine) finish(rec *journal.Action, state journal.State, skip SkipReason, reason string) error {
	err := r.journal.Update(func(tx journal.Tx) error { return r.finishTx(tx, rec, state, reason) })
	if err != nil {
		return err
	}
	r.ended(rec, skip)
	return nil
}

// ended updates the metrics and logs once an action's final state is on
// disk; skip is the skip reason kind of a skipped action.
func (r *engine) ended(rec *journal.Action, skip SkipReason) {
	r.metrics.actions.WithLabelValues(string(rec.Name), string(rec.State)).Inc()
	if isWorkflow(rec.Name) {
		r.metrics.workflowRunning(rec.Pool, rec.Host, rec.Name, false)
	}
	if rec.State == journal.StateSkipped && skip != "" {
		r.metrics.skips.WithLabelValues(string(rec.Name), string(skip)).Inc()
	}
	if !rec.Started.IsZero() {
		r.metrics.duration.WithLabelValues(string(rec.Name)).Observe(rec.Finished.Sub(rec.Started).Seconds())
	}
	lvl := slog.LevelInfo
	if rec.State == journal.StateFailed {
		lvl = slog.LevelWarn
	}
	r.log.Log(context.Background(), lvl, "action finished", "action", rec.Name, "id", rec.ID,
		"pool", rec.Pool, "host", rec.Host, "result", rec.State, "reason", rec.Reason)
}

// finishTx sets the final state and keeps cooldown and backoff current.
func (r *engine) finishTx(tx journal.Tx, rec *journal.Action, state journal.State, reason string) error {
	now := tx.Now()
	rec.State, rec.Reason, rec.Finished = state, reason, now
	ts, err := tx.Target(rec.Target())
	if err != nil {
		return err
	}
	switch state {
	case journal.StateSuccess:
		if rec.Wrote {
			ts.LastSuccess = now
		}
		ts.Failures = 0
	case journal.StateFailed:
		ts.Failures++
		ts.LastFailure = now
	}
	if err := tx.PutTarget(rec.Target(), ts); err != nil {
		return err
	}
	if err := tx.Save(rec); err != nil {
		return err
	}
	msg := string(state)
	if reason != "" {
		msg += ": " + reason
	}
	return tx.AppendFor(rec, journal.KindAction, msg, nil)
}
