package remediator

import (
	"context"
	"strings"

	"xsha/remediator/journal"
)

// enable_pool_ha: pool HA is off (switched off out of band, or never on).
// Preconditions: HA off, the configured heartbeat SR exists with an
// attached PBD on every host, every host live and enabled, no host in
// emergency mode, no VM with a XenServer HA restart priority. Then
// pool.enable_ha with that SR only, and verify.
func enablePoolHASteps() []stepSpec {
	return []stepSpec{
		{name: stepNameCheck, run: checkEnablePoolHA},
		enablePoolHAStep(),
		verifyStep(""),
	}
}

func checkEnablePoolHA(ctx context.Context, x *execution) error {
	s, err := x.read(ctx, "before the action")
	if err != nil {
		return err
	}
	if s.HAEnabled {
		return end(journal.StateSuccess, "", "already healthy: pool HA is enabled")
	}
	if err := x.holds(ctx, s, ""); err != nil {
		return err
	}
	if b := enableBlockers(s, x.pool.HeartbeatSR, ""); len(b) > 0 {
		return end(journal.StateSkipped, SkipPrecondition, "precondition failed, pool left untouched: "+strings.Join(b, "; "))
	}
	if x.rec.DryRun {
		return end(journal.StateDryRun, "", planText(enableCall(x, s), "wait until pool HA is enabled"))
	}
	return nil
}
