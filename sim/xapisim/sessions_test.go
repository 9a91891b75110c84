package xapisim

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"xsha/sim/scenario"
)

// TestEventFromOneSubscriptionPerSession62: XenServer 6.2 keeps one event
// subscription per session (ocaml/xapi/xapi_event.ml, tag XS62:
// get_subscription, and on_session_deleted at the end of from), so a
// second event.from on a session ends the one in flight with
// SESSION_INVALID when it returns. 7.x gives each call its own (with_call,
// branch 1.14-lcm).
func TestEventFromOneSubscriptionPerSession62(t *testing.T) {
	for _, tc := range []struct {
		version  string
		wantFail bool
	}{
		{scenario.Version62, true},
		{scenario.Version71, false},
	} {
		t.Run(tc.version, func(t *testing.T) {
			sc := fastScenario(0.001)
			sc.Pools[0].ProductVersion = tc.version
			r := newRPC(t, sc, "cluster-a")
			s := r.login("xs-a1")
			_, tok, _ := r.eventFrom("xs-a1", s, []string{"vm"}, "", 0)
			first := make(chan []string, 1)
			go func() {
				_, _, e := r.eventFrom("xs-a1", s, []string{"vm"}, tok, 1)
				first <- e
			}()
			waitInFlight(t, r.p, s.Str)
			// The second call has events at once and returns.
			if evs, _, e := r.eventFrom("xs-a1", s, []string{"host"}, "", 0); e != nil || len(evs) == 0 {
				t.Fatalf("second event.from: %d events, %v", len(evs), e)
			}
			e := <-first
			gotFail := len(e) == 2 && e[0] == "SESSION_INVALID" && e[1] == s.Str
			if gotFail != tc.wantFail || (!gotFail && e != nil) {
				t.Errorf("first event.from ended with %v; want SESSION_INVALID: %v", e, tc.wantFail)
			}
			if n := r.p.EventConflicts(); (n == 1) != tc.wantFail {
				t.Errorf("EventConflicts = %d", n)
			}
			// The session itself is still valid.
			r.must("xs-a1", "pool.get_all", s)
		})
	}
}

// TestEventFromAbandoned62: xapi does not notice that a client gave up on
// an event.from; on 6.2 the abandoned call keeps the session's
// subscription, so the next call on the session ends it (or, returning
// first, is ended by it).
func TestEventFromAbandoned62(t *testing.T) {
	r := newRPC(t, fastScenario(0.001), "cluster-a")
	s := r.login("xs-a1")
	_, tok, _ := r.eventFrom("xs-a1", s, []string{"vm"}, "", 0)
	ctx, cancel := context.WithCancel(context.Background())
	body := Encoder{}.EncodeRequest(&Request{Method: "event.from", Params: []Value{s, Strings([]string{"vm"}), String(tok), Double(30)}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.urls["xs-a1"], bytes.NewReader(body))
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitInFlight(t, r.p, s.Str)
	cancel()
	// The call goes on after the client left: it still holds the
	// subscription, and a second call that returns ends it.
	if _, _, e := r.eventFrom("xs-a1", s, []string{"host"}, "", 0); e != nil {
		t.Fatalf("second event.from: %v", e)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.p.EventConflicts() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the abandoned event.from did not end with SESSION_INVALID")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitInFlight waits until an event.from is in flight on session ref.
func waitInFlight(t *testing.T, p *Pool, ref string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		s := p.sessions[ref]
		n := 0
		if s != nil && s.events != nil {
			n = s.events.calls
		}
		inFlight := p.calls["event.from"]
		p.mu.Unlock()
		if n > 0 || (!p.is62 && inFlight > 1) {
			// 7.x keeps no per-session state: the call count must do.
			time.Sleep(20 * time.Millisecond)
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no event.from in flight")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSessionOnSlave: a slave checks a session reference in the master's
// database (ocaml/idl/ocaml_backend/session_check.ml, tag XS62): an unknown
// reference is SESSION_INVALID, a valid one HOST_IS_SLAVE with the
// master's address, and with the master down the call waits for it.
func TestSessionOnSlave(t *testing.T) {
	r := newRPC(t, fastScenario(0.001), "cluster-a")
	s := r.login("xs-a1")
	if _, e := r.do("xs-a2", "pool.get_all", s); strings.Join(e, " ") != "HOST_IS_SLAVE 127.0.1.1" {
		t.Errorf("valid session on a slave: %v", e)
	}
	if _, e := r.do("xs-a2", "pool.get_all", String("OpaqueRef:nope")); strings.Join(e, " ") != "SESSION_INVALID OpaqueRef:nope" {
		t.Errorf("unknown session on a slave: %v", e)
	}
	if err := r.p.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	before := r.p.Stats()[1].Calls["pool.get_all"]
	done := make(chan []string, 1)
	go func() {
		_, e := r.do("xs-a2", "pool.get_all", String("OpaqueRef:nope"))
		done <- e
	}()
	for r.p.Stats()[1].Calls["pool.get_all"] == before {
		time.Sleep(time.Millisecond)
	}
	select {
	case e := <-done:
		t.Fatalf("answered %v with the master down", e)
	default:
	}
	if err := r.p.PowerOn("xs-a1"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-done:
		if strings.Join(e, " ") != "SESSION_INVALID OpaqueRef:nope" {
			t.Errorf("once the master is back: %v", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer after the master came back")
	}
}

// TestSessionGC: xapi destroys sessions in its db_gc thread, every 30 s,
// not at login (ocaml/xapi/db_gc.ml, tag XS62; db_gc_util.ml
// timeout_sessions, branch 1.14-lcm). 6.2 keeps the 400 most recently
// active sessions; 7.x keeps 400 root logins without an originator, 500
// per originator and 500 per other user name; both destroy sessions idle
// for 24 h.
func TestSessionGC(t *testing.T) {
	for _, version := range []string{scenario.Version62, scenario.Version71} {
		t.Run(version, func(t *testing.T) {
			sc := fastScenario(1) // no pass runs by itself during the test
			sc.Pools[0].ProductVersion = version
			r := newRPC(t, sc, "cluster-a")
			login := func(originator string) Value {
				return r.must("xs-a1", "session.login_with_password", String("root"), String("xenroot"), String("1.0"), String(originator))
			}
			cloudstack := login("cloudstack")
			leaked := login("")
			for range maxSessions {
				login("")
			}
			r.must("xs-a1", "pool.get_all", cloudstack)
			// Over the limit until the collector runs.
			if n := r.p.Stats()[0].Sessions; n != maxSessions+2 {
				t.Fatalf("%d sessions before the collector ran, want %d", n, maxSessions+2)
			}
			r.p.mu.Lock()
			r.p.sessionGCPass()
			r.p.mu.Unlock()
			if _, e := r.do("xs-a1", "pool.get_all", leaked); strings.Join(e, " ") != "SESSION_INVALID "+leaked.Str {
				t.Errorf("least recently active session: %v, want SESSION_INVALID", e)
			}
			want := maxSessions
			if version == scenario.Version71 {
				// CloudStack's originator is a group of its own, so the
				// oldest of the 400 anonymous ones went.
				want = maxSessions + 1
			}
			if n := r.p.Stats()[0].Sessions; n != want {
				t.Errorf("%d sessions after the collector ran, want %d", n, want)
			}
			r.must("xs-a1", "pool.get_all", cloudstack)
		})
	}
}

// TestSessionGCGroups7 checks 7.x's groups and the idle limit.
func TestSessionGCGroups7(t *testing.T) {
	sc := fastScenario(1)
	sc.Pools[0].ProductVersion = scenario.Version71
	r := newRPC(t, sc, "cluster-a")
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	add := func(user, originator string, active time.Time) *session {
		p.sessionSeq++
		s := &session{ref: "OpaqueRef:" + newUUID(), user: user, originator: originator, lastActive: active, seq: p.sessionSeq}
		p.sessions[s.ref] = s
		return s
	}
	// Another user is limited by name, whatever the originators.
	oldest := add("alice", "a", now.Add(-time.Hour))
	for i := range maxSessionsPerKey {
		add("alice", strconv.Itoa(i), now)
	}
	// An originator of root logins has 500 of its own.
	for range maxSessionsPerKey {
		add("root", "cloudstack", now)
	}
	idle := add("root", "xsha", now.Add(-25*time.Hour))
	p.sessionGCPass()
	if p.sessions[oldest.ref] != nil || p.sessions[idle.ref] != nil {
		t.Errorf("oldest of alice's or the idle session survived")
	}
	counts := map[string]int{}
	for _, s := range p.sessions {
		counts[sessionGroup(false, s)]++
	}
	if counts["username:alice"] != maxSessionsPerKey || counts["originator:cloudstack"] != maxSessionsPerKey || len(p.sessions) != 2*maxSessionsPerKey {
		t.Errorf("after a pass: %v", counts)
	}
}

// TestSessionGCRuns: the collector runs by itself.
func TestSessionGCRuns(t *testing.T) {
	r := newRPC(t, fastScenario(0.001), "cluster-a")
	for range maxSessions + 5 {
		r.login("xs-a1")
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.p.Stats()[0].Sessions != maxSessions {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions, want the collector to cut them to %d", r.p.Stats()[0].Sessions, maxSessions)
		}
		time.Sleep(time.Millisecond)
	}
}
