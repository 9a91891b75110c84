package scenario

import (
	"net"
	"testing"
)

// TestFleet: a generated fleet of 200 pools of 16 hosts and 500 guests is
// a valid scenario with every host on its own loopback address, none of
// them the default scenario's, and with the sizes asked for.
func TestFleet(t *testing.T) {
	s, err := Fleet(FleetOptions{Pools: 200, HostsPerPool: 16, VMsPerPool: 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Pools) != 200 {
		t.Fatalf("pools = %d, want 200", len(s.Pools))
	}
	seen := map[string]bool{}
	for _, d := range Default().Pools {
		for _, h := range d.Hosts {
			seen[h.Address] = true
		}
	}
	for _, p := range s.Pools {
		if len(p.Hosts) != 16 || len(p.VMs) != 500 || p.Master != p.Hosts[0].Name {
			t.Fatalf("pool %s: %d hosts, %d VMs, master %s", p.Name, len(p.Hosts), len(p.VMs), p.Master)
		}
		for _, h := range p.Hosts {
			if ip := net.ParseIP(h.Address); ip == nil || !ip.IsLoopback() || seen[h.Address] {
				t.Fatalf("host %s: address %s not a fresh loopback address", h.Name, h.Address)
			}
			seen[h.Address] = true
		}
	}
	if _, err := Fleet(FleetOptions{Pools: 1}); err == nil {
		t.Error("a fleet without hosts was accepted")
	}
}
