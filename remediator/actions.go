package remediator

import (
	"context"

	"xsha/remediator/journal"
)

// ActionName names an action; it is the key of the policy's actions, the
// action label of the metrics and the action field of the API. The journal
// records it; the remediator defines the names.
type ActionName = journal.ActionName

// The actions the remediator knows.
const (
	ActionEnablePoolHA       ActionName = "enable_pool_ha"
	ActionClearEmergencyMode ActionName = "clear_emergency_mode"
	ActionRejoinHost         ActionName = "rejoin_host"
)

// actionSpec is what the remediator knows about an action.
type actionSpec struct {
	name ActionName
	// needsHost is set for actions on one host (the alert's host label);
	// the others act on the pool.
	needsHost bool
	// steps returns the steps, in order, for the host (empty for pool
	// actions). Their names are stable: the journal matches them on resume.
	steps func(host string) []stepSpec
	// alert is the alert of rules/xsha-alerts.yml that asks for it.
	alert string
	// workflow marks planned maintenance: started by an operator through
	// the API, never by an alert (workflow*.go).
	workflow bool
}

// actionTable lists every action, in the order they are shown. The policy,
// the runner, the intake, the metrics and the status page all read it; a
// new action (planned-maintenance workflows come next) is one more row.
var actionTable = []actionSpec{
	{name: ActionEnablePoolHA, steps: func(string) []stepSpec { return enablePoolHASteps() },
		alert: "XenServerPoolHADisabled"},
	{name: ActionClearEmergencyMode, needsHost: true, steps: clearEmergencyModeSteps,
		alert: "XenServerHostEmergencyMode"},
	{name: ActionRejoinHost, needsHost: true, steps: rejoinHostSteps,
		alert: "XenServerHostCannotRejoin"},
	{name: WorkflowRestartSlave, needsHost: true, steps: restartSlaveSteps, workflow: true},
	{name: WorkflowRestartMaster, needsHost: true, steps: restartMasterSteps, workflow: true},
	{name: WorkflowShutdown, needsHost: true, steps: shutdownSteps, workflow: true},
	{name: WorkflowBringBack, needsHost: true, steps: bringBackSteps, workflow: true},
}

// lookupAction returns the action named name.
func lookupAction(name ActionName) (actionSpec, bool) {
	for _, a := range actionTable {
		if a.name == name {
			return a, true
		}
	}
	return actionSpec{}, false
}

// actionNames returns the names of every action, in table order.
func actionNames() []ActionName {
	names := make([]ActionName, len(actionTable))
	for i, a := range actionTable {
		names[i] = a.name
	}
	return names
}

// needsHost reports whether the action targets one host.
func needsHost(name ActionName) bool {
	a, _ := lookupAction(name)
	return a.needsHost
}

// stepName names a step of an action; names are stable, since the journal
// matches them when an interrupted action resumes.
type stepName = journal.StepName

// Step names shared by the actions.
const (
	stepNameCheck              stepName = "check"
	stepNameDisablePoolHA      stepName = "disable_pool_ha"
	stepNameEmergencyHADisable stepName = "emergency_ha_disable"
	stepNameWaitRejoin         stepName = "wait_rejoin"
	stepNameEnablePoolHA       stepName = "enable_pool_ha"
	stepNameVerify             stepName = "verify"
)

// stepSpec is one journaled step of an action. run re-reads live state
// before it acts, so running it again after an interruption does not
// repeat what is already done.
type stepSpec struct {
	name stepName
	run  func(ctx context.Context, x *execution) error
}
