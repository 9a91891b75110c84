package remediator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"xsha/config"
	"xsha/xapi"
)

// appFiles writes an xsha.yml for cluster-a and the policy, and returns
// Options for an App on them whose pool clients are the fake.
func appFiles(t *testing.T, policy string, pool *fakePool) Options {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	cfg := filepath.Join(dir, "xsha.yml")
	pol := filepath.Join(dir, "policy.yml")
	for name, content := range map[string]string{
		pw:  "secret\n",
		cfg: fmt.Sprintf("pools:\n  - {name: cluster-a, hosts: [127.0.0.1], scheme: http, password_file: %s, heartbeat_sr: MGMT-HA}\n", pw),
		pol: policy,
	} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	auth, _ := newBearerAuth(testToken)
	return Options{ConfigFile: cfg, PolicyFile: pol, JournalPath: filepath.Join(dir, "journal.db"), Auth: auth,
		NewClient: func(config.Pool, *slog.Logger, *xapi.Metrics) PoolClient { return pool }}
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAppHealthAndReadiness pins the texts agreed with the exporter:
// "Healthy\n", "Ready\n", and 503 "Not ready: <reason>\n" before the
// runners start.
func TestAppHealthAndReadiness(t *testing.T) {
	pool := newFakePool("cluster-a")
	opts := appFiles(t, livePolicy, pool)
	app, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Handler())
	resp, err := http.Get(srv.URL + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(b, "Not ready: ") || !strings.HasSuffix(b, "\n") {
		t.Errorf("/-/ready before Run: %d %q", resp.StatusCode, b)
	}
	srv.Close()
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}

	// The whole program, served on a listener, until its context ends.
	app, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app.opts.Listeners = []net.Listener{l}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	base := "http://" + l.Addr().String()
	waitUntil(t, "ready", func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		return resp.StatusCode == http.StatusOK && body(t, resp) == "Ready\n"
	})
	for path, want := range map[string]string{"/-/healthy": "Healthy\n"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		if b := body(t, resp); resp.StatusCode != http.StatusOK || b != want {
			t.Errorf("%s: %d %q, want 200 %q", path, resp.StatusCode, b, want)
		}
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); !strings.Contains(b, "xsha_remediator_dry_run 0") || !strings.Contains(b, "xsha_config_last_reload_successful 1") {
		t.Errorf("/metrics lacks the remediator's or the configuration's metrics:\n%s", b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestAppReloadPolicyKeepsRunningPolicyOnError checks that a broken policy
// file leaves the running policy in force and a good one replaces it.
func TestAppReloadPolicyKeepsRunningPolicyOnError(t *testing.T) {
	opts := appFiles(t, livePolicy, newFakePool("cluster-a"))
	app, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := os.WriteFile(opts.PolicyFile, []byte("dry_run: false\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := app.ReloadPolicy(); err == nil {
		t.Error("a policy with an unknown key was taken")
	}
	if app.engine.policy.Load().DryRun {
		t.Error("the running live policy was replaced")
	}
	if err := os.WriteFile(opts.PolicyFile, []byte("actions: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := app.ReloadPolicy(); err != nil {
		t.Fatal(err)
	}
	if !app.engine.policy.Load().DryRun {
		t.Error("the reloaded policy (dry-run by default) is not in force")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	labWaitFor(t, what, func() (bool, string) { return cond(), "" })
}
