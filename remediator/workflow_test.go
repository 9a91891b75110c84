package remediator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"xsha/remediator/journal"
	"xsha/xapi"
)

// workflowsOnFake enables three workflows and enable_pool_ha on
// cluster-a, live.
const workflowsOnFake = `
dry_run: false
actions:
  enable_pool_ha: {alerts: [XenServerPoolHADisabled], pools: [cluster-a]}
  restart_slave:  {pools: [cluster-a]}
  restart_master: {pools: [cluster-a]}
  bring_back:     {pools: [cluster-a]}
poll_interval: 1ms
step_timeout: 30s
`

// api sends a request to the workflow API and returns the status and the
// decoded answer.
func (h *harness) api(method, path, auth, ctype, body string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, bytes.NewReader([]byte(body)))
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

// TestWorkflowAPIRefusesBadRequests: every bad request is a clear 4xx and
// nothing is queued.
func TestWorkflowAPIRefusesBadRequests(t *testing.T) {
	p := newFakePool("cluster-a")
	h := newHarness(t, workflowsOnFake, p)
	auth := "Bearer " + testToken
	for _, tc := range []struct {
		name, auth, ctype, body string
		code                    int
		want                    string
	}{
		{"no token", "", "application/json", `{"workflow":"restart_slave","pool":"cluster-a","host":"cluster-a-h2"}`, 401, "authentication required"},
		{"wrong token", "Bearer nope", "application/json", `{"workflow":"restart_slave","pool":"cluster-a","host":"cluster-a-h2"}`, 401, "authentication required"},
		{"not JSON", auth, "text/plain", `{}`, 415, "application/json"},
		{"unknown field", auth, "application/json", `{"workflow":"restart_slave","pool":"cluster-a","host":"h","force":true}`, 400, "unknown field"},
		{"unknown workflow", auth, "application/json", `{"workflow":"enable_pool_ha","pool":"cluster-a","host":"h"}`, 400, "unknown workflow"},
		{"no host", auth, "application/json", `{"workflow":"restart_slave","pool":"cluster-a"}`, 400, "host is required"},
		{"unknown pool", auth, "application/json", `{"workflow":"restart_slave","pool":"cluster-z","host":"h"}`, 400, "not in the configuration"},
		{"not in the policy", auth, "application/json", `{"workflow":"shutdown","pool":"cluster-a","host":"h"}`, 403, "the policy does not allow shutdown"},
		{"new master onto itself", auth, "application/json", `{"workflow":"restart_master","pool":"cluster-a","host":"h","new_master":"h"}`, 400, "another host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := h.api(http.MethodPost, "/api/v1/workflows", tc.auth, tc.ctype, tc.body)
			if code != tc.code || !strings.Contains(out["error"].(string), tc.want) {
				t.Errorf("%d %v, want %d with %q", code, out, tc.code, tc.want)
			}
		})
	}
	if recs, _ := h.r.recentActions(10); len(recs) != 0 {
		t.Errorf("bad requests queued %v", recs)
	}
}

// TestWorkflowHoldsItsPool: while a workflow is open, a second workflow on
// the pool is refused (409) and an alert-driven action is skipped as held;
// a workflow that has not started can be cancelled, which lifts both.
func TestWorkflowHoldsItsPool(t *testing.T) {
	p := newFakePool("cluster-a")
	h := newHarness(t, workflowsOnFake, p) // runners not started: the workflow stays pending
	auth := "Bearer " + testToken
	code, out := h.api(http.MethodPost, "/api/v1/workflows", auth, "application/json",
		`{"workflow":"restart_slave","pool":"cluster-a","host":"cluster-a-h2"}`)
	if code != 202 {
		t.Fatalf("start: %d %v", code, out)
	}
	id := uint64(out["workflow"].(map[string]any)["id"].(float64))
	if got := h.counter(h.r.metrics.workflows, "cluster-a", "cluster-a-h2", "restart_slave"); got != 1 {
		t.Errorf("xsha_remediator_workflow_running = %v, want 1", got)
	}
	code, out = h.api(http.MethodPost, "/api/v1/workflows", auth, "application/json",
		`{"workflow":"restart_slave","pool":"cluster-a","host":"cluster-a-h3"}`)
	if code != 409 || !strings.Contains(out["error"].(string), "workflow 1 (restart_slave cluster-a-h2) is pending") {
		t.Errorf("second workflow: %d %v", code, out)
	}
	rec := h.record(h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp"))
	if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, "workflow 1 (restart_slave of cluster-a-h2) is pending on pool cluster-a: planned maintenance") {
		t.Errorf("alert-driven action during the workflow: %s: %s", rec.State, rec.Reason)
	}
	resp, err := http.Get(h.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`<tr id="workflow-1">`, "restart_slave", "check: to do", "cloudstack_maintenance: to do", "disable_pool_ha: to do", "verify: to do"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the status page's workflows lack %q", want)
		}
	}
	if strings.Contains(string(page), `<tr id="action-1">`) {
		t.Error("the workflow is listed among the alert-driven actions too")
	}
	code, out = h.api(http.MethodPost, "/api/v1/workflows/"+itoa(id)+"/cancel", auth, "application/json", "")
	if code != 200 || out["workflow"].(map[string]any)["state"] != "cancelled" {
		t.Errorf("cancel: %d %v", code, out)
	}
	if got := h.counter(h.r.metrics.workflows, "cluster-a", "cluster-a-h2", "restart_slave"); got != 0 {
		t.Errorf("xsha_remediator_workflow_running after the cancel = %v", got)
	}
	code, out = h.api(http.MethodPost, "/api/v1/workflows/"+itoa(id)+"/cancel", auth, "application/json", "")
	if code != 409 {
		t.Errorf("second cancel: %d %v", code, out)
	}
	if len(p.calls) != 0 {
		t.Errorf("calls %v", p.calls)
	}
}

// TestWorkflowRefusesTheLastLiveHost: the check step refuses, on live
// state, to take out the only live host, and changes nothing.
func TestWorkflowRefusesTheLastLiveHost(t *testing.T) {
	p := newFakePool("cluster-a")
	p.haEnabled = true
	for _, hh := range p.hosts[1:] {
		hh.live = false
	}
	h := newHarness(t, workflowsOnFake, p)
	h.start()
	rec, err := h.r.startWorkflow(WorkflowRequest{Workflow: WorkflowRestartMaster, Pool: "cluster-a", Host: "cluster-a-h1"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	rec = h.waitFinal(rec.ID)
	if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, "host cluster-a-h1 is the last live, enabled host of the pool") ||
		!strings.Contains(rec.Reason, "nothing was changed") {
		t.Errorf("%s: %s", rec.State, rec.Reason)
	}
	if len(p.calls) != 0 {
		t.Errorf("calls %v", p.calls)
	}
}

func itoa(id uint64) string {
	b, _ := json.Marshal(id)
	return string(b)
}

// TestWorkflowRefusesABlockedDisable: with the master cut off from the HA
// statefile, pool.disable_ha would wait for the powered-off host without
// end (xapi_ha.ml), so bring_back refuses before writing anything.
func TestWorkflowRefusesABlockedDisable(t *testing.T) {
	p := newFakePool("cluster-a")
	p.haEnabled = true
	p.hosts[3].live, p.hosts[3].role = false, xapi.RoleUnreachable
	p.hosts[0].noStatefile = true
	h := newHarness(t, workflowsOnFake, p)
	h.start()
	rec, err := h.r.startWorkflow(WorkflowRequest{Workflow: WorkflowBringBack, Pool: "cluster-a", Host: "cluster-a-h4"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	rec = h.waitFinal(rec.ID)
	if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, "the master cannot reach the HA statefile, so pool.disable_ha would wait") {
		t.Errorf("%s: %s", rec.State, rec.Reason)
	}
	if calls := p.Calls(); len(calls) != 0 {
		t.Errorf("calls %v", calls)
	}
}
