// Package xapisim simulates XenServer pools that speak real XAPI: XML-RPC over
// HTTP(S) on one endpoint per host, the records and calls the xsha project
// uses, and the pool HA state machine (master election, emergency mode,
// rejoin) with fault injection. It follows real xapi as documented for
// XenServer 6.2 and 7.x, not any client's view of it.
package xapisim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"xsha/sim/scenario"
)

// Host roles as the host itself sees them.
const (
	RoleMaster    = "master"
	RoleSlave     = "slave"
	RoleEmergency = "emergency"
	RoleOff       = "off"
	RoleBooting   = "booting"
)

type power uint8

const (
	powerOff power = iota
	powerBooting
	powerOn
)

// emergency reasons, which decide what ends emergency mode.
type emKind uint8

const (
	emNone emKind = iota
	// emHAStartup: xhad cannot start (armed host returning while pool HA
	// is on); only host.emergency_ha_disable ends it.
	emHAStartup
	// emPoolHAHostDisabled: HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED; ends
	// when pool HA is disabled.
	emPoolHAHostDisabled
	// emMasterUnreachable: the master could not be reached at start-up;
	// ends when it can.
	emMasterUnreachable
)

// hostState is one simulated host: its power, its xapi and its local state
// (pool.conf, the HA armed flag, local sessions).
type hostState struct {
	name, address, uuid      string
	ref, metricsRef, dom0Ref string
	pbds                     []string

	power power
	// xapi is true while xapi answers on the endpoint.
	xapi bool
	role string
	// conf is pool.conf: "master" or the master's address.
	conf      string
	emergency []string
	emKind    emKind
	// armed is the local ha.armed flag.
	armed bool
	// haDaemonStopped: host.emergency_ha_disable(soft=true) stopped the HA
	// daemon but left ha.armed set (xapi_ha.ml, 1.14-lcm); the next xapi
	// start starts the daemon again.
	haDaemonStopped bool
	// inLiveset: the host's xhad is part of the running liveset.
	inLiveset bool
	// waitingHA: a slave that returned while pool HA was on and cannot
	// join until it is disabled.
	waitingHA bool
	isolated  bool
	// disabledByAdmin: host.disable was called. xapi keeps this in memory
	// only (Xapi_host_helpers.user_requested_host_disable, xapi_host.ml
	// at XS62), so a reboot or an xapi restart forgets it.
	disabledByAdmin bool
	// disabledUntilReboot is xapi's local-database flag
	// host_disabled_until_reboot, set by host.reboot and host.shutdown
	// and cleared when the host boots (xapi_host.ml, xapi.ml at XS62).
	disabledUntilReboot bool
	// cleanExit: the host left pool HA cleanly for a reboot or shutdown
	// (Xapi_ha.before_clean_shutdown_or_reboot: fencing disarmed, daemon
	// stopped, host excluded from the liveset); ha.armed stays set and
	// the host joins the liveset again when it boots.
	cleanExit bool
	// op is the host operation in progress (evacuate, reboot, shutdown),
	// "" when none.
	op string
	// holdBoot: a reboot stalls with the host off until ReleaseBoot.
	holdBoot bool
	// bootStalled: a reboot is held off by holdBoot.
	bootStalled bool
	// requiredPIFUnplugged: the host's storage PIF with disallow_unplug
	// set is unplugged (pool.enable_ha refuses).
	requiredPIFUnplugged bool
	// lostVMs are VMs the master reset while the host was cut off; they
	// still run and come back when the host is heard again.
	lostVMs []string
	// pendingJoin is set while a rejoin is scheduled.
	pendingJoin bool
	// epoch changes on every power or xapi transition; timers check it.
	epoch uint64
	local map[string]*session
	ep    *endpoint
	calls map[string]uint64
}

// Options configure a Pool.
type Options struct {
	// Scenario is the whole scenario (for durations and credentials).
	Scenario *scenario.Scenario
	// Pool is the name of the pool in the scenario.
	Pool string
	// Port is the XAPI port shared by every host address.
	Port int
	// TLS returns a host's server configuration; nil serves plain HTTP.
	TLS func(host string) *tls.Config
	// Listeners are already bound listeners by host name, used for the
	// first start (the lab binds them to choose a free shared port).
	Listeners map[string]net.Listener
	// Logger receives state changes; nil discards.
	Logger *slog.Logger
}

// Pool is one simulated XenServer pool.
type Pool struct {
	mu      sync.Mutex
	sc      *scenario.Scenario
	cfg     *scenario.Pool
	is62    bool
	log     *slog.Logger
	started time.Time

	db          *db
	hosts       []*hostState
	byName      map[string]*hostState
	byAddr      map[string]*hostState
	poolRef     string
	heartbeatSR string
	// master is pool.master: the host the database names master.
	master *hostState
	// sessions is the session table of the master's xapi.
	sessions   map[string]*session
	sessionSeq uint64
	// haTimeout is the HA timeout T in effect (unscaled).
	haTimeout time.Duration
	// haSem serialises enable_ha and disable_ha; haOp names the running one.
	haSem chan struct{}
	haOp  string
	// noMigrate are the VMs (by ref) that cannot live-migrate
	// (SetVMMigrationFault).
	noMigrate map[string]bool
	// electionEpoch invalidates pending elections.
	electionEpoch uint64
	msgGen        uint64
	calls         map[string]uint64
	timers        map[*time.Timer]struct{}
	closed        bool
	// done is closed by Close; waits inside calls end on it.
	done chan struct{}
	// eventConflicts counts 6.2 event.from calls ended by another on the
	// same session (events.go).
	eventConflicts uint64
	// sessionGC is set once the session garbage collector runs (dispatch.go).
	sessionGC bool
}

// NewPool builds a pool from the scenario. Call Start to serve it.
func NewPool(opts Options) (*Pool, error) {
	if opts.Scenario == nil {
		return nil, errors.New("xapi: no scenario")
	}
	cfg, ok := opts.Scenario.Pool(opts.Pool)
	if !ok {
		return nil, fmt.Errorf("xapi: no pool %q in the scenario", opts.Pool)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pool{
		sc:        opts.Scenario,
		cfg:       cfg,
		is62:      cfg.Is62(),
		log:       log.With("pool", cfg.Name),
		started:   time.Now().UTC().Truncate(time.Second),
		byName:    map[string]*hostState{},
		byAddr:    map[string]*hostState{},
		sessions:  map[string]*session{},
		haTimeout: opts.Scenario.Durations.HATimeout.D(),
		haSem:     make(chan struct{}, 1),
		calls:     map[string]uint64{},
		timers:    map[*time.Timer]struct{}{},
		noMigrate: map[string]bool{},
		done:      make(chan struct{}),
	}
	p.db = newDB(p.is62)
	for _, sh := range cfg.Hosts {
		h := &hostState{
			name: sh.Name, address: sh.Address, uuid: sh.UUID,
			power: powerOn, xapi: true, role: RoleSlave, conf: "",
			local: map[string]*session{}, calls: map[string]uint64{},
		}
		p.hosts = append(p.hosts, h)
		p.byName[h.name] = h
		p.byAddr[h.address] = h
	}
	p.build()
	p.refreshMemory()
	m := p.byName[cfg.Master]
	p.master = m
	for _, h := range p.hosts {
		if h == m {
			h.role, h.conf = RoleMaster, "master"
		} else {
			h.conf = m.address
		}
		var tlsConfig *tls.Config
		if opts.TLS != nil {
			tlsConfig = opts.TLS(h.name)
		}
		addr := net.JoinHostPort(h.address, strconv.Itoa(opts.Port))
		h.ep = newEndpoint(addr, tlsConfig, handler{p: p, h: h}, opts.Listeners[h.name], p.log)
	}
	if cfg.HAEnabled {
		cfgMap := map[string]string{}
		if cfg.HATimeout != 0 {
			cfgMap["timeout"] = strconv.Itoa(int(cfg.HATimeout.D() / time.Second))
		}
		hb, _ := p.db.get(p.heartbeatSR)
		p.completeEnableHA(hb, cfgMap)
	}
	return p, nil
}

// Start opens every host's endpoint.
func (p *Pool) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.hosts {
		if h.power == powerOn && h.xapi {
			if err := h.ep.open(); err != nil {
				return fmt.Errorf("xapi: host %s: %w", h.name, err)
			}
		}
	}
	return nil
}

// Close stops every endpoint and timer and ends the calls waiting inside
// the pool. Closing a closed pool does nothing.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	for t := range p.timers {
		t.Stop()
	}
	p.timers = nil
	hosts := p.hosts
	p.db.wake()
	p.mu.Unlock()
	for _, h := range hosts {
		h.ep.close()
	}
	return nil
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.cfg.Name }

// Is62 reports whether the pool runs XenServer 6.2.
func (p *Pool) Is62() bool { return p.is62 }

// scaled returns d scaled by the scenario's time scale.
func (p *Pool) scaled(d time.Duration) time.Duration { return p.sc.Scale(d) }

// after runs fn with the pool locked after the unscaled duration d, unless
// the pool closed.
func (p *Pool) after(d time.Duration, fn func()) {
	if p.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(p.scaled(d), func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			return
		}
		delete(p.timers, t)
		fn()
	})
	p.timers[t] = struct{}{}
}

// sleep waits the unscaled duration d with the pool unlocked, as a long
// xapi operation does. It ends early when ctx is done or the pool closes.
func (p *Pool) sleep(ctx context.Context, d time.Duration) error {
	p.mu.Unlock()
	defer p.mu.Lock()
	t := time.NewTimer(p.scaled(d))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return errors.New("pool closed")
	}
}

// afterHost is after, skipped when h changed power or xapi state meanwhile.
func (p *Pool) afterHost(h *hostState, d time.Duration, fn func()) {
	epoch := h.epoch
	p.after(d, func() {
		if h.epoch == epoch {
			fn()
		}
	})
}

func (p *Pool) host(name string) (*hostState, error) {
	h, ok := p.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: host %q in pool %q", ErrNotFound, name, p.cfg.Name)
	}
	return h, nil
}

// Errors of the fault-injection operations.
var (
	// ErrNotFound: no such host, pool or VM.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the operation does not apply in the current state.
	ErrConflict = errors.New("conflict")
)

// HasHost reports whether the pool has a host of that name.
func (p *Pool) HasHost(name string) bool {
	_, ok := p.byName[name]
	return ok
}

// PowerOff cuts a host's power: its endpoint refuses connections and the
// HA state machine reacts as to a hard failure.
func (p *Pool) PowerOff(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, err := p.host(name)
	if err != nil {
		return err
	}
	if h.power == powerOff {
		return fmt.Errorf("%w: host %s is already off", ErrConflict, name)
	}
	p.powerOff(h)
	return nil
}

// PowerOn boots a host; after the boot time its xapi starts and follows the
// HA rules.
func (p *Pool) PowerOn(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, err := p.host(name)
	if err != nil {
		return err
	}
	if h.power != powerOff {
		return fmt.Errorf("%w: host %s is not off", ErrConflict, name)
	}
	p.powerOn(h)
	return nil
}

// Isolate cuts a host's management network: its endpoint accepts
// connections but never answers until Reconnect. Without pool HA the
// master stops hearing an isolated slave's heartbeats.
func (p *Pool) Isolate(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, err := p.host(name)
	if err != nil {
		return err
	}
	if h.isolated {
		return nil
	}
	h.isolated = true
	h.ep.setIsolated(true)
	p.log.Info("host isolated", "host", h.name)
	p.hostUnreachable(h)
	return nil
}

// Reconnect undoes Isolate.
func (p *Pool) Reconnect(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, err := p.host(name)
	if err != nil {
		return err
	}
	if !h.isolated {
		return nil
	}
	h.isolated = false
	h.ep.setIsolated(false)
	p.log.Info("host reconnected", "host", h.name)
	p.hostReachable(h)
	return nil
}

// SetHeartbeatPBD plugs or unplugs a host's PBD of the heartbeat SR.
func (p *Pool) SetHeartbeatPBD(name string, attached bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, err := p.host(name)
	if err != nil {
		return err
	}
	pbd := p.pbdOf(h, p.heartbeatSR)
	if pbd == nil {
		return fmt.Errorf("%w: host %s has no PBD for the heartbeat SR", ErrNotFound, name)
	}
	p.db.setField(pbd, "currently_attached", attached)
	p.updateStatefileAccess()
	p.reconsider()
	return nil
}

// SetRequiredPIF unplugs or plugs the host's storage PIF that has
// disallow_unplug set; while it is unplugged pool.enable_ha fails with
// REQUIRED_PIF_IS_UNPLUGGED.
func (p *Pool) SetRequiredPIF(name string, attached bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, err := p.host(name)
	if err != nil {
		return err
	}
	h.requiredPIFUnplugged = !attached
	return nil
}

// RestartXAPI restarts a host's xapi (xe-toolstack-restart): the endpoint
// refuses connections for the start-up time, sessions and what xapi holds
// in memory only (an administrator's host.disable) are lost, and the host
// starts again by the HA rules. It fails on a host that is off, booting or
// whose xapi is already restarting.
func (p *Pool) RestartXAPI(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, err := p.host(name)
	if err != nil {
		return err
	}
	if h.power != powerOn || !h.xapi {
		return fmt.Errorf("%w: host %s has no running xapi", ErrConflict, name)
	}
	p.log.Info("xapi restarting", "host", h.name)
	p.restartXAPI(h, func() { p.startXAPI(h) })
	return nil
}

// HasVM reports whether the pool has a VM (not a control domain) of that name.
func (p *Pool) HasVM(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.vmByName(name) != nil
}

// SetVMHARestartPriority sets a VM's ha_restart_priority as
// VM.set_ha_restart_priority does.
func (p *Pool) SetVMHARestartPriority(vm, priority string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.vmByName(vm)
	if o == nil {
		return fmt.Errorf("%w: VM %q in pool %q", ErrNotFound, vm, p.cfg.Name)
	}
	if e := p.setHARestartPriority(o, priority); e != nil {
		return fmt.Errorf("%w: %s", ErrConflict, e.Error())
	}
	return nil
}

// DisablePoolHA disables pool HA out of band, as an administrator would
// with XenCenter: it takes the disable_ha time and fails when HA is off or
// no master is running.
func (p *Pool) DisablePoolHA(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.serving() == nil {
		return fmt.Errorf("%w: pool %s has no running master", ErrConflict, p.cfg.Name)
	}
	if e := p.disableHA(ctx); e != nil {
		return fmt.Errorf("%w: %s", ErrConflict, e.Error())
	}
	return nil
}

func (p *Pool) vmByName(name string) *object {
	for _, o := range p.db.all("VM") {
		if o.str("name_label") == name && !o.boolean("is_control_domain") {
			return o
		}
	}
	return nil
}

func (p *Pool) pbdOf(h *hostState, sr string) *object {
	for _, ref := range h.pbds {
		if o, ok := p.db.get(ref); ok && o.str("SR") == sr {
			return o
		}
	}
	return nil
}

// statefileAccess reports whether h can reach the heartbeat SR.
func (p *Pool) statefileAccess(h *hostState) bool {
	sr := p.haSR()
	if sr == "" {
		return false
	}
	pbd := p.pbdOf(h, sr)
	return pbd != nil && pbd.boolean("currently_attached")
}

// haSR is the SR holding the statefile (the configured heartbeat SR before
// HA was ever enabled).
func (p *Pool) haSR() string {
	pool := p.poolObj()
	if files := pool.set("ha_statefiles"); len(files) > 0 {
		if vdi, ok := p.db.get(files[0]); ok {
			return vdi.str("SR")
		}
	}
	return p.heartbeatSR
}

func (p *Pool) poolObj() *object {
	o, _ := p.db.get(p.poolRef)
	return o
}

func (p *Pool) hostObj(h *hostState) *object {
	o, _ := p.db.get(h.ref)
	return o
}

func (p *Pool) metricsObj(h *hostState) *object {
	o, _ := p.db.get(h.metricsRef)
	return o
}

func (p *Pool) haEnabled() bool { return p.poolObj().boolean("ha_enabled") }

// serving returns the master when its xapi runs as master, else nil.
func (p *Pool) serving() *hostState {
	m := p.master
	if m != nil && m.power == powerOn && m.xapi && m.role == RoleMaster {
		return m
	}
	return nil
}

// reachable reports whether other hosts can talk to h's xapi.
func reachable(h *hostState) bool { return h.power == powerOn && h.xapi && !h.isolated }

// connected reports whether h is a slave whose master is serving and
// reachable, i.e. it heartbeats and its database calls work.
func (p *Pool) connected(h *hostState) bool {
	m := p.serving()
	return m != nil && h != m && reachable(h) && reachable(m) && h.role == RoleSlave && !h.waitingHA && h.conf == m.address
}

// HostState is one host in State.
type HostState struct {
	Name                string   `json:"name"`
	UUID                string   `json:"uuid"`
	Address             string   `json:"address"`
	Power               string   `json:"power"`
	Role                string   `json:"role"`
	Live                bool     `json:"live"`
	Enabled             bool     `json:"enabled"`
	Isolated            bool     `json:"isolated"`
	EmergencyError      string   `json:"emergency_error"`
	EmergencyParams     []string `json:"emergency_params"`
	HeartbeatSRAttached bool     `json:"heartbeat_sr_attached"`
	HAArmed             bool     `json:"ha_armed"`
	// BootHeld: the host's next (or stalled) reboot is held off.
	BootHeld bool `json:"boot_held"`
	// Operation is the host operation in progress (evacuate, reboot,
	// shutdown), "" when none.
	Operation      string `json:"operation"`
	BelievedMaster string `json:"believed_master"`
	Sessions       int    `json:"sessions"`
	LocalSessions  int    `json:"local_sessions"`
}

// PoolState is one pool in State.
type PoolState struct {
	Name             string      `json:"name"`
	UUID             string      `json:"uuid"`
	ProductVersion   string      `json:"product_version"`
	Master           string      `json:"master"`
	HAEnabled        bool        `json:"ha_enabled"`
	HATimeoutSeconds int         `json:"ha_timeout_seconds"`
	ReturningHost    string      `json:"returning_host"`
	Edition          string      `json:"edition"`
	Hosts            []HostState `json:"hosts"`
}

// State returns the pool as the lab's state document shows it.
func (p *Pool) State() PoolState {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := PoolState{
		Name:             p.cfg.Name,
		UUID:             p.cfg.UUID,
		ProductVersion:   p.cfg.ProductVersion,
		HAEnabled:        p.haEnabled(),
		HATimeoutSeconds: int(p.haTimeout / time.Second),
		ReturningHost:    string(p.cfg.ReturningHost),
		Edition:          p.cfg.Edition,
		Hosts:            []HostState{},
	}
	if p.master != nil {
		ps.Master = p.master.name
	}
	for _, h := range p.hosts {
		hs := HostState{
			Name:                h.name,
			UUID:                h.uuid,
			Address:             h.address,
			Power:               "on",
			Role:                h.viewRole(),
			Live:                p.metricsObj(h).boolean("live"),
			Enabled:             p.hostObj(h).boolean("enabled"),
			Isolated:            h.isolated,
			EmergencyParams:     []string{},
			HeartbeatSRAttached: p.statefileAccess(h),
			HAArmed:             h.armed,
			BootHeld:            h.holdBoot,
			Operation:           h.op,
			LocalSessions:       len(h.local),
		}
		if h.power == powerOff {
			hs.Power = "off"
		}
		if h.role == RoleEmergency && h.xapi && len(h.emergency) > 0 {
			hs.EmergencyError = h.emergency[0]
			hs.EmergencyParams = append(hs.EmergencyParams, h.emergency[1:]...)
		}
		if h.power == powerOn && h.xapi {
			if h.conf == "master" {
				hs.BelievedMaster = h.address
			} else {
				hs.BelievedMaster = h.conf
			}
		}
		if h == p.serving() {
			hs.Sessions = len(p.sessions)
		}
		ps.Hosts = append(ps.Hosts, hs)
	}
	return ps
}

func (h *hostState) viewRole() string {
	switch {
	case h.power == powerOff:
		return RoleOff
	case h.power == powerBooting || !h.xapi:
		return RoleBooting
	}
	return h.role
}

// HostStats are one host's counters in Stats.
type HostStats struct {
	Name          string            `json:"name"`
	Pool          string            `json:"pool"`
	Sessions      int               `json:"sessions"`
	LocalSessions int               `json:"local_sessions"`
	Calls         map[string]uint64 `json:"calls"`
}

// Stats returns per-host session counts and call counters.
func (p *Pool) Stats() []HostStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []HostStats
	for _, h := range p.hosts {
		hs := HostStats{Name: h.name, Pool: p.cfg.Name, LocalSessions: len(h.local), Calls: map[string]uint64{}}
		if h == p.serving() {
			hs.Sessions = len(p.sessions)
		}
		maps.Copy(hs.Calls, h.calls)
		out = append(out, hs)
	}
	return out
}

// hostsByUUID returns hosts sorted by uuid, the xHA tie-break order.
func hostsByUUID(hs []*hostState) []*hostState {
	out := append([]*hostState(nil), hs...)
	sort.Slice(out, func(i, j int) bool { return out[i].uuid < out[j].uuid })
	return out
}

// HostHandler returns the HTTP handler of a host's endpoint, for tests
// that serve it themselves.
func (p *Pool) HostHandler(name string) (http.Handler, bool) {
	h, ok := p.byName[name]
	if !ok {
		return nil, false
	}
	return handler{p: p, h: h}, true
}

// HostView is one host as an outside observer (the CloudStack management
// server) sees it.
type HostView struct {
	Name, Address string
	// PoweredOn is false while the host has no power.
	PoweredOn bool
	// Reachable: the pool has a running master that is not isolated and
	// sees this host live, and the host itself is up and on the network
	// (or this host is that master).
	Reachable bool
	// Heartbeat: the host is up and writes its storage heartbeats.
	Heartbeat bool
}

// HostViews returns every host as an outside observer sees it.
func (p *Pool) HostViews() []HostView {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.serving()
	out := make([]HostView, 0, len(p.hosts))
	for _, h := range p.hosts {
		v := HostView{Name: h.name, Address: h.address, PoweredOn: h.power != powerOff, Heartbeat: h.power == powerOn}
		if m != nil && !m.isolated {
			v.Reachable = h == m || (reachable(h) && p.metricsObj(h).boolean("live"))
		}
		out = append(out, v)
	}
	return out
}
