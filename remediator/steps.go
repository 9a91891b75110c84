package remediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"xsha/config"
	"xsha/remediator/journal"
	"xsha/xapi"
)

// execution is the context of one running action.
type execution struct {
	r      *engine
	rec    *journal.Action
	pol    *Policy
	pool   config.Pool
	client PoolClient
	log    *slog.Logger
	step   stepName
	// stepIdx is the current step's index in rec.Steps; resumed is set when
	// the step was interrupted before and runs again.
	stepIdx int
	resumed bool
}

// journal appends an entry about the action.
func (x *execution) journal(kind journal.Kind, msg string, data any) error {
	return x.r.journal.Update(func(tx journal.Tx) error { return tx.AppendFor(x.rec, kind, string(x.step)+": "+msg, data) })
}

// read re-reads live state through XAPI and journals what it saw.
func (x *execution) read(ctx context.Context, why string) (*xapi.Snapshot, error) {
	s, err := x.client.Read(ctx)
	if err != nil {
		_ = x.journal(journal.KindState, "reading live state "+why+" failed: "+err.Error(), nil)
		return nil, fmt.Errorf("reading live state %s: %w", why, err)
	}
	if err := x.journal(journal.KindState, "live state "+why, viewOf(s)); err != nil {
		return nil, err
	}
	return s, nil
}

// callData is the journal data of an XAPI write.
type callData struct {
	Method string `json:"method"`
	Args   any    `json:"args,omitempty"`
	Error  string `json:"error,omitempty"`
	Code   string `json:"code,omitempty"`
}

// errNoAnswer wraps a write that got no answer from XAPI (timed out or
// cut): it may still complete, so its effect is checked on live state.
var errNoAnswer = errors.New("no answer from XAPI; the call may still complete")

// call journals an XAPI write, makes it, and journals the result. Error
// codes in accept mean the wanted state already holds and count as success.
// A write without an answer returns an error wrapping errNoAnswer.
// Nothing is written in dry-run mode.
func (x *execution) call(ctx context.Context, method string, args any, fn func(context.Context) error, accept ...string) error {
	if x.rec.DryRun {
		return fmt.Errorf("refusing %s in dry-run mode", method)
	}
	st := &x.rec.Steps[x.stepIdx]
	if x.resumed && slices.Contains(st.Calls, method) {
		// Made before the interruption, its result unknown or not acted
		// on: not made again; the step's own wait or the next step checks
		// its effect on live state, and fails the action if it is missing.
		return x.journal(journal.KindNote, method+" was called before the interruption; not calling it again, its effect is checked on live state", nil)
	}
	err := x.r.journal.Update(func(tx journal.Tx) error {
		st.Calls = append(st.Calls, method)
		if !x.rec.Wrote {
			x.rec.Wrote = true
			if err := tx.AddAttempt(x.rec.Pool, tx.Now()); err != nil {
				return err
			}
		}
		if err := tx.Save(x.rec); err != nil {
			return err
		}
		return tx.AppendFor(x.rec, journal.KindCall, string(x.step)+": calling "+method, callData{Method: method, Args: args})
	})
	if err != nil {
		return fmt.Errorf("journaling %s before the call: %w", method, err)
	}
	x.log.Info("XAPI call", "method", method, "step", x.step)
	callErr := fn(ctx)
	res := callData{Method: method, Args: args}
	msg := method + " succeeded"
	if callErr != nil {
		res.Error, res.Code = callErr.Error(), xapi.ErrorCode(callErr)
		msg = method + " failed: " + callErr.Error()
		for _, c := range accept {
			if res.Code == c {
				msg = fmt.Sprintf("%s answered %s: the wanted state already holds", method, c)
				callErr = nil
			}
		}
	}
	if err := x.journal(journal.KindCall, msg, res); err != nil {
		return fmt.Errorf("journaling the result of %s: %w", method, err)
	}
	if callErr != nil {
		if xapi.IsUnreachable(callErr) {
			return fmt.Errorf("%s: %w: %w", method, errNoAnswer, callErr)
		}
		return fmt.Errorf("%s: %w", method, callErr)
	}
	return nil
}

// waitFor re-reads live state every poll interval until cond holds, and
// journals the state it ends with. Read errors while waiting are retried
// (a master may be restarting).
func (x *execution) waitFor(ctx context.Context, what string, cond func(*xapi.Snapshot) (bool, string)) (*xapi.Snapshot, error) {
	_ = x.journal(journal.KindNote, "waiting for "+what, nil)
	interval := time.Duration(x.pol.PollInterval)
	last := "no state read yet"
	for {
		s, err := x.client.Read(ctx)
		if err == nil {
			ok, status := cond(s)
			if ok {
				return s, x.journal(journal.KindState, "live state after waiting for "+what, viewOf(s))
			}
			last = status
		} else if ctx.Err() == nil {
			last = "reading live state: " + err.Error()
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			if s != nil {
				_ = x.journal(journal.KindState, "live state when giving up waiting for "+what, viewOf(s))
			}
			return nil, fmt.Errorf("%s did not happen within %s: %s", what, x.pol.StepTimeout, last)
		case <-t.C:
		}
	}
}

// holds evaluates the automatic holds on live state; target is left out.
func (x *execution) holds(ctx context.Context, s *xapi.Snapshot, target string) error {
	if reasons := x.r.autoHolds(ctx, x.rec.Pool, s, target); len(reasons) > 0 {
		return end(journal.StateSkipped, SkipHold, "automatic hold: "+strings.Join(reasons, "; "))
	}
	return nil
}

// enableBlockers lists the reasons pool.enable_ha must not be called now:
// the heartbeat SR must exist with a PBD on every host, attached; every
// host must be live, enabled and answer normally (not in emergency mode);
// no VM may carry a XenServer HA restart priority, since VM HA stays with
// CloudStack. The host named except is not required to be live, enabled or
// attached yet (it is the one an action brings back).
func enableBlockers(s *xapi.Snapshot, heartbeatSR, except string) []string {
	var b []string
	if !s.Up {
		b = append(b, "the pool is not readable through its master")
	}
	if s.HeartbeatSR == nil {
		b = append(b, fmt.Sprintf("heartbeat SR %q does not exist", heartbeatSR))
	}
	for _, h := range s.Hosts {
		if s.HeartbeatSR != nil {
			attached, has := s.HeartbeatSR.Attached[h.Name]
			switch {
			case !has:
				b = append(b, fmt.Sprintf("host %s has no PBD for heartbeat SR %s", h.Name, s.HeartbeatSR.Name))
			case !attached && h.Name == except:
				// The master keeps a host's PBD as the host last set it
				// (storage_access.ml resynchronises it at start-up only): a
				// host away or in emergency mode still shows attached unless
				// its path to the heartbeat SR was lost. Repairing it would
				// leave pool HA off once it rejoins.
				b = append(b, fmt.Sprintf("heartbeat SR %s is not attached on host %s, so pool HA could not be re-enabled once it rejoins", s.HeartbeatSR.Name, h.Name))
			case !attached:
				b = append(b, fmt.Sprintf("heartbeat SR %s is not attached on host %s", s.HeartbeatSR.Name, h.Name))
			}
		}
		if h.Name == except {
			continue
		}
		if !h.Live {
			b = append(b, fmt.Sprintf("host %s is not live", h.Name))
		}
		if !h.Enabled {
			b = append(b, fmt.Sprintf("host %s is not enabled", h.Name))
		}
		switch h.Probe.Role {
		case xapi.RoleEmergency:
			b = append(b, fmt.Sprintf("host %s is in emergency mode (%s)", h.Name, strings.Join(h.Probe.Error, " ")))
		case xapi.RoleUnreachable:
			b = append(b, fmt.Sprintf("host %s does not answer on its address", h.Name))
		}
	}
	if s.VMsHAProtected > 0 {
		b = append(b, fmt.Sprintf("%d VM(s) have a XenServer HA restart priority; VM HA must stay with CloudStack", s.VMsHAProtected))
	}
	return b
}

// hostState describes a host for journal messages.
func hostState(h xapi.Host) string {
	s := fmt.Sprintf("role %s, live %t, enabled %t", roleOf(h), h.Live, h.Enabled)
	if len(h.Probe.Error) > 0 {
		s += " (" + strings.Join(h.Probe.Error, " ") + ")"
	}
	return s
}

func roleOf(h xapi.Host) xapi.Role {
	if h.Probe.Role == "" {
		return "unknown"
	}
	return h.Probe.Role
}

// rejoined reports whether the host is back as a slave the master sees live
// and enabled.
func rejoined(h xapi.Host) bool {
	return h.Probe.Role == xapi.RoleSlave && h.Live && h.Enabled
}

// disablePoolHAStep switches pool HA off. stillNeeded is asked on fresh
// state before the call; when it returns an error (an endError: the problem
// went away by itself, or the target is gone), the action ends with it and
// the pool is left untouched.
func disablePoolHAStep(stillNeeded func(*xapi.Snapshot) error) stepSpec {
	return stepSpec{name: stepNameDisablePoolHA, run: func(ctx context.Context, x *execution) error {
		s, err := x.read(ctx, "before disabling pool HA")
		if err != nil {
			return err
		}
		if !s.HAEnabled {
			return x.journal(journal.KindNote, "pool HA is already off", nil)
		}
		if err := stillNeeded(s); err != nil {
			return err
		}
		if reason := disableBlocked(s); reason != "" {
			if !x.rec.Wrote {
				return end(journal.StateSkipped, SkipPrecondition, "precondition failed, pool left untouched: "+reason)
			}
			return fmt.Errorf("not calling pool.disable_ha: %s", reason)
		}
		if err := x.call(ctx, "pool.disable_ha", nil, x.client.DisableHA, xapi.CodeHANotEnabled); err != nil && !errors.Is(err, errNoAnswer) {
			return err
		}
		_, err = x.waitFor(ctx, "pool HA to be off", func(s *xapi.Snapshot) (bool, string) {
			if m, ok := s.Master(); ok && len(m.HAStatefiles) == 0 {
				return !s.HAEnabled, "pool HA is still enabled; the master cannot reach the HA statefile, so xapi retries " +
					"pool.disable_ha every 30 s until every host answers and may still turn pool HA off later"
			}
			return !s.HAEnabled, "pool HA is still enabled"
		})
		return err
	}}
}

// disableBlocked says why pool.disable_ha could not finish, or "": when
// the master cannot reach the statefile, xapi disables HA host by host and
// retries every 30 s until every host in its database has answered
// (xapi_ha.ml, disable_internal), so one host that is not live blocks the
// call for as long as it stays away.
func disableBlocked(s *xapi.Snapshot) string {
	m, ok := s.Master()
	if !ok || len(m.HAStatefiles) > 0 {
		return ""
	}
	var silent []string
	for _, h := range s.Hosts {
		if !h.IsMaster && (!h.Live || h.Probe.Role == xapi.RoleUnreachable) {
			silent = append(silent, fmt.Sprintf("host %s (%s)", h.Name, hostState(h)))
		}
	}
	if len(silent) == 0 {
		return ""
	}
	return "the master cannot reach the HA statefile, so pool.disable_ha would wait for every host to answer, " +
		"retrying every 30 s without end, and " + strings.Join(silent, ", ") + " cannot answer"
}

// waitRejoinStep waits until the host is a live, enabled slave.
func waitRejoinStep(host string) stepSpec {
	return stepSpec{name: stepNameWaitRejoin, run: func(ctx context.Context, x *execution) error {
		_, err := x.waitFor(ctx, fmt.Sprintf("host %s to rejoin the pool as a live, enabled slave", host),
			func(s *xapi.Snapshot) (bool, string) {
				h, ok := s.Host(host)
				if !ok {
					return false, fmt.Sprintf("host %s is not a member of the pool", host)
				}
				return rejoined(h), fmt.Sprintf("host %s: %s", host, hostState(h))
			})
		return err
	}}
}

// enablePoolHAStep calls pool.enable_ha with the configured heartbeat SR
// only, after checking every precondition on fresh state. Blocked before
// the action wrote anything, it ends the action as skipped; blocked after
// (re-enabling at the end of a repair), it fails.
func enablePoolHAStep() stepSpec {
	return stepSpec{name: stepNameEnablePoolHA, run: func(ctx context.Context, x *execution) error {
		s, err := x.read(ctx, "before enabling pool HA")
		if err != nil {
			return err
		}
		if s.HAEnabled {
			return x.journal(journal.KindNote, "pool HA is already enabled", nil)
		}
		if b := enableBlockers(s, x.pool.HeartbeatSR, ""); len(b) > 0 {
			reason := "precondition failed: " + strings.Join(b, "; ")
			if !x.rec.Wrote {
				return end(journal.StateSkipped, SkipPrecondition, reason)
			}
			return fmt.Errorf("cannot re-enable pool HA: %s", reason)
		}
		sr, cfg := s.HeartbeatSR.UUID, x.pol.haConfiguration()
		args := map[string]any{"heartbeat_srs": []string{sr}, "heartbeat_sr_name": s.HeartbeatSR.Name, "configuration": cfg}
		err = x.call(ctx, "pool.enable_ha", args, func(ctx context.Context) error {
			return x.client.EnableHA(ctx, sr, cfg)
		}, xapi.CodeHAIsEnabled)
		if errors.Is(err, errNoAnswer) {
			// pool.enable_ha takes minutes on real pools; xapi goes on
			// after the client gave up waiting for the answer.
			_, err = x.waitFor(ctx, "pool HA to be enabled", func(s *xapi.Snapshot) (bool, string) {
				return s.HAEnabled, "pool HA is still off"
			})
		}
		return err
	}}
}

// verifyStep waits until pool HA is enabled, no host is in emergency mode
// and, for host actions, the host is a live slave; enable_ha alone cannot
// clear emergency mode, so this is where a repair that did not take is
// caught.
func verifyStep(host string) stepSpec {
	return stepSpec{name: stepNameVerify, run: func(ctx context.Context, x *execution) error {
		_, err := x.waitFor(ctx, "pool HA enabled with every host out of emergency mode", func(s *xapi.Snapshot) (bool, string) {
			if !s.HAEnabled {
				return false, "pool HA is off"
			}
			for _, h := range s.Hosts {
				if h.Probe.Role == xapi.RoleEmergency {
					return false, fmt.Sprintf("host %s is in emergency mode", h.Name)
				}
			}
			if host != "" {
				h, ok := s.Host(host)
				if !ok || !rejoined(h) {
					return false, fmt.Sprintf("host %s is not back: %s", host, hostState(h))
				}
			}
			return true, ""
		})
		return err
	}}
}

// checkRepair ends the check step of a repair that switches pool HA off
// to bring host back (clear_emergency_mode, rejoin_host): the automatic
// holds; then, since pool HA goes off first, that it could be switched on
// again once the host is back; in dry-run mode it ends the action with the
// plan: the writes given, the wait for the host, and pool.enable_ha.
func checkRepair(ctx context.Context, x *execution, s *xapi.Snapshot, host string, writes ...string) error {
	if err := x.holds(ctx, s, host); err != nil {
		return err
	}
	if b := enableBlockers(s, x.pool.HeartbeatSR, host); len(b) > 0 {
		return end(journal.StateSkipped, SkipPrecondition,
			"precondition failed, pool left untouched (pool HA could not be re-enabled afterwards): "+strings.Join(b, "; "))
	}
	if x.rec.DryRun {
		return end(journal.StateDryRun, "", planText(slices.Concat(writes, []string{
			fmt.Sprintf("wait until the master sees %s live as a slave", host),
			"check enable_pool_ha's preconditions and " + enableCall(x, s),
		})...))
	}
	return nil
}

// planText describes the writes a dry run would have made.
func planText(steps ...string) string {
	return "dry-run: would " + strings.Join(steps, ", then ")
}

// enableCall describes the pool.enable_ha call a dry run would have made.
func enableCall(x *execution, s *xapi.Snapshot) string {
	return fmt.Sprintf("call pool.enable_ha(heartbeat_srs=[%s (%s)], configuration=%v)",
		s.HeartbeatSR.UUID, s.HeartbeatSR.Name, x.pol.haConfiguration())
}
