package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	xenapi "github.com/terra-farm/go-xen-api-client"

	"xsha/sim/scenario"
)

// fastScenario is the default scenario with every duration scaled down so
// that a minute of XenServer time takes 5 ms... 100 ms.
func fastScenario(scale float64) *scenario.Scenario {
	sc := scenario.Default()
	sc.TimeScale = scale
	return sc
}

func startLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	l, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing lab: %v", err)
		}
	})
	return l
}

// client returns a terra-farm client for a host, verifying the lab CA.
func client(t *testing.T, l *Lab, host string) *xenapi.Client {
	t.Helper()
	return clientURL(t, l, l.XAPIURL(host))
}

func clientURL(t *testing.T, l *Lab, url string) *xenapi.Client {
	t.Helper()
	tr := &http.Transport{ResponseHeaderTimeout: 30 * time.Second}
	if ca := l.CAFile(); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatal("no CA certificate in ca.pem")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := xenapi.NewClient(url, tr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func errCode(err error) (code, param string) {
	if xe, ok := errors.AsType[*xenapi.Error](err); ok {
		return xe.Code(), xe.Type()
	}
	return "", ""
}

func TestLoginFollowsHostIsSlaveOverHTTPS(t *testing.T) {
	l := startLab(t, Options{Scenario: fastScenario(0.01)})
	c := client(t, l, "xs-a2")
	_, err := c.Session.LoginWithPassword("root", "xenroot", "1.0", "test")
	code, master := errCode(err)
	if code != "HOST_IS_SLAVE" || master != "127.0.1.1" {
		t.Fatalf("login on slave: got %v, want HOST_IS_SLAVE 127.0.1.1", err)
	}
	c = clientURL(t, l, urlFor(l, master))
	s, err := c.Session.LoginWithPassword("root", "xenroot", "1.0", "test")
	if err != nil {
		t.Fatalf("login on master: %v", err)
	}
	pools, err := c.Pool.GetAllRecords(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) != 1 {
		t.Fatalf("got %d pools", len(pools))
	}
	for _, p := range pools {
		if p.NameLabel != "cluster-a" {
			t.Errorf("pool name %q", p.NameLabel)
		}
	}
}
