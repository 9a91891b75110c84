package xapi

import (
	"context"
	"fmt"
	"sort"

	xenapi "github.com/terra-farm/go-xen-api-client"
)

// This file holds the writes of planned maintenance: taking a host out of
// service (host.disable, host.evacuate), restarting or stopping it
// (host.reboot, host.shutdown), bringing it back (host.enable) and moving
// the master role (pool.designate_new_master). Hosts are named by UUID,
// which, unlike a reference, is what a caller can keep across a master
// change. Every call goes to the master on a session of the Client, like
// EnableHA.

// hostRef resolves a host's UUID on the master.
func (c *Client) hostRef(ctx context.Context, hostUUID string) (xenapi.HostRef, error) {
	var ref xenapi.HostRef
	err := c.do(ctx, "host.get_by_uuid", read, func(api *xenapi.Client, s xenapi.SessionRef) error {
		var err error
		ref, err = api.Host.GetByUUID(s, hostUUID)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("host %s: %w", hostUUID, err)
	}
	return ref, nil
}

// hostWrite runs one host write on the host of the given UUID.
func (c *Client) hostWrite(ctx context.Context, method, hostUUID string, fn func(api *xenapi.Client, s xenapi.SessionRef, h xenapi.HostRef) error) error {
	h, err := c.hostRef(ctx, hostUUID)
	if err != nil {
		return err
	}
	return c.do(ctx, method, write, func(api *xenapi.Client, s xenapi.SessionRef) error { return fn(api, s, h) })
}

// DisableHost runs host.disable: xapi places no new VM on the host. xapi
// keeps the flag in memory only (xapi_host.ml), so it is gone after the
// host's reboot or an xapi restart. With pool HA on it answers
// HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN when the plan would break.
func (c *Client) DisableHost(ctx context.Context, hostUUID string) error {
	return c.hostWrite(ctx, "host.disable", hostUUID, func(api *xenapi.Client, s xenapi.SessionRef, h xenapi.HostRef) error {
		return api.Host.Disable(s, h)
	})
}

// EnableHost runs host.enable. The master answers HOST_OFFLINE for a host
// it holds dead (a rebooting slave) and HOST_DISABLED_UNTIL_REBOOT for one
// whose reboot has not completed.
func (c *Client) EnableHost(ctx context.Context, hostUUID string) error {
	return c.hostWrite(ctx, "host.enable", hostUUID, func(api *xenapi.Client, s xenapi.SessionRef, h xenapi.HostRef) error {
		return api.Host.Enable(s, h)
	})
}

// EvacuateHost runs host.evacuate: every running guest of the host moves
// to another enabled host with VM.pool_migrate. xapi checks the whole plan
// first and moves nothing when one VM cannot go; ctx bounds the wait.
func (c *Client) EvacuateHost(ctx context.Context, hostUUID string) error {
	return c.hostWrite(ctx, "host.evacuate", hostUUID, func(api *xenapi.Client, s xenapi.SessionRef, h xenapi.HostRef) error {
		return api.Host.Evacuate(s, h)
	})
}

// RebootHost runs host.reboot; xapi refuses it with HOST_NOT_DISABLED
// while the host is enabled. It returns once xapi accepted the reboot,
// before the host goes down.
func (c *Client) RebootHost(ctx context.Context, hostUUID string) error {
	return c.hostWrite(ctx, "host.reboot", hostUUID, func(api *xenapi.Client, s xenapi.SessionRef, h xenapi.HostRef) error {
		return api.Host.Reboot(s, h)
	})
}

// ShutdownHost runs host.shutdown; like RebootHost it needs the host
// disabled. The host stays off until someone powers it on.
func (c *Client) ShutdownHost(ctx context.Context, hostUUID string) error {
	return c.hostWrite(ctx, "host.shutdown", hostUUID, func(api *xenapi.Client, s xenapi.SessionRef, h xenapi.HostRef) error {
		return api.Host.Shutdown(s, h)
	})
}

// DesignateNewMaster runs pool.designate_new_master with the host of the
// given UUID. xapi refuses it with HA_IS_ENABLED while pool HA is on; once
// it accepted, every host restarts its xapi pointing at the new master and
// the old master's sessions are lost: the Client follows the new master on
// its next call.
func (c *Client) DesignateNewMaster(ctx context.Context, hostUUID string) error {
	return c.hostWrite(ctx, "pool.designate_new_master", hostUUID, func(api *xenapi.Client, s xenapi.SessionRef, h xenapi.HostRef) error {
		return api.Pool.DesignateNewMaster(s, h)
	})
}

// Blocker is a VM that keeps a host from being evacuated, with XAPI's
// reason (an error code and its parameters).
type Blocker struct {
	VM     string
	Reason []string
}

// EvacuationBlockers runs host.get_vms_which_prevent_evacuation and names
// each VM that cannot leave the host, with XAPI's reason (for example
// HOST_NOT_ENOUGH_FREE_MEMORY, VM_MISSING_PV_DRIVERS, NO_HOSTS_AVAILABLE),
// sorted by VM name. None means the evacuation can go ahead as things are
// now.
func (c *Client) EvacuationBlockers(ctx context.Context, hostUUID string) ([]Blocker, error) {
	h, err := c.hostRef(ctx, hostUUID)
	if err != nil {
		return nil, err
	}
	var out []Blocker
	err = c.do(ctx, "host.get_vms_which_prevent_evacuation", read, func(api *xenapi.Client, s xenapi.SessionRef) error {
		out = out[:0]
		vms, err := api.Host.GetVmsWhichPreventEvacuation(s, h)
		if err != nil {
			return err
		}
		for ref, reason := range vms {
			name, err := api.VM.GetNameLabel(s, ref)
			if err != nil {
				name = string(ref)
			}
			out = append(out, Blocker{VM: name, Reason: reason})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VM < out[j].VM })
	return out, nil
}

// ResidentVMs returns the names of the VMs resident on the host of the
// given UUID but its control domain (CloudStack's guests, routers and
// system VMs alike), sorted.
func (c *Client) ResidentVMs(ctx context.Context, hostUUID string) ([]string, error) {
	h, err := c.hostRef(ctx, hostUUID)
	if err != nil {
		return nil, err
	}
	var out []string
	err = c.do(ctx, "host.get_resident_VMs", read, func(api *xenapi.Client, s xenapi.SessionRef) error {
		out = out[:0]
		vms, err := api.Host.GetResidentVMs(s, h)
		if err != nil {
			return err
		}
		for _, ref := range vms {
			dom0, err := api.VM.GetIsControlDomain(s, ref)
			if err != nil {
				return err
			}
			if dom0 {
				continue
			}
			name, err := api.VM.GetNameLabel(s, ref)
			if err != nil {
				return err
			}
			out = append(out, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}
