package remediator

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"xsha/cloudstack"
)

// maintenanceSource tells whether CloudStack has hosts of a cluster in
// maintenance. Remediation of the pool backing the cluster is held while it does.
type maintenanceSource interface {
	// HostsInMaintenance returns the names of the cluster's hosts whose
	// resource state is a maintenance state (PrepareForMaintenance,
	// Maintenance, ErrorInPrepareForMaintenance, ErrorInMaintenance).
	HostsInMaintenance(ctx context.Context, cluster string) ([]string, error)
}

// maintenanceStates are the CloudStack resource states of a host an
// operator is working on.
var maintenanceStates = map[string]bool{
	"PrepareForMaintenance":        true,
	"Maintenance":                  true,
	"ErrorInPrepareForMaintenance": true,
	"ErrorInMaintenance":           true,
}

// cloudStackMaintenance is a maintenanceSource that polls CloudStack
// afresh for every question, so a hold follows what CloudStack says now.
type cloudStackMaintenance struct {
	mu sync.Mutex // Poll calls must not overlap
	p  *cloudstack.Poller
}

// newCloudStackMaintenance returns a maintenanceSource on the poller.
func newCloudStackMaintenance(p *cloudstack.Poller) *cloudStackMaintenance {
	return &cloudStackMaintenance{p: p}
}

// HostsInMaintenance implements maintenanceSource.
func (m *cloudStackMaintenance) HostsInMaintenance(ctx context.Context, cluster string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.p.Poll(ctx)
	if err != nil {
		return nil, fmt.Errorf("polling CloudStack: %w", err)
	}
	var hosts []string
	for _, h := range s.Hosts {
		if h.Cluster == cluster && maintenanceStates[h.ResourceState] {
			hosts = append(hosts, h.Name)
		}
	}
	sort.Strings(hosts)
	return hosts, nil
}
