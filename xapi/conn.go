package xapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/rpc"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	xenapi "github.com/terra-farm/go-xen-api-client"

	"xsha/config"
)

// transportError is a call that got no answer from xapi: refused, timed out,
// cut, or an answer that is not an XAPI envelope.
type transportError struct {
	addr, method string
	err          error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("%s on %s: %v", e.method, e.addr, e.err)
}

func (e *transportError) Unwrap() error { return e.err }

// IsUnreachable reports whether err means the host did not answer (as
// opposed to answering with an XAPI failure).
func IsUnreachable(err error) bool {
	var te *transportError
	return errors.As(err, &te)
}

// errBroken is returned by a conn that already failed at transport level.
var errBroken = errors.New("connection needs to be recreated after an earlier failure")

// dialer builds connections to one pool's hosts.
type dialer struct {
	pool    config.Pool
	metrics *Metrics
	tls     *tls.Config
	tlsErr  error
	// calls is for short calls; events for the event.from long-poll; probes
	// for probe logins, without keep-alive so nothing stays open; long for
	// HA operations that take minutes (enable_ha), bounded by the caller.
	calls, events, probes, long *http.Transport

	mu    sync.Mutex
	conns map[connKey]*conn
}

func newDialer(pool config.Pool, metrics *Metrics) *dialer {
	d := &dialer{pool: pool, metrics: metrics, conns: map[connKey]*conn{}}
	d.tls, d.tlsErr = pool.TLS.ClientConfig()
	call := time.Duration(pool.CallTimeout)
	d.calls = d.transport(call, true)
	d.events = d.transport(call+time.Duration(pool.EventTimeout), true)
	d.probes = d.transport(call, false)
	d.long = d.transport(longCallTimeout, true)
	return d
}

// transport returns an HTTP transport that gives up on a response whose
// headers take longer than headerTimeout, or whose body stalls for as long.
func (d *dialer) transport(headerTimeout time.Duration, keepAlive bool) *http.Transport {
	call := time.Duration(d.pool.CallTimeout)
	dial := (&net.Dialer{Timeout: call, KeepAlive: 30 * time.Second}).DialContext
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stallConn{Conn: c, timeout: headerTimeout}, nil
		},
		TLSClientConfig:       d.tls,
		TLSHandshakeTimeout:   call,
		ResponseHeaderTimeout: headerTimeout,
		DisableKeepAlives:     !keepAlive,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
}

// stallConn fails a read that gets no byte for timeout. net/http bounds only
// the wait for response headers; without this, a host that sends headers and
// then stalls would hold the connection and the amfranz client's reader
// goroutine forever, since that client cannot be cancelled.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Read(b []byte) (int, error) {
	if err := c.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// longCallTimeout bounds HA operations that xapi runs to completion before
// answering: pool.enable_ha waits for every host to join the liveset, which
// takes minutes (T+60 s per join), far beyond a normal call timeout.
const longCallTimeout = 15 * time.Minute

func (d *dialer) close() {
	d.long.CloseIdleConnections()
	d.calls.CloseIdleConnections()
	d.events.CloseIdleConnections()
	d.probes.CloseIdleConnections()
}

// url is the XML-RPC endpoint of a host: its bare address (as configured or
// as HOST_IS_SLAVE names it) with the pool's scheme and port.
func (d *dialer) url(addr string) string {
	return d.pool.Scheme + "://" + net.JoinHostPort(addr, strconv.Itoa(d.pool.Port)) + "/"
}

// dial returns the connection to addr over transport t, creating it if
// there is none or the last one is broken.
func (d *dialer) dial(addr string, t *http.Transport) (*conn, error) {
	if d.tlsErr != nil {
		return nil, fmt.Errorf("tls: %w", d.tlsErr)
	}
	k := connKey{addr: addr, t: t}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.conns[k]; ok && !c.broken.Load() {
		return c, nil
	}
	api, err := xenapi.NewClient(d.url(addr), t)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", addr, err)
	}
	c := &conn{addr: addr, api: api, pool: d.pool.Name, metrics: d.metrics, timeout: time.Duration(d.pool.CallTimeout),
		busy: make(chan struct{}, 1)}
	d.conns[k] = c
	return c, nil
}

type connKey struct {
	addr string
	t    *http.Transport
}

// conn is one terra-farm client on one host. The amfranz codec under it is
// not safe for two calls in flight (its response map is shared by the
// writer and net/rpc's reader goroutine), so calls on a conn take turns; a
// failure while reading a response shuts its
// rpc client down for good (every later call fails with rpc.ErrShutdown).
// A conn is therefore reused across calls, including after errors that leave
// the client intact (connection refused, response header timeout: net/rpc
// returns them without shutting down, and a discarded client would leak its
// reader goroutine), and replaced once it is shut down or a call on it was
// abandoned while still running. Neither library can close a client: an
// intact one stays blocked in its reader goroutine for good, so conns are
// kept (one per address and transport) for as long as their dialer.
type conn struct {
	addr    string
	api     *xenapi.Client
	pool    string
	metrics *Metrics
	timeout time.Duration
	broken  atomic.Bool
	// busy is held by the goroutine running a call, until the call ends,
	// even when its caller gave up on it.
	busy chan struct{}
}

// call runs fn, counting it as method. XAPI failures come back as *Error,
// anything else as a transport error. timeout, or the call timeout when
// zero, is what the transport's response-header timeout is set to; the call
// is abandoned only if the transport has not given up a little later.
func (c *conn) call(ctx context.Context, method string, timeout time.Duration, fn func(api *xenapi.Client) error) error {
	if c.broken.Load() {
		return &transportError{addr: c.addr, method: method, err: errBroken}
	}
	if timeout <= 0 {
		timeout = c.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+c.timeout+time.Second)
	defer cancel()
	select {
	case c.busy <- struct{}{}:
	case <-ctx.Done():
		// Another call still runs on this client; this one never started.
		return &transportError{addr: c.addr, method: method, err: ctx.Err()}
	}
	c.metrics.call(c.pool, method)
	done := make(chan error, 1)
	go func() {
		defer func() { <-c.busy }()
		done <- fn(c.api)
	}()
	var err error
	select {
	case err = <-done:
		if errors.Is(err, rpc.ErrShutdown) {
			c.broken.Store(true)
		}
	case <-ctx.Done():
		// The amfranz client cannot be cancelled: leave the call to the
		// transport timeouts and never use this client again.
		c.broken.Store(true)
		err = ctx.Err()
	}
	if err == nil {
		return nil
	}
	err = fromAPI(err)
	if isAPIError(err) {
		return fmt.Errorf("%s on %s: %w", method, c.addr, err)
	}
	return &transportError{addr: c.addr, method: method, err: err}
}
