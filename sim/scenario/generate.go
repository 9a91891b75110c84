package scenario

import (
	"errors"
	"fmt"
	"strings"
)

// FleetOptions size a generated fleet.
type FleetOptions struct {
	// Pools is the number of pools, named pool-001, pool-002, ...
	Pools int
	// HostsPerPool is the number of hosts in each pool; the first is master.
	HostsPerPool int
	// VMsPerPool is the number of guests in each pool, spread over its
	// hosts, every other one on an offering that offers HA.
	VMsPerPool int
	// ProductVersion is every pool's version; "" is 6.2.0.
	ProductVersion string
	// TimeScale is the scenario's time scale; 0 is real time.
	TimeScale float64
}

// Fleet returns a scenario of many identical pools, for measuring what one
// exporter costs at the size of a real CloudStack cloud. Host addresses are
// loopback addresses from 127.10.0.1 up, 250 to a /24, so they never meet
// the default scenario's.
func Fleet(o FleetOptions) (*Scenario, error) {
	if o.Pools <= 0 || o.HostsPerPool <= 0 || o.VMsPerPool < 0 {
		return nil, errors.New("scenario: a fleet needs pools and hosts")
	}
	if o.Pools*o.HostsPerPool > 250*250*100 {
		return nil, fmt.Errorf("scenario: %d hosts do not fit the loopback addresses a fleet uses", o.Pools*o.HostsPerPool)
	}
	d := Default()
	s := &Scenario{TimeScale: o.TimeScale, CloudStack: d.CloudStack}
	s.CloudStack.PrimaryStorage = []string{"primary"}
	offerings := []string{"Medium Instance HA", "Medium Instance"}
	g := 0 // the host's index over the whole fleet
	for pi := 1; pi <= o.Pools; pi++ {
		p := Pool{
			Name:           fmt.Sprintf("pool-%03d", pi),
			ProductVersion: o.ProductVersion,
			Hotfixes:       []string{"XS62ESP1", "XS62ESP1004"},
			HeartbeatSR:    "MGMT-HA",
			SRs: []SR{
				{Name: "MGMT-HA", Type: "nfs", Shared: true, SizeBytes: 1 << 30},
				{Name: "primary", Type: "lvmoiscsi", Shared: true, SizeBytes: 2 << 40, Default: true},
				{Name: "Local storage", Type: "lvm", SizeBytes: 500 << 30},
			},
		}
		if p.ProductVersion != "" && !strings.HasPrefix(p.ProductVersion, "6.") {
			p.Hotfixes = []string{"XS71E001"}
		}
		for hi := 1; hi <= o.HostsPerPool; hi++ {
			p.Hosts = append(p.Hosts, Host{
				Name:    fmt.Sprintf("xs-%03d-%02d", pi, hi),
				Address: fmt.Sprintf("127.%d.%d.%d", 10+g/(250*250), g/250%250, g%250+1),
			})
			g++
		}
		for vi := range o.VMsPerPool {
			p.VMs = append(p.VMs, VM{
				Name:      fmt.Sprintf("i-%d-%d-VM", pi, vi+1),
				Kind:      KindGuest,
				Host:      p.Hosts[vi%o.HostsPerPool].Name,
				OS:        "Windows Server 2008 R2 (64-bit)",
				MemoryMiB: 1024,
				VCPUs:     1,
				Offering:  offerings[vi%2],
				Account:   "admin",
			})
		}
		s.Pools = append(s.Pools, p)
	}
	if err := s.setDefaults(); err != nil {
		return nil, err
	}
	return s, nil
}
