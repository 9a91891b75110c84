package remediator

import (
	"context"
	"fmt"
	"strings"

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
func clearEmergencyModeSteps(host string) []step {
	return []step{
		{name: stepCheck, run: func(ctx context.Context, x *execution) error { return checkClearEmergencyMode(ctx, x, host) }},
		disablePoolHAStep(func(s *xapi.Snapshot) (bool, string) {
			h, ok := s.Host(host)
			if ok && h.Probe.Role == xapi.RoleEmergency {
				return true, ""
			}
			return false, fmt.Sprintf("host %s left emergency mode by itself (%s); pool left untouched", host, hostState(h))
		}),
		{name: stepEmergencyHADisable, run: func(ctx context.Context, x *execution) error { return emergencyHADisable(ctx, x, host) }},
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
		return end(StateSkipped, skipPrecondition, fmt.Sprintf("host %s is not a member of pool %s", host, x.rec.Pool))
	case h.Probe.Role == xapi.RoleUnreachable:
		return end(StateSkipped, skipPrecondition, fmt.Sprintf("host %s does not answer; nothing can be cleared until it is back", host))
	case h.Probe.Role != xapi.RoleEmergency:
		x.noop = fmt.Sprintf("already healthy: host %s is not in emergency mode (%s)", host, hostState(h))
		return end(StateSuccess, "", x.noop)
	case h.IsMaster:
		return end(StateSkipped, skipPrecondition, fmt.Sprintf("host %s is pool.master but answers in emergency mode; not a case this action repairs", host))
	case h.Address == "":
		return end(StateSkipped, skipPrecondition, fmt.Sprintf("host %s has no address in XAPI", host))
	}
	if err := x.holds(ctx, s, host); err != nil {
		return err
	}
	// Pool HA goes off first: only start if it can be switched on again
	// once the host is back.
	if b := enableBlockers(s, x.pool.HeartbeatSR, host); len(b) > 0 {
		return end(StateSkipped, skipPrecondition, "precondition failed, pool left untouched (pool HA could not be re-enabled afterwards): "+strings.Join(b, "; "))
	}
	if x.rec.DryRun {
		steps := []string{}
		if s.HAEnabled {
			steps = append(steps, "call pool.disable_ha")
		}
		steps = append(steps,
			fmt.Sprintf("call host.emergency_ha_disable on %s (%s) through a slave-local session", host, h.Address),
			fmt.Sprintf("wait until the master sees %s live as a slave", host),
			"check enable_pool_ha's preconditions and "+enableCall(x, s))
		return end(StateDryRun, "", planText(steps...))
	}
	return nil
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
		return x.journal(KindNote, fmt.Sprintf("host %s is no longer in emergency mode (%s)", host, hostState(h)), nil)
	}
	return x.call(ctx, "host.emergency_ha_disable", map[string]string{"host": host, "address": h.Address},
		func(ctx context.Context) error { return x.client.EmergencyHADisable(ctx, h.Address) },
		xapi.CodeHANotEnabled)
}
