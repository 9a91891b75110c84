package remediator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"xsha/xapi"
)

// fakeHost is one host of a fakePool.
type fakeHost struct {
	name, addr     string
	live, enabled  bool
	master         bool
	role           xapi.Role
	srAttached     bool
	hasPBD         bool
	armed          bool
	rejoinInReads  int // >0: reads left until the host is back as a slave
	emergencyError []string
	noStatefile    bool // the host cannot reach the HA statefile
}

// fakePool is a small model of a pool's HA behaviour, as the reference
// describes it, behind the PoolClient interface.
type fakePool struct {
	mu           sync.Mutex
	name         string
	haEnabled    bool
	srUUID       string // "" = no heartbeat SR
	hosts        []*fakeHost
	vmsProtected int
	readErr      error
	enableErr    error
	// lostAnswer, when set, is returned by a successful pool.enable_ha
	// instead of nil: the write took effect but its answer never came.
	lostAnswer error
	calls      []string
	// reenableAfterReads > 0: pool HA goes back on at that many reads from
	// now, as if an operator switched it on.
	reenableAfterReads int
	// after is called after a write succeeded, with the method name.
	after func(method string)
}

// newFakePool returns a healthy four-host pool with pool HA off.
func newFakePool(name string) *fakePool {
	p := &fakePool{name: name, srUUID: "sr-" + name}
	for i := 1; i <= 4; i++ {
		p.hosts = append(p.hosts, &fakeHost{
			name: fmt.Sprintf("%s-h%d", name, i), addr: fmt.Sprintf("127.0.9.%d", i),
			live: true, enabled: true, role: xapi.RoleSlave, srAttached: true, hasPBD: true,
		})
	}
	p.hosts[0].master, p.hosts[0].role = true, xapi.RoleMaster
	return p
}

// withLock runs fn with the pool locked, for tests changing state.
func (p *fakePool) withLock(fn func(p *fakePool)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p)
}

// emergencyOldMaster makes the master's host an HA-armed old master in emergency
// mode and promotes the second host, as after the seed's power cut and
// power-on with pool HA on.
func (p *fakePool) emergencyOldMaster() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.haEnabled = true
	for _, h := range p.hosts {
		h.armed = true
	}
	old, nu := p.hosts[0], p.hosts[1]
	old.master, old.role, old.live, old.enabled = false, xapi.RoleEmergency, false, false
	old.emergencyError = []string{"HA_HOST_CANNOT_ACCESS_STATEFILE"}
	nu.master, nu.role = true, xapi.RoleMaster
	return old.name
}

func (p *fakePool) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func (p *fakePool) count(method string) int {
	n := 0
	for _, c := range p.Calls() {
		if c == method || len(c) > len(method) && c[:len(method)+1] == method+"(" {
			n++
		}
	}
	return n
}

func (p *fakePool) HAEnabled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.haEnabled
}

func (p *fakePool) Read(ctx context.Context) (*xapi.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.readErr != nil {
		return nil, p.readErr
	}
	if p.reenableAfterReads > 0 {
		p.reenableAfterReads--
		if p.reenableAfterReads == 0 {
			p.haEnabled = true
		}
	}
	s := &xapi.Snapshot{Pool: p.name, Up: true, Synced: time.Now(), HAEnabled: p.haEnabled, VMsHAProtected: p.vmsProtected}
	if p.srUUID != "" {
		s.HeartbeatSR = &xapi.SR{UUID: p.srUUID, Name: "MGMT-HA", Type: "nfs", Shared: true, Attached: map[string]bool{}}
	}
	for _, h := range p.hosts {
		if h.rejoinInReads > 0 {
			h.rejoinInReads--
			if h.rejoinInReads == 0 {
				h.role, h.live, h.enabled, h.emergencyError, h.srAttached = xapi.RoleSlave, true, true, nil, true
			}
		}
		xh := xapi.Host{Name: h.name, Address: h.addr, UUID: "uuid-" + h.name, Live: h.live, Enabled: h.enabled, IsMaster: h.master,
			Probe: xapi.Probe{Role: h.role, Error: slices.Clone(h.emergencyError), At: time.Now()}}
		if h.role == xapi.RoleSlave {
			xh.Probe.MasterAddress = p.masterAddr()
		}
		if h.master {
			s.MasterUUID = xh.UUID
		}
		if p.haEnabled && h.srAttached && !h.noStatefile && (h.live || h.master) {
			// host.ha_statefiles: set while pool HA is on and the host
			// reaches the statefile (xapi_ha.ml).
			xh.HAStatefiles = []string{"statefile-" + p.name}
		}
		s.Hosts = append(s.Hosts, xh)
		if s.HeartbeatSR != nil && h.hasPBD {
			s.HeartbeatSR.Attached[h.name] = h.srAttached
		}
	}
	return s, nil
}

func (p *fakePool) masterAddr() string {
	for _, h := range p.hosts {
		if h.master {
			return h.addr
		}
	}
	return ""
}

func xerr(code string, params ...string) error { return &xapi.Error{Code: code, Params: params} }

func (p *fakePool) EnableHA(_ context.Context, sr string, cfg map[string]string) error {
	p.mu.Lock()
	p.calls = append(p.calls, fmt.Sprintf("pool.enable_ha(%s,%v)", sr, cfg))
	err := func() error {
		if p.haEnabled {
			return xerr("HA_IS_ENABLED")
		}
		if p.enableErr != nil {
			return p.enableErr
		}
		if sr != p.srUUID {
			return xerr("HANDLE_INVALID", "SR", sr)
		}
		for _, h := range p.hosts {
			if !h.live {
				return xerr("HOST_OFFLINE", h.name)
			}
			if !h.srAttached || !h.hasPBD {
				return xerr("SR_HAS_NO_PBDS", sr)
			}
		}
		p.haEnabled = true
		for _, h := range p.hosts {
			h.armed = true
		}
		return nil
	}()
	lost := p.lostAnswer
	p.mu.Unlock()
	if err == nil && p.after != nil {
		p.after("pool.enable_ha")
	}
	if err == nil && lost != nil {
		return lost
	}
	return err
}

func (p *fakePool) DisableHA(context.Context) error {
	p.mu.Lock()
	p.calls = append(p.calls, "pool.disable_ha")
	var err error
	if !p.haEnabled {
		err = xerr("HA_NOT_ENABLED")
	} else {
		p.haEnabled = false
		for _, h := range p.hosts {
			if h.live { // the master cannot reach the others
				h.armed = false
			}
		}
	}
	p.mu.Unlock()
	if err == nil && p.after != nil {
		p.after("pool.disable_ha")
	}
	return err
}

func (p *fakePool) EmergencyHADisable(_ context.Context, addr string) error {
	p.mu.Lock()
	p.calls = append(p.calls, "host.emergency_ha_disable("+addr+")")
	var err error
	var h *fakeHost
	for _, x := range p.hosts {
		if x.addr == addr {
			h = x
		}
	}
	switch {
	case h == nil:
		err = errors.New("connection refused")
	case !h.armed:
		err = xerr("HA_NOT_ENABLED")
	default:
		h.armed = false
		if p.haEnabled {
			// The hazard: disarmed under an HA-enabled pool.
			h.emergencyError = []string{"HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED"}
		} else {
			h.rejoinInReads = 3
		}
	}
	p.mu.Unlock()
	if err == nil && p.after != nil {
		p.after("host.emergency_ha_disable")
	}
	return err
}
