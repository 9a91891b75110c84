package lab

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func doJSON(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: %v: %s", method, url, err, b)
	}
	return resp.StatusCode, v
}

// TestControlAPI drives the lab through its JSON control API, as the demo
// and the end-to-end tests do.
func TestControlAPI(t *testing.T) {
	t.Parallel()
	l := startLab(t, Options{Scenario: fastScenario(0.01), ControlListen: "127.0.0.1:0", CloudStackListen: "127.0.0.1:0"})
	base := l.ControlURL()
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("control URL %q", base)
	}

	code, st := doJSON(t, "GET", base+"/v1/state", "")
	if code != 200 {
		t.Fatalf("GET /v1/state: %d", code)
	}
	pools := st["pools"].([]any)
	if len(pools) != 2 {
		t.Fatalf("%d pools", len(pools))
	}
	a := pools[0].(map[string]any)
	for key, want := range map[string]any{"name": "cluster-a", "product_version": "6.2.0", "master": "xs-a1", "ha_enabled": false, "ha_timeout_seconds": 60.0,
		"returning_host": "stuck", "edition": "per-socket"} {
		if a[key] != want {
			t.Errorf("pool %s = %v, want %v", key, a[key], want)
		}
	}
	h1 := a["hosts"].([]any)[0].(map[string]any)
	for key, want := range map[string]any{"name": "xs-a1", "address": "127.0.1.1", "power": "on", "role": "master", "live": true, "enabled": true, "isolated": false, "emergency_error": "", "heartbeat_sr_attached": true} {
		if h1[key] != want {
			t.Errorf("host %s = %v, want %v", key, h1[key], want)
		}
	}
	if h1["uuid"] == "" {
		t.Error("host without uuid")
	}
	cs := st["cloudstack"].(map[string]any)
	if cs["alert_wait"] != "60" || len(cs["hosts"].([]any)) != 8 || len(cs["vms"].([]any)) != 17 {
		t.Errorf("cloudstack: alert_wait %v, %d hosts, %d vms", cs["alert_wait"], len(cs["hosts"].([]any)), len(cs["vms"].([]any)))
	}

	enablePoolHA(t, l, "xs-b1", nil)
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/v1/hosts/xs-a4/heartbeat-sr/unplug", "", 200},
		{"POST", "/v1/hosts/xs-a4/isolate", "", 200},
		{"POST", "/v1/hosts/xs-b4/power-off", "", 200},
		{"POST", "/v1/hosts/xs-b4/power-off", "", 409},
		{"POST", "/v1/hosts/xs-b3/power-on", "", 409},
		{"POST", "/v1/hosts/xs-a2/required-pif/unplug", "", 200},
		{"POST", "/v1/hosts/nope/required-pif/plug", "", 404},
		{"POST", "/v1/hosts/xs-a3/xapi-restart", "", 200},
		{"POST", "/v1/hosts/xs-a3/xapi-restart", "", 409},
		{"POST", "/v1/hosts/xs-b4/xapi-restart", "", 409},
		{"POST", "/v1/hosts/nope/power-off", "", 404},
		{"POST", "/v1/pools/cluster-a/ha-disable", "", 409},
		{"POST", "/v1/pools/nope/ha-disable", "", 404},
		{"POST", "/v1/vms/i-2-101-VM/ha-restart-priority", `{"priority":"restart"}`, 200},
		{"POST", "/v1/vms/i-2-101-VM/ha-restart-priority", `{"priority":"3"}`, 409},
		{"POST", "/v1/vms/i-2-101-VM/ha-restart-priority", `{"prio":"restart"}`, 400},
		{"POST", "/v1/vms/nope/ha-restart-priority", `{"priority":""}`, 404},
		{"POST", "/v1/cloudstack/alert-wait", `{"seconds":null}`, 200},
		{"POST", "/v1/cloudstack/alert-wait", `{"seconds":-1}`, 409},
		{"POST", "/v1/cloudstack/alert-wait", `nope`, 400},
		{"GET", "/v1/hosts/xs-a1/power-off", "", 405},
		{"GET", "/v1/nothing", "", 404},
	} {
		code, body := doJSON(t, tc.method, base+tc.path, tc.body)
		if code != tc.code {
			t.Errorf("%s %s %s: %d %v, want %d", tc.method, tc.path, tc.body, code, body, tc.code)
		}
		if code != 200 && body["error"] == "" {
			t.Errorf("%s %s: no error message", tc.method, tc.path)
		}
	}
	s := l.State()
	if h := hostState(l, "xs-b4"); h.Power != "off" || h.Role != "off" {
		t.Errorf("xs-b4 after power-off: %+v", h)
	}
	if h := hostState(l, "xs-a4"); h.HeartbeatSRAttached || !h.Isolated {
		t.Errorf("xs-a4: %+v", h)
	}
	if h := hostState(l, "xs-a3"); h.Role != "booting" {
		t.Errorf("xs-a3 right after xapi-restart: role %s, want booting", h.Role)
	}
	// pool.enable_ha sees the unplugged PIF.
	ca, sa, _ := loginPool(t, l, "xs-a1")
	srs, _ := ca.SR.GetByNameLabel(sa, "MGMT-HA")
	if err := ca.Pool.EnableHa(sa, srs, nil); xenCodeOf(err) != "REQUIRED_PIF_IS_UNPLUGGED" {
		t.Errorf("enable_ha with xs-a2's required PIF unplugged: %v", err)
	}
	if s.CloudStack.AlertWait != "" {
		t.Errorf("alert_wait %q after null", s.CloudStack.AlertWait)
	}

	// Stats count calls per method and sessions per host.
	c, sess, _ := loginPool(t, l, "xs-b2")
	if _, err := c.Pool.GetAllRecords(sess); err != nil {
		t.Fatal(err)
	}
	code, stats := doJSON(t, "GET", base+"/v1/stats", "")
	if code != 200 {
		t.Fatal(code)
	}
	calls := stats["calls"].(map[string]any)
	if calls["session.login_with_password"].(float64) < 2 || calls["pool.get_all_records"].(float64) != 1 {
		t.Errorf("calls %v", calls)
	}
	for _, h := range stats["hosts"].([]any) {
		h := h.(map[string]any)
		if h["name"] == "xs-b1" && h["sessions"].(float64) != 1 {
			t.Errorf("xs-b1 sessions %v", h["sessions"])
		}
	}

	// Out-of-band HA disable blocks for the scaled disable time, then the
	// pool shows it.
	code, _ = doJSON(t, "POST", base+"/v1/pools/cluster-b/ha-disable", "")
	if code != 200 || poolState(l, "cluster-b").HAEnabled {
		t.Errorf("ha-disable: %d, ha_enabled %v", code, poolState(l, "cluster-b").HAEnabled)
	}
}

// TestIsolatedHostHangs: an isolated host accepts connections and never
// answers, without holding up the rest of the lab; reconnecting restores it.
func TestIsolatedHostHangs(t *testing.T) {
	t.Parallel()
	l := startLab(t, Options{Scenario: fastScenario(0.01), XAPIHTTP: true})
	if l.CAFile() != "" || !strings.HasPrefix(l.XAPIURL("xs-a1"), "http://") {
		t.Fatalf("plain HTTP lab: CA %q URL %q", l.CAFile(), l.XAPIURL("xs-a1"))
	}
	if err := l.Isolate("xs-a1"); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 300 * time.Millisecond}
	body := `<?xml version="1.0"?><methodCall><methodName>session.login_with_password</methodName><params><param><value>root</value></param><param><value>xenroot</value></param></params></methodCall>`
	_, err := hc.Post(l.XAPIURL("xs-a1"), "text/xml", strings.NewReader(body))
	if err == nil || !strings.Contains(err.Error(), "Client.Timeout") {
		t.Errorf("isolated host answered: %v", err)
	}
	// The rest of the lab works meanwhile, also the control operations.
	_, err = client(t, l, "xs-a2").Session.LoginWithPassword("root", "xenroot", "", "")
	if code, _ := errCode(err); code != "HOST_IS_SLAVE" {
		t.Errorf("slave while master isolated: %v", err)
	}
	if err := l.PowerOff("xs-a3"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reconnect("xs-a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, l, "xs-a1").Session.LoginWithPassword("root", "xenroot", "", ""); err != nil {
		t.Errorf("after reconnect: %v", err)
	}
	// Power-off drops hanging connections.
	if err := l.Isolate("xs-a2"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := http.Post(l.XAPIURL("xs-a2"), "text/xml", strings.NewReader(body))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := l.PowerOff("xs-a2"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("request to a host that lost power succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection still hanging after power-off")
	}
}
