package remediator

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"xsha/remediator/journal"
	"xsha/sim/scenario"
)

// The lab's two pools with pool HA off and a breaker that opens at more
// than one pool: one webhook carrying both alerts runs nothing, through
// the real XAPI client; once one alert resolves the breaker closes by
// itself, and the other pool's alert, re-sent, repairs it.
func TestLabBreakerTwoPools(t *testing.T) {
	l := startLab(t, labScenario())
	pol := `
dry_run: false
actions:
  enable_pool_ha: {alerts: [XenServerPoolHADisabled], pools: [cluster-a, cluster-b]}
ha_timeout: 180s
poll_interval: 20ms
step_timeout: 30s
breaker: {max_pools: 1}
`
	h := newLabHarness(t, l, pol, nil)
	h.start()
	start := time.Now()
	a := firing("XenServerPoolHADisabled", "cluster-a", "", "fp-a", start)
	b := firing("XenServerPoolHADisabled", "cluster-b", "", "fp-b", start)
	_, out := h.post(message(a, b))
	if v := verdictsOf(out); len(v) != 2 || v[0] != string(VerdictSkipped) || v[1] != string(VerdictSkipped) {
		t.Fatalf("verdicts %v, want both skipped by the breaker", v)
	}
	if code, body := h.get("/api/v1/breaker"); code != http.StatusOK || !strings.Contains(body, `"open": true`) {
		t.Errorf("GET /api/v1/breaker: %d %s", code, body)
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("writes while the breaker is open: %v", w)
	}

	_, out = h.post(message(resolvedAlert(b)))
	if v := verdictsOf(out); len(v) != 1 || v[0] != string(VerdictResolved) {
		t.Fatalf("resolved: verdicts %v", v)
	}
	if br := h.breaker(); br.Open || br.ClosedBy != "auto" {
		t.Fatalf("breaker %+v after cluster-b resolved, want closed by itself", br)
	}
	_, out = h.post(message(a)) // Alertmanager's repeat
	ids := actionIDs(out)
	if v := verdictsOf(out); len(v) != 1 || v[0] != string(VerdictQueued) {
		t.Fatalf("repeat after the breaker closed: verdicts %v, want queued", v)
	}
	if rec := h.waitFinal(ids[0]); rec.State != journal.StateSuccess {
		t.Fatalf("%s: %s\n%s", rec.State, rec.Reason, journalText(h.entriesFor(ids[0])))
	}
	if !h.pool("cluster-a").HAEnabled || h.pool("cluster-b").HAEnabled {
		t.Errorf("HA on cluster-a %v, cluster-b %v; want on, off", h.pool("cluster-a").HAEnabled, h.pool("cluster-b").HAEnabled)
	}
	if w := h.writes(); w["pool.enable_ha"] != 1 || len(w) != 1 {
		t.Errorf("writes %v, want one pool.enable_ha", w)
	}
}

// twelvePools is the lab's scenario with ten more copies of cluster-b
// (cluster-c to cluster-l, hosts xs-c1.., on 127.0.3.x to 127.0.12.x),
// every pool with pool HA off.
func twelvePools() *scenario.Scenario {
	sc := labScenario()
	tmpl := sc.Pools[1]
	for i := 3; i <= 12; i++ {
		letter := string(rune('a' + i - 1))
		p := tmpl
		p.Name, p.UUID, p.Master = "cluster-"+letter, "", "xs-"+letter+"1"
		p.Hosts = nil
		for j := 1; j <= 4; j++ {
			p.Hosts = append(p.Hosts, scenario.Host{Name: fmt.Sprintf("xs-%s%d", letter, j), Address: fmt.Sprintf("127.0.%d.%d", i, j)})
		}
		p.SRs = append([]scenario.SR(nil), tmpl.SRs...)
		for k := range p.SRs {
			if p.SRs[k].Name == "primary-b" {
				p.SRs[k].Name = "primary-" + letter
			}
		}
		p.VMs = nil
		sc.Pools = append(sc.Pools, p)
	}
	return sc
}

// A storm over twelve lab pools, with the default storm guard (at most 3
// pools running, the breaker at more than 5) and the alerts coming one
// pool per webhook, as Alertmanager groups them: the breaker opens at the
// sixth pool and later pools are never touched; of the actions that began
// before, every one that wrote ran to its end, so no pool is left halfway
// (pool HA on wherever enable_ha was called), and no more than 5 pools
// were written to.
func TestLabBreakerTwelvePools(t *testing.T) {
	sc := twelvePools()
	l := startLab(t, sc)
	var names []string
	for _, p := range sc.Pools {
		names = append(names, p.Name)
	}
	pol := fmt.Sprintf(`
dry_run: false
actions:
  enable_pool_ha: {alerts: [XenServerPoolHADisabled], pools: [%s]}
ha_timeout: 180s
poll_interval: 20ms
step_timeout: 30s
`, strings.Join(names, ", "))
	h := newLabHarness(t, l, pol, nil)
	h.start()
	var ids []uint64
	for i, name := range names {
		_, out := h.post(message(firing("XenServerPoolHADisabled", name, "", "fp-"+name, time.Now())))
		want := VerdictQueued
		if i >= 5 {
			want = VerdictSkipped
		}
		if v := verdictsOf(out); len(v) != 1 || v[0] != string(want) {
			t.Fatalf("alert %d on %s: verdicts %v, want %s", i+1, name, v, want)
		}
		ids = append(ids, actionIDs(out)...)
	}
	if br := h.breaker(); !br.Open || len(br.Pools) != 12 {
		t.Fatalf("breaker %+v, want open with 12 pools", br)
	}
	for i, id := range ids[:5] {
		rec := h.waitFinal(id)
		switch {
		case rec.State == journal.StateSuccess:
		case rec.State == journal.StateSkipped && strings.Contains(rec.Reason, "breaker is open") && !rec.Wrote:
		default:
			t.Errorf("action on %s: %s %q (wrote %v), want success or skipped by the breaker", names[i], rec.State, rec.Reason, rec.Wrote)
		}
	}
	h.stop()
	enabled := 0
	for i, name := range names {
		on := h.pool(name).HAEnabled
		if on {
			enabled++
		}
		if i >= 5 && on {
			t.Errorf("%s was repaired while the breaker was open", name)
		}
	}
	t.Logf("%d of %d pools repaired before the breaker opened; %d in the lab", enabled, len(names), len(h.lab.State().Pools))
	if w := h.writes(); int(w["pool.enable_ha"]) != enabled || w["pool.disable_ha"] != 0 {
		t.Errorf("writes %v with %d pools repaired: a pool was left halfway", w, enabled)
	}
	if got := h.counter(h.r.metrics.skips, ActionEnablePoolHA, SkipBreaker); got < 7 {
		t.Errorf("skips{reason=breaker} = %v, want at least the 7 pools after the fifth", got)
	}
	if code := h.resetBreaker(testToken); code != http.StatusOK {
		t.Errorf("reset: %d", code)
	}
	if br := h.breaker(); br.Open || len(br.Pools) != 0 {
		t.Errorf("after reset: %+v, want closed and counting afresh", br)
	}
}
