package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary runs the remediator itself when this variable is set.
func TestMain(m *testing.M) {
	if os.Getenv("XSHA_REMEDIATOR_RUN") == "1" {
		os.Args = append([]string{"xsha-remediator"}, strings.Fields(os.Getenv("XSHA_REMEDIATOR_ARGS"))...)
		main()
	}
	os.Exit(m.Run())
}

type output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *output) add(s string) { o.mu.Lock(); o.b.WriteString(s + "\n"); o.mu.Unlock() }
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func do(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type proc struct {
	cmd    *exec.Cmd
	out    *output // standard error: the logs
	stdout *bytes.Buffer
	done   chan struct{}
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "XSHA_REMEDIATOR_RUN=1", "XSHA_REMEDIATOR_ARGS="+strings.Join(args, " "))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := &bytes.Buffer{}
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: &output{}, stdout: stdout, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.out.add(sc.Text())
		}
	}()
	return p
}

// wait returns the exit code.
func (p *proc) wait() int {
	<-p.done
	err := p.cmd.Wait()
	ee := &exec.ExitError{}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// files writes a config for a pool nobody answers for, a policy and a token.
func files(t *testing.T) (dir, cfg, policy, token string) {
	dir = t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pw := filepath.Join(dir, "pw")
	cfg = filepath.Join(dir, "xsha.yml")
	policy = filepath.Join(dir, "policy.yml")
	token = filepath.Join(dir, "token")
	for name, content := range map[string]string{
		pw:     "hunter2-secret\n",
		cfg:    fmt.Sprintf("pools:\n  - {name: cluster-a, hosts: [127.0.0.1], port: %d, scheme: http, password_file: %s, call_timeout: 1s}\n", port, pw),
		policy: "actions:\n  enable_pool_ha: {alerts: [XenServerPoolHADisabled], pools: [cluster-a]}\n",
		token:  "tok-tok-secret\n",
	} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, cfg, policy, token
}

func TestProgram(t *testing.T) {
	dir, cfg, policy, token := files(t)
	p := start(t, "--config.file="+cfg, "--policy.file="+policy, "--webhook.bearer-token-file="+token,
		"--journal.path="+filepath.Join(dir, "journal.db"), "--web.listen-address=127.0.0.1:0")
	addrRe := regexp.MustCompile(`msg="Listening on" address=(\S+)`)
	var base string
	waitFor(t, "the listen address", func() bool {
		m := addrRe.FindStringSubmatch(p.out.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	})
	waitFor(t, "ready", func() bool { code, _ := do(t, "GET", base+"/-/ready", "", ""); return code == 200 })
	if code, _ := do(t, "GET", base+"/-/healthy", "", ""); code != 200 {
		t.Errorf("/-/healthy: %d", code)
	}
	_, metrics := do(t, "GET", base+"/metrics", "", "")
	for _, s := range []string{"xsha_remediator_dry_run 1", `xsha_remediator_hold{pool="cluster-a"} 0`,
		"xsha_remediator_build_info", "xsha_config_last_reload_successful 1"} {
		if !strings.Contains(metrics, s) {
			t.Errorf("/metrics lacks %q", s)
		}
	}
	msg := `{"version":"4","status":"firing","receiver":"r","groupKey":"g","alerts":[{"status":"firing",
	  "labels":{"alertname":"XenServerPoolHADisabled","pool":"cluster-a"},"fingerprint":"f1","startsAt":"2026-01-01T00:00:00Z"}]}`
	if code, _ := do(t, "POST", base+"/webhook", "", msg); code != 401 {
		t.Errorf("webhook without token: %d", code)
	}
	code, body := do(t, "POST", base+"/webhook", "Bearer tok-tok-secret", msg)
	if code != 200 {
		t.Fatalf("webhook: %d %s", code, body)
	}
	// Dry-run on a pool whose XAPI does not answer: the action fails to
	// read live state and writes nothing.
	waitFor(t, "the action to end", func() bool {
		_, b := do(t, "GET", base+"/api/v1/actions", "", "")
		return strings.Contains(b, `"state": "failed"`) && strings.Contains(b, "reading live state")
	})

	// SIGHUP with a broken policy keeps the running one; a good one is taken.
	if err := os.WriteFile(policy, []byte("dry_run: false\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the failed reload", func() bool { return strings.Contains(p.out.String(), "policy reload failed") })
	if err := os.WriteFile(policy, []byte("dry_run: false\nactions:\n  enable_pool_ha: {alerts: [X], pools: [cluster-a]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "dry-run off", func() bool {
		_, m := do(t, "GET", base+"/metrics", "", "")
		return strings.Contains(m, "xsha_remediator_dry_run 0")
	})

	for _, path := range []string{"/", "/metrics", "/api/v1/actions", "/api/v1/journal", "/api/v1/holds"} {
		if _, b := do(t, "GET", base+path, "", ""); strings.Contains(b, "hunter2") || strings.Contains(b, "tok-tok") {
			t.Errorf("%s shows a secret", path)
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d after SIGTERM:\n%s", code, p.out.String())
	}
	if s := p.out.String(); strings.Contains(s, "hunter2") || strings.Contains(s, "tok-tok") {
		t.Error("the logs show a secret")
	}
}

func TestProgramRefusesToStart(t *testing.T) {
	dir, cfg, policy, token := files(t)
	bad := filepath.Join(dir, "bad-policy.yml")
	if err := os.WriteFile(bad, []byte("actions:\n  enable_pool_ha: {alerts: [A], pools: [cluster-z]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	journal := "--journal.path=" + filepath.Join(dir, "j.db")
	for _, tc := range []struct {
		name string
		args []string
		log  string
	}{
		{"no authentication", []string{"--config.file=" + cfg, "--policy.file=" + policy, journal}, "--webhook.bearer-token-file"},
		{"policy names an unknown pool", []string{"--config.file=" + cfg, "--policy.file=" + bad, "--webhook.bearer-token-file=" + token, journal}, "cluster-z"},
		{"missing token file", []string{"--config.file=" + cfg, "--policy.file=" + policy, "--webhook.bearer-token-file=" + filepath.Join(dir, "nope"), journal}, "bearer token file"},
		{"no-auth with a token file", []string{"--config.file=" + cfg, "--policy.file=" + policy, "--webhook.bearer-token-file=" + token, "--webhook.no-auth", journal}, "contradicts"},
		{"malformed policy", []string{"--config.file=" + cfg, "--policy.file=" + token, "--webhook.bearer-token-file=" + token, journal}, "policy file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, append(tc.args, "--web.listen-address=127.0.0.1:0")...)
			if code := p.wait(); code != 1 {
				t.Errorf("exit code %d", code)
			}
			if !strings.Contains(p.out.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, p.out.String())
			}
		})
	}
}
