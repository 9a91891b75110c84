package lab

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
	xenapi "github.com/terra-farm/go-xen-api-client"

	"xsha/sim/scenario"
	"xsha/sim/xapisim"
)

// maintenanceScenario is cluster-a alone, on XenServer version, with pool
// HA on and guests spread over the hosts: i-2-101 and i-2-102 on xs-a2,
// i-2-103 on xs-a3, i-2-104 on the master xs-a1, i-2-105 on xs-a4.
func maintenanceScenario(version string) *scenario.Scenario {
	sc := haScenario(0.01)
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

var versions = []string{scenario.Version62, scenario.Version71}

// maint drives one lab through XAPI (terra-farm) and CloudStack
// (cloudstack-go), as an operator following the seed's procedures would.
type maint struct {
	t  *testing.T
	l  *Lab
	c  *xenapi.Client
	s  xenapi.SessionRef
	cs *cloudstack.CloudStackClient
}

func newMaint(t *testing.T, sc *scenario.Scenario, cloudStack bool) *maint {
	t.Helper()
	opts := Options{Scenario: sc}
	if cloudStack {
		opts.CloudStackListen = "127.0.0.1:0"
	}
	m := &maint{t: t, l: startLab(t, opts)}
	m.login("xs-a2")
	if cloudStack {
		m.cs = cloudstack.NewAsyncClient(m.l.CloudStackURL(), sc.CloudStack.APIKey, sc.CloudStack.SecretKey, false,
			cloudstack.WithAsyncTimeout(60))
	}
	return m
}

// login opens a session on the pool's master, following HOST_IS_SLAVE.
func (m *maint) login(via string) {
	m.t.Helper()
	m.c, m.s, _ = loginPool(m.t, m.l, via)
}

func (m *maint) host(name string) xenapi.HostRef {
	m.t.Helper()
	refs, err := m.c.Host.GetByNameLabel(m.s, name)
	if err != nil || len(refs) != 1 {
		m.t.Fatalf("host %s: %v %v", name, refs, err)
	}
	return refs[0]
}

func (m *maint) vm(name string) xenapi.VMRef {
	m.t.Helper()
	refs, err := m.c.VM.GetByNameLabel(m.s, name)
	if err != nil || len(refs) != 1 {
		m.t.Fatalf("VM %s: %v %v", name, refs, err)
	}
	return refs[0]
}

// residentOn returns the name of the host a VM runs on.
func (m *maint) residentOn(vm string) string {
	m.t.Helper()
	ref, err := m.c.VM.GetResidentOn(m.s, m.vm(vm))
	if err != nil {
		m.t.Fatal(err)
	}
	if ref == xapisim.NullRef {
		return ""
	}
	name, err := m.c.Host.GetNameLabel(m.s, ref)
	if err != nil {
		m.t.Fatal(err)
	}
	return name
}

// must fails the test on an XAPI error.
func (m *maint) must(what string, err error) {
	m.t.Helper()
	if err != nil {
		m.t.Fatalf("%s: %v", what, err)
	}
}

// wantCode checks an XAPI error code and its first parameter ("" = any).
func (m *maint) wantCode(what string, err error, code, param string) {
	m.t.Helper()
	got, p := errCode(err)
	if got != code || (param != "" && p != param) {
		m.t.Errorf("%s: got %v, want %s [%s]", what, err, code, param)
	}
}

// waitSlave waits until the host has booted, its master holds it live and
// it answers login with HOST_IS_SLAVE.
func (m *maint) waitSlave(name string) {
	m.t.Helper()
	waitFor(m.t, name+" back as a live slave", 30*time.Second, func() (bool, string) {
		h := hostState(m.l, name)
		if h.Role != xapisim.RoleSlave || !h.Live {
			return false, fmt.Sprintf("%+v", h)
		}
		_, err := client(m.t, m.l, name).Session.LoginWithPassword("root", "xenroot", "1.0", "xsha-test")
		code, _ := errCode(err)
		return code == "HOST_IS_SLAVE", fmt.Sprint(err)
	})
}

// waitEnabled waits until XAPI shows the host enabled.
func (m *maint) waitEnabled(name string) {
	m.t.Helper()
	waitFor(m.t, name+" enabled", 30*time.Second, func() (bool, string) {
		h := hostState(m.l, name)
		return h.Enabled, fmt.Sprintf("%+v", h)
	})
}

func (m *maint) enableHA() {
	m.t.Helper()
	srs, err := m.c.SR.GetByNameLabel(m.s, "MGMT-HA")
	m.must("MGMT-HA", err)
	m.must("pool.enable_ha", m.c.Pool.EnableHa(m.s, srs, map[string]string{"timeout": "180"}))
}

// csPrepare puts a host into CloudStack maintenance and waits for it.
func (m *maint) csPrepare(name string) {
	m.t.Helper()
	id, _, err := m.cs.Host.GetHostID(name)
	m.must("CloudStack host id", err)
	_, err = m.cs.Host.PrepareHostForMaintenance(m.cs.Host.NewPrepareHostForMaintenanceParams(id))
	m.must("prepareHostForMaintenance", err)
	waitFor(m.t, name+" in CloudStack maintenance", 30*time.Second, func() (bool, string) {
		h, _, err := m.cs.Host.GetHostByID(id)
		if err != nil {
			return false, err.Error()
		}
		return h.Resourcestate == "Maintenance", h.Resourcestate
	})
}

// csCancel ends CloudStack maintenance and waits for Enabled and Up.
func (m *maint) csCancel(name string) {
	m.t.Helper()
	id, _, err := m.cs.Host.GetHostID(name)
	m.must("CloudStack host id", err)
	_, err = m.cs.Host.CancelHostMaintenance(m.cs.Host.NewCancelHostMaintenanceParams(id))
	m.must("cancelHostMaintenance", err)
	waitFor(m.t, name+" Enabled and Up in CloudStack", 30*time.Second, func() (bool, string) {
		h, _, err := m.cs.Host.GetHostByID(id)
		if err != nil {
			return false, err.Error()
		}
		return h.Resourcestate == "Enabled" && h.State == "Up", h.Resourcestate + "/" + h.State
	})
}

// checkEnd asserts how every procedure ends: pool HA on, every host
// enabled and live, every guest running in XAPI and in CloudStack, and no
// guest left on the host that was worked on... unless it is where it was.
func (m *maint) checkEnd() {
	m.t.Helper()
	m.login("xs-a2")
	ps := poolState(m.l, "cluster-a")
	if !ps.HAEnabled {
		m.t.Errorf("pool HA is off at the end: %s", describeHosts(ps))
	}
	waitFor(m.t, "every host enabled", 30*time.Second, func() (bool, string) {
		ps := poolState(m.l, "cluster-a")
		for _, h := range ps.Hosts {
			if !h.Enabled || !h.Live {
				return false, describeHosts(ps)
			}
		}
		return true, ""
	})
	for _, name := range []string{"i-2-101-VM", "i-2-102-VM", "i-2-103-VM", "i-2-104-VM", "i-2-105-VM"} {
		st, err := m.c.VM.GetPowerState(m.s, m.vm(name))
		if err != nil || st != xenapi.VMPowerStateRunning || m.residentOn(name) == "" {
			m.t.Errorf("%s: %v %v on %q", name, st, err, m.residentOn(name))
		}
	}
	if m.cs == nil {
		return
	}
	vms, err := m.cs.VirtualMachine.ListVirtualMachines(m.cs.VirtualMachine.NewListVirtualMachinesParams())
	m.must("listVirtualMachines", err)
	for _, v := range vms.VirtualMachines {
		if v.State != "Running" {
			m.t.Errorf("CloudStack VM %s is %s", v.Name, v.State)
		}
	}
}

// TestRestartSlaveProcedure runs the seed's slave restart through the lab:
// CloudStack maintenance, pool.disable_ha, host.disable, host.evacuate,
// host.reboot, wait for the slave, pool.enable_ha, host.enable,
// cancelHostMaintenance.
func TestRestartSlaveProcedure(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			m := newMaint(t, maintenanceScenario(v), true)
			m.csPrepare("xs-a2")
			for _, vm := range []string{"i-2-101-VM", "i-2-102-VM"} {
				if on := m.residentOn(vm); on == "xs-a2" || on == "" {
					t.Errorf("after CloudStack maintenance %s is on %q", vm, on)
				}
			}
			a2 := m.host("xs-a2")
			m.must("pool.disable_ha", m.c.Pool.DisableHa(m.s))
			m.wantCode("reboot while enabled", m.c.Host.Reboot(m.s, a2), "HOST_NOT_DISABLED", "")
			m.must("host.disable", m.c.Host.Disable(m.s, a2))
			m.must("host.assert_can_evacuate", m.c.Host.AssertCanEvacuate(m.s, a2))
			m.must("host.evacuate", m.c.Host.Evacuate(m.s, a2))
			m.must("host.reboot", m.c.Host.Reboot(m.s, a2))
			// The master holds a rebooting slave dead at once
			// (mark_host_as_dead), so the forwarded enable answers
			// HOST_OFFLINE.
			m.wantCode("enable during the reboot", m.c.Host.Enable(m.s, a2), "HOST_OFFLINE", string(a2))
			if h := hostState(m.l, "xs-a2"); h.Live {
				t.Errorf("the master still holds a rebooting host live: %+v", h)
			}
			if ps := poolState(m.l, "cluster-a"); ps.Master != "xs-a1" {
				t.Errorf("a slave reboot moved the master: %s", describeHosts(ps))
			}
			m.waitSlave("xs-a2")
			m.enableHA()
			m.must("host.enable", m.c.Host.Enable(m.s, a2))
			m.csCancel("xs-a2")
			m.checkEnd()
		})
	}
}

// TestRestartMasterProcedure runs the seed's master restart: the master
// role moves to a slave with pool.designate_new_master (after pool HA is
// off), the operator follows it, then the old master is evacuated and
// rebooted like a slave.
func TestRestartMasterProcedure(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			m := newMaint(t, maintenanceScenario(v), true)
			m.csPrepare("xs-a1")
			a2 := m.host("xs-a2")
			m.wantCode("designate with HA on", m.c.Pool.DesignateNewMaster(m.s, a2), "HA_IS_ENABLED", "")
			m.must("pool.disable_ha", m.c.Pool.DisableHa(m.s))
			old := m.s
			m.must("pool.designate_new_master", m.c.Pool.DesignateNewMaster(m.s, a2))
			waitFor(t, "xs-a2 master", 30*time.Second, func() (bool, string) {
				ps := poolState(m.l, "cluster-a")
				return ps.Master == "xs-a2" && hostState(m.l, "xs-a2").Role == xapisim.RoleMaster, describeHosts(ps)
			})
			m.waitSlave("xs-a1")
			m.login("xs-a1")
			if _, err := m.c.Pool.GetAll(old); err == nil {
				t.Error("a session of the old master survived the handover")
			}
			a1 := m.host("xs-a1")
			m.waitEnabled("xs-a1")
			m.must("host.disable", m.c.Host.Disable(m.s, a1))
			m.must("host.evacuate", m.c.Host.Evacuate(m.s, a1))
			if on := m.residentOn("i-2-104-VM"); on == "xs-a1" {
				t.Errorf("i-2-104-VM still on the old master")
			}
			m.must("host.reboot", m.c.Host.Reboot(m.s, a1))
			m.waitSlave("xs-a1")
			m.enableHA()
			m.must("host.enable", m.c.Host.Enable(m.s, a1))
			m.csCancel("xs-a1")
			m.checkEnd()
			if ps := poolState(m.l, "cluster-a"); ps.Master != "xs-a2" {
				t.Errorf("master at the end: %s", describeHosts(ps))
			}
		})
	}
}

// TestExtendedShutdownProcedure runs the seed's extended shutdown and
// bring-back: host.shutdown with pool HA on for the others (a clean exit:
// no election, HA stays on), then pool.disable_ha, power-on, wait for the
// slave, pool.enable_ha, exit maintenance on both sides.
func TestExtendedShutdownProcedure(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			m := newMaint(t, maintenanceScenario(v), true)
			m.csPrepare("xs-a3")
			a3 := m.host("xs-a3")
			m.must("host.disable", m.c.Host.Disable(m.s, a3))
			// With pool HA on, the CloudStack guests (unprotected) must
			// have left already: the evacuation has nothing to do.
			m.must("host.evacuate", m.c.Host.Evacuate(m.s, a3))
			m.must("host.shutdown", m.c.Host.Shutdown(m.s, a3))
			waitFor(t, "xs-a3 off", 30*time.Second, func() (bool, string) {
				h := hostState(m.l, "xs-a3")
				return h.Power == "off", fmt.Sprintf("%+v", h)
			})
			// Wait longer than HA would take to react to a failure.
			time.Sleep(3 * time.Second)
			ps := poolState(m.l, "cluster-a")
			if !ps.HAEnabled || ps.Master != "xs-a1" || hostState(m.l, "xs-a1").Role != xapisim.RoleMaster {
				t.Fatalf("a clean shutdown disturbed pool HA: %s", describeHosts(ps))
			}
			m.must("pool.disable_ha", m.c.Pool.DisableHa(m.s))
			m.must("power-on", m.l.PowerOn("xs-a3"))
			m.waitSlave("xs-a3")
			m.enableHA()
			m.must("host.enable", m.c.Host.Enable(m.s, a3))
			m.csCancel("xs-a3")
			m.checkEnd()
		})
	}
}

// TestEvacuationErrors pins the evacuation checks on 6.2 and 7.1.
func TestEvacuationErrors(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			sc := maintenanceScenario(v)
			// xs-a4 is small: 8 GiB for Xen and dom0, room for one guest.
			sc.Pools[0].Hosts[3].MemoryMiB = 8<<10 + 4200
			m := newMaint(t, sc, false)
			a2, a3, a4 := m.host("xs-a2"), m.host("xs-a3"), m.host("xs-a4")
			vm101 := m.vm("i-2-101-VM")
			cannotMove := "VM_MISSING_PV_DRIVERS"
			if v != scenario.Version62 {
				cannotMove = "VM_LACKS_FEATURE"
			}

			// Pool HA on: unprotected guests cannot be evacuated.
			prevent, err := m.c.Host.GetVmsWhichPreventEvacuation(m.s, a2)
			m.must("get_vms_which_prevent_evacuation", err)
			if got := prevent[vm101]; len(got) != 2 || got[0] != "HOST_NOT_ENOUGH_FREE_MEMORY" || got[1] != string(vm101) {
				t.Errorf("with HA on: %v", prevent)
			}
			err = m.c.Host.AssertCanEvacuate(m.s, a2)
			if code, p := errCode(err); code != "CANNOT_EVACUATE_HOST" || !strings.Contains(p, "HOST_NOT_ENOUGH_FREE_MEMORY,"+string(vm101)) {
				t.Errorf("assert_can_evacuate with HA on: %v", err)
			}
			m.wantCode("evacuate with HA on", m.c.Host.Evacuate(m.s, a2), "HOST_NOT_ENOUGH_FREE_MEMORY", string(vm101))
			if m.residentOn("i-2-101-VM") != "xs-a2" || m.residentOn("i-2-102-VM") != "xs-a2" {
				t.Error("a failed evacuation moved a VM")
			}
			m.must("pool.disable_ha", m.c.Pool.DisableHa(m.s))

			// A VM that cannot migrate.
			m.must("fault", m.l.SetVMMigrationFault("i-2-101-VM", true))
			prevent, err = m.c.Host.GetVmsWhichPreventEvacuation(m.s, a2)
			m.must("get_vms_which_prevent_evacuation", err)
			if len(prevent) != 1 || len(prevent[vm101]) != 2 || prevent[vm101][0] != cannotMove {
				t.Errorf("with a VM that cannot move: %v", prevent)
			}
			m.wantCode("pool_migrate of a VM that cannot move", m.c.VM.PoolMigrate(m.s, vm101, a3, map[string]string{"live": "true"}), cannotMove, string(vm101))
			m.wantCode("evacuate with a VM that cannot move", m.c.Host.Evacuate(m.s, a2), cannotMove, string(vm101))
			m.must("fault off", m.l.SetVMMigrationFault("i-2-101-VM", false))

			// Memory: xs-a4 has room for no second guest.
			err = m.c.VM.PoolMigrate(m.s, vm101, a4, map[string]string{"live": "true"})
			m.wantCode("pool_migrate to a full host", err, "HOST_NOT_ENOUGH_FREE_MEMORY", "")
			// Only enabled hosts are targets.
			m.must("disable xs-a3", m.c.Host.Disable(m.s, a3))
			m.wantCode("pool_migrate to a disabled host", m.c.VM.PoolMigrate(m.s, vm101, a3, nil), "HOST_DISABLED", string(a3))
			a1 := m.host("xs-a1")
			m.must("disable xs-a1", m.c.Host.Disable(m.s, a1))
			// xs-a4 alone cannot take both guests of xs-a2.
			err = m.c.Host.AssertCanEvacuate(m.s, a2)
			if code, p := errCode(err); code != "CANNOT_EVACUATE_HOST" || !strings.Contains(p, "HOST_NOT_ENOUGH_FREE_MEMORY") {
				t.Errorf("assert_can_evacuate without room: %v", err)
			}
			m.must("disable xs-a4", m.c.Host.Disable(m.s, a4))
			m.wantCode("evacuate with no enabled host", m.c.Host.Evacuate(m.s, a2), "NO_HOSTS_AVAILABLE", "")
			// VM.pool_migrate works and resident_on follows.
			m.must("enable xs-a3", m.c.Host.Enable(m.s, a3))
			m.must("VM.pool_migrate", m.c.VM.PoolMigrate(m.s, vm101, a3, map[string]string{"live": "true"}))
			if on := m.residentOn("i-2-101-VM"); on != "xs-a3" {
				t.Errorf("after pool_migrate i-2-101-VM is on %q", on)
			}
			// host.shutdown of an enabled host; of an offline one.
			m.wantCode("shutdown while enabled", m.c.Host.Shutdown(m.s, a3), "HOST_NOT_DISABLED", "")
		})
	}
}

// TestRebootingTheMaster: with pool HA off the master comes back as master
// and nobody is elected; with pool HA on its clean exit makes the others
// elect a new master, and it returns as a slave.
func TestRebootingTheMaster(t *testing.T) {
	for _, haOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("ha=%v", haOn), func(t *testing.T) {
			t.Parallel()
			sc := maintenanceScenario(scenario.Version62)
			sc.Pools[0].HAEnabled = haOn
			m := newMaint(t, sc, false)
			a1 := m.host("xs-a1")
			m.must("host.disable", m.c.Host.Disable(m.s, a1))
			m.must("host.reboot", m.c.Host.Reboot(m.s, a1))
			// Until its power goes off, the master answers for itself:
			// host_disabled_until_reboot is set.
			m.wantCode("enable during the reboot", m.c.Host.Enable(m.s, a1), "HOST_DISABLED_UNTIL_REBOOT", "")
			waitFor(t, "xs-a1 down", 30*time.Second, func() (bool, string) {
				h := hostState(m.l, "xs-a1")
				return h.Power != "on" || h.Role == xapisim.RoleBooting, h.Role
			})
			if !haOn {
				waitFor(t, "xs-a1 master again", 30*time.Second, func() (bool, string) {
					ps := poolState(m.l, "cluster-a")
					return ps.Master == "xs-a1" && hostState(m.l, "xs-a1").Role == xapisim.RoleMaster, describeHosts(ps)
				})
				m.login("xs-a1")
				m.waitEnabled("xs-a1")
				return
			}
			waitFor(t, "a new master", 30*time.Second, func() (bool, string) {
				ps := poolState(m.l, "cluster-a")
				return ps.Master != "xs-a1" && hostState(m.l, ps.Master).Role == xapisim.RoleMaster, describeHosts(ps)
			})
			m.waitSlave("xs-a1")
			if ps := poolState(m.l, "cluster-a"); !ps.HAEnabled {
				t.Errorf("pool HA off after the master's clean reboot: %s", describeHosts(ps))
			}
			m.waitEnabled("xs-a1")
		})
	}
}

// TestHeldReboot: a held boot keeps a rebooted host off until released.
func TestHeldReboot(t *testing.T) {
	t.Parallel()
	m := newMaint(t, maintenanceScenario(scenario.Version71), false)
	a4 := m.host("xs-a4")
	m.must("pool.disable_ha", m.c.Pool.DisableHa(m.s))
	m.must("hold", m.l.HoldBoot("xs-a4"))
	m.must("host.disable", m.c.Host.Disable(m.s, a4))
	m.must("host.evacuate", m.c.Host.Evacuate(m.s, a4))
	m.must("host.reboot", m.c.Host.Reboot(m.s, a4))
	waitFor(t, "xs-a4 off", 30*time.Second, func() (bool, string) {
		return hostState(m.l, "xs-a4").Power == "off", ""
	})
	time.Sleep(3 * time.Second) // more than the scaled boot time
	if h := hostState(m.l, "xs-a4"); h.Power != "off" {
		t.Fatalf("a held reboot booted: %+v", h)
	}
	m.wantCode("enable while held", m.c.Host.Enable(m.s, a4), "HOST_OFFLINE", string(a4))
	m.must("release", m.l.ReleaseBoot("xs-a4"))
	m.waitSlave("xs-a4")
	m.waitEnabled("xs-a4")
}

// TestMaintenanceControlRoutes pins the migration-fault and boot-hold
// routes and the Migrator the CloudStack lab calls.
func TestMaintenanceControlRoutes(t *testing.T) {
	t.Parallel()
	l := startLab(t, Options{Scenario: fastScenario(0.01), ControlListen: "127.0.0.1:0", CloudStackListen: "127.0.0.1:0"})
	base := l.ControlURL()
	for _, tc := range []struct {
		path, body string
		code       int
	}{
		{"/v1/vms/i-2-101-VM/migration-fault", `{"fail":true}`, 200},
		{"/v1/vms/i-2-101-VM/migration-fault", `{"fial":true}`, 400},
		{"/v1/vms/nope/migration-fault", `{"fail":true}`, 404},
		{"/v1/cloudstack/vms/i-2-102-VM/migration-fault", `{"fail":true}`, 200},
		{"/v1/cloudstack/vms/win2008r2-02/migration-fault", `{"fail":false}`, 200},
		{"/v1/cloudstack/vms/nope/migration-fault", `{"fail":true}`, 404},
		{"/v1/cloudstack/vms/i-2-102-VM/migration-fault", `{}`, 400},
		{"/v1/hosts/xs-a4/boot-hold", "", 200},
		{"/v1/hosts/nope/boot-hold", "", 404},
		{"/v1/hosts/xs-a3/boot-release", "", 200},
	} {
		code, body := doJSON(t, "POST", base+tc.path, tc.body)
		if code != tc.code {
			t.Errorf("POST %s %s: %d %v, want %d", tc.path, tc.body, code, body, tc.code)
		}
	}
	if h := hostState(l, "xs-a4"); !h.BootHeld {
		t.Errorf("xs-a4 after boot-hold: %+v", h)
	}
	// CloudStack migrates through XAPI: a VM that cannot move there
	// cannot move for CloudStack either.
	in := infra{l}
	if err := in.MigrateVM("i-2-101-VM", "xs-a3"); !errors.Is(err, xapisim.ErrConflict) {
		t.Errorf("MigrateVM of a VM that cannot move: %v", err)
	}
	for _, tc := range []struct{ vm, host string }{{"nope", "xs-a3"}, {"i-2-102-VM", "xs-b3"}, {"i-2-102-VM", "nope"}} {
		if err := in.MigrateVM(tc.vm, tc.host); !errors.Is(err, xapisim.ErrNotFound) {
			t.Errorf("MigrateVM(%s, %s): %v", tc.vm, tc.host, err)
		}
	}
	if err := in.MigrateVM("i-2-102-VM", "xs-a3"); err != nil {
		t.Fatalf("MigrateVM: %v", err)
	}
	c, s, _ := loginPool(t, l, "xs-a1")
	vm, _ := c.VM.GetByNameLabel(s, "i-2-102-VM")
	on, _ := c.VM.GetResidentOn(s, vm[0])
	if name, _ := c.Host.GetNameLabel(s, on); name != "xs-a3" {
		t.Errorf("after MigrateVM i-2-102-VM is on %q", name)
	}
	// MigrateVM refuses a host the master holds dead.
	if err := l.Isolate("xs-a4"); err != nil {
		t.Fatal(err)
	}
	if err := in.MigrateVM("i-2-103-VM", "xs-a4"); !errors.Is(err, xapisim.ErrConflict) {
		t.Errorf("MigrateVM to an unreachable host: %v", err)
	}

	noCS := startLab(t, Options{Scenario: fastScenario(0.01), ControlListen: "127.0.0.1:0"})
	if code, _ := doJSON(t, "POST", noCS.ControlURL()+"/v1/cloudstack/vms/i-2-101-VM/migration-fault", `{"fail":true}`); code != 503 {
		t.Errorf("CloudStack migration fault without CloudStack: %d, want 503", code)
	}
}

// TestMaintenanceRefusals pins the refusals of host.disable, host.reboot
// and pool.designate_new_master on 6.2 and 7.1.
func TestMaintenanceRefusals(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			sc := maintenanceScenario(v)
			// One protected guest too big for two hosts: with one failure
			// to tolerate, disabling a host would break the plan.
			for i := range sc.Pools[0].VMs {
				if sc.Pools[0].VMs[i].Name == "i-2-104-VM" {
					sc.Pools[0].VMs[i].HARestartPriority = "restart"
					sc.Pools[0].VMs[i].MemoryMiB = 600 << 10
				}
			}
			m := newMaint(t, sc, false)
			a1, a2, a3 := m.host("xs-a1"), m.host("xs-a2"), m.host("xs-a3")
			pool, err := m.c.Pool.GetAll(m.s)
			m.must("pool.get_all", err)
			m.must("tolerate 1", m.c.Pool.SetHaHostFailuresToTolerate(m.s, pool[0], 1))
			m.wantCode("disable breaking the plan", m.c.Host.Disable(m.s, a3), "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN", "")
			m.wantCode("evacuate breaking the plan", m.c.Host.Evacuate(m.s, a3), "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN", "")
			m.must("tolerate 0", m.c.Pool.SetHaHostFailuresToTolerate(m.s, pool[0], 0))

			// Rebooting with HA on needs the statefile.
			m.must("unplug", m.l.UnplugHeartbeatSR("xs-a3"))
			m.must("host.disable", m.c.Host.Disable(m.s, a3))
			m.wantCode("reboot without the statefile", m.c.Host.Reboot(m.s, a3), "HA_LOST_STATEFILE", "")
			m.must("plug", m.l.PlugHeartbeatSR("xs-a3"))
			m.must("host.enable", m.c.Host.Enable(m.s, a3))

			// One host operation at a time.
			m.must("host.disable", m.c.Host.Disable(m.s, a2))
			m.must("host.reboot", m.c.Host.Reboot(m.s, a2))
			m.wantCode("second reboot", m.c.Host.Reboot(m.s, a2), "OTHER_OPERATION_IN_PROGRESS", "host")

			// designate_new_master: forwarded to the target first.
			m.wantCode("designate a rebooting host", m.c.Pool.DesignateNewMaster(m.s, a2), "HOST_OFFLINE", string(a2))
			m.wantCode("designate with HA on", m.c.Pool.DesignateNewMaster(m.s, a3), "HA_IS_ENABLED", "")
			m.must("designate the master", m.c.Pool.DesignateNewMaster(m.s, a1))
			m.waitSlave("xs-a2")
			m.must("pool.disable_ha", m.c.Pool.DisableHa(m.s))
			m.must("power-off", m.l.PowerOff("xs-a4"))
			// Phase 1 cannot reach xs-a4: nothing changes.
			m.wantCode("designate with a host off", m.c.Pool.DesignateNewMaster(m.s, a3), "INTERNAL_ERROR", "")
			if ps := poolState(m.l, "cluster-a"); ps.Master != "xs-a1" {
				t.Errorf("a failed designate moved the master: %s", describeHosts(ps))
			}
			if _, err := m.c.Pool.GetAll(m.s); err != nil {
				t.Errorf("the session died with a failed designate: %v", err)
			}
		})
	}
}

// TestXAPIRestartKeepsHostDisabledUntilReboot: an xapi restart between
// host.reboot and the shutdown kills the pending shutdown; the host comes
// back live but host_disabled_until_reboot keeps it disabled, and
// host.enable says so.
func TestXAPIRestartKeepsHostDisabledUntilReboot(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			sc := maintenanceScenario(v)
			sc.Pools[0].HAEnabled = false
			sc.Durations.HostShutdown = scenario.Duration(time.Hour)
			sc.Durations.HostReenable = scenario.Duration(time.Second)
			m := newMaint(t, sc, false)
			a4 := m.host("xs-a4")
			m.must("host.disable", m.c.Host.Disable(m.s, a4))
			m.must("host.evacuate", m.c.Host.Evacuate(m.s, a4))
			m.must("host.reboot", m.c.Host.Reboot(m.s, a4))
			if h := hostState(m.l, "xs-a4"); h.Operation != "reboot" || h.Live {
				t.Errorf("right after host.reboot: %+v", h)
			}
			m.must("xapi restart", m.l.RestartXAPI("xs-a4"))
			m.waitSlave("xs-a4")
			time.Sleep(time.Second) // 100 times the scaled host_reenable
			if h := hostState(m.l, "xs-a4"); h.Enabled || h.Operation != "" || h.Power != "on" {
				t.Errorf("after the xapi restart: %+v", h)
			}
			m.wantCode("enable", m.c.Host.Enable(m.s, a4), "HOST_DISABLED_UNTIL_REBOOT", "")
		})
	}
}

// TestCloudStackHARestartStartsVMsInXAPI: after a master's power loss with
// pool HA on, CloudStack restarts its HA-enabled VMs through XAPI
// (VM.start_on from CitrixResourceBase's StartCommand), so XAPI shows each
// of them running where CloudStack says, and the others halted.
func TestCloudStackHARestartStartsVMsInXAPI(t *testing.T) {
	t.Parallel()
	m := newMaint(t, maintenanceScenario(scenario.Version62), true)
	list := func() []*cloudstack.VirtualMachine {
		vms, err := m.cs.VirtualMachine.ListVirtualMachines(m.cs.VirtualMachine.NewListVirtualMachinesParams())
		m.must("listVirtualMachines", err)
		return vms.VirtualMachines
	}
	onA1 := map[string]bool{}
	for _, v := range list() {
		if v.Hostname == "xs-a1" {
			onA1[v.Name] = v.Haenable
		}
	}
	if len(onA1) == 0 {
		t.Fatal("no CloudStack VM on xs-a1")
	}
	if err := m.l.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "CloudStack's HA restarts done", 60*time.Second, func() (bool, string) {
		for _, v := range list() {
			if ha, ok := onA1[v.Name]; ok && (ha && v.State != "Running" || !ha && v.State != "Stopped") {
				return false, v.Name + " " + v.State
			}
		}
		return true, ""
	})
	m.login("xs-a2")
	for _, v := range list() {
		ha, ok := onA1[v.Name]
		if !ok {
			continue
		}
		st, err := m.c.VM.GetPowerState(m.s, m.vm(v.Instancename))
		m.must("VM.get_power_state", err)
		switch {
		case ha && (st != xenapi.VMPowerStateRunning || m.residentOn(v.Instancename) != v.Hostname):
			t.Errorf("HA-enabled %s: CloudStack Running on %s, XAPI %s on %q", v.Name, v.Hostname, st, m.residentOn(v.Instancename))
		case !ha && st != xenapi.VMPowerStateHalted:
			t.Errorf("%s without HA: XAPI %s, want Halted", v.Name, st)
		}
	}
}
