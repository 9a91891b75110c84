package remediator

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"

	"xsha/remediator/journal"
)

// Verdict is what the remediator decided about one alert.
type Verdict string

// Verdicts about one alert.
const (
	VerdictQueued    Verdict = "queued"    // a new action was recorded
	VerdictJoined    Verdict = "joined"    // an open action for the same target answers it
	VerdictDuplicate Verdict = "duplicate" // the episode was already acted on
	VerdictSkipped   Verdict = "skipped"   // recorded as a skipped action (hold, cooldown, ...)
	VerdictIgnored   Verdict = "ignored"   // no action applies
	VerdictCancelled Verdict = "cancelled" // resolved: the pending action was cancelled
	VerdictResolved  Verdict = "resolved"  // resolved: nothing to cancel
)

// SkipReason is why an action was not run, the values of the reason label
// of xsha_remediator_skips_total.
type SkipReason string

// Skip reasons.
const (
	SkipHold         SkipReason = "hold"         // an operator's or an automatic hold
	SkipCooldown     SkipReason = "cooldown"     // the target succeeded too recently
	SkipBackoff      SkipReason = "backoff"      // the target failed too recently
	SkipBudget       SkipReason = "budget"       // the pool's hourly attempts are spent
	SkipPrecondition SkipReason = "precondition" // live state rules the action out
	SkipNotAllowed   SkipReason = "not_allowed"  // the policy or the configuration excludes the pool
	SkipBadAlert     SkipReason = "bad_alert"    // the alert lacks the pool or host label
	SkipResolved     SkipReason = "resolved"     // the alert resolved before the action started
	SkipBreaker      SkipReason = "breaker"      // the storm guard's breaker is open
)

// skipReasons lists every skip reason, for the metric's HELP text.
var skipReasons = []SkipReason{SkipHold, SkipCooldown, SkipBackoff, SkipBudget,
	SkipPrecondition, SkipNotAllowed, SkipBadAlert, SkipResolved, SkipBreaker}

// AlertVerdict is what the remediator decided about one alert of a webhook.
type AlertVerdict struct {
	Fingerprint string  `json:"fingerprint"`
	Alert       string  `json:"alertname"`
	Status      string  `json:"status"`
	Verdict     Verdict `json:"verdict"`
	Reason      string  `json:"reason,omitempty"`
	ActionID    uint64  `json:"action_id,omitempty"`

	// For metrics and waking, after commit.
	action ActionName
	pool   string
	skip   SkipReason
}

// alertEntry is the journal data of a received alert.
type alertEntry struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Fingerprint  string            `json:"fingerprint"`
	StartsAt     time.Time         `json:"starts_at"`
	EndsAt       time.Time         `json:"ends_at,omitzero"`
	GroupKey     string            `json:"group_key"`
	Receiver     string            `json:"receiver"`
	Reason       string            `json:"notification_reason,omitempty"`
	Truncated    uint64            `json:"truncated_alerts,omitempty"`
	Remote       string            `json:"remote"`
	GeneratorURL string            `json:"generator_url,omitempty"`
}

// episodeKey identifies one firing episode of one alert for one action on
// one target: Alertmanager re-sends it at every repeat and from every peer.
func episodeKey(action ActionName, target, fingerprint string, startsAt time.Time) string {
	return fmt.Sprintf("%s|%s|%s|%s", action, target, fingerprint, startsAt.UTC().Format(time.RFC3339Nano))
}

// intake records every alert of the message and the decision about it in
// one durable transaction. Each alert is decided on its own, from its own
// status and labels.
func (r *engine) intake(msg *webhook.Message, remote string) ([]AlertVerdict, error) {
	pol := r.policy.Load()
	var verdicts []AlertVerdict
	var storm journal.Breaker
	err := r.journal.Update(func(tx journal.Tx) error {
		verdicts = verdicts[:0]
		// The storm guard counts the whole message before deciding any of it.
		seen := make([]alertLabels, 0, len(msg.Alerts))
		for _, a := range msg.Alerts {
			seen = append(seen, alertLabels{name: a.Labels["alertname"], pool: a.Labels["pool"],
				host: a.Labels["host"], fingerprint: a.Fingerprint, status: a.Status})
		}
		var err error
		if storm, err = r.observeAlerts(tx, pol, seen); err != nil {
			return err
		}
		for _, a := range msg.Alerts {
			v, err := r.decide(tx, pol, msg, a, remote)
			if err != nil {
				return err
			}
			verdicts = append(verdicts, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.setBreakerGauges(storm)
	if msg.TruncatedAlerts > 0 {
		r.metrics.truncated.Add(float64(msg.TruncatedAlerts))
	}
	for _, v := range verdicts {
		switch v.Verdict {
		case VerdictQueued:
			r.wakePool(v.pool)
		case VerdictSkipped:
			r.metrics.actions.WithLabelValues(string(v.action), string(journal.StateSkipped)).Inc()
			r.metrics.skips.WithLabelValues(string(v.action), string(v.skip)).Inc()
		case VerdictCancelled:
			r.metrics.skips.WithLabelValues(string(v.action), string(SkipResolved)).Inc()
		}
	}
	return verdicts, nil
}

// decision is one alert being decided within an intake transaction.
type decision struct {
	tx               journal.Tx
	v                AlertVerdict
	name, pool, host string
}

// verdict journals the verdict about the alert and returns it.
func (d *decision) verdict(verdict Verdict, reason string, rec *journal.Action) (AlertVerdict, error) {
	d.v.Verdict, d.v.Reason = verdict, reason
	e := journal.Entry{Kind: journal.KindVerdict, Pool: d.pool, Host: d.host, Action: d.v.action,
		Message: fmt.Sprintf("alert %s (%s): %s", d.name, d.v.Fingerprint, verdict)}
	if reason != "" {
		e.Message += ": " + reason
	}
	if rec != nil {
		d.v.ActionID, e.ActionID = rec.ID, rec.ID
	}
	return d.v, d.tx.Append(e)
}

// record creates an action for the episode in the given state and journals
// what happened to it.
func (d *decision) record(rec *journal.Action, key, msg string) error {
	if err := d.tx.Create(rec); err != nil {
		return err
	}
	if err := d.tx.SetEpisode(key, rec.ID); err != nil {
		return err
	}
	return d.tx.AppendFor(rec, journal.KindAction, msg, nil)
}

// skip records a skipped action, so the status page and the API show it,
// and returns the skipped verdict.
func (d *decision) skip(pol *Policy, ref journal.AlertRef, key string, kind SkipReason, reason string) (AlertVerdict, error) {
	rec := &journal.Action{Name: d.v.action, Pool: d.pool, Host: d.host, State: journal.StateSkipped, Reason: reason,
		Alert: ref, Episodes: []string{key}, DryRun: pol.dryRunFor(d.v.action), Finished: d.tx.Now()}
	if err := d.record(rec, key, "skipped: "+reason); err != nil {
		return d.v, err
	}
	d.v.skip = kind
	return d.verdict(VerdictSkipped, reason, rec)
}

// decide journals one alert and decides about it from its own status and
// labels: ignored, resolved (cancelling a pending action), a duplicate of
// an episode already answered, joined to an open action on the same target,
// skipped, or queued as a new action.
func (r *engine) decide(tx journal.Tx, pol *Policy, msg *webhook.Message, a template.Alert, remote string) (AlertVerdict, error) {
	d := &decision{tx: tx, name: a.Labels["alertname"], pool: a.Labels["pool"], host: a.Labels["host"]}
	d.v = AlertVerdict{Fingerprint: a.Fingerprint, Alert: d.name, Status: a.Status, pool: d.pool}
	err := tx.Append(journal.Entry{Kind: journal.KindAlert, Pool: d.pool, Host: d.host,
		Message: fmt.Sprintf("alert %s %s", d.name, a.Status),
		Data: mustJSON(alertEntry{Status: a.Status, Labels: a.Labels, Fingerprint: a.Fingerprint,
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GroupKey: msg.GroupKey, Receiver: msg.Receiver,
			Reason: msg.NotificationReason, Truncated: msg.TruncatedAlerts, Remote: remote,
			GeneratorURL: a.GeneratorURL})})
	if err != nil {
		return d.v, err
	}

	action, ok := pol.actionFor(d.name)
	if !ok {
		return d.verdict(VerdictIgnored, "no action is enabled for this alert", nil)
	}
	d.v.action = action
	if !needsHost(action) {
		d.host = ""
	}
	ref := journal.AlertRef{Name: d.name, Fingerprint: a.Fingerprint, StartsAt: a.StartsAt, GroupKey: msg.GroupKey}
	key := episodeKey(action, journal.TargetKey(d.pool, d.host), a.Fingerprint, a.StartsAt)

	if a.Status == statusResolved {
		return d.resolve(key)
	}
	switch _, configured := r.cfg.Pool(d.pool); {
	case d.pool == "":
		return d.skip(pol, ref, key, SkipBadAlert, "the alert has no pool label")
	case needsHost(action) && d.host == "":
		return d.skip(pol, ref, key, SkipBadAlert, "the alert has no host label")
	case !pol.allows(action, d.pool):
		return d.skip(pol, ref, key, SkipNotAllowed, fmt.Sprintf("the policy does not allow %s on pool %s", action, d.pool))
	case !configured:
		return d.skip(pol, ref, key, SkipNotAllowed, fmt.Sprintf("pool %s is not in the configuration", d.pool))
	}

	if id, ok := tx.Episode(key); ok {
		prev, err := tx.Get(id)
		if err != nil {
			return d.v, err
		}
		switch {
		case prev.Open():
			return d.verdict(VerdictDuplicate, fmt.Sprintf("action %d answers this episode and is %s", prev.ID, prev.State), prev)
		case prev.State == journal.StateSuccess, prev.State == journal.StateCancelled:
			return d.verdict(VerdictDuplicate, fmt.Sprintf("action %d already answered this episode (%s)", prev.ID, prev.State), prev)
		case prev.State == journal.StateDryRun && pol.dryRunFor(action):
			return d.verdict(VerdictDuplicate, fmt.Sprintf("action %d already answered this episode in dry-run mode", prev.ID), prev)
		}
		// Failed or skipped before, or dry-run then and live now: evaluate again.
	}

	// One action per target at a time: an open one answers this alert too.
	open, err := tx.Open(d.pool)
	if err != nil {
		return d.v, err
	}
	for _, rec := range open {
		if rec.Name != action || rec.Host != d.host {
			continue
		}
		if !slices.Contains(rec.Episodes, key) {
			rec.Episodes = append(rec.Episodes, key)
			if err := tx.Put(rec); err != nil {
				return d.v, err
			}
		}
		if err := tx.SetEpisode(key, rec.ID); err != nil {
			return d.v, err
		}
		return d.verdict(VerdictJoined, fmt.Sprintf("open action %d on the same target answers it", rec.ID), rec)
	}

	if kind, reason, err := r.gate(tx, pol, action, d.pool, d.host); err != nil {
		return d.v, err
	} else if kind != "" {
		return d.skip(pol, ref, key, kind, reason)
	}
	rec := &journal.Action{Name: action, Pool: d.pool, Host: d.host, State: journal.StatePending,
		DryRun: pol.dryRunFor(action), Alert: ref, Episodes: []string{key}}
	queued := "queued"
	if rec.DryRun {
		queued = "queued in dry-run mode"
	}
	if err := d.record(rec, key, queued); err != nil {
		return d.v, err
	}
	return d.verdict(VerdictQueued, "", rec)
}

// resolve cancels the episode's action if it has not started. Resolved
// alerts never cause a write.
func (d *decision) resolve(key string) (AlertVerdict, error) {
	id, ok := d.tx.Episode(key)
	if !ok {
		return d.verdict(VerdictResolved, "no action answers this episode", nil)
	}
	rec, err := d.tx.Get(id)
	if err != nil {
		return d.v, err
	}
	switch rec.State {
	case journal.StatePending:
		if !slices.Contains(rec.Resolved, key) {
			rec.Resolved = append(rec.Resolved, key)
		}
		if len(rec.Resolved) < len(rec.Episodes) {
			if err := d.tx.Put(rec); err != nil {
				return d.v, err
			}
			return d.verdict(VerdictResolved, fmt.Sprintf("action %d still answers other firing alerts", rec.ID), rec)
		}
		rec.State, rec.Reason, rec.Finished = journal.StateCancelled, "the alert resolved before the action started", d.tx.Now()
		if err := d.tx.Put(rec); err != nil {
			return d.v, err
		}
		if err := d.tx.AppendFor(rec, journal.KindAction, "cancelled: "+rec.Reason, nil); err != nil {
			return d.v, err
		}
		return d.verdict(VerdictCancelled, rec.Reason, rec)
	case journal.StateRunning:
		return d.verdict(VerdictResolved, fmt.Sprintf("action %d is running; it re-checks live state before every step", rec.ID), rec)
	default:
		return d.verdict(VerdictResolved, fmt.Sprintf("action %d ended %s", rec.ID, rec.State), rec)
	}
}

// gate applies the policy (which may have been reloaded since the alert
// came), holds set by operators, cooldown, backoff and the hourly attempt
// budget. It returns the skip reason kind and text, or "".
func (r *engine) gate(tx journal.Tx, pol *Policy, action ActionName, pool, host string) (SkipReason, string, error) {
	now := tx.Now()
	if !pol.allows(action, pool) {
		return SkipNotAllowed, fmt.Sprintf("the policy does not allow %s on pool %s", action, pool), nil
	}
	if h, ok, err := r.manualHold(tx, pol, pool); err != nil {
		return "", "", err
	} else if ok {
		scope := "pool " + pool
		if h.Pool == "" {
			scope = "every pool"
		}
		return SkipHold, fmt.Sprintf("hold on %s (%s): %s", scope, h.Source, h.Reason), nil
	}
	if reason, held, err := workflowHold(tx, action, pool); err != nil || held {
		return SkipHold, reason, err
	}
	if storm, err := tx.Breaker(); err != nil {
		return "", "", err
	} else if why := breakerGate(storm); why != "" {
		return SkipBreaker, why, nil
	}
	if isWorkflow(action) {
		// Started by an operator: cooldown, backoff and the attempt budget
		// guard against alert loops, not against planned work.
		return "", "", nil
	}
	ts, err := tx.Target(journal.TargetKey(pool, host))
	if err != nil {
		return "", "", err
	}
	if cd := time.Duration(pol.Cooldown); !ts.LastSuccess.IsZero() && now.Sub(ts.LastSuccess) < cd {
		return SkipCooldown, fmt.Sprintf("cooldown: the last action on %s succeeded at %s; next one allowed after %s",
			journal.TargetKey(pool, host), ts.LastSuccess.UTC().Format(time.RFC3339), ts.LastSuccess.Add(cd).UTC().Format(time.RFC3339)), nil
	}
	if ts.Failures > 0 {
		wait := backoffFor(time.Duration(pol.Backoff), ts.Failures)
		if now.Sub(ts.LastFailure) < wait {
			return SkipBackoff, fmt.Sprintf("backoff after %d consecutive failure(s) on %s: next attempt allowed after %s",
				ts.Failures, journal.TargetKey(pool, host), ts.LastFailure.Add(wait).UTC().Format(time.RFC3339)), nil
		}
	}
	attempts, err := tx.Attempts(pool, now)
	if err != nil {
		return "", "", err
	}
	if len(attempts) >= pol.MaxAttemptsPerHour {
		return SkipBudget, fmt.Sprintf("attempt budget spent: %d action(s) wrote to pool %s in the last hour (max_attempts_per_hour %d); remediation of the pool stops until %s",
			len(attempts), pool, pol.MaxAttemptsPerHour, attempts[0].Add(time.Hour).UTC().Format(time.RFC3339)), nil
	}
	return "", "", nil
}

// backoffFor doubles base for each consecutive failure after the first,
// capped at one hour.
func backoffFor(base time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// mustJSON encodes values that always encode (plain structs).
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding journal data: %v", err))
	}
	return b
}
