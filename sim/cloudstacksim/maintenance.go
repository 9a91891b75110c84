package cloudstacksim

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnknownVM is returned, wrapped, for a VM name the simulated CloudStack
// does not know.
var ErrUnknownVM = errors.New("cloudstack: unknown VM")

// Migrator is implemented by an Infra that can live-migrate VMs on the
// XenServer side. When the Infra given to New implements it, a migration
// CloudStack finishes (maintenance evacuations) also moves the VM there, as
// the MigrateCommand CloudStack's XenServer resource sends does with
// VM.pool_migrate; an error fails the migration and the VM stays where it
// is.
type Migrator interface {
	// MigrateVM live-migrates the VM with the hypervisor-side name
	// instanceName (its name_label) to the host named host. It is called
	// from the model's step, without the Server's lock held, once
	// Options.MigrateTime has passed, and should return promptly: the
	// migration's duration is already spent.
	MigrateVM(instanceName, host string) error
}

// Starter is implemented by an Infra that can start VMs on the hypervisor
// side: an HA restart then starts the VM there too, as CloudStack's
// StartCommand does through XAPI (VM.start_on). Without one, HA restarts
// happen in CloudStack's model only.
type Starter interface {
	// StartVM starts the halted VM with the hypervisor-side name
	// instanceName on host. An error fails the restart, which CloudStack
	// tries again after restart.retry.interval. It is called without the
	// Server's lock held.
	StartVM(instanceName, host string) error
}

// move is a migration waiting for the Migrator.
type move struct {
	vm     *vm
	target *host
}

// canAttemptMaintenance is ResourceState.canAttemptMaintenance.
func canAttemptMaintenance(rs string) bool {
	switch rs {
	case rsMaintenance, rsPrepare, rsErrorInPrepare:
		return false
	}
	return true
}

// isMaintenanceState is ResourceState.isMaintenanceState.
func isMaintenanceState(rs string) bool {
	switch rs {
	case rsMaintenance, rsErrorInMaint, rsPrepare, rsErrorInPrepare:
		return true
	}
	return false
}

// upAndEnabled reports whether the cluster has a Routing host other than
// exclude that is Up and Enabled (ResourceManagerImpl.listAllUpAndEnabledHosts).
func (s *Server) upAndEnabled(c *cluster, exclude *host) bool {
	for _, h := range s.hosts {
		if h != exclude && h.typ == hostRouting && h.cluster == c && h.state == statusUp && h.rs == rsEnabled {
			return true
		}
	}
	return false
}

// prepareJob is PrepareForMaintenanceCmd.execute: ResourceManagerImpl.maintain
// and doMaintain of CloudStack 4.x with ResourceState's
// ErrorInPrepareForMaintenance (apache/cloudstack
// server/src/main/java/com/cloud/resource/ResourceManagerImpl.java). Every
// refusal is a CloudRuntimeException, which the command turns into a 530
// ServerApiException "Failed to prepare host for maintenance due to: ..."
// (api/.../command/admin/host/PrepareForMaintenanceCmd.java); the job fails
// with it (ApiAsyncJobDispatcher.runJob).
func (s *Server) prepareJob(h *host) func(time.Time) *apiError {
	return func(now time.Time) *apiError {
		fail := func(format string, a ...any) *apiError {
			return &apiError{code: codeInternalError, text: "Failed to prepare host for maintenance due to: " + fmt.Sprintf(format, a...)}
		}
		if !canAttemptMaintenance(h.rs) {
			return fail("Host is already in state %s. Cannot recall for maintenance until resolved.", h.rs)
		}
		for _, o := range s.hosts {
			if o.typ == hostRouting && o.cluster == h.cluster && (o.rs == rsPrepare || o.rs == rsErrorInPrepare) {
				return fail("There are other servers attempting migrations for maintenance. "+
					"Found hosts in PrepareForMaintenance OR ErrorInPrepareForMaintenance STATUS in cluster %d", h.cluster.seq)
			}
		}
		for _, v := range s.vms {
			if v.state == vmMigrating && v.target == h {
				return fail("Host contains incoming VMs migrating. Please wait for them to complete before putting to maintenance.")
			}
		}
		for _, v := range s.vms {
			if v.state == vmStarting && v.host == h {
				return fail("Host contains VMs in starting/stopping state. Please wait for them to complete before putting to maintenance.")
			}
		}
		// doMaintain: the MaintainCommand needs an agent that answers.
		if h.state != statusUp || !h.reachable {
			return fail("Unable to prepare for maintenance host %d", h.seq)
		}
		// Enabled and ErrorInMaintenance accept AdminAskMaintenance;
		// Disabled has no such transition (NoTransitionException; the
		// message is concatenated without a separator, HostVO.toString is
		// "Host[-<id>-<type>]").
		if h.rs != rsEnabled && h.rs != rsErrorInMaint {
			return fail("Cannot transit resource state of Host[-%d-%s] to Maintenance"+
				"No next resource state found for current state = %s event = AdminAskMaintenance", h.seq, h.typ, h.rs)
		}
		s.setResourceState(h, rsPrepare)
		var vms []*vm
		for _, v := range s.vms {
			if v.host == h && v.active() {
				vms = append(vms, v)
			}
		}
		if len(vms) == 0 {
			return nil // the monitor moves it to Maintenance
		}
		if !s.upAndEnabled(h.cluster, h) {
			// "Unable to find a host for vm migration in cluster": the job
			// fails, the host stays in PrepareForMaintenance with its VMs
			// and the monitor moves it to ErrorInMaintenance.
			s.logger.Info("CloudStack maintenance: no host for VM migration in the cluster", "host", h.name, "cluster", h.cluster.name)
			return fail("Unable to prepare for maintenance host %d", h.seq)
		}
		for _, v := range vms {
			// HighAvailabilityManagerImpl.scheduleMigration.
			v.migWork, v.migFrom, v.migTries, v.migNext = true, h, 0, now
			s.logger.Info("CloudStack maintenance: migration scheduled", "vm", v.name, "host", h.name)
		}
		return nil
	}
}

// cancelJob is CancelMaintenanceCmd.execute: ResourceManagerImpl.cancelMaintenance
// and doCancelMaintenance. Scheduled migrations are cancelled; one under way
// only gets a warning ("Unable to cancel migration because the vm is being
// migrated") and finishes on its own. (CloudStack 4.3 refused the cancel
// then, with "Internal error cancelling maintenance.").
func (s *Server) cancelJob(h *host) func(time.Time) *apiError {
	return func(time.Time) *apiError {
		if !isMaintenanceState(h.rs) {
			return &apiError{code: codeInternalError, text: fmt.Sprintf("Cannot perform cancelMaintenance when resource state is %s, hostId = %d", h.rs, h.seq)}
		}
		for _, v := range s.vms {
			if !v.migWork || v.migFrom != h {
				continue
			}
			if v.state == vmMigrating {
				s.logger.Info("CloudStack cannot cancel a migration under way", "host", h.name, "vm", v.name)
				continue
			}
			v.migWork = false
		}
		s.setResourceState(h, rsEnabled)
		return nil
	}
}

// runMigrationWork runs the due migration work items as
// HighAvailabilityManagerImpl.migrate does, at most ha.workers at a time:
// the VM is migrated away to another Up, Enabled host of its cluster; with
// no such host (InsufficientServerCapacityException) the host gets
// UnableToMigrate and the work is retried after migrate.retry.interval.
func (s *Server) runMigrationWork(now time.Time) {
	busy := 0
	for _, v := range s.vms {
		if v.migWork && v.state == vmMigrating {
			busy++
		}
	}
	for _, v := range s.vms {
		if !v.migWork || now.Before(v.migNext) || v.state == vmMigrating || v.state == vmStarting {
			continue
		}
		if busy >= s.opts.HAWorkers {
			return
		}
		from := v.migFrom
		if v.host != from || !v.active() {
			v.migWork = false // the VM left the host some other way
			continue
		}
		t := s.pickHost(from.cluster, from)
		if t == nil {
			s.logger.Info("CloudStack migration: insufficient capacity", "vm", v.name, "host", from.name)
			s.unableToMigrate(from)
			s.retryMigration(v, now)
			continue
		}
		// VirtualMachineManagerImpl.stateTransitTo records the source as
		// last_host_id, so a migration that fails leaves host == last host.
		v.state, v.lastHost, v.target, v.until = vmMigrating, from, t, now.Add(s.real(s.opts.MigrateTime))
		s.logger.Info("CloudStack VM migrating", "vm", v.name, "from", from.name, "to", t.name)
		if v.noMigrate {
			s.failMigration(v, now, "the VM cannot move (fault)")
			continue
		}
		busy++
	}
}

// retryMigration counts a failed attempt of v's migration work and
// reschedules it, or gives up after max.retries attempts.
func (s *Server) retryMigration(v *vm, now time.Time) {
	if !v.migWork {
		return
	}
	v.migTries++
	if v.migTries >= s.opts.MigrateMaxRetries {
		s.logger.Info("CloudStack migration: giving up", "vm", v.name, "tries", v.migTries)
		v.migWork = false
		return
	}
	v.migNext = now.Add(s.real(s.opts.MigrateRetryInterval))
}

// unableToMigrate is ResourceManagerImpl.migrateAwayFailed: the UnableToMigrate
// event, which only PrepareForMaintenance and ErrorInPrepareForMaintenance
// accept.
func (s *Server) unableToMigrate(h *host) {
	if h.rs == rsPrepare || h.rs == rsErrorInPrepare {
		s.setResourceState(h, rsErrorInPrepare)
	}
}

// failMigration ends v's migration with the VM still on its source host.
func (s *Server) failMigration(v *vm, now time.Time, reason string) {
	s.logger.Info("CloudStack VM migration failed", "vm", v.name, "from", v.host.name, "to", v.target.name, "err", reason)
	v.state, v.target = vmRunning, nil
	s.retryMigration(v, now)
}

// finishMigration moves v to its migration target.
func (s *Server) finishMigration(v *vm) {
	s.logger.Info("CloudStack VM migrated", "vm", v.name, "from", v.host.name, "to", v.target.name)
	v.lastHost, v.host, v.target, v.state = v.host, v.target, nil, vmRunning
	v.migWork = false
}

// monitorMaintenance is the maintenance part of AgentManagerImpl's
// MonitorTask, run every ping interval: checkAndMaintain for every host in
// PrepareForMaintenance or ErrorInPrepareForMaintenance.
func (s *Server) monitorMaintenance(now time.Time) {
	if now.Before(s.nextMonitor) {
		return
	}
	s.nextMonitor = now.Add(s.real(s.opts.PingInterval))
	for _, h := range s.hosts {
		if h.typ == hostRouting && (h.rs == rsPrepare || h.rs == rsErrorInPrepare) {
			s.attemptMaintain(h)
		}
	}
}

// attemptMaintain is ResourceManagerImpl.attemptMaintain. The model has no
// Stopping, Error or Unknown VMs, so their branches are left out.
func (s *Server) attemptMaintain(h *host) {
	var occupied, running, migratingAway, pending, failed bool
	for _, v := range s.vms {
		if v.migWork && v.migFrom == h {
			pending = true
		}
		if v.host != h || !v.active() {
			continue
		}
		occupied = true
		switch v.state {
		case vmRunning:
			running = true
			if v.lastHost == h {
				failed = true // listNonMigratingVmsByHostEqualsLastHost
			}
		case vmMigrating:
			migratingAway = true
		}
	}
	switch {
	case !occupied:
		s.logger.Info("CloudStack host is ready for maintenance", "host", h.name)
		s.setResourceState(h, rsMaintenance)
	case !pending && !migratingAway && running:
		// Retries exhausted with VMs left: cancel what is scheduled and
		// give up (UnableToMaintain).
		for _, v := range s.vms {
			if v.migFrom == h {
				v.migWork = false
			}
		}
		s.setResourceState(h, rsErrorInMaint)
	case (pending || migratingAway) && failed:
		s.unableToMigrate(h)
	case h.rs == rsErrorInPrepare:
		s.setResourceState(h, rsPrepare) // ErrorsCorrected
	}
}

// SetMigrationFault makes every live migration of the VM named name (its
// CloudStack name or instance name) fail when fail is true, as for a VM that
// cannot move (for example one with a disk on local storage); false lets it
// move again. A host whose evacuation meets such a VM goes to
// ErrorInPrepareForMaintenance while migration retries remain and to
// ErrorInMaintenance once they are exhausted.
func (s *Server) SetMigrationFault(name string, fail bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.vms {
		if v.name == name || v.instanceName == name {
			v.noMigrate = fail
			s.logger.Info("CloudStack migration fault changed", "vm", v.name, "fail", fail)
			return nil
		}
	}
	return fmt.Errorf("%w %q", ErrUnknownVM, name)
}
