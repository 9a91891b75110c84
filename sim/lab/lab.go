// Package lab runs the xsha lab: simulated XenServer pools speaking XAPI on
// loopback addresses, a simulated CloudStack API, and a JSON control API for
// fault injection. Tests start it in-process with Start; xsha-sim runs it as
// a program.
package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"xsha/sim/cloudstacksim"
	"xsha/sim/scenario"
	"xsha/sim/xapisim"
)

// Options configure a Lab.
type Options struct {
	// Scenario is what to simulate; nil is scenario.Default().
	Scenario *scenario.Scenario
	// StateDir receives ca.pem, the secret files and xsha.yml; "" is a
	// temporary directory removed by Close.
	StateDir string
	// XAPIPort is the XAPI port of every simulated host; 0 picks one free
	// port shared by all host addresses.
	XAPIPort int
	// XAPIHTTP serves plain HTTP instead of HTTPS.
	XAPIHTTP bool
	// ControlListen is the control API's address; "" serves none,
	// "127.0.0.1:0" any port.
	ControlListen string
	// CloudStackListen is the CloudStack API's address; "" serves none.
	CloudStackListen string
	// Logger receives the lab's events; nil discards them.
	Logger *slog.Logger
}

// Files written to the state directory.
const (
	CAFileName            = "ca.pem"
	PasswordFileName      = "xapi-password"
	APIKeyFileName        = "cloudstack-api-key"
	SecretKeyFileName     = "cloudstack-secret-key"
	ConfigFileName        = "xsha.yml"
	cloudStackAPIPath     = "/client/api"
	portAttempts          = 20
	controlShutdownPeriod = 2 * time.Second
)

// Lab is a running lab.
type Lab struct {
	sc       *scenario.Scenario
	log      *slog.Logger
	stateDir string
	tempDir  bool
	port     int
	http     bool

	pools  []*xapisim.Pool
	byName map[string]*xapisim.Pool

	cs      *cloudstacksim.Server
	csURL   string
	csHTTP  *http.Server
	control *http.Server
	ctlURL  string

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start builds and serves a lab. Close it when done.
func Start(ctx context.Context, opts Options) (*Lab, error) {
	sc := opts.Scenario
	if sc == nil {
		sc = scenario.Default()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Lab{sc: sc, log: log, http: opts.XAPIHTTP, byName: map[string]*xapisim.Pool{}}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()

	if opts.StateDir == "" {
		dir, err := os.MkdirTemp("", "xsha-lab-")
		if err != nil {
			return nil, fmt.Errorf("lab: state directory: %w", err)
		}
		l.stateDir, l.tempDir = dir, true
	} else {
		dir, err := filepath.Abs(opts.StateDir)
		if err != nil {
			return nil, fmt.Errorf("lab: state directory: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("lab: state directory: %w", err)
		}
		l.stateDir = dir
	}

	var tlsFor func(string) *tls.Config
	if !opts.XAPIHTTP {
		ca, err := newAuthority()
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		if err := writeFile(l.CAFile(), ca.pem, 0o644); err != nil {
			return nil, err
		}
		configs := map[string]*tls.Config{}
		for _, p := range sc.Pools {
			for _, h := range p.Hosts {
				c, err := ca.serverConfig(h.Name, h.Address)
				if err != nil {
					return nil, fmt.Errorf("lab: %w", err)
				}
				configs[h.Name] = c
			}
		}
		tlsFor = func(host string) *tls.Config { return configs[host] }
	}
	if err := writeFile(l.PasswordFile(), []byte(sc.Credentials.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	apiKey, secretKey := l.CloudStackKeyFiles()
	if err := writeFile(apiKey, []byte(sc.CloudStack.APIKey+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(secretKey, []byte(sc.CloudStack.SecretKey+"\n"), 0o600); err != nil {
		return nil, err
	}

	listeners, port, err := bindXAPI(sc, opts.XAPIPort)
	if err != nil {
		return nil, err
	}
	l.port = port
	for _, p := range sc.Pools {
		pool, err := xapisim.NewPool(xapisim.Options{
			Scenario: sc, Pool: p.Name, Port: port, TLS: tlsFor, Listeners: listeners, Logger: log,
		})
		if err != nil {
			closeListeners(listeners)
			return nil, fmt.Errorf("lab: %w", err)
		}
		l.pools = append(l.pools, pool)
		l.byName[p.Name] = pool
	}
	for _, pool := range l.pools {
		if err := pool.Start(); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}

	if opts.CloudStackListen != "" {
		csOpts := cloudstacksim.FromScenario(sc)
		csOpts.Logger = log.With("component", "cloudstack")
		cs, err := cloudstacksim.New(infra{l}, csOpts)
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		l.cs = cs
		ln, err := net.Listen("tcp", opts.CloudStackListen)
		if err != nil {
			return nil, fmt.Errorf("lab: CloudStack API: %w", err)
		}
		l.csURL = "http://" + ln.Addr().String() + cloudStackAPIPath
		l.csHTTP = &http.Server{Handler: cs, ReadHeaderTimeout: 10 * time.Second}
		l.wg.Add(2)
		go func() { defer l.wg.Done(); cs.Run(runCtx) }()
		go func() { defer l.wg.Done(); serve(l.csHTTP, ln, log) }()
	}
	if opts.ControlListen != "" {
		ln, err := net.Listen("tcp", opts.ControlListen)
		if err != nil {
			return nil, fmt.Errorf("lab: control API: %w", err)
		}
		l.ctlURL = "http://" + ln.Addr().String()
		l.control = &http.Server{Handler: l.Handler(), ReadHeaderTimeout: 10 * time.Second}
		l.wg.Go(func() { ; serve(l.control, ln, log) })
	}
	if err := writeFile(filepath.Join(l.stateDir, ConfigFileName), l.xshaConfig(), 0o644); err != nil {
		return nil, err
	}
	log.Info("lab started", "pools", len(l.pools), "xapi_port", port, "https", !opts.XAPIHTTP,
		"state_dir", l.stateDir, "control", l.ctlURL, "cloudstack", l.csURL)
	ok = true
	return l, nil
}

func serve(srv *http.Server, ln net.Listener, log *slog.Logger) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("server stopped", "addr", ln.Addr().String(), "err", err)
	}
}

// bindXAPI binds every host address on one port: the given one, or a free
// port found by binding the first address on port 0.
func bindXAPI(sc *scenario.Scenario, port int) (map[string]net.Listener, int, error) {
	var hosts []scenario.Host
	for _, p := range sc.Pools {
		hosts = append(hosts, p.Hosts...)
	}
	var lastErr error
	for range portAttempts {
		lns := map[string]net.Listener{}
		try := port
		var err error
		for _, h := range hosts {
			var ln net.Listener
			ln, err = net.Listen("tcp", net.JoinHostPort(h.Address, strconv.Itoa(try)))
			if err != nil {
				break
			}
			lns[h.Name] = ln
			if try == 0 {
				try = ln.Addr().(*net.TCPAddr).Port
			}
		}
		if err == nil {
			return lns, try, nil
		}
		closeListeners(lns)
		lastErr = err
		if port != 0 {
			break
		}
	}
	return nil, 0, fmt.Errorf("lab: binding the XAPI port: %w", lastErr)
}

func closeListeners(lns map[string]net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("lab: writing %s: %w", filepath.Base(path), err)
	}
	return os.Chmod(path, mode)
}

// Close stops everything and removes a temporary state directory.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		if l.control != nil {
			ctx, cancel := context.WithTimeout(context.Background(), controlShutdownPeriod)
			if err := l.control.Shutdown(ctx); err != nil {
				l.control.Close()
			}
			cancel()
		}
		if l.csHTTP != nil {
			l.csHTTP.Close()
		}
		for _, p := range l.pools {
			errs = append(errs, p.Close())
		}
		if l.cancel != nil {
			l.cancel()
		}
		l.wg.Wait()
		if l.tempDir {
			errs = append(errs, os.RemoveAll(l.stateDir))
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// Scenario returns the scenario the lab runs.
func (l *Lab) Scenario() *scenario.Scenario { return l.sc }

// XAPIPort returns the XAPI port shared by every host address.
func (l *Lab) XAPIPort() int { return l.port }

// StateDir returns the state directory.
func (l *Lab) StateDir() string { return l.stateDir }

// CAFile returns the path of the lab CA certificate ("" with plain HTTP).
func (l *Lab) CAFile() string {
	if l.http {
		return ""
	}
	return filepath.Join(l.stateDir, CAFileName)
}

// PasswordFile returns the path of the file holding root's password.
func (l *Lab) PasswordFile() string { return filepath.Join(l.stateDir, PasswordFileName) }

// ConfigFile returns the path of the ready xsha configuration for the lab.
func (l *Lab) ConfigFile() string { return filepath.Join(l.stateDir, ConfigFileName) }

// ControlURL returns the control API's base URL, "" when not served.
func (l *Lab) ControlURL() string { return l.ctlURL }

// CloudStackURL returns the CloudStack API URL, "" when not served.
func (l *Lab) CloudStackURL() string { return l.csURL }

// CloudStackKeyFiles returns the paths of the files holding the CloudStack
// API key and secret key.
func (l *Lab) CloudStackKeyFiles() (apiKeyFile, secretKeyFile string) {
	return filepath.Join(l.stateDir, APIKeyFileName), filepath.Join(l.stateDir, SecretKeyFileName)
}

// XAPIURL returns the XAPI URL of a host, e.g. https://127.0.1.1:8443/.
func (l *Lab) XAPIURL(host string) string {
	for _, p := range l.sc.Pools {
		if h, ok := p.Host(host); ok {
			scheme := "https"
			if l.http {
				scheme = "http"
			}
			return scheme + "://" + net.JoinHostPort(h.Address, strconv.Itoa(l.port)) + "/"
		}
	}
	return ""
}

// Pool returns a simulated pool by name, for tests that need more than the
// fault-injection operations.
func (l *Lab) Pool(name string) (*xapisim.Pool, bool) {
	p, ok := l.byName[name]
	return p, ok
}

func (l *Lab) poolOfHost(host string) (*xapisim.Pool, error) {
	for _, p := range l.pools {
		if p.HasHost(host) {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: host %q", xapisim.ErrNotFound, host)
}

// PowerOff cuts a host's power: its endpoint refuses connections.
func (l *Lab) PowerOff(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.PowerOff(host)
}

// PowerOn boots a host (boot time from the scenario), then it follows the
// HA rules.
func (l *Lab) PowerOn(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.PowerOn(host)
}

// Isolate cuts a host's management network: its endpoint accepts
// connections but never answers.
func (l *Lab) Isolate(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.Isolate(host)
}

// Reconnect undoes Isolate.
func (l *Lab) Reconnect(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.Reconnect(host)
}

// DisablePoolHA disables pool HA out of band, as an administrator would.
// It takes the scenario's disable_ha time.
func (l *Lab) DisablePoolHA(pool string) error {
	return l.disablePoolHA(context.Background(), pool)
}

func (l *Lab) disablePoolHA(ctx context.Context, pool string) error {
	p, ok := l.byName[pool]
	if !ok {
		return fmt.Errorf("%w: pool %q", xapisim.ErrNotFound, pool)
	}
	return p.DisablePoolHA(ctx)
}

// UnplugHeartbeatSR sets the host's PBD of the heartbeat SR
// currently_attached=false.
func (l *Lab) UnplugHeartbeatSR(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.SetHeartbeatPBD(host, false)
}

// PlugHeartbeatSR undoes UnplugHeartbeatSR.
func (l *Lab) PlugHeartbeatSR(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.SetHeartbeatPBD(host, true)
}

// UnplugRequiredPIF unplugs the host's storage PIF that has
// disallow_unplug set: pool.enable_ha then fails with
// REQUIRED_PIF_IS_UNPLUGGED.
func (l *Lab) UnplugRequiredPIF(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.SetRequiredPIF(host, false)
}

// PlugRequiredPIF undoes UnplugRequiredPIF.
func (l *Lab) PlugRequiredPIF(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.SetRequiredPIF(host, true)
}

// RestartXAPI restarts the host's xapi, as xe-toolstack-restart does.
func (l *Lab) RestartXAPI(host string) error {
	p, err := l.poolOfHost(host)
	if err != nil {
		return err
	}
	return p.RestartXAPI(host)
}

// SetVMHARestartPriority sets a VM's XenServer HA restart priority:
// "restart", "best-effort" or "".
func (l *Lab) SetVMHARestartPriority(vm, priority string) error {
	for _, p := range l.pools {
		if p.HasVM(vm) {
			return p.SetVMHARestartPriority(vm, priority)
		}
	}
	return fmt.Errorf("%w: VM %q", xapisim.ErrNotFound, vm)
}

// ErrNoCloudStack is returned by CloudStack operations when the lab does
// not serve the CloudStack API.
var ErrNoCloudStack = errors.New("lab: CloudStack is not running")

// SetAlertWait sets CloudStack's alert.wait; nil makes it blank (CloudStack
// then waits 1800 s).
func (l *Lab) SetAlertWait(seconds *int) error {
	if l.cs == nil {
		return ErrNoCloudStack
	}
	if seconds != nil && *seconds < 0 {
		return fmt.Errorf("%w: alert.wait %d is negative", xapisim.ErrConflict, *seconds)
	}
	l.cs.SetAlertWait(seconds)
	return nil
}

// State is the lab's state document (GET /v1/state).
type State struct {
	Pools []xapisim.PoolState `json:"pools"`
	// CloudStack is nil when the lab serves no CloudStack API.
	CloudStack *cloudstacksim.State `json:"cloudstack,omitempty"`
}

// State returns the current state document.
func (l *Lab) State() State {
	s := State{Pools: []xapisim.PoolState{}}
	for _, p := range l.pools {
		s.Pools = append(s.Pools, p.State())
	}
	if l.cs != nil {
		cs := l.cs.State()
		s.CloudStack = &cs
	}
	return s
}

// Stats are the lab's counters (GET /v1/stats).
type Stats struct {
	// Hosts has open sessions and calls per method for every host.
	Hosts []xapisim.HostStats `json:"hosts"`
	// Calls is calls per method summed over all hosts.
	Calls map[string]uint64 `json:"calls"`
}

// Stats returns the current counters.
func (l *Lab) Stats() Stats {
	s := Stats{Hosts: []xapisim.HostStats{}, Calls: map[string]uint64{}}
	for _, p := range l.pools {
		for _, h := range p.Stats() {
			s.Hosts = append(s.Hosts, h)
			for m, n := range h.Calls {
				s.Calls[m] += n
			}
		}
	}
	sort.SliceStable(s.Hosts, func(i, j int) bool { return s.Hosts[i].Name < s.Hosts[j].Name })
	return s
}

// infra is the XenServer side as the simulated CloudStack sees it.
type infra struct{ l *Lab }

func (i infra) Hosts() []cloudstacksim.HostView {
	var out []cloudstacksim.HostView
	for _, p := range i.l.pools {
		for _, h := range p.HostViews() {
			out = append(out, cloudstacksim.HostView{
				Name: h.Name, Cluster: p.Name(), Address: h.Address,
				PoweredOn: h.PoweredOn, Reachable: h.Reachable, Heartbeat: h.Heartbeat,
			})
		}
	}
	return out
}
