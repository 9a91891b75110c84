package xapisim

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"xsha/sim/scenario"
)

// rpc is a minimal XML-RPC client for the package's own tests.
type rpc struct {
	t    *testing.T
	urls map[string]string
	p    *Pool
}

func newRPC(t *testing.T, sc *scenario.Scenario, pool string) *rpc {
	t.Helper()
	p, err := NewPool(Options{Scenario: sc, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	r := &rpc{t: t, urls: map[string]string{}, p: p}
	for _, h := range p.hosts {
		srv := httptest.NewServer(handler{p: p, h: h})
		t.Cleanup(srv.Close)
		r.urls[h.name] = srv.URL + "/"
	}
	return r
}

// decodeResponse reads a methodResponse with the request decoder.
func decodeResponse(body []byte) (Value, error) {
	s := string(body)
	s = strings.Replace(s, "<methodResponse>", "<methodCall><methodName>r</methodName>", 1)
	s = strings.Replace(s, "</methodResponse>", "</methodCall>", 1)
	req, err := DecodeRequest(strings.NewReader(s))
	if err != nil {
		return Value{}, err
	}
	if len(req.Params) != 1 {
		return Value{}, fmt.Errorf("%d params", len(req.Params))
	}
	return req.Params[0], nil
}

// do calls method on host and returns Value or the ErrorDescription.
func (r *rpc) do(host, method string, params ...Value) (Value, []string) {
	r.t.Helper()
	body := Encoder{}.EncodeRequest(&Request{Method: method, Params: params})
	resp, err := http.Post(r.urls[host], "text/xml", bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	v, err := decodeResponse(b)
	if err != nil {
		r.t.Fatalf("%s: %v: %s", method, err, b)
	}
	status, _ := v.Get("Status")
	if status.Str == "Success" {
		val, _ := v.Get("Value")
		return val, nil
	}
	ed, _ := v.Get("ErrorDescription")
	var desc []string
	for _, e := range ed.Elems {
		desc = append(desc, e.Str)
	}
	return Value{}, desc
}

func (r *rpc) must(host, method string, params ...Value) Value {
	r.t.Helper()
	v, e := r.do(host, method, params...)
	if e != nil {
		r.t.Fatalf("%s: %v", method, e)
	}
	return v
}

func (r *rpc) login(host string) Value {
	return r.must(host, "session.login_with_password", String("root"), String("xenroot"))
}

type event struct {
	class, op, ref string
	snapshot       Value
}

func (r *rpc) eventFrom(host string, s Value, classes []string, tok string, timeout float64) ([]event, string, []string) {
	r.t.Helper()
	v, e := r.do(host, "event.from", s, Strings(classes), String(tok), Double(timeout))
	if e != nil {
		return nil, "", e
	}
	evs, _ := v.Get("events")
	var out []event
	for _, ev := range evs.Elems {
		c, _ := ev.Get("class")
		o, _ := ev.Get("operation")
		ref, _ := ev.Get("ref")
		snap, _ := ev.Get("snapshot")
		out = append(out, event{c.Str, o.Str, ref.Str, snap})
	}
	t, _ := v.Get("token")
	return out, t.Str, nil
}

func count(evs []event, class, op string) int {
	n := 0
	for _, e := range evs {
		if e.class == class && e.op == op {
			n++
		}
	}
	return n
}

// TestEventFromEmptyTokenAddsEverything: the empty token reports every
// object as created. XenServer 6.2 reports each also as modified
// (ocaml/xapi/xapi_event.ml, tag XS62: creates and mods are collected
// independently); 7.x sends the add alone (CA-122248, branch 1.14-lcm:
// "Only have a mod event if we don't have a created event").
func TestEventFromEmptyTokenAddsEverything(t *testing.T) {
	for _, version := range []string{scenario.Version62, scenario.Version71} {
		t.Run(version, func(t *testing.T) {
			sc := fastScenario(0.001)
			sc.Pools[0].ProductVersion = version
			r := newRPC(t, sc, "cluster-a")
			s := r.login("xs-a1")
			evs, tok, e := r.eventFrom("xs-a1", s, []string{"host", "vm", "host_metrics"}, "", 1)
			if e != nil {
				t.Fatal(e)
			}
			mods := 0
			if version == scenario.Version62 {
				mods = 21
			}
			if count(evs, "host", "add") != 4 || count(evs, "vm", "add") != 13 || count(evs, "host_metrics", "add") != 4 || len(evs) != 21+mods {
				t.Errorf("got %d events (%d host, %d vm, %d host_metrics adds), want %d", len(evs), count(evs, "host", "add"), count(evs, "vm", "add"), count(evs, "host_metrics", "add"), 21+mods)
			}
			if got := count(evs, "host", "mod") + count(evs, "vm", "mod") + count(evs, "host_metrics", "mod"); got != mods {
				t.Errorf("%d mods, want %d", got, mods)
			}
			// Adds come first, as xapi builds the list.
			if mods > 0 && (evs[0].op != "add" || evs[len(evs)-1].op != "mod") {
				t.Errorf("order: first %s, last %s", evs[0].op, evs[len(evs)-1].op)
			}
			for _, ev := range evs {
				if uuid, ok := ev.snapshot.Get("uuid"); !ok || uuid.Str == "" {
					t.Errorf("%s %s without snapshot", ev.class, ev.ref)
				}
			}
			if _, ok := parseToken(tok); !ok || len(tok) != 41 {
				t.Errorf("token %q", tok)
			}
			// "*" and one-object subscriptions.
			all, _, _ := r.eventFrom("xs-a1", s, []string{"*"}, "", 1)
			if len(all) <= len(evs) {
				t.Errorf("* gave %d events", len(all))
			}
			refs := map[string]string{}
			for _, ev := range evs {
				refs[ev.class] = ev.ref
			}
			one, _, _ := r.eventFrom("xs-a1", s, []string{"vm/" + refs["vm"], "host/" + refs["host"]}, "", 1)
			if len(one) != 2+2*mods/21 || one[0].ref == one[1].ref {
				t.Errorf("object subscriptions gave %d events", len(one))
			}
		})
	}
}

// TestEventFromValidRefCounts: valid_ref_counts has every table of the
// version as an <i4>, the session table included.
func TestEventFromValidRefCounts(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    map[string]int64
		absent  []string
	}{
		{scenario.Version62, map[string]int64{"vm": 13, "host": 4, "session": 2, "pool_patch": 2, "network": 0}, []string{"pool_update", "vusb"}},
		{scenario.Version71, map[string]int64{"vm": 13, "host": 4, "session": 2, "pool_update": 2, "vusb": 0}, nil},
	} {
		t.Run(tc.version, func(t *testing.T) {
			sc := fastScenario(0.001)
			sc.Pools[0].ProductVersion = tc.version
			r := newRPC(t, sc, "cluster-a")
			r.login("xs-a1")
			s := r.login("xs-a1")
			v := r.must("xs-a1", "event.from", s, Strings([]string{"pool"}), String(""), Double(0))
			counts, _ := v.Get("valid_ref_counts")
			for table, want := range tc.want {
				got, ok := counts.Get(table)
				if !ok || got.Kind != KindInt || got.Tag != "i4" || got.Int != want {
					t.Errorf("valid_ref_counts.%s = %+v (present %v), want <i4>%d</i4>", table, got, ok, want)
				}
			}
			for _, table := range tc.absent {
				if _, ok := counts.Get(table); ok {
					t.Errorf("valid_ref_counts has %s", table)
				}
			}
		})
	}
}

func TestEventFromModCoalescingAndBlocking(t *testing.T) {
	r := newRPC(t, fastScenario(0.001), "cluster-a")
	s := r.login("xs-a1")
	_, tok, _ := r.eventFrom("xs-a1", s, []string{"vm"}, "", 1)

	// Nothing changed: it waits for the timeout and returns no events.
	start := time.Now()
	evs, tok2, e := r.eventFrom("xs-a1", s, []string{"vm"}, tok, 0.3)
	if e != nil || len(evs) != 0 {
		t.Fatalf("idle event.from: %v %v", evs, e)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("returned after %v, want the 0.3 s timeout", el)
	}
	if tok2 < tok {
		t.Errorf("token went back: %s < %s", tok2, tok)
	}

	// Two changes to one VM coalesce into one mod with the latest snapshot.
	vms := r.must("xs-a1", "VM.get_by_name_label", s, String("i-2-101-VM"))
	vm := vms.Elems[0]
	r.must("xs-a1", "VM.set_ha_restart_priority", s, vm, String("restart"))
	r.must("xs-a1", "VM.set_ha_restart_priority", s, vm, String("best-effort"))
	evs, tok3, _ := r.eventFrom("xs-a1", s, []string{"vm"}, tok2, 5)
	if len(evs) != 1 || evs[0].op != "mod" || evs[0].ref != vm.Str {
		t.Fatalf("got %+v, want one mod of %s", evs, vm.Str)
	}
	if p, _ := evs[0].snapshot.Get("ha_restart_priority"); p.Str != "best-effort" {
		t.Errorf("snapshot priority %q", p.Str)
	}

	// A waiting call returns as soon as something changes.
	done := make(chan []event, 1)
	go func() {
		evs, _, _ := r.eventFrom("xs-a1", s, []string{"vm"}, tok3, 30)
		done <- evs
	}()
	time.Sleep(50 * time.Millisecond)
	r.must("xs-a1", "VM.set_ha_restart_priority", s, vm, String(""))
	select {
	case evs := <-done:
		if len(evs) != 1 || evs[0].op != "mod" {
			t.Errorf("woken with %+v", evs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event.from did not return after a change")
	}
	// Other classes do not wake a vm subscription.
	_, tok4, _ := r.eventFrom("xs-a1", s, []string{"vm"}, "", 0)
	hosts := r.must("xs-a1", "host.get_all", s)
	r.must("xs-a1", "host.disable", s, hosts.Elems[1])
	if evs, _, _ := r.eventFrom("xs-a1", s, []string{"vm"}, tok4, 0.1); len(evs) != 0 {
		t.Errorf("vm subscription got %+v", evs)
	}
}

func TestEventFromDelAndInject(t *testing.T) {
	r := newRPC(t, fastScenario(0.001), "cluster-a")
	s := r.login("xs-a1")
	_, tok, _ := r.eventFrom("xs-a1", s, []string{"vdi"}, "", 0)
	var ref string
	r.p.mu.Lock()
	ref = r.p.db.all("VDI")[0].ref
	r.p.db.remove(ref)
	r.p.mu.Unlock()
	evs, _, _ := r.eventFrom("xs-a1", s, []string{"vdi"}, tok, 5)
	if len(evs) != 1 || evs[0].op != "del" || evs[0].ref != ref {
		t.Fatalf("got %+v, want a del of %s", evs, ref)
	}
	if _, ok := evs[0].snapshot.Get("uuid"); ok || evs[0].snapshot.Kind != KindString {
		t.Errorf("del carries a snapshot")
	}

	// event.inject returns a token from just before the touch, so
	// event.from reports the object as modified.
	pool := r.must("xs-a1", "pool.get_all", s).Elems[0]
	injected := r.must("xs-a1", "event.inject", s, String("pool"), pool)
	evs, _, _ = r.eventFrom("xs-a1", s, []string{"pool"}, injected.Str, 5)
	if len(evs) != 1 || evs[0].op != "mod" || evs[0].ref != pool.Str {
		t.Errorf("after inject: %+v", evs)
	}
	if _, e := r.do("xs-a1", "event.inject", s, String("pool"), String("OpaqueRef:nope")); len(e) == 0 || e[0] != "HANDLE_INVALID" {
		t.Errorf("inject of a bad ref: %v", e)
	}
}

func TestEventFromErrors(t *testing.T) {
	r := newRPC(t, fastScenario(0.001), "cluster-a")
	s := r.login("xs-a1")
	if _, _, e := r.eventFrom("xs-a1", s, []string{"vm"}, "garbage", 0); strings.Join(e, " ") != "EVENT_FROM_TOKEN_PARSE_FAILURE garbage" {
		t.Errorf("bad token: %v", e)
	}
	// xapi lower-cases class names and takes any other string for a
	// class that matches nothing: no EVENT_SUBSCRIPTION_PARSE_FAILURE.
	for _, tc := range []struct {
		classes []string
		want    int
	}{
		// 6.2 sends an add and a mod for each.
		{[]string{"VM"}, 2 * 13},
		{[]string{"Host_Metrics", "SR"}, 2 * (4 + 7)},
		{[]string{"VM!"}, 0},
		{[]string{"vm/OpaqueRef:nope"}, 0},
	} {
		evs, _, e := r.eventFrom("xs-a1", s, tc.classes, "", 0)
		if e != nil || len(evs) != tc.want {
			t.Errorf("classes %v: %d events, error %v; want %d events", tc.classes, len(evs), e, tc.want)
		}
	}
	// The session goes away while waiting.
	done := make(chan []string, 1)
	go func() {
		_, _, e := r.eventFrom("xs-a1", s, []string{"vm"}, "00000000099999999999,00000000000000000000", 30)
		done <- e
	}()
	time.Sleep(50 * time.Millisecond)
	r.must("xs-a1", "session.logout", s)
	select {
	case e := <-done:
		if len(e) != 2 || e[0] != "SESSION_INVALID" || e[1] != s.Str {
			t.Errorf("got %v, want SESSION_INVALID %s", e, s.Str)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event.from kept waiting after logout")
	}
}

// TestEventTokensAfterMasterChange: the generation count is persisted with
// the database and restored by the new master (ocaml/database/db_xml.ml,
// tag XS62: generation_count, __ctime, __mtime), so a token from the old
// master stays valid and sees what changed since; the session table is
// not carried over.
func TestEventTokensAfterMasterChange(t *testing.T) {
	sc := fastScenario(0.002)
	sc.Pools[0].HAEnabled = true
	r := newRPC(t, sc, "cluster-a")
	s := r.login("xs-a1")
	// Churn the database so the old token is far from generation 1.
	vm := r.must("xs-a1", "VM.get_by_name_label", s, String("i-2-101-VM")).Elems[0]
	for i := range 50 {
		r.must("xs-a1", "VM.set_ha_restart_priority", s, vm, String([]string{"restart", ""}[i%2]))
	}
	_, oldTok, _ := r.eventFrom("xs-a1", s, []string{"host"}, "", 0)

	if err := r.p.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	var master string
	deadline := time.Now().Add(20 * time.Second)
	for master == "" {
		st := r.p.State()
		for _, h := range st.Hosts {
			if h.Name == st.Master && h.Role == RoleMaster && h.Name != "xs-a1" {
				master = h.Name
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no election: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, e := r.do(master, "pool.get_all", s); len(e) == 0 || e[0] != "SESSION_INVALID" {
		t.Errorf("old session on the new master: %v", e)
	}
	s2 := r.login(master)
	// The new master disabled every host: the old token sees it.
	evs, newTok, e := r.eventFrom(master, s2, []string{"host"}, oldTok, 0.2)
	if e != nil || count(evs, "host", "mod") != 4 || count(evs, "host", "add") != 0 {
		t.Errorf("old token on the new master: %+v %v", evs, e)
	}
	if newTok <= oldTok {
		t.Errorf("token went back over the failover: %s after %s", newTok, oldTok)
	}
	_, fresh, _ := r.eventFrom(master, s2, []string{"host"}, "", 0)
	if fresh < oldTok {
		t.Errorf("fresh token %s is older than the old master's %s", fresh, oldTok)
	}
}

// TestEventFromTokenNeverGoesBack: the token returned is the larger of the
// token passed in and the newest change in the subscribed tables
// (ocaml/xapi/xapi_event.ml, tags XS62 and 1.14-lcm: last = max last
// (max mtime dtime), starting from the token), not the database's
// generation: changes to other tables do not move it.
func TestEventFromTokenNeverGoesBack(t *testing.T) {
	for _, version := range []string{scenario.Version62, scenario.Version71} {
		t.Run(version, func(t *testing.T) {
			sc := fastScenario(0.001)
			sc.Pools[0].ProductVersion = version
			r := newRPC(t, sc, "cluster-a")
			s := r.login("xs-a1")
			_, tok, _ := r.eventFrom("xs-a1", s, []string{"pool"}, "", 0)
			// A token from the future comes back unchanged.
			ahead := token{gen: 1 << 40}.String()
			if evs, got, e := r.eventFrom("xs-a1", s, []string{"pool"}, ahead, 0); e != nil || len(evs) != 0 || got != ahead {
				t.Errorf("token ahead: got %q %v %v, want %q", got, evs, e, ahead)
			}
			// Changes to hosts do not move a pool subscription's token.
			hosts := r.must("xs-a1", "host.get_all", s)
			r.must("xs-a1", "host.disable", s, hosts.Elems[1])
			if _, got, _ := r.eventFrom("xs-a1", s, []string{"pool"}, tok, 0); got != tok {
				t.Errorf("pool token moved from %s to %s on a host change", tok, got)
			}
			if _, got, _ := r.eventFrom("xs-a1", s, []string{"host"}, tok, 0); got <= tok {
				t.Errorf("host token did not move: %s", got)
			}
		})
	}
}

func fastScenario(scale float64) *scenario.Scenario {
	sc := scenario.Default()
	sc.TimeScale = scale
	return sc
}
