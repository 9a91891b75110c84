package remediator

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"xsha/cloudstack"
	"xsha/remediator/journal"
	"xsha/xapi"
)

// Planned maintenance as workflows: an operator starts one through the API
// (or xshactl) instead of an alert. A workflow is an action of the action
// table like the alert-driven ones: the same per-pool runner, journal,
// resume rules, holds and dry-run. While one is open it holds its pool for
// the alert-driven actions, and it refuses to start while anything else is
// open on the pool.

// The workflows.
const (
	// WorkflowRestartSlave restarts a slave: CloudStack maintenance, pool HA
	// off, host.disable and host.evacuate, host.reboot, wait for the slave,
	// pool HA on, host.enable, out of CloudStack maintenance.
	WorkflowRestartSlave ActionName = "restart_slave"
	// WorkflowRestartMaster restarts the master: as restart_slave, with the
	// master role moved to a slave (pool.designate_new_master) once pool HA
	// is off.
	WorkflowRestartMaster ActionName = "restart_master"
	// WorkflowShutdown takes a host out for an extended period:
	// CloudStack maintenance, the master role moved away when it is the
	// master, host.disable, host.evacuate, host.shutdown; pool HA stays on
	// for the other hosts.
	WorkflowShutdown ActionName = "shutdown"
	// WorkflowBringBack brings a host shut down by WorkflowShutdown back:
	// pool HA off, the operator powers the host on, wait for the slave, pool
	// HA on, out of maintenance on both sides.
	WorkflowBringBack ActionName = "bring_back"
)

// hostMaintainer is what workflows need from XAPI besides PoolClient.
// *xapi.Client implements it.
type hostMaintainer interface {
	DisableHost(ctx context.Context, hostUUID string) error
	EnableHost(ctx context.Context, hostUUID string) error
	EvacuateHost(ctx context.Context, hostUUID string) error
	RebootHost(ctx context.Context, hostUUID string) error
	ShutdownHost(ctx context.Context, hostUUID string) error
	DesignateNewMaster(ctx context.Context, hostUUID string) error
	EvacuationBlockers(ctx context.Context, hostUUID string) ([]xapi.Blocker, error)
	ResidentVMs(ctx context.Context, hostUUID string) ([]string, error)
}

var _ hostMaintainer = (*xapi.Client)(nil)

// cloudStackHosts is what workflows need from CloudStack.
// *cloudstack.HostMaintenance implements it.
type cloudStackHosts interface {
	Host(ctx context.Context, cluster, name string) (cloudstack.Host, error)
	Prepare(ctx context.Context, hostID string) (string, error)
	Cancel(ctx context.Context, hostID string) (string, error)
}

var _ cloudStackHosts = (*cloudstack.HostMaintenance)(nil)

// WorkflowRequest is the body of POST /api/v1/workflows.
type WorkflowRequest struct {
	// Workflow is the workflow's name (restart_slave, restart_master,
	// shutdown, bring_back).
	Workflow ActionName `json:"workflow"`
	// Pool is the configured pool name.
	Pool string `json:"pool"`
	// Host is the name_label of the host worked on.
	Host string `json:"host"`
	// NewMaster, for restart_master and shutdown of the master, is the
	// slave to hand the master role to; empty: the most suitable one.
	NewMaster string `json:"new_master,omitempty"`
	// DryRun reads live state and returns the plan; nothing is written.
	// The policy's dry-run setting for the workflow also applies.
	DryRun bool `json:"dry_run"`
}

// Errors of startWorkflow; the API answers them with 4xx.
var (
	errBadWorkflow = errors.New("bad workflow request")
	errPoolBusy    = errors.New("pool busy")
	errNotAllowed  = errors.New("not allowed by the policy")
)

// isWorkflow reports whether the action is a workflow (started by an
// operator, not by an alert).
func isWorkflow(name ActionName) bool {
	a, ok := lookupAction(name)
	return ok && a.workflow
}

// startWorkflow records a pending workflow after checking the request, the
// policy and that nothing else is open on the pool; the pool's runner
// starts it. The checks on live state are the workflow's first step.
func (r *engine) startWorkflow(req WorkflowRequest, remote string) (*journal.Action, error) {
	if !isWorkflow(req.Workflow) {
		var names []string
		for _, a := range actionTable {
			if a.workflow {
				names = append(names, string(a.name))
			}
		}
		return nil, fmt.Errorf("%w: unknown workflow %q (known: %v)", errBadWorkflow, req.Workflow, names)
	}
	if _, ok := r.cfg.Pool(req.Pool); !ok {
		return nil, fmt.Errorf("%w: pool %q is not in the configuration", errBadWorkflow, req.Pool)
	}
	if req.Host == "" {
		return nil, fmt.Errorf("%w: host is required", errBadWorkflow)
	}
	if req.NewMaster != "" && req.Workflow != WorkflowRestartMaster && req.Workflow != WorkflowShutdown {
		return nil, fmt.Errorf("%w: new_master applies to restart_master and shutdown only", errBadWorkflow)
	}
	if req.NewMaster == req.Host && req.NewMaster != "" {
		return nil, fmt.Errorf("%w: new_master must be another host", errBadWorkflow)
	}
	pol := r.policy.Load()
	if !pol.allows(req.Workflow, req.Pool) {
		return nil, fmt.Errorf("%w: the policy does not allow %s on pool %s", errNotAllowed, req.Workflow, req.Pool)
	}
	rec := &journal.Action{Name: req.Workflow, Pool: req.Pool, Host: req.Host, NewMaster: req.NewMaster,
		State: journal.StatePending, DryRun: req.DryRun || pol.dryRunFor(req.Workflow), RequestedBy: remote}
	err := r.journal.Update(func(tx journal.Tx) error {
		open, err := tx.Open(req.Pool)
		if err != nil {
			return err
		}
		if len(open) > 0 {
			o := open[0]
			what := "action"
			if isWorkflow(o.Name) {
				what = "workflow"
			}
			return fmt.Errorf("%w: %s %d (%s %s) is %s on pool %s; one at a time", errPoolBusy, what, o.ID, o.Name, o.Host, o.State, req.Pool)
		}
		if h, held, err := r.manualHold(tx, pol, req.Pool); err != nil {
			return err
		} else if held {
			return fmt.Errorf("%w: pool %s is on hold (%s): %s", errPoolBusy, req.Pool, h.Source, h.Reason)
		}
		if err := tx.Create(rec); err != nil {
			return err
		}
		msg := "queued by an operator"
		if rec.DryRun {
			msg += " in dry-run mode"
		}
		return tx.AppendFor(rec, journal.KindAction, msg, map[string]string{"remote": remote})
	})
	if err != nil {
		return nil, err
	}
	r.log.Info("workflow queued", "workflow", rec.Name, "id", rec.ID, "pool", rec.Pool, "host", rec.Host, "dry_run", rec.DryRun, "remote", remote)
	r.metrics.workflowRunning(rec.Pool, rec.Host, rec.Name, true)
	r.wakePool(rec.Pool)
	return rec, nil
}

// cancelWorkflow cancels a workflow that has not written anything yet: a
// pending one at once, a running one before its next step. One that wrote
// is not stopped halfway: pool HA could be left off or a host out.
func (r *engine) cancelWorkflow(id uint64, remote string) (*journal.Action, error) {
	var rec *journal.Action
	err := r.journal.Update(func(tx journal.Tx) error {
		var err error
		if rec, err = tx.Get(id); err != nil {
			return err
		}
		switch {
		case !isWorkflow(rec.Name):
			return fmt.Errorf("%w: %d is an alert-driven action, not a workflow", errBadWorkflow, id)
		case !rec.Open():
			return fmt.Errorf("%w: workflow %d already ended %s", errPoolBusy, id, rec.State)
		case rec.Wrote:
			return fmt.Errorf("%w: workflow %d has written (%s); it is not stopped halfway, so the pool is not left without HA or the host out of service", errPoolBusy, id, lastStep(rec))
		case rec.State == journal.StateRunning:
			rec.CancelRequested = true
			if err := tx.Put(rec); err != nil {
				return err
			}
			return tx.AppendFor(rec, journal.KindAction, "cancel requested by an operator: it stops before its next step", map[string]string{"remote": remote})
		}
		rec.State, rec.Reason, rec.Finished = journal.StateCancelled, "cancelled by an operator before it started", tx.Now()
		if err := tx.Put(rec); err != nil {
			return err
		}
		return tx.AppendFor(rec, journal.KindAction, "cancelled: "+rec.Reason, map[string]string{"remote": remote})
	})
	if err != nil {
		return nil, err
	}
	if !rec.Open() {
		r.metrics.workflowRunning(rec.Pool, rec.Host, rec.Name, false)
	}
	return rec, nil
}

func lastStep(rec *journal.Action) string {
	if len(rec.Steps) == 0 {
		return "no step yet"
	}
	s := rec.Steps[len(rec.Steps)-1]
	return fmt.Sprintf("step %s %s", s.Name, s.State)
}

// workflowHold returns why an alert-driven action on the pool must wait:
// an open workflow holds it.
func workflowHold(tx journal.Tx, action ActionName, pool string) (string, bool, error) {
	if isWorkflow(action) {
		return "", false, nil
	}
	open, err := tx.Open(pool)
	if err != nil {
		return "", false, err
	}
	i := slices.IndexFunc(open, func(a *journal.Action) bool { return isWorkflow(a.Name) })
	if i < 0 {
		return "", false, nil
	}
	w := open[i]
	return fmt.Sprintf("workflow %d (%s of %s) is %s on pool %s: planned maintenance", w.ID, w.Name, w.Host, w.State, pool), true, nil
}

// workflowRunning sets or clears the pool's workflow gauge.
func (m *metrics) workflowRunning(pool, host string, name ActionName, open bool) {
	if open {
		m.workflows.WithLabelValues(pool, host, string(name)).Set(1)
		return
	}
	m.workflows.DeleteLabelValues(pool, host, string(name))
}

// restoreWorkflowGauges sets the gauge of every workflow a previous run
// left open.
func (r *engine) restoreWorkflowGauges() {
	_ = r.journal.View(func(tx journal.Tx) error {
		open, err := tx.Open("")
		for _, a := range open {
			if isWorkflow(a.Name) {
				r.metrics.workflowRunning(a.Pool, a.Host, a.Name, true)
			}
		}
		return err
	})
}

// cancelRequested ends a workflow an operator cancelled before it wrote,
// and reports whether it did.
func (r *engine) cancelRequested(rec *journal.Action) (bool, error) {
	if !isWorkflow(rec.Name) {
		return false, nil
	}
	var stop bool
	err := r.journal.View(func(tx journal.Tx) error {
		cur, err := tx.Get(rec.ID)
		if err == nil {
			stop = cur.CancelRequested && !rec.Wrote
		}
		return err
	})
	if err != nil || !stop {
		return false, err
	}
	rec.CancelRequested = true
	return true, r.finish(rec, journal.StateCancelled, "", "cancelled by an operator before it wrote anything")
}
