package xapisim

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
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
		e.prebound.Close()
		e.prebound = nil
	}
	e.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	if srv != nil {
		srv.Close()
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

// handler is one host's HTTP server: xapi's Http_svr with the handlers the
// lab simulates.
type handler struct {
	p *Pool
	h *hostState
}

// internalErrorPage is Http_svr.response_internal_error's body.
const internalErrorPage = `<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a while and try again. If the problem persists, please contact your support representative.<h1> Additional information </h1>%s</body></html>`

// HTTP paths with handlers of their own (ocaml/idl/constants.ml and
// ocaml/idl/datamodel.ml http_actions).
const (
	pathRoot    = "/"
	pathJSON    = "/json"    // post_json: XML-RPC in, the result as a JSON string
	pathJSONRPC = "/jsonrpc" // post_jsonrpc: JSON-RPC, from xapi 1.14 (XenServer 7.x)
)

// ServeHTTP routes a request as xapi's Http_svr.handle_one does
// (http-svr/http_svr.ml in xen-api-libs): handlers are found per method by
// the longest prefix of the path (Radix_tree.longest_prefix), so every POST
// path without a more specific handler reaches the XML-RPC handler at "/"
// (post_root), /RPC2 included; a method without
// handlers is HTTP 501; a path no handler's prefix matches is HTTP 403
// (default_callback).
func (hd handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		// Radix_tree.longest_prefix matches strings, not path segments:
		// "/jsonfoo" is served by post_json, and on 6.2, which has no
		// post_jsonrpc, so is "/jsonrpc".
		switch {
		case strings.HasPrefix(r.URL.Path, pathJSONRPC) && !hd.p.is62:
			hd.serveJSONRPC(w, r)
		case strings.HasPrefix(r.URL.Path, pathJSON):
			hd.serveXMLRPC(w, r, true)
		default:
			hd.serveXMLRPC(w, r, false)
		}
	case http.MethodGet:
		// get_root serves files of the web directory
		// (ocaml/xapi/fileserver.ml): "/" is its index.html; the lab has
		// no other file, and a missing one is Http_svr.response_missing.
		if r.URL.Path != pathRoot {
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, "<html><body><h1>HTTP 404 not found</h1>The requested URL %s was not found on this server.</body></html>", html.EscapeString(r.URL.Path))
			return
		}
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><head><title>XenServer</title></head><body><h1>Citrix XenServer</h1></body></html>\n")
	case http.MethodOptions:
		// post_root_options and friends: Http_svr.respond_to_options.
		acah := "X-Requested-With"
		if v := r.Header.Get("Access-Control-Request-Headers"); v != "" {
			acah = v + ", X-Requested-With"
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Headers", acah)
		w.Header().Set("Access-Control-Allow-Methods", "PUT")
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	case http.MethodPut:
		// PUT has handlers (import, blobs...), none the lab simulates
		// and none at "/": default_callback.
		errorPage(w, http.StatusForbidden, "<html><body><h1>HTTP 403 forbidden</h1>Access to the requested resource is forbidden.</body></html>")
	default:
		errorPage(w, http.StatusNotImplemented, fmt.Sprintf("<html><body><h1>HTTP 501 Method Not Implemented</h1><p>%s not supported.<br /></p></body></html>", html.EscapeString(r.Method)))
	}
}

// errorPage is Http_svr.response_error_html.
func errorPage(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Connection", "close")
	w.Header().Set("Cache-Control", "no-cache, no-store")
	w.WriteHeader(code)
	io.WriteString(w, body)
}

// readBody is Http_svr.read_body: xapi reads exactly Content-Length bytes
// and fails a request without the header (a chunked one) with HTTP 500.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength < 0 {
		errorPage(w, http.StatusInternalServerError, fmt.Sprintf(internalErrorPage, html.EscapeString(`Failure("We require a content-length: HTTP header")`)))
		return nil, false
	}
	if r.ContentLength > maxBody {
		errorPage(w, http.StatusInternalServerError, fmt.Sprintf(internalErrorPage, "Http_svr.Client_requested_size_over_limit"))
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
	if err != nil {
		return nil, false
	}
	return b, true
}

// serveXMLRPC is Api_server.callback (ocaml/xapi/api_server.ml). With
// asJSON (post_json) a successful result is sent as a JSON string in the
// XML-RPC envelope (Json.xmlrpc_to_json on 6.2, Jsonrpc.to_string on 7.x).
func (hd handler) serveXMLRPC(w http.ResponseWriter, r *http.Request, asJSON bool) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	enc := Encoder{EmptyElement: hd.p.is62}
	req, err := decodeRequest(bytes.NewReader(body), true)
	if err != nil {
		if hd.p.is62 && errors.Is(err, ErrNotXML) {
			// XS62 api_server.ml: "| Xml.Error _ -> ... XMLRPC.Fault(1l,
			// "Failed to parse supplied XML")", an HTTP 200.
			writeXML(w, enc.EncodeFault(1, "Failed to parse supplied XML"))
			return
		}
		// 7.x re-raises every parse error; Http_svr.handle_one turns it
		// into HTTP 500.
		errorPage(w, http.StatusInternalServerError, fmt.Sprintf(internalErrorPage, "Xml_parse_error"))
		return
	}
	v, apiErr := hd.p.serve(r.Context(), hd.h, req)
	var res Value
	switch {
	case apiErr != nil:
		res = Failure(apiErr.code, apiErr.params...)
	case asJSON && hd.p.is62 && v.Kind == KindString && v.Tag == "" && v.Str == "":
		// XS62 translates only a <value> with content; <value/> stays.
		res = Success(v)
	case asJSON:
		res = Success(String(string(jsonOf(v, hd.p.is62))))
	default:
		res = Success(v)
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Allow-Headers", "X-Requested-With")
	writeXML(w, enc.EncodeResponse(res))
}

func writeXML(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}
