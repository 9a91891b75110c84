package xapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	xmlrpc "github.com/amfranz/go-xmlrpc-client"
	xenapi "github.com/terra-farm/go-xen-api-client"
)

// event is one entry of event.from's result.
type event struct {
	class, operation, ref string
	snapshot              any
}

// eventBatch is event.from's result.
type eventBatch struct {
	events []event
	token  string
}

// inject returns a token just before a touch of the pool object, taken
// before the full read so that no change between the two is lost.
func inject(ctx context.Context, s *session, poolRef string) (string, error) {
	var token string
	err := s.c.call(ctx, "event.inject", 0, func(api *xenapi.Client) error {
		var err error
		token, err = api.Event.Inject(s.ref, "pool", poolRef)
		return err
	})
	return token, err
}

// eventFrom long-polls event.from on c (a connection of its own, so the
// long-poll never queues other calls behind it). A session must never have
// two event.from calls in flight: XenServer 6.2 keeps one event
// subscription per session, and the first call to return ends the other
// with SESSION_INVALID (xapi_event.ml before xapi 1.9.42). xapi does not
// notice a caller that gave up, so after a call is abandoned (timeout,
// cancellation) its session is not polled again: the watcher logs out and
// opens a new one. Likewise a token is only used on the session that got
// it; a new session starts with event.inject and a full read, since xapi
// keeps its generation count over a restart or failover but not the
// deletions before it. The call goes through
// APICall because terra-farm's Event.From expects an array of event records
// while xapi returns a struct {events, valid_ref_counts, token}. The timeout
// is sent as a Go float, i.e. an XML-RPC <double>, which XenServer 6.2
// requires.
func eventFrom(ctx context.Context, c *conn, s xenapi.SessionRef, classes []string, token string, timeout time.Duration) (eventBatch, error) {
	var res xenapi.APIResult
	err := c.call(ctx, "event.from", timeout+c.timeout, func(api *xenapi.Client) error {
		var err error
		res, err = api.APICall("event.from", string(s), classes, token, timeout.Seconds())
		return err
	})
	if err != nil {
		return eventBatch{}, err
	}
	return decodeEventBatch(res.Value)
}

func decodeEventBatch(v any) (eventBatch, error) {
	m, ok := v.(xmlrpc.Struct)
	if !ok {
		return eventBatch{}, fmt.Errorf("event.from: result is %T, not a struct", v)
	}
	b := eventBatch{token: fStr(m, "token")}
	if b.token == "" {
		return eventBatch{}, errors.New("event.from: result has no token")
	}
	raw, ok := m["events"].([]any)
	if !ok && m["events"] != nil {
		return eventBatch{}, fmt.Errorf("event.from: events is %T, not an array", m["events"])
	}
	b.events = make([]event, 0, len(raw))
	for i, r := range raw {
		em, ok := r.(xmlrpc.Struct)
		if !ok {
			return eventBatch{}, fmt.Errorf("event.from: event %d is %T, not a struct", i, r)
		}
		e := event{class: fStr(em, "class"), operation: fStr(em, "operation"), ref: fStr(em, "ref"), snapshot: em["snapshot"]}
		if e.class == "" || e.ref == "" {
			return eventBatch{}, fmt.Errorf("event.from: event %d lacks class or ref", i)
		}
		b.events = append(b.events, e)
	}
	return b, nil
}
