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
	for _, s := range a.Pools().Snapshots() {
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := New(ctx, Options{ConfigFile: path})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	// Nothing listens: the first attempt fails quickly and the pool is
	// reported down, which is an answer.
	waitUntil(t, "ready after the first failed attempt", func() bool { ok, _ := a.Ready(); return ok })
	s := a.Pools().Snapshots()[0]
	if s.Up || s.LastError == "" {
		t.Errorf("pool with nothing listening: up=%v err=%q", s.Up, s.LastError)
	}
}
