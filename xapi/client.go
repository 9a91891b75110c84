package xapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	xenapi "github.com/terra-farm/go-xen-api-client"

	"xsha/config"
)

// ClientOptions are the optional parts of a Client.
type ClientOptions struct {
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// Metrics counts calls and sessions; nil counts nothing.
	Metrics *Metrics
}

// Client reads and changes one pool on demand, for the remediator. It holds
// one session on the master, opened on first use, follows the master like a
// Watcher and logs in again on SESSION_INVALID. It never caches state: Read
// always reads afresh.
type Client struct {
	pool config.Pool
	d    *dialer
	log  *slog.Logger

	mu     sync.Mutex
	s      *session
	master string   // address of the last master
	known  []string // member addresses from the last read
}

// NewClient returns a client for pool; it connects on first use.
func NewClient(pool config.Pool, opts ClientOptions) *Client {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{pool: pool, d: newDialer(pool, opts.Metrics), log: log.With("pool", pool.Name)}
}

// session returns the open session, opening one on the master if needed.
func (c *Client) session(ctx context.Context) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s != nil && !c.s.c.broken.Load() {
		return c.s, nil
	}
	if c.s != nil {
		go func(s *session) { _ = c.d.logout(context.Background(), s) }(c.s)
		c.s = nil
	}
	cands := slices.Clone(c.pool.Hosts)
	for _, a := range c.known {
		if !slices.Contains(cands, a) {
			cands = append(cands, a)
		}
	}
	s, err := c.d.findMaster(ctx, c.master, cands, c.log)
	if err != nil {
		return nil, err
	}
	c.s, c.master = s, s.addr()
	// Learn every member's address so that the master can be found again
	// through any of them if it goes away.
	var known []string
	err = s.c.call(ctx, "host.get_all_records", 0, func(api *xenapi.Client) error {
		hosts, err := api.Host.GetAllRecords(s.ref)
		for _, h := range hosts {
			known = append(known, h.Address)
		}
		return err
	})
	if err != nil {
		c.log.Debug("cannot list the pool's hosts", "err", err)
		return s, nil
	}
	c.known = known
	return s, nil
}

// forgetIfStale drops s when err shows that it cannot be used any more:
// xapi forgot it (SESSION_INVALID), its host is not the master (any more)
// or answers in emergency mode, or its host did not answer. The session is
// logged out, in the background when its host did not answer (that may hang
// until the call timeout). It reports whether s was stale.
func (c *Client) forgetIfStale(s *session, err error) bool {
	code := ErrorCode(err)
	if code != CodeSessionInvalid && code != CodeHostIsSlave && !emergencyCodes[code] && !IsUnreachable(err) {
		return false
	}
	c.mu.Lock()
	if m, ok := masterAddress(err); ok {
		c.master = m
	}
	current := c.s == s
	if current {
		c.s = nil
	}
	c.mu.Unlock()
	switch {
	case !current:
		// Another call dropped it already.
	case code == CodeSessionInvalid:
		// xapi has already forgotten it.
		c.d.metrics.sessionClosed(c.pool.Name)
	case IsUnreachable(err):
		go func() { _ = c.d.logout(context.Background(), s) }()
	default:
		_ = c.d.logout(context.Background(), s)
	}
	return true
}

// refused reports whether xapi turned a call down before dispatching it,
// so that it is safe to repeat on the master even if it writes:
// SESSION_INVALID, HOST_IS_SLAVE and the emergency-mode errors, except
// INTERNAL_ERROR, which a failed operation may also raise.
func refused(err error) bool {
	code := ErrorCode(err)
	return code == CodeSessionInvalid || code == CodeHostIsSlave || (emergencyCodes[code] && code != CodeInternalError)
}

// withSession runs fn with a session on the master. When fn fails because
// the session was stale, it logs in again (following the master) and, if
// again allows it for that error, runs fn once more.
func (c *Client) withSession(ctx context.Context, again func(error) bool, fn func(s *session) error) error {
	for attempt := 0; ; attempt++ {
		s, err := c.session(ctx)
		if err != nil {
			return err
		}
		err = fn(s)
		if err == nil || !c.forgetIfStale(s, err) || attempt > 0 || !again(err) {
			return err
		}
	}
}

// always lets withSession repeat a read after any stale session.
func always(error) bool { return true }

// callKind says how do treats a call.
type callKind int

const (
	// read calls are repeated once after any failure of the session.
	read callKind = iota
	// write calls are the HA operations. xapi answers them only when done,
	// which takes minutes (enable_ha), so they run on a connection of their
	// own, bounded by ctx and longCallTimeout rather than the call timeout.
	// A write that got no answer may have happened: it is repeated only
	// after a refusal.
	write
)

// do runs one call with a session on the master, repeating it once on a new
// session as kind allows.
func (c *Client) do(ctx context.Context, method string, kind callKind, fn func(api *xenapi.Client, s xenapi.SessionRef) error) error {
	if kind == read {
		return c.withSession(ctx, always, func(s *session) error {
			return s.c.call(ctx, method, 0, func(api *xenapi.Client) error { return fn(api, s.ref) })
		})
	}
	return c.withSession(ctx, refused, func(s *session) error {
		cn, err := c.d.dial(s.addr(), c.d.long)
		if err != nil {
			return err
		}
		return cn.call(ctx, method, longCallTimeout, func(api *xenapi.Client) error { return fn(api, s.ref) })
	})
}

// Read reads the whole pool from the master and probes every member; nothing
// is cached. The snapshot is Up when the read succeeded.
func (c *Client) Read(ctx context.Context) (*Snapshot, error) {
	ca := newCache()
	err := c.withSession(ctx, always, func(s *session) error { return ca.load(ctx, s) })
	var snap *Snapshot
	if err == nil {
		snap, err = ca.build(c.pool)
	}
	if err != nil {
		snap = &Snapshot{Pool: c.pool.Name, LastError: err.Error()}
	} else {
		c.mu.Lock()
		c.known = c.known[:0]
		for _, h := range snap.Hosts {
			c.known = append(c.known, h.Address)
		}
		snap.Up, snap.Synced, snap.MasterAddress = true, time.Now(), c.master
		c.mu.Unlock()
	}
	snap.attachProbes(c.pool.Hosts, probeAll(ctx, c.d, addresses(c.pool.Hosts, snap.Hosts)))
	return snap, err
}

// EnableHA runs pool.enable_ha with the SR of the given UUID as the only
// heartbeat SR and cfg as the HA configuration (e.g. {"timeout": "180"}).
// xapi answers only when HA is up, which takes minutes: ctx bounds the wait.
func (c *Client) EnableHA(ctx context.Context, heartbeatSRUUID string, cfg map[string]string) error {
	var sr xenapi.SRRef
	err := c.do(ctx, "SR.get_by_uuid", read, func(api *xenapi.Client, s xenapi.SessionRef) error {
		var err error
		sr, err = api.SR.GetByUUID(s, heartbeatSRUUID)
		return err
	})
	if err != nil {
		return fmt.Errorf("heartbeat SR %s: %w", heartbeatSRUUID, err)
	}
	if cfg == nil {
		cfg = map[string]string{}
	}
	return c.do(ctx, "pool.enable_ha", write, func(api *xenapi.Client, s xenapi.SessionRef) error {
		return api.Pool.EnableHa(s, []xenapi.SRRef{sr}, cfg)
	})
}

// DisableHA runs pool.disable_ha; like EnableHA it may take a while and is
// bounded by ctx.
func (c *Client) DisableHA(ctx context.Context) error {
	return c.do(ctx, "pool.disable_ha", write, func(api *xenapi.Client, s xenapi.SessionRef) error {
		return api.Pool.DisableHa(s)
	})
}

// localSession runs fn with a slave-local session on the host at addr (an
// emergency call that works on slaves and emergency-mode hosts), then logs
// the session out with session.local_logout.
func (c *Client) localSession(ctx context.Context, addr string, fn func(cn *conn, s xenapi.SessionRef) error) error {
	cn, err := c.d.dial(addr, c.d.calls)
	if err != nil {
		return err
	}
	var ref xenapi.SessionRef
	err = cn.call(context.WithoutCancel(ctx), "session.slave_local_login_with_password", 0, func(api *xenapi.Client) error {
		var err error
		ref, err = api.Session.SlaveLocalLoginWithPassword(c.pool.Username, string(c.pool.Password))
		return err
	})
	if err != nil {
		return err
	}
	ferr := fn(cn, ref)
	if cn.broken.Load() {
		if cn, err = c.d.dial(addr, c.d.calls); err != nil {
			return errors.Join(ferr, err)
		}
	}
	lerr := cn.call(context.WithoutCancel(ctx), "session.local_logout", 0, func(api *xenapi.Client) error {
		return api.Session.LocalLogout(ref)
	})
	if lerr != nil {
		c.log.Warn("local logout failed", "host", addr, "err", lerr)
	}
	return ferr
}

// EmergencyHADisable runs host.emergency_ha_disable on the host at
// hostAddress through a slave-local session on that host.
func (c *Client) EmergencyHADisable(ctx context.Context, hostAddress string) error {
	return c.localSession(ctx, hostAddress, func(cn *conn, s xenapi.SessionRef) error {
		return cn.call(ctx, "host.emergency_ha_disable", 0, func(api *xenapi.Client) error {
			// Raw call without the soft flag: 6.2 has no parameter there and
			// answers MESSAGE_PARAMETER_COUNT_MISMATCH to terra-farm's
			// two-argument EmergencyHaDisable; later versions default it.
			_, err := api.APICall("host.emergency_ha_disable", string(s))
			return err
		})
	})
}

// Close logs the session out.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	s := c.s
	c.s = nil
	c.mu.Unlock()
	defer c.d.close()
	if s == nil {
		return nil
	}
	return c.d.logout(ctx, s)
}
