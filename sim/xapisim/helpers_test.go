package xapisim_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	xenapi "github.com/terra-farm/go-xen-api-client"

	"xsha/sim/scenario"
	"xsha/sim/xapisim"
)

// testPool serves one pool of sc over httptest servers (one per host, plain
// HTTP on 127.0.0.1): enough for the wire format and record tests, which do
// not need the per-address endpoints.
type testPool struct {
	*xapisim.Pool
	urls map[string]string
}

func newTestPool(t *testing.T, sc *scenario.Scenario, pool string) *testPool {
	t.Helper()
	p, err := xapisim.NewPool(xapisim.Options{Scenario: sc, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	tp := &testPool{Pool: p, urls: map[string]string{}}
	cfg, _ := sc.Pool(pool)
	for _, h := range cfg.Hosts {
		hd, ok := p.HostHandler(h.Name)
		if !ok {
			t.Fatalf("no handler for %s", h.Name)
		}
		srv := httptest.NewServer(hd)
		t.Cleanup(srv.Close)
		tp.urls[h.Name] = srv.URL + "/"
	}
	t.Cleanup(func() { p.Close() })
	return tp
}

func (tp *testPool) client(t *testing.T, host string) *xenapi.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := xenapi.NewClient(tp.urls[host], tr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (tp *testPool) login(t *testing.T, host string) (*xenapi.Client, xenapi.SessionRef) {
	t.Helper()
	c := tp.client(t, host)
	s, err := c.Session.LoginWithPassword("root", "xenroot", "1.0", "xsha-test")
	if err != nil {
		t.Fatalf("login on %s: %v", host, err)
	}
	return c, s
}

func xenCode(err error) string {
	if xe, ok := errors.AsType[*xenapi.Error](err); ok {
		return xe.Code()
	}
	return ""
}

func fast(scale float64) *scenario.Scenario {
	sc := scenario.Default()
	sc.TimeScale = scale
	return sc
}
