package remediator

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"xsha/cloudstack"
	"xsha/config"
	"xsha/remediator/journal"
	"xsha/sim/lab"
	"xsha/sim/scenario"
	"xsha/xapi"
)

// workflowPolicy enables every workflow on cluster-a, live, with polling
// suited to the lab at 1/100 time.
const workflowPolicy = `
dry_run: false
actions:
  enable_pool_ha:       {alerts: [XenServerPoolHADisabled],    pools: [cluster-a]}
  clear_emergency_mode: {alerts: [XenServerHostEmergencyMode], pools: [cluster-a]}
  rejoin_host:          {alerts: [XenServerHostCannotRejoin],  pools: [cluster-a]}
  restart_slave:        {pools: [cluster-a]}
  restart_master:       {pools: [cluster-a]}
  shutdown:             {pools: [cluster-a]}
  bring_back:           {pools: [cluster-a]}
ha_timeout: 180s
poll_interval: 20ms
step_timeout: 60s
`

// maintenanceLabScenario is the seed's test bed at 1/100 time, cluster-a
// only, on the given XenServer version, pool HA on, guests spread over the
// hosts as sim/lab's maintenance tests place them: i-2-101 and i-2-102 on
// xs-a2, i-2-103 on xs-a3, i-2-104 on the master xs-a1, i-2-105 on xs-a4.
func maintenanceLabScenario(version string) *scenario.Scenario {
	sc := labScenario()
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

// newWorkflowLab starts the lab with CloudStack and a remediator with the
// CloudStack side of workflows, not yet running.
func newWorkflowLab(t *testing.T, version string) *labHarness {
	t.Helper()
	l, err := lab.Start(context.Background(), lab.Options{Scenario: maintenanceLabScenario(version), CloudStackListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	h := newLabHarness(t, l, workflowPolicy, func(cfg *config.Config) {
		cfg.Pools = cfg.Pools[:1]
	})
	cs, err := cloudstack.NewHostMaintenance(*h.cfg.CloudStack)
	if err != nil {
		t.Fatal(err)
	}
	h.cs = cs
	h.close()
	h.open()
	return h
}

// maintenanceWrites returns the writes of the workflow, in order, from
// its journaled calls.
func (h *labHarness) workflowCalls(id uint64) []string {
	var calls []string
	for _, s := range h.record(id).Steps {
		calls = append(calls, s.Calls...)
	}
	return calls
}

// checkEnd asserts how every procedure ends: pool HA on, every host live
// and enabled, every VM of the pool running on a host, and the host Enabled
// and Up in CloudStack.
func (h *labHarness) checkEnd(t *testing.T, host string) {
	t.Helper()
	p := h.pool("cluster-a")
	if !p.HAEnabled {
		t.Errorf("pool HA is off at the end: %v", p.Hosts)
	}
	for name, st := range p.Hosts {
		if !strings.Contains(st, "live=true enabled=true") {
			t.Errorf("host %s at the end: %s", name, st)
		}
	}
	c := h.clients["cluster-a"].(*xapi.Client)
	s, err := c.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var running []string
	for _, hs := range s.Hosts {
		vms, err := c.ResidentVMs(context.Background(), hs.UUID)
		if err != nil {
			t.Fatal(err)
		}
		running = append(running, vms...)
	}
	if len(running) != 9 {
		t.Errorf("running VMs at the end: %v, want the 5 guests, 2 routers and 2 system VMs", running)
	}
	for _, cs := range h.lab.State().CloudStack.Hosts {
		if cs.Name == host && (cs.ResourceState != "Enabled" || cs.State != "Up") {
			t.Errorf("CloudStack shows %s %s/%s at the end", host, cs.ResourceState, cs.State)
		}
	}
	for _, v := range h.lab.State().CloudStack.VMs {
		if v.State != "Running" {
			t.Errorf("CloudStack VM %s is %s", v.Name, v.State)
		}
	}
}

// TestLabRestartSlaveWorkflow runs the seed's slave restart as a workflow
// on 6.2 and 7.1: every write in the seed's order, host.enable left out
// since the reboot re-enabled the host, and the pool back as it was.
func TestLabRestartSlaveWorkflow(t *testing.T) {
	for _, v := range []string{scenario.Version62, scenario.Version71} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			h := newWorkflowLab(t, v)
			h.start()
			rec, err := h.r.startWorkflow(WorkflowRequest{Workflow: WorkflowRestartSlave, Pool: "cluster-a", Host: "xs-a2"}, "test")
			if err != nil {
				t.Fatal(err)
			}
			rec = h.waitFinal(rec.ID)
			if rec.State != journal.StateSuccess {
				t.Fatalf("%s: %s\n%s", rec.State, rec.Reason, journalText(h.entriesFor(rec.ID)))
			}
			want := []string{"cloudstack.prepareHostForMaintenance", "pool.disable_ha", "host.disable", "host.evacuate",
				"host.reboot", "pool.enable_ha", "cloudstack.cancelHostMaintenance"}
			if got := h.workflowCalls(rec.ID); !slices.Equal(got, want) {
				t.Errorf("writes %v, want %v", got, want)
			}
			h.checkEnd(t, "xs-a2")
		})
	}
}

// maintenanceWrites returns the lab's count of the maintenance writes.
func (h *labHarness) maintenanceWrites() map[string]uint64 {
	out := map[string]uint64{}
	for m, n := range h.lab.Stats().Calls {
		switch m {
		case "pool.enable_ha", "pool.disable_ha", "host.disable", "host.enable", "host.evacuate", "host.reboot",
			"host.shutdown", "pool.designate_new_master":
			out[m] = n
		}
	}
	return out
}

func (h *labHarness) csHost(name string) string {
	for _, cs := range h.lab.State().CloudStack.Hosts {
		if cs.Name == name {
			return cs.ResourceState + "/" + cs.State
		}
	}
	return "absent"
}

// TestLabWorkflowRefusals: on live state, a workflow stops with a clear
// reason and, when refused by its check, changes nothing.
func TestLabWorkflowRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(*lab.Lab) error
		workflow ActionName
		host     string
		state    journal.State
		reason   []string
		// csAfter is CloudStack's view of the host at the end.
		csAfter string
	}{
		{"unevacuable VM", func(l *lab.Lab) error { return l.SetVMMigrationFault("i-2-101-VM", true) },
			WorkflowRestartSlave, "xs-a2", journal.StateSkipped,
			[]string{"VM i-2-101-VM cannot be evacuated from xs-a2: VM_MISSING_PV_DRIVERS", "nothing was changed"}, "Enabled/Up"},
		{"CloudStack maintenance error", func(l *lab.Lab) error { return l.SetCloudStackMigrationFault("i-2-101-VM", true) },
			WorkflowRestartSlave, "xs-a2", journal.StateFailed,
			[]string{"CloudStack could not put xs-a2 into maintenance: ErrorInPrepareForMaintenance"}, "ErrorInPrepareForMaintenance/Up"},
		{"pool HA already off", func(l *lab.Lab) error { return l.DisablePoolHA("cluster-a") },
			WorkflowRestartSlave, "xs-a2", journal.StateSkipped,
			[]string{"pool HA is already off: someone else's work"}, "Enabled/Up"},
		{"slave restart of the master", nil,
			WorkflowRestartSlave, "xs-a1", journal.StateSkipped,
			[]string{"host xs-a1 is the master: use restart_master"}, "Enabled/Up"},
		{"bring back a live host", nil,
			WorkflowBringBack, "xs-a3", journal.StateSkipped,
			[]string{"host xs-a3 is live already", "nothing to bring back"}, "Enabled/Up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWorkflowLab(t, scenario.Version62)
			if tc.setup != nil {
				if err := tc.setup(h.lab); err != nil {
					t.Fatal(err)
				}
			}
			before := h.maintenanceWrites()
			h.start()
			rec, err := h.r.startWorkflow(WorkflowRequest{Workflow: tc.workflow, Pool: "cluster-a", Host: tc.host}, "test")
			if err != nil {
				t.Fatal(err)
			}
			rec = h.waitFinal(rec.ID)
			if rec.State != tc.state {
				t.Errorf("%s, want %s: %s", rec.State, tc.state, rec.Reason)
			}
			for _, r := range tc.reason {
				if !strings.Contains(rec.Reason, r) {
					t.Errorf("reason %q lacks %q", rec.Reason, r)
				}
			}
			if after := h.maintenanceWrites(); !maps.Equal(before, after) {
				t.Errorf("XAPI writes before %v, after %v", before, after)
			}
			if tc.name != "pool HA already off" && !h.pool("cluster-a").HAEnabled {
				t.Error("pool HA is off after the refusal")
			}
			if got := h.csHost(tc.host); got != tc.csAfter {
				t.Errorf("CloudStack shows %s %s, want %s", tc.host, got, tc.csAfter)
			}
		})
	}
}
