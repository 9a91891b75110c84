package remediator

import (
	"context"
	"fmt"

	"xsha/remediator/journal"
	"xsha/xapi"
)

// rejoin_host(host): a returning slave answers as a slave of the current
// master, but cannot join the HA liveset while pool HA is on, so the
// master does not see it live. Disable pool HA, wait for the host to join,
// re-enable pool HA through enable_pool_ha's checks.
func rejoinHostSteps(host string) []stepSpec {
	return []stepSpec{
		{name: stepNameCheck, run: func(ctx context.Context, x *execution) error { return checkRejoinHost(ctx, x, host) }},
		disablePoolHAStep(func(s *xapi.Snapshot) error {
			h, ok := s.Host(host)
			switch {
			case !ok:
				return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("host %s is no longer a member of the pool; pool left untouched", host))
			case h.Live:
				return end(journal.StateSuccess, "", fmt.Sprintf("host %s rejoined by itself (%s); pool left untouched", host, hostState(h)))
			}
			return nil
		}),
		waitRejoinStep(host),
		enablePoolHAStep(),
		verifyStep(host),
	}
}

func checkRejoinHost(ctx context.Context, x *execution, host string) error {
	s, err := x.read(ctx, "before the action")
	if err != nil {
		return err
	}
	h, ok := s.Host(host)
	if !ok {
		return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("host %s is not a member of pool %s", host, x.rec.Pool))
	}
	if h.Live {
		return end(journal.StateSuccess, "", fmt.Sprintf("already healthy: the master sees host %s live (%s)", host, hostState(h)))
	}
	master, _ := s.Master()
	switch {
	case !s.HAEnabled:
		return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("pool HA is off, so nothing keeps host %s out; it rejoins by itself", host))
	case h.Probe.Role == xapi.RoleEmergency:
		return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("host %s is in emergency mode; that is clear_emergency_mode's case", host))
	case h.Probe.Role != xapi.RoleSlave:
		return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("host %s does not answer as a slave (%s); disabling pool HA would not bring it back", host, hostState(h)))
	case master.Address != "" && h.Probe.MasterAddress != master.Address:
		return end(journal.StateSkipped, SkipPrecondition, fmt.Sprintf("host %s follows master %s, not the pool's master %s (%s)", host, h.Probe.MasterAddress, master.Name, master.Address))
	}
	return checkRepair(ctx, x, s, host, "call pool.disable_ha")
}
