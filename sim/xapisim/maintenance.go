package xapisim

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Planned maintenance: host.evacuate and its checks, VM.pool_migrate,
// host.reboot and host.shutdown, pool.designate_new_master. Every function
// here runs with p.mu held, as the HA state machine does.

// hostReserved is the memory of a host that guests cannot use (Xen and the
// control domain), as host_metrics.memory_free shows it at build time.
const hostReserved = int64(8 << 30)

// Host operations in progress (host.current_operations values).
const (
	opEvacuate = "evacuate"
	opReboot   = "reboot"
	opShutdown = "shutdown"
)

// vmNeed is the memory a VM needs on a host: its static maximum plus its
// overhead (Memory_check.vm_compute_start_memory: main + shadow).
func vmNeed(vm *object) int64 {
	return vm.integer("memory_static_max") + vm.integer("memory_overhead")
}

// userVMsOn returns the running guests (not control domains) resident on h,
// in database order.
func (p *Pool) userVMsOn(h *hostState) []*object {
	var out []*object
	for _, vm := range p.db.all("VM") {
		if vm.str("resident_on") == h.ref && !vm.boolean("is_control_domain") {
			out = append(out, vm)
		}
	}
	return out
}

// freeMemory is host memory not used by resident VMs.
func (p *Pool) freeMemory(h *hostState) int64 {
	free := p.metricsObj(h).integer("memory_total") - hostReserved
	for _, vm := range p.userVMsOn(h) {
		free -= vmNeed(vm)
	}
	return free
}

// refreshMemory updates every host_metrics.memory_free from the resident
// VMs, as each host's metrics report does.
func (p *Pool) refreshMemory() {
	for _, h := range p.hosts {
		p.db.setField(p.metricsObj(h), "memory_free", p.freeMemory(h))
	}
}

// hostByRef returns the simulated host of a host ref.
func (p *Pool) hostByRef(ref string) *hostState {
	for _, h := range p.hosts {
		if h.ref == ref {
			return h
		}
	}
	return nil
}

// callHost resolves a host argument.
func (c *call) callHost(i int) (*hostState, *apiError) {
	o, err := c.obj("host", c.str(i))
	if err != nil {
		return nil, err
	}
	return c.p.hostByRef(o.ref), nil
}

// forward is the master forwarding a call to host x (message_forwarding.ml
// at XS62, do_op_on): HOST_OFFLINE when its database does not hold x live,
// CANNOT_CONTACT_HOST once the connection attempts to a live but
// unreachable x have failed.
func (c *call) forward(x *hostState) *apiError {
	p := c.p
	if x == p.serving() {
		return nil
	}
	if !p.metricsObj(x).boolean("live") {
		return fail("HOST_OFFLINE", x.ref)
	}
	if !reachable(x) {
		p.sleep(c.ctx, p.durations().ContactRetry.D()) //nolint:errcheck // the answer is the same
		if !reachable(x) {
			return fail("CANNOT_CONTACT_HOST", x.ref)
		}
	}
	return nil
}

// setOp records a host operation in host.current_operations.
func (p *Pool) setOp(h *hostState, op string) {
	h.op = op
	ops := map[string]string{}
	if op != "" {
		ops["OpaqueRef:"+newUUID()] = op
	}
	p.db.setField(p.hostObj(h), "current_operations", ops)
}

// assertNoOp is with_host_operation's check (message_forwarding.ml):
// OTHER_OPERATION_IN_PROGRESS while another host operation runs.
func (p *Pool) assertNoOp(h *hostState) *apiError {
	if h.op != "" {
		return fail("OTHER_OPERATION_IN_PROGRESS", "host", h.ref)
	}
	return nil
}

// hostDisablePreservesPlan is
// Xapi_ha_vm_failover.assert_host_disable_preserves_ha_plan: with pool HA
// on and overcommit not allowed, a disable (or an evacuation) that turns
// an existing plan for the protected VMs into none fails with
// HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN.
func (p *Pool) hostDisablePreservesPlan(h *hostState) *apiError {
	pool := p.poolObj()
	if !p.haEnabled() || pool.boolean("ha_allow_overcommit") || len(p.protectedVMs()) == 0 {
		return nil
	}
	n := pool.integer("ha_host_failures_to_tolerate")
	if p.planExists(n) && !p.planExistsWithout(h, n) {
		return fail("HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN")
	}
	return nil
}

// planExistsWithout is planExists with h taken out of the pool.
func (p *Pool) planExistsWithout(h *hostState, n int64) bool {
	var mem []int64
	for _, x := range p.hosts {
		if x != h {
			mem = append(mem, p.metricsObj(x).integer("memory_total"))
		}
	}
	if n < 0 || n >= int64(len(mem)) {
		return false
	}
	slices.Sort(mem)
	var capacity, need int64
	for _, m := range mem[:int64(len(mem))-n] {
		capacity += m
	}
	for _, vm := range p.protectedVMs() {
		need += vm.integer("memory_static_max")
	}
	return need <= capacity
}

// vmPlan is one VM's entry of an evacuation plan: a target host or an
// error.
type vmPlan struct {
	vm     *object
	target *hostState
	err    *apiError
}

// evacuationPlan is compute_evacuation_plan_no_wlb (xapi_host.ml at
// XS62): only other hosts that are enabled (and live) are targets; with
// none, every guest gets NO_HOSTS_AVAILABLE [vm]. With pool HA on,
// unprotected guests get HOST_NOT_ENOUGH_FREE_MEMORY [vm] (they would have
// to be suspended). A guest that cannot migrate gets the pool_migrate
// operation's error (the lab's fault, see noMigrateError). The rest are bin-packed by memory,
// largest first; those that do not fit get HOST_NOT_ENOUGH_FREE_MEMORY [vm].
func (p *Pool) evacuationPlan(h *hostState) []vmPlan {
	vms := p.userVMsOn(h)
	plans := make([]vmPlan, len(vms))
	var targets []*hostState
	for _, x := range p.hosts {
		if x != h && p.hostObj(x).boolean("enabled") && p.metricsObj(x).boolean("live") {
			targets = append(targets, x)
		}
	}
	var movable []int
	for i, vm := range vms {
		plans[i].vm = vm
		protected := vm.boolean("ha_always_run") && vm.str("ha_restart_priority") == "restart"
		switch {
		case len(targets) == 0:
			plans[i].err = fail("NO_HOSTS_AVAILABLE", vm.ref)
		case p.noMigrate[vm.ref]:
			plans[i].err = p.noMigrateError(vm)
		case p.haEnabled() && !protected:
			plans[i].err = fail("HOST_NOT_ENOUGH_FREE_MEMORY", vm.ref)
		default:
			movable = append(movable, i)
		}
	}
	free := map[*hostState]int64{}
	for _, x := range targets {
		free[x] = p.freeMemory(x)
	}
	sort.SliceStable(movable, func(a, b int) bool { return vmNeed(vms[movable[a]]) > vmNeed(vms[movable[b]]) })
	for _, i := range movable {
		var best *hostState
		for _, x := range targets {
			if free[x] >= vmNeed(vms[i]) && (best == nil || free[x] > free[best]) {
				best = x
			}
		}
		if best == nil {
			plans[i].err = fail("HOST_NOT_ENOUGH_FREE_MEMORY", vms[i].ref)
			continue
		}
		free[best] -= vmNeed(vms[i])
		plans[i].target = best
	}
	return plans
}

func runAssertCanEvacuate(c *call) (Value, *apiError) {
	h, err := c.callHost(0)
	if err != nil {
		return Value{}, err
	}
	// assert_can_evacuate joins every error as code,params... with "|".
	var errs []string
	for _, pl := range c.p.evacuationPlan(h) {
		if pl.err != nil {
			errs = append(errs, strings.Join(append([]string{pl.err.code}, pl.err.params...), ","))
		}
	}
	if len(errs) > 0 {
		return Value{}, fail("CANNOT_EVACUATE_HOST", strings.Join(errs, "|"))
	}
	return String(""), nil
}

func runVMsPreventingEvacuation(c *call) (Value, *apiError) {
	h, err := c.callHost(0)
	if err != nil {
		return Value{}, err
	}
	var ms []Member
	for _, pl := range c.p.evacuationPlan(h) {
		if pl.err != nil {
			ms = append(ms, Member{Name: pl.vm.ref, Value: Strings(append([]string{pl.err.code}, pl.err.params...))})
		}
	}
	return Struct(ms...), nil
}

// runEvacuate is host.evacuate (message_forwarding.ml and xapi_host.ml at
// XS62): the HA plan check, then the plan; any VM's error fails the call
// before anything moves; else the guests move one by one with
// VM.pool_migrate and their resident_on follows. It does not disable the
// host: XenCenter calls host.disable first.
func runEvacuate(c *call) (Value, *apiError) {
	if err := c.onMaster(); err != nil {
		return Value{}, err
	}
	h, err := c.callHost(0)
	if err != nil {
		return Value{}, err
	}
	p := c.p
	if err := p.hostDisablePreservesPlan(h); err != nil {
		return Value{}, err
	}
	if err := p.assertNoOp(h); err != nil {
		return Value{}, err
	}
	plans := p.evacuationPlan(h)
	for _, pl := range plans {
		if pl.err != nil {
			return Value{}, pl.err
		}
	}
	p.setOp(h, opEvacuate)
	defer func() {
		if h.op == opEvacuate {
			p.setOp(h, "")
		}
	}()
	p.log.Info("evacuating host", "host", h.name, "vms", len(plans))
	for _, pl := range plans {
		if err := p.poolMigrate(c, pl.vm, pl.target); err != nil {
			// VM_BAD_POWER_STATE is ignored: the VM stopped meanwhile.
			if err.code == "VM_BAD_POWER_STATE" {
				continue
			}
			return Value{}, err
		}
	}
	return String(""), nil
}

// noMigrateError is what pool_migrate's operation check answers for a VM
// that cannot move (the lab's migration fault): an HVM guest without PV
// drivers gets VM_MISSING_PV_DRIVERS [vm] on 6.2 (xapi_vm_lifecycle.ml at
// XS62) and, lacking feature-suspend, VM_LACKS_FEATURE [vm] on 7.x
// (check_op_for_feature, xapi_vm_lifecycle.ml at 1.14-lcm).
func (p *Pool) noMigrateError(vm *object) *apiError {
	if p.is62 {
		return fail("VM_MISSING_PV_DRIVERS", vm.ref)
	}
	return fail("VM_LACKS_FEATURE", vm.ref)
}

// checkMigrate is VM.pool_migrate's checks (message_forwarding.ml,
// xapi_vm_helpers.ml assert_can_boot_here at XS62): the VM runs, the
// target is live (HOST_OFFLINE) and enabled (HOST_DISABLED), the VM can
// migrate, and the target has the memory (HOST_NOT_ENOUGH_FREE_MEMORY
// [needed, available]).
func (p *Pool) checkMigrate(vm *object, to *hostState) *apiError {
	if ps := vm.str("power_state"); ps != "Running" {
		return fail("VM_BAD_POWER_STATE", vm.ref, "running", strings.ToLower(ps))
	}
	if !p.metricsObj(to).boolean("live") || !reachable(to) {
		return fail("HOST_OFFLINE", to.ref)
	}
	if vm.str("resident_on") == to.ref {
		return nil
	}
	if !p.hostObj(to).boolean("enabled") {
		return fail("HOST_DISABLED", to.ref)
	}
	if p.noMigrate[vm.ref] {
		return p.noMigrateError(vm)
	}
	if need, free := vmNeed(vm), p.freeMemory(to); need > free {
		return fail("HOST_NOT_ENOUGH_FREE_MEMORY", strconv.FormatInt(need, 10), strconv.FormatInt(free, 10))
	}
	return nil
}

// poolMigrate live-migrates vm to the host to: the checks, the migration
// time with the pool unlocked, the checks again, then the move.
func (p *Pool) poolMigrate(c *call, vm *object, to *hostState) *apiError {
	if err := p.checkMigrate(vm, to); err != nil {
		return err
	}
	if from := p.hostByRef(vm.str("resident_on")); from != nil && !reachable(from) {
		return fail("CANNOT_CONTACT_HOST", from.ref)
	}
	if err := p.sleep(c.ctx, p.durations().MigrateVM.D()); err != nil {
		return fail("INTERNAL_ERROR", "migration interrupted: "+err.Error())
	}
	if err := p.checkMigrate(vm, to); err != nil {
		return err
	}
	p.moveVM(vm, to)
	return nil
}

// moveVM sets the VM resident on to (VM.pool_migrate_complete,
// xapi_vm_migrate.ml: resident_on is set once the domain has moved).
func (p *Pool) moveVM(vm *object, to *hostState) {
	from := p.hostByRef(vm.str("resident_on"))
	if from == to {
		return
	}
	if from != nil {
		fo := p.hostObj(from)
		p.db.setField(fo, "resident_VMs", without(fo.set("resident_VMs"), vm.ref))
	}
	to2 := p.hostObj(to)
	p.db.setField(to2, "resident_VMs", appendUnique(to2.set("resident_VMs"), vm.ref))
	p.db.setField(vm, "resident_on", to.ref)
	p.refreshMemory()
	p.log.Info("VM migrated", "vm", vm.str("name_label"), "to", to.name)
}

func runPoolMigrate(c *call) (Value, *apiError) {
	if err := c.onMaster(); err != nil {
		return Value{}, err
	}
	vm, err := c.obj("VM", c.str(0))
	if err != nil {
		return Value{}, err
	}
	if vm.boolean("is_control_domain") {
		return Value{}, fail("OPERATION_NOT_ALLOWED", "Control domains cannot be migrated")
	}
	to, err := c.callHost(1)
	if err != nil {
		return Value{}, err
	}
	if err := c.p.poolMigrate(c, vm, to); err != nil {
		return Value{}, err
	}
	return String(""), nil
}

// runHostPower is host.reboot or host.shutdown (xapi_host.ml at XS62,
// shutdown_and_reboot_common; message_forwarding.ml). The host must be
// disabled (HOST_NOT_DISABLED); with pool HA on it must reach the
// statefile (HA_LOST_STATEFILE) and then leaves HA cleanly
// (Xapi_ha.before_clean_shutdown_or_reboot: no fencing, no restarts of its
// VMs). host_disabled_until_reboot is set, so host.enable answers
// HOST_DISABLED_UNTIL_REBOOT until the host has booted; the master holds
// the host dead at once (Xapi_host_helpers.mark_host_as_dead). The power
// goes off after the shutdown time; a reboot then boots the host unless
// the lab holds its boot.
func runHostPower(reboot bool) func(c *call) (Value, *apiError) {
	return func(c *call) (Value, *apiError) {
		h, err := c.callHost(0)
		if err != nil {
			return Value{}, err
		}
		p := c.p
		if err := p.assertNoOp(h); err != nil {
			return Value{}, err
		}
		if err := c.forward(h); err != nil {
			return Value{}, err
		}
		if p.hostObj(h).boolean("enabled") {
			return Value{}, fail("HOST_NOT_DISABLED")
		}
		if p.haEnabled() && h.armed {
			if !p.statefileAccess(h) {
				return Value{}, fail("HA_LOST_STATEFILE")
			}
			h.inLiveset = false
			h.cleanExit = true
		}
		h.disabledUntilReboot = true
		op := opShutdown
		if reboot {
			op = opReboot
		}
		p.setOp(h, op)
		if h != p.serving() {
			p.db.setField(p.metricsObj(h), "live", false)
		}
		p.log.Info("host power operation requested", "operation", op, "host", h.name)
		p.afterHost(h, p.durations().HostShutdown.D(), func() { p.cleanPowerOff(h, reboot) })
		return String(""), nil
	}
}

// cleanPowerOff ends a host.reboot or host.shutdown: the power goes off;
// a master that left pool HA cleanly makes the others elect a new one at
// their next liveset poll (Xapi_ha monitor, on_master_failure), without
// waiting for the HA timeout.
func (p *Pool) cleanPowerOff(h *hostState, reboot bool) {
	wasMaster := p.serving() == h
	p.powerOff(h)
	p.setOp(h, "")
	if wasMaster && h.cleanExit && p.haEnabled() {
		p.scheduleElectionAfter(p.durations().HAMonitorInterval.D())
	}
	if !reboot {
		return
	}
	if h.holdBoot {
		h.bootStalled = true
		p.log.Info("reboot held: host stays off", "host", h.name)
		return
	}
	p.powerOn(h)
}

// runDesignateNewMaster is pool.designate_new_master (message_forwarding.ml,
// xapi_pool.ml and xapi_pool_transition.ml at XS62): forwarded to the new
// master (HOST_OFFLINE when not live); a no-op on the master itself;
// HA_IS_ENABLED while pool HA is on. Phase 1 proposes the new master to
// every host and fails if one cannot be reached; phase 2 makes every other
// host point at the new master and restart xapi, the new master last. The
// master's sessions are lost and, once the new master starts, every host
// stays enabled=false until it re-enables itself.
func runDesignateNewMaster(c *call) (Value, *apiError) {
	if err := c.onMaster(); err != nil {
		return Value{}, err
	}
	h, err := c.callHost(0)
	if err != nil {
		return Value{}, err
	}
	p := c.p
	if err := c.forward(h); err != nil {
		return Value{}, err
	}
	if h == p.serving() {
		return String(""), nil
	}
	if p.haEnabled() {
		return Value{}, fail("HA_IS_ENABLED")
	}
	for _, x := range p.hosts {
		if !reachable(x) {
			return Value{}, fail("INTERNAL_ERROR",
				fmt.Sprintf("Unix.Unix_error(Unix.ECONNREFUSED, \"connect\", \"\") connecting to %s", x.address))
		}
	}
	old := p.master
	p.log.Info("designating a new master", "host", h.name, "previous", old.name)
	// From the commit on, the old master's database is no longer the
	// pool's: its sessions are gone.
	p.master = h
	p.sessions = map[string]*session{}
	p.db.bump()
	for _, x := range p.hosts {
		if x == h {
			continue
		}
		p.restartAfterFuse(x, func() {
			x.conf = h.address
			p.startXAPI(x)
		})
	}
	p.afterHost(h, p.durations().MasterFuse.D(), func() {
		p.restartXAPI(h, func() {
			h.conf = "master"
			p.startXAPI(h)
		})
	})
	return String(""), nil
}

// SetVMMigrationFault makes a VM unable to live-migrate (fail true) or
// able again: VM.pool_migrate, host.evacuate and the evacuation checks
// answer VM_MISSING_PV_DRIVERS [vm] (6.2) or VM_LACKS_FEATURE [vm] (7.x)
// for it, as for an HVM guest without PV drivers, and MigrateVM fails.
func (p *Pool) SetVMMigrationFault(name string, fail bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	vm := p.vmByName(name)
	if vm == nil {
		return fmt.Errorf("%w: VM %q in pool %q", ErrNotFound, name, p.cfg.Name)
	}
	if fail {
		p.noMigrate[vm.ref] = true
	} else {
		delete(p.noMigrate, vm.ref)
	}
	p.log.Info("VM migration fault changed", "vm", name, "fail", fail)
	return nil
}

// MigrateVM moves a running VM to a host of the pool at once, as the end
// of a VM.pool_migrate does (the caller has spent the migration time). It
// fails with ErrNotFound for an unknown VM or host and ErrConflict when
// VM.pool_migrate would refuse (target not live or disabled, no memory,
// migration fault, VM not running).
func (p *Pool) MigrateVM(name, host string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	vm, to, err := p.vmAndHost(name, host)
	if err != nil {
		return err
	}
	if e := p.checkMigrate(vm, to); e != nil {
		return fmt.Errorf("%w: migrating %s to %s: %s", ErrConflict, name, host, e.Error())
	}
	if from := p.hostByRef(vm.str("resident_on")); from != nil && !reachable(from) {
		return fmt.Errorf("%w: migrating %s: host %s cannot be reached", ErrConflict, name, from.name)
	}
	p.moveVM(vm, to)
	return nil
}

// HoldBoot makes the host's next reboot stall: it stays off after its
// shutdown until ReleaseBoot (or PowerOn).
func (p *Pool) HoldBoot(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, err := p.host(name)
	if err != nil {
		return err
	}
	h.holdBoot = true
	return nil
}

// ReleaseBoot undoes HoldBoot; a reboot stalled by it goes on booting.
func (p *Pool) ReleaseBoot(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, err := p.host(name)
	if err != nil {
		return err
	}
	h.holdBoot = false
	if h.bootStalled && h.power == powerOff {
		h.bootStalled = false
		p.powerOn(h)
	}
	return nil
}

// StartVM starts a halted VM on a host of the pool at once, as VM.start_on
// does once the VM has booted (the caller has spent the start time):
// CloudStack's XenServer resource restarts an HA-enabled VM that way after
// its host went down (CitrixResourceBase's StartCommand). It fails with
// ErrNotFound for an unknown VM or host and ErrConflict when VM.start_on
// would refuse (VM not halted, host not live or disabled, no memory:
// xapi_vm_helpers.ml, assert_can_boot_here).
func (p *Pool) StartVM(name, host string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	vm, to, err := p.vmAndHost(name, host)
	if err != nil {
		return err
	}
	var e *apiError
	switch {
	case vm.str("power_state") != "Halted":
		e = fail("VM_BAD_POWER_STATE", vm.ref, "halted", strings.ToLower(vm.str("power_state")))
	case !p.metricsObj(to).boolean("live") || !reachable(to):
		e = fail("HOST_OFFLINE", to.ref)
	case !p.hostObj(to).boolean("enabled"):
		e = fail("HOST_DISABLED", to.ref)
	default:
		if need, free := vmNeed(vm), p.freeMemory(to); need > free {
			e = fail("HOST_NOT_ENOUGH_FREE_MEMORY", strconv.FormatInt(need, 10), strconv.FormatInt(free, 10))
		}
	}
	if e != nil {
		return fmt.Errorf("%w: starting %s on %s: %s", ErrConflict, name, host, e.Error())
	}
	p.db.setField(vm, "power_state", "Running")
	p.db.setField(vm, "domid", int64(len(p.hostObj(to).set("resident_VMs"))+1))
	p.moveVM(vm, to)
	p.log.Info("VM started", "vm", name, "host", host)
	return nil
}

// vmAndHost finds a VM by name_label and a host by name; ErrNotFound for
// either unknown.
func (p *Pool) vmAndHost(vm, host string) (*object, *hostState, error) {
	o := p.vmByName(vm)
	if o == nil {
		return nil, nil, fmt.Errorf("%w: VM %q in pool %q", ErrNotFound, vm, p.cfg.Name)
	}
	h, err := p.host(host)
	if err != nil {
		return nil, nil, err
	}
	return o, h, nil
}
