package dashboards

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The dashboards operators get, by file name and uid. Links and bookmarks
// point at the uids, so they must not change.
var wantDashboards = map[string]string{
	"fleet-overview.json": "xsha-fleet",
	"pool-detail.json":    "xsha-pool",
	"remediation.json":    "xsha-remediation",
}

func TestDashboards(t *testing.T) {
	exposed := exposedMetrics(t)
	files, err := fs.Glob(Files, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(wantDashboards) {
		t.Errorf("dashboards %v, want %d of them", files, len(wantDashboards))
	}
	uids := map[string]string{}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			data, err := Files.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range checkDashboard(data, exposed) {
				t.Error(p)
			}
			var d struct {
				UID    string            `json:"uid"`
				Panels []json.RawMessage `json:"panels"`
			}
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatal(err)
			}
			if want, ok := wantDashboards[name]; !ok || d.UID != want {
				t.Errorf("uid %q, want %q", d.UID, want)
			}
			if other, ok := uids[d.UID]; ok {
				t.Errorf("uid %q is also used by %s", d.UID, other)
			}
			uids[d.UID] = name
			if len(d.Panels) < 5 {
				t.Errorf("%d panels: the dashboard is nearly empty", len(d.Panels))
			}
		})
	}
}

// TestFleetOverviewShowsEveryPoolFact checks that the fleet overview answers
// the operator's questions about every pool.
func TestFleetOverviewShowsEveryPoolFact(t *testing.T) {
	data, err := Files.ReadFile("fleet-overview.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, metric := range []string{
		"xenserver_pool_ha_enabled",                               // HA state
		"xenserver_pool_master_info",                              // master
		"xenserver_host_hotfix_applied",                           // hotfix
		"xenserver_ha_heartbeat_sr_present",                       // heartbeat SR
		"xenserver_ha_heartbeat_sr_attached",                      // heartbeat SR on every host
		"xenserver_ha_heartbeat_sr_cloudstack_primary_storage",    // heartbeat SR misuse
		"cloudstack_alert_wait_seconds",                           // alert.wait
		`xenserver_host_role{pool=~\"$pool\",role=\"emergency\"}`, // hosts by role
	} {
		if !strings.Contains(string(data), metric) {
			t.Errorf("the fleet overview does not show %s", metric)
		}
	}
}

func TestRuleExpressions(t *testing.T) {
	exposed := exposedMetrics(t)
	files, err := filepath.Glob(filepath.Join("..", "rules", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no rule files in rules/")
	}
	runbookExists := func(name string) bool {
		_, err := os.Stat(filepath.Join("..", "docs", "runbooks", name+".md"))
		return err == nil
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range checkRules(data, exposed, runbookExists) {
				t.Error(p)
			}
		})
	}
}

// TestChecksReportProblems makes sure the checks above can fail: each case
// breaks one rule and must be reported.
func TestChecksReportProblems(t *testing.T) {
	exposed := exposedMetrics(t)
	queries := []struct {
		name      string
		expr      string
		dashboard bool
		want      string // a substring of the problem; "" for none
	}{
		{"good dashboard query", `sum by (method) (rate(xsha_xapi_calls_total{pool=~"$pool"}[$__rate_interval]))`, true, ""},
		{"good rule", `max by (pool) (last_over_time(xenserver_pool_ha_enabled[5m])) == 0`, false, ""},
		{"histogram bucket", `histogram_quantile(0.9, sum by (le) (rate(xsha_remediator_action_duration_seconds_bucket[$__rate_interval])))`, true, ""},
		{"unknown metric", `xenserver_pool_ha_enabeld{pool=~"$pool"} == 0`, true, "xenserver_pool_ha_enabeld is not exposed"},
		{"unknown metric in a rule", `max by (pool) (xenserver_pool_masters_total) > 0`, false, "xenserver_pool_masters_total is not exposed"},
		{"histogram suffix on a gauge", `xenserver_pool_up_count`, false, "xenserver_pool_up_count is not exposed"},
		{"histogram family name", `xsha_remediator_action_duration_seconds`, false, "xsha_remediator_action_duration_seconds is not exposed"},
		{"parse error", `max by (pool (xenserver_pool_up)`, false, "does not parse"},
		{"no metric name", `{__name__=~"xenserver_.+"}`, false, "no metric name"},
		{"rate without $__rate_interval", `rate(xsha_xapi_calls_total{pool=~"$pool"}[5m])`, true, "instead of [$__rate_interval]"},
		{"pool not filtered", `max(xenserver_pool_ha_enabled)`, true, `does not filter pool=~"$pool"`},
		{"counter outside rate", `sum(xsha_remediator_actions_total)`, true, "outside rate"},
		{"empty query", ``, true, "empty query"},
	}
	for _, tc := range queries {
		t.Run(tc.name, func(t *testing.T) {
			problems := checkQuery(tc.expr, exposed, queryRules{dashboard: tc.dashboard})
			assertProblem(t, problems, tc.want)
		})
	}

	good, err := Files.ReadFile("remediation.json")
	if err != nil {
		t.Fatal(err)
	}
	dashboards := []struct {
		name   string
		change func(d map[string]any)
		want   string
	}{
		{"unchanged", func(map[string]any) {}, ""},
		{"editable", func(d map[string]any) { d["editable"] = true }, "editable"},
		{"no unit", func(d map[string]any) { firstPanel(d)["fieldConfig"] = map[string]any{} }, "has no unit"},
		{"no description", func(d map[string]any) { delete(firstPanel(d), "description") }, "no title or description"},
		{"fixed datasource", func(d map[string]any) {
			firstPanel(d)["datasource"] = map[string]any{"type": "prometheus", "uid": "prometheus"}
		}, "does not use the datasource variable"},
		{"unknown metric", func(d map[string]any) {
			firstPanel(d)["targets"].([]any)[0].(map[string]any)["expr"] = "max(xsha_remediator_dryrun)"
		}, "xsha_remediator_dryrun is not exposed"},
		{"pool variable without allValue", func(d map[string]any) { variable(d, "pool")["allValue"] = "" }, `without allValue ".+"`},
		{"pool variable not refreshed", func(d map[string]any) { variable(d, "pool")["refresh"] = 1 }, "refresh: 2"},
		{"unknown metric in a variable", func(d map[string]any) {
			variable(d, "pool")["query"] = "label_values(xenserver_pools, pool)"
		}, "xenserver_pools is not exposed"},
	}
	for _, tc := range dashboards {
		t.Run("dashboard "+tc.name, func(t *testing.T) {
			var d map[string]any
			if err := json.Unmarshal(good, &d); err != nil {
				t.Fatal(err)
			}
			tc.change(d)
			data, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			assertProblem(t, checkDashboard(data, exposed), tc.want)
		})
	}

	rules := []struct {
		name string
		rule string
		want string
	}{
		{"good", goodRule, ""},
		{"unknown metric", strings.Replace(goodRule, "xenserver_pool_up", "xenserver_pool_upp", 1), "xenserver_pool_upp is not exposed"},
		{"templated summary", strings.Replace(goodRule, "summary: The exporter", "summary: Pool {{ $labels.pool }}", 1), "not a static sentence"},
		{"bad severity", strings.Replace(goodRule, "severity: warning", "severity: page", 1), "severity"},
		{"wrong runbook", strings.Replace(goodRule, "xshapooldown.md", "pool-down.md", 1), "runbook_url"},
		{"alert name", strings.Replace(goodRule, "alert: XSHAPoolDown", "alert: xsha_pool_down", 1), "CamelCase"},
	}
	for _, tc := range rules {
		t.Run("rule "+tc.name, func(t *testing.T) {
			exists := func(name string) bool { return name == "xshapooldown" }
			assertProblem(t, checkRules([]byte(tc.rule), exposed, exists), tc.want)
		})
	}
}

const goodRule = `
groups:
  - name: xsha
    rules:
      - alert: XSHAPoolDown
        expr: max by (pool) (xenserver_pool_up) == 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: The exporter has no view of a pool.
          description: Pool {{ $labels.pool }} is down.
          runbook_url: https://github.com/xsha/xsha/blob/main/docs/runbooks/xshapooldown.md
`

func assertProblem(t *testing.T, problems []string, want string) {
	t.Helper()
	if want == "" {
		for _, p := range problems {
			t.Errorf("unexpected problem: %s", p)
		}
		return
	}
	for _, p := range problems {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Errorf("problems %q do not report %q", problems, want)
}

// firstPanel returns the first panel with queries of a decoded dashboard.
func firstPanel(d map[string]any) map[string]any {
	for _, p := range d["panels"].([]any) {
		if pm := p.(map[string]any); pm["type"] != "row" {
			return pm
		}
	}
	panic("no panel")
}

func variable(d map[string]any, name string) map[string]any {
	for _, v := range d["templating"].(map[string]any)["list"].([]any) {
		if vm := v.(map[string]any); vm["name"] == name {
			return vm
		}
	}
	panic("no variable " + name)
}
