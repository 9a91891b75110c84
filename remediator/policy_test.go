package remediator

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"xsha/config"
)

func TestParsePolicy(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string
		err   string
		check func(t *testing.T, p *Policy)
	}{
		{name: "empty file: nothing enabled, dry-run on", yaml: "", check: func(t *testing.T, p *Policy) {
			if !p.DryRun || len(p.Actions) != 0 || p.anyLive() {
				t.Errorf("got %+v", p)
			}
			want := Policy{DryRun: true, Cooldown: model.Duration(10 * time.Minute), MaxAttemptsPerHour: 3,
				Backoff: model.Duration(time.Minute), StepTimeout: model.Duration(15 * time.Minute),
				PollInterval: model.Duration(5 * time.Second), MaxRunningPools: 3,
				Breaker: BreakerPolicy{MaxPools: 5, Window: model.Duration(90 * time.Minute), AutoClose: true}}
			if !reflect.DeepEqual(*p, want) {
				t.Errorf("defaults %+v, want %+v", *p, want)
			}
		}},
		{name: "actions enabled but dry-run left out stays dry-run", yaml: `
actions:
  enable_pool_ha: {alerts: [XenServerPoolHADisabled], pools: [cluster-a]}`, check: func(t *testing.T, p *Policy) {
			if !p.dryRunFor(ActionEnablePoolHA) || p.anyLive() {
				t.Error("not dry-run")
			}
			if a, ok := p.actionFor("XenServerPoolHADisabled"); !ok || a != ActionEnablePoolHA {
				t.Errorf("actionFor = %q %v", a, ok)
			}
			if p.allows(ActionEnablePoolHA, "cluster-b") || !p.allows(ActionEnablePoolHA, "cluster-a") {
				t.Error("allows wrong")
			}
		}},
		{name: "the issue's example", yaml: `
dry_run: false                # default true
actions:
  enable_pool_ha:       {alerts: [XenServerPoolHADisabled],   pools: [cluster-a]}
  clear_emergency_mode: {alerts: [XenServerHostEmergencyMode], pools: [cluster-a]}
cooldown: 10m
max_attempts_per_hour: 3
`, check: func(t *testing.T, p *Policy) {
			if p.DryRun || !p.anyLive() || p.allows(ActionRejoinHost, "cluster-a") {
				t.Errorf("got %+v", p)
			}
			if len(p.haConfiguration()) != 0 {
				t.Errorf("configuration %v without ha_timeout", p.haConfiguration())
			}
		}},
		{name: "per-action dry-run", yaml: `
dry_run: false
actions:
  enable_pool_ha: {alerts: [A], pools: [p], dry_run: true}
  rejoin_host: {alerts: [B], pools: [p]}
ha_timeout: 3m`, check: func(t *testing.T, p *Policy) {
			if !p.dryRunFor(ActionEnablePoolHA) || p.dryRunFor(ActionRejoinHost) {
				t.Error("per-action dry-run ignored")
			}
			if p.haConfiguration()["timeout"] != "180" {
				t.Errorf("configuration %v", p.haConfiguration())
			}
		}},
		{name: "storm guard keys override one at a time", yaml: `
max_running_pools: 1
breaker: {max_pools: 2}`, check: func(t *testing.T, p *Policy) {
			want := BreakerPolicy{MaxPools: 2, Window: model.Duration(90 * time.Minute), AutoClose: true}
			if p.MaxRunningPools != 1 || p.Breaker != want {
				t.Errorf("max_running_pools %d, breaker %+v, want 1, %+v", p.MaxRunningPools, p.Breaker, want)
			}
		}},
		{name: "breaker by share of the pools", yaml: "breaker: {max_pools: 0, max_pools_percent: 10, auto_close: false}\n",
			check: func(t *testing.T, p *Policy) {
				for _, tc := range []struct {
					n, of int
					want  bool
				}{{5, 50, false}, {6, 50, true}, {1, 2, true}, {0, 2, false}} {
					if got, why := p.Breaker.trips(tc.n, tc.of); got != tc.want {
						t.Errorf("%d of %d pools: trips %v (%s), want %v", tc.n, tc.of, got, why, tc.want)
					}
				}
			}},
		{name: "breaker off", yaml: "breaker: {max_pools: 0}\n", check: func(t *testing.T, p *Policy) {
			if p.Breaker.enabled() {
				t.Error("breaker enabled with both limits 0")
			}
		}},
		{name: "negative running pools", yaml: "max_running_pools: -1\n", err: "max_running_pools -1"},
		{name: "breaker percent out of range", yaml: "breaker: {max_pools_percent: 100}\n", err: "max_pools_percent 100"},
		{name: "breaker without window", yaml: "breaker: {window: 0s}\n", err: "window must be positive"},
		{name: "unknown top-level key", yaml: "dry_run: false\ncooldow: 5m\n", err: "field cooldow not found"},
		{name: "unknown action key", yaml: "actions:\n  enable_pool_ha: {alerts: [A], pools: [p], pool: [q]}\n", err: "field pool not found"},
		{name: "unknown action", yaml: "actions:\n  reboot_host: {alerts: [A], pools: [p]}\n", err: `unknown action "reboot_host"`},
		{name: "no alerts", yaml: "actions:\n  enable_pool_ha: {pools: [p]}\n", err: "alerts: at least one"},
		{name: "no pools", yaml: "actions:\n  enable_pool_ha: {alerts: [A]}\n", err: "pools: at least one"},
		{name: "alert for two actions", yaml: "actions:\n  enable_pool_ha: {alerts: [A], pools: [p]}\n  rejoin_host: {alerts: [A], pools: [p]}\n", err: "triggers both"},
		{name: "no attempts", yaml: "max_attempts_per_hour: 0\n", err: "at least 1"},
		{name: "ha_timeout too short", yaml: "ha_timeout: 5s\n", err: "at least 10s"},
		{name: "bad duration", yaml: "cooldown: soon\n", err: "decoding policy"},
		{name: "wrong type", yaml: "dry_run: maybe\n", err: "decoding policy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePolicy([]byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}

func TestPolicyCheckPools(t *testing.T) {
	p, err := parsePolicy([]byte("actions:\n  enable_pool_ha: {alerts: [A], pools: [cluster-a, cluster-z]}\nholds: {pools: [cluster-y]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Pools: []config.Pool{{Name: "cluster-a"}}}
	if err := p.CheckPools(cfg); err == nil || !strings.Contains(err.Error(), "[cluster-y cluster-z]") {
		t.Errorf("err %v", err)
	}
}
