package remediator

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestSkipsHelpListsEveryReason keeps the HELP text an operator reads in
// Prometheus in step with the reasons the remediator can give.
func TestSkipsHelpListsEveryReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.skips.WithLabelValues(string(ActionEnablePoolHA), string(SkipHold)).Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var help string
	for _, mf := range mfs {
		if mf.GetName() == skipsOpts.Name {
			help = mf.GetHelp()
		}
	}
	for _, r := range []SkipReason{"hold", "cooldown", "backoff", "budget", "precondition", "not_allowed", "bad_alert", "resolved"} {
		if !strings.Contains(help, string(r)) {
			t.Errorf("HELP of %s lacks %q: %s", skipsOpts.Name, r, help)
		}
	}
}

// TestActionTable checks every action's row: its alert is one the shipped
// rules raise (a workflow has none: an operator starts it), the policy
// accepts it, and the metrics are pre-set for it.
func TestActionTable(t *testing.T) {
	rules, err := os.ReadFile("../rules/xsha-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	preset := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() == actionsOpts.Name {
			for _, m := range mf.GetMetric() {
				preset[label(m, "action")+"/"+label(m, "result")] = true
			}
		}
	}
	for _, a := range actionTable {
		t.Run(string(a.name), func(t *testing.T) {
			row := "actions:\n  " + string(a.name) + ": {alerts: [" + a.alert + "], pools: [p]}\n"
			if a.workflow {
				if a.alert != "" {
					t.Errorf("workflow %s names alert %s", a.name, a.alert)
				}
				if _, err := parsePolicy([]byte(strings.Replace(row, "[]", "[SomeAlert]", 1))); err == nil {
					t.Error("the policy lets an alert start a workflow")
				}
				row = "actions:\n  " + string(a.name) + ": {pools: [p]}\n"
			} else if !strings.Contains(string(rules), "alert: "+a.alert+"\n") {
				t.Errorf("alert %s is not in rules/xsha-alerts.yml", a.alert)
			}
			if _, err := parsePolicy([]byte(row)); err != nil {
				t.Errorf("the policy refuses it: %v", err)
			}
			if len(a.steps("h")) == 0 {
				t.Error("no steps")
			}
			for _, r := range results {
				if !preset[string(a.name)+"/"+string(r)] {
					t.Errorf("%s{action=%q,result=%q} is not pre-set", actionsOpts.Name, a.name, r)
				}
			}
		})
	}
	if _, err := parsePolicy([]byte("actions:\n  reboot_everything: {alerts: [A], pools: [p]}\n")); err == nil ||
		!strings.Contains(err.Error(), "enable_pool_ha, clear_emergency_mode, rejoin_host") {
		t.Errorf("unknown action: %v", err)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
