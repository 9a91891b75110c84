package remediator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"xsha/cloudstack"
	"xsha/remediator/journal"
	"xsha/xapi"
)

// Step names of the workflows, besides the shared ones (check,
// disable_pool_ha, enable_pool_ha, verify). They are stable: the journal
// matches them when a workflow resumes.
const (
	stepNameCSMaintenance stepName = "cloudstack_maintenance"
	stepNameDesignate     stepName = "designate_new_master"
	stepNameDisableHost   stepName = "disable_host"
	stepNameEvacuateHost  stepName = "evacuate_host"
	stepNameRebootHost    stepName = "reboot_host"
	stepNameWaitSlave     stepName = "wait_slave"
	stepNameShutdownHost  stepName = "shutdown_host"
	stepNameWaitOff       stepName = "wait_off"
	stepNameWaitPowerOn   stepName = "wait_power_on"
	stepNameEnableHost    stepName = "enable_host"
	stepNameCSCancel      stepName = "cloudstack_cancel_maintenance"
)

// restartSlaveSteps is the seed's slave restart.
func restartSlaveSteps(host string) []stepSpec {
	return []stepSpec{
		{name: stepNameCheck, run: func(ctx context.Context, x *execution) error { return checkWorkflow(ctx, x, host) }},
		csMaintenanceStep(host),
		wfDisablePoolHAStep(host),
		disableHostStep(host),
		evacuateHostStep(host),
		rebootHostStep(host),
		waitSlaveStep(host),
		wfEnablePoolHAStep(),
		enableHostStep(host),
		csCancelStep(host),
		verifyStep(host),
	}
}

// restartMasterSteps is the seed's master restart: the master role moves
// to a slave once pool HA is off (pool.designate_new_master refuses while
// it is on), then the old master is restarted like a slave.
func restartMasterSteps(host string) []stepSpec {
	return []stepSpec{
		{name: stepNameCheck, run: func(ctx context.Context, x *execution) error { return checkWorkflow(ctx, x, host) }},
		csMaintenanceStep(host),
		wfDisablePoolHAStep(host),
		designateStep(host),
		disableHostStep(host),
		evacuateHostStep(host),
		rebootHostStep(host),
		waitSlaveStep(host),
		wfEnablePoolHAStep(),
		enableHostStep(host),
		csCancelStep(host),
		verifyStep(host),
	}
}

// shutdownSteps is the seed's extended shutdown: pool HA stays on for the
// other hosts (a clean exit from the liveset). A master first hands its
// role to a slave, which needs pool HA off for a while.
func shutdownSteps(host string) []stepSpec {
	return []stepSpec{
		{name: stepNameCheck, run: func(ctx context.Context, x *execution) error { return checkWorkflow(ctx, x, host) }},
		csMaintenanceStep(host),
		wfDisablePoolHAStep(host),
		designateStep(host),
		wfEnablePoolHAStep(),
		disableHostStep(host),
		evacuateHostStep(host),
		{name: stepNameShutdownHost, run: func(ctx context.Context, x *execution) error {
			return hostPowerStep(ctx, x, host, "host.shutdown", func(m hostMaintainer) func(context.Context, string) error { return m.ShutdownHost })
		}},
		{name: stepNameWaitOff, run: func(ctx context.Context, x *execution) error {
			_, err := x.waitFor(ctx, fmt.Sprintf("host %s to be off", host), func(s *xapi.Snapshot) (bool, string) {
				h, _ := s.Host(host)
				return !h.Live && h.Probe.Role == xapi.RoleUnreachable, fmt.Sprintf("host %s: %s", host, hostState(h))
			})
			return err
		}},
		{name: stepNameVerify, run: func(ctx context.Context, x *execution) error {
			_, err := x.waitFor(ctx, "pool HA enabled for the remaining hosts", func(s *xapi.Snapshot) (bool, string) {
				return s.HAEnabled, "pool HA is off"
			})
			return err
		}},
	}
}

// bringBackSteps brings back a host a shutdown workflow took out: pool HA
// off so that it can join, the operator powers it on, pool HA on again,
// then out of maintenance on both sides.
func bringBackSteps(host string) []stepSpec {
	return []stepSpec{
		{name: stepNameCheck, run: func(ctx context.Context, x *execution) error { return checkWorkflow(ctx, x, host) }},
		wfDisablePoolHAStep(host),
		{name: stepNameWaitPowerOn, run: func(ctx context.Context, x *execution) error {
			_ = x.journal(journal.KindNote, fmt.Sprintf("power on host %s now (its BMC or the power button): the workflow waits until it has joined as a slave", host), nil)
			return waitSlave(ctx, x, host)
		}},
		wfEnablePoolHAStep(),
		enableHostStep(host),
		csCancelStep(host),
		verifyStep(host),
	}
}

// hostOps returns the client's maintenance calls.
func (x *execution) hostOps() (hostMaintainer, error) {
	m, ok := x.client.(hostMaintainer)
	if !ok {
		return nil, errors.New("the pool's XAPI client has no maintenance calls")
	}
	return m, nil
}

// liveHost reads live state and returns it with the host.
func (x *execution) liveHost(ctx context.Context, host, why string) (*xapi.Snapshot, xapi.Host, error) {
	s, err := x.read(ctx, why)
	if err != nil {
		return nil, xapi.Host{}, err
	}
	h, ok := s.Host(host)
	if !ok {
		return s, h, fmt.Errorf("host %s is not a member of pool %s", host, x.rec.Pool)
	}
	return s, h, nil
}

// stop ends a workflow on a precondition: skipped while nothing was
// written, failed after.
func (x *execution) stop(reason string) error {
	if !x.rec.Wrote {
		return end(journal.StateSkipped, SkipPrecondition, reason+"; nothing was changed")
	}
	return errors.New(reason)
}

// isMaster reports whether the host is the pool's master now.
func isMaster(s *xapi.Snapshot, host string) bool {
	m, ok := s.Master()
	return ok && m.Name == host
}

// poolRefusals lists why a workflow on host must not start or go on, on
// live state: the pool unreadable, another host in emergency mode, the
// host the last live one, VMs with a XenServer HA priority.
func poolRefusals(s *xapi.Snapshot, host string) []string {
	var b []string
	if !s.Up {
		return []string{"the pool is not readable through its master"}
	}
	others := 0
	for _, h := range s.Hosts {
		if h.Name == host {
			continue
		}
		if h.Probe.Role == xapi.RoleEmergency {
			b = append(b, fmt.Sprintf("host %s is in emergency mode", h.Name))
		}
		if h.Live && h.Enabled {
			others++
		}
	}
	if others == 0 {
		b = append(b, fmt.Sprintf("host %s is the last live, enabled host of the pool", host))
	}
	if s.VMsHAProtected > 0 {
		b = append(b, fmt.Sprintf("%d VM(s) have a XenServer HA restart priority; VM HA must stay with CloudStack", s.VMsHAProtected))
	}
	return b
}

// evacuationRefusals names the VMs that cannot leave the host, with XAPI's
// reason. While pool HA is on xapi refuses every unprotected VM with
// HOST_NOT_ENOUGH_FREE_MEMORY (the HA plan); those are expected, since
// pool HA goes off (or CloudStack moves them) first, and left out.
func evacuationRefusals(ctx context.Context, x *execution, s *xapi.Snapshot, h xapi.Host) ([]string, error) {
	m, err := x.hostOps()
	if err != nil {
		return nil, err
	}
	blockers, err := m.EvacuationBlockers(ctx, h.UUID)
	if err != nil {
		return nil, fmt.Errorf("host.get_vms_which_prevent_evacuation: %w", err)
	}
	var out []string
	for _, b := range blockers {
		if s.HAEnabled && len(b.Reason) > 0 && b.Reason[0] == "HOST_NOT_ENOUGH_FREE_MEMORY" {
			continue
		}
		out = append(out, fmt.Sprintf("VM %s cannot be evacuated from %s: %s", b.VM, h.Name, strings.Join(b.Reason, " ")))
	}
	return out, nil
}

// chooseNewMaster returns the slave the master role goes to: the
// operator's choice if it is a live, enabled slave with the heartbeat SR
// attached, else the first such slave by name.
func chooseNewMaster(s *xapi.Snapshot, host, wanted string) (string, error) {
	suitable := func(h xapi.Host) string {
		var why []string
		if !h.Live || !h.Enabled {
			why = append(why, "not live and enabled")
		}
		if h.Probe.Role != xapi.RoleSlave {
			why = append(why, fmt.Sprintf("does not answer as a slave (%s)", roleOf(h)))
		}
		if s.HeartbeatSR != nil && !s.HeartbeatSR.Attached[h.Name] {
			why = append(why, "heartbeat SR not attached")
		}
		return strings.Join(why, ", ")
	}
	if wanted != "" {
		h, ok := s.Host(wanted)
		if !ok {
			return "", fmt.Errorf("new master %s is not a member of the pool", wanted)
		}
		if why := suitable(h); why != "" {
			return "", fmt.Errorf("new master %s is not suitable: %s", wanted, why)
		}
		return wanted, nil
	}
	for _, h := range s.Hosts {
		if h.Name != host && suitable(h) == "" {
			return h.Name, nil
		}
	}
	return "", errors.New("no live, enabled slave with the heartbeat SR attached can take the master role")
}

// csHost returns CloudStack's view of the host; ok is false without
// CloudStack.
func (x *execution) csHost(ctx context.Context, host string) (cloudstack.Host, bool, error) {
	if x.r.cloudStack == nil {
		return cloudstack.Host{}, false, nil
	}
	h, err := x.r.cloudStack.Host(ctx, x.pool.CloudStackCluster, host)
	if err != nil {
		return h, true, fmt.Errorf("CloudStack: %w", err)
	}
	return h, true, nil
}

// checkWorkflow is the first step of every workflow: it checks, on live
// state and before anything is written, that the workflow can run to its
// end; in dry-run mode it ends with the plan.
func checkWorkflow(ctx context.Context, x *execution, host string) error {
	s, h, err := x.liveHost(ctx, host, "before the workflow")
	if err != nil {
		return end(journal.StateSkipped, SkipPrecondition, err.Error())
	}
	name := x.rec.Name
	var refusals []string
	refusals = append(refusals, poolRefusals(s, host)...)
	master := isMaster(s, host)
	switch name {
	case WorkflowRestartSlave:
		if master {
			refusals = append(refusals, fmt.Sprintf("host %s is the master: use restart_master", host))
		}
	case WorkflowRestartMaster:
		if !master {
			refusals = append(refusals, fmt.Sprintf("host %s is not the master: use restart_slave", host))
		}
	}
	if name == WorkflowBringBack {
		if h.Live {
			refusals = append(refusals, fmt.Sprintf("host %s is live already (%s): nothing to bring back", host, hostState(h)))
		}
	} else {
		if !h.Live || !h.Enabled {
			refusals = append(refusals, fmt.Sprintf("host %s is not live and enabled (%s)", host, hostState(h)))
		}
		if !s.HAEnabled {
			refusals = append(refusals, "pool HA is already off: someone else's work may be under way; enable it or finish that work first")
		}
		if b := enableBlockers(s, x.pool.HeartbeatSR, host); len(b) > 0 {
			refusals = append(refusals, "pool HA could not be re-enabled afterwards: "+strings.Join(b, "; "))
		}
	}
	if s.HAEnabled && (name != WorkflowShutdown || master) {
		// The workflow disables pool HA: it must be able to finish.
		if reason := disableBlocked(s); reason != "" {
			refusals = append(refusals, reason)
		}
	}
	var newMaster string
	if master && (name == WorkflowRestartMaster || name == WorkflowShutdown) {
		nm, err := chooseNewMaster(s, host, x.rec.NewMaster)
		if err != nil {
			refusals = append(refusals, err.Error())
		}
		newMaster = nm
	} else if x.rec.NewMaster != "" {
		refusals = append(refusals, fmt.Sprintf("new_master %s given but host %s is not the master", x.rec.NewMaster, host))
	}
	if len(refusals) > 0 {
		return end(journal.StateSkipped, SkipPrecondition, "refused, nothing was changed: "+strings.Join(refusals, "; "))
	}
	var vms []string
	if name != WorkflowBringBack && h.Live {
		r, err := evacuationRefusals(ctx, x, s, h)
		if err != nil {
			return err
		}
		refusals = append(refusals, r...)
		if m, err := x.hostOps(); err == nil {
			vms, _ = m.ResidentVMs(ctx, h.UUID)
		}
	}
	cs, hasCS, err := x.csHost(ctx, host)
	switch {
	case err != nil:
		refusals = append(refusals, err.Error())
	case !hasCS:
	case cs.ResourceState == cloudstack.ResourceErrorInPrepareForMaintenance || cs.ResourceState == cloudstack.ResourceErrorInMaintenance:
		refusals = append(refusals, fmt.Sprintf("CloudStack shows host %s in %s: resolve it in CloudStack first", host, cs.ResourceState))
	case name == WorkflowBringBack && cs.ResourceState != cloudstack.ResourceMaintenance:
		refusals = append(refusals, fmt.Sprintf("CloudStack shows host %s %s, not in Maintenance", host, cs.ResourceState))
	}
	if len(refusals) > 0 {
		return end(journal.StateSkipped, SkipPrecondition, "refused, nothing was changed: "+strings.Join(refusals, "; "))
	}
	if newMaster != "" {
		x.rec.NewMaster = newMaster
		if err := x.r.journal.Update(func(tx journal.Tx) error {
			if err := tx.Save(x.rec); err != nil {
				return err
			}
			return tx.AppendFor(x.rec, journal.KindNote, fmt.Sprintf("check: the master role goes to %s", newMaster), nil)
		}); err != nil {
			return err
		}
	}
	if x.rec.DryRun {
		return end(journal.StateDryRun, "", "dry-run plan: "+strings.Join(workflowPlan(x, s, h, cs, hasCS, vms), "; "))
	}
	return nil
}

// workflowPlan lists the steps a workflow would take from this live state,
// for a dry run.
func workflowPlan(x *execution, s *xapi.Snapshot, h xapi.Host, cs cloudstack.Host, hasCS bool, vms []string) []string {
	host := h.Name
	var p []string
	add := func(f string, a ...any) { p = append(p, fmt.Sprintf("%d. ", len(p)+1)+fmt.Sprintf(f, a...)) }
	csPrepare := func() {
		if hasCS {
			add("CloudStack prepareHostForMaintenance(%s, id %s; now %s/%s), wait for Maintenance", host, cs.ID, cs.ResourceState, cs.State)
		} else {
			add("no CloudStack configured: skip CloudStack maintenance")
		}
	}
	csCancel := func() {
		if hasCS {
			add("CloudStack cancelHostMaintenance(%s), wait for Enabled and Up", host)
		}
	}
	sr := "the heartbeat SR"
	if s.HeartbeatSR != nil {
		sr = s.HeartbeatSR.Name
	}
	evac := func() {
		add("host.disable(%s)", host)
		add("host.evacuate(%s): moves %s", host, listOr(vms, "no VM"))
	}
	switch x.rec.Name {
	case WorkflowRestartSlave, WorkflowRestartMaster:
		csPrepare()
		add("pool.disable_ha")
		if x.rec.Name == WorkflowRestartMaster {
			add("pool.designate_new_master(%s), follow the new master", x.rec.NewMaster)
		}
		evac()
		add("host.reboot(%s), wait until it has booted, is live and answers as a slave", host)
		add("pool.enable_ha(heartbeat SR %s, %v)", sr, x.pol.haConfiguration())
		add("host.enable(%s) unless it came back enabled", host)
		csCancel()
	case WorkflowShutdown:
		csPrepare()
		if x.rec.NewMaster != "" {
			add("pool.disable_ha")
			add("pool.designate_new_master(%s), follow the new master", x.rec.NewMaster)
			add("pool.enable_ha(heartbeat SR %s, %v)", sr, x.pol.haConfiguration())
		}
		evac()
		add("host.shutdown(%s); pool HA stays on for the other hosts", host)
	case WorkflowBringBack:
		add("pool.disable_ha")
		add("wait for the operator to power on %s and for it to join as a slave", host)
		add("pool.enable_ha(heartbeat SR %s, %v)", sr, x.pol.haConfiguration())
		add("host.enable(%s) unless it came back enabled", host)
		csCancel()
	}
	return p
}

func listOr(items []string, none string) string {
	if len(items) == 0 {
		return none
	}
	return strings.Join(items, ", ")
}

// csMaintenanceStep puts the host into CloudStack maintenance and waits
// for Maintenance; ErrorInPrepareForMaintenance stops the workflow.
func csMaintenanceStep(host string) stepSpec {
	return stepSpec{name: stepNameCSMaintenance, run: func(ctx context.Context, x *execution) error {
		h, ok, err := x.csHost(ctx, host)
		switch {
		case err != nil:
			return err
		case !ok:
			return x.journal(journal.KindNote, "no CloudStack configured: nothing to do", nil)
		case h.ResourceState == cloudstack.ResourceMaintenance:
			return x.journal(journal.KindNote, fmt.Sprintf("CloudStack shows %s in Maintenance already", host), nil)
		case h.ResourceState == cloudstack.ResourceEnabled:
			err := x.call(ctx, "cloudstack.prepareHostForMaintenance", map[string]string{"host": host, "id": h.ID}, func(ctx context.Context) error {
				job, err := x.r.cloudStack.Prepare(ctx, h.ID)
				if err == nil {
					_ = x.journal(journal.KindNote, "CloudStack accepted prepareHostForMaintenance as job "+job, nil)
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		return x.waitCloudStack(ctx, host, "Maintenance", func(h cloudstack.Host) (bool, error) {
			switch h.ResourceState {
			case cloudstack.ResourceMaintenance:
				return true, nil
			case cloudstack.ResourceErrorInPrepareForMaintenance, cloudstack.ResourceErrorInMaintenance:
				return false, fmt.Errorf("CloudStack could not put %s into maintenance: %s (a VM could not be migrated; see CloudStack's events)", host, h.ResourceState)
			}
			return false, nil
		})
	}}
}

// csCancelStep takes the host out of CloudStack maintenance and waits for
// Enabled and Up.
func csCancelStep(host string) stepSpec {
	return stepSpec{name: stepNameCSCancel, run: func(ctx context.Context, x *execution) error {
		h, ok, err := x.csHost(ctx, host)
		switch {
		case err != nil:
			return err
		case !ok:
			return x.journal(journal.KindNote, "no CloudStack configured: nothing to do", nil)
		case h.ResourceState != cloudstack.ResourceEnabled:
			err := x.call(ctx, "cloudstack.cancelHostMaintenance", map[string]string{"host": host, "id": h.ID}, func(ctx context.Context) error {
				job, err := x.r.cloudStack.Cancel(ctx, h.ID)
				if err == nil {
					_ = x.journal(journal.KindNote, "CloudStack accepted cancelHostMaintenance as job "+job, nil)
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		return x.waitCloudStack(ctx, host, "Enabled and Up", func(h cloudstack.Host) (bool, error) {
			return h.ResourceState == cloudstack.ResourceEnabled && h.State == "Up", nil
		})
	}}
}

// waitCloudStack polls CloudStack until cond holds or fails.
func (x *execution) waitCloudStack(ctx context.Context, host, what string, cond func(cloudstack.Host) (bool, error)) error {
	_ = x.journal(journal.KindNote, fmt.Sprintf("waiting for CloudStack to show %s %s", host, what), nil)
	last := "not read yet"
	for {
		h, _, err := x.csHost(ctx, host)
		if err == nil {
			last = h.ResourceState + "/" + h.State
			ok, cerr := cond(h)
			if cerr != nil {
				return cerr
			}
			if ok {
				return x.journal(journal.KindState, fmt.Sprintf("CloudStack shows %s %s/%s", host, h.ResourceState, h.State), nil)
			}
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		t := time.NewTimer(time.Duration(x.pol.PollInterval))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("CloudStack did not show %s %s within %s: %s", host, what, x.pol.StepTimeout, last)
		case <-t.C:
		}
	}
}

// wfDisablePoolHAStep switches pool HA off after re-checking, on live
// state, that the workflow can still go on: nothing of a restart or a
// shutdown of the master can be done with it on. A shutdown of a slave
// keeps pool HA on.
func wfDisablePoolHAStep(host string) stepSpec {
	return stepSpec{name: stepNameDisablePoolHA, run: func(ctx context.Context, x *execution) error {
		if x.rec.Name == WorkflowShutdown && x.rec.NewMaster == "" {
			return x.journal(journal.KindNote, "not the master: pool HA stays on for the other hosts", nil)
		}
		s, h, err := x.liveHost(ctx, host, "before disabling pool HA")
		if err != nil {
			return x.stop(err.Error())
		}
		if !s.HAEnabled {
			return x.journal(journal.KindNote, "pool HA is already off", nil)
		}
		refusals := poolRefusals(s, host)
		if reason := disableBlocked(s); reason != "" {
			refusals = append(refusals, reason)
		}
		if x.rec.Name != WorkflowBringBack && h.Live {
			r, err := evacuationRefusals(ctx, x, s, h)
			if err != nil {
				return err
			}
			refusals = append(refusals, r...)
		}
		if len(refusals) > 0 {
			return x.stop("stopped before pool.disable_ha: " + strings.Join(refusals, "; "))
		}
		if err := x.call(ctx, "pool.disable_ha", nil, x.client.DisableHA, xapi.CodeHANotEnabled); err != nil && !errors.Is(err, errNoAnswer) {
			return err
		}
		_, err = x.waitFor(ctx, "pool HA to be off", func(s *xapi.Snapshot) (bool, string) {
			return !s.HAEnabled, "pool HA is still enabled"
		})
		return err
	}}
}

// designateStep moves the master role to x.rec.NewMaster and waits until
// the new master answers, every host is live and enabled again (a new
// master disables every host for a while) and the old master is a slave.
func designateStep(host string) stepSpec {
	return stepSpec{name: stepNameDesignate, run: func(ctx context.Context, x *execution) error {
		target := x.rec.NewMaster
		if target == "" {
			return x.journal(journal.KindNote, fmt.Sprintf("host %s is not the master: nothing to hand over", host), nil)
		}
		// Read through waitFor: after the call every host restarts its
		// xapi (xapi_pool_transition.ml), so a resumed step may find no
		// master answering for a while.
		s, err := x.waitFor(ctx, "the pool to answer through its master", func(s *xapi.Snapshot) (bool, string) {
			return s.Up, s.LastError
		})
		if err != nil {
			return err
		}
		if !isMaster(s, target) {
			if s.HAEnabled {
				return errors.New("pool HA is on: pool.designate_new_master would answer HA_IS_ENABLED")
			}
			if _, err := chooseNewMaster(s, host, target); err != nil {
				return err
			}
			t, _ := s.Host(target)
			m, err := x.hostOps()
			if err != nil {
				return err
			}
			err = x.call(ctx, "pool.designate_new_master", map[string]string{"host": target, "uuid": t.UUID}, func(ctx context.Context) error {
				return m.DesignateNewMaster(ctx, t.UUID)
			})
			if err != nil && !errors.Is(err, errNoAnswer) {
				return err
			}
		}
		_, err = x.waitFor(ctx, fmt.Sprintf("%s to be the master with every host live and enabled and %s a slave", target, host),
			func(s *xapi.Snapshot) (bool, string) {
				m, _ := s.Master()
				if m.Name != target || m.Probe.Role != xapi.RoleMaster {
					return false, fmt.Sprintf("master %s (%s)", m.Name, roleOf(m))
				}
				for _, h := range s.Hosts {
					if !h.Live || !h.Enabled {
						return false, fmt.Sprintf("host %s: %s", h.Name, hostState(h))
					}
				}
				old, _ := s.Host(host)
				return old.Probe.Role == xapi.RoleSlave, fmt.Sprintf("host %s: %s", host, hostState(old))
			})
		return err
	}}
}

// disableHostStep runs host.disable unless the host is disabled already.
func disableHostStep(host string) stepSpec {
	return stepSpec{name: stepNameDisableHost, run: func(ctx context.Context, x *execution) error {
		_, h, err := x.liveHost(ctx, host, "before host.disable")
		if err != nil {
			return err
		}
		if !h.Live {
			return fmt.Errorf("host %s is not live (%s)", host, hostState(h))
		}
		if !h.Enabled {
			return x.journal(journal.KindNote, fmt.Sprintf("host %s is disabled already", host), nil)
		}
		m, err := x.hostOps()
		if err != nil {
			return err
		}
		return x.call(ctx, "host.disable", map[string]string{"host": host, "uuid": h.UUID}, func(ctx context.Context) error {
			return m.DisableHost(ctx, h.UUID)
		})
	}}
}

// evacuateHostStep moves every VM off the host with host.evacuate, after
// checking that each can go (naming those that cannot, with XAPI's
// reason), and checks that none is left. On a resume after the call,
// x.call does not repeat it and the check on live state decides.
func evacuateHostStep(host string) stepSpec {
	return stepSpec{name: stepNameEvacuateHost, run: func(ctx context.Context, x *execution) error {
		s, h, err := x.liveHost(ctx, host, "before host.evacuate")
		if err != nil {
			return err
		}
		if h.Enabled {
			return fmt.Errorf("host %s is enabled again: someone re-enabled it during the workflow", host)
		}
		m, err := x.hostOps()
		if err != nil {
			return err
		}
		vms, err := m.ResidentVMs(ctx, h.UUID)
		if err != nil {
			return err
		}
		if len(vms) > 0 {
			refusals, err := evacuationRefusals(ctx, x, s, h)
			if err != nil {
				return err
			}
			if len(refusals) > 0 {
				return errors.New(strings.Join(refusals, "; "))
			}
		}
		// Called even when CloudStack moved every VM already, as the seed
		// does: it also moves what CloudStack does not know about.
		err = x.call(ctx, "host.evacuate", map[string]any{"host": host, "uuid": h.UUID, "vms": vms}, func(ctx context.Context) error {
			return m.EvacuateHost(ctx, h.UUID)
		})
		if err != nil {
			return err
		}
		left, err := m.ResidentVMs(ctx, h.UUID)
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("VMs still on %s after host.evacuate: %s", host, strings.Join(left, ", "))
		}
		return x.journal(journal.KindNote, fmt.Sprintf("no VM left on %s (moved: %s)", host, listOr(vms, "none")), nil)
	}}
}

// rebootHostStep runs host.reboot on the disabled, evacuated host.
func rebootHostStep(host string) stepSpec {
	return stepSpec{name: stepNameRebootHost, run: func(ctx context.Context, x *execution) error {
		return hostPowerStep(ctx, x, host, "host.reboot", func(m hostMaintainer) func(context.Context, string) error { return m.RebootHost })
	}}
}

// hostPowerStep runs host.reboot or host.shutdown on the host, which must
// be live, disabled and empty.
func hostPowerStep(ctx context.Context, x *execution, host, method string, call func(hostMaintainer) func(context.Context, string) error) error {
	_, h, err := x.liveHost(ctx, host, "before "+method)
	if err != nil {
		return err
	}
	m, err := x.hostOps()
	if err != nil {
		return err
	}
	if !h.Live {
		if x.resumed && slices.Contains(x.rec.Steps[x.stepIdx].Calls, method) {
			return x.journal(journal.KindNote, fmt.Sprintf("%s was called before the interruption and the host is down: not calling it again", method), nil)
		}
		return fmt.Errorf("host %s is not live (%s)", host, hostState(h))
	}
	if h.Enabled {
		return fmt.Errorf("host %s is enabled again: someone re-enabled it during the workflow", host)
	}
	vms, err := m.ResidentVMs(ctx, h.UUID)
	if err != nil {
		return fmt.Errorf("listing the VMs on %s: %w", host, err)
	}
	if len(vms) > 0 {
		return fmt.Errorf("host %s is not empty: %s", host, strings.Join(vms, ", "))
	}
	return x.call(ctx, method, map[string]string{"host": host, "uuid": h.UUID}, func(ctx context.Context) error {
		return call(m)(ctx, h.UUID)
	})
}

// waitSlaveStep waits until the rebooted host has booted, is live and
// answers as a slave of the pool's master.
func waitSlaveStep(host string) stepSpec {
	return stepSpec{name: stepNameWaitSlave, run: func(ctx context.Context, x *execution) error {
		return waitSlave(ctx, x, host)
	}}
}

func waitSlave(ctx context.Context, x *execution, host string) error {
	_, err := x.waitFor(ctx, fmt.Sprintf("host %s to be live and answer as a slave of the master", host), func(s *xapi.Snapshot) (bool, string) {
		h, _ := s.Host(host)
		m, _ := s.Master()
		ok := h.Live && h.Probe.Role == xapi.RoleSlave && h.Probe.MasterAddress == m.Address
		return ok, fmt.Sprintf("host %s: %s", host, hostState(h))
	})
	return err
}

// wfEnablePoolHAStep switches pool HA on with the configured heartbeat SR
// once every precondition holds on live state (a new master re-enables
// its hosts only after a while, so it waits for them). A shutdown of a
// slave never switched it off.
func wfEnablePoolHAStep() stepSpec {
	return stepSpec{name: stepNameEnablePoolHA, run: func(ctx context.Context, x *execution) error {
		if x.rec.Name == WorkflowShutdown && x.rec.NewMaster == "" {
			return x.journal(journal.KindNote, "not the master: pool HA stayed on", nil)
		}
		s, err := x.waitFor(ctx, "pool HA's preconditions", func(s *xapi.Snapshot) (bool, string) {
			if s.HAEnabled {
				return true, ""
			}
			b := enableBlockers(s, x.pool.HeartbeatSR, "")
			return len(b) == 0, strings.Join(b, "; ")
		})
		if err != nil {
			return err
		}
		if s.HAEnabled {
			return x.journal(journal.KindNote, "pool HA is already enabled", nil)
		}
		sr, cfg := s.HeartbeatSR.UUID, x.pol.haConfiguration()
		args := map[string]any{"heartbeat_srs": []string{sr}, "heartbeat_sr_name": s.HeartbeatSR.Name, "configuration": cfg}
		err = x.call(ctx, "pool.enable_ha", args, func(ctx context.Context) error {
			return x.client.EnableHA(ctx, sr, cfg)
		}, xapi.CodeHAIsEnabled)
		if err != nil && !errors.Is(err, errNoAnswer) {
			return err
		}
		_, err = x.waitFor(ctx, "pool HA to be enabled", func(s *xapi.Snapshot) (bool, string) {
			return s.HAEnabled, "pool HA is still off"
		})
		return err
	}}
}

// enableHostStep runs host.enable unless the host came back enabled (xapi
// keeps host.disable in memory only, so a reboot re-enables it).
func enableHostStep(host string) stepSpec {
	return stepSpec{name: stepNameEnableHost, run: func(ctx context.Context, x *execution) error {
		_, h, err := x.liveHost(ctx, host, "before host.enable")
		if err != nil {
			return err
		}
		if h.Enabled {
			return x.journal(journal.KindNote, fmt.Sprintf("host %s is enabled already: host.disable does not survive a reboot", host), nil)
		}
		m, err := x.hostOps()
		if err != nil {
			return err
		}
		if err := x.call(ctx, "host.enable", map[string]string{"host": host, "uuid": h.UUID}, func(ctx context.Context) error {
			return m.EnableHost(ctx, h.UUID)
		}); err != nil && !errors.Is(err, errNoAnswer) {
			return err
		}
		_, err = x.waitFor(ctx, fmt.Sprintf("host %s to be enabled", host), func(s *xapi.Snapshot) (bool, string) {
			h, _ := s.Host(host)
			return h.Enabled, hostState(h)
		})
		return err
	}}
}
