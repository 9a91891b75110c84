package lab

import (
	"errors"
	"fmt"

	"xsha/sim/cloudstacksim"
	"xsha/sim/xapisim"
)

// MigrateVM implements cloudstacksim.Migrator: it moves the VM whose
// name_label is instanceName to the host of that name in the VM's pool, as
// the VM.pool_migrate CloudStack's XenServer resource sends does. It fails
// when the VM or the host is unknown, the host is not live or enabled, the
// host lacks memory or the VM cannot migrate (SetVMMigrationFault).
func (i infra) MigrateVM(instanceName, host string) error {
	for _, p := range i.l.pools {
		if p.HasVM(instanceName) {
			if !p.HasHost(host) {
				return fmt.Errorf("%w: host %q in pool %q", xapisim.ErrNotFound, host, p.Name())
			}
			return p.MigrateVM(instanceName, host)
		}
	}
	return fmt.Errorf("%w: VM %q", xapisim.ErrNotFound, instanceName)
}

var _ cloudstacksim.Migrator = infra{}

// SetVMMigrationFault makes a VM unable to live-migrate on the XenServer
// side (fail true) or able again: VM.pool_migrate and host.evacuate answer
// VM_MISSING_PV_DRIVERS (6.2) or VM_LACKS_FEATURE (7.x) for it. CloudStack migrates through XAPI, so its
// migrations of the VM fail too.
func (l *Lab) SetVMMigrationFault(vm string, fail bool) error {
	for _, p := range l.pools {
		if p.HasVM(vm) {
			return p.SetVMMigrationFault(vm, fail)
		}
	}
	return fmt.Errorf("%w: VM %q", xapisim.ErrNotFound, vm)
}

// SetCloudStackMigrationFault makes CloudStack's own migrations of a VM
// (by name or instance name) fail, or succeed again, whatever XAPI would
// do.
func (l *Lab) SetCloudStackMigrationFault(vm string, fail bool) error {
	if l.cs == nil {
		return ErrNoCloudStack
	}
	if err := l.cs.SetMigrationFault(vm, fail); err != nil {
		if errors.Is(err, cloudstacksim.ErrUnknownVM) {
			return fmt.Errorf("%w: %w", xapisim.ErrNotFound, err)
		}
		return err
	}
	return nil
}

// HoldBoot makes the host's next reboot stall: after host.reboot's
// shutdown it stays off until ReleaseBoot or PowerOn.
func (l *Lab) HoldBoot(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.HoldBoot(host)
}

// ReleaseBoot undoes HoldBoot: a stalled reboot goes on booting.
func (l *Lab) ReleaseBoot(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.ReleaseBoot(host)
}

// StartVM implements cloudstacksim.Starter: it starts the halted VM whose
// name_label is instanceName on the host of that name in the VM's pool, as
// the VM.start_on of CloudStack's HA restart does.
func (i infra) StartVM(instanceName, host string) error {
	for _, p := range i.l.pools {
		if p.HasVM(instanceName) {
			if !p.HasHost(host) {
				return fmt.Errorf("%w: host %q in pool %q", xapisim.ErrNotFound, host, p.Name())
			}
			return p.StartVM(instanceName, host)
		}
	}
	return fmt.Errorf("%w: VM %q", xapisim.ErrNotFound, instanceName)
}

var _ cloudstacksim.Starter = infra{}
