package exporter

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func writeConfig(t *testing.T, path string, port int, pools ...string) {
	t.Helper()
	pw := filepath.Join(filepath.Dir(path), "pw")
	if err := os.WriteFile(pw, []byte("s3cret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("pools:\n")
	for i, p := range pools {
		fmt.Fprintf(&b, "  - name: %s\n    hosts: [127.0.0.%d]\n    port: %d\n    scheme: http\n    password_file: %s\n    probe_interval: 1s\n    call_timeout: 1s\n", p, i+1, port, pw)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func poolNames(a *App) []string {
	var out []string
	for _, s := range a.pools.Snapshots() {
		out = append(out, s.Pool)
	}
	return out
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "xsha.yml")
	port := closedPort(t)
	writeConfig(t, path, port, "cluster-a")
	var logs logBuffer
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	a := New(ctx, Options{ConfigFile: path, Registry: reg, Logger: newTestLogger(&logs)})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	h, err := a.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	post := func() (int, string) {
		resp, err := http.Post(srv.URL+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	reloadOK := func() float64 {
		return gatherValues(t, reg)["xsha_config_last_reload_successful"]
	}

	resp, err := http.Get(srv.URL + "/-/reload")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d, want 405", resp.StatusCode)
	}

	// A pool added and one removed: the watchers follow.
	writeConfig(t, path, port, "cluster-b", "cluster-c")
	if code, body := post(); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	if got := strings.Join(poolNames(a), ","); got != "cluster-b,cluster-c" {
		t.Errorf("pools after reload: %s", got)
	}
	if reloadOK() != 1 {
		t.Error("xsha_config_last_reload_successful is not 1")
	}

	// A bad file keeps the running configuration and says why.
	if err := os.WriteFile(path, []byte("pools:\n  - name: x\n    hots: [a]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := post()
	if code != http.StatusInternalServerError || !strings.Contains(body, "hots") {
		t.Errorf("bad reload: %d %q, want 500 naming the unknown key", code, body)
	}
	if got := strings.Join(poolNames(a), ","); got != "cluster-b,cluster-c" {
		t.Errorf("pools after a bad reload: %s", got)
	}
	if reloadOK() != 0 {
		t.Error("xsha_config_last_reload_successful is not 0 after a bad reload")
	}
	if !strings.Contains(logs.String(), "keeping the running one") {
		t.Error("the bad reload is not logged")
	}

	// Pages and logs never show the password.
	for _, p := range []string{"/", "/metrics", "/-/ready", "/-/healthy"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "s3cret") {
			t.Errorf("%s shows the password", p)
		}
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Error("the logs show the password")
	}
}

func TestReadyAfterFirstAttempt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "xsha.yml")
	writeConfig(t, path, closedPort(t), "cluster-a")
	ctx := t.Context()
	a := New(ctx, Options{ConfigFile: path})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	// Nothing listens: the first attempt fails quickly and the pool is
	// reported down, which is an answer.
	waitUntil(t, "ready after the first failed attempt", func() bool { ok, _ := a.ready(); return ok })
	s := a.pools.Snapshots()[0]
	if s.Up || s.LastError == "" {
		t.Errorf("pool with nothing listening: up=%v err=%q", s.Up, s.LastError)
	}
}

// hangingPort returns a loopback port that accepts connections and never
// answers, as an isolated master does, and a function that closes it and
// every connection it accepted.
func hangingPort(t *testing.T) (int, func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}
}

// The endpoints answer the same texts as the remediator's: monitoring and
// probes compare them.
func TestEndpoints(t *testing.T) {
	serve := func(t *testing.T, port int, callTimeout string) (*App, string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "xsha.yml")
		writeConfig(t, path, port, "cluster-a")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "call_timeout: 1s", "call_timeout: "+callTimeout)), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		a := New(ctx, Options{ConfigFile: path})
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Stop)
		h, err := a.Handler()
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return a, srv.URL
	}
	// The master hangs and no ready timeout is set: the exporter waits.
	port, unhang := hangingPort(t)
	_, waiting := serve(t, port, "10m")
	t.Cleanup(unhang) // before the App stops: its call would wait 10m

	// Nothing listens: the first attempt fails at once, which is an answer.
	ready, readyURL := serve(t, closedPort(t), "1s")
	waitUntil(t, "ready", func() bool { ok, _ := ready.ready(); return ok })

	for _, tc := range []struct {
		name, method, url string
		code              int
		body              string // exact, or a prefix when it ends in "*"
		allow             string
	}{
		{"healthy", http.MethodGet, waiting + "/-/healthy", 200, "Healthy\n", ""},
		{"not ready", http.MethodGet, waiting + "/-/ready", 503, "Not ready: waiting for the first read of pools cluster-a\n", ""},
		{"ready", http.MethodGet, readyURL + "/-/ready", 200, "Ready\n", ""},
		{"reload needs POST", http.MethodGet, readyURL + "/-/reload", 405, "This endpoint requires a POST request.\n", "POST"},
		{"reload", http.MethodPost, readyURL + "/-/reload", 200, "Reloaded\n", ""},
		{"metrics", http.MethodGet, readyURL + "/metrics", 200, "*", ""},
		{"landing page", http.MethodGet, readyURL + "/", 200, "<html lang=\"en\">*", ""},
		{"unknown path", http.MethodGet, readyURL + "/nothing", 404, "404 page not found\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d (%q)", resp.StatusCode, tc.code, body)
			}
			if prefix, ok := strings.CutSuffix(tc.body, "*"); ok {
				if !strings.HasPrefix(body, prefix) {
					t.Errorf("body %.60q..., want it to start with %q", body, prefix)
				}
			} else if body != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}
