package xapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	xenapi "github.com/terra-farm/go-xen-api-client"

	"xsha/config"
	"xsha/sim/lab"
	"xsha/sim/scenario"
)

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLab starts a lab on sc (the default scenario at 1/50 of real time
// when nil) and returns it with the configuration of pool, whose hosts are
// the given addresses (its first host's when none).
func startLab(t *testing.T, sc *scenario.Scenario, pool string, hosts ...string) (*lab.Lab, config.Pool, *slog.Logger) {
	t.Helper()
	if sc == nil {
		sc = scenario.Default()
		sc.TimeScale = 0.02
	}
	ctx, cancel := context.WithCancel(context.Background())
	l, err := lab.Start(ctx, lab.Options{Scenario: sc})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	logs := &logBuffer{}
	t.Cleanup(func() {
		cancel()
		_ = l.Close()
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
		if strings.Contains(logs.String(), sc.Credentials.Password) {
			t.Error("the logs show the password")
		}
	})
	sp, ok := sc.Pool(pool)
	if !ok {
		t.Fatalf("no pool %s", pool)
	}
	if len(hosts) == 0 {
		hosts = []string{sp.Hosts[0].Address}
	}
	y := fmt.Sprintf("pools:\n  - name: %s\n    hosts: [%s]\n    port: %d\n    tls: {ca_file: %s}\n    password_file: %s\n"+
		"    probe_interval: 200ms\n    call_timeout: 2s\n    event_timeout: 1s\n    required_hotfixes: [XS62ESP1004, XS71E001]\n",
		pool, strings.Join(hosts, ", "), l.XAPIPort(), l.CAFile(), l.PasswordFile())
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return l, cfg.Pools[0], slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// runWatcher runs a watcher for pc until the test ends.
func runWatcher(t *testing.T, pc config.Pool, opts WatcherOptions) *Watcher {
	t.Helper()
	w := NewWatcher(pc, opts)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	return w
}

// endSession logs ref out behind the owner's back, as xapi does to the
// oldest sessions past its session limit.
func endSession(t *testing.T, pc config.Pool, addr string, ref xenapi.SessionRef) {
	t.Helper()
	d := newDialer(pc, nil)
	defer d.close()
	c, err := d.dial(addr, d.calls)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.call(context.Background(), "session.logout", 0, func(api *xenapi.Client) error { return api.Session.Logout(ref) }); err != nil {
		t.Fatal(err)
	}
}

func masterSessions(l *lab.Lab, pool string) (sessions, local int) {
	for _, h := range l.Stats().Hosts {
		if h.Pool == pool {
			sessions += h.Sessions
			local += h.LocalSessions
		}
	}
	return sessions, local
}

func TestLoginOnSlaveKeepsMasterAddress(t *testing.T) {
	_, pc, log := startLab(t, nil, "cluster-a")
	d := newDialer(pc, nil)
	_, err := d.loginAt(context.Background(), "127.0.1.3")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeHostIsSlave || len(e.Params) != 1 || e.Params[0] != "127.0.1.1" {
		t.Fatalf("login on a slave: %v, want HOST_IS_SLAVE [127.0.1.1]", err)
	}
	s, err := d.findMaster(context.Background(), "127.0.1.3", nil, log)
	if err != nil || s.addr() != "127.0.1.1" {
		t.Fatalf("findMaster from a slave: %v %v", s, err)
	}
	_ = d.logout(context.Background(), s)
}

func TestClientReadFollowsMasterWithOneSession(t *testing.T) {
	l, pc, log := startLab(t, nil, "cluster-a", "127.0.1.2") // a slave
	m := NewMetrics(nil)
	c := NewClient(pc, ClientOptions{Logger: log, Metrics: m})
	ctx := context.Background()
	for range 3 {
		s, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// cluster-a runs 5 guests, 2 routers and 2 system VMs.
		if !s.Up || s.MasterAddress != "127.0.1.1" || len(s.Hosts) != 4 || s.VMs != 9 {
			t.Fatalf("Read: up=%v master=%q hosts=%d vms=%d", s.Up, s.MasterAddress, len(s.Hosts), s.VMs)
		}
		for _, h := range s.Hosts {
			want := RoleSlave
			if h.Name == "xs-a1" {
				want = RoleMaster
			}
			if h.Probe.Role != want || !h.Hotfixes["XS62ESP1004"] || h.Hotfixes["XS71E001"] {
				t.Errorf("%s: role %q hotfixes %v", h.Name, h.Probe.Role, h.Hotfixes)
			}
		}
	}
	if n, _ := masterSessions(l, "cluster-a"); n != 1 {
		t.Errorf("sessions open on the master after three reads: %d, want 1", n)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := masterSessions(l, "cluster-a"); n != 0 {
		t.Errorf("sessions open after Close: %d, want 0", n)
	}
}

func TestClientHAErrors(t *testing.T) {
	_, pc, log := startLab(t, nil, "cluster-a")
	c := NewClient(pc, ClientOptions{Logger: log})
	ctx := context.Background()
	defer c.Close(ctx)
	err := c.DisableHA(ctx)
	if ErrorCode(err) != CodeHANotEnabled {
		t.Errorf("DisableHA with HA off: %v, want HA_NOT_ENABLED", err)
	}
	if err := c.EnableHA(ctx, "no-such-uuid", nil); ErrorCode(err) != "UUID_INVALID" {
		t.Errorf("EnableHA on an unknown SR: %v, want UUID_INVALID", err)
	}
}

// TestRecoverOldMaster walks the seed's recovery: HA on, master power loss,
// a new master, the old one back in emergency mode; then pool HA disabled
// and host.emergency_ha_disable on the old master bring it back as a slave,
// and no slave-local session is left behind.
func TestRecoverOldMaster(t *testing.T) {
	l, pc, log := startLab(t, nil, "cluster-a")
	ctx := context.Background()
	w := runWatcher(t, pc, WatcherOptions{Logger: log})
	waitFor(t, "the pool read", func() bool { return w.Snapshot().Up })

	c := NewClient(pc, ClientOptions{Logger: log})
	defer c.Close(ctx)
	if err := c.EnableHA(ctx, w.Snapshot().HeartbeatSR.UUID, map[string]string{"timeout": "180"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "HA enabled", func() bool { return w.Snapshot().HAEnabled })
	if err := l.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new master", func() bool {
		s := w.Snapshot()
		m, ok := s.Master()
		return s.Up && ok && m.Name != "xs-a1" && s.MasterChanges == 1
	})
	if err := l.PowerOn("xs-a1"); err != nil {
		t.Fatal(err)
	}
	var old Host
	waitFor(t, "xs-a1 in emergency mode", func() bool {
		old, _ = w.Snapshot().Host("xs-a1")
		return old.Probe.Role == RoleEmergency
	})
	if len(old.Probe.Error) == 0 || old.Probe.Error[0] == "" {
		t.Errorf("emergency probe carries no error: %+v", old.Probe)
	}
	if err := c.DisableHA(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.EmergencyHADisable(ctx, "127.0.1.1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "xs-a1 back as a slave", func() bool {
		h, _ := w.Snapshot().Host("xs-a1")
		return h.Probe.Role == RoleSlave
	})
	if _, local := masterSessions(l, "cluster-a"); local != 0 {
		t.Errorf("%d slave-local sessions left behind", local)
	}
	if err := c.EmergencyHADisable(ctx, "127.0.1.1"); err == nil {
		t.Error("emergency_ha_disable on a host that is not armed succeeded")
	}
}

// TestWatcherPoolDownWithoutHA: the master dies with HA off, so nobody takes
// over. The pool goes down, keeps its last view, and the probes show the
// slaves still pointing at the dead master.
func TestWatcherPoolDownWithoutHA(t *testing.T) {
	l, pc, log := startLab(t, nil, "cluster-a")
	w := runWatcher(t, pc, WatcherOptions{Logger: log})
	waitFor(t, "the pool read", func() bool { return w.Snapshot().Up })
	select {
	case <-w.Attempted():
	default:
		t.Error("Attempted not closed after the first read")
	}
	if err := l.PowerOff("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool down", func() bool { return !w.Snapshot().Up })
	waitFor(t, "probes of the dead master and its slaves", func() bool {
		s := w.Snapshot()
		m, _ := s.Host("xs-a1")
		sl, _ := s.Host("xs-a2")
		return m.Probe.Role == RoleUnreachable && sl.Probe.Role == RoleSlave && sl.Probe.MasterAddress == "127.0.1.1"
	})
	s := w.Snapshot()
	if s.LastError == "" || s.PoolUUID == "" || len(s.Hosts) != 4 {
		t.Errorf("down snapshot: err=%q pool=%q hosts=%d", s.LastError, s.PoolUUID, len(s.Hosts))
	}
	if err := l.PowerOn("xs-a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool back", func() bool { return w.Snapshot().Up })
	if w.Snapshot().MasterChanges != 0 {
		t.Error("the same master coming back counted as a change")
	}
}

// TestHotfixes reads each hotfix mechanism from the lab through the
// watcher (full read and event subscription): 6.2 pool_patch/host_patch
// rows, whose host_patch carries no name; 7.x pool_updates in host.updates;
// and XS62ESP1004 by the API version it brings (2.2 and later).
func TestHotfixesOnLab(t *testing.T) {
	tests := []struct {
		name     string
		version  string
		hotfixes []string
		want     map[string]bool
	}{
		{"6.2 SP1 without XS62ESP1004 (API 2.1)", scenario.Version62, []string{"XS62ESP1"},
			map[string]bool{"XS62ESP1004": false, "XS62ESP1": true, "XS71E001": false}},
		{"6.2 SP1 with XS62ESP1004 (API 2.2)", scenario.Version62, []string{"XS62ESP1", "XS62ESP1004"},
			map[string]bool{"XS62ESP1004": true, "XS62ESP1": true, "XS71E001": false}},
		{"7.1 with an update (API 2.6)", scenario.Version71, []string{"XS71E001"},
			map[string]bool{"XS62ESP1004": true, "XS62ESP1": false, "XS71E001": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := scenario.Default()
			sc.TimeScale = 0.02
			sc.Pools[0].ProductVersion = tt.version
			sc.Pools[0].Hotfixes = tt.hotfixes
			_, pc, log := startLab(t, sc, "cluster-a")
			pc.RequiredHotfixes = []string{"XS62ESP1004", "XS62ESP1", "XS71E001"}
			w := runWatcher(t, pc, WatcherOptions{Logger: log})
			waitFor(t, "the pool read", func() bool { return w.Snapshot().Up })
			s := w.Snapshot()
			if len(s.Hosts) != 4 {
				t.Fatalf("%d hosts, want 4", len(s.Hosts))
			}
			for _, h := range s.Hosts {
				if h.ProductVersion != tt.version || !reflect.DeepEqual(h.Hotfixes, tt.want) {
					t.Errorf("%s: version %s hotfixes %v, want %s %v", h.Name, h.ProductVersion, h.Hotfixes, tt.version, tt.want)
				}
			}
		})
	}
}

// TestSessionInvalidLogsInAgain: xapi forgets a session (logged out
// elsewhere, or evicted past its session limit, xapi.md 1.6). The client and
// the watcher log in again and carry on, and nothing counts the lost
// session as still open.
func TestSessionInvalidLogsInAgain(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		l, pc, log := startLab(t, nil, "cluster-a")
		m := NewMetrics(nil)
		c := NewClient(pc, ClientOptions{Logger: log, Metrics: m})
		ctx := context.Background()
		defer c.Close(ctx)
		if _, err := c.Read(ctx); err != nil {
			t.Fatal(err)
		}
		old := c.s.ref
		endSession(t, pc, "127.0.1.1", old)
		s, err := c.Read(ctx)
		if err != nil || !s.Up {
			t.Fatalf("Read after SESSION_INVALID: up=%v err=%v", s.Up, err)
		}
		if c.s.ref == old {
			t.Error("the client kept the forgotten session")
		}
		if n, _ := masterSessions(l, "cluster-a"); n != 1 {
			t.Errorf("sessions open on the master: %d, want 1", n)
		}
		if n := testutil.ToFloat64(m.sessions.WithLabelValues("cluster-a")); n != 1 {
			t.Errorf("xsha_xapi_sessions_open = %v, want 1", n)
		}
	})
	t.Run("watcher", func(t *testing.T) {
		l, pc, log := startLab(t, nil, "cluster-a")
		m := NewMetrics(nil)
		w := runWatcher(t, pc, WatcherOptions{Logger: log, Metrics: m})
		waitFor(t, "the pool read", func() bool { return w.Snapshot().Up })
		w.mu.Lock()
		old := w.current.s.ref
		w.mu.Unlock()
		endSession(t, pc, "127.0.1.1", old)
		waitFor(t, "a new session and a new read", func() bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.up && w.current != nil && w.current.s.ref != old
		})
		// The new session follows changes.
		if err := l.SetVMHARestartPriority("i-2-101-VM", "restart"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the change seen", func() bool { return w.Snapshot().VMsHAProtected == 1 })
		waitFor(t, "one session on the master", func() bool {
			n, _ := masterSessions(l, "cluster-a")
			return n == 1 && testutil.ToFloat64(m.sessions.WithLabelValues("cluster-a")) == 1
		})
	})
}

// TestWrongPassword: the master refuses the credentials
// (SESSION_AUTHENTICATION_FAILED), which says nothing about its role; the
// slaves still answer HOST_IS_SLAVE before checking them. The pool is down
// with the reason, no host is taken for one in emergency mode, and no
// session is left behind.
func TestWrongPassword(t *testing.T) {
	l, pc, log := startLab(t, nil, "cluster-a", "127.0.1.1", "127.0.1.4")
	pc.Password = "not-the-password"
	w := runWatcher(t, pc, WatcherOptions{Logger: log})
	// Never read, the pool's hosts are the configured addresses.
	waitFor(t, "both hosts probed", func() bool {
		s := w.Snapshot()
		m, _ := s.Host("127.0.1.1")
		sl, _ := s.Host("127.0.1.4")
		return len(m.Probe.Error) > 0 && sl.Probe.Role == RoleSlave
	})
	<-w.Attempted()
	s := w.Snapshot()
	if s.Up || !strings.Contains(s.LastError, CodeAuthFailed) {
		t.Errorf("pool up=%v, last error %q; want down with %s", s.Up, s.LastError, CodeAuthFailed)
	}
	if m, _ := s.Host("127.0.1.1"); m.Probe.Role != "" || m.Probe.Error[0] != CodeAuthFailed {
		t.Errorf("master probe %+v, want no role and %s", m.Probe, CodeAuthFailed)
	}
	if sl, _ := s.Host("127.0.1.4"); sl.Probe.MasterAddress != "127.0.1.1" {
		t.Errorf("slave probe %+v, want HOST_IS_SLAVE [127.0.1.1]", sl.Probe)
	}
	if n, _ := masterSessions(l, "cluster-a"); n != 0 {
		t.Errorf("%d sessions open with a wrong password", n)
	}
}

// TestEnableHAOutlastsCallTimeout: pool.enable_ha answers only once HA is
// up, which takes longer than the call timeout; the client still gets the
// answer.
func TestEnableHAOutlastsCallTimeout(t *testing.T) {
	sc := scenario.Default()
	sc.TimeScale = 0.02
	sc.Durations.EnableHA = scenario.Duration(200 * time.Second) // 4 s, twice the 2 s call timeout
	_, pc, log := startLab(t, sc, "cluster-a")
	c := NewClient(pc, ClientOptions{Logger: log})
	ctx := context.Background()
	defer c.Close(ctx)
	s, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnableHA(ctx, s.HeartbeatSR.UUID, nil); err != nil {
		t.Fatalf("EnableHA: %v", err)
	}
	if s, err = c.Read(ctx); err != nil || !s.HAEnabled {
		t.Fatalf("after EnableHA: ha_enabled=%v err=%v", s.HAEnabled, err)
	}
	if err := c.EnableHA(ctx, s.HeartbeatSR.UUID, nil); ErrorCode(err) != CodeHAIsEnabled {
		t.Errorf("EnableHA twice: %v, want HA_IS_ENABLED", err)
	}
}
