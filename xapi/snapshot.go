// Package xapi talks to XenServer pools through XAPI: it finds and follows
// each pool's master, keeps one long-lived session per pool, keeps the
// pool's state current with event.from, probes every member host on its own
// address, and publishes immutable snapshots of what the exporter and the
// remediator care about. It also carries the few write calls the remediator
// needs.
package xapi

import (
	"slices"
	"strings"
	"time"
)

// Role is a host's own view of its place in the pool, learnt by probing it.
type Role string

// The roles a probe can find.
const (
	// RoleMaster: the host accepted a normal login, so it is a master.
	RoleMaster Role = "master"
	// RoleSlave: the host answered HOST_IS_SLAVE with its master's address.
	RoleSlave Role = "slave"
	// RoleEmergency: the host answers but refuses logins with a stored error
	// (emergency mode, still booting, ...): any XAPI error other than
	// HOST_IS_SLAVE and SESSION_AUTHENTICATION_FAILED.
	RoleEmergency Role = "emergency"
	// RoleUnreachable: the host refused the connection or did not answer in time.
	RoleUnreachable Role = "unreachable"
)

// Roles lists every role, in the order the exporter exposes them.
var Roles = []Role{RoleMaster, RoleSlave, RoleEmergency, RoleUnreachable}

// Snapshot is an immutable view of one pool. Callers must not modify it.
type Snapshot struct {
	// Pool is the configured pool name.
	Pool string
	// Up is true while the view is current through a session on the master.
	Up bool
	// Synced is when the view was last known to be current; zero before the
	// first full read.
	Synced time.Time
	// MasterChanges counts master changes observed since the watcher started.
	MasterChanges uint64
	// LastError says why the pool is not up; empty while it is.
	LastError string
	// MasterAddress is the address the session is held on; empty while down.
	MasterAddress string

	PoolUUID   string
	MasterUUID string

	HAEnabled                bool
	HAHostFailuresToTolerate int64
	HAPlanExistsFor          int64
	HAOvercommitted          bool
	// HATimeout is the HA timeout T xapi uses: ha_configuration["timeout"],
	// else other_config["default_ha_timeout"], else xapi's default of 60 s.
	// xapi keeps ha_configuration after disable_ha.
	HATimeout time.Duration
	// HAStatefiles are the pool's statefile VDI refs (kept by xapi after
	// disable_ha).
	HAStatefiles []string

	// Hosts are sorted by Name. Hosts known only from the configuration (the
	// pool was never read) carry their address as Name.
	Hosts []Host
	// HeartbeatSR is the configured heartbeat SR; nil when it does not exist.
	HeartbeatSR *SR
	// VMsHAProtected counts guest VMs (not control domains, templates or
	// snapshots) with a non-empty ha_restart_priority.
	VMsHAProtected int
	// VMs counts guest VMs (not control domains, templates or snapshots).
	VMs int
}

// Host is one pool member.
type Host struct {
	Ref, UUID, Name, Address, ProductVersion string
	APIVersionMajor, APIVersionMinor         int64
	// Enabled is host.enabled; Live is host_metrics.live.
	Enabled, Live bool
	// IsMaster is true for the host pool.master points at.
	IsMaster bool
	// HAStatefiles is host.ha_statefiles: non-empty while the host can reach
	// the statefile.
	HAStatefiles []string
	// Hotfixes maps each required hotfix to whether it is applied.
	Hotfixes map[string]bool
	// Probe is the host's own view, from the last probe of its address.
	Probe Probe
}

// Probe is the result of one login attempt on a host's own address.
type Probe struct {
	// Role is empty until the host was probed once, and while the host
	// refuses the credentials (SESSION_AUTHENTICATION_FAILED), which says
	// nothing about its role.
	Role Role
	// MasterAddress is the master a slave points at (HOST_IS_SLAVE).
	MasterAddress string
	// Error is the ErrorDescription the host refused the login with (the
	// stored error of a host in emergency mode, or an authentication
	// failure), or the transport error of an unreachable host.
	Error []string
	// At is when the probe finished.
	At time.Time
}

// SR is a storage repository.
type SR struct {
	Ref, UUID, Name, Type string
	Shared                bool
	// Size is physical_size in bytes.
	Size int64
	// Attached maps host name to whether that host's PBD is currently
	// attached; hosts without a PBD are absent.
	Attached map[string]bool
	// Statefile is true when one of the pool's HA statefile VDIs is on it.
	Statefile bool
}

// Host returns the host with the given name.
func (s *Snapshot) Host(name string) (Host, bool) {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// Master returns the host pool.master points at.
func (s *Snapshot) Master() (Host, bool) {
	for _, h := range s.Hosts {
		if h.IsMaster {
			return h, true
		}
	}
	return Host{}, false
}

// attachProbes sets every host's probe from probes (by address). A pool
// never read knows its hosts only from the configuration: their addresses
// are listed as hosts, named by address.
func (s *Snapshot) attachProbes(configured []string, probes map[string]Probe) {
	for i := range s.Hosts {
		s.Hosts[i].Probe = probes[s.Hosts[i].Address]
	}
	if s.PoolUUID != "" {
		return
	}
	for _, a := range configured {
		if !slices.ContainsFunc(s.Hosts, func(h Host) bool { return h.Address == a }) {
			s.Hosts = append(s.Hosts, Host{Name: a, Address: a, Probe: probes[a]})
		}
	}
	slices.SortFunc(s.Hosts, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
}

// addresses returns the configured addresses followed by the hosts'
// addresses not among them.
func addresses(configured []string, hosts []Host) []string {
	out := slices.Clone(configured)
	for _, h := range hosts {
		if h.Address != "" && !slices.Contains(out, h.Address) {
			out = append(out, h.Address)
		}
	}
	return out
}
