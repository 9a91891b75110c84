package cloudstack

import (
	"context"
	"fmt"
	"sync"

	csgo "github.com/apache/cloudstack-go/v2/cloudstack"

	"xsha/config"
)

// Resource states of a CloudStack host that planned maintenance goes
// through (com.cloud.resource.ResourceState).
const (
	ResourceEnabled                      = "Enabled"
	ResourcePrepareForMaintenance        = "PrepareForMaintenance"
	ResourceMaintenance                  = "Maintenance"
	ResourceErrorInPrepareForMaintenance = "ErrorInPrepareForMaintenance"
	ResourceErrorInMaintenance           = "ErrorInMaintenance"
)

// HostMaintenance puts CloudStack hosts into maintenance and takes them
// out again, and reads one host's current state. The maintenance calls are
// CloudStack async jobs: they return once CloudStack accepted them, with
// the job's id, and the caller follows the host's resource state
// (PrepareForMaintenance, then Maintenance or ErrorInPrepareForMaintenance).
// Calls are made one at a time.
type HostMaintenance struct {
	mu  sync.Mutex
	cs  *csgo.CloudStackClient
	ctx *ctxTransport
}

// NewHostMaintenance builds a client for the API cfg describes, with the
// same TLS and timeout rules as a Poller.
func NewHostMaintenance(cfg config.CloudStack) (*HostMaintenance, error) {
	cs, ct, err := newAPIClient(cfg)
	if err != nil {
		return nil, err
	}
	return &HostMaintenance{cs: cs, ctx: ct}, nil
}

// with runs fn with ctx bound to its requests.
func (m *HostMaintenance) with(ctx context.Context, fn func() error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ctx.ctx.Store(&ctxBox{ctx})
	defer m.ctx.ctx.Store(&ctxBox{context.Background()})
	return fn()
}

// Host returns the XenServer host of the cluster with the given name, as
// CloudStack sees it now.
func (m *HostMaintenance) Host(ctx context.Context, cluster, name string) (Host, error) {
	var out Host
	err := m.with(ctx, func() error {
		p := m.cs.Host.NewListHostsParams()
		p.SetType("Routing")
		p.SetName(name)
		r, err := m.cs.Host.ListHosts(p)
		if err != nil {
			return fmt.Errorf("listHosts: %w", redact(err))
		}
		// The name filter matches substrings: pick the exact one.
		for _, h := range r.Hosts {
			if h.Name == name && h.Clustername == cluster {
				out = Host{ID: h.Id, Name: h.Name, Cluster: h.Clustername, IPAddress: h.Ipaddress, State: h.State, ResourceState: h.Resourcestate}
				return nil
			}
		}
		return fmt.Errorf("CloudStack has no host %s in cluster %s", name, cluster)
	})
	return out, err
}

// Prepare calls prepareHostForMaintenance on the host with the given id:
// CloudStack migrates its VMs away and the host's resource state becomes
// Maintenance, or ErrorInPrepareForMaintenance when a VM cannot move. It
// returns the async job's id.
func (m *HostMaintenance) Prepare(ctx context.Context, hostID string) (string, error) {
	var job string
	err := m.with(ctx, func() error {
		r, err := m.cs.Host.PrepareHostForMaintenance(m.cs.Host.NewPrepareHostForMaintenanceParams(hostID))
		if err != nil {
			return fmt.Errorf("prepareHostForMaintenance: %w", redact(err))
		}
		job = r.JobID
		return nil
	})
	return job, err
}

// Cancel calls cancelHostMaintenance on the host with the given id: its
// resource state goes back to Enabled. It returns the async job's id.
func (m *HostMaintenance) Cancel(ctx context.Context, hostID string) (string, error) {
	var job string
	err := m.with(ctx, func() error {
		r, err := m.cs.Host.CancelHostMaintenance(m.cs.Host.NewCancelHostMaintenanceParams(hostID))
		if err != nil {
			return fmt.Errorf("cancelHostMaintenance: %w", redact(err))
		}
		job = r.JobID
		return nil
	})
	return job, err
}
