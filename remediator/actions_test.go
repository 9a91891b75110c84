package remediator

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"xsha/config"
	"xsha/remediator/journal"
	"xsha/xapi"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// queue posts one firing alert and returns the action it queued.
func (h *harness) queue(name, pool, host, fp string) uint64 {
	h.t.Helper()
	code, out := h.post(message(firing(name, pool, host, fp, t0)))
	if code != 200 {
		h.t.Fatalf("webhook: %d %v", code, out)
	}
	ids := actionIDs(out)
	if len(ids) != 1 {
		h.t.Fatalf("want one action, got %v", out)
	}
	return ids[0]
}

func TestEnablePoolHASwitchesHABackOn(t *testing.T) {
	p := newFakePool("cluster-a")
	h := newHarness(t, livePolicy, p)
	h.start()
	id := h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp1")
	rec := h.waitFinal(id)
	if rec.State != journal.StateSuccess {
		t.Fatalf("state %s: %s", rec.State, rec.Reason)
	}
	if !p.HAEnabled() {
		t.Fatal("pool HA still off")
	}
	want := []string{"pool.enable_ha(sr-cluster-a,map[timeout:180])"}
	if got := p.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	text := journalText(h.entriesFor(id))
	for _, s := range []string{"queued", "started", "live state before the action", "calling pool.enable_ha",
		"pool.enable_ha succeeded", "live state after waiting", "step verify done", "success"} {
		if !strings.Contains(text, s) {
			t.Errorf("journal lacks %q:\n%s", s, text)
		}
	}
	h.waitCounter(1, h.r.metrics.actions, ActionEnablePoolHA, journal.StateSuccess)
	if got := h.counter(h.r.metrics.webhooks, webhookAccepted); got != 1 {
		t.Errorf("webhooks_total accepted = %v", got)
	}
}

// A pool.enable_ha whose answer is lost (the connection dropped while xapi
// went on) is not an error: the action waits for its effect on live state.
func TestEnablePoolHALostAnswerIsVerified(t *testing.T) {
	p := newFakePool("cluster-a")
	p.lostAnswer = unreachableError(t)
	h := newHarness(t, livePolicy, p)
	h.start()
	id := h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp1")
	rec := h.waitFinal(id)
	if rec.State != journal.StateSuccess {
		t.Fatalf("state %s: %s", rec.State, rec.Reason)
	}
	text := journalText(h.entriesFor(id))
	if !strings.Contains(text, "waiting for pool HA to be enabled") {
		t.Errorf("the lost answer was not checked on live state:\n%s", text)
	}
	if got := p.Calls(); len(got) != 1 {
		t.Errorf("calls %v, want one pool.enable_ha", got)
	}
}

// unreachableError returns the error the real XAPI client gives for a call
// that got no answer: a read against a port nobody listens on.
func unreachableError(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	pool := config.Pool{Name: "gone", Hosts: []string{"127.0.0.1"}, Port: port, Scheme: "http",
		Username: "root", Password: "x", CallTimeout: model.Duration(time.Second)}
	c := xapi.NewClient(pool, xapi.ClientOptions{})
	defer c.Close(context.Background())
	_, err = c.Read(context.Background())
	if !xapi.IsUnreachable(err) {
		t.Fatalf("read against a closed port: %v, want a transport error", err)
	}
	return err
}

func TestEnablePoolHAAlreadyHealthy(t *testing.T) {
	p := newFakePool("cluster-a")
	p.haEnabled = true
	h := newHarness(t, livePolicy, p)
	h.start()
	rec := h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp1"))
	if rec.State != journal.StateSuccess || !strings.Contains(rec.Reason, "already healthy") {
		t.Fatalf("got %s: %s", rec.State, rec.Reason)
	}
	if calls := p.Calls(); len(calls) != 0 {
		t.Errorf("calls on a healthy pool: %v", calls)
	}
}

func TestEnablePoolHAPreconditions(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(p *fakePool)
		reason  string
	}{
		{"heartbeat SR missing", func(p *fakePool) { p.srUUID = "" }, `heartbeat SR "MGMT-HA" does not exist`},
		{"PBD unplugged", func(p *fakePool) { p.hosts[2].srAttached = false }, "heartbeat SR MGMT-HA is not attached on host cluster-a-h3"},
		{"host without PBD", func(p *fakePool) { p.hosts[3].hasPBD = false }, "host cluster-a-h4 has no PBD"},
		{"host not live", func(p *fakePool) { p.hosts[1].live = false }, "host cluster-a-h2 is not live"},
		{"host in emergency mode", func(p *fakePool) {
			p.hosts[3].role, p.hosts[3].emergencyError = xapi.RoleEmergency, []string{"HOST_STILL_BOOTING"}
		}, "host cluster-a-h4 is in emergency mode (HOST_STILL_BOOTING)"},
		{"host unreachable", func(p *fakePool) { p.hosts[2].role = xapi.RoleUnreachable }, "host cluster-a-h3 does not answer"},
		{"VM with HA restart priority", func(p *fakePool) { p.vmsProtected = 2 }, "2 VM(s) have a XenServer HA restart priority"},
		{"host disabled (maintenance mode)", func(p *fakePool) { p.hosts[1].enabled = false }, "automatic hold: host cluster-a-h2 is disabled in XenServer (maintenance mode)"},
		{"host shut down on purpose", func(p *fakePool) { p.hosts[1].enabled, p.hosts[1].live = false, false },
			"host cluster-a-h2 is disabled in XenServer and not live"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakePool("cluster-a")
			tc.breakIt(p)
			h := newHarness(t, livePolicy, p)
			h.start()
			id := h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp1")
			rec := h.waitFinal(id)
			if rec.State != journal.StateSkipped {
				t.Fatalf("state %s (%s), want skipped", rec.State, rec.Reason)
			}
			if !strings.Contains(rec.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", rec.Reason, tc.reason)
			}
			if !strings.Contains(journalText(h.entriesFor(id)), tc.reason) {
				t.Errorf("reason not journaled")
			}
			if calls := p.Calls(); len(calls) != 0 {
				t.Errorf("pool touched: %v", calls)
			}
			if p.HAEnabled() {
				t.Error("HA enabled")
			}
			h.waitCounter(1, h.r.metrics.actions, ActionEnablePoolHA, journal.StateSkipped)
		})
	}
}

func TestClearEmergencyModeRecoversOldMaster(t *testing.T) {
	p := newFakePool("cluster-a")
	old := p.emergencyOldMaster()
	h := newHarness(t, livePolicy, p)
	h.start()
	id := h.queue("XenServerHostEmergencyMode", "cluster-a", old, "fp-em")
	rec := h.waitFinal(id)
	if rec.State != journal.StateSuccess {
		t.Fatalf("state %s: %s\n%s", rec.State, rec.Reason, journalText(h.entriesFor(id)))
	}
	want := []string{"pool.disable_ha", "host.emergency_ha_disable(127.0.9.1)", "pool.enable_ha(sr-cluster-a,map[timeout:180])"}
	if got := p.Calls(); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	s, _ := p.Read(t.Context())
	hh, _ := s.Host(old)
	if !s.HAEnabled || hh.Probe.Role != xapi.RoleSlave || !hh.Live {
		t.Errorf("pool not recovered: HA %v, %s", s.HAEnabled, hostState(hh))
	}
	var steps []string
	for _, st := range rec.Steps {
		steps = append(steps, string(st.Name)+":"+string(st.State))
	}
	wantSteps := []string{"check:done", "disable_pool_ha:done", "emergency_ha_disable:done", "wait_rejoin:done", "enable_pool_ha:done", "verify:done"}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("steps %v, want %v", steps, wantSteps)
	}
}

// If pool HA is back on when the host is about to be disarmed (an operator
// re-enabled it), host.emergency_ha_disable must not be called: it would
// leave the host in permanent emergency mode.
func TestClearEmergencyModeRefusesWrongOrder(t *testing.T) {
	p := newFakePool("cluster-a")
	old := p.emergencyOldMaster()
	p.after = func(method string) {
		if method == "pool.disable_ha" {
			p.withLock(func(p *fakePool) { p.reenableAfterReads = 2 })
		}
	}
	h := newHarness(t, livePolicy, p)
	h.start()
	rec := h.waitFinal(h.queue("XenServerHostEmergencyMode", "cluster-a", old, "fp-em"))
	if rec.State != journal.StateFailed || !strings.Contains(rec.Reason, "refusing host.emergency_ha_disable") {
		t.Fatalf("got %s: %s", rec.State, rec.Reason)
	}
	if n := p.count("host.emergency_ha_disable"); n != 0 {
		t.Errorf("emergency_ha_disable called %d times", n)
	}
	h.waitCounter(1, h.r.metrics.actions, ActionClearEmergencyMode, journal.StateFailed)
}

func TestClearEmergencyModePreconditions(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(p *fakePool) string
		state  journal.State
		reason string
	}{
		{"host not in emergency mode", func(p *fakePool) string { p.haEnabled = true; return "cluster-a-h3" }, journal.StateSuccess, "already healthy"},
		{"host unreachable", func(p *fakePool) string { p.hosts[2].role = xapi.RoleUnreachable; return "cluster-a-h3" }, journal.StateSkipped, "does not answer"},
		{"unknown host", func(*fakePool) string { return "nope" }, journal.StateSkipped, "not a member"},
		{"another host not live", func(p *fakePool) string {
			old := p.emergencyOldMaster()
			p.hosts[3].live = false
			return old
		}, journal.StateSkipped, "could not be re-enabled afterwards): host cluster-a-h4 is not live"},
		{"VM HA set", func(p *fakePool) string { old := p.emergencyOldMaster(); p.vmsProtected = 1; return old }, journal.StateSkipped, "HA restart priority"},
		// Its own path to the heartbeat SR lost: disarmed, it would rejoin
		// and leave pool HA off for good.
		{"its heartbeat SR unplugged", func(p *fakePool) string {
			old := p.emergencyOldMaster()
			p.hosts[0].srAttached = false
			return old
		}, journal.StateSkipped, "heartbeat SR MGMT-HA is not attached on host cluster-a-h1, so pool HA could not be re-enabled once it rejoins"},
		// pool.disable_ha without the statefile waits for every host,
		// the emergency-mode one too, retrying without end (xapi_ha.ml).
		{"master without the statefile", func(p *fakePool) string {
			old := p.emergencyOldMaster()
			p.hosts[1].noStatefile = true
			return old
		}, journal.StateSkipped, "the master cannot reach the HA statefile, so pool.disable_ha would wait for every host to answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakePool("cluster-a")
			host := tc.setup(p)
			h := newHarness(t, livePolicy, p)
			h.start()
			rec := h.waitFinal(h.queue("XenServerHostEmergencyMode", "cluster-a", host, "fp"))
			if rec.State != tc.state || !strings.Contains(rec.Reason, tc.reason) {
				t.Fatalf("got %s: %q, want %s: %q", rec.State, rec.Reason, tc.state, tc.reason)
			}
			if calls := p.Calls(); len(calls) != 0 {
				t.Errorf("pool touched: %v", calls)
			}
		})
	}
}

func TestRejoinHost(t *testing.T) {
	p := newFakePool("cluster-a")
	p.haEnabled = true
	p.hosts[2].live = false // answers as a slave, not in the liveset
	// Once pool HA is off, the slave joins after a few reads.
	p.after = func(method string) {
		if method == "pool.disable_ha" {
			p.withLock(func(p *fakePool) { p.hosts[2].rejoinInReads = 3 })
		}
	}
	h := newHarness(t, livePolicy, p)
	h.start()
	rec := h.waitFinal(h.queue("XenServerHostCannotRejoin", "cluster-a", "cluster-a-h3", "fp-rj"))
	if rec.State != journal.StateSuccess {
		t.Fatalf("state %s: %s", rec.State, rec.Reason)
	}
	want := []string{"pool.disable_ha", "pool.enable_ha(sr-cluster-a,map[timeout:180])"}
	if got := p.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	dry := strings.Replace(livePolicy, "dry_run: false", "", 1) // the default
	for _, tc := range []struct {
		alert, host string
		setup       func(p *fakePool) string
		plan        string
	}{
		{"XenServerPoolHADisabled", "", func(*fakePool) string { return "" }, "would call pool.enable_ha(heartbeat_srs=[sr-cluster-a (MGMT-HA)], configuration=map[timeout:180])"},
		{"XenServerHostEmergencyMode", "", (*fakePool).emergencyOldMaster, "would call pool.disable_ha, then call host.emergency_ha_disable on cluster-a-h1 (127.0.9.1)"},
	} {
		t.Run(tc.alert, func(t *testing.T) {
			p := newFakePool("cluster-a")
			host := tc.setup(p)
			before, _ := p.Read(t.Context())
			h := newHarness(t, dry, p)
			if got := h.counter(h.r.metrics.dryRun); got != 1 {
				t.Errorf("xsha_remediator_dry_run = %v", got)
			}
			h.start()
			id := h.queue(tc.alert, "cluster-a", host, "fp")
			rec := h.waitFinal(id)
			if rec.State != journal.StateDryRun || !rec.DryRun {
				t.Fatalf("state %s: %s", rec.State, rec.Reason)
			}
			if !strings.Contains(rec.Reason, tc.plan) {
				t.Errorf("plan %q lacks %q", rec.Reason, tc.plan)
			}
			if calls := p.Calls(); len(calls) != 0 {
				t.Errorf("dry-run wrote: %v", calls)
			}
			after, _ := p.Read(t.Context())
			if viewOfNoTime(before) != viewOfNoTime(after) {
				t.Errorf("state changed:\n%v\n%v", viewOfNoTime(before), viewOfNoTime(after))
			}
			// A repeat of the same episode is not evaluated again.
			if code, out := h.post(message(firing(tc.alert, "cluster-a", host, "fp", t0))); code != 200 || out["alerts"].([]any)[0].(map[string]any)["verdict"] != string(VerdictDuplicate) {
				t.Errorf("repeat: %d %v", code, out)
			}
			h.waitCounter(1, h.r.metrics.actions, rec.Name, journal.StateDryRun)
		})
	}
}

func viewOfNoTime(s *xapi.Snapshot) string {
	v := viewOf(s)
	b := mustJSON(v)
	return string(b)
}

type fakeMaintenance struct {
	hosts map[string][]string
	err   error
}

func (f fakeMaintenance) HostsInMaintenance(_ context.Context, cluster string) ([]string, error) {
	return f.hosts[cluster], f.err
}

// Every kind of hold keeps an action from writing, says why, and shows in
// xsha_remediator_hold; a lifted hold lets the same episode run.
func TestHoldsStopActions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy string
		setup  func(t *testing.T, h *harness)
		reason string
		lift   func(t *testing.T, h *harness)
	}{
		{name: "API hold on the pool", policy: livePolicy,
			setup: func(t *testing.T, h *harness) {
				if err := h.r.setHold("cluster-a", "storage migration tonight"); err != nil {
					t.Fatal(err)
				}
			},
			reason: "hold on pool cluster-a (api): storage migration tonight",
			lift: func(t *testing.T, h *harness) {
				if found, err := h.r.liftHold("cluster-a"); err != nil || !found {
					t.Fatalf("lifting: %v %v", found, err)
				}
			}},
		{name: "global hold in the policy file", policy: livePolicy + "holds: {all: true, reason: change freeze}\n",
			reason: "hold on every pool (file): change freeze"},
		{name: "CloudStack host in maintenance", policy: livePolicy,
			setup: func(_ *testing.T, h *harness) {
				h.r.maintenance = fakeMaintenance{hosts: map[string][]string{"cluster-a": {"cluster-a-h2"}}}
			},
			reason: "automatic hold: CloudStack hosts in maintenance in cluster cluster-a: cluster-a-h2"},
		{name: "CloudStack unreachable", policy: livePolicy,
			setup: func(_ *testing.T, h *harness) {
				h.r.maintenance = fakeMaintenance{err: errors.New("connection refused")}
			},
			reason: "CloudStack maintenance state of cluster cluster-a unknown: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakePool("cluster-a")
			h := newHarness(t, tc.policy, p)
			if tc.setup != nil {
				tc.setup(t, h)
			}
			h.start()
			rec := h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp1"))
			if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, tc.reason) {
				t.Fatalf("got %s: %q, want skipped: %q", rec.State, rec.Reason, tc.reason)
			}
			if calls := p.Calls(); len(calls) != 0 {
				t.Fatalf("held pool touched: %v", calls)
			}
			if got := h.counter(h.r.metrics.hold, "cluster-a"); got != 1 {
				t.Errorf("xsha_remediator_hold = %v", got)
			}
			if tc.lift == nil {
				return
			}
			tc.lift(t, h)
			if got := h.counter(h.r.metrics.hold, "cluster-a"); got != 0 {
				t.Errorf("xsha_remediator_hold = %v after lifting", got)
			}
			rec = h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp1"))
			if rec.State != journal.StateSuccess || !p.HAEnabled() {
				t.Fatalf("after lifting: %s: %s", rec.State, rec.Reason)
			}
		})
	}
}

func TestDuplicateAndConcurrentWebhooksRunOneAction(t *testing.T) {
	p := newFakePool("cluster-a")
	h := newHarness(t, livePolicy, p)
	// Both severities of the alert (two fingerprints), each sent by two
	// Alertmanager peers, several times, all at once.
	var wg sync.WaitGroup
	for i := range 16 {
		fp := []string{"fp-critical", "fp-warning"}[i%2]
		wg.Go(func() {
			if code, out := h.post(message(firing("XenServerPoolHADisabled", "cluster-a", "", fp, t0))); code != 200 {
				t.Errorf("webhook %d: %d %v", i, code, out)
			}
		})
	}
	wg.Wait()
	recs, err := h.r.recentActions(100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d actions recorded, want 1: %+v", len(recs), recs)
	}
	h.start()
	rec := h.waitFinal(recs[0].ID)
	if rec.State != journal.StateSuccess {
		t.Fatalf("state %s: %s", rec.State, rec.Reason)
	}
	if len(rec.Episodes) != 2 {
		t.Errorf("episodes %v, want both fingerprints", rec.Episodes)
	}
	// Repeats after the action ran are duplicates too.
	for range 3 {
		h.post(message(firing("XenServerPoolHADisabled", "cluster-a", "", "fp-critical", t0)))
	}
	h.stop()
	if n := p.count("pool.enable_ha"); n != 1 {
		t.Errorf("pool.enable_ha called %d times", n)
	}
	if recs, _ := h.r.recentActions(100); len(recs) != 1 {
		t.Errorf("%d actions after repeats", len(recs))
	}
}

func TestResolvedCancelsPendingAndNeverWrites(t *testing.T) {
	p := newFakePool("cluster-a")
	h := newHarness(t, livePolicy, p)
	id := h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp1")
	a := firing("XenServerPoolHADisabled", "cluster-a", "", "fp1", t0)
	a.Status, a.EndsAt = "resolved", t0.Add(time.Minute)
	// Mixed message: the resolved alert, and a resolved alert of an episode
	// never seen; neither may queue anything.
	b := firing("XenServerPoolHADisabled", "cluster-a", "", "fp-other", t0)
	b.Status = "resolved"
	code, out := h.post(message(a, b))
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	if rec := h.record(id); rec.State != journal.StateCancelled {
		t.Fatalf("state %s, want cancelled", rec.State)
	}
	h.start()
	// The runner takes a pool's actions oldest first: once a later action
	// on the pool has ended, it has passed the cancelled one.
	barrier := h.waitFinal(h.queue("XenServerHostEmergencyMode", "cluster-a", "cluster-a-h2", "fp-barrier"))
	if barrier.State != journal.StateSuccess {
		t.Fatalf("barrier action %s: %s", barrier.State, barrier.Reason)
	}
	h.stop()
	if calls := p.Calls(); len(calls) != 0 {
		t.Fatalf("resolved alerts led to writes: %v", calls)
	}
	if rec := h.record(id); rec.State != journal.StateCancelled || len(rec.Steps) != 0 {
		t.Errorf("the cancelled action ran: %s %+v", rec.State, rec.Steps)
	}
	if recs, _ := h.r.recentActions(10); len(recs) != 2 {
		t.Errorf("%d actions, want the cancelled one and the barrier", len(recs))
	}
}

func TestBudgetCooldownAndBackoff(t *testing.T) {
	now := t0
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	p := newFakePool("cluster-a")
	p.enableErr = xerr("HA_FAILED_TO_FORM_LIVESET")
	pol := strings.Replace(livePolicy, "max_attempts_per_hour: 3", "max_attempts_per_hour: 2\nbackoff: 1m", 1)
	h := newHarnessClock(t, pol, clock, p)
	h.start()

	rec := h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "ep1"))
	if rec.State != journal.StateFailed || !strings.Contains(rec.Reason, "HA_FAILED_TO_FORM_LIVESET") {
		t.Fatalf("first: %s: %s", rec.State, rec.Reason)
	}
	// Within the backoff: skipped.
	advance(30 * time.Second)
	rec = h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "ep1"))
	if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, "backoff after 1 consecutive failure") {
		t.Fatalf("backoff: %s: %s", rec.State, rec.Reason)
	}
	// After it: a second attempt, failing again; the backoff doubles.
	advance(time.Minute)
	rec = h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "ep1"))
	if rec.State != journal.StateFailed {
		t.Fatalf("second: %s: %s", rec.State, rec.Reason)
	}
	advance(3 * time.Minute)
	// Budget: 2 attempts in the hour are spent; the remediator stops and says so.
	rec = h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "ep1"))
	if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, "attempt budget spent: 2 action(s) wrote to pool cluster-a in the last hour") {
		t.Fatalf("budget: %s: %s", rec.State, rec.Reason)
	}
	if got := h.counter(h.r.metrics.skips, ActionEnablePoolHA, SkipBudget); got != 1 {
		t.Errorf("skips_total{reason=budget} = %v", got)
	}
	if n := p.count("pool.enable_ha"); n != 2 {
		t.Errorf("pool.enable_ha called %d times, want 2", n)
	}
	// An hour later the budget is back; the fault is gone; success, then cooldown.
	advance(time.Hour)
	p.withLock(func(p *fakePool) { p.enableErr = nil })
	rec = h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "ep1"))
	if rec.State != journal.StateSuccess {
		t.Fatalf("after an hour: %s: %s", rec.State, rec.Reason)
	}
	p.withLock(func(p *fakePool) { p.haEnabled = false })
	advance(time.Minute)
	rec = h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "ep2"))
	if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, "cooldown") {
		t.Fatalf("cooldown: %s: %s", rec.State, rec.Reason)
	}
}

// A policy reload that takes a pool out skips the actions queued for it.
func TestPolicyReloadSkipsQueuedActions(t *testing.T) {
	p := newFakePool("cluster-a")
	h := newHarness(t, livePolicy, p)
	id := h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp1")
	pol, err := parsePolicy([]byte("dry_run: false\nactions:\n  enable_pool_ha: {alerts: [XenServerPoolHADisabled], pools: [cluster-b]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	h.r.SetPolicy(pol)
	h.start()
	rec := h.waitFinal(id)
	if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, "does not allow enable_pool_ha on pool cluster-a") {
		t.Fatalf("%s: %s", rec.State, rec.Reason)
	}
	if calls := p.Calls(); len(calls) != 0 {
		t.Errorf("calls %v", calls)
	}
}
