package cloudstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"xsha/config"
	"xsha/sim/cloudstacksim"
	"xsha/sim/scenario"
)

// labInfra is the default scenario's XenServer hosts, all up unless a test
// changes them.
type labInfra struct {
	mu    sync.Mutex
	hosts []cloudstacksim.HostView
}

func newLabInfra(sc *scenario.Scenario) *labInfra {
	l := &labInfra{}
	for _, p := range sc.Pools {
		for _, h := range p.Hosts {
			l.hosts = append(l.hosts, cloudstacksim.HostView{Name: h.Name, Cluster: p.Name, Address: h.Address, PoweredOn: true, Reachable: true, Heartbeat: true})
		}
	}
	return l
}

func (l *labInfra) Hosts() []cloudstacksim.HostView {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]cloudstacksim.HostView(nil), l.hosts...)
}

// startLab serves the simulated CloudStack of the default scenario.
func startLab(t *testing.T, edit func(*scenario.Scenario)) (*cloudstacksim.Server, *httptest.Server, *scenario.Scenario) {
	t.Helper()
	sc := scenario.Default()
	if edit != nil {
		edit(sc)
	}
	srv, err := cloudstacksim.New(newLabInfra(sc), cloudstacksim.FromScenario(sc))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts, sc
}

func csConfig(url string, sc *scenario.Scenario) config.CloudStack {
	return config.CloudStack{
		URL: url + "/client/api", APIKey: config.Secret(sc.CloudStack.APIKey), SecretKey: config.Secret(sc.CloudStack.SecretKey),
		Interval: model.Duration(time.Minute), Timeout: model.Duration(10 * time.Second),
	}
}

func TestPollReadsCloudStack(t *testing.T) {
	srv, ts, sc := startLab(t, nil)
	p, err := NewPoller(csConfig(ts.URL, sc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Snapshot(); s == nil || s.Up {
		t.Fatalf("snapshot before the first poll: %+v", s)
	}
	s, err := p.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Up || s.Synced.IsZero() || s.LastError != "" {
		t.Errorf("snapshot up=%v synced=%v err=%q", s.Up, s.Synced, s.LastError)
	}
	if s.AlertWait != 60*time.Second || !s.AlertWaitSet {
		t.Errorf("alert.wait %v set=%v, want 60s set", s.AlertWait, s.AlertWaitSet)
	}
	if len(s.Hosts) != 8 {
		t.Fatalf("%d hosts, want 8", len(s.Hosts))
	}
	if h, ok := hostByName(s, "cluster-b", "xs-b3"); !ok || h.State != "Up" || h.ResourceState != "Enabled" || h.IPAddress != "127.0.2.3" {
		t.Errorf("xs-b3 = %+v, %v", h, ok)
	}
	want := []Cluster{{Name: "cluster-a", VMsHA: 3, VMsNoHA: 2}, {Name: "cluster-b", VMsHA: 3, VMsNoHA: 2}}
	if len(s.Clusters) != 2 {
		t.Fatalf("clusters %+v", s.Clusters)
	}
	for i, c := range s.Clusters {
		if c.Name != want[i].Name || c.VMsHA != want[i].VMsHA || c.VMsNoHA != want[i].VMsNoHA || c.ID == "" {
			t.Errorf("cluster %+v, want %+v", c, want[i])
		}
	}
	if len(s.VMs) != 10 || s.VMs[0].Host == "" || s.VMs[0].InstanceName == "" {
		t.Errorf("VMs %+v", s.VMs)
	}
	if !s.PrimaryStorageNamed("cluster-a", "primary-a") || s.PrimaryStorageNamed("cluster-a", "MGMT-HA") || s.PrimaryStorageNamed("cluster-b", "primary-a") {
		t.Errorf("storage pools %+v", s.StoragePools)
	}

	// Blank alert.wait: CloudStack waits 1800 s.
	srv.SetAlertWait(nil)
	s, err = p.Poll(context.Background())
	if err != nil || s.AlertWait != DefaultAlertWait || s.AlertWaitSet {
		t.Errorf("blank alert.wait: %v, %v set=%v", err, s.AlertWait, s.AlertWaitSet)
	}
}

func TestPollSeesHeartbeatSRAsPrimaryStorage(t *testing.T) {
	_, ts, sc := startLab(t, func(sc *scenario.Scenario) {
		sc.CloudStack.PrimaryStorage = append(sc.CloudStack.PrimaryStorage, "MGMT-HA")
	})
	p, err := NewPoller(csConfig(ts.URL, sc), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !s.PrimaryStorageNamed("cluster-a", "MGMT-HA") || !s.PrimaryStorageNamed("cluster-b", "MGMT-HA") {
		t.Errorf("storage pools %+v, want MGMT-HA in both clusters", s.StoragePools)
	}
}

// An outage marks the snapshot down, keeps the last data and logs no
// secret.
func TestPollFailureKeepsSecretsOut(t *testing.T) {
	_, ts, sc := startLab(t, nil)
	var logs bytes.Buffer
	cfg := csConfig(ts.URL, sc)
	p, err := NewPoller(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	s, err := p.Poll(context.Background())
	if err == nil || s.Up || s.LastError == "" {
		t.Fatalf("poll of a closed server: err %v, snapshot up=%v err=%q", err, s.Up, s.LastError)
	}
	if len(s.Hosts) != 8 {
		t.Errorf("the failed poll dropped the last data: %d hosts", len(s.Hosts))
	}
	if !strings.Contains(s.LastError, "listConfigurations") || !strings.Contains(s.LastError, "/client/api") {
		t.Errorf("LastError %q should say which call failed where", s.LastError)
	}
	for _, secret := range []string{string(cfg.APIKey), string(cfg.SecretKey), "signature", "apikey"} {
		if strings.Contains(strings.ToLower(s.LastError), strings.ToLower(secret)) || strings.Contains(strings.ToLower(logs.String()), strings.ToLower(secret)) {
			t.Errorf("%q leaked: error %q, logs %s", secret, s.LastError, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "CloudStack poll failed") {
		t.Errorf("the failure was not logged: %s", logs.String())
	}
}

func TestPollWrongSecret(t *testing.T) {
	_, ts, sc := startLab(t, nil)
	cfg := csConfig(ts.URL, sc)
	cfg.SecretKey = "not-the-secret"
	p, err := NewPoller(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Poll(context.Background())
	if err == nil || s.Up || !strings.Contains(s.LastError, "CloudStack API error 401") {
		t.Errorf("wrong secret: %v, %+v", err, s)
	}
}

func TestPollTLS(t *testing.T) {
	sc := scenario.Default()
	srv, err := cloudstacksim.New(newLabInfra(sc), cloudstacksim.FromScenario(sc))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // rejected handshakes are expected
	ts.StartTLS()
	t.Cleanup(ts.Close)
	cert := ts.Certificate()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	tests := []struct {
		name string
		tls  config.TLS
		ok   bool
	}{
		{"system roots reject the lab certificate", config.TLS{}, false},
		{"CA file", config.TLS{CAFile: caFile}, true},
		{"pinned fingerprint", config.TLS{Fingerprints: []string{hex.EncodeToString(sum[:])}}, true},
		{"wrong pin", config.TLS{Fingerprints: []string{strings.Repeat("ab", 32)}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := csConfig(ts.URL, sc)
			cfg.TLS = tc.tls
			p, err := NewPoller(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.Poll(context.Background())
			if (err == nil) != tc.ok || s.Up != tc.ok {
				t.Errorf("poll: %v (up=%v), want success %v", err, s.Up, tc.ok)
			}
		})
	}
}

// Stopping the poller cancels a call that hangs.
func TestRunStopsDuringAHangingCall(t *testing.T) {
	arrived := make(chan struct{}, 1)
	hang := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); ts.Close() })
	cfg := config.CloudStack{URL: ts.URL, APIKey: "k", SecretKey: "s", Interval: model.Duration(time.Hour), Timeout: model.Duration(time.Hour)}
	p, err := NewPoller(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("no request reached the server")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if s := p.Snapshot(); s.Up {
		t.Errorf("snapshot up after a cancelled poll")
	}
}

// A call that hangs fails the poll after cfg.Timeout, although the poll's
// own context never ends.
func TestPollTimesOutAHangingCall(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(ts.Close)
	cfg := config.CloudStack{URL: ts.URL, APIKey: "k", SecretKey: "s", Interval: model.Duration(time.Hour), Timeout: model.Duration(50 * time.Millisecond)}
	p, err := NewPoller(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Poll(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "listConfigurations") {
			t.Errorf("poll of a hanging server: %v, want listConfigurations to fail", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the poll still hangs; the call timeout is not applied")
	}
	if s := p.Snapshot(); s.Up {
		t.Error("snapshot up after a timed-out poll")
	}
}

// More hosts than one page holds are all read.
func TestPollPages(t *testing.T) {
	sc := scenario.Default()
	infra := newLabInfra(sc)
	for i := range 520 {
		infra.hosts = append(infra.hosts, cloudstacksim.HostView{Name: fmt.Sprintf("xs-c%03d", i), Cluster: "cluster-c", Address: "127.0.3.1", PoweredOn: true, Reachable: true, Heartbeat: true})
	}
	srv, err := cloudstacksim.New(infra, cloudstacksim.FromScenario(sc))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	p, err := NewPoller(csConfig(ts.URL, sc), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Hosts) != 528 || len(s.Clusters) != 3 {
		t.Errorf("%d hosts in %d clusters, want 528 in 3", len(s.Hosts), len(s.Clusters))
	}
}

// BenchmarkPoll measures one complete poll of the default scenario's
// simulated CloudStack (eight API calls over loopback HTTP).
func BenchmarkPoll(b *testing.B) {
	sc := scenario.Default()
	srv, err := cloudstacksim.New(newLabInfra(sc), cloudstacksim.FromScenario(sc))
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	p, err := NewPoller(csConfig(ts.URL, sc), nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := p.Poll(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// hostByName returns the host with the given name in the given cluster.
func hostByName(s *Snapshot, cluster, name string) (Host, bool) {
	for _, h := range s.Hosts {
		if h.Cluster == cluster && h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}
