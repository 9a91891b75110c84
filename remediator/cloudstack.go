package remediator

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"xsha/cloudstack"
)

// maintenanceStates are the CloudStack resource states of a host an
// operator is working on.
var maintenanceStates = map[string]bool{
	"PrepareForMaintenance":        true,
	"Maintenance":                  true,
	"ErrorInPrepareForMaintenance": true,
	"ErrorInMaintenance":           true,
}

// CloudStackMaintenance is a MaintenanceSource that polls CloudStack
// afresh for every question, so a hold follows what CloudStack says now.
type CloudStackMaintenance struct {
	mu sync.Mutex // Poll calls must not overlap
	p  *cloudstack.Poller
}

// NewCloudStackMaintenance returns a MaintenanceSource on the poller.
func NewCloudStackMaintenance(p *cloudstack.Poller) *CloudStackMaintenance {
	return &CloudStackMaintenance{p: p}
}

// HostsInMaintenance implements MaintenanceSource.
func (m *CloudStackMaintenance) HostsInMaintenance(ctx context.Context, cluster string) ([]string, error) {
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
