package cloudstack

import "time"

// DefaultAlertWait is what CloudStack waits when alert.wait is blank.
const DefaultAlertWait = 1800 * time.Second

// HostStates are the values of a host's state (com.cloud.host.Status).
var HostStates = []string{"Creating", "Connecting", "Up", "Down", "Disconnected", "Alert", "Removed", "Error", "Rebalancing", "Unknown"}

// ResourceStates are the values of a host's resource state
// (com.cloud.resource.ResourceState).
var ResourceStates = []string{"Creating", "Enabled", "Disabled", "ErrorInPrepareForMaintenance", "PrepareForMaintenance", "ErrorInMaintenance", "Maintenance", "Error", "Degraded"}

// Snapshot is one complete poll of CloudStack. Callers must not modify it.
type Snapshot struct {
	// Up is true when the latest poll succeeded; the other fields then
	// describe it. When false, LastError says why and the rest is the last
	// successful poll (empty before the first).
	Up bool
	// Synced is when the last successful poll ended.
	Synced time.Time
	// LastError is why the latest poll failed; empty while Up.
	LastError string
	// AlertWait is the effective alert.wait: its value, or 1800 s when it
	// is blank.
	AlertWait time.Duration
	// AlertWaitSet is false when alert.wait is blank (or missing or not a
	// number), so that CloudStack falls back to 1800 s.
	AlertWaitSet bool
	// Clusters are the XenServer clusters, sorted by name.
	Clusters []Cluster
	// Hosts are the XenServer (Routing) hosts, sorted by cluster and name.
	Hosts []Host
	// StoragePools are the primary storage pools, sorted by cluster and
	// name.
	StoragePools []StoragePool
	// VMs are the guest VMs of every account and project, sorted by name.
	VMs []VM
}

// Cluster is a CloudStack cluster of XenServer hosts and its guests.
type Cluster struct {
	ID, Name string
	// VMsHA and VMsNoHA count the guest VMs placed on the cluster's hosts
	// whose service offering offers HA, and the others.
	VMsHA, VMsNoHA int
}

// Host is a CloudStack hypervisor host.
type Host struct {
	ID, Name, Cluster, IPAddress string
	// State is the agent state (Up, Alert, Down, ...); ResourceState the
	// administrative one (Enabled, Maintenance, ...).
	State, ResourceState string
}

// StoragePool is a CloudStack primary storage pool.
type StoragePool struct {
	ID, Name string
	// Cluster is the cluster it is attached to; empty for zone-wide pools.
	Cluster string
	Type    string
	State   string
}

// VM is a guest VM.
type VM struct {
	ID, Name, InstanceName, State string
	// Host and Cluster say where it is placed; empty while it is stopped or
	// placed outside the XenServer clusters.
	Host, Cluster string
	// HA is true when the VM's service offering offers HA (the VM's
	// haenable flag when the offering is not listed).
	HA bool
}

// PrimaryStorageNamed reports whether a primary storage pool with the given
// name serves the cluster, attached to it or zone-wide.
func (s *Snapshot) PrimaryStorageNamed(cluster, name string) bool {
	for _, p := range s.StoragePools {
		if p.Name == name && (p.Cluster == cluster || p.Cluster == "") {
			return true
		}
	}
	return false
}
