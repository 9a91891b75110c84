package cloudstacksim

import (
	"crypto/rand"
	"crypto/sha1"
	"fmt"
	"sort"
	"time"
)

// Host status values (com.cloud.host.Status) the model produces.
const (
	statusConnecting   = "Connecting"
	statusUp           = "Up"
	statusDown         = "Down"
	statusDisconnected = "Disconnected"
	statusAlert        = "Alert"
)

// Resource states (com.cloud.resource.ResourceState) the model produces.
const (
	rsEnabled        = "Enabled"
	rsDisabled       = "Disabled"
	rsPrepare        = "PrepareForMaintenance"
	rsErrorInPrepare = "ErrorInPrepareForMaintenance"
	rsMaintenance    = "Maintenance"
	rsErrorInMaint   = "ErrorInMaintenance"
)

// VM states the model produces.
const (
	vmRunning   = "Running"
	vmStopped   = "Stopped"
	vmStarting  = "Starting"
	vmMigrating = "Migrating"
)

// Host types.
const (
	hostRouting          = "Routing"
	hostSecondaryStorage = "SecondaryStorageVM"
	hostConsoleProxy     = "ConsoleProxy"
)

// hostEvents lists, per status, the events its state machine accepts, as
// the events field of a host response shows them.
var hostEvents = map[string]string{
	statusUp:           "StartAgentRebalance; AgentConnected; ManagementServerDown; PingTimeout; ShutdownRequested; HostDown; AgentDisconnected; Ping; Remove",
	statusConnecting:   "AgentConnected; ManagementServerDown; PingTimeout; ShutdownRequested; HostDown; AgentDisconnected; Ping; Ready; Remove",
	statusDown:         "AgentConnected; ManagementServerDown; PingTimeout; HostDown; AgentDisconnected; Ping; Remove",
	statusDisconnected: "AgentConnected; ManagementServerDown; PingTimeout; ShutdownRequested; HostDown; AgentDisconnected; WaitedTooLong; Ping; Remove",
	statusAlert:        "AgentConnected; ManagementServerDown; PingTimeout; ShutdownRequested; HostDown; AgentDisconnected; Ping; Remove",
}

const (
	adminAccount  = "admin"
	rootDomain    = "ROOT"
	templateName  = "Windows Server 2008 R2"
	managementMS  = "345049296663"
	defaultPoolTy = "NetworkFilesystem"
)

type zone struct {
	id, name       string
	podID, podName string
}

type cluster struct {
	id, name string
	seq      int64
}

type host struct {
	id            string
	seq           int64
	name, address string
	typ           string
	cluster       *cluster // nil for system VM hosts
	sysVM         *vm      // the VM behind a system VM host
	state, rs     string
	created       time.Time
	disconnected  time.Time
	lastPing      time.Time
	nextPing      time.Time
	lastHeartbeat time.Time
	reachable     bool
	pinged        bool // a ping succeeded in this step
	connectingTil time.Time
	pending       *job
}

type offering struct {
	id, name string
	offerHA  bool
	cpus     int
	speed    int
	memory   int
	system   bool
	created  time.Time
}

type project struct {
	id, name string
}

type vm struct {
	id                string
	seq               int64
	name, displayName string
	instanceName      string
	typ               string
	offering          *offering
	account           string
	project           *project
	state             string
	host              *host // where it runs, is started or migrates from
	lastHost          *host
	target            *host // migration target
	until             time.Time
	created           time.Time
	// HA work scheduled by a HostDown; haStart is set while its restart
	// waits for the Starter.
	haPending    bool
	haStart      bool
	haBlocked    bool
	downHost     *host
	downAt       time.Time
	downLastPing time.Time
	// Migration work scheduled by prepareHostForMaintenance (an HA work
	// item of type Migration): the host to leave, the failed attempts and
	// the time of the next one.
	migWork  bool
	migFrom  *host
	migTries int
	migNext  time.Time
	// noMigrate is the fault that makes every migration of the VM fail.
	noMigrate bool
}

func (v *vm) haEnabled() bool { return v.offering.offerHA }

// active reports whether the VM occupies its host.
func (v *vm) active() bool {
	switch v.state {
	case vmRunning, vmStarting, vmMigrating:
		return true
	}
	return false
}

type storagePool struct {
	id, name      string
	cluster       *cluster
	typ           string
	address, path string
	size          int64
	created       time.Time
}

// nameUUID derives a stable UUID (version 5 layout) from a kind and a name,
// so ids survive lab restarts.
func nameUUID(kind, name string) string {
	sum := sha1.Sum([]byte("cloudstack:" + kind + ":" + name))
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Server) seq() int64 {
	s.nextSeq++
	return s.nextSeq
}

// build creates the initial cloud from the options and one Infra read.
func (s *Server) build() error {
	now := s.now()
	s.zone = &zone{
		id: nameUUID("zone", s.opts.Zone), name: s.opts.Zone,
		podID: nameUUID("pod", s.opts.Pod), podName: s.opts.Pod,
	}
	views := s.infra.Hosts()
	sort.SliceStable(views, func(i, j int) bool { return views[i].Name < views[j].Name })
	for _, v := range views {
		if v.Name == "" || v.Cluster == "" {
			return fmt.Errorf("cloudstack: infra host %q without name or cluster", v.Name)
		}
		if s.hostByName(v.Name) != nil {
			return fmt.Errorf("cloudstack: infra host %q listed twice", v.Name)
		}
		h := s.addHost(v, now)
		h.state = statusUp
		h.lastPing = now
	}
	for _, o := range s.opts.Offerings {
		if o.Name == "" {
			return fmt.Errorf("cloudstack: offering without name")
		}
		if s.offeringByName(o.Name) != nil {
			return fmt.Errorf("cloudstack: offering %q listed twice", o.Name)
		}
		s.offerings = append(s.offerings, newOffering(o, now))
	}
	for _, spec := range s.opts.VMs {
		if err := s.addVM(spec, now); err != nil {
			return err
		}
	}
	for _, p := range s.opts.StoragePools {
		c := s.clusterByName(p.Cluster)
		if c == nil {
			return fmt.Errorf("cloudstack: storage pool %q: unknown cluster %q", p.Name, p.Cluster)
		}
		typ := p.Type
		if typ == "" {
			typ = defaultPoolTy
		}
		s.pools = append(s.pools, &storagePool{
			id: nameUUID("storagepool", p.Cluster+"/"+p.Name), name: p.Name, cluster: c, typ: typ,
			address: p.Address, path: p.Path, size: p.SizeBytes, created: now,
		})
	}
	s.configs = s.initialConfigs()
	s.syncSystemHosts(now)
	return nil
}

func orInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func (s *Server) addHost(v HostView, now time.Time) *host {
	c := s.clusterByName(v.Cluster)
	if c == nil {
		c = &cluster{id: nameUUID("cluster", v.Cluster), name: v.Cluster, seq: s.seq()}
		s.clusters = append(s.clusters, c)
	}
	h := &host{
		id: nameUUID("host", v.Name), seq: s.seq(), name: v.Name, address: v.Address,
		typ: hostRouting, cluster: c, state: statusConnecting, rs: rsEnabled, created: now,
		reachable: v.Reachable, nextPing: now.Add(s.real(s.opts.PingInterval)),
	}
	if v.Heartbeat {
		h.lastHeartbeat = now
	}
	s.hosts = append(s.hosts, h)
	return h
}

func (s *Server) addVM(spec VM, now time.Time) error {
	if spec.Name == "" {
		return fmt.Errorf("cloudstack: VM without name")
	}
	for _, v := range s.vms {
		if v.name == spec.Name {
			return fmt.Errorf("cloudstack: VM %q listed twice", spec.Name)
		}
	}
	typ := spec.Type
	switch typ {
	case "":
		typ = VMTypeUser
	case VMTypeUser, VMTypeDomainRouter, VMTypeSecondaryStorageVM, VMTypeConsoleProxy:
	default:
		return fmt.Errorf("cloudstack: VM %q: unknown type %q", spec.Name, spec.Type)
	}
	var o *offering
	if spec.Offering == "" {
		o = s.builtinOffering(typ)
	} else if o = s.offeringByName(spec.Offering); o == nil {
		return fmt.Errorf("cloudstack: VM %q: unknown offering %q", spec.Name, spec.Offering)
	}
	v := &vm{
		id: nameUUID("vm", spec.Name), seq: s.seq(), name: spec.Name,
		displayName: spec.DisplayName, instanceName: spec.InstanceName, typ: typ,
		offering: o, account: spec.Account, state: vmStopped, created: now,
	}
	if v.displayName == "" {
		v.displayName = v.name
	}
	if v.instanceName == "" {
		v.instanceName = v.name
	}
	if v.account == "" {
		v.account = adminAccount
	}
	if spec.Project != "" {
		v.project = s.projectByName(spec.Project)
		if v.project == nil {
			v.project = &project{id: nameUUID("project", spec.Project), name: spec.Project}
			s.projects = append(s.projects, v.project)
		}
	}
	if spec.Host != "" {
		h := s.hostByName(spec.Host)
		if h == nil || h.typ != hostRouting {
			return fmt.Errorf("cloudstack: VM %q: unknown host %q", spec.Name, spec.Host)
		}
		v.host, v.state = h, vmRunning
	}
	s.vms = append(s.vms, v)
	var sysType string
	switch typ {
	case VMTypeSecondaryStorageVM:
		sysType = hostSecondaryStorage
	case VMTypeConsoleProxy:
		sysType = hostConsoleProxy
	}
	if sysType != "" {
		s.hosts = append(s.hosts, &host{
			id: nameUUID("host", v.name), seq: s.seq(), name: v.name, typ: sysType, sysVM: v,
			rs: rsEnabled, created: now, lastPing: now,
		})
	}
	return nil
}

// builtinOfferings are the offerings a fresh CloudStack installs, used by
// VMs that name none. System VMs and routers are HA enabled.
var builtinOfferings = map[string]Offering{
	VMTypeUser:               {Name: "Small Instance", CPUs: 1, CPUSpeedMHz: 500, MemoryMB: 512},
	VMTypeDomainRouter:       {Name: "System Offering For Software Router", OfferHA: true, CPUs: 1, CPUSpeedMHz: 500, MemoryMB: 256, System: true},
	VMTypeSecondaryStorageVM: {Name: "System Offering For Secondary Storage VM", OfferHA: true, CPUs: 1, CPUSpeedMHz: 500, MemoryMB: 512, System: true},
	VMTypeConsoleProxy:       {Name: "System Offering For Console Proxy", OfferHA: true, CPUs: 1, CPUSpeedMHz: 500, MemoryMB: 1024, System: true},
}

func (s *Server) builtinOffering(vmType string) *offering {
	spec := builtinOfferings[vmType]
	if o := s.offeringByName(spec.Name); o != nil {
		return o
	}
	o := newOffering(spec, s.now())
	s.offerings = append(s.offerings, o)
	return o
}

func newOffering(o Offering, now time.Time) *offering {
	return &offering{
		id: nameUUID("offering", o.Name), name: o.Name, offerHA: o.OfferHA,
		cpus: orInt(o.CPUs, 1), speed: orInt(o.CPUSpeedMHz, 2000), memory: orInt(o.MemoryMB, 2048),
		system: o.System, created: now,
	}
}

func (s *Server) hostByName(name string) *host {
	for _, h := range s.hosts {
		if h.name == name {
			return h
		}
	}
	return nil
}

func (s *Server) clusterByName(name string) *cluster {
	for _, c := range s.clusters {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (s *Server) offeringByName(name string) *offering {
	for _, o := range s.offerings {
		if o.name == name {
			return o
		}
	}
	return nil
}

func (s *Server) projectByName(name string) *project {
	for _, p := range s.projects {
		if p.name == name {
			return p
		}
	}
	return nil
}

// step advances the model by one tick.
func (s *Server) step() {
	views := s.infra.Hosts()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.observe(views, now)
	s.updateHosts(now)
	moves, starts := s.updateVMs(now)
	s.runMigrationWork(now)
	s.monitorMaintenance(now)
	s.runJobs(now)
	s.syncSystemHosts(now)
	if len(moves) == 0 && len(starts) == 0 {
		return
	}
	// The XenServer side moves and starts the VMs without the lock, so that
	// the Infra may call back into the Server.
	s.mu.Unlock()
	errs := make([]error, len(moves))
	for i, m := range moves {
		errs[i] = s.migrator.MigrateVM(m.vm.instanceName, m.target.name)
	}
	startErrs := make([]error, len(starts))
	for i, m := range starts {
		startErrs[i] = s.starter.StartVM(m.vm.instanceName, m.target.name)
	}
	s.mu.Lock()
	now = s.now()
	for i, m := range starts {
		s.finishHAStart(m.vm, m.target, startErrs[i], now)
	}
	for i, m := range moves {
		v := m.vm
		if v.state != vmMigrating || v.target != m.target {
			continue // failed meanwhile, e.g. the target went down
		}
		if errs[i] != nil {
			s.failMigration(v, now, errs[i].Error())
			continue
		}
		s.finishMigration(v)
	}
}

// observe takes in the Infra view and runs the agents' pings.
func (s *Server) observe(views []HostView, now time.Time) {
	seen := map[*host]bool{}
	for _, v := range views {
		h := s.hostByName(v.Name)
		if h == nil {
			if v.Cluster == "" {
				continue
			}
			h = s.addHost(v, now)
			s.logger.Info("CloudStack host added", "host", h.name, "cluster", h.cluster.name)
		}
		if h.typ != hostRouting {
			continue
		}
		seen[h] = true
		h.address = v.Address
		h.reachable = v.Reachable
		if v.Heartbeat {
			h.lastHeartbeat = now
		}
	}
	for _, h := range s.hosts {
		if h.typ != hostRouting {
			continue
		}
		if !seen[h] {
			h.reachable = false
		}
		h.pinged = false
		if now.Before(h.nextPing) {
			continue
		}
		h.nextPing = now.Add(s.real(s.opts.PingInterval))
		if h.reachable {
			h.lastPing = now
			h.pinged = true
		}
	}
}

// updateHosts runs the agent state machine and the investigators.
func (s *Server) updateHosts(now time.Time) {
	pingTimeout := s.real(s.opts.PingTimeout)
	alertWait := s.real(s.effectiveAlertWait())
	for _, h := range s.hosts {
		if h.typ != hostRouting {
			continue
		}
		if h.pinged {
			switch h.state {
			case statusAlert, statusDisconnected:
				s.setHostState(h, statusUp, now, "Ping")
			case statusDown:
				h.connectingTil = now.Add(s.real(s.opts.ReconnectTime))
				s.setHostState(h, statusConnecting, now, "AgentConnected")
			}
		}
		silent := now.Sub(h.lastPing)
		if h.state == statusConnecting && !now.Before(h.connectingTil) && silent <= pingTimeout {
			s.setHostState(h, statusUp, now, "Ready")
		}
		if silent <= pingTimeout || h.state == statusDown {
			continue
		}
		// AgentManagerImpl.MonitorTask: a host in Disabled or Maintenance
		// is not investigated; its agent is put Disconnected
		// (ShutdownRequested), so it never goes to Alert or Down.
		if h.rs == rsDisabled || h.rs == rsMaintenance {
			s.setHostState(h, statusDisconnected, now, "ShutdownRequested")
			continue
		}
		if s.investigate(h, now) == statusDown {
			s.setHostState(h, statusDown, now, "HostDown")
			s.hostDown(h, now)
			continue
		}
		// State undetermined: Alert once alert.wait has passed since the
		// last ping, otherwise nothing happens until the next check.
		if silent > alertWait && h.state != statusAlert {
			s.setHostState(h, statusAlert, now, "PingTimeout")
		}
	}
}

// investigate is XenServerInvestigator.isAgentAlive: another Up host of the
// cluster reads the suspect's heartbeat file. It returns statusDown or ""
// (undetermined).
func (s *Server) investigate(suspect *host, now time.Time) string {
	for _, n := range s.hosts {
		if n == suspect || n.typ != hostRouting || n.cluster != suspect.cluster {
			continue
		}
		if n.state != statusUp || !n.reachable {
			continue
		}
		alive := !suspect.lastHeartbeat.IsZero() && now.Sub(suspect.lastHeartbeat) <= s.real(s.opts.HeartbeatTimeout)
		if alive {
			// "even it returns true, that means host is up, but XAPI may not work"
			return ""
		}
		return statusDown
	}
	return ""
}

func (s *Server) setHostState(h *host, to string, now time.Time, event string) {
	if h.state == to {
		return
	}
	if h.state == statusUp {
		h.disconnected = now
	}
	s.logger.Info("CloudStack host state changed", "host", h.name, "from", h.state, "to", to, "event", event)
	h.state = to
}

// hostDown is HighAvailabilityManagerImpl.scheduleRestartForVmsOnHost.
func (s *Server) hostDown(h *host, now time.Time) {
	for _, v := range s.vms {
		if v.target == h && v.state == vmMigrating {
			s.failMigration(v, now, "target host is down")
		}
		if v.host != h || !v.active() {
			continue
		}
		if !v.haEnabled() {
			s.logger.Info("CloudStack VM stopped: host is down and the VM is not HA enabled", "vm", v.name, "host", h.name)
			v.state, v.lastHost, v.host, v.target = vmStopped, h, nil, nil
			continue
		}
		v.haPending, v.haBlocked = true, false
		v.downHost, v.downAt, v.downLastPing = h, now, h.lastPing
		v.target = nil
		s.logger.Info("CloudStack HA work scheduled", "vm", v.name, "host", h.name)
	}
}

func (s *Server) setResourceState(h *host, to string) {
	if h.rs == to {
		return
	}
	s.logger.Info("CloudStack host resource state changed", "host", h.name, "from", h.rs, "to", to)
	h.rs = to
}

// pickHost chooses where to start or migrate a VM: an Up, Enabled,
// reachable host of the cluster other than exclude, with the fewest VMs.
func (s *Server) pickHost(c *cluster, exclude *host) *host {
	var best *host
	bestLoad := 0
	for _, h := range s.hosts {
		if h == exclude || h.typ != hostRouting || h.cluster != c {
			continue
		}
		if h.state != statusUp || h.rs != rsEnabled || !h.reachable {
			continue
		}
		load := 0
		for _, v := range s.vms {
			if (v.host == h && v.active()) || (v.target == h && v.state == vmMigrating) {
				load++
			}
		}
		if best == nil || load < bestLoad {
			best, bestLoad = h, load
		}
	}
	return best
}

// updateVMs runs HA restarts and finishes starts and migrations; with a
// Migrator it returns the migrations, and with a Starter the HA restarts,
// the XenServer side must carry out.
func (s *Server) updateVMs(now time.Time) (moves, starts []move) {
	alertWait := s.real(s.effectiveAlertWait())
	for _, v := range s.vms {
		if v.haPending {
			at := v.downLastPing.Add(alertWait)
			if at.Before(v.downAt) {
				at = v.downAt
			}
			if now.Before(at) {
				continue
			}
			t := s.pickHost(v.downHost.cluster, v.downHost)
			if t == nil {
				if !v.haBlocked {
					s.logger.Info("CloudStack HA restart waits for a host", "vm", v.name, "cluster", v.downHost.cluster.name)
					v.haBlocked = true
				}
				continue
			}
			s.logger.Info("CloudStack HA restart", "vm", v.name, "from", v.downHost.name, "to", t.name)
			v.haPending, v.haBlocked, v.haStart = false, false, s.starter != nil
			v.lastHost, v.host, v.target = v.downHost, t, nil
			v.state, v.until = vmStarting, now.Add(s.real(s.opts.VMStartTime))
			continue
		}
		if now.Before(v.until) {
			continue
		}
		switch v.state {
		case vmStarting:
			if v.haStart {
				starts = append(starts, move{vm: v, target: v.host})
				continue
			}
			v.state = vmRunning
			s.logger.Info("CloudStack VM running", "vm", v.name, "host", v.host.name)
		case vmMigrating:
			t := v.target
			switch {
			case t.state != statusUp || !t.reachable:
				s.failMigration(v, now, "target host unreachable")
			case s.migrator != nil:
				moves = append(moves, move{vm: v, target: t})
			default:
				s.finishMigration(v)
			}
		}
	}
	return moves, starts
}

// syncSystemHosts makes system VM hosts follow their VMs.
func (s *Server) syncSystemHosts(now time.Time) {
	for _, h := range s.hosts {
		if h.sysVM == nil {
			continue
		}
		st := statusDisconnected
		switch h.sysVM.state {
		case vmRunning, vmMigrating:
			st = statusUp
			h.lastPing = now
		case vmStarting:
			st = statusConnecting
		}
		if h.state == "" {
			h.state = st
		}
		s.setHostState(h, st, now, "")
	}
}

// finishHAStart ends an HA restart the Starter carried out: the VM runs,
// or, when the hypervisor refused, it is stopped and the HA work is tried
// again after restart.retry.interval (HighAvailabilityManagerImpl).
func (s *Server) finishHAStart(v *vm, target *host, err error, now time.Time) {
	if v.state != vmStarting || v.host != target || !v.haStart {
		return // moved on meanwhile, e.g. the target went down
	}
	v.haStart = false
	if err == nil {
		v.state = vmRunning
		s.logger.Info("CloudStack VM running", "vm", v.name, "host", target.name)
		return
	}
	s.logger.Info("CloudStack HA restart failed; retrying later", "vm", v.name, "host", target.name, "err", err)
	v.state, v.lastHost, v.host = vmStopped, target, nil
	v.haPending, v.downAt = true, now.Add(s.real(s.opts.RestartRetryInterval))
}
