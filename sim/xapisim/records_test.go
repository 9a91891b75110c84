package xapisim_test

import (
	"fmt"
	"testing"

	xenapi "github.com/terra-farm/go-xen-api-client"

	"xsha/sim/scenario"
)

// scenario71 is the default test bed on XenServer 7.1.
func scenario71() *scenario.Scenario {
	sc := scenario.Default()
	for i := range sc.Pools {
		sc.Pools[i].ProductVersion = scenario.Version71
		sc.Pools[i].Hotfixes = []string{"XS71E001", "XS71E002"}
	}
	return sc
}

// TestTerraFarmReadsEveryRecord decodes every record of every simulated
// class with the unchanged terra-farm client, through get_all_records and
// get_record, on XenServer 6.2 and 7.1.
func TestTerraFarmReadsEveryRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   *scenario.Scenario
	}{
		{"6.2", scenario.Default()},
		{"7.1", scenario71()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPool(t, tc.sc, "cluster-a")
			c, s := tp.login(t, "xs-a1")
			counts := map[string]int{}
			check := func(class string, n int, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", class, err)
				}
				counts[class] = n
			}

			pools, err := c.Pool.GetAllRecords(s)
			check("pool", len(pools), err)
			for ref := range pools {
				_, err := c.Pool.GetRecord(s, ref)
				check("pool", len(pools), err)
			}
			hosts, err := c.Host.GetAllRecords(s)
			check("host", len(hosts), err)
			for ref, h := range hosts {
				if _, err := c.Host.GetRecord(s, ref); err != nil {
					t.Fatal(err)
				}
				if h.Address == "" || h.Metrics == "" || len(h.PBDs) == 0 {
					t.Errorf("host %s: address %q metrics %q PBDs %v", h.NameLabel, h.Address, h.Metrics, h.PBDs)
				}
			}
			metrics, err := c.HostMetrics.GetAllRecords(s)
			check("host_metrics", len(metrics), err)
			for ref := range metrics {
				if _, err := c.HostMetrics.GetRecord(s, ref); err != nil {
					t.Fatal(err)
				}
			}
			srs, err := c.SR.GetAllRecords(s)
			check("SR", len(srs), err)
			for ref := range srs {
				if _, err := c.SR.GetRecord(s, ref); err != nil {
					t.Fatal(err)
				}
			}
			pbds, err := c.PBD.GetAllRecords(s)
			check("PBD", len(pbds), err)
			for ref := range pbds {
				if _, err := c.PBD.GetRecord(s, ref); err != nil {
					t.Fatal(err)
				}
			}
			vdis, err := c.VDI.GetAllRecords(s)
			check("VDI", len(vdis), err)
			for ref := range vdis {
				if _, err := c.VDI.GetRecord(s, ref); err != nil {
					t.Fatal(err)
				}
			}
			vms, err := c.VM.GetAllRecords(s)
			check("VM", len(vms), err)
			for ref := range vms {
				if _, err := c.VM.GetRecord(s, ref); err != nil {
					t.Fatal(err)
				}
			}
			patches, err := c.PoolPatch.GetAllRecords(s)
			check("pool_patch", len(patches), err)
			for ref := range patches {
				if _, err := c.PoolPatch.GetRecord(s, ref); err != nil {
					t.Fatal(err)
				}
			}
			hps, err := c.HostPatch.GetAllRecords(s)
			check("host_patch", len(hps), err)
			for ref := range hps {
				if _, err := c.HostPatch.GetRecord(s, ref); err != nil {
					t.Fatal(err)
				}
			}
			updates, err := c.PoolUpdate.GetAllRecords(s)
			if tc.name == "6.2" {
				if code := xenCode(err); code != "MESSAGE_METHOD_UNKNOWN" {
					t.Errorf("pool_update on 6.2: got %v, want MESSAGE_METHOD_UNKNOWN", err)
				}
			} else {
				check("pool_update", len(updates), err)
				for ref := range updates {
					if _, err := c.PoolUpdate.GetRecord(s, ref); err != nil {
						t.Fatal(err)
					}
				}
			}

			// The default scenario: 4 hosts, 5 guests + 2 routers + 2 system
			// VMs + 4 control domains in cluster-a, MGMT-HA + primary + tools
			// + 4 local SRs.
			want := map[string]int{"pool": 1, "host": 4, "host_metrics": 4, "VM": 13, "SR": 7, "PBD": 4 + 4 + 4 + 4}
			if tc.name == "6.2" {
				want["pool_patch"] = 2
				want["host_patch"] = 8
			} else {
				want["pool_update"] = 2
			}
			for class, n := range want {
				if counts[class] != n {
					t.Errorf("%s: got %d records, want %d", class, counts[class], n)
				}
			}
			var guests, dom0 int
			for _, vm := range vms {
				if vm.IsControlDomain {
					dom0++
				} else if vm.PowerState == xenapi.VMPowerStateRunning {
					guests++
				}
			}
			if dom0 != 4 || guests != 9 {
				t.Errorf("VMs: %d control domains, %d running others; want 4 and 9", dom0, guests)
			}
		})
	}
}

// TestHotfixDetectionAsCloudStackDoes finds XS62ESP1004 by its fixed uuid
// and follows host.patches, and checks API version 2.2.
func TestHotfixDetectionAsCloudStackDoes(t *testing.T) {
	tp := newTestPool(t, scenario.Default(), "cluster-b")
	c, s := tp.login(t, "xs-b1")
	patch, err := c.PoolPatch.GetByUUID(s, "996dd2e7-ad95-49cc-a0be-2c9adc4dfb0b")
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := c.PoolPatch.GetNameLabel(s, patch); name != "XS62ESP1004" {
		t.Errorf("patch name %q", name)
	}
	_, err = c.PoolPatch.GetByUUID(s, "00000000-0000-0000-0000-000000000000")
	if code := xenCode(err); code != "UUID_INVALID" {
		t.Errorf("unknown patch: %v, want UUID_INVALID", err)
	}
	hosts, err := c.Host.GetAll(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		major, _ := c.Host.GetAPIVersionMajor(s, h)
		minor, _ := c.Host.GetAPIVersionMinor(s, h)
		if fmt.Sprintf("%d.%d", major, minor) != "2.2" {
			t.Errorf("API version %d.%d, want 2.2", major, minor)
		}
		hps, err := c.Host.GetPatches(s, h)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, hp := range hps {
			pp, err := c.HostPatch.GetPoolPatch(s, hp)
			if err != nil {
				t.Fatal(err)
			}
			applied, err := c.HostPatch.GetApplied(s, hp)
			if err != nil {
				t.Fatal(err)
			}
			if pp == patch && applied {
				found = true
			}
		}
		if !found {
			t.Errorf("host %s: XS62ESP1004 not applied", h)
		}
	}
}
