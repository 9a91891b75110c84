package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"xsha/config"
	"xsha/remediator"
	"xsha/sim/lab"
	"xsha/sim/scenario"
	"xsha/xapi"
)

const testToken = "s3cret-token"

// policy enables every workflow on cluster-a, live, polling at lab speed.
const policy = `
dry_run: false
actions:
  restart_slave:  {pools: [cluster-a]}
  restart_master: {pools: [cluster-a]}
  shutdown:       {pools: [cluster-a]}
  bring_back:     {pools: [cluster-a]}
ha_timeout: 180s
poll_interval: 20ms
step_timeout: 60s
`

// maintenanceScenario is the seed's test bed at 1/100 time, cluster-a
// only, pool HA on, guests spread over the hosts.
func maintenanceScenario(version string) *scenario.Scenario {
	sc := scenario.Default()
	sc.TimeScale = 0.01
	sc.Durations.HostReenable = scenario.Duration(200 * time.Second)
	sc.Pools = sc.Pools[:1]
	p := &sc.Pools[0]
	p.ProductVersion = version
	if version == scenario.Version71 {
		p.Hotfixes = []string{"XS71E001"}
	}
	p.HAEnabled = true
	place := map[string]string{"i-2-101-VM": "xs-a2", "i-2-102-VM": "xs-a2", "i-2-103-VM": "xs-a3", "i-2-104-VM": "xs-a1", "i-2-105-VM": "xs-a4"}
	for i := range p.VMs {
		if h, ok := place[p.VMs[i].Name]; ok {
			p.VMs[i].Host = h
		}
	}
	return sc
}

// env is a lab with CloudStack and a remediator serving its API.
type env struct {
	l         *lab.Lab
	url       string
	tokenFile string
}

func startEnv(t *testing.T, version string) *env {
	t.Helper()
	l, err := lab.Start(context.Background(), lab.Options{Scenario: maintenanceScenario(version), CloudStackListen: "127.0.0.1:0"})
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
	auth, err := remediator.ReadBearerTokenFile(tf)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app, err := remediator.New(remediator.Options{ConfigFile: l.ConfigFile(), PolicyFile: pf,
		JournalPath: filepath.Join(dir, "journal.db"), Auth: auth, Listeners: []net.Listener{ln}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = app.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = app.Close() })
	return &env{l: l, url: "http://" + ln.Addr().String(), tokenFile: tf}
}

// ctl runs xshactl with the environment's URL and token file.
func (e *env) ctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"--url", e.url, "--token-file", e.tokenFile, "--poll", "20ms"}, args...)
	code := run(full, func(string) string { return "" }, &out, &errb)
	return code, out.String(), errb.String()
}

// writes returns the lab's count of maintenance writes.
func (e *env) writes() map[string]uint64 {
	out := map[string]uint64{}
	for m, n := range e.l.Stats().Calls {
		switch m {
		case "pool.enable_ha", "pool.disable_ha", "host.disable", "host.enable", "host.evacuate", "host.reboot",
			"host.shutdown", "pool.designate_new_master":
			out[m] = n
		}
	}
	return out
}

// inOrder checks that the lines appear in out in that order.
func inOrder(t *testing.T, out string, lines ...string) {
	t.Helper()
	rest := out
	for _, l := range lines {
		i := strings.Index(rest, l)
		if i < 0 {
			t.Errorf("%q missing or out of order in:\n%s", l, out)
			return
		}
		rest = rest[i+len(l):]
	}
}

// TestRestartSlaveThroughCLI runs the seed's slave restart with one xshactl
// command on 6.2 and 7.1, after a dry run that prints the plan from live
// state and changes nothing.
func TestRestartSlaveThroughCLI(t *testing.T) {
	for _, v := range []string{scenario.Version62, scenario.Version71} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			e := startEnv(t, v)
			code, out, errs := e.ctl(t, "start", "restart_slave", "--pool", "cluster-a", "--host", "xs-a2", "--dry-run")
			if code != 0 {
				t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
			}
			inOrder(t, out, "(dry-run)", "nothing was changed", "prepareHostForMaintenance(xs-a2", "pool.disable_ha",
				"host.disable(xs-a2)", "host.evacuate(xs-a2): moves i-2-101-VM, i-2-102-VM", "host.reboot(xs-a2)",
				"pool.enable_ha(heartbeat SR MGMT-HA", "host.enable(xs-a2)", "cancelHostMaintenance(xs-a2)")
			if w := e.writes(); len(w) != 0 {
				t.Errorf("the dry run wrote %v", w)
			}

			code, out, errs = e.ctl(t, "start", "restart_slave", "--pool", "cluster-a", "--host", "xs-a2")
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			t.Logf("xshactl start restart_slave:\n%s", out)
			inOrder(t, out, "workflow 2: restart_slave of xs-a2 on pool cluster-a",
				"calling cloudstack.prepareHostForMaintenance", "calling pool.disable_ha", "calling host.disable",
				"calling host.evacuate", "calling host.reboot", "step wait_slave done", "calling pool.enable_ha",
				"step enable_host done", "calling cloudstack.cancelHostMaintenance", "step verify done", "succeeded in")
			if !regexp.MustCompile(`(?m)^   00:0\d  step check started$`).MatchString(out) {
				t.Errorf("no elapsed time in front of the steps:\n%s", out)
			}
			logDuration(t, e)
			w := e.writes()
			for _, m := range []string{"pool.disable_ha", "host.disable", "host.evacuate", "host.reboot", "pool.enable_ha"} {
				if w[m] != 1 {
					t.Errorf("%s made %d times, want once: %v", m, w[m], w)
				}
			}
			code, out, _ = e.ctl(t, "list")
			if code != 0 || !strings.Contains(out, "restart_slave") || !strings.Contains(out, "success") || !strings.Contains(out, "dry_run") {
				t.Errorf("list: exit %d\n%s", code, out)
			}
		})
	}
}

// TestBadRequestsChangeNothing: usage errors exit 2, refused requests 1
// with the remediator's reason, and nothing runs.
func TestBadRequestsChangeNothing(t *testing.T) {
	e := startEnv(t, scenario.Version62)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no host", []string{"start", "restart_slave", "--pool", "cluster-a"}, 2, "usage"},
		{"no command", nil, 2, "usage"},
		{"unknown workflow", []string{"start", "reboot_all", "--pool", "cluster-a", "--host", "xs-a2"}, 1, "400 Bad Request: bad workflow request: unknown workflow"},
		{"unknown pool", []string{"start", "restart_slave", "--pool", "nope", "--host", "xs-a2"}, 1, "pool \"nope\" is not in the configuration"},
		{"new master on a slave restart", []string{"start", "restart_slave", "--pool", "cluster-a", "--host", "xs-a2", "--new-master", "xs-a3"}, 1, "new_master applies to restart_master and shutdown only"},
		{"unknown id", []string{"follow", "99"}, 1, "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := e.ctl(t, tc.args...)
			if code != tc.code || !strings.Contains(out+errs, tc.want) {
				t.Errorf("exit %d, want %d with %q:\n%s%s", code, tc.code, tc.want, out, errs)
			}
		})
	}
	var out, errb bytes.Buffer
	code := run([]string{"--url", e.url, "start", "restart_slave", "--pool", "cluster-a", "--host", "xs-a2"},
		func(string) string { return "" }, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "401") {
		t.Errorf("without a token: exit %d %s", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	code = run([]string{"--url", e.url, "list"}, func(k string) string {
		if k == "XSHACTL_TOKEN" {
			return testToken
		}
		return ""
	}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "no workflows") {
		t.Errorf("list with the token from the environment: exit %d %s%s", code, out.String(), errb.String())
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("bad requests wrote %v", w)
	}
}

// checkEnd asserts how every procedure ends: pool HA on, every host live
// and enabled (but the ones in off), every VM of the pool running on a
// host, every CloudStack VM running, and the host Enabled and Up in
// CloudStack unless it stays in maintenance.
func (e *env) checkEnd(t *testing.T, host string, off bool) {
	t.Helper()
	st := e.l.State()
	p := st.Pools[0]
	if !p.HAEnabled {
		t.Errorf("pool HA is off at the end")
	}
	for _, h := range p.Hosts {
		if h.Name == host && off {
			if h.Live || h.Power != "off" {
				t.Errorf("host %s is not off: %+v", h.Name, h)
			}
			continue
		}
		if !h.Live || !h.Enabled {
			t.Errorf("host %s at the end: live %v enabled %v", h.Name, h.Live, h.Enabled)
		}
	}
	cfg, err := config.Load(e.l.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	c := xapi.NewClient(cfg.Pools[0], xapi.ClientOptions{})
	defer c.Close(context.Background())
	s, err := c.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var running []string
	for _, h := range s.Hosts {
		if h.Name == host && off {
			continue
		}
		vms, err := c.ResidentVMs(context.Background(), h.UUID)
		if err != nil {
			t.Fatal(err)
		}
		running = append(running, vms...)
	}
	if len(running) != 9 {
		t.Errorf("running VMs at the end: %v, want the 5 guests, 2 routers and 2 system VMs", running)
	}
	for _, h := range st.CloudStack.Hosts {
		want := "Enabled/Up"
		if off {
			want = "Maintenance/"
		}
		if got := h.ResourceState + "/" + h.State; h.Name == host && !strings.HasPrefix(got, want) {
			t.Errorf("CloudStack shows %s %s at the end, want %s", host, got, want)
		}
	}
	for _, v := range st.CloudStack.VMs {
		if v.State != "Running" {
			t.Errorf("CloudStack VM %s is %s", v.Name, v.State)
		}
	}
}

// TestRestartMasterThroughCLI runs the seed's master restart with one
// command on 6.2 and 7.1: the master role moves to a slave after pool HA
// is off and before the old master is evacuated and rebooted.
func TestRestartMasterThroughCLI(t *testing.T) {
	for _, v := range []string{scenario.Version62, scenario.Version71} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			e := startEnv(t, v)
			code, out, errs := e.ctl(t, "start", "restart_master", "--pool", "cluster-a", "--host", "xs-a1")
			t.Logf("xshactl start restart_master:\n%s", out)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			inOrder(t, out, "the master role goes to xs-a2", "calling cloudstack.prepareHostForMaintenance", "calling pool.disable_ha",
				"calling pool.designate_new_master", "step designate_new_master done", "calling host.disable",
				"calling host.evacuate", "calling host.reboot", "step wait_slave done", "calling pool.enable_ha",
				"calling cloudstack.cancelHostMaintenance", "succeeded in")
			logDuration(t, e)
			if m := e.l.State().Pools[0].Master; m != "xs-a2" {
				t.Errorf("master at the end: %s, want xs-a2", m)
			}
			e.checkEnd(t, "xs-a1", false)
		})
	}
}

// TestShutdownAndBringBackThroughCLI runs the seed's extended shutdown of
// a slave (pool HA stays on) and its bring-back, where the operator powers
// the host on while the workflow waits.
func TestShutdownAndBringBackThroughCLI(t *testing.T) {
	for _, v := range []string{scenario.Version62, scenario.Version71} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			e := startEnv(t, v)
			code, out, errs := e.ctl(t, "start", "shutdown", "--pool", "cluster-a", "--host", "xs-a3")
			t.Logf("xshactl start shutdown:\n%s", out)
			if code != 0 {
				t.Fatalf("shutdown: exit %d\n%s%s", code, out, errs)
			}
			inOrder(t, out, "calling cloudstack.prepareHostForMaintenance", "pool HA stays on", "calling host.disable",
				"calling host.evacuate", "calling host.shutdown", "step wait_off done", "succeeded in")
			logDuration(t, e)
			if w := e.writes(); w["pool.disable_ha"] != 0 {
				t.Errorf("a slave's shutdown switched pool HA off: %v", w)
			}
			e.checkEnd(t, "xs-a3", true)

			code, out, errs = e.ctl(t, "start", "bring_back", "--pool", "cluster-a", "--host", "xs-a3", "--detach")
			if code != 0 {
				t.Fatalf("bring_back: exit %d\n%s%s", code, out, errs)
			}
			id := strings.TrimSpace(out)
			waitJournal(t, e, id, "power on host xs-a3 now")
			if err := e.l.PowerOn("xs-a3"); err != nil {
				t.Fatal(err)
			}
			code, out, errs = e.ctl(t, "follow", id)
			t.Logf("xshactl follow %s:\n%s", id, out)
			if code != 0 {
				t.Fatalf("bring_back: exit %d\n%s%s", code, out, errs)
			}
			inOrder(t, out, "calling pool.disable_ha", "power on host xs-a3 now", "step wait_power_on done",
				"calling pool.enable_ha", "calling cloudstack.cancelHostMaintenance", "succeeded in")
			logDuration(t, e)
			e.checkEnd(t, "xs-a3", false)
		})
	}
}

// waitJournal waits until the workflow's journal has an entry containing
// text, reading the API as any client would.
func waitJournal(t *testing.T, e *env, id, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(e.url + "/api/v1/workflows/" + id)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), text) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow %s never journaled %q", id, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logDuration logs how long the last workflow took, in wall time and
// scaled back to XenServer time (the lab runs at 1/100), for the README.
func logDuration(t *testing.T, e *env) {
	t.Helper()
	resp, err := http.Get(e.url + "/api/v1/workflows?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Workflows []struct {
			Name     string    `json:"action"`
			Started  time.Time `json:"started"`
			Finished time.Time `json:"finished"`
		} `json:"workflows"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Workflows) == 0 {
		t.Fatalf("workflows: %v %+v", err, out)
	}
	w := out.Workflows[0]
	d := w.Finished.Sub(w.Started)
	t.Logf("measured: %s took %s wall, %s in XenServer time", w.Name, d.Round(10*time.Millisecond), (d * 100).Round(time.Second))
}

// TestShutdownMasterThroughCLI: an extended shutdown of the master hands
// the master role to a slave first (pool HA off only for the handover),
// then shuts the old master down with pool HA back on.
func TestShutdownMasterThroughCLI(t *testing.T) {
	e := startEnv(t, scenario.Version71)
	code, out, errs := e.ctl(t, "start", "shutdown", "--pool", "cluster-a", "--host", "xs-a1", "--new-master", "xs-a3")
	t.Logf("xshactl start shutdown of the master:\n%s", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	inOrder(t, out, "calling cloudstack.prepareHostForMaintenance", "calling pool.disable_ha", "calling pool.designate_new_master",
		"calling pool.enable_ha", "calling host.disable", "calling host.evacuate", "calling host.shutdown", "step wait_off done", "succeeded in")
	if m := e.l.State().Pools[0].Master; m != "xs-a3" {
		t.Errorf("master at the end: %s, want xs-a3", m)
	}
	e.checkEnd(t, "xs-a1", true)
}
