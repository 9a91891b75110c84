package remediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"xsha/config"
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
func (r *Remediator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, p := range r.cfg.Pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(ctx, p)
		}()
	}
	r.running.Store(true)
	wg.Wait()
	r.running.Store(false)
	return nil
}

func (r *Remediator) worker(ctx context.Context, pool config.Pool) {
	log := r.log.With("pool", pool.Name)
	for {
		for ctx.Err() == nil {
			var open []*Record
			err := r.journal.View(func(tx *Tx) error {
				var err error
				open, err = tx.Open(pool.Name)
				return err
			})
			if err == nil && len(open) == 0 {
				break
			}
			if err == nil {
				err = r.execute(ctx, pool, open[0])
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
		case <-time.After(retryInterval):
		}
	}
}

// endError ends an action early: already healthy (success), held or a
// failed precondition (skipped), or dry-run.
type endError struct {
	state, skip, reason string
}

func (e *endError) Error() string { return e.state + ": " + e.reason }

func end(state, skip, reason string) error {
	return &endError{state: state, skip: skip, reason: reason}
}

// step is one journaled step of an action. run re-reads live state before
// it acts, so running it again after an interruption does not repeat what
// is already done.
type step struct {
	name string
	run  func(ctx context.Context, x *execution) error
}

// stepsFor returns the steps of the record's action. The names are stable:
// the journal matches them on resume.
func stepsFor(rec *Record) ([]step, error) {
	switch rec.Action {
	case ActionEnablePoolHA:
		return enablePoolHASteps(), nil
	case ActionClearEmergencyMode:
		return clearEmergencyModeSteps(rec.Host), nil
	case ActionRejoinHost:
		return rejoinHostSteps(rec.Host), nil
	}
	return nil, fmt.Errorf("unknown action %q", rec.Action)
}

// execute runs one open record to its end, or until ctx is cancelled. It
// returns an error only when the journal could not be written.
func (r *Remediator) execute(ctx context.Context, pool config.Pool, rec *Record) error {
	pol := r.policy.Get()
	log := r.log.With("action", rec.Action, "id", rec.ID, "pool", rec.Pool, "host", rec.Host)
	steps, err := stepsFor(rec)
	if err != nil {
		return r.finish(rec, StateFailed, "", err.Error())
	}

	if rec.State == StatePending {
		var skipKind string
		err := r.journal.Update(func(tx *Tx) error {
			cur, err := tx.Get(rec.ID)
			if err != nil {
				return err
			}
			*rec = *cur
			if rec.State != StatePending {
				return nil
			}
			kind, reason, err := r.gate(tx, pol, rec.Action, rec.Pool, rec.Host)
			if err != nil {
				return err
			}
			if kind != "" {
				skipKind = kind
				return r.finishTx(tx, rec, StateSkipped, reason)
			}
			rec.State, rec.Started = StateRunning, tx.now()
			rec.DryRun = rec.DryRun || pol.DryRunFor(rec.Action)
			if err := tx.Save(rec); err != nil {
				return err
			}
			msg := "started"
			if rec.DryRun {
				msg = "started in dry-run mode: live state is read, nothing is written"
			}
			return tx.AppendFor(rec, KindAction, msg, nil)
		})
		if err != nil {
			return err
		}
		if skipKind != "" {
			r.finished(rec, skipKind)
			log.Info("action skipped", "reason", rec.Reason)
			return nil
		}
		if rec.State != StateRunning {
			return nil // cancelled meanwhile
		}
		log.Info("action started", "dry_run", rec.DryRun)
	} else {
		err := r.journal.Update(func(tx *Tx) error {
			rec.Resumed++
			if err := tx.Save(rec); err != nil {
				return err
			}
			return tx.AppendFor(rec, KindAction, "resumed after a restart: finished steps are not repeated, an interrupted step re-checks live state before acting", nil)
		})
		if err != nil {
			return err
		}
		log.Info("action resumed", "steps_done", len(rec.Steps))
	}

	x := &execution{r: r, rec: rec, pol: pol, pool: pool, client: r.clients[rec.Pool], log: log}
	for _, s := range steps {
		i := slicesIndex(rec.Steps, s.name)
		if i >= 0 && rec.Steps[i].State == StepDone {
			continue
		}
		resumed := i >= 0
		err := r.journal.Update(func(tx *Tx) error {
			msg := "step " + s.name + " started"
			if resumed {
				rec.Steps[i].Started, rec.Steps[i].Note = tx.now(), "resumed after an interruption"
				msg = "step " + s.name + " resumed after an interruption: re-checking live state before acting"
			} else {
				rec.Steps = append(rec.Steps, Step{Name: s.name, State: StepStarted, Started: tx.now()})
			}
			if err := tx.Save(rec); err != nil {
				return err
			}
			return tx.AppendFor(rec, KindStep, msg, nil)
		})
		if err != nil {
			return err
		}
		i = slicesIndex(rec.Steps, s.name)
		x.step, x.stepIdx, x.resumed = s.name, i, resumed

		stepCtx, cancel := context.WithTimeout(ctx, time.Duration(pol.StepTimeout))
		runErr := s.run(stepCtx, x)
		cancel()
		if ctx.Err() != nil {
			// Shut down (or crashed) mid-step: the record stays running and
			// the next Run resumes it.
			log.Warn("action interrupted; it resumes at the next start", "step", s.name)
			return nil
		}
		var ee *endError
		state, note := StepDone, "done"
		switch {
		case runErr == nil:
		case errors.As(runErr, &ee):
			note = ee.reason
		default:
			state, note = StepFailed, runErr.Error()
		}
		err = r.journal.Update(func(tx *Tx) error {
			rec.Steps[i].State, rec.Steps[i].Finished, rec.Steps[i].Note = state, tx.now(), note
			if err := tx.Save(rec); err != nil {
				return err
			}
			return tx.AppendFor(rec, KindStep, fmt.Sprintf("step %s %s: %s", s.name, state, note), nil)
		})
		if err != nil {
			return err
		}
		switch {
		case ee != nil:
			return r.finish(rec, ee.state, ee.skip, ee.reason)
		case runErr != nil:
			return r.finish(rec, StateFailed, "", fmt.Sprintf("step %s failed: %v", s.name, runErr))
		}
	}
	return r.finish(rec, StateSuccess, "", x.doneReason())
}

func slicesIndex(steps []Step, name string) int {
	for i := range steps {
		if steps[i].Name == name {
			return i
		}
	}
	return -1
}

// finish records the end of a running action.
func (r *Remediator) finish(rec *Record, state, skip, reason string) error {
	err := r.journal.Update(func(tx *Tx) error { return r.finishTx(tx, rec, state, reason) })
	if err != nil {
		return err
	}
	r.finished(rec, skip)
	lvl := slog.LevelInfo
	if state == StateFailed {
		lvl = slog.LevelWarn
	}
	r.log.Log(context.Background(), lvl, "action finished", "action", rec.Action, "id", rec.ID,
		"pool", rec.Pool, "host", rec.Host, "result", state, "reason", reason)
	return nil
}

// finishTx sets the final state and keeps cooldown and backoff current.
func (r *Remediator) finishTx(tx *Tx, rec *Record, state, reason string) error {
	now := tx.now()
	rec.State, rec.Reason, rec.Finished = state, reason, now
	ts, err := tx.target(rec.target())
	if err != nil {
		return err
	}
	switch state {
	case StateSuccess:
		if rec.Wrote {
			ts.LastSuccess = now
		}
		ts.Failures = 0
	case StateFailed:
		ts.Failures++
		ts.LastFailure = now
	}
	if err := tx.putTarget(rec.target(), ts); err != nil {
		return err
	}
	if err := tx.Save(rec); err != nil {
		return err
	}
	msg := state
	if reason != "" {
		msg += ": " + reason
	}
	return tx.AppendFor(rec, KindAction, msg, nil)
}

// finished updates the metrics once a final state is on disk.
func (r *Remediator) finished(rec *Record, skip string) {
	r.metrics.actions.WithLabelValues(rec.Action, rec.State).Inc()
	if rec.State == StateSkipped && skip != "" {
		r.metrics.skips.WithLabelValues(rec.Action, skip).Inc()
	}
	if !rec.Started.IsZero() {
		r.metrics.duration.WithLabelValues(rec.Action).Observe(rec.Finished.Sub(rec.Started).Seconds())
	}
}
