package xapisim

import (
	"context"
	"slices"
	"strconv"
	"time"

	"xsha/sim/scenario"
)

// The HA state machine. Every function here runs with p.mu held.

func (p *Pool) durations() scenario.Durations { return p.sc.Durations }

// powerOff is a hard power loss.
func (p *Pool) powerOff(h *hostState) {
	wasServing := p.serving() == h
	h.power = powerOff
	h.xapi = false
	h.epoch++
	h.local = map[string]*session{}
	h.inLiveset = false
	h.haDaemonStopped = false
	h.disabledByAdmin = false
	h.waitingHA = false
	h.pendingJoin = false
	h.emergency, h.emKind = nil, emNone
	h.lostVMs = nil
	if h.op != "" {
		p.setOp(h, "")
	}
	h.ep.close()
	p.log.Info("host powered off", "host", h.name)
	if p.master == h {
		p.sessions = map[string]*session{}
		p.db.bump()
		if wasServing && p.haEnabled() {
			p.scheduleElection()
		}
		return
	}
	p.hostUnreachable(h)
}

// powerOn boots h; xapi starts after the boot and start-up times.
func (p *Pool) powerOn(h *hostState) {
	h.power = powerBooting
	h.epoch++
	p.log.Info("host powering on", "host", h.name)
	h.bootStalled = false
	p.afterHost(h, p.durations().Boot.D(), func() {
		h.power = powerOn
		h.epoch++
		// xapi.ml clears host_disabled_until_reboot on system boot.
		h.disabledUntilReboot = false
		p.afterHost(h, p.durations().XAPIStart.D(), func() { p.startXAPI(h) })
	})
}

// restartXAPI stops h's xapi and starts it again after the start-up time,
// then runs then. What xapi holds in memory only is lost, such as an
// administrator's host.disable (xapi_host.ml).
func (p *Pool) restartXAPI(h *hostState, then func()) {
	h.xapi = false
	h.epoch++
	h.local = map[string]*session{}
	h.pendingJoin = false
	h.disabledByAdmin = false
	// A pending reboot or shutdown dies with xapi (its delayed shutdown
	// runs in xapi's process) and xapi's start-up resets the operation;
	// host_disabled_until_reboot stays in the local database.
	if h.op != "" {
		p.setOp(h, "")
	}
	h.ep.close()
	if p.master == h {
		p.sessions = map[string]*session{}
		p.db.bump()
	}
	p.afterHost(h, p.durations().XAPIStart.D(), then)
}

// restartAfterFuse restarts h's xapi after the fuse time.
func (p *Pool) restartAfterFuse(h *hostState, then func()) {
	p.afterHost(h, p.durations().MasterFuse.D(), func() { p.restartXAPI(h, then) })
}

// startXAPI is xapi (re)starting on h: it decides, from the host's local
// state and what it can see of the pool, whether h is master, slave or in
// emergency mode. It follows xapi.ml's start-up order at XS62: the HA
// start-up loop (Xapi_ha.on_server_restart) runs before Pool.hello.
func (p *Pool) startXAPI(h *hostState) {
	h.xapi = true
	h.emergency, h.emKind = nil, emNone
	h.waitingHA = false
	// on_server_restart starts the HA daemon again while ha.armed is set.
	h.haDaemonStopped = false
	if err := h.ep.open(); err != nil {
		p.log.Error("cannot open endpoint", "host", h.name, "err", err)
	}
	other := p.serving()
	if other == h {
		other = nil
	}
	haOn := p.haEnabled()
	selfRejoin := p.cfg.ReturningHost == scenario.ReturningHostSelfRejoin
	if selfRejoin && h.armed && !haOn {
		// The daemon finds the pool state invalid (a completed disable_ha
		// went through the statefile) or the master confirms HA is off:
		// MTC_EXIT_INVALID_POOL_STATE disarms the host and start-up goes
		// on (xapi_ha.ml, on_server_restart).
		h.armed = false
		h.inLiveset = false
		p.log.Info("HA start-up found pool HA disabled: host disarmed itself", "host", h.name)
	}
	armed := h.armed
	clean := h.cleanExit
	h.cleanExit = false
	if h.conf == "master" {
		switch {
		case armed && other == nil && p.master == h:
			p.masterStart(h)
			return
		case armed && (selfRejoin || clean) && other != nil && p.statefileAccess(h):
			// xhad joins the running liveset; ha_propose_master is refused,
			// so on_master_failure makes the host a slave of the liveset's
			// master (become_another_masters_slave restarts xapi).
			h.inLiveset = true
			h.conf = other.address
			p.log.Info("old master joined the liveset: restarting as a slave", "host", h.name, "master", other.name)
			p.restartXAPI(h, func() { p.startXAPI(h) })
			return
		case armed:
			// xhad cannot join a liveset that has moved on without it
			// (stuck), or cannot reach the statefile (self_rejoin too).
			p.enterHAStartupLoop(h)
			return
		case other == nil:
			p.master = h
			p.masterStart(h)
			return
		}
		// check_no_other_masters: another master runs, so demote.
		h.conf = other.address
	}
	// A host excluded by a clean shutdown joins the liveset again
	// (Xapi_ha.before_clean_shutdown_or_reboot, ha_set_excluded).
	if armed && haOn && (selfRejoin || clean) && !h.inLiveset {
		if !p.statefileAccess(h) {
			p.enterHAStartupLoop(h)
			return
		}
		// The daemon joins the running liveset.
		h.inLiveset = true
	}
	if other != nil && h.conf != other.address && p.learnsNewMaster(h) {
		h.conf = other.address
	}
	// A slave asks the master its pool.conf names (Pool.hello) and stays
	// in emergency mode until that master answers.
	if other == nil || !reachable(other) || other.address != h.conf {
		p.enterEmergency(h, emMasterUnreachable, "INTERNAL_ERROR",
			"Unix.Unix_error(Unix.ECONNREFUSED, \"connect\", \"\") connecting to "+h.conf)
		return
	}
	switch {
	case haOn && armed && h.inLiveset:
		p.join(h)
	case haOn && armed:
		// stuck: a returning host cannot join a running liveset: it
		// waits, not live, until pool HA is disabled.
		h.role = RoleSlave
		h.waitingHA = true
		p.db.setField(p.metricsObj(h), "live", false)
		p.db.setField(p.hostObj(h), "enabled", false)
		p.log.Info("slave waiting for pool HA to be disabled", "host", h.name)
	case haOn:
		// resynchronise_ha_state (xapi.ml): locally disarmed, pool armed.
		p.enterEmergency(h, emPoolHAHostDisabled, "HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED")
	default:
		// The master confirms HA is off: disarm.
		h.armed = false
		p.join(h)
	}
}

// enterHAStartupLoop is Xapi_ha.on_server_restart retrying
// ha_start_daemon every 10 s: emergency mode with
// HA_HOST_CANNOT_ACCESS_STATEFILE when the host cannot reach the statefile,
// else the pool's configured error.
func (p *Pool) enterHAStartupLoop(h *hostState) {
	code := p.cfg.EmergencyError
	if !p.statefileAccess(h) {
		code = scenario.ErrHostCannotAccessStatefile
	}
	p.enterEmergency(h, emHAStartup, code)
}

// learnsNewMaster reports whether h follows a new master by itself: only a
// host taking part in pool HA learns of it, through the liveset. Any other
// keeps asking the master its pool.conf names until
// pool.emergency_reset_master or pool.recover_slaves points it elsewhere.
func (p *Pool) learnsNewMaster(h *hostState) bool {
	return p.haEnabled() && h.armed && !h.haDaemonStopped
}

func (p *Pool) enterEmergency(h *hostState, kind emKind, code string, params ...string) {
	h.role = RoleEmergency
	h.emKind = kind
	h.emergency = append([]string{code}, params...)
	h.waitingHA = false
	p.log.Info("host in emergency mode", "host", h.name, "error", code)
	if m := p.serving(); m != nil && h != m {
		p.db.setField(p.metricsObj(h), "live", false)
	}
}

// join makes h a slave of the master its pool.conf names.
func (p *Pool) join(h *hostState) {
	h.role = RoleSlave
	h.waitingHA = false
	h.emergency, h.emKind = nil, emNone
	if !p.connected(h) {
		return
	}
	p.log.Info("slave joined", "host", h.name, "master", h.conf)
	p.db.setField(p.metricsObj(h), "live", true)
	p.resyncVMs(h)
	p.db.setField(p.metricsObj(h), "last_updated", time.Now().UTC().Truncate(time.Second))
	p.afterHost(h, p.durations().HostReenable.D(), func() {
		// A host whose host_disabled_until_reboot is still set (an xapi
		// restart after host.reboot) stays disabled
		// (xapi_host_helpers.ml at XS62).
		if p.connected(h) && !h.disabledByAdmin && !h.disabledUntilReboot {
			p.db.setField(p.hostObj(h), "enabled", true)
		}
	})
}

// masterStart is xapi starting as master on h: a new database session
// (token space), every host disabled until it re-enables itself, liveness
// recomputed.
func (p *Pool) masterStart(h *hostState) {
	prev := p.master
	p.master = h
	h.role = RoleMaster
	h.conf = "master"
	h.emergency, h.emKind = nil, emNone
	h.waitingHA = false
	p.sessions = map[string]*session{}
	p.db.restart()
	pool := p.poolObj()
	p.db.setField(pool, "master", h.ref)
	for _, x := range p.hosts {
		p.db.setField(p.hostObj(x), "enabled", false)
	}
	if p.haEnabled() && !h.armed {
		// A master starting disarmed turns pool HA off
		// (resynchronise_ha_state, xapi.ml).
		p.setPoolHAOff()
	}
	haOn := p.haEnabled()
	now := time.Now().UTC().Truncate(time.Second)
	for _, x := range p.hosts {
		m := p.metricsObj(x)
		switch {
		case x == h || p.connected(x):
			p.db.setField(m, "live", true)
			p.db.setField(m, "last_updated", now)
		case haOn:
			alive := x.inLiveset && x.power == powerOn
			p.db.setField(m, "live", alive)
			if !alive && x.power == powerOff {
				p.markDead(x)
			}
		default:
			p.scheduleDeadCheck(x)
		}
	}
	if prev != h {
		p.log.Info("new master", "host", h.name, "previous", prev.name)
	} else {
		p.log.Info("master started", "host", h.name)
	}
	p.afterHost(h, p.durations().HostReenable.D(), func() {
		for _, x := range p.hosts {
			if (x == h || p.connected(x)) && !x.disabledByAdmin && !x.disabledUntilReboot {
				p.db.setField(p.hostObj(x), "enabled", true)
			}
		}
	})
	// Liveset members still following another master notice the new one
	// and restart as its slaves (become_another_masters_slave).
	if haOn {
		for _, x := range p.hosts {
			if x != h && reachable(x) && x.role == RoleSlave && x.inLiveset && x.conf != h.address {
				p.restartAfterFuse(x, func() {
					x.conf = h.address
					p.startXAPI(x)
				})
			}
		}
	}
	p.reconsider()
}

// hostUnreachable: a slave went off or lost its network.
func (p *Pool) hostUnreachable(h *hostState) {
	if h == p.master {
		return
	}
	if p.haEnabled() && h.inLiveset {
		// xHA heartbeats are independent of the management network here;
		// only a power loss takes a host out of the liveset.
		return
	}
	if p.haEnabled() && h.power == powerOff {
		m := p.serving()
		if m == nil {
			return
		}
		p.afterHost(h, p.haTimeout+p.durations().HAMonitorInterval.D(), func() {
			if p.serving() == m && h.power == powerOff {
				p.markDead(h)
			}
		})
		return
	}
	p.scheduleDeadCheck(h)
}

// scheduleDeadCheck marks h dead after the host_assumed_dead interval
// without heartbeats (no pool HA).
func (p *Pool) scheduleDeadCheck(h *hostState) {
	m := p.serving()
	if m == nil {
		return
	}
	p.after(p.durations().HostAssumedDead.D(), func() {
		if p.serving() == m && !p.connected(h) && h != m {
			p.markDead(h)
		}
	})
}

// hostReachable: an isolated host got its network back.
func (p *Pool) hostReachable(h *hostState) {
	if p.connected(h) {
		p.db.setField(p.metricsObj(h), "live", true)
		p.resyncVMs(h)
	}
	p.reconsider()
}

// resyncVMs is a slave reporting the VMs it kept running while the master
// held it dead (it was cut off, not powered off).
func (p *Pool) resyncVMs(h *hostState) {
	ho := p.hostObj(h)
	for _, ref := range h.lostVMs {
		vm, ok := p.db.get(ref)
		if !ok || vm.str("power_state") != "Halted" || vm.str("resident_on") != NullRef {
			continue
		}
		p.db.setField(vm, "power_state", "Running")
		p.db.setField(vm, "resident_on", h.ref)
		p.db.setField(ho, "resident_VMs", appendUnique(ho.set("resident_VMs"), ref))
	}
	h.lostVMs = nil
}

// markDead sets host_metrics.live=false and resets h's resident VMs:
// protected VMs restart on the master when pool HA is on, others halt.
func (p *Pool) markDead(h *hostState) {
	p.log.Info("host declared dead", "host", h.name)
	p.db.setField(p.metricsObj(h), "live", false)
	m := p.serving()
	for _, vm := range p.db.all("VM") {
		if vm.str("resident_on") != h.ref || vm.boolean("is_control_domain") {
			continue
		}
		protected := vm.boolean("ha_always_run") && vm.str("ha_restart_priority") != ""
		if protected && p.haEnabled() && m != nil && m != h {
			p.db.setField(vm, "resident_on", m.ref)
			mh := p.hostObj(m)
			p.db.setField(mh, "resident_VMs", appendUnique(mh.set("resident_VMs"), vm.ref))
		} else {
			if h.power == powerOn {
				// Cut off, not dead: the VM still runs there.
				h.lostVMs = append(h.lostVMs, vm.ref)
			}
			p.db.setField(vm, "power_state", "Halted")
			p.db.setField(vm, "resident_on", NullRef)
			p.db.setField(vm, "domid", int64(-1))
			p.db.setField(vm, "ha_always_run", false)
		}
		ho := p.hostObj(h)
		p.db.setField(ho, "resident_VMs", without(ho.set("resident_VMs"), vm.ref))
	}
}

// scheduleElection runs the xHA master election after the HA timeout and
// a liveset poll.
func (p *Pool) scheduleElection() {
	p.scheduleElectionAfter(p.haTimeout + p.durations().HAMonitorInterval.D())
}

// scheduleElectionAfter runs the xHA master election after d.
func (p *Pool) scheduleElectionAfter(d time.Duration) {
	p.electionEpoch++
	e := p.electionEpoch
	p.log.Info("master lost with pool HA on; election pending", "timeout", p.haTimeout)
	p.after(d, func() {
		if p.electionEpoch != e || p.serving() != nil || !p.haEnabled() {
			return
		}
		p.elect()
	})
}

func (p *Pool) elect() {
	old := p.master
	var members, candidates []*hostState
	for _, x := range hostsByUUID(p.hosts) {
		if x != old && x.power == powerOn && x.xapi && x.inLiveset && x.armed && !x.haDaemonStopped {
			members = append(members, x)
			if p.statefileAccess(x) {
				candidates = append(candidates, x)
			}
		}
	}
	if len(candidates) == 0 {
		p.log.Warn("no host can become master", "members", len(members))
		return
	}
	// Members without the statefile are not in the surviving partition:
	// they fence (reboot).
	for _, x := range members {
		if !p.statefileAccess(x) {
			p.log.Info("host fenced", "host", x.name)
			p.powerOff(x)
			p.powerOn(x)
		}
	}
	// The new master marks the old one dead when it starts, restarting its
	// protected VMs.
	winner := candidates[0]
	p.log.Info("master elected", "host", winner.name, "previous", old.name)
	p.master = winner
	old.inLiveset = false
	p.restartAfterFuse(winner, func() {
		winner.conf = "master"
		p.startXAPI(winner)
	})
}

// reconsider schedules a rejoin for every host whose obstacle is gone.
func (p *Pool) reconsider() {
	haOn := p.haEnabled()
	m := p.serving()
	for _, x := range p.hosts {
		if x.power != powerOn || !x.xapi || x.pendingJoin || x == m {
			continue
		}
		selfRejoin := p.cfg.ReturningHost == scenario.ReturningHostSelfRejoin
		switch {
		case x.role == RoleEmergency && x.emKind == emMasterUnreachable && m != nil && reachable(m) &&
			(x.conf == m.address || p.learnsNewMaster(x)):
		case x.role == RoleEmergency && x.emKind == emPoolHAHostDisabled && !haOn:
		case x.role == RoleEmergency && x.emKind == emHAStartup && selfRejoin &&
			(!haOn || (m != nil && p.statefileAccess(x))):
			// self_rejoin: the start-up loop's next attempt succeeds, or
			// finds pool HA disabled and disarms (xapi_ha.ml,
			// on_server_restart).
		case x.role == RoleSlave && x.waitingHA && !haOn && !x.armed:
		default:
			continue
		}
		x.pendingJoin = true
		p.afterHost(x, p.durations().RejoinDelay.D(), func() {
			x.pendingJoin = false
			p.startXAPI(x)
		})
	}
}

// updatePlan is the HA planner's update_pool_status
// (xapi_ha_vm_failover.ml at XS62): with a plan for
// ha_host_failures_to_tolerate failures the pool is not overcommitted and
// ha_plan_exists_for follows the setting; without one
// (mark_pool_as_overcommitted) ha_plan_exists_for drops to what can be
// planned for and the pool is overcommitted.
func (p *Pool) updatePlan() {
	pool := p.poolObj()
	n := pool.integer("ha_host_failures_to_tolerate")
	if p.planExists(n) {
		p.db.setField(pool, "ha_plan_exists_for", n)
		p.db.setField(pool, "ha_overcommitted", false)
		return
	}
	p.db.setField(pool, "ha_plan_exists_for", min(n, p.maxFailuresToTolerate()))
	p.db.setField(pool, "ha_overcommitted", true)
}

// protectedVMs returns the VMs xHA must keep running
// (Helpers.vm_should_always_run: ha_always_run and priority "restart").
func (p *Pool) protectedVMs() []*object {
	var out []*object
	for _, vm := range p.db.all("VM") {
		if vm.boolean("ha_always_run") && vm.str("ha_restart_priority") == "restart" {
			out = append(out, vm)
		}
	}
	return out
}

// planExists is plan_for_n_failures (xapi_ha_vm_failover.ml): can the
// protected VMs run on whatever hosts survive n failures? With no
// protected VM there is nothing to place and a plan always exists; with
// one, no plan survives the loss of every host. The lab's bin packing is a
// simplification: the protected VMs' memory must fit in the memory of the
// hosts left when the n largest fail.
func (p *Pool) planExists(n int64) bool {
	vms := p.protectedVMs()
	if len(vms) == 0 {
		return true
	}
	if n < 0 || n >= int64(len(p.cfg.Hosts)) {
		return false
	}
	mem := make([]int64, 0, len(p.cfg.Hosts))
	for _, h := range p.cfg.Hosts {
		mem = append(mem, h.MemoryMiB<<20)
	}
	slices.Sort(mem)
	var capacity, need int64
	for _, m := range mem[:int64(len(mem))-n] {
		capacity += m
	}
	for _, vm := range vms {
		need += vm.integer("memory_static_max")
	}
	return need <= capacity
}

// maxFailuresToTolerate is compute_max_host_failures_to_tolerate: the
// largest n in 0..hosts with a plan (Helpers.bisect), so at most hosts-1
// when a VM is protected.
func (p *Pool) maxFailuresToTolerate() int64 {
	var best int64
	for n := int64(0); n <= int64(len(p.cfg.Hosts)); n++ {
		if !p.planExists(n) {
			break
		}
		best = n
	}
	return best
}

// setFailuresToTolerate is pool.set_ha_host_failures_to_tolerate
// (xapi_pool.ml at XS62): a change that would turn an existing plan into
// none fails with HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN
// (assert_configuration_change_preserves_ha_plan, only with pool HA on and
// ha_allow_overcommit false); the planner then runs whether HA is on or not.
func (p *Pool) setFailuresToTolerate(pool *object, n int64) *apiError {
	if n < 0 {
		return fail("INVALID_VALUE", "ha_host_failures_to_tolerate", strconv.FormatInt(n, 10))
	}
	if cur := pool.integer("ha_plan_exists_for"); cur > 0 && p.haEnabled() && !pool.boolean("ha_allow_overcommit") &&
		p.planExists(cur) && !p.planExists(n) {
		return fail("HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN")
	}
	p.db.setField(pool, "ha_host_failures_to_tolerate", n)
	p.updatePlan()
	return nil
}

// setPoolHAOff clears the pool's HA flags (statefiles and configuration
// stay, as disable_ha leaves them).
func (p *Pool) setPoolHAOff() {
	pool := p.poolObj()
	p.db.setField(pool, "ha_enabled", false)
	p.db.setField(pool, "ha_plan_exists_for", int64(0))
	p.db.setField(pool, "redo_log_enabled", false)
	if !p.is62 {
		p.db.setField(pool, "allowed_operations", []string{"ha_enable"})
	}
}

// lockHAOp serialises enable_ha/disable_ha. On 6.2 a second call waits; on
// 7.x it fails with HA_ENABLE_IN_PROGRESS or HA_DISABLE_IN_PROGRESS.
func (p *Pool) lockHAOp(ctx context.Context, op string) *apiError {
	for {
		select {
		case p.haSem <- struct{}{}:
			p.haOp = op
			if !p.is62 {
				p.db.setField(p.poolObj(), "current_operations", map[string]string{"OpaqueRef:" + newUUID(): op})
			}
			return nil
		default:
		}
		if !p.is62 {
			if p.haOp == "ha_enable" {
				return &apiError{code: "HA_ENABLE_IN_PROGRESS"}
			}
			return &apiError{code: "HA_DISABLE_IN_PROGRESS"}
		}
		p.mu.Unlock()
		select {
		case p.haSem <- struct{}{}:
			p.mu.Lock()
			p.haOp = op
			return nil
		case <-ctx.Done():
			p.mu.Lock()
			return &apiError{code: "INTERNAL_ERROR", params: []string{"cancelled"}}
		case <-p.done:
			p.mu.Lock()
			return &apiError{code: "INTERNAL_ERROR", params: []string{"shutting down"}}
		}
	}
}

func (p *Pool) unlockHAOp() {
	p.haOp = ""
	if !p.is62 {
		p.db.setField(p.poolObj(), "current_operations", map[string]string{})
	}
	<-p.haSem
}

// waitOperation releases the pool for the unscaled duration d of a long
// xapi operation, which runs to completion even if the caller goes away.
// It fails when the pool closes or the master restarted meanwhile.
func (p *Pool) waitOperation(m *hostState, d time.Duration, op string) *apiError {
	epoch := m.epoch
	if p.sleep(context.Background(), d) != nil {
		return &apiError{code: "INTERNAL_ERROR", params: []string{"shutting down"}}
	}
	if p.serving() != m || m.epoch != epoch {
		return &apiError{code: "INTERNAL_ERROR", params: []string{"master restarted during " + op}}
	}
	return nil
}

// enableHA is pool.enable_ha on the serving master, in the order of
// Xapi_ha.enable (xapi_ha.ml at XS62 and 1.14-lcm): HA_IS_ENABLED,
// LICENSE_RESTRICTION, REQUIRED_PIF_IS_UNPLUGGED, HOST_OFFLINE, the
// statefile SR; then the statefile VDIs and ha_configuration are recorded
// and the hosts join the liveset. A failure after that runs disable_internal
// and leaves pool HA off, with ha_statefiles and ha_configuration as the
// failed attempt wrote them.
func (p *Pool) enableHA(ctx context.Context, srs []string, config map[string]string) *apiError {
	if p.haEnabled() {
		return &apiError{code: "HA_IS_ENABLED"}
	}
	if e := p.lockHAOp(ctx, "ha_enable"); e != nil {
		return e
	}
	defer p.unlockHAOp()
	if p.haEnabled() {
		return &apiError{code: "HA_IS_ENABLED"}
	}
	if p.haRestricted() {
		// Pool_features: 6.2 raises it bare, 7.x names the feature.
		if p.is62 {
			return fail("LICENSE_RESTRICTION")
		}
		return fail("LICENSE_RESTRICTION", "HA")
	}
	var unplugged []string
	for _, x := range p.hosts {
		if x.requiredPIFUnplugged {
			unplugged = append(unplugged, p.requiredPIFRef(x))
		}
	}
	if len(unplugged) > 0 {
		return fail("REQUIRED_PIF_IS_UNPLUGGED", unplugged...)
	}
	for _, x := range p.hosts {
		if !p.metricsObj(x).boolean("live") {
			return &apiError{code: "HOST_OFFLINE", params: []string{x.ref}}
		}
	}
	var sr *object
	if len(srs) > 0 {
		o, ok := p.db.get(srs[0])
		if !ok || o.class != "SR" {
			return &apiError{code: "HANDLE_INVALID", params: []string{"SR", srs[0]}}
		}
		if e := p.checkStatefileSR(o); e != nil {
			return e
		}
		sr = o
	} else {
		for _, o := range p.db.all("SR") {
			if p.checkStatefileSR(o) == nil {
				sr = o
				break
			}
		}
		if sr == nil {
			return &apiError{code: "CANNOT_CREATE_STATE_FILE"}
		}
	}
	m := p.serving()
	p.log.Info("enabling pool HA", "sr", sr.str("name_label"))
	p.recordHAConfig(sr, config)
	if e := p.waitOperation(m, p.durations().EnableHA.D(), "enable_ha"); e != nil {
		return e
	}
	for _, x := range p.hosts {
		var e *apiError
		switch {
		case x != m && !p.connected(x):
			e = &apiError{code: "HA_FAILED_TO_FORM_LIVESET"}
		case !p.attachedTo(x, sr.ref):
			e = &apiError{code: "HA_HOST_CANNOT_ACCESS_STATEFILE"}
		}
		if e != nil {
			// "Perform a disable since the pool HA state isn't
			// consistent": no host stays armed, ha_enabled stays false.
			p.log.Warn("enable_ha failed; pool HA disabled again", "host", x.name, "err", e.code)
			return e
		}
	}
	p.completeEnableHA(sr, config)
	return nil
}

// requiredPIFRef is the reference of h's storage PIF that has
// disallow_unplug set. The lab does not populate the PIF table.
func (p *Pool) requiredPIFRef(h *hostState) string { return refFor("PIF", h.name+"/storage") }

func (p *Pool) attachedTo(h *hostState, sr string) bool {
	pbd := p.pbdOf(h, sr)
	return pbd != nil && pbd.boolean("currently_attached")
}

// checkStatefileSR is xapi's assert_sr_can_host_statefile.
func (p *Pool) checkStatefileSR(sr *object) *apiError {
	for _, x := range p.hosts {
		if !p.attachedTo(x, sr.ref) {
			return &apiError{code: "SR_HAS_NO_PBDS", params: []string{sr.ref}}
		}
	}
	if !smCapable(sr.str("type")) {
		return &apiError{code: "SR_OPERATION_NOT_SUPPORTED", params: []string{sr.ref}}
	}
	return nil
}

// recordHAConfig is the start of enable_ha: statefile and metadata VDIs
// found or created, Pool.ha_statefiles and ha_configuration recorded, no
// plan yet. They stay when the enable fails.
func (p *Pool) recordHAConfig(sr *object, config map[string]string) {
	statefile := p.haVDI(sr, "ha_statefile", "Statefile for HA", "Used for storage heartbeating", 4<<20)
	p.haVDI(sr, "redo_log", "Metadata for HA", "Used for master failover", 256<<20)
	if config == nil {
		config = map[string]string{}
	}
	pool := p.poolObj()
	p.db.setField(pool, "ha_statefiles", []string{statefile})
	p.db.setField(pool, "ha_configuration", config)
	p.db.setField(pool, "ha_plan_exists_for", int64(0))
}

// completeEnableHA is the end of a successful enable_ha: pool fields, every
// host armed in the liveset. recordHAConfig ran before.
func (p *Pool) completeEnableHA(sr *object, config map[string]string) {
	statefile := p.haVDI(sr, "ha_statefile", "Statefile for HA", "Used for storage heartbeating", 4<<20)
	metadata := p.haVDI(sr, "redo_log", "Metadata for HA", "Used for master failover", 256<<20)
	if config == nil {
		config = map[string]string{}
	}
	pool := p.poolObj()
	p.db.setField(pool, "ha_statefiles", []string{statefile})
	p.db.setField(pool, "ha_configuration", config)
	p.db.setField(pool, "ha_enabled", true)
	p.updatePlan()
	p.db.setField(pool, "redo_log_enabled", true)
	p.db.setField(pool, "redo_log_vdi", metadata)
	if !p.is62 {
		p.db.setField(pool, "allowed_operations", []string{"ha_disable"})
	}
	p.haTimeout = p.durations().HATimeout.D()
	if s, ok := pool.smap("other_config")["default_ha_timeout"]; ok {
		if n, err := strconv.Atoi(s); err == nil && n >= 10 {
			p.haTimeout = time.Duration(n) * time.Second
		}
	}
	if s, ok := config["timeout"]; ok {
		if n, err := strconv.Atoi(s); err == nil && n >= 10 {
			p.haTimeout = time.Duration(n) * time.Second
		}
	}
	var uuids []string
	for _, x := range p.hosts {
		uuids = append(uuids, x.uuid)
	}
	for _, x := range p.hosts {
		x.armed = true
		x.haDaemonStopped = false
		x.inLiveset = true
		ho := p.hostObj(x)
		if p.attachedTo(x, sr.ref) {
			p.db.setField(ho, "ha_statefiles", []string{statefile})
		} else {
			p.db.setField(ho, "ha_statefiles", []string{})
		}
		p.db.setField(ho, "ha_network_peers", uuids)
	}
	p.log.Info("pool HA enabled", "timeout", p.haTimeout)
}

// haVDI returns the SR's VDI of type typ, created if missing, as enable_ha
// reuses or creates its statefile and metadata VDIs.
func (p *Pool) haVDI(sr *object, typ, name, description string, size int64) string {
	for _, ref := range sr.set("VDIs") {
		if v, ok := p.db.get(ref); ok && v.str("type") == typ {
			return ref
		}
	}
	ref := "OpaqueRef:" + newUUID()
	f := vdiFields(name, newUUID(), sr.ref, size, typ)
	f["name_description"] = description
	p.db.add("VDI", ref, f)
	p.db.setField(sr, "VDIs", appendUnique(sr.set("VDIs"), ref))
	return ref
}

// disableRetry is how long Xapi_ha.disable_internal waits after a partial
// failure before trying again (xapi_ha.ml: "Will try again in 30s").
const disableRetry = 30 * time.Second

// disableHA is pool.disable_ha on the serving master (Xapi_ha.disable and
// disable_internal, xapi_ha.ml at XS62 and 1.14-lcm). With statefile access
// the master marks the pool state invalid and is done whoever answers.
// Without it, every host of the pool must answer
// ha_disable_failover_decisions (the master forwards it, so a host it holds
// dead gives HOST_OFFLINE and one in emergency mode its error); a partial
// failure is retried every 30 s, without end, and the call does not return
// meanwhile.
func (p *Pool) disableHA(ctx context.Context) *apiError {
	if !p.haEnabled() {
		return &apiError{code: "HA_NOT_ENABLED"}
	}
	if e := p.lockHAOp(ctx, "ha_disable"); e != nil {
		return e
	}
	defer p.unlockHAOp()
	if !p.haEnabled() {
		return &apiError{code: "HA_NOT_ENABLED"}
	}
	m := p.serving()
	p.log.Info("disabling pool HA")
	if e := p.waitOperation(m, p.durations().DisableHA.D(), "disable_ha"); e != nil {
		return e
	}
	for !p.statefileAccess(m) && !p.everyHostAnswers(m) {
		p.log.Warn("partial failure disabling pool HA without the statefile; trying again in 30s")
		if e := p.waitOperation(m, disableRetry, "disable_ha"); e != nil {
			return e
		}
	}
	if !p.haEnabled() {
		return &apiError{code: "HA_NOT_ENABLED"}
	}
	p.setPoolHAOff()
	// Hosts the master can reach release their HA resources; others (off,
	// or in emergency mode, which refuses these calls) stay armed.
	for _, x := range p.hosts {
		if x == m || (reachable(x) && x.role != RoleEmergency) {
			x.armed = false
			x.haDaemonStopped = false
			x.inLiveset = false
			ho := p.hostObj(x)
			p.db.setField(ho, "ha_statefiles", []string{})
			p.db.setField(ho, "ha_network_peers", []string{})
		}
	}
	p.electionEpoch++
	p.log.Info("pool HA disabled")
	p.reconsider()
	return nil
}

// everyHostAnswers reports whether every host but the master m would
// answer a call the master forwards to it: live in the master's database,
// reachable and out of emergency mode.
func (p *Pool) everyHostAnswers(m *hostState) bool {
	for _, x := range p.hosts {
		if x != m && (!p.metricsObj(x).boolean("live") || !reachable(x) || x.role != RoleSlave) {
			return false
		}
	}
	return true
}

// emergencyHADisable is host.emergency_ha_disable on h (xapi_ha.ml). It
// disarms fencing and stops the HA daemon; only the hard form clears
// ha.armed (soft=true, 7.x only, leaves it set, as 1.14-lcm does). The HA
// start-up loop checks ha.armed before each attempt, so only the hard form
// lets a host stuck in it carry on starting.
func (p *Pool) emergencyHADisable(h *hostState, soft bool) *apiError {
	if !h.armed {
		if soft {
			return nil
		}
		return &apiError{code: "HA_NOT_ENABLED"}
	}
	h.inLiveset = false
	h.haDaemonStopped = true
	if soft {
		p.log.Info("HA daemon stopped on host; ha.armed left set", "host", h.name)
		return nil
	}
	h.armed = false
	p.log.Info("HA disabled on host", "host", h.name)
	if h.role == RoleEmergency && h.emKind == emHAStartup && !h.pendingJoin {
		// The HA start-up loop gives up and xapi carries on starting.
		h.pendingJoin = true
		p.afterHost(h, p.durations().RejoinDelay.D(), func() {
			h.pendingJoin = false
			p.startXAPI(h)
		})
	}
	return nil
}

// updateStatefileAccess is the master's HA monitor refreshing each host's
// ha_statefiles after a PBD change.
func (p *Pool) updateStatefileAccess() {
	if !p.haEnabled() {
		return
	}
	files := p.poolObj().set("ha_statefiles")
	for _, x := range p.hosts {
		if !x.inLiveset {
			continue
		}
		ho := p.hostObj(x)
		if p.statefileAccess(x) {
			p.db.setField(ho, "ha_statefiles", files)
		} else {
			p.db.setField(ho, "ha_statefiles", []string{})
		}
	}
}

// setHARestartPriority is VM.set_ha_restart_priority.
func (p *Pool) setHARestartPriority(vm *object, v string) *apiError {
	switch v {
	case "restart", "best-effort", "":
	default:
		return &apiError{code: "INVALID_VALUE", params: []string{"ha_restart_priority", v}}
	}
	p.db.setField(vm, "ha_restart_priority", v)
	p.db.setField(vm, "ha_always_run", v != "" && vm.str("power_state") == "Running")
	return nil
}
