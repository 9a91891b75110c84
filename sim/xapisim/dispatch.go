package xapisim

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"xsha/sim/scenario"
)

// apiError is an XAPI failure: ErrorDescription = [code, params...].
type apiError struct {
	code   string
	params []string
}

func (e *apiError) Error() string {
	if len(e.params) == 0 {
		return e.code
	}
	return e.code + " [" + strings.Join(e.params, ", ") + "]"
}

func fail(code string, params ...string) *apiError { return &apiError{code: code, params: params} }

// session is one XAPI session: in the master's table, or local to a host
// (slave_local_login_with_password).
type session struct {
	ref, uuid        string
	user, originator string
	local            bool
	lastActive       time.Time
	seq              uint64
	// events is the 6.2 event subscription of the session's event.from
	// calls; nil when none is in flight.
	events *eventSub
}

// Session garbage collection, as xapi's db_gc thread does it
// (ocaml/xapi/db_gc.ml, tag XS62; db_gc.ml and db_gc_util.ml, branch
// 1.14-lcm): every 30 s it destroys the sessions idle for more than 24 h,
// then, in each group of sessions over its limit, the least recently
// active ones.
const (
	sessionGCInterval = 30 * time.Second // db_GC_TIMER
	sessionIdleLimit  = 24 * time.Hour   // inactive_session_timeout
	maxSessions       = 400              // max_sessions: 6.2's one group, 7.x root logins without originator
	maxSessionsPerKey = 500              // 7.x max_sessions_per_originator and max_sessions_per_user_name
)

type ptype uint8

const (
	pString ptype = iota
	pInt
	pFloat
	pBool
	pStringSet
	pStringMap
)

type param struct {
	name string
	typ  ptype
}

// method is one XAPI call.
type method struct {
	name    string
	session bool
	params  []param
	// defaults is how many trailing params have defaults. Generated 6.2
	// dispatchers ignore extra trailing params of such methods.
	defaults  int
	emergency bool
	run       func(c *call) (Value, *apiError)
}

// call is one request being served, with the pool locked.
type call struct {
	ctx  context.Context
	p    *Pool
	h    *hostState
	m    *method
	args []any
	sess *session
}

func (c *call) str(i int) string {
	if i < len(c.args) {
		s, _ := c.args[i].(string)
		return s
	}
	return ""
}

func (c *call) strings(i int) []string {
	if i < len(c.args) {
		s, _ := c.args[i].([]string)
		return s
	}
	return nil
}

func (c *call) smap(i int) map[string]string {
	if i < len(c.args) {
		m, _ := c.args[i].(map[string]string)
		return m
	}
	return nil
}

var (
	methods62 = buildMethods(true)
	methods7  = buildMethods(false)
)

// serve serves one request on host h.
func (p *Pool) serve(ctx context.Context, h *hostState, req *Request) (Value, *apiError) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dispatch(ctx, h, req)
}

func (p *Pool) dispatch(ctx context.Context, h *hostState, req *Request) (Value, *apiError) {
	table := methods7
	if p.is62 {
		table = methods62
	}
	m := table[req.Method]
	counted := req.Method
	if m == nil {
		counted = "(unknown)"
	}
	h.calls[counted]++
	p.calls[counted]++
	if p.closed {
		return Value{}, fail("INTERNAL_ERROR", "shutting down")
	}
	if !h.xapi {
		return Value{}, fail("HOST_STILL_BOOTING")
	}
	// Emergency mode: every call but the emergency calls gets the stored
	// error, checked before dispatch.
	if h.role == RoleEmergency && (m == nil || !m.emergency) {
		return Value{}, fail(h.emergency[0], h.emergency[1:]...)
	}
	if m == nil {
		return Value{}, fail("MESSAGE_METHOD_UNKNOWN", req.Method)
	}
	params := req.Params
	n := len(params)
	if m.session {
		n--
	}
	total := len(m.params)
	mandatory := total - m.defaults
	if (m.defaults == 0 && n != total) || n < mandatory {
		expected := total
		if m.defaults > 0 {
			expected = mandatory
		}
		return Value{}, fail("MESSAGE_PARAMETER_COUNT_MISMATCH", req.Method, strconv.Itoa(expected), strconv.Itoa(n))
	}
	c := &call{ctx: ctx, p: p, h: h, m: m}
	if m.session {
		if params[0].Kind != KindString {
			return Value{}, fail("FIELD_TYPE_ERROR", "session_id")
		}
		params = params[1:]
	}
	for i, prm := range m.params {
		if i >= len(params) {
			break
		}
		v, ok := convert(params[i], prm.typ, p.is62)
		if !ok {
			return Value{}, fail("FIELD_TYPE_ERROR", prm.name)
		}
		c.args = append(c.args, v)
	}
	if m.session {
		ref := req.Params[0].Str
		switch s := h.local[ref]; {
		case s != nil:
			c.sess = s
		case p.sessions[ref] != nil && p.serving() == h:
			c.sess = p.sessions[ref]
		case h.role == RoleSlave:
			// Session_check.check (ocaml/idl/ocaml_backend/session_check.ml,
			// tag XS62) reads the session from the master's database: with
			// the master down the call hangs; an unknown reference is
			// SESSION_INVALID; a valid one is HOST_IS_SLAVE with the
			// address of the host pool.master names.
			if err := p.waitForMaster(ctx, h); err != nil {
				return Value{}, err
			}
			if p.sessions[ref] == nil {
				return Value{}, fail("SESSION_INVALID", ref)
			}
			return Value{}, fail("HOST_IS_SLAVE", p.master.address)
		default:
			return Value{}, fail("SESSION_INVALID", ref)
		}
		c.sess.lastActive = time.Now()
		// A local session on a slave reaches the database through the
		// master: with the master gone, such calls hang.
		if c.sess.local && h.role == RoleSlave && !m.emergency {
			if err := p.waitForMaster(ctx, h); err != nil {
				return Value{}, err
			}
		}
	}
	return m.run(c)
}

// waitForMaster blocks (pool unlocked) until h's master serves again.
func (p *Pool) waitForMaster(ctx context.Context, h *hostState) *apiError {
	for {
		if m := p.serving(); m != nil && reachable(m) && !h.isolated && m.address == h.conf {
			return nil
		}
		if p.closed {
			return fail("INTERNAL_ERROR", "shutting down")
		}
		ch := p.db.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
		}
		p.mu.Lock()
		if ctx.Err() != nil {
			return fail("INTERNAL_ERROR", "client gone")
		}
	}
}

func convert(v Value, t ptype, is62 bool) (any, bool) {
	switch t {
	case pString:
		if v.Kind == KindString {
			return v.Str, true
		}
	case pInt:
		switch v.Kind {
		case KindString:
			n, err := strconv.ParseInt(strings.TrimSpace(v.Str), 10, 64)
			return n, err == nil
		case KindInt:
			// XS 6.2 reads ints only from strings.
			return v.Int, !is62
		}
	case pFloat:
		switch v.Kind {
		case KindDouble:
			return v.Double, true
		case KindInt:
			return float64(v.Int), !is62
		case KindString:
			if is62 {
				return nil, false
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v.Str), 64)
			return f, err == nil
		}
	case pBool:
		switch v.Kind {
		case KindBool:
			return v.Bool, true
		case KindString:
			if !is62 {
				switch strings.ToLower(v.Str) {
				case "true":
					return true, true
				case "false":
					return false, true
				}
			}
		}
	case pStringSet:
		if v.Kind != KindArray {
			return nil, false
		}
		out := make([]string, 0, len(v.Elems))
		for _, e := range v.Elems {
			if e.Kind != KindString {
				return nil, false
			}
			out = append(out, e.Str)
		}
		return out, true
	case pStringMap:
		if v.Kind != KindStruct {
			return nil, false
		}
		out := make(map[string]string, len(v.Members))
		for _, m := range v.Members {
			if m.Value.Kind != KindString {
				return nil, false
			}
			out[m.Name] = m.Value.Str
		}
		return out, true
	}
	return nil, false
}

func buildMethods(is62 bool) map[string]*method {
	ms := map[string]*method{}
	add := func(m *method) { ms[m.name] = m }

	// Sessions.
	login := &method{name: "session.login_with_password", params: []param{{"uname", pString}, {"pwd", pString}, {"version", pString}}, defaults: 1, run: runLogin}
	if !is62 {
		login.params = append(login.params, param{"originator", pString})
		login.defaults = 2
	}
	add(login)
	add(&method{name: "session.slave_local_login_with_password", params: []param{{"uname", pString}, {"pwd", pString}}, emergency: true, run: runLocalLogin})
	add(&method{name: "session.logout", session: true, run: runLogout})
	add(&method{name: "session.local_logout", session: true, emergency: true, run: runLocalLogout})
	add(&method{name: "session.get_this_host", session: true, params: []param{{"self", pString}}, run: runGetThisHost})

	// Pool HA.
	add(&method{name: "pool.enable_ha", session: true, params: []param{{"heartbeat_srs", pStringSet}, {"configuration", pStringMap}}, run: runEnableHA})
	add(&method{name: "pool.disable_ha", session: true, run: runDisableHA})
	add(&method{name: "pool.set_ha_host_failures_to_tolerate", session: true, params: []param{{"self", pString}, {"value", pInt}}, run: runSetTolerate})
	add(&method{name: "pool.ha_compute_max_host_failures_to_tolerate", session: true, run: runComputeMax})
	add(&method{name: "pool.emergency_transition_to_master", session: true, emergency: true, run: runTransitionToMaster})
	add(&method{name: "pool.emergency_reset_master", session: true, params: []param{{"master_address", pString}}, emergency: true, run: runResetMaster})
	add(&method{name: "pool.recover_slaves", session: true, run: runRecoverSlaves})
	ehd := &method{name: "host.emergency_ha_disable", session: true, emergency: true, run: runEmergencyHADisable}
	if !is62 {
		ehd.params = []param{{"soft", pBool}}
		ehd.defaults = 1
	}
	add(ehd)
	add(&method{name: "host.disable", session: true, params: []param{{"host", pString}}, run: runHostEnable(false)})
	add(&method{name: "host.enable", session: true, params: []param{{"host", pString}}, run: runHostEnable(true)})
	add(&method{name: "host.evacuate", session: true, params: []param{{"host", pString}}, run: runEvacuate})
	add(&method{name: "host.assert_can_evacuate", session: true, params: []param{{"host", pString}}, run: runAssertCanEvacuate})
	add(&method{name: "host.get_vms_which_prevent_evacuation", session: true, params: []param{{"self", pString}}, run: runVMsPreventingEvacuation})
	add(&method{name: "host.reboot", session: true, params: []param{{"host", pString}}, run: runHostPower(true)})
	add(&method{name: "host.shutdown", session: true, params: []param{{"host", pString}}, run: runHostPower(false)})
	add(&method{name: "VM.pool_migrate", session: true, params: []param{{"vm", pString}, {"host", pString}, {"options", pStringMap}}, run: runPoolMigrate})
	add(&method{name: "pool.designate_new_master", session: true, params: []param{{"host", pString}}, run: runDesignateNewMaster})
	add(&method{name: "VM.set_ha_restart_priority", session: true, params: []param{{"self", pString}, {"value", pString}}, run: runSetHARestartPriority})

	// Events.
	add(&method{name: "event.from", session: true, params: []param{{"classes", pStringSet}, {"token", pString}, {"timeout", pFloat}}, run: runEventFrom})
	add(&method{name: "event.inject", session: true, params: []param{{"class", pString}, {"ref", pString}}, run: runEventInject})

	// Generic calls of the simulated classes.
	for name, c := range classes {
		if is62 && name == "pool_update" {
			continue
		}
		cls := c
		add(&method{name: name + ".get_all_records", session: true, run: func(k *call) (Value, *apiError) {
			var ms []Member
			for _, o := range k.p.db.all(cls.name) {
				ms = append(ms, Member{Name: o.ref, Value: k.p.db.record(o)})
			}
			return Struct(ms...), nil
		}})
		add(&method{name: name + ".get_all", session: true, run: func(k *call) (Value, *apiError) {
			var refs []string
			for _, o := range k.p.db.all(cls.name) {
				refs = append(refs, o.ref)
			}
			return Strings(refs), nil
		}})
		add(&method{name: name + ".get_record", session: true, params: []param{{"self", pString}}, run: func(k *call) (Value, *apiError) {
			o, err := k.obj(cls.name, k.str(0))
			if err != nil {
				return Value{}, err
			}
			return k.p.db.record(o), nil
		}})
		add(&method{name: name + ".get_by_uuid", session: true, params: []param{{"uuid", pString}}, run: func(k *call) (Value, *apiError) {
			o, ok := k.p.db.byUUID(cls.name, k.str(0))
			if !ok {
				return Value{}, fail("UUID_INVALID", cls.name, k.str(0))
			}
			return String(o.ref), nil
		}})
		if cls.hasNameLabel {
			add(&method{name: name + ".get_by_name_label", session: true, params: []param{{"label", pString}}, run: func(k *call) (Value, *apiError) {
				var refs []string
				for _, o := range k.p.db.all(cls.name) {
					if o.str("name_label") == k.str(0) {
						refs = append(refs, o.ref)
					}
				}
				return Strings(refs), nil
			}})
		}
		for i := range cls.fields {
			f := &cls.fields[i]
			if is62 && f.not62 {
				continue
			}
			add(&method{name: name + ".get_" + f.name, session: true, params: []param{{"self", pString}}, run: func(k *call) (Value, *apiError) {
				o, err := k.obj(cls.name, k.str(0))
				if err != nil {
					return Value{}, err
				}
				return encodeField(f, o.f[f.name]), nil
			}})
		}
	}
	// Classes the lab does not populate answer as empty tables.
	for _, t := range tables {
		if _, simulated := classes[t.name]; simulated || t.name == "session" || t.removed || (is62 && t.only7x) {
			continue
		}
		cls := t.name
		add(&method{name: cls + ".get_all_records", session: true, run: func(*call) (Value, *apiError) { return Struct(), nil }})
		add(&method{name: cls + ".get_all", session: true, run: func(*call) (Value, *apiError) { return Array(), nil }})
		add(&method{name: cls + ".get_record", session: true, params: []param{{"self", pString}}, run: func(k *call) (Value, *apiError) {
			return Value{}, fail("HANDLE_INVALID", cls, k.str(0))
		}})
		add(&method{name: cls + ".get_by_uuid", session: true, params: []param{{"uuid", pString}}, run: func(k *call) (Value, *apiError) {
			return Value{}, fail("UUID_INVALID", cls, k.str(0))
		}})
	}
	return ms
}

// obj returns the row ref of the class, or HANDLE_INVALID.
func (c *call) obj(class, ref string) (*object, *apiError) {
	o, ok := c.p.db.get(ref)
	if !ok || o.class != class {
		return nil, fail("HANDLE_INVALID", class, ref)
	}
	return o, nil
}

func (p *Pool) authenticate(user, pwd string) bool {
	return user == p.sc.Credentials.Username && pwd == p.sc.Credentials.Password
}

// authFailure waits the authentication failure delay (pool unlocked).
func (c *call) authFailure(user string) *apiError {
	c.p.sleep(c.ctx, c.p.durations().AuthFailureDelay.D()) //nolint:errcheck // the client left or the pool closed
	return fail("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
}

func runLogin(c *call) (Value, *apiError) {
	p, h := c.p, c.h
	user, pwd := c.str(0), c.str(1)
	if h.role == RoleSlave {
		if p.cfg.SlaveLogin == scenario.SlaveLoginModern {
			// CA-129089: a slave redirects before authenticating.
			return Value{}, fail("HOST_IS_SLAVE", h.conf)
		}
		// 6.2 release code authenticates through the master's database.
		if err := p.waitForMaster(c.ctx, h); err != nil {
			return Value{}, err
		}
		if !p.authenticate(user, pwd) {
			return Value{}, c.authFailure(user)
		}
		return Value{}, fail("HOST_IS_SLAVE", h.conf)
	}
	if !p.authenticate(user, pwd) {
		return Value{}, c.authFailure(user)
	}
	if p.serving() != h {
		return Value{}, fail("HOST_STILL_BOOTING")
	}
	s := &session{ref: "OpaqueRef:" + newUUID(), uuid: newUUID(), user: user, lastActive: time.Now()}
	if len(c.args) > 3 {
		s.originator = c.str(3)
	}
	p.sessionSeq++
	s.seq = p.sessionSeq
	p.sessions[s.ref] = s
	if !p.sessionGC {
		p.sessionGC = true
		p.after(sessionGCInterval, p.sessionGCPass)
	}
	return String(s.ref), nil
}

// sessionGCPass is one pass of xapi's session garbage collector
// (timeout_sessions), rescheduled every sessionGCInterval. XenServer 6.2
// keeps one group of 400 sessions; 7.x groups root logins (user name "" or
// "root") by originator, 400 for those without one and 500 for each
// originator, and other users by user name, 500 each. The lab has no
// tasks, so every session is disposable.
func (p *Pool) sessionGCPass() {
	defer p.after(sessionGCInterval, p.sessionGCPass)
	groups := map[string][]*session{}
	for _, x := range p.sessions {
		groups[sessionGroup(p.is62, x)] = append(groups[sessionGroup(p.is62, x)], x)
	}
	threshold := time.Now().Add(-p.scaled(sessionIdleLimit))
	destroyed := false
	for key, ss := range groups {
		limit := maxSessionsPerKey
		if key == groupExternal {
			limit = maxSessions
		}
		var young []*session
		for _, x := range ss {
			if x.lastActive.After(threshold) {
				young = append(young, x)
			} else {
				delete(p.sessions, x.ref)
				destroyed = true
			}
		}
		if len(young) <= limit {
			continue
		}
		sort.Slice(young, func(i, j int) bool {
			if !young[i].lastActive.Equal(young[j].lastActive) {
				return young[i].lastActive.After(young[j].lastActive)
			}
			return young[i].seq > young[j].seq
		})
		for _, x := range young[limit:] {
			delete(p.sessions, x.ref)
			destroyed = true
		}
	}
	if destroyed {
		p.db.bump()
	}
}

// groupExternal is the group of 6.2 sessions and of 7.x root logins without
// an originator ("external" in db_gc_util.ml).
const groupExternal = "external"

// sessionGroup is the group a session counts against.
func sessionGroup(is62 bool, s *session) string {
	root := s.user == "" || s.user == "root"
	switch {
	case is62 || (root && s.originator == ""):
		return groupExternal
	case root:
		return "originator:" + s.originator
	}
	return "username:" + s.user
}

func runLocalLogin(c *call) (Value, *apiError) {
	user, pwd := c.str(0), c.str(1)
	if !c.p.authenticate(user, pwd) {
		return Value{}, c.authFailure(user)
	}
	s := &session{ref: "OpaqueRef:" + newUUID(), uuid: newUUID(), user: user, local: true, lastActive: time.Now()}
	c.h.local[s.ref] = s
	return String(s.ref), nil
}

func runLogout(c *call) (Value, *apiError) {
	if c.sess.local {
		delete(c.h.local, c.sess.ref)
	} else {
		delete(c.p.sessions, c.sess.ref)
	}
	c.p.db.bump()
	return String(""), nil
}

func runLocalLogout(c *call) (Value, *apiError) {
	if !c.sess.local {
		return Value{}, fail("SESSION_INVALID", c.sess.ref)
	}
	delete(c.h.local, c.sess.ref)
	c.p.db.wake()
	return String(""), nil
}

func runGetThisHost(c *call) (Value, *apiError) {
	if c.str(0) != c.sess.ref {
		if _, ok := c.p.sessions[c.str(0)]; !ok {
			return Value{}, fail("HANDLE_INVALID", "session", c.str(0))
		}
	}
	return String(c.h.ref), nil
}

// onMaster fails calls that must run on the master when made with a local
// session on a slave.
func (c *call) onMaster() *apiError {
	if c.p.serving() != c.h {
		return fail("HOST_IS_SLAVE", c.h.conf)
	}
	return nil
}

func runEnableHA(c *call) (Value, *apiError) {
	if err := c.onMaster(); err != nil {
		return Value{}, err
	}
	if err := c.p.enableHA(c.ctx, c.strings(0), c.smap(1)); err != nil {
		return Value{}, err
	}
	return String(""), nil
}

func runDisableHA(c *call) (Value, *apiError) {
	if err := c.onMaster(); err != nil {
		return Value{}, err
	}
	if err := c.p.disableHA(c.ctx); err != nil {
		return Value{}, err
	}
	return String(""), nil
}

func runSetTolerate(c *call) (Value, *apiError) {
	pool, err := c.obj("pool", c.str(0))
	if err != nil {
		return Value{}, err
	}
	n, _ := c.args[1].(int64)
	if err := c.p.setFailuresToTolerate(pool, n); err != nil {
		return Value{}, err
	}
	return String(""), nil
}

func runComputeMax(c *call) (Value, *apiError) {
	return Int(c.p.maxFailuresToTolerate()), nil
}

func runEmergencyHADisable(c *call) (Value, *apiError) {
	soft := false
	if len(c.args) > 0 {
		soft, _ = c.args[0].(bool)
	}
	if err := c.p.emergencyHADisable(c.h, soft); err != nil {
		return Value{}, err
	}
	return String(""), nil
}

// runHostEnable is host.enable or host.disable. The master forwards the
// call to the host (message_forwarding.ml at XS62, do_op_on): check_live
// answers HOST_OFFLINE for a host its database does not hold live; a live
// host it cannot reach gives CANNOT_CONTACT_HOST once the connection
// attempts have failed. Nothing changes then.
func runHostEnable(enable bool) func(c *call) (Value, *apiError) {
	return func(c *call) (Value, *apiError) {
		o, err := c.obj("host", c.str(0))
		if err != nil {
			return Value{}, err
		}
		p := c.p
		for _, x := range p.hosts {
			if x.ref != o.ref {
				continue
			}
			if !enable {
				if err := p.hostDisablePreservesPlan(x); err != nil {
					return Value{}, err
				}
			}
			if x != p.serving() {
				if !p.metricsObj(x).boolean("live") {
					return Value{}, fail("HOST_OFFLINE", x.ref)
				}
				if !reachable(x) {
					p.sleep(c.ctx, p.durations().ContactRetry.D()) //nolint:errcheck // the answer is the same
					if !reachable(x) {
						return Value{}, fail("CANNOT_CONTACT_HOST", x.ref)
					}
				}
			}
			// assert_safe_to_reenable (xapi_host.ml at XS62).
			if enable && !p.hostObj(x).boolean("enabled") && x.disabledUntilReboot {
				return Value{}, fail("HOST_DISABLED_UNTIL_REBOOT")
			}
			// xapi keeps this flag in memory (xapi_host.ml).
			x.disabledByAdmin = !enable
		}
		p.db.setField(o, "enabled", enable)
		return String(""), nil
	}
}

func runSetHARestartPriority(c *call) (Value, *apiError) {
	o, err := c.obj("VM", c.str(0))
	if err != nil {
		return Value{}, err
	}
	if err := c.p.setHARestartPriority(o, c.str(1)); err != nil {
		return Value{}, err
	}
	return String(""), nil
}

// runTransitionToMaster is pool.emergency_transition_to_master: the host
// restarts xapi as master after the fuse time.
func runTransitionToMaster(c *call) (Value, *apiError) {
	h := c.h
	if h.armed {
		return Value{}, fail("HA_IS_ENABLED")
	}
	p := c.p
	p.restartAfterFuse(h, func() {
		h.conf = "master"
		p.startXAPI(h)
	})
	return String(""), nil
}

// runResetMaster is pool.emergency_reset_master: point this slave at
// another master and restart xapi.
func runResetMaster(c *call) (Value, *apiError) {
	h := c.h
	if h.armed {
		return Value{}, fail("HA_IS_ENABLED")
	}
	addr := c.str(0)
	if h.conf == addr && h.role != RoleEmergency {
		return String(""), nil
	}
	p := c.p
	p.restartAfterFuse(h, func() {
		h.conf = addr
		p.startXAPI(h)
	})
	return String(""), nil
}

// runRecoverSlaves is pool.recover_slaves on the master: every reachable
// slave not pointing here is reset to this master.
func runRecoverSlaves(c *call) (Value, *apiError) {
	if err := c.onMaster(); err != nil {
		return Value{}, err
	}
	p, m := c.p, c.h
	var refs []string
	for _, x := range p.hosts {
		if x == m || !reachable(x) || x.armed {
			continue
		}
		if x.conf == m.address && x.role == RoleSlave {
			continue
		}
		refs = append(refs, x.ref)
		p.restartAfterFuse(x, func() {
			x.conf = m.address
			p.startXAPI(x)
		})
	}
	return Strings(refs), nil
}
