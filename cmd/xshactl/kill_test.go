package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"xsha/sim/lab"
	"xsha/sim/scenario"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// remediatorBinary builds xsha-remediator once for the tests that run it as
// a real process.
func remediatorBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "xshactl-test")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "xsha-remediator")
		out, err := exec.Command("go", "build", "-o", binary, "xsha/cmd/xsha-remediator").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// procEnv is a lab and a remediator running as its own process, which a
// test can kill with SIGKILL and start again on the same journal.
type procEnv struct {
	env
	args []string
	cmd  *exec.Cmd
	logs *strings.Builder
}

func startProcEnv(t *testing.T, version string) *procEnv {
	t.Helper()
	l, err := lab.Start(t.Context(), lab.Options{Scenario: maintenanceScenario(version), CloudStackListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	dir := t.TempDir()
	pf, tf := filepath.Join(dir, "policy.yml"), filepath.Join(dir, "token")
	if err := os.WriteFile(pf, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tf, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &procEnv{env: env{l: l, url: "http://" + addr, tokenFile: tf}, logs: &strings.Builder{},
		args: []string{"--config.file=" + l.ConfigFile(), "--policy.file=" + pf, "--webhook.bearer-token-file=" + tf,
			"--journal.path=" + filepath.Join(dir, "journal.db"), "--web.listen-address=" + addr}}
	p.start(t)
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("remediator logs:\n%s", p.logs.String())
		}
	})
	return p
}

// start runs the remediator and waits until it is ready.
func (p *procEnv) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(remediatorBinary(t), p.args...)
	p.cmd.Stderr = &lockedWriter{b: p.logs}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the remediator never got ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL, as a crash or the OOM killer would.
func (p *procEnv) kill(t *testing.T) {
	t.Helper()
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}

var logMu sync.Mutex

type lockedWriter struct{ b *strings.Builder }

func (w *lockedWriter) Write(b []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return w.b.Write(b)
}

// workflowCalls returns the writes the workflow journaled, in order.
func (p *procEnv) workflowCalls(t *testing.T, id string) []string {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/workflows/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Workflow struct {
			Steps []struct {
				Calls []string `json:"calls"`
			} `json:"steps"`
			Resumed int `json:"resumed"`
		} `json:"workflow"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Workflow.Resumed == 0 {
		t.Error("the workflow does not say it was resumed")
	}
	var calls []string
	for _, s := range out.Workflow.Steps {
		calls = append(calls, s.Calls...)
	}
	return calls
}

// TestKilledWorkflowsResume kills the remediator (SIGKILL) in the middle
// of each workflow and starts it again on the same journal: the workflow
// resumes at its step and finishes, and no write that had completed is
// made again.
func TestKilledWorkflowsResume(t *testing.T) {
	for _, tc := range []struct {
		version, workflow, host, killAt string
		powerOn                         bool
		want                            []string
	}{
		{scenario.Version62, "restart_slave", "xs-a2", "waiting for host xs-a2 to be live", false,
			[]string{"cloudstack.prepareHostForMaintenance", "pool.disable_ha", "host.disable", "host.evacuate", "host.reboot", "pool.enable_ha", "cloudstack.cancelHostMaintenance"}},
		{scenario.Version71, "restart_master", "xs-a1", "pool.designate_new_master succeeded", false,
			[]string{"cloudstack.prepareHostForMaintenance", "pool.disable_ha", "pool.designate_new_master", "host.disable", "host.evacuate", "host.reboot", "pool.enable_ha", "cloudstack.cancelHostMaintenance"}},
		{scenario.Version62, "shutdown", "xs-a3", "evacuate_host: no VM left", false,
			[]string{"cloudstack.prepareHostForMaintenance", "host.disable", "host.evacuate", "host.shutdown"}},
		{scenario.Version71, "bring_back", "xs-a3", "power on host xs-a3 now", true,
			[]string{"pool.disable_ha", "pool.enable_ha", "cloudstack.cancelHostMaintenance"}},
	} {
		t.Run(tc.workflow, func(t *testing.T) {
			t.Parallel()
			p := startProcEnv(t, tc.version)
			if tc.workflow == "bring_back" {
				if code, out, errs := p.ctl(t, "start", "shutdown", "--pool", "cluster-a", "--host", tc.host); code != 0 {
					t.Fatalf("shutdown: %d\n%s%s", code, out, errs)
				}
			}
			before := p.writes()
			code, out, errs := p.ctl(t, "start", tc.workflow, "--pool", "cluster-a", "--host", tc.host, "--detach")
			if code != 0 {
				t.Fatalf("start: %d\n%s%s", code, out, errs)
			}
			id := strings.TrimSpace(out)
			waitJournal(t, &p.env, id, tc.killAt)
			p.kill(t)
			if tc.powerOn {
				if err := p.l.PowerOn(tc.host); err != nil {
					t.Fatal(err)
				}
			}
			p.start(t)
			code, out, errs = p.ctl(t, "follow", id)
			if code != 0 {
				t.Fatalf("after the restart: exit %d\n%s%s", code, out, errs)
			}
			if !strings.Contains(out, "resumed") {
				t.Errorf("the output does not show the resume:\n%s", out)
			}
			if got := p.workflowCalls(t, id); !slices.Equal(got, tc.want) {
				t.Errorf("journaled writes %v, want %v", got, tc.want)
			}
			after := p.writes()
			for _, m := range tc.want {
				if strings.HasPrefix(m, "cloudstack.") {
					continue
				}
				if n := after[m] - before[m]; n != 1 {
					t.Errorf("%s made %d times, want once (before %v, after %v)", m, n, before, after)
				}
			}
			p.checkEnd(t, tc.host, tc.workflow == "shutdown")
		})
	}
}
