package remediator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	csgo "github.com/apache/cloudstack-go/v2/cloudstack"
	"github.com/prometheus/common/model"

	"xsha/cloudstack"
	"xsha/config"
	"xsha/remediator/journal"
	"xsha/sim/lab"
	"xsha/sim/scenario"
	"xsha/xapi"
)

// labPolicy is livePolicy with polling suited to the lab at 1/100 time.
var labPolicy = strings.Replace(livePolicy, "poll_interval: 1ms", "poll_interval: 20ms", 1)

// labHarness runs the remediator against the lab through the real XAPI
// client, as deployed.
type labHarness struct {
	*harness
	lab *lab.Lab
}

// labScenario is the seed's test bed at 1/100 of real time. A returning
// old master stays in emergency mode, as the seed saw it; the tests of the
// recovery need that, and TestLabReturningOldMaster runs both readings.
func labScenario() *scenario.Scenario {
	sc := scenario.Default()
	sc.TimeScale = 0.01
	for i := range sc.Pools {
		sc.Pools[i].ReturningHost = scenario.ReturningHostStuck
	}
	return sc
}

func startLab(t *testing.T, sc *scenario.Scenario) *lab.Lab {
	t.Helper()
	l, err := lab.Start(context.Background(), lab.Options{Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing the lab: %v", err)
		}
	})
	return l
}

// newLabHarness loads the lab's xsha.yml, lets edit change it, and builds
// the remediator with one xapi.Client per pool.
func newLabHarness(t *testing.T, l *lab.Lab, policy string, edit func(*config.Config)) *labHarness {
	t.Helper()
	cfg, err := config.Load(l.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Pools {
		cfg.Pools[i].CallTimeout = model.Duration(10 * time.Second)
	}
	if edit != nil {
		edit(cfg)
	}
	clients := map[string]PoolClient{}
	for _, p := range cfg.Pools {
		c := xapi.NewClient(p, xapi.ClientOptions{})
		clients[p.Name] = c
		t.Cleanup(func() { _ = c.Close(context.Background()) })
	}
	return &labHarness{harness: newHarnessWith(t, cfg, clients, policy, nil), lab: l}
}

func (h *labHarness) pool(name string) (p struct {
	HAEnabled bool
	Master    string
	Timeout   int
	Hosts     map[string]string
}) {
	for _, ps := range h.lab.State().Pools {
		if ps.Name != name {
			continue
		}
		p.HAEnabled, p.Master, p.Timeout, p.Hosts = ps.HAEnabled, ps.Master, ps.HATimeoutSeconds, map[string]string{}
		for _, hs := range ps.Hosts {
			p.Hosts[hs.Name] = fmt.Sprintf("role=%s live=%v enabled=%v err=%s", hs.Role, hs.Live, hs.Enabled, hs.EmergencyError)
		}
	}
	return p
}

// writes returns the HA writes the lab has served.
func (h *labHarness) writes() map[string]uint64 {
	out := map[string]uint64{}
	for m, n := range h.lab.Stats().Calls {
		switch m {
		case "pool.enable_ha", "pool.disable_ha", "host.emergency_ha_disable", "pool.emergency_transition_to_master",
			"VM.set_ha_restart_priority", "VM.set_ha_always_run":
			out[m] = n
		}
	}
	return out
}

func labWaitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLabHADisabledOutOfBandIsSwitchedBackOn(t *testing.T) {
	sc := labScenario()
	sc.Pools[0].HAEnabled = true
	l := startLab(t, sc)
	if err := l.DisablePoolHA("cluster-a"); err != nil {
		t.Fatal(err)
	}
	h := newLabHarness(t, l, labPolicy, nil)
	if h.pool("cluster-a").HAEnabled {
		t.Fatal("HA still on")
	}
	h.start()
	id := h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp-ha")
	rec := h.waitFinal(id)
	if rec.State != journal.StateSuccess {
		t.Fatalf("%s: %s\n%s", rec.State, rec.Reason, journalText(h.entriesFor(id)))
	}
	p := h.pool("cluster-a")
	if !p.HAEnabled || p.Timeout != 180 {
		t.Errorf("pool after the action: HA %v, timeout %d", p.HAEnabled, p.Timeout)
	}
	if w := h.writes(); w["pool.enable_ha"] != 1 || w["pool.disable_ha"] != 0 || len(w) != 1 {
		t.Errorf("writes %v", w)
	}
	// The alert, repeated by Alertmanager, does nothing more.
	h.post(message(firing("XenServerPoolHADisabled", "cluster-a", "", "fp-ha", t0)))
	h.stop()
	if w := h.writes(); w["pool.enable_ha"] != 1 {
		t.Errorf("writes after a repeat %v", w)
	}
}

// Both readings of an old master that returns while pool HA is on
// (sim/scenario.ReturningHost): stuck in emergency mode, as the seed saw
// it, the remediator runs the seed's recovery; rejoined by itself, as
// xen-api's code reads, a late alert finds it healthy and nothing is
// written.
func TestLabReturningOldMaster(t *testing.T) {
	for _, tc := range []struct {
		mode   scenario.ReturningHost
		role   string // the old master's role once back
		state  journal.State
		reason string
		writes map[string]uint64
	}{
		{scenario.ReturningHostStuck, "emergency", journal.StateSuccess, "done",
			map[string]uint64{"pool.disable_ha": 1, "host.emergency_ha_disable": 1, "pool.enable_ha": 1}},
		{scenario.ReturningHostSelfRejoin, "slave", journal.StateSuccess, "already healthy", map[string]uint64{}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			sc := labScenario()
			sc.Pools[0].HAEnabled = true
			sc.Pools[0].ReturningHost = tc.mode
			l := startLab(t, sc)
			h := newLabHarness(t, l, labPolicy, nil)
			if err := l.PowerOff("xs-a1"); err != nil {
				t.Fatal(err)
			}
			labWaitFor(t, "a new master", func() (bool, string) {
				p := h.pool("cluster-a")
				return p.Master != "xs-a1" && strings.HasPrefix(p.Hosts[p.Master], "role=master"), fmt.Sprint(p)
			})
			if err := l.PowerOn("xs-a1"); err != nil {
				t.Fatal(err)
			}
			labWaitFor(t, "xs-a1 back as "+tc.role, func() (bool, string) {
				p := h.pool("cluster-a")
				ok := strings.HasPrefix(p.Hosts["xs-a1"], "role="+tc.role)
				if tc.role == "slave" {
					ok = strings.HasPrefix(p.Hosts["xs-a1"], "role=slave live=true")
				}
				for _, n := range []string{"xs-a2", "xs-a3", "xs-a4"} {
					ok = ok && strings.Contains(p.Hosts[n], "live=true enabled=true")
				}
				return ok, fmt.Sprint(p)
			})
			before := h.writes()
			h.start()
			id := h.queue("XenServerHostEmergencyMode", "cluster-a", "xs-a1", "fp-em")
			rec := h.waitFinal(id)
			if rec.State != tc.state || !strings.Contains(rec.Reason, tc.reason) {
				t.Fatalf("%s: %q, want %s: %q\n%s", rec.State, rec.Reason, tc.state, tc.reason, journalText(h.entriesFor(id)))
			}
			after := h.writes()
			for _, m := range []string{"pool.disable_ha", "host.emergency_ha_disable", "pool.enable_ha", "pool.emergency_transition_to_master"} {
				if got := after[m] - before[m]; got != tc.writes[m] {
					t.Errorf("%s called %d times, want %d", m, got, tc.writes[m])
				}
			}
			labWaitFor(t, "pool HA on and xs-a1 a live, enabled slave", func() (bool, string) {
				p := h.pool("cluster-a")
				return p.HAEnabled && strings.HasPrefix(p.Hosts["xs-a1"], "role=slave live=true enabled=true"), fmt.Sprint(p)
			})
		})
	}
}

func TestLabFailedPreconditionLeavesPoolUntouched(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, l *lab.Lab)
		edit    func(*config.Config)
		alert   string
		host    string
		reason  string
		haAfter bool
	}{
		{name: "heartbeat SR missing", edit: func(c *config.Config) { c.Pools[0].HeartbeatSR = "MGMT-HB" },
			alert: "XenServerPoolHADisabled", reason: `heartbeat SR "MGMT-HB" does not exist`},
		{name: "heartbeat SR unplugged on a host", setup: func(t *testing.T, l *lab.Lab) {
			if err := l.UnplugHeartbeatSR("xs-a3"); err != nil {
				t.Fatal(err)
			}
		}, alert: "XenServerPoolHADisabled", reason: "heartbeat SR MGMT-HA is not attached on host xs-a3"},
		{name: "VM with an HA restart priority", setup: func(t *testing.T, l *lab.Lab) {
			if err := l.SetVMHARestartPriority("i-2-101-VM", "restart"); err != nil {
				t.Fatal(err)
			}
		}, alert: "XenServerPoolHADisabled", reason: "1 VM(s) have a XenServer HA restart priority"},
		{name: "host powered off", setup: func(t *testing.T, l *lab.Lab) {
			if err := l.PowerOff("xs-a4"); err != nil {
				t.Fatal(err)
			}
		}, alert: "XenServerPoolHADisabled", reason: "host xs-a4 does not answer on its address"},
		{name: "emergency mode, but pool HA could not be re-enabled", setup: func(t *testing.T, l *lab.Lab) {
			failover(t, l)
			if err := l.PowerOff("xs-a4"); err != nil {
				t.Fatal(err)
			}
		}, alert: "XenServerHostEmergencyMode", host: "xs-a1", reason: "could not be re-enabled afterwards): host xs-a4", haAfter: true},
		{name: "emergency mode, its own heartbeat SR unplugged", setup: func(t *testing.T, l *lab.Lab) {
			failover(t, l)
			if err := l.UnplugHeartbeatSR("xs-a1"); err != nil {
				t.Fatal(err)
			}
		}, alert: "XenServerHostEmergencyMode", host: "xs-a1", reason: "not attached on host xs-a1, so pool HA could not be re-enabled once it rejoins", haAfter: true},
		{name: "emergency mode, the master's heartbeat SR unplugged", setup: func(t *testing.T, l *lab.Lab) {
			failover(t, l)
			if err := l.UnplugHeartbeatSR(l.State().Pools[0].Master); err != nil {
				t.Fatal(err)
			}
		}, alert: "XenServerHostEmergencyMode", host: "xs-a1", reason: "could not be re-enabled afterwards): heartbeat SR MGMT-HA is not attached on host xs-a", haAfter: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := labScenario()
			sc.Pools[0].HAEnabled = tc.haAfter
			l := startLab(t, sc)
			if tc.setup != nil {
				tc.setup(t, l)
			}
			h := newLabHarness(t, l, labPolicy, tc.edit)
			before, stateBefore := h.writes(), h.pool("cluster-a")
			h.start()
			id := h.queue(tc.alert, "cluster-a", tc.host, "fp")
			rec := h.waitFinal(id)
			if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, tc.reason) {
				t.Fatalf("%s: %q, want skipped: %q", rec.State, rec.Reason, tc.reason)
			}
			if !strings.Contains(journalText(h.entriesFor(id)), tc.reason) {
				t.Error("reason not journaled")
			}
			if after := h.writes(); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("writes %v, before %v", after, before)
			}
			if p := h.pool("cluster-a"); p.HAEnabled != stateBefore.HAEnabled || p.Master != stateBefore.Master {
				t.Errorf("pool changed: %+v -> %+v", stateBefore, p)
			}
		})
	}
}

// failover powers the master of HA-enabled cluster-a off and on: a slave
// takes over and xs-a1 comes back in emergency mode.
func failover(t *testing.T, l *lab.Lab) {
	t.Helper()
	role := func(host string) string {
		for _, p := range l.State().Pools {
			for _, h := range p.Hosts {
				if h.Name == host {
					return h.Role
				}
			}
		}
		return ""
	}
	if err := l.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	labWaitFor(t, "a new master", func() (bool, string) {
		m := l.State().Pools[0].Master
		return m != "xs-a1" && role(m) == "master", m
	})
	if err := l.PowerOn("xs-a1"); err != nil {
		t.Fatal(err)
	}
	labWaitFor(t, "xs-a1 in emergency mode", func() (bool, string) { return role("xs-a1") == "emergency", role("xs-a1") })
}

func TestLabDryRunChangesNothing(t *testing.T) {
	sc := labScenario()
	sc.Pools[0].HAEnabled = true
	l := startLab(t, sc)
	failover(t, l)
	h := newLabHarness(t, l, strings.Replace(labPolicy, "dry_run: false", "dry_run: true", 1), nil)
	before, stateBefore := h.writes(), h.pool("cluster-a")
	h.start()
	id := h.queue("XenServerHostEmergencyMode", "cluster-a", "xs-a1", "fp")
	rec := h.waitFinal(id)
	if rec.State != journal.StateDryRun || !strings.Contains(rec.Reason, "would call pool.disable_ha, then call host.emergency_ha_disable on xs-a1 (127.0.1.1)") {
		t.Fatalf("%s: %s", rec.State, rec.Reason)
	}
	if after := h.writes(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("writes %v, before %v", after, before)
	}
	if p := h.pool("cluster-a"); !p.HAEnabled || p.Hosts["xs-a1"] != stateBefore.Hosts["xs-a1"] {
		t.Errorf("pool changed: %+v -> %+v", stateBefore, p)
	}
}

func TestLabHoldStopsActions(t *testing.T) {
	l := startLab(t, labScenario())
	h := newLabHarness(t, l, labPolicy, nil)
	if err := h.r.setHold("cluster-a", "CloudStack upgrade"); err != nil {
		t.Fatal(err)
	}
	h.start()
	rec := h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp"))
	if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, "CloudStack upgrade") {
		t.Fatalf("%s: %s", rec.State, rec.Reason)
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("writes %v", w)
	}
	if h.pool("cluster-a").HAEnabled {
		t.Error("HA enabled on a held pool")
	}
}

// A host of the pool's CloudStack cluster in maintenance holds the pool.
func TestLabCloudStackMaintenanceHolds(t *testing.T) {
	l, err := lab.Start(context.Background(), lab.Options{Scenario: labScenario(), CloudStackListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	h := newLabHarness(t, l, labPolicy, nil)
	if h.cfg.CloudStack == nil {
		t.Fatal("the lab's xsha.yml has no cloudstack section")
	}
	poller, err := cloudstack.NewPoller(*h.cfg.CloudStack, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.r.maintenance = newCloudStackMaintenance(poller)

	cs := csgo.NewClient(h.cfg.CloudStack.URL, string(h.cfg.CloudStack.APIKey), string(h.cfg.CloudStack.SecretKey), false)
	lp := cs.Host.NewListHostsParams()
	lp.SetName("xs-a2")
	hosts, err := cs.Host.ListHosts(lp)
	if err != nil || len(hosts.Hosts) != 1 {
		t.Fatalf("listHosts: %v %+v", err, hosts)
	}
	if _, err := cs.Host.PrepareHostForMaintenance(cs.Host.NewPrepareHostForMaintenanceParams(hosts.Hosts[0].Id)); err != nil {
		t.Fatalf("prepareHostForMaintenance: %v", err)
	}
	h.start()
	rec := h.waitFinal(h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp"))
	if rec.State != journal.StateSkipped || !strings.Contains(rec.Reason, "CloudStack hosts in maintenance in cluster cluster-a: xs-a2") {
		t.Fatalf("%s: %s", rec.State, rec.Reason)
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("writes %v", w)
	}
	if got := h.counter(h.r.metrics.hold, "cluster-a"); got != 1 {
		t.Errorf("xsha_remediator_hold = %v", got)
	}
}

// pool.enable_ha takes longer than the XAPI call timeout (it takes minutes
// on real pools): the remediator still gets xapi's answer and succeeds with
// one call.
func TestLabSlowEnableHAOutlastsCallTimeout(t *testing.T) {
	sc := labScenario()
	sc.Durations.EnableHA = scenario.Duration(300 * time.Second) // 3 s here
	l := startLab(t, sc)
	h := newLabHarness(t, l, labPolicy, func(c *config.Config) {
		c.Pools[0].CallTimeout = model.Duration(time.Second)
	})
	h.start()
	id := h.queue("XenServerPoolHADisabled", "cluster-a", "", "fp")
	rec := h.waitFinal(id)
	if rec.State != journal.StateSuccess {
		t.Fatalf("%s: %s\n%s", rec.State, rec.Reason, journalText(h.entriesFor(id)))
	}
	// The HA write is not bounded by the call timeout: xapi's own answer
	// comes back, minutes later on real pools.
	if !strings.Contains(journalText(h.entriesFor(id)), "pool.enable_ha succeeded") {
		t.Errorf("pool.enable_ha's answer did not come back:\n%s", journalText(h.entriesFor(id)))
	}
	if w := h.writes(); w["pool.enable_ha"] != 1 {
		t.Errorf("writes %v", w)
	}
}

// The remediator is killed while it waits for the old master to rejoin
// (after pool.disable_ha and host.emergency_ha_disable went through) and
// started again on the same journal: it finishes the recovery against the
// lab without repeating either call.
func TestLabKilledMidRecoveryResumes(t *testing.T) {
	sc := labScenario()
	sc.Pools[0].HAEnabled = true
	sc.Durations.RejoinDelay = scenario.Duration(300 * time.Second) // 3 s here
	l := startLab(t, sc)
	failover(t, l)
	h := newLabHarness(t, l, labPolicy, nil)
	labWaitFor(t, "the other hosts enabled", func() (bool, string) {
		p := h.pool("cluster-a")
		for _, n := range []string{"xs-a2", "xs-a3", "xs-a4"} {
			if !strings.Contains(p.Hosts[n], "live=true enabled=true") {
				return false, fmt.Sprint(p)
			}
		}
		return true, ""
	})
	before := h.writes()
	h.start()
	id := h.queue("XenServerHostEmergencyMode", "cluster-a", "xs-a1", "fp-em")
	labWaitFor(t, "the wait_rejoin step", func() (bool, string) {
		rec := h.record(id)
		return stepIndex(rec.Steps, stepNameWaitRejoin) >= 0, fmt.Sprint(rec.Steps)
	})
	h.stop() // killed
	if rec := h.record(id); rec.State != journal.StateRunning || rec.Steps[len(rec.Steps)-1].State != journal.StepStateStarted {
		t.Fatalf("after the kill: %s %+v", rec.State, rec.Steps)
	}
	entries := h.entries()

	h.restart()
	rec := h.waitFinal(id)
	if rec.State != journal.StateSuccess {
		t.Fatalf("%s: %s\n%s", rec.State, rec.Reason, journalText(h.entriesFor(id)))
	}
	after := h.writes()
	for _, m := range []string{"pool.disable_ha", "host.emergency_ha_disable", "pool.enable_ha"} {
		if after[m]-before[m] != 1 {
			t.Errorf("%s called %d times, want 1", m, after[m]-before[m])
		}
	}
	all := h.entries()
	for i, e := range entries {
		if all[i].Seq != e.Seq || all[i].Message != e.Message {
			t.Fatalf("entry %d lost or changed across the restart", i)
		}
	}
	if p := h.pool("cluster-a"); !p.HAEnabled || !strings.HasPrefix(p.Hosts["xs-a1"], "role=slave live=true") {
		t.Errorf("pool %+v", p)
	}
}
