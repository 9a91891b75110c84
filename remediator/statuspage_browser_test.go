package remediator

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"xsha/remediator/journal"
	"xsha/sim/scenario"
)

// browserPolicy is labPolicy on both pools, with rejoin_host in dry-run
// and steps long enough to be seen running.
const browserPolicy = `
dry_run: false
actions:
  enable_pool_ha:       {alerts: [XenServerPoolHADisabled],    pools: [cluster-a, cluster-b]}
  clear_emergency_mode: {alerts: [XenServerHostEmergencyMode], pools: [cluster-a, cluster-b]}
  rejoin_host:          {alerts: [XenServerHostCannotRejoin],  pools: [cluster-a, cluster-b], dry_run: true}
cooldown: 10m
max_attempts_per_hour: 3
ha_timeout: 180s
poll_interval: 20ms
step_timeout: 5m
`

// operatorZone is the time zone the browser is put in, and its offset.
const operatorZone = "Asia/Kolkata"

var operatorOffset = time.FixedZone("IST", 5*3600+30*60)

// chromium returns Debian's chromium (scripts/install-deps.sh installs it).
// Without it the test is skipped only when CI is unset; under CI (CI=true)
// it fails.
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if ci, set := os.LookupEnv("CI"); set {
		t.Fatalf("chromium is not installed (CI=%s): run scripts/install-deps.sh: %v", ci, err)
	}
	t.Skip("chromium is not installed; run scripts/install-deps.sh (the test fails instead when CI is set)")
	return ""
}

// artifacts returns where screenshots go: $XSHA_ARTIFACTS when set (kept
// after the test), else a temporary directory.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("XSHA_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts a headless chromium with a fresh profile and collects the
// page's console errors and uncaught exceptions.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc(); cancel() })
	if _, err := chromedp.Call(bctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: operatorZone}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	var (
		mu   sync.Mutex
		errs []string
	)
	lctx, stop := context.WithCancel(bctx)
	done := make(chan struct{})
	messages := chromedp.Console(lctx)
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				mu.Lock()
				errs = append(errs, m.String())
				mu.Unlock()
			}
		}
	}()
	return bctx, func() []string {
		stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return errs
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestStatusPageInBrowser drives the lab into a state with a finished
// action, a running one, an operator's hold and an action it skipped, and
// reads the status page in headless chromium, at a desktop's and at a
// phone's width, as an operator would.
func TestStatusPageInBrowser(t *testing.T) {
	chromium(t)
	sc := labScenario()
	sc.Durations.EnableHA = scenario.Duration(30000 * time.Second) // 5 min here: the action stays running throughout
	l := startLab(t, sc)
	h := newLabHarness(t, l, browserPolicy, nil)
	h.start()

	// Finished: xs-a2 is not in emergency mode; the check says so.
	finished := h.waitFinal(h.queue("XenServerHostEmergencyMode", "cluster-a", "xs-a2", "fp-done"))
	if finished.State != journal.StateSuccess {
		t.Fatalf("finished action: %s: %s", finished.State, finished.Reason)
	}
	// Running: pool.enable_ha on cluster-a takes 5 minutes.
	running := h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp-run")
	labWaitFor(t, "enable_pool_ha to call pool.enable_ha", func() (bool, string) {
		rec := h.record(running)
		i := stepIndex(rec.Steps, stepNameEnablePoolHA)
		return i >= 0 && len(rec.Steps[i].Calls) > 0, fmt.Sprint(rec.State, rec.Steps)
	})
	// Held, then skipped for the hold.
	const holdReason = "storage migration tonight"
	if err := h.r.setHold("cluster-b", holdReason); err != nil {
		t.Fatal(err)
	}
	skipped := h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-b", "", "fp-skip"))
	if skipped.State != journal.StateSkipped {
		t.Fatalf("held action: %s: %s", skipped.State, skipped.Reason)
	}
	if rec := h.record(running); rec.State != journal.StateRunning {
		t.Fatalf("the running action ended too early: %s: %s", rec.State, rec.Reason)
	}

	ctx, consoleErrors := browser(t)
	dir := artifacts(t)
	url := h.srv.URL + "/"

	type row struct {
		ID, Created, Action, State, Reason string
	}
	readRows := `Array.from(document.querySelectorAll("#actions tr[id]")).map(r => ({
		ID: r.cells[0].innerText.trim(), Created: r.cells[1].innerText.trim(), Action: r.cells[2].innerText.trim(),
		State: r.cells[6].innerText.trim(), Reason: r.cells[8].innerText.trim()}))`

	// A desktop.
	// WaitReady, not WaitVisible: chromedp's visibility wants the whole box
	// on screen, and a wide table scrolls within its own box.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(url), chromedp.WaitReady("#actions")); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, dir, "status-desktop.png")
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]row](readRows))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]row{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	for _, want := range []struct {
		id    uint64
		state journal.State
	}{{finished.ID, journal.StateSuccess}, {running, journal.StateRunning}, {skipped.ID, journal.StateSkipped}} {
		r, ok := byID[strconv.FormatUint(want.id, 10)]
		if !ok {
			t.Errorf("action %d is not listed: %+v", want.id, rows)
			continue
		}
		if r.State != string(want.state) {
			t.Errorf("action %d shows state %q, want %q", want.id, r.State, want.state)
		}
	}
	if r := byID[strconv.FormatUint(skipped.ID, 10)]; !strings.Contains(r.Reason, holdReason) {
		t.Errorf("the skipped action's reason %q does not give the hold's %q", r.Reason, holdReason)
	}
	// Times in the operator's zone: the page was given UTC.
	wantCreated := finished.Created.In(operatorOffset).Format("2006-01-02 15:04:05")
	if got := byID[strconv.FormatUint(finished.ID, 10)].Created; got != wantCreated {
		t.Errorf("created shown as %q, want %q (%s)", got, wantCreated, operatorZone)
	}
	tz, err := chromedp.Run(ctx, chromedp.Text("#tz"))
	if err != nil {
		t.Fatal(err)
	}
	// ICU may name the zone by its older alias.
	if !strings.Contains(tz, operatorZone) && !strings.Contains(tz, "Asia/Calcutta") {
		t.Errorf("the page does not say which time zone its times are in: %q", tz)
	}
	holds, err := chromedp.Run(ctx, chromedp.Text("#holds"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(holds, "cluster-b") || !strings.Contains(holds, holdReason) {
		t.Errorf("holds table %q lacks the hold on cluster-b and its reason", holds)
	}
	mode, err := chromedp.Run(ctx, chromedp.Text("#mode"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(mode, "live") || !strings.Contains(mode, "rejoin_host (pools: cluster-a, cluster-b; dry-run)") {
		t.Errorf("mode %q does not say live, with rejoin_host in dry-run", mode)
	}
	workflows, err := chromedp.Run(ctx, chromedp.Text("#workflows"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(workflows, "Planned-maintenance workflows") {
		t.Errorf("workflows section: %q", workflows)
	}

	// A phone: no sideways scrolling, and what matters on screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(url), chromedp.WaitReady("#actions")); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, dir, "status-phone.png")
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow > 0 {
		t.Errorf("at 375 px the page scrolls sideways by %d px", overflow)
	}
	offscreen, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(
		"#mode, #holds td.reason, #actions tr[id] td.state, #actions tr[id] td.reason")).filter(e => e.textContent.trim() !== "").filter(e => {
		const r = e.getBoundingClientRect();
		return r.width === 0 || r.left < 0 || r.right > document.documentElement.clientWidth + 0.5;
	}).map(e => (e.id || e.className) + ": " + e.innerText.slice(0, 40))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(offscreen) > 0 {
		t.Errorf("at 375 px these are not within the screen: %q", offscreen)
	}
	phoneRows, err := chromedp.Run(ctx, chromedp.Evaluate[[]row](readRows))
	if err != nil {
		t.Fatal(err)
	}
	if len(phoneRows) != len(rows) {
		t.Errorf("phone shows %d actions, desktop %d", len(phoneRows), len(rows))
	}

	if errs := consoleErrors(); len(errs) > 0 {
		t.Errorf("JavaScript errors: %q", errs)
	}
}
