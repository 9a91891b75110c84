package remediator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"xsha/config"
	"xsha/remediator/journal"
)

const testToken = "s3cret-token"

// livePolicy enables every action on cluster-a, live, with fast polling.
const livePolicy = `
dry_run: false
actions:
  enable_pool_ha:       {alerts: [XenServerPoolHADisabled],    pools: [cluster-a]}
  clear_emergency_mode: {alerts: [XenServerHostEmergencyMode], pools: [cluster-a]}
  rejoin_host:          {alerts: [XenServerHostCannotRejoin],  pools: [cluster-a]}
cooldown: 10m
max_attempts_per_hour: 3
ha_timeout: 180s
poll_interval: 1ms
step_timeout: 30s
`

// harness runs a Remediator on fake pools behind an HTTP test server.
type harness struct {
	t       *testing.T
	r       *engine
	pools   map[string]*fakePool
	clients map[string]PoolClient
	srv     *httptest.Server
	// openJournal opens the journal, again after a restart: the one
	// testJournalEnv names unless a test chose another.
	openJournal func() (journal.Journal, error)
	// replica names the engine; poll is its runners' poll interval (the
	// engine's default when zero).
	replica string
	poll    time.Duration
	// cs is the CloudStack side of workflows; nil for none.
	cs      cloudStackHosts
	journal journal.Journal
	reg     *prometheus.Registry
	cfg     *config.Config
	policy  *Policy
	cancel  context.CancelFunc
	done    chan struct{}
	now     func() time.Time
}

func newHarness(t *testing.T, policyYAML string, pools ...*fakePool) *harness {
	t.Helper()
	return newHarnessClock(t, policyYAML, nil, pools...)
}

func newHarnessClock(t *testing.T, policyYAML string, now func() time.Time, pools ...*fakePool) *harness {
	t.Helper()
	cfg := &config.Config{}
	clients := map[string]PoolClient{}
	fakes := map[string]*fakePool{}
	for _, p := range pools {
		fakes[p.name] = p
		clients[p.name] = p
		cfg.Pools = append(cfg.Pools, config.Pool{Name: p.name, HeartbeatSR: "MGMT-HA", CloudStackCluster: p.name})
	}
	h := newHarnessWith(t, cfg, clients, policyYAML, now)
	h.pools = fakes
	return h
}

// newHarnessWith builds a harness on any clients.
func newHarnessWith(t *testing.T, cfg *config.Config, clients map[string]PoolClient, policyYAML string, now func() time.Time) *harness {
	t.Helper()
	h := &harness{t: t, cfg: cfg, clients: clients, now: now}
	if harnessJournal != nil {
		h.openJournal = harnessJournal(t)
	} else {
		h.openJournal = testJournal(t)(t)
	}
	pol, err := parsePolicy([]byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	h.policy = pol
	h.open()
	t.Cleanup(h.close)
	return h
}

// open opens the journal and builds a Remediator on it, as a (re)start does.
func (h *harness) open() {
	h.t.Helper()
	j, err := h.openJournal()
	if err != nil {
		h.t.Fatal(err)
	}
	h.journal = j
	auth, _ := newBearerAuth(testToken)
	h.reg = prometheus.NewRegistry()
	locker, _ := j.(poolLocker) // a shared journal: the replicas' pool locks
	h.r, err = newEngine(engineOptions{Config: h.cfg, Policy: h.policy, Journal: j, Clients: h.clients, Auth: auth,
		CloudStack: h.cs, MaxBodyBytes: 64 << 10, Registerer: h.reg, Now: h.now,
		Replica: h.replica, Locker: locker, PollInterval: h.poll})
	if err != nil {
		h.t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.r.router())
}

// start runs the pool runners.
func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		h.r.Run(ctx)
	}()
}

// stop cancels the runners, as a shutdown or crash does, and waits.
func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

// close stops everything and closes the journal.
func (h *harness) close() {
	h.stop()
	if h.srv != nil {
		h.srv.Close()
		h.srv = nil
	}
	if h.journal != nil {
		h.journal.Close()
		h.journal = nil
	}
}

// restart closes everything and opens the same journal again.
func (h *harness) restart() {
	h.close()
	h.open()
	h.start()
}

func firing(name, pool, host, fp string, startsAt time.Time) template.Alert {
	l := template.KV{"alertname": name, "pool": pool, "severity": "critical"}
	if host != "" {
		l["host"] = host
	}
	return template.Alert{Status: "firing", Labels: l, StartsAt: startsAt, Fingerprint: fp,
		Annotations: template.KV{"summary": "test"}}
}

func message(alerts ...template.Alert) webhook.Message {
	status := "resolved"
	for _, a := range alerts {
		if a.Status == "firing" {
			status = "firing"
		}
	}
	return webhook.Message{Version: "4", GroupKey: "{}:{alertname=\"x\"}",
		Data: &template.Data{Receiver: "xsha-remediator", Status: status, Alerts: alerts,
			GroupLabels: template.KV{}, CommonLabels: template.KV{}, CommonAnnotations: template.KV{}}}
}

// post sends a webhook message with the right token and returns the status
// code and decoded answer.
func (h *harness) post(msg webhook.Message) (int, map[string]any) {
	h.t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.postRaw(http.MethodPost, "application/json", "Bearer "+testToken, b)
}

func (h *harness) postRaw(method, ctype, auth string, body []byte) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+"/webhook", bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// actionIDs returns the action IDs of an accepted webhook answer.
func actionIDs(out map[string]any) []uint64 {
	var ids []uint64
	alerts, _ := out["alerts"].([]any)
	for _, a := range alerts {
		if id, ok := a.(map[string]any)["action_id"].(float64); ok {
			ids = append(ids, uint64(id))
		}
	}
	return ids
}

func (h *harness) record(id uint64) *journal.Action {
	h.t.Helper()
	var rec *journal.Action
	if err := h.journal.View(func(tx journal.Tx) error {
		var err error
		rec, err = tx.Get(id)
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	return rec
}

// waitFinal polls until the action has a final state.
func (h *harness) waitFinal(id uint64) *journal.Action {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if rec := h.record(id); !rec.Open() {
			return rec
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("action %d did not finish: %+v", id, h.record(id))
	return nil
}

// entries returns every journal entry.
func (h *harness) entries() []journal.Entry {
	h.t.Helper()
	var out []journal.Entry
	if err := h.journal.View(func(tx journal.Tx) error {
		var err error
		out, err = tx.Entries(0, 1<<30)
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) entriesFor(id uint64) []journal.Entry {
	h.t.Helper()
	var out []journal.Entry
	if err := h.journal.View(func(tx journal.Tx) error {
		var err error
		out, err = tx.EntriesFor(id)
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	return out
}

func journalText(es []journal.Entry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.Message)
		b.WriteString("\n")
	}
	return b.String()
}

func (h *harness) counter(c prometheus.Collector, values ...any) float64 {
	labels := make([]string, len(values))
	for i, v := range values {
		labels[i] = fmt.Sprint(v)
	}
	switch v := c.(type) {
	case *prometheus.CounterVec:
		return testutil.ToFloat64(v.WithLabelValues(labels...))
	case *prometheus.GaugeVec:
		return testutil.ToFloat64(v.WithLabelValues(labels...))
	}
	return testutil.ToFloat64(c)
}

// waitCounter polls until the metric has the value: metrics follow the
// journal write that ends an action.
func (h *harness) waitCounter(want float64, c prometheus.Collector, labels ...any) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.counter(c, labels...) != want {
		if time.Now().After(deadline) {
			h.t.Errorf("metric %v = %v, want %v", labels, h.counter(c, labels...), want)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ids returns the actions' IDs.
func ids(as []*journal.Action) []uint64 {
	var out []uint64
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}
