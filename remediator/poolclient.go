package remediator

import (
	"context"
	"sort"

	"xsha/xapi"
)

// PoolClient is what actions need from XAPI for one pool: a fresh read of
// live state and the three writes. *xapi.Client implements it.
type PoolClient interface {
	// Read returns the pool as it is now, host probes included; never cached.
	Read(ctx context.Context) (*xapi.Snapshot, error)
	// EnableHA calls pool.enable_ha with the one heartbeat SR and the configuration map.
	EnableHA(ctx context.Context, heartbeatSRUUID string, configuration map[string]string) error
	// DisableHA calls pool.disable_ha.
	DisableHA(ctx context.Context) error
	// EmergencyHADisable calls host.emergency_ha_disable on the host at the
	// address, through a slave-local session on that host.
	EmergencyHADisable(ctx context.Context, hostAddress string) error
}

// stateView is the part of a snapshot the journal keeps: what an action
// saw of the pool before it acted.
type stateView struct {
	Pool           string     `json:"pool"`
	Up             bool       `json:"up"`
	Master         string     `json:"master,omitempty"`
	HAEnabled      bool       `json:"ha_enabled"`
	HeartbeatSR    string     `json:"heartbeat_sr,omitempty"`
	HeartbeatSRID  string     `json:"heartbeat_sr_uuid,omitempty"`
	VMsHAProtected int        `json:"vms_ha_protected"`
	Hosts          []hostView `json:"hosts"`
}

type hostView struct {
	Name       string   `json:"name"`
	Address    string   `json:"address"`
	Live       bool     `json:"live"`
	Enabled    bool     `json:"enabled"`
	Role       string   `json:"role"`
	ProbeError []string `json:"probe_error,omitempty"`
	SRAttached *bool    `json:"heartbeat_sr_attached,omitempty"`
}

func viewOf(s *xapi.Snapshot) stateView {
	v := stateView{Pool: s.Pool, Up: s.Up, HAEnabled: s.HAEnabled, VMsHAProtected: s.VMsHAProtected}
	if m, ok := s.Master(); ok {
		v.Master = m.Name
	}
	if s.HeartbeatSR != nil {
		v.HeartbeatSR, v.HeartbeatSRID = s.HeartbeatSR.Name, s.HeartbeatSR.UUID
	}
	for _, h := range s.Hosts {
		hv := hostView{Name: h.Name, Address: h.Address, Live: h.Live, Enabled: h.Enabled,
			Role: string(h.Probe.Role), ProbeError: h.Probe.Error}
		if s.HeartbeatSR != nil {
			if a, ok := s.HeartbeatSR.Attached[h.Name]; ok {
				hv.SRAttached = &a
			}
		}
		v.Hosts = append(v.Hosts, hv)
	}
	sort.Slice(v.Hosts, func(i, j int) bool { return v.Hosts[i].Name < v.Hosts[j].Name })
	return v
}

var _ PoolClient = (*xapi.Client)(nil)
