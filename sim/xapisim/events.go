package xapisim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// token is an event.from token: the database generation and the message
// generation, printed "%020d,%020d".
type token struct{ gen, msg uint64 }

func (t token) String() string { return fmt.Sprintf("%020d,%020d", t.gen, t.msg) }

func parseToken(s string) (token, bool) {
	if s == "" {
		return token{}, true
	}
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return token{}, false
	}
	g, err1 := strconv.ParseInt(a, 10, 64)
	m, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || g < 0 || m < 0 {
		return token{}, false
	}
	return token{uint64(g), uint64(m)}, true
}

// subscription is one entry of event.from's classes: "*", a class, or
// "class/ref".
type subscription struct {
	all   bool
	class string // lower case
	ref   string
}

// parseSubscription is xapi's Subscription.of_string: everything but "*"
// is a class name, in any case, optionally followed by "/" and a ref. A
// class that does not exist is no error; it matches nothing.
func parseSubscription(s string) subscription {
	if s == "*" {
		return subscription{all: true}
	}
	class, ref, _ := strings.Cut(s, "/")
	return subscription{class: strings.ToLower(class), ref: ref}
}

func (s subscription) matches(class, ref string) bool {
	if s.all {
		return true
	}
	return s.class == strings.ToLower(class) && (s.ref == "" || s.ref == ref)
}

type pendingEvent struct {
	gen   uint64
	class string
	op    string
	ref   string
	obj   *object
}

// eventSub is a 6.2 session's event subscription. XenServer 6.2 keeps one
// per session (ocaml/xapi/xapi_event.ml, tag XS62: get_subscription), which
// every event.from on the session shares: a later call replaces the
// deadline, and the first call to return ends the subscription
// (on_session_deleted), so every other call then in flight on the session
// fails with SESSION_INVALID. xapi 1.9.42 gave each call a subscription of
// its own (with_call in the 1.14-lcm xapi_event.ml).
type eventSub struct {
	deadline time.Time
	calls    int
	ended    bool
}

// EventConflicts counts the 6.2 event.from calls that ended with
// SESSION_INVALID because another event.from on the same session returned
// first: a client bug that real 6.2 punishes.
func (p *Pool) EventConflicts() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.eventConflicts
}

// runEventFrom is event.from(classes, token, timeout): add/mod/del events
// for objects changed since token, or, when nothing changed, a wait of up
// to timeout seconds. The result is a struct {events, valid_ref_counts,
// token}, not the event record set the data model declares. It follows
// Xapi_event.from (ocaml/xapi/xapi_event.ml, tags XS62 and 1.14-lcm).
func runEventFrom(c *call) (Value, *apiError) {
	p := c.p
	if err := c.onMaster(); err != nil {
		return Value{}, err
	}
	var subs []subscription
	for _, s := range c.strings(0) {
		subs = append(subs, parseSubscription(s))
	}
	tok, ok := parseToken(c.str(1))
	if !ok {
		return Value{}, fail("EVENT_FROM_TOKEN_PARSE_FAILURE", c.str(1))
	}
	timeout, _ := c.args[2].(float64)
	if timeout < 0 {
		timeout = 0
	}
	deadline := time.Now().Add(time.Duration(timeout * float64(time.Second)))
	sess := c.sess
	master := c.h
	epoch := master.epoch
	var sub *eventSub
	if p.is62 {
		if sess.events == nil {
			sess.events = &eventSub{}
		}
		sub = sess.events
		sub.deadline = deadline
		sub.calls++
		defer func() { sub.calls-- }()
	}
	// xapi does not notice a client that leaves: on 6.2 the call goes on
	// holding the session's subscription until it returns.
	clientGone := c.ctx.Done()
	if p.is62 {
		clientGone = nil
	}
	for {
		if sub != nil {
			if sub.ended {
				p.eventConflicts++
				return Value{}, fail("SESSION_INVALID", sess.ref)
			}
			deadline = sub.deadline
		}
		events, last := p.collectEvents(subs, tok.gen)
		if len(events) > 0 || !time.Now().Before(deadline) {
			if sub != nil {
				// on_session_deleted: the subscription ends with this call.
				sub.ended = true
				if sess.events == sub {
					sess.events = nil
				}
				p.db.wake()
			}
			return p.eventResult(events, last), nil
		}
		ch := p.db.changed
		p.mu.Unlock()
		wait := time.NewTimer(time.Until(deadline))
		select {
		case <-ch:
		case <-wait.C:
		case <-clientGone:
		}
		wait.Stop()
		p.mu.Lock()
		if c.ctx.Err() != nil && clientGone != nil {
			return Value{}, fail("INTERNAL_ERROR", "client gone")
		}
		table := p.sessions
		if sess.local {
			table = master.local
		}
		if p.closed || p.serving() != master || master.epoch != epoch || table[sess.ref] != sess {
			return Value{}, fail("SESSION_INVALID", sess.ref)
		}
	}
}

// collectEvents returns the events for objects of subs changed after
// since, and the token's generation: the newest change in the subscribed
// tables, or since if that is larger, so that a token never goes back.
// XenServer 6.2 reports an object created after since twice, as an add and
// as a mod (XS62 xapi_event.ml: creates and mods are collected
// independently; CA-122248 made 7.x send the add alone). The result lists
// adds, then mods, then dels, as xapi builds it.
func (p *Pool) collectEvents(subs []subscription, since uint64) ([]pendingEvent, uint64) {
	var adds, mods, dels []pendingEvent
	last := since
	wantTable := func(class string) bool {
		for _, s := range subs {
			if s.all || s.class == strings.ToLower(class) {
				return true
			}
		}
		return false
	}
	want := func(class, ref string) bool {
		for _, s := range subs {
			if s.matches(class, ref) {
				return true
			}
		}
		return false
	}
	// 6.2 computes the token over the subscribed tables, 7.x over the
	// subscribed objects (Subscription.object_matches).
	counts := func(class, ref string) bool {
		if p.is62 {
			return wantTable(class)
		}
		return want(class, ref)
	}
	for _, o := range p.db.objects {
		if counts(o.class, o.ref) {
			last = max(last, o.modified)
		}
		if !want(o.class, o.ref) {
			continue
		}
		created := o.created > since
		if created {
			adds = append(adds, pendingEvent{gen: o.created, class: o.class, op: "add", ref: o.ref, obj: o})
		}
		if o.modified > since && (p.is62 || !created) {
			mods = append(mods, pendingEvent{gen: o.modified, class: o.class, op: "mod", ref: o.ref, obj: o})
		}
	}
	for _, t := range p.db.deleted {
		if t.deleted > since && counts(t.class, t.ref) {
			last = max(last, t.deleted)
		}
		if t.deleted > since && t.created <= since && want(t.class, t.ref) {
			dels = append(dels, pendingEvent{gen: t.deleted, class: t.class, op: "del", ref: t.ref})
		}
	}
	for _, evs := range [][]pendingEvent{adds, mods, dels} {
		sort.Slice(evs, func(i, j int) bool {
			if evs[i].gen != evs[j].gen {
				return evs[i].gen < evs[j].gen
			}
			return evs[i].ref < evs[j].ref
		})
	}
	return append(append(adds, mods...), dels...), last
}

func (p *Pool) eventResult(evs []pendingEvent, last uint64) Value {
	ts := "0.0"
	if p.is62 {
		ts = "0."
	}
	list := make([]Value, 0, len(evs))
	for _, e := range evs {
		ms := []Member{
			{"id", Int(int64(e.gen))},
			{"timestamp", String(ts)},
			{"class", String(strings.ToLower(e.class))},
			{"operation", String(e.op)},
			{"ref", String(e.ref)},
		}
		if e.obj != nil {
			ms = append(ms, Member{"snapshot", p.db.record(e.obj)})
		}
		list = append(list, Struct(ms...))
	}
	var counts []Member
	for _, t := range tables {
		if t.removed || (p.is62 && t.only7x) {
			continue
		}
		n := len(p.db.all(t.name))
		if t.name == "session" {
			n = len(p.sessions)
		}
		counts = append(counts, Member{strings.ToLower(t.name), I4(int32(n))})
	}
	return Struct(
		Member{"events", Array(list...)},
		Member{"valid_ref_counts", Struct(counts...)},
		Member{"token", String(token{gen: last, msg: p.msgGen}.String())},
	)
}

// runEventInject is event.inject(class, ref): touch the row so event.from
// reports a mod for it, and return a token from just before.
func runEventInject(c *call) (Value, *apiError) {
	if err := c.onMaster(); err != nil {
		return Value{}, err
	}
	class, ref := c.str(0), c.str(1)
	o, ok := c.p.db.get(ref)
	if !ok || !strings.EqualFold(o.class, class) {
		return Value{}, fail("HANDLE_INVALID", class, ref)
	}
	gen := c.p.db.touch(o)
	return String(token{gen: gen - 1, msg: 0}.String()), nil
}
