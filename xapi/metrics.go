package xapi

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the package's own counters, shared by every watcher and
// client of one process. A nil *Metrics counts nothing.
type Metrics struct {
	calls    *prometheus.CounterVec
	sessions *prometheus.GaugeVec
}

var (
	callsOpts = prometheus.CounterOpts{
		Name: "xsha_xapi_calls_total",
		Help: "XAPI calls made, by pool and method (probes and event.from included).",
	}
	sessionsOpts = prometheus.GaugeOpts{
		Name: "xsha_xapi_sessions_open",
		Help: "XAPI sessions this process holds open on the pool (the watcher's long-lived session; probes log out at once).",
	}
)

// MetricNames returns the names of the metrics NewMetrics registers.
func MetricNames() []string { return []string{callsOpts.Name, sessionsOpts.Name} }

// NewMetrics creates the metrics and registers them with reg when reg is not
// nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls:    prometheus.NewCounterVec(callsOpts, []string{"pool", "method"}),
		sessions: prometheus.NewGaugeVec(sessionsOpts, []string{"pool"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.sessions)
	}
	return m
}

func (m *Metrics) call(pool, method string) {
	if m != nil {
		m.calls.WithLabelValues(pool, method).Inc()
	}
}

func (m *Metrics) sessionOpened(pool string) {
	if m != nil {
		m.sessions.WithLabelValues(pool).Inc()
	}
}

func (m *Metrics) sessionClosed(pool string) {
	if m != nil {
		m.sessions.WithLabelValues(pool).Dec()
	}
}

// Forget drops the series of a pool that is no longer configured.
func (m *Metrics) Forget(pool string) {
	if m != nil {
		m.calls.DeletePartialMatch(prometheus.Labels{"pool": pool})
		m.sessions.DeleteLabelValues(pool)
	}
}
