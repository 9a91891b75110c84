package cloudstacksim

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// steppingTransport moves the model one simulated second before every
// request, so that cloudstack-go's async client finds its job done at the
// first poll without the test waiting in real time.
type steppingTransport struct {
	s     *Server
	clock *fakeClock
}

func (t steppingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.clock.add(time.Second)
	t.s.step()
	return http.DefaultTransport.RoundTrip(r)
}

// maintenanceLab is a model on a fake clock behind the real async client.
type maintenanceLab struct {
	s     *Server
	clock *fakeClock
	infra *fakeInfra
	cs    *cloudstack.CloudStackClient
}

func newMaintenanceLab(t *testing.T, infra Infra, opts Options) *maintenanceLab {
	t.Helper()
	s, clock := newModel(t, infra, opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	hc := &http.Client{Transport: steppingTransport{s: s, clock: clock}, Timeout: 10 * time.Second}
	cs := cloudstack.NewAsyncClient(ts.URL, testAPIKey, testSecretKey, false, cloudstack.WithHTTPClient(hc), cloudstack.WithAsyncTimeout(30))
	l := &maintenanceLab{s: s, clock: clock, cs: cs}
	if f, ok := infra.(*fakeInfra); ok {
		l.infra = f
	}
	return l
}

func (l *maintenanceLab) prepare(name string) (*cloudstack.PrepareHostForMaintenanceResponse, error) {
	return l.cs.Host.PrepareHostForMaintenance(l.cs.Host.NewPrepareHostForMaintenanceParams(nameUUID("host", name)))
}

func (l *maintenanceLab) cancel(name string) (*cloudstack.CancelHostMaintenanceResponse, error) {
	return l.cs.Host.CancelHostMaintenance(l.cs.Host.NewCancelHostMaintenanceParams(nameUUID("host", name)))
}

// host reads a host through listHosts.
func (l *maintenanceLab) host(t *testing.T, name string) *cloudstack.Host {
	t.Helper()
	p := l.cs.Host.NewListHostsParams()
	p.SetId(nameUUID("host", name))
	r, err := l.cs.Host.ListHosts(p)
	if err != nil || r.Count != 1 {
		t.Fatalf("listHosts id=%s: %v %+v", name, err, r)
	}
	return r.Hosts[0]
}

// userVMHosts lists every user VM's host name through listVirtualMachines.
func (l *maintenanceLab) userVMHosts(t *testing.T) map[string]string {
	t.Helper()
	p := l.cs.VirtualMachine.NewListVirtualMachinesParams()
	p.SetListall(true)
	r, err := l.cs.VirtualMachine.ListVirtualMachines(p)
	if err != nil {
		t.Fatalf("listVirtualMachines: %v", err)
	}
	out := map[string]string{}
	for _, v := range r.VirtualMachines {
		out[v.Name] = v.Hostname
	}
	p.SetProjectid("-1")
	r, err = l.cs.VirtualMachine.ListVirtualMachines(p)
	if err != nil {
		t.Fatalf("listVirtualMachines projectid=-1: %v", err)
	}
	for _, v := range r.VirtualMachines {
		out[v.Name] = v.Hostname
	}
	return out
}

func (l *maintenanceLab) seq(name string) int64 {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.s.hostByName(name).seq
}

func (l *maintenanceLab) clusterSeq(name string) int64 {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.s.clusterByName(name).seq
}

func resourceState(name, rs string) func(State) bool {
	return func(st State) bool { return hostState(st, name).ResourceState == rs }
}

// vmsOn returns the names of the active VMs on host.
func vmsOn(st State, host string) []string {
	var out []string
	for _, v := range st.VMs {
		if v.Host == host {
			out = append(out, v.Name)
		}
	}
	return out
}

// Maintenance of a pool member through the real client: the job answers
// PrepareForMaintenance, the VMs migrate to the other Up, Enabled hosts of
// the same cluster (never to a Down host or another cluster), the host
// reaches Maintenance, and cancelling returns it to Enabled and Up.
func TestPrepareHostForMaintenanceEvacuatesToTheCluster(t *testing.T) {
	tests := []struct {
		name     string
		down     []string // hosts powered off before maintenance
		wantUsed []string // hosts that must receive VMs
	}{
		{name: "whole cluster up", wantUsed: []string{"xs-a2", "xs-a3", "xs-a4"}},
		{name: "one host down", down: []string{"xs-a4"}, wantUsed: []string{"xs-a2", "xs-a3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			infra := newFakeInfra()
			l := newMaintenanceLab(t, infra, testOptions())
			for _, n := range tc.down {
				infra.set(powerOff, n)
				runUntil(t, l.s, l.clock, 10*time.Minute, n+" Down", func(st State) bool { return hostState(st, n).State == statusDown })
			}
			before := vmsOn(l.s.State(), "xs-a1")
			if len(before) != 8 {
				t.Fatalf("VMs on xs-a1 before maintenance: %v, want 8", before)
			}

			prep, err := l.prepare("xs-a1")
			if err != nil {
				t.Fatalf("prepareHostForMaintenance: %v", err)
			}
			if prep.Name != "xs-a1" || prep.Resourcestate != rsPrepare || prep.State != statusUp {
				t.Errorf("prepareHostForMaintenance answered %s state %s resourcestate %s, want xs-a1 Up PrepareForMaintenance", prep.Name, prep.State, prep.Resourcestate)
			}
			took := runUntil(t, l.s, l.clock, 10*time.Minute, "xs-a1 in Maintenance", resourceState("xs-a1", rsMaintenance))
			t.Logf("xs-a1 in Maintenance %v after the job", took)

			if h := l.host(t, "xs-a1"); h.Resourcestate != rsMaintenance || h.State != statusUp {
				t.Errorf("listHosts xs-a1: state %s resourcestate %s, want Up Maintenance", h.State, h.Resourcestate)
			}
			st := l.s.State()
			if left := vmsOn(st, "xs-a1"); len(left) != 0 {
				t.Errorf("VMs still on xs-a1 in Maintenance: %v", left)
			}
			used := map[string]bool{}
			for _, name := range before {
				v := vmState(st, name)
				if v.State != vmRunning {
					t.Errorf("VM %s is %s after the evacuation, want Running", name, v.State)
				}
				used[v.Host] = true
			}
			for h := range used {
				if c := hostState(st, h).Cluster; c != "cluster-a" || h == "xs-a1" {
					t.Errorf("a VM went to %s (cluster %q), want another host of cluster-a", h, c)
				}
				for _, d := range tc.down {
					if h == d {
						t.Errorf("a VM went to the Down host %s", h)
					}
				}
			}
			for _, h := range tc.wantUsed {
				if !used[h] {
					t.Errorf("no VM went to %s; hosts used: %v", h, used)
				}
			}
			// The client sees the new placement too.
			for name, h := range l.userVMHosts(t) {
				if h == "xs-a1" {
					t.Errorf("listVirtualMachines shows %s on xs-a1", name)
				}
			}

			c, err := l.cancel("xs-a1")
			if err != nil || c.Resourcestate != rsEnabled {
				t.Fatalf("cancelHostMaintenance: %v %+v", err, c)
			}
			if h := l.host(t, "xs-a1"); h.Resourcestate != rsEnabled || h.State != statusUp {
				t.Errorf("listHosts xs-a1 after cancel: state %s resourcestate %s, want Up Enabled", h.State, h.Resourcestate)
			}
		})
	}
}

// A VM that cannot move: its migration fails, the host goes to
// ErrorInPrepareForMaintenance while retries remain (attemptMaintain) and
// the other VMs leave; what happens next depends on the operator.
func TestMaintenanceWithAVMThatCannotMove(t *testing.T) {
	tests := []struct {
		name string
		// then acts once the host is in ErrorInPrepareForMaintenance.
		then func(t *testing.T, l *maintenanceLab)
	}{
		{
			name: "cancel from ErrorInPrepareForMaintenance",
			then: func(t *testing.T, l *maintenanceLab) {
				c, err := l.cancel("xs-a1")
				if err != nil || c.Resourcestate != rsEnabled {
					t.Fatalf("cancelHostMaintenance: %v %+v", err, c)
				}
				// Scheduled retries are cancelled: even once it could
				// move, the VM stays put and the host stays Enabled.
				if err := l.s.SetMigrationFault("win-a2", false); err != nil {
					t.Fatal(err)
				}
				run(l.s, l.clock, 15*time.Minute)
				st := l.s.State()
				if h := hostState(st, "xs-a1"); h.ResourceState != rsEnabled {
					t.Errorf("xs-a1 resource state %s after cancel, want Enabled", h.ResourceState)
				}
				if v := vmState(st, "win-a2"); v.Host != "xs-a1" || v.State != vmRunning {
					t.Errorf("win-a2 = %+v after cancel, want Running on xs-a1", v)
				}
			},
		},
		{
			name: "fault cleared before the retries run out",
			then: func(t *testing.T, l *maintenanceLab) {
				if err := l.s.SetMigrationFault("win-a2", false); err != nil {
					t.Fatal(err)
				}
				// The next retry (migrate.retry.interval 120 s) moves it,
				// the next monitor pass finds the host empty.
				took := runUntil(t, l.s, l.clock, 4*time.Minute, "xs-a1 in Maintenance", resourceState("xs-a1", rsMaintenance))
				t.Logf("Maintenance %v after the fault was cleared", took)
				if v := vmState(l.s.State(), "win-a2"); v.Host == "xs-a1" || v.State != vmRunning {
					t.Errorf("win-a2 = %+v, want Running on another host", v)
				}
			},
		},
		{
			name: "retries run out",
			then: func(t *testing.T, l *maintenanceLab) {
				// Five attempts 120 s apart, then the monitor gives up.
				took := runUntil(t, l.s, l.clock, 15*time.Minute, "xs-a1 in ErrorInMaintenance", resourceState("xs-a1", rsErrorInMaint))
				if took < 4*DefaultMigrateRetry-2*DefaultPingInterval || took > 4*DefaultMigrateRetry+DefaultPingInterval {
					t.Errorf("ErrorInMaintenance %v after ErrorInPrepareForMaintenance, want about four retry intervals (%v)", took, 4*DefaultMigrateRetry)
				}
				if h := l.host(t, "xs-a1"); h.Resourcestate != rsErrorInMaint {
					t.Errorf("listHosts xs-a1 resourcestate %s, want ErrorInMaintenance", h.Resourcestate)
				}
				// No more attempts: clearing the fault changes nothing.
				if err := l.s.SetMigrationFault("win-a2", false); err != nil {
					t.Fatal(err)
				}
				run(l.s, l.clock, 10*time.Minute)
				if v := vmState(l.s.State(), "win-a2"); v.Host != "xs-a1" {
					t.Errorf("win-a2 = %+v, want still on xs-a1 once the retries are spent", v)
				}
				c, err := l.cancel("xs-a1")
				if err != nil || c.Resourcestate != rsEnabled {
					t.Fatalf("cancelHostMaintenance from ErrorInMaintenance: %v %+v", err, c)
				}
			},
		},
		{
			name: "prepare again from ErrorInMaintenance once fixed",
			then: func(t *testing.T, l *maintenanceLab) {
				runUntil(t, l.s, l.clock, 15*time.Minute, "xs-a1 in ErrorInMaintenance", resourceState("xs-a1", rsErrorInMaint))
				if err := l.s.SetMigrationFault("win-a2", false); err != nil {
					t.Fatal(err)
				}
				// ErrorInMaintenance accepts AdminAskMaintenance.
				prep, err := l.prepare("xs-a1")
				if err != nil || prep.Resourcestate != rsPrepare {
					t.Fatalf("prepareHostForMaintenance from ErrorInMaintenance: %v %+v", err, prep)
				}
				runUntil(t, l.s, l.clock, 3*time.Minute, "xs-a1 in Maintenance", resourceState("xs-a1", rsMaintenance))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newMaintenanceLab(t, newFakeInfra(), testOptions())
			if err := l.s.SetMigrationFault("win-a2", true); err != nil {
				t.Fatal(err)
			}
			if v := vmState(l.s.State(), "win-a2"); !v.MigrationFault {
				t.Errorf("State shows win-a2 = %+v, want migration_fault set", v)
			}
			prep, err := l.prepare("xs-a1")
			if err != nil || prep.Resourcestate != rsPrepare {
				t.Fatalf("prepareHostForMaintenance: %v %+v", err, prep)
			}
			runUntil(t, l.s, l.clock, 3*time.Minute, "xs-a1 in ErrorInPrepareForMaintenance", resourceState("xs-a1", rsErrorInPrepare))
			if h := l.host(t, "xs-a1"); h.Resourcestate != rsErrorInPrepare {
				t.Errorf("listHosts xs-a1 resourcestate %s, want ErrorInPrepareForMaintenance", h.Resourcestate)
			}
			// Everything else leaves; the stuck VM keeps running.
			runUntil(t, l.s, l.clock, 2*time.Minute, "only win-a2 left on xs-a1", func(st State) bool {
				left := vmsOn(st, "xs-a1")
				return len(left) == 1 && left[0] == "win-a2"
			})
			if v := vmState(l.s.State(), "win-a2"); v.State != vmRunning {
				t.Errorf("win-a2 = %+v, want Running", v)
			}
			tc.then(t, l)
		})
	}
}

// Refusals come back the way CloudStack sends them: an unknown id at once
// with HTTP 431, everything else as a failed job (530) with
// ResourceManagerImpl's text, which PrepareForMaintenanceCmd prefixes.
func TestMaintenanceRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, l *maintenanceLab)
		call  func(l *maintenanceLab) error
		want  func(l *maintenanceLab) string
		// after checks the host afterwards.
		after func(t *testing.T, l *maintenanceLab)
	}{
		{
			name: "cancel on an Enabled host",
			call: func(l *maintenanceLab) error { _, err := l.cancel("xs-b2"); return err },
			want: func(l *maintenanceLab) string {
				return fmt.Sprintf(`{"errorcode":530,"errortext":"Cannot perform cancelMaintenance when resource state is Enabled, hostId = %d"}`, l.seq("xs-b2"))
			},
		},
		{
			name: "prepare a host already in Maintenance",
			setup: func(t *testing.T, l *maintenanceLab) {
				if _, err := l.prepare("xs-b2"); err != nil {
					t.Fatal(err)
				}
				runUntil(t, l.s, l.clock, 5*time.Minute, "xs-b2 in Maintenance", resourceState("xs-b2", rsMaintenance))
			},
			call: func(l *maintenanceLab) error { _, err := l.prepare("xs-b2"); return err },
			want: func(*maintenanceLab) string {
				return `{"errorcode":530,"errortext":"Failed to prepare host for maintenance due to: Host is already in state Maintenance. Cannot recall for maintenance until resolved."}`
			},
		},
		{
			name: "prepare a second host of a cluster that is preparing",
			setup: func(t *testing.T, l *maintenanceLab) {
				if _, err := l.prepare("xs-a1"); err != nil {
					t.Fatal(err)
				}
			},
			call: func(l *maintenanceLab) error { _, err := l.prepare("xs-a2"); return err },
			want: func(l *maintenanceLab) string {
				return fmt.Sprintf(`{"errorcode":530,"errortext":"Failed to prepare host for maintenance due to: There are other servers attempting migrations for maintenance. Found hosts in PrepareForMaintenance OR ErrorInPrepareForMaintenance STATUS in cluster %d"}`, l.clusterSeq("cluster-a"))
			},
			after: func(t *testing.T, l *maintenanceLab) {
				if h := l.host(t, "xs-a2"); h.Resourcestate != rsEnabled {
					t.Errorf("xs-a2 resourcestate %s after the refusal, want Enabled", h.Resourcestate)
				}
			},
		},
		{
			name: "prepare a host whose agent does not answer",
			setup: func(t *testing.T, l *maintenanceLab) {
				l.infra.set(cutOff, "xs-b3")
				runUntil(t, l.s, l.clock, 10*time.Minute, "xs-b3 in Alert", func(st State) bool { return hostState(st, "xs-b3").State == statusAlert })
			},
			call: func(l *maintenanceLab) error { _, err := l.prepare("xs-b3"); return err },
			want: func(l *maintenanceLab) string {
				return fmt.Sprintf(`{"errorcode":530,"errortext":"Failed to prepare host for maintenance due to: Unable to prepare for maintenance host %d"}`, l.seq("xs-b3"))
			},
			after: func(t *testing.T, l *maintenanceLab) {
				if h := l.host(t, "xs-b3"); h.Resourcestate != rsEnabled {
					t.Errorf("xs-b3 resourcestate %s, want Enabled", h.Resourcestate)
				}
			},
		},
		{
			name: "prepare the last host of a cluster",
			call: func(l *maintenanceLab) error { _, err := l.prepare("xs-c1"); return err },
			want: func(l *maintenanceLab) string {
				return fmt.Sprintf(`{"errorcode":530,"errortext":"Failed to prepare host for maintenance due to: Unable to prepare for maintenance host %d"}`, l.seq("xs-c1"))
			},
			after: func(t *testing.T, l *maintenanceLab) {
				// Left in PrepareForMaintenance with its VM; the monitor
				// then finds VMs and no migration work.
				runUntil(t, l.s, l.clock, 2*time.Minute, "xs-c1 in ErrorInMaintenance", resourceState("xs-c1", rsErrorInMaint))
				if v := vmState(l.s.State(), "win-c1"); v.Host != "xs-c1" || v.State != vmRunning {
					t.Errorf("win-c1 = %+v, want Running on xs-c1", v)
				}
			},
		},
		{
			name: "prepare an unknown host",
			call: func(l *maintenanceLab) error {
				_, err := l.cs.Host.PrepareHostForMaintenance(l.cs.Host.NewPrepareHostForMaintenanceParams("7c1f3e5a-0000-4000-8000-000000000000"))
				return err
			},
			want: func(*maintenanceLab) string {
				return "CloudStack API error 431 (CSExceptionErrorCode: 9999): Unable to execute API command preparehostformaintenance due to invalid value. Invalid parameter id value=7c1f3e5a-0000-4000-8000-000000000000 due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."
			},
		},
		{
			name: "cancel an unknown host",
			call: func(l *maintenanceLab) error {
				_, err := l.cs.Host.CancelHostMaintenance(l.cs.Host.NewCancelHostMaintenanceParams("7c1f3e5a-0000-4000-8000-000000000000"))
				return err
			},
			want: func(*maintenanceLab) string {
				return "CloudStack API error 431 (CSExceptionErrorCode: 9999): Unable to execute API command cancelhostmaintenance due to invalid value. Invalid parameter id value=7c1f3e5a-0000-4000-8000-000000000000 due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			infra := newFakeInfra()
			infra.hosts = append(infra.hosts, HostView{Name: "xs-c1", Cluster: "cluster-c", Address: "127.0.3.1", PoweredOn: true, Reachable: true, Heartbeat: true})
			opts := testOptions()
			opts.VMs = append(opts.VMs, VM{Name: "win-c1", Offering: "Windows", Host: "xs-c1"})
			l := newMaintenanceLab(t, infra, opts)
			if tc.setup != nil {
				tc.setup(t, l)
			}
			err := tc.call(l)
			want := tc.want(l)
			if err == nil || !strings.HasSuffix(err.Error(), want) {
				t.Errorf("error %v\nwant it to end in %s", err, want)
			}
			if tc.after != nil {
				tc.after(t, l)
			}
		})
	}
}

// Cancelling while the evacuation runs: ha.workers (5) migrations are
// under way and finish, the three VMs still waiting stay, and the host is
// Enabled at once (doCancelMaintenance only warns about migrations under
// way).
func TestCancelMaintenanceDuringTheEvacuation(t *testing.T) {
	l := newMaintenanceLab(t, newFakeInfra(), testOptions())
	if _, err := l.prepare("xs-a1"); err != nil {
		t.Fatal(err)
	}
	migrating := func(st State) int {
		n := 0
		for _, v := range st.VMs {
			if v.State == vmMigrating {
				n++
			}
		}
		return n
	}
	runUntil(t, l.s, l.clock, time.Minute, "migrations under way", func(st State) bool { return migrating(st) > 0 })
	if n := migrating(l.s.State()); n != DefaultHAWorkers {
		t.Errorf("%d migrations at once, want ha.workers = %d", n, DefaultHAWorkers)
	}
	c, err := l.cancel("xs-a1")
	if err != nil || c.Resourcestate != rsEnabled {
		t.Fatalf("cancelHostMaintenance during the evacuation: %v %+v", err, c)
	}
	run(l.s, l.clock, 10*time.Minute)
	st := l.s.State()
	if h := hostState(st, "xs-a1"); h.ResourceState != rsEnabled {
		t.Errorf("xs-a1 resource state %s, want Enabled", h.ResourceState)
	}
	if left := vmsOn(st, "xs-a1"); len(left) != 8-DefaultHAWorkers {
		t.Errorf("VMs left on xs-a1: %v, want the %d whose migration had not started", left, 8-DefaultHAWorkers)
	}
	if n := migrating(st); n != 0 {
		t.Errorf("%d VMs still migrating", n)
	}
}

// The seed's slave restart: a host in Maintenance is rebooted. CloudStack
// does not investigate it, so it shows Disconnected (never Alert or Down)
// while it is off, Up once it answers again, and cancelling maintenance
// then gives Enabled and Up.
func TestRebootInMaintenance(t *testing.T) {
	l := newMaintenanceLab(t, newFakeInfra(), testOptions())
	if _, err := l.prepare("xs-a2"); err != nil {
		t.Fatal(err)
	}
	runUntil(t, l.s, l.clock, 5*time.Minute, "xs-a2 in Maintenance", resourceState("xs-a2", rsMaintenance))

	l.infra.set(powerOff, "xs-a2")
	runUntil(t, l.s, l.clock, 10*time.Minute, "xs-a2 Disconnected", func(st State) bool { return hostState(st, "xs-a2").State == statusDisconnected })
	for range 60 { // an hour off: alert.wait (60 s) and the heartbeat timeout long passed
		run(l.s, l.clock, time.Minute)
		if h := hostState(l.s.State(), "xs-a2"); h.State != statusDisconnected || h.ResourceState != rsMaintenance {
			t.Fatalf("xs-a2 = %+v while powered off in Maintenance, want Disconnected", h)
		}
	}
	if h := l.host(t, "xs-a2"); h.State != statusDisconnected || h.Disconnected == "" {
		t.Errorf("listHosts xs-a2: state %s disconnected %q, want Disconnected with a date", h.State, h.Disconnected)
	}

	l.infra.set(powerOn, "xs-a2")
	runUntil(t, l.s, l.clock, 5*time.Minute, "xs-a2 Up", func(st State) bool { return hostState(st, "xs-a2").State == statusUp })
	if _, err := l.cancel("xs-a2"); err != nil {
		t.Fatal(err)
	}
	if h := l.host(t, "xs-a2"); h.State != statusUp || h.Resourcestate != rsEnabled {
		t.Errorf("listHosts xs-a2 after cancel: state %s resourcestate %s, want Up Enabled", h.State, h.Resourcestate)
	}
}

// migratingInfra is a fakeInfra whose XenServer side takes migrations.
type migratingInfra struct {
	*fakeInfra
	mu     sync.Mutex
	moves  map[string]string // instance name → host
	refuse map[string]bool
}

func (m *migratingInfra) MigrateVM(instanceName, host string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refuse[instanceName] {
		return errors.New("VM_MIGRATE_FAILED")
	}
	m.moves[instanceName] = host
	return nil
}

// With a Migrator the evacuation moves the VMs on the XenServer side to the
// hosts CloudStack chose, and a refusal there fails the migration like the
// fault does.
func TestMaintenanceMigratesOnTheXenServerSide(t *testing.T) {
	infra := &migratingInfra{fakeInfra: newFakeInfra(), moves: map[string]string{}, refuse: map[string]bool{"win-a3": true}}
	l := newMaintenanceLab(t, infra, testOptions())
	if _, err := l.prepare("xs-a1"); err != nil {
		t.Fatal(err)
	}
	runUntil(t, l.s, l.clock, 3*time.Minute, "xs-a1 in ErrorInPrepareForMaintenance", resourceState("xs-a1", rsErrorInPrepare))
	runUntil(t, l.s, l.clock, 2*time.Minute, "only win-a3 left", func(st State) bool { return len(vmsOn(st, "xs-a1")) == 1 })

	st := l.s.State()
	infra.mu.Lock()
	defer infra.mu.Unlock()
	if len(infra.moves) != 7 {
		t.Errorf("XenServer-side migrations %v, want the 7 VMs that could move", infra.moves)
	}
	for inst, to := range infra.moves {
		if v := vmState(st, inst); v.Host != to {
			t.Errorf("%s moved to %s on XenServer but CloudStack has it on %s", inst, to, v.Host)
		}
	}
	if v := vmState(st, "win-a3"); v.Host != "xs-a1" || v.State != vmRunning {
		t.Errorf("win-a3 = %+v, want Running on xs-a1", v)
	}
}

func TestSetMigrationFaultNames(t *testing.T) {
	opts := testOptions()
	opts.VMs = append(opts.VMs, VM{Name: "web", InstanceName: "i-2-10-VM", Host: "xs-b2"})
	s, _ := newModel(t, newFakeInfra(), opts)
	if err := s.SetMigrationFault("no-such-vm", true); !errors.Is(err, ErrUnknownVM) {
		t.Errorf("SetMigrationFault on an unknown VM: %v, want ErrUnknownVM", err)
	}
	// The hypervisor-side name works as well as the CloudStack name.
	for _, tc := range []struct {
		name string
		fail bool
	}{{"i-2-10-VM", true}, {"web", false}, {"web", true}} {
		if err := s.SetMigrationFault(tc.name, tc.fail); err != nil {
			t.Fatalf("SetMigrationFault(%q, %v): %v", tc.name, tc.fail, err)
		}
		if v := vmState(s.State(), "i-2-10-VM"); v.MigrationFault != tc.fail {
			t.Errorf("after SetMigrationFault(%q, %v) the VM shows %+v", tc.name, tc.fail, v)
		}
	}
}
