package xapisim

import (
	"bytes"
	"context"
	"net/http"
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
