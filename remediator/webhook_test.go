package remediator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
)

func validBody(t testing.TB) []byte {
	b, err := json.Marshal(message(firing("XenServerPoolHADisabled", "cluster-a", "", "fp1", time.Unix(1700000000, 0))))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWebhookRejectsBadRequests(t *testing.T) {
	good := validBody(t)
	withVersion := func(v string) []byte {
		return bytes.Replace(good, []byte(`"version":"4"`), []byte(`"version":"`+v+`"`), 1)
	}
	bearer := "Bearer " + testToken
	cases := []struct {
		name   string
		method string
		ctype  string
		auth   string
		body   []byte
		code   int
		result webhookResult
	}{
		{"no auth", "POST", "application/json", "", good, 401, webhookUnauthorized},
		{"wrong token", "POST", "application/json", "Bearer nope", good, 401, webhookUnauthorized},
		{"token as basic auth", "POST", "application/json", "Basic " + testToken, good, 401, webhookUnauthorized},
		{"wrong method", "GET", "application/json", bearer, nil, 405, webhookMethodNotAllowed},
		{"put", "PUT", "application/json", bearer, good, 405, webhookMethodNotAllowed},
		{"wrong content type", "POST", "text/plain", bearer, good, 415, webhookUnsupportedType},
		{"no content type", "POST", "", bearer, good, 415, webhookUnsupportedType},
		{"oversized", "POST", "application/json", bearer,
			append(good[:len(good)-1], []byte(`,"pad":"`+strings.Repeat("x", 70<<10)+`"}`)...), 413, webhookTooLarge},
		{"malformed JSON", "POST", "application/json", bearer, []byte(`{"version":"4","alerts":[`), 400, webhookBadRequest},
		{"not an object", "POST", "application/json", bearer, []byte(`[1,2]`), 400, webhookBadRequest},
		{"trailing data", "POST", "application/json", bearer, append(append([]byte{}, good...), []byte(`{}`)...), 400, webhookBadRequest},
		{"wrong version", "POST", "application/json", bearer, withVersion("3"), 400, webhookBadRequest},
		{"no version", "POST", "application/json", bearer, bytes.Replace(good, []byte(`"version":"4",`), nil, 1), 400, webhookBadRequest},
		{"no alerts data", "POST", "application/json", bearer, []byte(`{"version":"4","groupKey":"x"}`), 400, webhookBadRequest},
		{"alert without fingerprint", "POST", "application/json", bearer, bytes.Replace(good, []byte(`"fingerprint":"fp1"`), []byte(`"fingerprint":""`), 1), 400, webhookBadRequest},
		{"alert with bad status", "POST", "application/json", bearer, bytes.Replace(good, []byte(`"status":"firing","labels"`), []byte(`"status":"burning","labels"`), 1), 400, webhookBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakePool("cluster-a")
			h := newHarness(t, livePolicy, p)
			h.start()
			code, out := h.postRaw(tc.method, tc.ctype, tc.auth, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d (%v)", code, tc.code, out)
			}
			if out["error"] == nil || out["error"] == "" {
				t.Errorf("no error message in the answer: %v", out)
			}
			if got := h.counter(h.r.metrics.webhooks, tc.result); got != 1 {
				t.Errorf("xsha_remediator_webhooks_total{result=%q} = %v, want 1", tc.result, got)
			}
			if es := h.entries(); len(es) != 0 {
				t.Errorf("a rejected request was journaled: %s", journalText(es))
			}
			h.stop()
			if calls := p.Calls(); len(calls) != 0 {
				t.Errorf("a rejected request reached XAPI: %v", calls)
			}
		})
	}
}

func TestWebhookUnauthorizedCarriesChallenge(t *testing.T) {
	h := newHarness(t, livePolicy, newFakePool("cluster-a"))
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/webhook", bytes.NewReader(validBody(t)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate = %q", got)
	}
}

// A newer Alertmanager adds fields (notification_reason, routeLabels) and
// so may any later one: they must pass.
func TestWebhookToleratesUnknownFields(t *testing.T) {
	h := newHarness(t, livePolicy, newFakePool("cluster-a"))
	body := `{"version":"4","groupKey":"{}:{pool=\"cluster-a\"}","truncatedAlerts":0,
	  "receiver":"xsha\\-remediator","status":"firing","notification_reason":"first notification",
	  "routeLabels":{"team":"infra"},"futureField":{"nested":[1,2,3]},
	  "alerts":[{"status":"firing","labels":{"alertname":"XenServerPoolHADisabled","pool":"cluster-a"},
	    "annotations":{},"startsAt":"2026-01-02T03:04:05Z","endsAt":"0001-01-01T00:00:00Z",
	    "generatorURL":"http://prometheus/graph","fingerprint":"abc","newAlertField":true}],
	  "groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am"}`
	code, out := h.postRaw("POST", "application/json; charset=utf-8", "Bearer "+testToken, []byte(body))
	if code != 200 {
		t.Fatalf("status %d: %v", code, out)
	}
	if ids := actionIDs(out); len(ids) != 1 {
		t.Fatalf("want one queued action, got %v", out)
	}
}

func TestAuthenticators(t *testing.T) {
	bearer, err := newBearerAuth("tok")
	if err != nil {
		t.Fatal(err)
	}
	basic, err := newBasicAuth("am", "p:w")
	if err != nil {
		t.Fatal(err)
	}
	either := AnyAuth{bearer, basic}
	for _, tc := range []struct {
		name string
		auth Authenticator
		set  func(r *http.Request)
		want bool
	}{
		{"bearer", bearer, func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }, true},
		{"bearer, scheme in lower case", bearer, func(r *http.Request) { r.Header.Set("Authorization", "bearer tok") }, true},
		{"bearer, wrong token", bearer, func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok2") }, false},
		{"bearer, token prefix", bearer, func(r *http.Request) { r.Header.Set("Authorization", "Bearer to") }, false},
		{"bearer, no scheme", bearer, func(r *http.Request) { r.Header.Set("Authorization", "tok") }, false},
		{"bearer, none", bearer, func(*http.Request) {}, false},
		{"basic", basic, func(r *http.Request) { r.SetBasicAuth("am", "p:w") }, true},
		{"basic, wrong password", basic, func(r *http.Request) { r.SetBasicAuth("am", "p:x") }, false},
		{"basic, wrong user", basic, func(r *http.Request) { r.SetBasicAuth("xm", "p:w") }, false},
		{"basic, empty", basic, func(r *http.Request) { r.SetBasicAuth("", "") }, false},
		{"either, bearer", either, func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }, true},
		{"either, basic", either, func(r *http.Request) { r.SetBasicAuth("am", "p:w") }, true},
		{"either, wrong", either, func(r *http.Request) { r.SetBasicAuth("am", "tok") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, "/", nil)
			tc.set(req)
			if got := tc.auth.Authenticate(req); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got := either.Challenge(); got != `Bearer realm="xsha-remediator", Basic realm="xsha-remediator"` {
		t.Errorf("challenge %q", got)
	}
}

func TestCredentialFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bearerReq := func(tok string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	basicReq := func(u, p string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.SetBasicAuth(u, p)
		return r
	}
	for _, tc := range []struct {
		name, content string
		read          func(path string) (Authenticator, error)
		ok            *http.Request
		err           string
	}{
		{"token with a trailing newline", "tok\n", readBearer, bearerReq("tok"), ""},
		{"empty token", " \n", readBearer, nil, "bearer token is empty"},
		{"user:password, only the first line", "am:p:w\r\nignored\n", readBasic, basicReq("am", "p:w"), ""},
		{"no colon", "am\n", readBasic, nil, "want user:password"},
		{"empty password", "am:\n", readBasic, nil, "must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.read(write("cred", tc.content))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !a.Authenticate(tc.ok) {
				t.Error("the credentials in the file are refused")
			}
		})
	}
	if _, err := ReadBearerTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing token file is accepted")
	}
}

func readBearer(path string) (Authenticator, error) { return ReadBearerTokenFile(path) }
func readBasic(path string) (Authenticator, error)  { return ReadBasicAuthFile(path) }

// FuzzWebhook feeds arbitrary bodies to the decoder: it must never panic,
// and whatever it accepts must be a usable version 4 message whose every
// alert has a status, an alert name, a fingerprint and a start time.
func FuzzWebhook(f *testing.F) {
	f.Add(validBody(f))
	f.Add([]byte(`{"version":"4","status":"resolved","alerts":[]}`))
	f.Add([]byte(`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"a"},"fingerprint":"f","startsAt":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":"4","alerts":null}`))
	f.Add([]byte(`{"version":4}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"version":"4","status":"firing","alerts":[{"labels":null}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		msg, err := decodeMessage(bytes.NewReader(body))
		if err != nil {
			if msg != nil {
				t.Fatal("error with a message")
			}
			return
		}
		if msg.Version != webhookVersion || msg.Data == nil {
			t.Fatalf("accepted %q", body)
		}
		for _, a := range msg.Alerts {
			if a.Labels["alertname"] == "" || a.Fingerprint == "" || a.StartsAt.IsZero() ||
				(a.Status != "firing" && a.Status != "resolved") {
				t.Fatalf("accepted alert %+v", a)
			}
		}
		// What was accepted survives a round trip through the library's own type.
		b, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		var again webhook.Message
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatal(err)
		}
		if err := validateMessage(&again); err != nil {
			t.Fatalf("re-encoded message invalid: %v", err)
		}
	})
}

// Every alert of a message is decided on its own, from its own status and
// labels; commonLabels (empty here, as in a mixed group) play no part.
func TestWebhookDecidesPerAlert(t *testing.T) {
	p, q := newFakePool("cluster-a"), newFakePool("cluster-b")
	h := newHarness(t, livePolicy, p, q)
	resolved := firing("XenServerHostEmergencyMode", "cluster-a", "cluster-a-h2", "fp-res", t0)
	resolved.Status = "resolved"
	msg := message(
		firing("XenServerPoolHADisabled", "cluster-a", "", "fp-a", t0),
		firing("SomethingElse", "cluster-a", "", "fp-x", t0),
		firing("XenServerPoolHADisabled", "cluster-b", "", "fp-b", t0),
		firing("XenServerPoolHADisabled", "", "", "fp-nopool", t0),
		firing("XenServerHostEmergencyMode", "cluster-a", "", "fp-nohost", t0),
		resolved,
	)
	code, out := h.post(msg)
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	var got []string
	for _, a := range out["alerts"].([]any) {
		m := a.(map[string]any)
		got = append(got, m["fingerprint"].(string)+"="+m["verdict"].(string))
	}
	want := "fp-a=queued fp-x=ignored fp-b=skipped fp-nopool=skipped fp-nohost=skipped fp-res=resolved"
	if strings.Join(got, " ") != want {
		t.Errorf("verdicts %v, want %s", got, want)
	}
	text := journalText(h.entries())
	for _, s := range []string{"the policy does not allow enable_pool_ha on pool cluster-b", "the alert has no pool label",
		"the alert has no host label", "no action is enabled for this alert"} {
		if !strings.Contains(text, s) {
			t.Errorf("journal lacks %q", s)
		}
	}
}

// The answer is 503 when the alerts could not be recorded, so Alertmanager
// sends them again.
func TestWebhookJournalFailureIs5xx(t *testing.T) {
	h := newHarness(t, livePolicy, newFakePool("cluster-a"))
	h.journal.Close()
	code, out := h.post(message(firing("XenServerPoolHADisabled", "cluster-a", "", "fp", time.Unix(1, 0))))
	if code != 503 {
		t.Fatalf("%d %v", code, out)
	}
	if got := h.counter(h.r.metrics.webhooks, webhookJournalError); got != 1 {
		t.Errorf("webhooks_total{result=journal_error} = %v", got)
	}
	h.journal = nil
}
