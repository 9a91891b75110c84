package cloudstacksim

import (
	"testing"

	"github.com/apache/cloudstack-go/v2/cloudstack"

	"xsha/sim/scenario"
)

// scenarioInfra is every host of a scenario, all up.
func scenarioInfra(sc *scenario.Scenario) *fakeInfra {
	f := &fakeInfra{}
	for _, p := range sc.Pools {
		for _, h := range p.Hosts {
			f.hosts = append(f.hosts, HostView{Name: h.Name, Cluster: p.Name, Address: h.Address, PoweredOn: true, Reachable: true, Heartbeat: true})
		}
	}
	return f
}

func TestFromDefaultScenario(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*scenario.Scenario)
		wantPools []string
	}{
		{"heartbeat SR is not primary storage", func(*scenario.Scenario) {}, []string{"primary-a", "primary-b"}},
		{"heartbeat SR added as primary storage", func(sc *scenario.Scenario) {
			sc.CloudStack.PrimaryStorage = append(sc.CloudStack.PrimaryStorage, "MGMT-HA")
		}, []string{"MGMT-HA", "primary-a", "MGMT-HA", "primary-b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := scenario.Default()
			tc.edit(sc)
			_, ts := startAPI(t, scenarioInfra(sc), FromScenario(sc))
			cs := cloudstack.NewClient(ts.URL, sc.CloudStack.APIKey, sc.CloudStack.SecretKey, false)

			sp, err := cs.Pool.ListStoragePools(cs.Pool.NewListStoragePoolsParams())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range sp.StoragePools {
				got = append(got, p.Name)
			}
			if len(got) != len(tc.wantPools) {
				t.Fatalf("storage pools %v, want %v", got, tc.wantPools)
			}
			for i := range got {
				if got[i] != tc.wantPools[i] {
					t.Fatalf("storage pools %v, want %v", got, tc.wantPools)
				}
			}

			vp := cs.VirtualMachine.NewListVirtualMachinesParams()
			vp.SetListall(true)
			vp.SetProjectid("-1")
			vms, err := cs.VirtualMachine.ListVirtualMachines(vp)
			if err != nil {
				t.Fatal(err)
			}
			ha := 0
			for _, v := range vms.VirtualMachines {
				if v.Haenable {
					ha++
				}
				if v.Instancename == "" || v.Name == v.Instancename || v.Hostname == "" {
					t.Errorf("VM %s: instance %q host %q", v.Name, v.Instancename, v.Hostname)
				}
			}
			if vms.Count != 10 || ha != 6 {
				t.Errorf("%d guests, %d with HA; want the seed's 10 Windows guests, 6 with Offer HA", vms.Count, ha)
			}
			hp := cs.Host.NewListHostsParams()
			hp.SetType("Routing")
			hosts, err := cs.Host.ListHosts(hp)
			if err != nil || hosts.Count != 8 {
				t.Errorf("listHosts type=Routing: %v, %d", err, hosts.Count)
			}
			cfg := cs.Configuration.NewListConfigurationsParams()
			cfg.SetName("alert.wait")
			c, err := cs.Configuration.ListConfigurations(cfg)
			if err != nil || c.Configurations[0].Value != "60" {
				t.Errorf("alert.wait: %v %+v", err, c)
			}
		})
	}
}
