package exporter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xsha/config"
	"xsha/sim/lab"
	"xsha/sim/scenario"
	"xsha/xapi"
)

// labEnv is a lab with the exporter's pool watchers and collector on it.
type labEnv struct {
	t       testing.TB
	lab     *lab.Lab
	pools   *poolWatchers
	metrics *xapi.Metrics
	reg     *prometheus.Registry
	cfg     *config.Config
	logs    *logBuffer
}

// exporterTiming is the exporter side of a lab test: probes and long-polls
// scaled like the lab so that a failover takes seconds.
const exporterTiming = "probe_interval: 200ms\n    call_timeout: 2s\n    event_timeout: 1s\n"

func testScenario() *scenario.Scenario {
	sc := scenario.Default()
	sc.TimeScale = 0.02
	return sc
}

// startLab starts a lab on sc and watchers for the named pools (all when
// none is named), each configured with only its first host's address.
func startLab(t testing.TB, sc *scenario.Scenario, pools ...string) *labEnv {
	t.Helper()
	return startLabTimed(t, sc, exporterTiming, pools...)
}

// startLabTimed is startLab with the pools' timing settings given as YAML
// lines.
func startLabTimed(t testing.TB, sc *scenario.Scenario, timing string, pools ...string) *labEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	l, err := lab.Start(ctx, lab.Options{Scenario: sc, StateDir: dir})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if len(pools) == 0 {
		for _, p := range sc.Pools {
			pools = append(pools, p.Name)
		}
	}
	var b strings.Builder
	b.WriteString("pools:\n")
	for _, name := range pools {
		p, ok := sc.Pool(name)
		if !ok {
			t.Fatalf("no pool %s in the scenario", name)
		}
		fmt.Fprintf(&b, "  - name: %s\n    hosts: [%s]\n    port: %d\n    tls: {ca_file: %s}\n    password_file: %s\n    %s",
			name, p.Hosts[0].Address, l.XAPIPort(), l.CAFile(), l.PasswordFile(), timing)
	}
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, b.String())
	}
	logs := &logBuffer{}
	reg := prometheus.NewPedanticRegistry()
	m := xapi.NewMetrics(reg)
	ps := newPoolWatchers(ctx, newTestLogger(logs), m)
	reg.MustRegister(newXenServerCollector(ps))
	ps.Apply(cfg)
	e := &labEnv{t: t, lab: l, pools: ps, metrics: m, reg: reg, cfg: cfg, logs: logs}
	t.Cleanup(func() {
		ps.Stop()
		cancel()
		_ = l.Close()
		pw, _ := os.ReadFile(filepath.Join(dir, "xapi-password"))
		if s := strings.TrimSpace(string(pw)); s != "" && strings.Contains(logs.String(), s) {
			t.Error("the logs show the XAPI password")
		}
		if t.Failed() {
			t.Logf("exporter logs:\n%s", logs.String())
		}
	})
	return e
}

func (e *labEnv) values() map[string]float64 {
	e.t.Helper()
	return gatherValues(e.t, e.reg)
}

// waitUntil polls cond with a generous deadline.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls the metrics until cond holds, with a generous deadline.
func (e *labEnv) waitFor(what string, cond func(v map[string]float64) bool) map[string]float64 {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		v := e.values()
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; metrics:\n%s", what, dump(v))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitValue waits until series has value want.
func (e *labEnv) waitValue(series string, want float64) map[string]float64 {
	e.t.Helper()
	return e.waitFor(fmt.Sprintf("%s == %v", series, want), func(v map[string]float64) bool {
		got, ok := v[series]
		return ok && got == want
	})
}

func (e *labEnv) client(pool string) *xapi.Client {
	pc, ok := e.cfg.Pool(pool)
	if !ok {
		e.t.Fatalf("no pool %s", pool)
	}
	c := xapi.NewClient(pc, xapi.ClientOptions{Logger: newTestLogger(e.logs), Metrics: e.metrics})
	e.t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func dump(v map[string]float64) string {
	var lines []string
	for k, x := range v {
		if strings.HasPrefix(k, "xenserver_") || strings.HasPrefix(k, "xsha_") {
			lines = append(lines, fmt.Sprintf("%s %v", k, x))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// calls is every XAPI call the exporter counted for pool
// (xsha_xapi_calls_total, all methods).
func (e *labEnv) calls(pool string) float64 {
	var n float64
	for k, v := range e.values() {
		if strings.HasPrefix(k, "xsha_xapi_calls_total{") && strings.Contains(k, `pool="`+pool+`"`) {
			n += v
		}
	}
	return n
}

// labCalls is every XAPI call the lab served on pool's hosts.
func (e *labEnv) labCalls(pool string) float64 {
	var n uint64
	for _, h := range e.lab.Stats().Hosts {
		if h.Pool == pool {
			for _, c := range h.Calls {
				n += c
			}
		}
	}
	return float64(n)
}

// labSessions is the number of sessions open on pool's master.
func (e *labEnv) labSessions(pool string) int {
	n := 0
	for _, h := range e.lab.Stats().Hosts {
		if h.Pool == pool {
			n += h.Sessions
		}
	}
	return n
}
