package remediator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"xsha/remediator/journal"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStatusPageAndActionsAPI(t *testing.T) {
	p := newFakePool("cluster-a")
	h := newHarness(t, livePolicy, p)
	h.start()
	id := h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp1")).ID
	if err := h.r.setHold("", "<script>freeze</script>"); err != nil {
		t.Fatal(err)
	}

	code, body := get(t, h.srv.URL+"/api/v1/actions")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var list struct{ Actions []journal.Action }
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Actions) != 1 || list.Actions[0].ID != id || list.Actions[0].State != journal.StateSuccess || len(list.Actions[0].Steps) != 3 {
		t.Fatalf("actions %+v", list.Actions)
	}

	code, body = get(t, h.srv.URL+"/api/v1/actions/1")
	var one struct {
		Action  journal.Action
		Journal []journal.Entry
	}
	if err := json.Unmarshal([]byte(body), &one); code != 200 || err != nil || len(one.Journal) < 5 {
		t.Fatalf("%d %v %s", code, err, body)
	}
	if code, _ := get(t, h.srv.URL+"/api/v1/actions/99"); code != 404 {
		t.Errorf("unknown action: %d", code)
	}

	code, page := get(t, h.srv.URL+"/")
	if code != 200 {
		t.Fatalf("%d", code)
	}
	for _, s := range []string{"<strong>live</strong>", "enable_pool_ha", "cluster-a", "success", "every pool", "&lt;script&gt;freeze"} {
		if !strings.Contains(page, s) {
			t.Errorf("status page lacks %q", s)
		}
	}
	for _, secret := range []string{testToken, "<script>", "<script>freeze"} {
		if strings.Contains(page, secret) {
			t.Errorf("status page shows %q", secret)
		}
	}
}

func TestHoldAPI(t *testing.T) {
	h := newHarness(t, livePolicy, newFakePool("cluster-a"))
	send := func(method, query, auth, body string) int {
		req, _ := http.NewRequest(method, h.srv.URL+"/api/v1/holds"+query, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	post := func(auth, body string) int { return send("POST", "", auth, body) }
	del := func(auth string) int { return send("DELETE", "?pool=cluster-a", auth, "") }
	if code := post("", `{"pool":"cluster-a","reason":"x"}`); code != 401 {
		t.Errorf("unauthenticated hold: %d", code)
	}
	if code := post("Bearer "+testToken, `{"pool":"cluster-q"}`); code != 400 {
		t.Errorf("unknown pool: %d", code)
	}
	if code := post("Bearer "+testToken, `{"pool":"cluster-a",`); code != 400 {
		t.Errorf("malformed hold: %d", code)
	}
	if code := post("Bearer "+testToken, `{"pool":"cluster-a","until":"friday"}`); code != 400 {
		t.Errorf("hold with an unknown field: %d", code)
	}
	if _, body := get(t, h.srv.URL+"/api/v1/holds"); strings.Contains(body, "cluster-a") {
		t.Errorf("a rejected hold was set: %s", body)
	}
	if code := post("Bearer "+testToken, `{"pool":"cluster-a","reason":"disk swap"}`); code != 200 {
		t.Fatalf("hold: %d", code)
	}
	_, body := get(t, h.srv.URL+"/api/v1/holds")
	if !strings.Contains(body, "disk swap") || !strings.Contains(body, `"source": "api"`) {
		t.Errorf("holds %s", body)
	}
	// Holds survive a restart: they are in the journal.
	h.restart()
	if got := h.counter(h.r.metrics.hold, "cluster-a"); got != 1 {
		t.Errorf("hold gauge after restart = %v", got)
	}
	if code := del(""); code != 401 {
		t.Errorf("unauthenticated lift: %d", code)
	}
	if code := del("Bearer " + testToken); code != 200 {
		t.Errorf("lift: %d", code)
	}
	if code := del("Bearer " + testToken); code != 404 {
		t.Errorf("second lift: %d", code)
	}
	if got := h.counter(h.r.metrics.hold, "cluster-a"); got != 0 {
		t.Errorf("hold gauge after lift = %v", got)
	}
	// A hold that cannot be recorded is a server error, not the client's.
	h.journal.Close()
	if code := post("Bearer "+testToken, `{"pool":"cluster-a"}`); code != 500 {
		t.Errorf("hold with a closed journal: %d", code)
	}
}

func TestMetricNamesAreExposed(t *testing.T) {
	h := newHarness(t, livePolicy, newFakePool("cluster-a"))
	h.r.metrics.duration.WithLabelValues(string(ActionEnablePoolHA)).Observe(1)
	h.r.metrics.skips.WithLabelValues(string(ActionEnablePoolHA), string(SkipHold)).Inc()
	h.r.metrics.workflowRunning("cluster-a", "h1", WorkflowRestartSlave, true)
	h.r.setRunning("cluster-a", []*journal.Action{{Name: ActionEnablePoolHA, Pool: "cluster-a", State: journal.StateRunning, Replica: "r0"}})
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	want := MetricNames()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("exposed %v, MetricNames %v", got, want)
	}
	for _, n := range []string{"xsha_remediator_webhooks_total", "xsha_remediator_actions_total",
		"xsha_remediator_action_duration_seconds", "xsha_remediator_hold", "xsha_remediator_dry_run"} {
		if !slices.Contains(want, n) {
			t.Errorf("MetricNames lacks %s", n)
		}
	}
}

// The status page says which enabled actions would write and which only
// record what they would do.
func TestStatusPageShowsDryRunPerAction(t *testing.T) {
	for _, tc := range []struct {
		name, policy string
		want, not    []string
	}{
		{"default policy", "", []string{"<strong>dry-run</strong>", "Enabled actions: none"}, []string{"<strong>live</strong>"}},
		{"dry-run with one action live", `
actions:
  enable_pool_ha: {alerts: [A], pools: [cluster-a]}
  rejoin_host: {alerts: [B], pools: [cluster-a], dry_run: false}`,
			[]string{"<strong>live</strong>", "enable_pool_ha (pools: cluster-a; dry-run); rejoin_host (pools: cluster-a)</p>"},
			[]string{"rejoin_host (pools: cluster-a; dry-run)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.policy, newFakePool("cluster-a"))
			code, page := get(t, h.srv.URL+"/")
			if code != 200 {
				t.Fatalf("%d", code)
			}
			for _, s := range tc.want {
				if !strings.Contains(page, s) {
					t.Errorf("status page lacks %q", s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(page, s) {
					t.Errorf("status page shows %q", s)
				}
			}
		})
	}
}

// downJournal is a journal that fails every call, as etcd without a
// quorum does, while down is set.
type downJournal struct {
	journal.Journal
	down atomic.Bool
}

var errTestDown = errors.New("etcd unavailable: context deadline exceeded (test)")

func (j *downJournal) Update(fn func(tx journal.Tx) error) error {
	if j.down.Load() {
		return errTestDown
	}
	return j.Journal.Update(fn)
}

func (j *downJournal) View(fn func(tx journal.Tx) error) error {
	if j.down.Load() {
		return errTestDown
	}
	return j.Journal.View(fn)
}

// While the journal does not answer, the status page answers 503 and
// still shows the actions as last read, under a banner that says since
// when and why; once it answers again the banner goes.
func TestStatusPageWhileJournalDown(t *testing.T) {
	var dj *downJournal
	open := testJournal(t)
	withJournal(t, func(t *testing.T) func() (journal.Journal, error) {
		inner := open(t)
		return func() (journal.Journal, error) {
			j, err := inner()
			if err != nil {
				return nil, err
			}
			dj = &downJournal{Journal: j}
			return dj, nil
		}
	}, func(t *testing.T) {
		p := newFakePool("cluster-a")
		h := newHarness(t, livePolicy, p)
		h.start()
		id := h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp1")).ID
		if code, page := get(t, h.srv.URL+"/"); code != 200 || strings.Contains(page, `id="journal-down"`) {
			t.Fatalf("status page with the journal up: %d, banner shown: %v", code, strings.Contains(page, `id="journal-down"`))
		}

		dj.down.Store(true)
		code, page := get(t, h.srv.URL+"/")
		if code != 503 {
			t.Errorf("status page with the journal down: %d, want 503", code)
		}
		for _, s := range []string{`id="journal-down"`, "Journal unavailable", errTestDown.Error(), "state as last read", fmt.Sprintf(`id="action-%d"`, id)} {
			if !strings.Contains(page, s) {
				t.Errorf("status page with the journal down lacks %q", s)
			}
		}

		dj.down.Store(false)
		if code, page := get(t, h.srv.URL+"/"); code != 200 || strings.Contains(page, `id="journal-down"`) {
			t.Errorf("status page once the journal answers again: %d, banner shown: %v", code, strings.Contains(page, `id="journal-down"`))
		}
	})
}
