package xapi

import (
	"context"
	"slices"
	"testing"

	"xsha/sim/scenario"
)

// TestMaintenanceWritesOnLab drives the planned-maintenance writes through
// the Client against the lab on 6.2 and 7.1: a blocked evacuation names
// the VM with XAPI's reason, a reboot of an enabled host is refused
// (HOST_NOT_DISABLED, xapi_host.ml), an evacuation empties the host, a
// rebooted slave comes back enabled by itself (host.disable is held in
// memory only), and the Client follows a designated master.
func TestMaintenanceWritesOnLab(t *testing.T) {
	for _, tc := range []struct{ version, hotfix, fault string }{
		{scenario.Version62, "XS62ESP1004", "VM_MISSING_PV_DRIVERS"},
		{scenario.Version71, "XS71E001", "VM_LACKS_FEATURE"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			t.Parallel()
			sc := scenario.Default()
			sc.TimeScale = 0.01
			sc.Pools = sc.Pools[:1]
			sc.Pools[0].ProductVersion = tc.version
			sc.Pools[0].Hotfixes = []string{tc.hotfix}
			l, pc, log := startLab(t, sc, "cluster-a")
			c := NewClient(pc, ClientOptions{Logger: log})
			ctx := context.Background()
			defer c.Close(ctx)
			uuid := func(name string) string {
				t.Helper()
				s, err := c.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				h, ok := s.Host(name)
				if !ok {
					t.Fatalf("no host %s", name)
				}
				return h.UUID
			}
			a1, a2 := uuid("xs-a1"), uuid("xs-a2")

			vms, err := c.ResidentVMs(ctx, a1)
			if err != nil || len(vms) != 9 || !slices.Contains(vms, "i-2-104-VM") || slices.Contains(vms, "Control domain on host: xs-a1") {
				t.Fatalf("VMs on xs-a1: %v %v, want 5 guests, 2 routers and 2 system VMs", vms, err)
			}
			if err := l.SetVMMigrationFault("i-2-104-VM", true); err != nil {
				t.Fatal(err)
			}
			b, err := c.EvacuationBlockers(ctx, a1)
			if err != nil || len(b) != 1 || b[0].VM != "i-2-104-VM" || len(b[0].Reason) == 0 || b[0].Reason[0] != tc.fault {
				t.Errorf("blockers: %+v %v, want i-2-104-VM with %s", b, err, tc.fault)
			}
			if err := l.SetVMMigrationFault("i-2-104-VM", false); err != nil {
				t.Fatal(err)
			}
			if b, err := c.EvacuationBlockers(ctx, a1); err != nil || len(b) != 0 {
				t.Errorf("blockers without the fault: %+v %v", b, err)
			}

			if err := c.RebootHost(ctx, a2); ErrorCode(err) != "HOST_NOT_DISABLED" {
				t.Errorf("reboot of an enabled host: %v, want HOST_NOT_DISABLED", err)
			}
			if err := c.DisableHost(ctx, a1); err != nil {
				t.Fatal(err)
			}
			if err := c.EvacuateHost(ctx, a1); err != nil {
				t.Fatal(err)
			}
			if g, err := c.ResidentVMs(ctx, a1); err != nil || len(g) != 0 {
				t.Errorf("guests left on xs-a1 after the evacuation: %v %v", g, err)
			}
			if err := c.EnableHost(ctx, a1); err != nil {
				t.Fatal(err)
			}

			if err := c.DisableHost(ctx, a2); err != nil {
				t.Fatal(err)
			}
			if err := c.RebootHost(ctx, a2); err != nil {
				t.Fatal(err)
			}
			if err := c.EnableHost(ctx, a2); ErrorCode(err) != "HOST_OFFLINE" {
				t.Errorf("enable during the reboot: %v, want HOST_OFFLINE", err)
			}
			waitFor(t, "xs-a2 back as a live, enabled slave", func() bool {
				s, err := c.Read(ctx)
				if err != nil {
					return false
				}
				h, _ := s.Host("xs-a2")
				return h.Live && h.Enabled && h.Probe.Role == RoleSlave
			})
			if err := c.EnableHost(ctx, a2); err != nil {
				t.Errorf("host.enable on a host already enabled: %v", err)
			}

			if err := c.DesignateNewMaster(ctx, a2); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the client on the new master xs-a2", func() bool {
				s, err := c.Read(ctx)
				if err != nil {
					return false
				}
				m, _ := s.Master()
				return m.Name == "xs-a2" && m.Probe.Role == RoleMaster
			})
		})
	}
}
