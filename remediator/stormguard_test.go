package remediator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"xsha/config"
	"xsha/remediator/journal"
)

// configOf is the configuration of the fake pools, as newHarnessClock
// builds it.
func configOf(pools ...*fakePool) *config.Config {
	cfg := &config.Config{}
	for _, p := range pools {
		cfg.Pools = append(cfg.Pools, config.Pool{Name: p.name, HeartbeatSR: "MGMT-HA", CloudStackCluster: p.name})
	}
	return cfg
}

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// gatedPool is a fakePool whose pool.enable_ha waits until the test lets
// it go, so an action stays running after it has written.
type gatedPool struct {
	*fakePool
	entered chan<- string // gets the pool's name when enable_ha is called
	gate    chan struct{} // closed to let enable_ha go on
}

// next returns the next pool whose enable_ha was called; it fails the test
// after a minute, as waitFinal does, rather than hang.
func next(t *testing.T, entered <-chan string) string {
	t.Helper()
	select {
	case name := <-entered:
		return name
	case <-time.After(time.Minute):
		t.Fatal("no pool.enable_ha call within a minute")
		return ""
	}
}

func (p *gatedPool) EnableHA(ctx context.Context, sr string, cfg map[string]string) error {
	p.entered <- p.name
	select {
	case <-p.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.fakePool.EnableHA(ctx, sr, cfg)
}

// fleet returns n fake pools named pool-01.. with pool HA off, and a
// policy enabling enable_pool_ha on every one of them, live, with extra
// policy lines.
func fleet(n int, extra string) ([]*fakePool, string) {
	var pools []*fakePool
	var names []string
	for i := 1; i <= n; i++ {
		p := newFakePool(fmt.Sprintf("pool-%02d", i))
		pools = append(pools, p)
		names = append(names, p.name)
	}
	pol := fmt.Sprintf(`
dry_run: false
actions:
  enable_pool_ha: {alerts: [XenServerPoolHADisabled], pools: [%s]}
poll_interval: 1ms
step_timeout: 30s
%s`, strings.Join(names, ", "), extra)
	return pools, pol
}

func haDisabled(pool string, at time.Time) template.Alert {
	return firing("XenServerPoolHADisabled", pool, "", "fp-"+pool, at)
}

func resolvedAlert(a template.Alert) template.Alert {
	a.Status = statusResolved
	return a
}

func verdictsOf(out map[string]any) []string {
	var vs []string
	alerts, _ := out["alerts"].([]any)
	for _, a := range alerts {
		vs = append(vs, fmt.Sprint(a.(map[string]any)["verdict"]))
	}
	return vs
}

func (h *harness) breaker() BreakerStatus {
	h.t.Helper()
	b, err := h.r.breakerView()
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	resp, err := http.Get(h.srv.URL + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) resetBreaker(token string) int {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/api/v1/breaker/reset", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A storm over 12 pools, with the defaults made for a fleet of 50 (at most
// 5 pools with a firing remediable alert): one webhook carrying all of them
// opens the breaker before any is decided, so nothing is queued and nothing
// is written; the breaker pages through its metric, shows on the status
// page, and stays open across a restart.
func TestBreakerOpensOnStormOf12Pools(t *testing.T) {
	pools, pol := fleet(12, "")
	clock := newTestClock()
	h := newHarnessClock(t, pol, clock.now, pools...)
	var alerts []template.Alert
	for _, p := range pools {
		alerts = append(alerts, haDisabled(p.name, clock.now()))
	}
	code, out := h.post(message(alerts...))
	if code != http.StatusOK {
		t.Fatalf("webhook %d %v", code, out)
	}
	for i, v := range verdictsOf(out) {
		if v != string(VerdictSkipped) {
			t.Errorf("alert %d: verdict %s, want skipped", i, v)
		}
	}
	if got := h.counter(h.r.metrics.skips, ActionEnablePoolHA, SkipBreaker); got != 12 {
		t.Errorf("skips{reason=breaker} = %v, want 12", got)
	}
	if got := h.counter(h.r.metrics.breakerOpen); got != 1 {
		t.Errorf("breaker_open = %v, want 1", got)
	}
	if got := h.counter(h.r.metrics.breakerPools); got != 12 {
		t.Errorf("breaker_firing_pools = %v, want 12", got)
	}
	b := h.breaker()
	if !b.Open || !b.Since.Equal(clock.now()) || !strings.Contains(b.Reason, "12 pools") || len(b.Pools) != 12 {
		t.Errorf("breaker %+v", b)
	}
	if !strings.Contains(journalText(h.entries()), "breaker opened: 12 pools have a firing remediable alert, more than breaker.max_pools 5") {
		t.Errorf("journal does not say why the breaker opened:\n%s", journalText(h.entries()))
	}
	_, page := h.get("/")
	if !strings.Contains(page, "Breaker open") || !strings.Contains(page, "more than breaker.max_pools 5") {
		t.Errorf("status page does not show the open breaker:\n%s", page)
	}

	h.restart()
	if got := h.counter(h.r.metrics.breakerOpen); got != 1 {
		t.Errorf("after a restart breaker_open = %v, want 1", got)
	}
	// A repeat of the storm, after the restart, still runs nothing.
	clock.advance(time.Hour)
	_, out = h.post(message(alerts...))
	for i, v := range verdictsOf(out) {
		if v != string(VerdictSkipped) {
			t.Errorf("after restart, alert %d: verdict %s, want skipped", i, v)
		}
	}
	h.stop()
	for _, p := range pools {
		if len(p.Calls()) != 0 {
			t.Errorf("pool %s got writes %v during a storm", p.name, p.Calls())
		}
	}
}

// Alerts that come one webhook at a time: the actions queued before the
// breaker opened have not started, so they are skipped as they start; the
// breaker closes by itself once alerts resolve or age out of the window,
// or when an operator resets it (authenticated like the hold API).
func TestBreakerSkipsPendingAndCloses(t *testing.T) {
	cases := []struct {
		name      string
		autoClose bool
		close     func(h *harness, clock *testClock, alerts []template.Alert)
		closedBy  string
	}{
		{name: "alerts resolve", autoClose: true, closedBy: "auto", close: func(h *harness, _ *testClock, alerts []template.Alert) {
			var res []template.Alert
			for _, a := range alerts[1:] {
				res = append(res, resolvedAlert(a))
			}
			h.post(message(res...))
		}},
		{name: "alerts age out of the window", autoClose: true, closedBy: "auto", close: func(h *harness, clock *testClock, _ []template.Alert) {
			clock.advance(31 * time.Minute)
			if err := h.r.refreshBreaker(); err != nil {
				h.t.Fatal(err)
			}
		}},
		{name: "a reloaded policy turns the breaker off", autoClose: false, closedBy: "policy", close: func(h *harness, _ *testClock, _ []template.Alert) {
			_, yaml := fleet(4, "breaker: {max_pools: 0}\n")
			pol, err := parsePolicy([]byte(yaml))
			if err != nil {
				h.t.Fatal(err)
			}
			h.r.SetPolicy(pol)
		}},
		{name: "operator reset", autoClose: false, closedBy: "reset", close: func(h *harness, clock *testClock, alerts []template.Alert) {
			var res []template.Alert
			for _, a := range alerts[1:] {
				res = append(res, resolvedAlert(a))
			}
			h.post(message(res...))
			clock.advance(time.Hour)
			if err := h.r.refreshBreaker(); err != nil {
				h.t.Fatal(err)
			}
			if !h.breaker().Open {
				h.t.Fatal("auto_close false: the breaker closed by itself")
			}
			if code := h.resetBreaker(""); code != http.StatusUnauthorized {
				h.t.Errorf("reset without a token: %d, want 401", code)
			}
			if code := h.resetBreaker(testToken); code != http.StatusOK {
				h.t.Errorf("reset: %d, want 200", code)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pools, pol := fleet(4, fmt.Sprintf("breaker: {max_pools: 2, window: 30m, auto_close: %v}\n", tc.autoClose))
			clock := newTestClock()
			h := newHarnessClock(t, pol, clock.now, pools...)
			var alerts []template.Alert
			var ids []uint64
			for i, p := range pools[:3] {
				a := haDisabled(p.name, clock.now())
				alerts = append(alerts, a)
				_, out := h.post(message(a))
				want := VerdictQueued
				if i == 2 {
					want = VerdictSkipped
				}
				if v := verdictsOf(out); len(v) != 1 || v[0] != string(want) {
					t.Fatalf("alert on %s: verdicts %v, want %s", p.name, v, want)
				}
				ids = append(ids, actionIDs(out)...)
			}
			h.start()
			for _, id := range ids[:2] {
				if rec := h.waitFinal(id); rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, "breaker is open") {
					t.Errorf("action %d queued before the breaker opened: %s %q, want skipped by the breaker", id, rec.State, rec.Reason)
				}
			}

			tc.close(h, clock, alerts)
			b := h.breaker()
			if b.Open || b.ClosedBy != tc.closedBy {
				t.Fatalf("breaker %+v, want closed by %s", b, tc.closedBy)
			}
			if got := h.counter(h.r.metrics.breakerOpen); got != 0 {
				t.Errorf("breaker_open = %v after closing", got)
			}
			// Closed: the next alert runs.
			_, out := h.post(message(haDisabled(pools[3].name, clock.now())))
			if v := verdictsOf(out); len(v) != 1 || v[0] != string(VerdictQueued) {
				t.Fatalf("after closing: verdicts %v, want queued", v)
			}
			if rec := h.waitFinal(actionIDs(out)[0]); rec.State != journal.StateSuccess {
				t.Errorf("after closing: action %s %q, want success", rec.State, rec.Reason)
			}
			for _, p := range pools[:3] {
				if p.count("pool.enable_ha") != 0 {
					t.Errorf("pool %s written while the breaker was open: %v", p.name, p.Calls())
				}
			}
		})
	}
}

// An action that has written when the breaker opens runs to its end: pool
// HA must not be left off halfway through a repair. The lab's two pools,
// with a breaker that opens at more than one pool.
func TestBreakerLetsWrittenActionFinish(t *testing.T) {
	entered := make(chan string, 4)
	a := &gatedPool{fakePool: newFakePool("cluster-a"), entered: entered, gate: make(chan struct{})}
	b := &gatedPool{fakePool: newFakePool("cluster-b"), entered: entered, gate: make(chan struct{})}
	close(b.gate)
	pol := `
dry_run: false
actions:
  enable_pool_ha: {alerts: [XenServerPoolHADisabled], pools: [cluster-a, cluster-b]}
poll_interval: 1ms
step_timeout: 30s
breaker: {max_pools: 1}
`
	h := newHarnessWith(t, configOf(a.fakePool, b.fakePool), map[string]PoolClient{"cluster-a": a, "cluster-b": b}, pol, nil)
	h.start()
	_, out := h.post(message(haDisabled("cluster-a", time.Now())))
	idA := actionIDs(out)[0]
	if got := next(t, entered); got != "cluster-a" {
		t.Fatalf("enable_ha on %s, want cluster-a", got)
	}
	_, out = h.post(message(haDisabled("cluster-b", time.Now())))
	if v := verdictsOf(out); len(v) != 1 || v[0] != string(VerdictSkipped) {
		t.Fatalf("second pool: verdicts %v, want skipped by the breaker", v)
	}
	close(a.gate)
	if rec := h.waitFinal(idA); rec.State != journal.StateSuccess {
		t.Errorf("the running action ended %s %q, want success", rec.State, rec.Reason)
	}
	if !a.HAEnabled() || b.count("pool.enable_ha") != 0 {
		t.Errorf("cluster-a HA %v, cluster-b calls %v", a.HAEnabled(), b.Calls())
	}
}

// max_running_pools: with a limit of one, three pools' actions run one
// after the other, in the order their alerts came, and the others wait
// pending, not skipped.
func TestMaxRunningPoolsRunsInOrder(t *testing.T) {
	entered := make(chan string, 8)
	cfgPools := []*fakePool{}
	clients := map[string]PoolClient{}
	gated := map[string]*gatedPool{}
	for _, name := range []string{"pool-03", "pool-01", "pool-02"} {
		g := &gatedPool{fakePool: newFakePool(name), entered: entered, gate: make(chan struct{})}
		cfgPools = append(cfgPools, g.fakePool)
		clients[name] = g
		gated[name] = g
	}
	_, pol := fleet(3, "max_running_pools: 1\n")
	h := newHarnessWith(t, configOf(cfgPools...), clients, pol, nil)
	order := []string{"pool-02", "pool-03", "pool-01"}
	var ids []uint64
	for _, name := range order {
		_, out := h.post(message(haDisabled(name, time.Now())))
		ids = append(ids, actionIDs(out)...)
	}
	h.start()
	for i, want := range order {
		if got := next(t, entered); got != want {
			t.Fatalf("action %d ran on %s, want %s (the order alerts came)", i+1, got, want)
		}
		if i == 0 {
			h.waitCounter(2, h.r.metrics.waitingPools)
			for _, id := range ids[1:] {
				if rec := h.record(id); rec.State != journal.StatePending {
					t.Errorf("waiting action %d is %s, want pending", id, rec.State)
				}
			}
		}
		if got := h.counter(h.r.metrics.runningPools); got != 1 {
			t.Errorf("running_pools = %v, want 1", got)
		}
		close(gated[want].gate)
		if rec := h.waitFinal(ids[i]); rec.State != journal.StateSuccess {
			t.Errorf("action on %s ended %s %q", want, rec.State, rec.Reason)
		}
	}
}

func TestRunLimiterForcedAcquireIgnoresLimit(t *testing.T) {
	l := newRunLimiter(newMetrics(nil))
	one := func() int { return 1 }
	none := func(string, uint64, map[string]bool) (bool, error) { return false, nil }
	ctx := context.Background()
	if err := l.acquire(ctx, "a", 1, false, one, none); err != nil {
		t.Fatal(err)
	}
	// A resumed running action must finish whatever the limit says.
	if err := l.acquire(ctx, "b", 2, true, one, none); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- l.acquire(ctx2, "c", 3, false, one, none) }()
	cancel()
	if err := <-done; err == nil {
		t.Error("a pending action got a slot over the limit")
	}
}

// Raising max_running_pools in a reloaded policy lets a waiting pool start
// at once, without waiting for the running one.
func TestMaxRunningPoolsReloadLetsWaitingRun(t *testing.T) {
	entered := make(chan string, 4)
	clients := map[string]PoolClient{}
	var fakes []*fakePool
	var gates []chan struct{}
	for _, name := range []string{"pool-01", "pool-02"} {
		g := &gatedPool{fakePool: newFakePool(name), entered: entered, gate: make(chan struct{})}
		clients[name], fakes, gates = g, append(fakes, g.fakePool), append(gates, g.gate)
	}
	defer func() {
		for _, g := range gates {
			close(g)
		}
	}()
	_, yaml := fleet(2, "max_running_pools: 1\n")
	h := newHarnessWith(t, configOf(fakes...), clients, yaml, nil)
	h.start()
	h.post(message(haDisabled("pool-01", time.Now())))
	if got := next(t, entered); got != "pool-01" {
		t.Fatalf("first to run: %s", got)
	}
	h.post(message(haDisabled("pool-02", time.Now())))
	h.waitCounter(1, h.r.metrics.waitingPools)
	_, yaml = fleet(2, "max_running_pools: 2\n")
	pol, err := parsePolicy([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	h.r.SetPolicy(pol)
	if got := next(t, entered); got != "pool-02" {
		t.Fatalf("after the reload: %s entered, want pool-02", got)
	}
	if got := h.counter(h.r.metrics.runningPools); got != 2 {
		t.Errorf("running_pools = %v, want 2", got)
	}
}
