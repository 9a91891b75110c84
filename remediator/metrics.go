package remediator

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"xsha/remediator/journal"
)

// results are the final states an action can end with once it ran or was
// skipped, pre-set in xsha_remediator_actions_total.
var results = []journal.State{journal.StateSuccess, journal.StateFailed, journal.StateSkipped, journal.StateDryRun}

// webhookResult is what came of a webhook request, the values of the
// result label of xsha_remediator_webhooks_total.
type webhookResult string

// Webhook results.
const (
	webhookAccepted         webhookResult = "accepted"
	webhookUnauthorized     webhookResult = "unauthorized"
	webhookMethodNotAllowed webhookResult = "method_not_allowed"
	webhookUnsupportedType  webhookResult = "unsupported_media_type"
	webhookTooLarge         webhookResult = "too_large"
	webhookBadRequest       webhookResult = "bad_request"
	webhookJournalError     webhookResult = "journal_error"
)

var (
	webhooksOpts = prometheus.CounterOpts{
		Name: "xsha_remediator_webhooks_total",
		Help: "Webhook requests received, by result (accepted, or why they were rejected).",
	}
	actionsOpts = prometheus.CounterOpts{
		Name: "xsha_remediator_actions_total",
		Help: "Remediation actions finished, by action and result (" + joined(results) + ").",
	}
	durationOpts = prometheus.HistogramOpts{
		Name:    "xsha_remediator_action_duration_seconds",
		Help:    "How long remediation actions took from start to finish, by action.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 2400},
	}
	holdOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_hold",
		Help: "Whether remediation is held for the pool (1) by an operator or automatically, as last evaluated.",
	}
	dryRunOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_dry_run",
		Help: "Whether the policy puts the remediator in dry-run mode (1): actions are evaluated and journaled but nothing is written.",
	}
	skipsOpts = prometheus.CounterOpts{
		Name: "xsha_remediator_skips_total",
		Help: "Actions not run, by action and reason (" + joined(skipReasons) + ").",
	}
	breakerOpenOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_breaker_open",
		Help: "Whether the storm guard's breaker is open (1): too many pools have a firing remediable alert, and no new action runs until it closes.",
	}
	breakerPoolsOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_breaker_firing_pools",
		Help: "Pools with a firing remediable alert within the breaker's window, as the breaker counts them.",
	}
	runningPoolsOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_running_pools",
		Help: "Pools with an action running now (at most max_running_pools, unless actions resumed after a restart).",
	}
	waitingPoolsOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_waiting_pools",
		Help: "Pools whose next action waits for max_running_pools.",
	}
	gcRemovedOpts = prometheus.CounterOpts{
		Name: "xsha_remediator_journal_gc_removed_total",
		Help: "What the journal's retention removed, by kind (" + joined(gcKinds) + ").",
	}
	journalSizeOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_journal_size_bytes",
		Help: "Size of the journal file as of the last maintenance; it does not shrink, freed pages are reused.",
	}
	journalActionsOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_journal_actions",
		Help: "Actions held in the journal as of the last maintenance.",
	}
	actionRunningOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_action_running",
		Help: "1 per running action (workflows included), labelled with the replica running it, as the journal says: with a shared journal every replica reports every pool's; refreshed when a pool's runner looks for work (every 2 s with a shared journal) and every minute.",
	}
	journalUpOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_journal_up",
		Help: "1 while the journal answers; 0 while it fails (a shared journal's etcd without a quorum): actions stop before their next XAPI write and webhooks are answered 503 until it answers again.",
	}
	workflowRunningOpts = prometheus.GaugeOpts{
		Name: "xsha_remediator_workflow_running",
		Help: "1 while a planned-maintenance workflow is open (pending or running) on the pool's host; alerts its steps cause by design are silenced by the rules on it.",
	}
	truncatedOpts = prometheus.CounterOpts{
		Name: "xsha_remediator_alerts_truncated_total",
		Help: "Alerts Alertmanager left out of webhook messages (truncatedAlerts); set max_alerts to 0 on the receiver.",
	}
)

// MetricNames returns the names of every metric the remediator exposes.
func MetricNames() []string {
	return []string{
		webhooksOpts.Name, actionsOpts.Name, durationOpts.Name, holdOpts.Name,
		dryRunOpts.Name, skipsOpts.Name, truncatedOpts.Name,
		breakerOpenOpts.Name, breakerPoolsOpts.Name, runningPoolsOpts.Name, waitingPoolsOpts.Name,
		gcRemovedOpts.Name, journalSizeOpts.Name, journalActionsOpts.Name,
		workflowRunningOpts.Name, journalUpOpts.Name, actionRunningOpts.Name,
	}
}

// metrics are the remediator's own metrics.
type metrics struct {
	webhooks  *prometheus.CounterVec
	actions   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	hold      *prometheus.GaugeVec
	dryRun    prometheus.Gauge
	skips     *prometheus.CounterVec
	truncated prometheus.Counter

	breakerOpen    prometheus.Gauge
	breakerPools   prometheus.Gauge
	runningPools   prometheus.Gauge
	waitingPools   prometheus.Gauge
	gcRemoved      *prometheus.CounterVec
	journalSize    prometheus.Gauge
	journalActions prometheus.Gauge
	journalUp      prometheus.Gauge
	actionRunning  *prometheus.GaugeVec
	workflows      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		webhooks:  prometheus.NewCounterVec(webhooksOpts, []string{"result"}),
		actions:   prometheus.NewCounterVec(actionsOpts, []string{"action", "result"}),
		duration:  prometheus.NewHistogramVec(durationOpts, []string{"action"}),
		hold:      prometheus.NewGaugeVec(holdOpts, []string{"pool"}),
		dryRun:    prometheus.NewGauge(dryRunOpts),
		skips:     prometheus.NewCounterVec(skipsOpts, []string{"action", "reason"}),
		truncated: prometheus.NewCounter(truncatedOpts),
		workflows: prometheus.NewGaugeVec(workflowRunningOpts, []string{"pool", "host", "workflow"}),

		breakerOpen:    prometheus.NewGauge(breakerOpenOpts),
		breakerPools:   prometheus.NewGauge(breakerPoolsOpts),
		runningPools:   prometheus.NewGauge(runningPoolsOpts),
		waitingPools:   prometheus.NewGauge(waitingPoolsOpts),
		gcRemoved:      prometheus.NewCounterVec(gcRemovedOpts, []string{"kind"}),
		journalSize:    prometheus.NewGauge(journalSizeOpts),
		journalActions: prometheus.NewGauge(journalActionsOpts),
		journalUp:      prometheus.NewGauge(journalUpOpts),
		actionRunning:  prometheus.NewGaugeVec(actionRunningOpts, []string{"pool", "action", "replica"}),
	}
	m.journalUp.Set(1)
	for _, k := range gcKinds {
		m.gcRemoved.WithLabelValues(string(k))
	}
	for _, r := range []webhookResult{webhookAccepted, webhookUnauthorized, webhookMethodNotAllowed,
		webhookUnsupportedType, webhookTooLarge, webhookBadRequest, webhookJournalError} {
		m.webhooks.WithLabelValues(string(r))
	}
	for _, a := range actionTable {
		for _, r := range results {
			m.actions.WithLabelValues(string(a.name), string(r))
		}
	}
	if reg != nil {
		reg.MustRegister(m.webhooks, m.actions, m.duration, m.hold, m.dryRun, m.skips, m.truncated,
			m.breakerOpen, m.breakerPools, m.runningPools, m.waitingPools, m.gcRemoved, m.journalSize, m.journalActions, m.workflows, m.journalUp, m.actionRunning)
	}
	return m
}

// joined lists label values for a HELP text.
func joined[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
