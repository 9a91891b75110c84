package xapisim

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// maxBody bounds request bodies.
const maxBody = 16 << 20

// endpoint is one simulated host's XML-RPC listener. Closed, it refuses
// connections (the host is off or xapi is restarting); isolated, it accepts
// connections but neither reads nor writes them until reconnected.
type endpoint struct {
	addr    string // host:port
	tls     *tls.Config
	handler http.Handler
	log     *slog.Logger

	mu       sync.Mutex
	srv      *http.Server
	conns    map[*gatedConn]struct{}
	isolated bool
	gate     chan struct{} // closed while not isolated
	prebound net.Listener
}

func newEndpoint(addr string, tlsConfig *tls.Config, h http.Handler, prebound net.Listener, log *slog.Logger) *endpoint {
	g := make(chan struct{})
	close(g)
	return &endpoint{addr: addr, tls: tlsConfig, handler: h, conns: map[*gatedConn]struct{}{}, gate: g, prebound: prebound, log: log}
}

// open starts serving. It is a no-op when already serving.
func (e *endpoint) open() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		return nil
	}
	var ln net.Listener
	if e.prebound != nil {
		ln, e.prebound = e.prebound, nil
	} else {
		var err error
		ln, err = net.Listen("tcp", e.addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", e.addr, err)
		}
	}
	var l net.Listener = &gatedListener{Listener: ln, e: e}
	if e.tls != nil {
		l = tls.NewListener(l, e.tls)
	}
	srv := &http.Server{
		Handler:           e.handler,
		ReadHeaderTimeout: 5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	e.srv = srv
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Debug("endpoint stopped", "addr", e.addr, "err", err)
		}
	}()
	return nil
}

// close stops serving and drops every connection.
func (e *endpoint) close() {
	e.mu.Lock()
	srv := e.srv
	e.srv = nil
	conns := e.conns
	e.conns = map[*gatedConn]struct{}{}
	if e.prebound != nil {
		e.prebound.Close() //nolint:errcheck // unused listener
		e.prebound = nil
	}
	e.mu.Unlock()
	for c := range conns {
		c.Close() //nolint:errcheck // dropping
	}
	if srv != nil {
		srv.Close() //nolint:errcheck // dropping
	}
}

// setIsolated gates (or ungates) all reads and writes.
func (e *endpoint) setIsolated(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if on == e.isolated {
		return
	}
	e.isolated = on
	if on {
		e.gate = make(chan struct{})
	} else {
		close(e.gate)
	}
}

func (e *endpoint) currentGate() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gate
}

type gatedListener struct {
	net.Listener
	e *endpoint
}

func (l *gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := &gatedConn{Conn: c, e: l.e, done: make(chan struct{})}
	l.e.mu.Lock()
	l.e.conns[g] = struct{}{}
	l.e.mu.Unlock()
	return g, nil
}

// gatedConn blocks reads and writes while its endpoint is isolated.
type gatedConn struct {
	net.Conn
	e        *endpoint
	done     chan struct{}
	doneOnce sync.Once
}

func (c *gatedConn) wait() error {
	select {
	case <-c.e.currentGate():
		return nil
	case <-c.done:
		return net.ErrClosed
	}
}

func (c *gatedConn) Read(b []byte) (int, error) {
	if err := c.wait(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *gatedConn) Write(b []byte) (int, error) {
	if err := c.wait(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *gatedConn) Close() error {
	c.doneOnce.Do(func() { close(c.done) })
	c.e.mu.Lock()
	delete(c.e.conns, c)
	c.e.mu.Unlock()
	return c.Conn.Close()
}

// handler serves XML-RPC on POST / for one host.
type handler struct {
	p *Pool
	h *hostState
}

const internalErrorPage = `<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a while and try again. If the problem persists, please contact your support representative.<h1> Additional information </h1>%s</body></html>`

func (hd handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" && r.URL.Path != "/RPC2" {
		http.NotFound(w, r)
		return
	}
	if r.URL.Path == "/RPC2" && hd.p.is62 {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req, err := DecodeRequest(io.LimitReader(r.Body, maxBody))
	if err != nil {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, internalErrorPage, "Xml_parse_error")
		return
	}
	v := hd.p.call(r.Context(), hd.h, req)
	body := Encoder{EmptyElement: hd.p.is62}.EncodeResponse(v)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body) //nolint:errcheck // client gone
}
