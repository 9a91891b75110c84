package remediator

import (
	"context"
	"fmt"

	"xsha/remediator/journal"
	"xsha/xapi"
)

// clear_emergency_mode(host): the seed's recovery of an old master that
// came back HA-armed after a failover and sits in emergency mode. In this
// order: disable pool HA; host.emergency_ha_disable on the host through a
// slave-local session; wait until the master sees it live as a slave;
// re-enable pool HA through enable_pool_ha's checks. The order matters:
// emergency_ha_disable while pool HA is still on leaves the host disarmed
// under an HA-enabled pool, which after its next xapi restart is permanent
// emergency mode (HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED).
func clearEmergencyModeSteps(host string) []stepSpec {
	return []stepSpec{
		{name: stepNameCheck, run: func(ctx context.Context, x *execution) error { return checkClearEmergencyMode(ctx, x, host) }},
		disablePoolHAStep(func(s *xapi.Snapshot) error {
			h, ok := s.Host(host)
			switch {
			case !ok:
				return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("host %s is no longer a member of the pool; pool left untouched", host))
			case h.Probe.Role != xapi.RoleEmergency:
				return end(journal.StateSuccess, "", fmt.Sprintf("host %s left emergency mode by itself (%s); pool left untouched", host, hostState(h)))
			}
			return nil
		}),
		{name: stepNameEmergencyHADisable, run: func(ctx context.Context, x *execution) error { return emergencyHADisable(ctx, x, host) }},
		waitRejoinStep(host),
		enablePoolHAStep(),
		verifyStep(host),
	}
}

func checkClearEmergencyMode(ctx context.Context, x *execution, host string) error {
	s, err := x.read(ctx, "before the action")
	if err != nil {
		return err
	}
	h, ok := s.Host(host)
	switch {
	case !ok:
		return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("host %s is not a member of pool %s", host, x.rec.Pool))
	case h.Probe.Role == xapi.RoleUnreachable:
		return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("host %s does not answer; nothing can be cleared until it is back", host))
	case h.Probe.Role != xapi.RoleEmergency:
		return end(journal.StateSuccess, "", fmt.Sprintf("already healthy: host %s is not in emergency mode (%s)", host, hostState(h)))
	case h.IsMaster:
		return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("host %s is pool.master but answers in emergency mode; not a case this action repairs", host))
	case h.Address == "":
		return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("host %s has no address in XAPI", host))
	}
	var writes []string
	if s.HAEnabled {
		writes = append(writes, "call pool.disable_ha")
	}
	writes = append(writes, fmt.Sprintf("call host.emergency_ha_disable on %s (%s) through a slave-local session", host, h.Address))
	return checkRepair(ctx, x, s, host, writes...)
}

func emergencyHADisable(ctx context.Context, x *execution, host string) error {
	s, err := x.read(ctx, "before host.emergency_ha_disable")
	if err != nil {
		return err
	}
	if s.HAEnabled {
		return fmt.Errorf("pool HA is enabled again; refusing host.emergency_ha_disable on %s, which would leave it in permanent emergency mode (HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED)", host)
	}
	h, ok := s.Host(host)
	if !ok {
		return fmt.Errorf("host %s is no longer a member of the pool", host)
	}
	if h.Probe.Role != xapi.RoleEmergency {
		return x.journal(journal.KindNote, fmt.Sprintf("host %s is no longer in emergency mode (%s)", host, hostState(h)), nil)
	}
	return x.call(ctx, "host.emergency_ha_disable", map[string]string{"host": host, "address": h.Address},
		func(ctx context.Context) error { return x.client.EmergencyHADisable(ctx, h.Address) },
		xapi.CodeHANotEnabled)
}
