package lab

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	xenapi "github.com/terra-farm/go-xen-api-client"

	"xsha/sim/scenario"
	"xsha/sim/xapisim"
)

// haScenario is the seed's test bed at scale (1 s of XenServer time takes
// scale seconds), with hosts staying disabled after a master change for
// 2 s of real time, long enough to be observed.
func haScenario(scale float64) *scenario.Scenario {
	sc := fastScenario(scale)
	sc.Durations.HostReenable = scenario.Duration(float64(2*time.Second) / scale)
	return sc
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func poolState(l *Lab, pool string) xapisim.PoolState {
	for _, p := range l.State().Pools {
		if p.Name == pool {
			return p
		}
	}
	return xapisim.PoolState{}
}

func hostState(l *Lab, host string) xapisim.HostState {
	for _, p := range l.State().Pools {
		for _, h := range p.Hosts {
			if h.Name == host {
				return h
			}
		}
	}
	return xapisim.HostState{}
}

func describeHosts(p xapisim.PoolState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "master=%s ha=%v:", p.Master, p.HAEnabled)
	for _, h := range p.Hosts {
		fmt.Fprintf(&b, " %s(%s live=%v enabled=%v %s)", h.Name, h.Role, h.Live, h.Enabled, h.EmergencyError)
	}
	return b.String()
}

// urlFor is the XAPI URL of an address on the lab's port.
func urlFor(l *Lab, address string) string {
	scheme := "https"
	if l.CAFile() == "" {
		scheme = "http"
	}
	return scheme + "://" + net.JoinHostPort(address, strconv.Itoa(l.XAPIPort())) + "/"
}

// loginPool logs in with terra-farm through any member, following
// HOST_IS_SLAVE once, as XenCenter, CloudStack and XO do.
func loginPool(t *testing.T, l *Lab, via string) (*xenapi.Client, xenapi.SessionRef, string) {
	t.Helper()
	addr := hostState(l, via).Address
	for range 2 {
		c := clientURL(t, l, urlFor(l, addr))
		s, err := c.Session.LoginWithPassword("root", "xenroot", "1.0", "xsha-test")
		if err == nil {
			return c, s, addr
		}
		code, master := errCode(err)
		if code != "HOST_IS_SLAVE" {
			t.Fatalf("login via %s: %v", addr, err)
		}
		addr = master
	}
	t.Fatalf("login via %s: redirected twice", via)
	return nil, "", ""
}

func enablePoolHA(t *testing.T, l *Lab, via string, config map[string]string) {
	t.Helper()
	c, s, _ := loginPool(t, l, via)
	srs, err := c.SR.GetByNameLabel(s, "MGMT-HA")
	if err != nil || len(srs) != 1 {
		t.Fatalf("MGMT-HA: %v %v", srs, err)
	}
	if err := c.Pool.EnableHa(s, srs, config); err != nil {
		t.Fatalf("enable_ha: %v", err)
	}
	c.Session.Logout(s) //nolint:errcheck // best effort
}

// TestSeedFailureStory replays the seed: two clusters lose their masters at
// the same time; without pool HA nobody takes over, with pool HA a slave is
// elected; the old master comes back into emergency mode and is recovered
// with the seed's manual steps through XAPI (disable pool HA, slave-local
// login + emergency_ha_disable on it, wait until it is a slave, re-enable
// pool HA), all with the unchanged terra-farm client.
func TestSeedFailureStory(t *testing.T) {
	t.Parallel()
	l := startLab(t, Options{Scenario: haScenario(0.005)})
	const electionWithin = 20 * time.Second

	// cluster-b gets pool HA as the seed's script does; cluster-a stays
	// as XS62ESP1004 leaves it.
	enablePoolHA(t, l, "xs-b3", map[string]string{"timeout": "60"})
	if b := poolState(l, "cluster-b"); !b.HAEnabled || b.HATimeoutSeconds != 60 {
		t.Fatalf("cluster-b after enable_ha: %s", describeHosts(b))
	}
	for _, h := range poolState(l, "cluster-b").Hosts {
		if !h.HAArmed {
			t.Errorf("%s not armed after enable_ha", h.Name)
		}
	}

	// Pool master failure on both clusters.
	for _, h := range []string{"xs-a1", "xs-b1"} {
		if err := l.PowerOff(h); err != nil {
			t.Fatal(err)
		}
	}
	var newMaster string
	waitFor(t, "an elected master in cluster-b", electionWithin, func() (bool, string) {
		b := poolState(l, "cluster-b")
		for _, h := range b.Hosts {
			if h.Name == b.Master && h.Role == xapisim.RoleMaster && h.Name != "xs-b1" {
				newMaster = h.Name
				return true, ""
			}
		}
		return false, describeHosts(b)
	})
	// Meanwhile cluster-a has no master: its slaves still name the dead one.
	a := poolState(l, "cluster-a")
	if a.Master != "xs-a1" {
		t.Errorf("cluster-a master %q, want the dead xs-a1", a.Master)
	}
	for _, h := range a.Hosts[1:] {
		if h.Role != xapisim.RoleSlave {
			t.Errorf("cluster-a %s: role %s, want slave", h.Name, h.Role)
		}
		_, err := client(t, l, h.Name).Session.LoginWithPassword("root", "xenroot", "1.0", "")
		if code, addr := errCode(err); code != "HOST_IS_SLAVE" || addr != "127.0.1.1" {
			t.Errorf("login on %s: %v, want HOST_IS_SLAVE 127.0.1.1", h.Name, err)
		}
	}
	_, err := client(t, l, "xs-a1").Session.LoginWithPassword("root", "xenroot", "1.0", "")
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("login on the powered-off master: %v, want connection refused", err)
	}

	// The new master disabled every host; they re-enable after a while.
	b := poolState(l, "cluster-b")
	for _, h := range b.Hosts {
		if h.Enabled {
			t.Errorf("%s enabled right after the master change", h.Name)
		}
	}
	waitFor(t, "live hosts re-enabled", 30*time.Second, func() (bool, string) {
		b := poolState(l, "cluster-b")
		for _, h := range b.Hosts {
			if h.Name != "xs-b1" && (!h.Enabled || !h.Live) {
				return false, describeHosts(b)
			}
		}
		return true, ""
	})
	// terra-farm follows HOST_IS_SLAVE from any survivor to the new master,
	// which has marked the old one dead and its guests halted.
	c, s, addr := loginPool(t, l, "xs-b2")
	if addr != hostState(l, newMaster).Address {
		t.Errorf("logged in at %s, want the new master %s", addr, newMaster)
	}
	pools, err := c.Pool.GetAllRecords(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pools {
		if name, _ := c.Host.GetNameLabel(s, p.Master); name != newMaster {
			t.Errorf("pool.master %s, want %s", name, newMaster)
		}
	}
	oldRef, _ := c.Host.GetByNameLabel(s, "xs-b1")
	oldMetrics, _ := c.Host.GetMetrics(s, oldRef[0])
	if live, _ := c.HostMetrics.GetLive(s, oldMetrics); live {
		t.Error("old master still live")
	}
	vms, err := c.VM.GetAllRecords(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, vm := range vms {
		if strings.HasPrefix(vm.NameLabel, "i-2-") && vm.PowerState != xenapi.VMPowerStateHalted {
			t.Errorf("guest %s %s after its host failed", vm.NameLabel, vm.PowerState)
		}
	}

	// The old master is powered back on: emergency mode, with its stored
	// error for every normal call, never HOST_IN_EMERGENCY_MODE.
	if err := l.PowerOn("xs-b1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-b1 in emergency mode", 30*time.Second, func() (bool, string) {
		h := hostState(l, "xs-b1")
		return h.Role == xapisim.RoleEmergency, h.Role
	})
	old := client(t, l, "xs-b1")
	_, err = old.Session.LoginWithPassword("root", "xenroot", "1.0", "")
	if code, _ := errCode(err); code != scenario.ErrHeartbeatDaemonStartupFailed {
		t.Fatalf("login on the old master: %v, want %s", err, scenario.ErrHeartbeatDaemonStartupFailed)
	}
	local, err := old.Session.SlaveLocalLoginWithPassword("root", "xenroot")
	if err != nil {
		t.Fatalf("slave-local login on the old master: %v", err)
	}
	if _, err := old.Pool.GetAll(local); xenCodeOf(err) != scenario.ErrHeartbeatDaemonStartupFailed {
		t.Errorf("pool.get_all with a local session in emergency mode: %v", err)
	}

	// Recovery, the seed's way: pool HA off first ...
	if err := c.Pool.DisableHa(s); err != nil {
		t.Fatalf("disable_ha: %v", err)
	}
	if poolState(l, "cluster-b").HAEnabled {
		t.Fatal("pool HA still on")
	}
	if h := hostState(l, "xs-b1"); h.Role != xapisim.RoleEmergency {
		t.Fatalf("xs-b1 left emergency mode without emergency_ha_disable: %s", h.Role)
	}
	// ... then xe host-emergency-ha-disable --force on the host. terra-farm
	// sends the 7.x form with `soft`, which 6.2 rejects; the 6.2 call has
	// no argument.
	err = old.Host.EmergencyHaDisable(local, false)
	if code := xenCodeOf(err); code != "MESSAGE_PARAMETER_COUNT_MISMATCH" {
		t.Errorf("emergency_ha_disable(soft) on 6.2: %v, want MESSAGE_PARAMETER_COUNT_MISMATCH", err)
	}
	if _, err := old.APICall("host.emergency_ha_disable", string(local)); err != nil {
		t.Fatalf("emergency_ha_disable: %v", err)
	}
	// After a short delay it reconnects as a slave of the new master.
	waitFor(t, "xs-b1 a slave again", 30*time.Second, func() (bool, string) {
		h := hostState(l, "xs-b1")
		return h.Role == xapisim.RoleSlave && h.Live && h.Enabled, fmt.Sprintf("%+v", h)
	})
	_, err = clientURL(t, l, urlFor(l, "127.0.2.1")).Session.LoginWithPassword("root", "xenroot", "1.0", "")
	if code, addr := errCode(err); code != "HOST_IS_SLAVE" || addr != hostState(l, newMaster).Address {
		t.Errorf("login on the recovered host: %v, want HOST_IS_SLAVE %s", err, hostState(l, newMaster).Address)
	}
	// And pool HA goes back on.
	enablePoolHA(t, l, "xs-b1", map[string]string{"timeout": "60"})
	b = poolState(l, "cluster-b")
	if !b.HAEnabled || b.Master != newMaster {
		t.Errorf("after recovery: %s", describeHosts(b))
	}
	for _, h := range b.Hosts {
		if !h.HAArmed || !h.Live {
			t.Errorf("after recovery %s: armed=%v live=%v", h.Name, h.HAArmed, h.Live)
		}
	}
}

func xenCodeOf(err error) string {
	code, _ := errCode(err)
	return code
}

// TestEmergencyHADisableBeforePoolHADisable is the wrong order: disarming
// the returning old master while pool HA is still on leaves it in
// HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED until pool HA is disabled.
func TestEmergencyHADisableBeforePoolHADisable(t *testing.T) {
	t.Parallel()
	sc := haScenario(0.01)
	sc.Pools[1].HAEnabled = true
	l := startLab(t, Options{Scenario: sc})
	if err := l.PowerOff("xs-b1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new master", 20*time.Second, func() (bool, string) {
		b := poolState(l, "cluster-b")
		return b.Master != "xs-b1" && hostState(l, b.Master).Role == xapisim.RoleMaster, describeHosts(b)
	})
	if err := l.PowerOn("xs-b1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-b1 in emergency mode", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-b1")
		return h.Role == xapisim.RoleEmergency, h.Role
	})
	old := client(t, l, "xs-b1")
	local, err := old.Session.SlaveLocalLoginWithPassword("root", "xenroot")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.APICall("host.emergency_ha_disable", string(local)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-b1")
		return h.EmergencyError == "HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED", fmt.Sprintf("%+v", h)
	})
	_, err = client(t, l, "xs-b1").Session.LoginWithPassword("root", "xenroot", "", "")
	if code := xenCodeOf(err); code != "HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED" {
		t.Errorf("login: %v", err)
	}
	// Calling it again: the host is no longer armed.
	local, err = client(t, l, "xs-b1").Session.SlaveLocalLoginWithPassword("root", "xenroot")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, l, "xs-b1").APICall("host.emergency_ha_disable", string(local)); xenCodeOf(err) != "HA_NOT_ENABLED" {
		t.Errorf("second emergency_ha_disable: %v, want HA_NOT_ENABLED", err)
	}
	if err := l.DisablePoolHA("cluster-b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-b1 rejoined", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-b1")
		return h.Role == xapisim.RoleSlave && h.Live, fmt.Sprintf("%+v", h)
	})
}

// TestReturningSlaveWaitsForPoolHADisable: a slave that lost power while
// pool HA is on comes back answering HOST_IS_SLAVE but stays not live until
// pool HA is disabled.
func TestReturningSlaveWaitsForPoolHADisable(t *testing.T) {
	t.Parallel()
	sc := haScenario(0.01)
	sc.Pools[0].HAEnabled = true
	l := startLab(t, Options{Scenario: sc})
	if err := l.PowerOff("xs-a3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-a3 declared dead", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-a3")
		return !h.Live, fmt.Sprintf("%+v", h)
	})
	if err := l.PowerOn("xs-a3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-a3 up", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-a3")
		return h.Role == xapisim.RoleSlave, fmt.Sprintf("%+v", h)
	})
	_, err := client(t, l, "xs-a3").Session.LoginWithPassword("root", "xenroot", "", "")
	if code, addr := errCode(err); code != "HOST_IS_SLAVE" || addr != "127.0.1.1" {
		t.Errorf("login on returning slave: %v", err)
	}
	if h := hostState(l, "xs-a3"); h.Live || h.Enabled {
		t.Errorf("returning slave live=%v enabled=%v while pool HA is on", h.Live, h.Enabled)
	}
	// Disabling pool HA lets it join.
	c, s, _ := loginPool(t, l, "xs-a1")
	if err := c.Pool.DisableHa(s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-a3 joined", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-a3")
		return h.Live && h.Enabled, fmt.Sprintf("%+v", h)
	})
}

// TestSlaveLivenessWithoutHA: without pool HA the master keeps a dead
// slave live until host_assumed_dead has passed.
func TestSlaveLivenessWithoutHA(t *testing.T) {
	t.Parallel()
	sc := fastScenario(0.01)
	sc.Durations.HostAssumedDead = scenario.Duration(150 * time.Second)
	l := startLab(t, Options{Scenario: sc})
	if err := l.PowerOff("xs-a4"); err != nil {
		t.Fatal(err)
	}
	if h := hostState(l, "xs-a4"); !h.Live || h.Role != xapisim.RoleOff || h.Power != "off" {
		t.Errorf("right after power loss: %+v", h)
	}
	start := time.Now()
	waitFor(t, "xs-a4 dead", 20*time.Second, func() (bool, string) {
		return !hostState(l, "xs-a4").Live, ""
	})
	if el := time.Since(start); el < time.Second {
		t.Errorf("declared dead after %v, want about 1.5 s (150 s scaled)", el)
	}
	// enable_ha now refuses: HOST_OFFLINE [host ref].
	c, s, _ := loginPool(t, l, "xs-a1")
	srs, _ := c.SR.GetByNameLabel(s, "MGMT-HA")
	err := c.Pool.EnableHa(s, srs, nil)
	ref, _ := c.Host.GetByNameLabel(s, "xs-a4")
	if code, param := errCode(err); code != "HOST_OFFLINE" || param != string(ref[0]) {
		t.Errorf("enable_ha with a dead host: %v", err)
	}
	if err := l.PowerOn("xs-a4"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-a4 back", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-a4")
		return h.Live && h.Enabled && h.Role == xapisim.RoleSlave, fmt.Sprintf("%+v", h)
	})
}

// TestRecoveryOn71WithTerraFarm: on XenServer 7.x terra-farm's own
// Host.EmergencyHaDisable (with soft) is the right call.
func TestRecoveryOn71WithTerraFarm(t *testing.T) {
	t.Parallel()
	sc := fastScenario(0.01)
	sc.Pools = sc.Pools[:1]
	sc.Pools[0].ProductVersion = scenario.Version71
	sc.Pools[0].Hotfixes = []string{"XS71E001"}
	sc.Pools[0].HAEnabled = true
	sc.Pools[0].EmergencyError = scenario.ErrHostStillBooting
	l := startLab(t, Options{Scenario: sc})
	if err := l.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new master", 20*time.Second, func() (bool, string) {
		a := poolState(l, "cluster-a")
		return a.Master != "xs-a1" && hostState(l, a.Master).Role == xapisim.RoleMaster, describeHosts(a)
	})
	if err := l.PowerOn("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-a1 in emergency mode", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-a1")
		return h.Role == xapisim.RoleEmergency, h.Role
	})
	old := client(t, l, "xs-a1")
	if _, err := old.Session.LoginWithPassword("root", "xenroot", "", ""); xenCodeOf(err) != scenario.ErrHostStillBooting {
		t.Errorf("login on the old master: %v", err)
	}
	c, s, _ := loginPool(t, l, "xs-a2")
	if err := c.Pool.DisableHa(s); err != nil {
		t.Fatal(err)
	}
	local, err := old.Session.SlaveLocalLoginWithPassword("root", "xenroot")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Host.EmergencyHaDisable(local, false); err != nil {
		t.Fatalf("emergency_ha_disable: %v", err)
	}
	if err := old.Session.LocalLogout(local); err != nil {
		t.Errorf("local_logout: %v", err)
	}
	waitFor(t, "xs-a1 a slave", 20*time.Second, func() (bool, string) {
		h := hostState(l, "xs-a1")
		return h.Role == xapisim.RoleSlave && h.Live, fmt.Sprintf("%+v", h)
	})
}
