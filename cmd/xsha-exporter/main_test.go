package main

import (
	"bufio"
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

	"xsha/sim/lab"
)

// The test binary runs the exporter itself when this variable is set.
func TestMain(m *testing.M) {
	if os.Getenv("XSHA_EXPORTER_RUN") == "1" {
		os.Args = append([]string{"xsha-exporter"}, strings.Fields(os.Getenv("XSHA_EXPORTER_ARGS"))...)
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

func TestSIGHUPReloadAndSecrets(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens: the pools are down, which is enough here
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("hunter2-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "xsha.yml")
	write := func(pools ...string) {
		var b strings.Builder
		b.WriteString("pools:\n")
		for _, p := range pools {
			fmt.Fprintf(&b, "  - {name: %s, hosts: [127.0.0.1], port: %d, scheme: http, password_file: %s, call_timeout: 1s}\n", p, port, pw)
		}
		if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cluster-a")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "XSHA_EXPORTER_RUN=1",
		"XSHA_EXPORTER_ARGS=--config.file="+cfg+" --web.listen-address=127.0.0.1:0 --log.level=debug")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out output
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			out.add(sc.Text())
		}
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		_ = cmd.Wait()
		if strings.Contains(out.String(), "hunter2") {
			t.Error("the logs show the password")
		}
	}()

	addrRe := regexp.MustCompile(`msg="Listening on" address=(\S+)`)
	var base string
	waitFor(t, "the listen address", func() bool {
		m := addrRe.FindStringSubmatch(out.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	})
	metricsHas := func(s string) bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, s)
	}
	waitFor(t, "cluster-a in /metrics", func() bool { return metricsHas(`xenserver_pool_up{pool="cluster-a"} 0`) })
	if !metricsHas("xsha_exporter_build_info") {
		t.Error("no build info")
	}

	// SIGHUP with a new pool: its watcher starts.
	write("cluster-a", "cluster-b")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "cluster-b after SIGHUP", func() bool { return metricsHas(`xenserver_pool_up{pool="cluster-b"} 0`) })

	// SIGHUP with a broken file: the running config stays, the log says why.
	if err := os.WriteFile(cfg, []byte("pools: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed reload", func() bool { return metricsHas("xsha_config_last_reload_successful 0") })
	if !metricsHas(`xenserver_pool_up{pool="cluster-b"} 0`) {
		t.Error("a bad file dropped the running pools")
	}
	if !strings.Contains(out.String(), "failed to reload config") {
		t.Error("the failed reload is not logged")
	}
	for _, p := range []string{"/", "/metrics", "/-/healthy", "/-/ready"} {
		if _, body := get(t, base+p); strings.Contains(body, "hunter2") {
			t.Errorf("%s shows the password", p)
		}
	}
}

// git runs git in the repository and returns its trimmed output.
func git(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", "../.."}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// `make build` stamps the version from the VERSION file, the git revision
// and branch into the binaries, as the Prometheus projects do: every
// program's --version and xsha_exporter_build_info show them.
func TestBuildStampsVersion(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	b, err := os.ReadFile("../../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	want := struct{ version, revision, branch string }{
		strings.TrimSpace(string(b)), git(t, "rev-parse", "HEAD"), git(t, "rev-parse", "--abbrev-ref", "HEAD"),
	}
	if want.version == "" || want.revision == "" || want.branch == "" {
		t.Fatalf("nothing to compare with: %+v", want)
	}
	bin := t.TempDir()
	build := exec.Command("make", "--no-print-directory", "-C", "../..", "build", "BIN="+bin)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	for _, prog := range []string{"xsha-exporter", "xsha-remediator", "xsha-sim"} {
		out, err := exec.Command(filepath.Join(bin, prog), "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --version: %v\n%s", prog, err, out)
		}
		wantLine := fmt.Sprintf("%s, version %s (branch: %s, revision: %s)", prog, want.version, want.branch, want.revision)
		if first, _, _ := strings.Cut(string(out), "\n"); first != wantLine {
			t.Errorf("%s --version prints %q, want %q", prog, first, wantLine)
		}
	}
	exe := filepath.Join(bin, "xsha-exporter")

	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	cfg := filepath.Join(dir, "xsha.yml")
	if err := os.WriteFile(pw, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("pools:\n  - {name: a, hosts: [127.0.0.1], port: 1, scheme: http, password_file: "+pw+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "--config.file="+cfg, "--web.listen-address=127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs output
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.add(sc.Text())
		}
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		_ = cmd.Wait()
	}()
	addrRe := regexp.MustCompile(`msg="Listening on" address=(\S+)`)
	var base string
	waitFor(t, "the listen address", func() bool {
		m := addrRe.FindStringSubmatch(logs.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	})
	_, body := get(t, base+"/metrics")
	re := regexp.MustCompile(`(?m)^xsha_exporter_build_info\{(.*)\} 1$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no xsha_exporter_build_info in /metrics")
	}
	for _, l := range []string{
		`branch="` + want.branch + `"`, `revision="` + want.revision + `"`, `version="` + want.version + `"`,
	} {
		if !strings.Contains(m[1], l) {
			t.Errorf("xsha_exporter_build_info{%s}: no %s", m[1], l)
		}
	}
}

// runCheck runs `xsha-exporter --config.check` on path in a child process
// and returns its exit code, stdout and stderr.
func runCheck(t *testing.T, path string, env ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "XSHA_EXPORTER_RUN=1",
		"XSHA_EXPORTER_ARGS=--config.check --config.file="+path), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	default:
		t.Fatal(err)
		return 0, "", ""
	}
}

// --config.check accepts every good file with one line on stdout, and
// rejects every bad one saying what is wrong.
func TestConfigCheck(t *testing.T) {
	good, err := filepath.Glob("testdata/good/*.yml")
	if err != nil || len(good) == 0 {
		t.Fatalf("no good configurations: %v", err)
	}
	for _, path := range good {
		t.Run(path, func(t *testing.T) {
			code, stdout, stderr := runCheck(t, path, "XSHA_CHECK_TEST_PASSWORD=pw")
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if !strings.HasPrefix(stdout, path+": ok: ") || strings.Count(stdout, "\n") != 1 {
				t.Errorf("stdout %q, want one line %q...", stdout, path+": ok: ")
			}
		})
	}

	// What each bad file must be rejected for.
	bad := map[string]string{
		"ca-not-pem.yml":            "holds no PEM certificate",
		"cloudstack-no-secret.yml":  "cloudstack: secret key: a file or an environment variable is required",
		"duplicate-pool.yml":        `pool name "cluster-a" used twice`,
		"empty-password-file.yml":   "empty-password is empty",
		"host-with-port.yml":        "carries a port",
		"missing-password-file.yml": "no-such-file: no such file or directory",
		"no-pools.yml":              "no pools",
		"two-tls-modes.yml":         "set at most one of",
		"unknown-key.yml":           "field hots not found",
		"yaml-syntax.yml":           "decoding config",
	}
	files, err := filepath.Glob("testdata/bad/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(bad) {
		t.Errorf("%d bad files, %d expectations: give each file its expected error", len(files), len(bad))
	}
	for _, path := range files {
		t.Run(path, func(t *testing.T) {
			want, ok := bad[filepath.Base(path)]
			if !ok {
				t.Fatal("no expected error for this file")
			}
			code, stdout, stderr := runCheck(t, path)
			if code != 1 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			if !strings.HasPrefix(stderr, path+": FAILED: ") || !strings.Contains(stderr, want) {
				t.Errorf("stderr %q, want %q naming %q", stderr, path+": FAILED: ...", want)
			}
			if strings.Contains(stderr, "xenroot") {
				t.Error("the error shows the password")
			}
		})
	}
}

// The configuration example in the README is valid once its files exist.
func TestConfigCheckREADMEExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## Configuration")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README's Configuration section has no yaml block")
	}
	dir := t.TempDir()
	ca, err := os.ReadFile("testdata/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"cluster-a.password": []byte("pw\n"), "cloudstack.key": []byte("k\n"), "cloudstack.secret": []byte("s\n"), "ca.pem": ca,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "xsha.yml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(example, "/etc/xsha/", dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCheck(t, path); code != 0 || !strings.Contains(stdout, "ok: 1 pool, with cloudstack") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// The configuration the lab writes, which the compose stack (deploy/) and
// the e2e test run the exporter with, is valid.
func TestConfigCheckLabConfig(t *testing.T) {
	ctx := t.Context()
	l, err := lab.Start(ctx, lab.Options{StateDir: t.TempDir(), CloudStackListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if code, stdout, stderr := runCheck(t, l.ConfigFile()); code != 0 || !strings.Contains(stdout, "ok: 2 pools, with cloudstack") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// A shard index outside the shard count is refused at start, saying why.
func TestShardFlagsRefused(t *testing.T) {
	for _, args := range []string{"--pools.shard-index=3 --pools.shard-count=3", "--pools.shard-index=1"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "XSHA_EXPORTER_RUN=1",
			"XSHA_EXPORTER_ARGS=--config.file=testdata/good/minimal.yml --web.listen-address=127.0.0.1:0 "+args)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "shard index") {
			t.Errorf("%s: err %v, stderr %q; want exit 2 naming the shard index", args, err, stderr.String())
		}
	}
}
