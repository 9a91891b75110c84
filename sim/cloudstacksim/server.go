package cloudstacksim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Infra is the simulated XenServer side as CloudStack's agents see it.
type Infra interface {
	// Hosts returns the current view of every XenServer host.
	Hosts() []HostView
}

// HostView is one XenServer host as the CloudStack management server can
// observe it.
type HostView struct {
	// Name is the host's name_label, which CloudStack uses as host name.
	Name string
	// Cluster is the CloudStack cluster backed by the host's pool.
	Cluster string
	// Address is the host's management IP address.
	Address string
	// PoweredOn is false while the host has no power.
	PoweredOn bool
	// Reachable reports whether the management server can talk to the host:
	// the host's pool has a running master that CloudStack can reach and
	// that sees this host live (CloudStack's agent path to a XenServer host
	// goes through the pool master).
	Reachable bool
	// Heartbeat reports whether the host still writes its heartbeat file on
	// the pool's SRs (xenheartbeat.sh runs while the host is up).
	Heartbeat bool
}

// Offering is a compute (service) offering.
type Offering struct {
	// Name is the offering name, referenced by VM.Offering.
	Name string
	// OfferHA is the offering's "Offer HA" flag; VMs inherit it as haenable.
	OfferHA bool
	// CPUs, CPUSpeedMHz and MemoryMB size the offering.
	CPUs, CPUSpeedMHz, MemoryMB int
	// System marks a system offering (virtual routers, system VMs); system
	// offerings are listed only with issystem=true.
	System bool
}

// VM types, as CloudStack names them.
const (
	VMTypeUser               = "User"
	VMTypeDomainRouter       = "DomainRouter"
	VMTypeSecondaryStorageVM = "SecondaryStorageVm"
	VMTypeConsoleProxy       = "ConsoleProxy"
)

// VM is a virtual machine known to CloudStack.
type VM struct {
	// Name is the VM name; DisplayName defaults to it.
	Name, DisplayName string
	// InstanceName is the hypervisor-side name, e.g. i-2-101-VM; it
	// defaults to Name.
	InstanceName string
	// Offering names the VM's service offering; when empty the VM gets the
	// offering a fresh CloudStack installs for its type ("Small Instance"
	// without HA for user VMs, HA-enabled system offerings for the others).
	Offering string
	// Host is the host the VM runs on; empty for a stopped VM.
	Host string
	// Account owns the VM ("admin" when empty); Project, when set, makes it
	// a project VM.
	Account, Project string
	// Type is one of the VMType constants; VMTypeUser when empty. Only user
	// VMs are listed by listVirtualMachines. Secondary storage and console
	// proxy VMs also appear as hosts of their own type in listHosts.
	Type string
}

// StoragePool is a CloudStack primary storage pool.
type StoragePool struct {
	// Name is the storage pool name (for XenServer, the SR's name_label).
	Name string
	// Cluster is the cluster the pool is attached to.
	Cluster string
	// Type is the pool type, "NetworkFilesystem" when empty.
	Type string
	// Address and Path locate the storage, e.g. an NFS server and export.
	Address, Path string
	// SizeBytes is the pool's capacity.
	SizeBytes int64
}

// Options configure a Server. Durations are in simulated time.
type Options struct {
	// APIKey and SecretKey are the one administrator key pair.
	APIKey, SecretKey string
	// AlertWait is the alert.wait global setting in seconds; nil is blank
	// (CloudStack then waits 1800 s).
	AlertWait *int
	// Speedup is how many simulated seconds pass per real second; 0 means 1.
	Speedup float64
	// PingInterval is ping.interval (default 60 s); PingTimeout is
	// ping.interval × ping.timeout (default 150 s).
	PingInterval, PingTimeout time.Duration
	// HeartbeatTimeout is how old a host's SR heartbeat may be before a
	// neighbour declares it dead: 2 × xenserver.heartbeat.interval (120 s).
	HeartbeatTimeout time.Duration
	// VMStartTime is how long a VM takes to start (default 60 s);
	// MigrateTime how long a live migration takes (default 20 s);
	// ReconnectTime how long a host stays Connecting (default 10 s); JobTime
	// how long an asynchronous host job runs (default 1 s).
	VMStartTime, MigrateTime, ReconnectTime, JobTime time.Duration
	// MigrateRetryInterval is migrate.retry.interval, the wait before a
	// failed maintenance migration is tried again (default 120 s);
	// MigrateMaxRetries is max.retries, the attempts before it is given up
	// (default 5).
	MigrateRetryInterval time.Duration
	MigrateMaxRetries    int
	// RestartRetryInterval is restart.retry.interval, the wait before a
	// failed HA restart is tried again (default 600 s).
	RestartRetryInterval time.Duration
	// HAWorkers is ha.workers, how many HA work items (here: maintenance
	// migrations) run at once (default 5).
	HAWorkers int
	// Tick is the simulated interval between model steps (default 1 s).
	Tick time.Duration
	// Zone and Pod name the single zone and pod (default "zone1", "pod1").
	Zone, Pod string
	// Version is the management server version shown on hosts (default 4.3.2).
	Version string
	// HypervisorVersion is the XenServer version (default 6.2.0).
	HypervisorVersion string
	// Offerings, VMs and StoragePools describe the cloud's contents.
	Offerings    []Offering
	VMs          []VM
	StoragePools []StoragePool
	// Logger receives state changes; nil discards them.
	Logger *slog.Logger
}

// Defaults of the simulated CloudStack.
const (
	DefaultAlertWait        = 1800 * time.Second
	DefaultPingInterval     = 60 * time.Second
	DefaultPingTimeout      = 150 * time.Second
	DefaultHeartbeatTimeout = 120 * time.Second
	DefaultVMStartTime      = 60 * time.Second
	DefaultMigrateTime      = 20 * time.Second
	DefaultReconnectTime    = 10 * time.Second
	DefaultJobTime          = time.Second
	DefaultMigrateRetry     = 120 * time.Second
	DefaultRestartRetry     = 600 * time.Second
	DefaultMigrateRetries   = 5
	DefaultHAWorkers        = 5
	defaultTick             = time.Second
	minRealTick             = 5 * time.Millisecond
)

// Server is the simulated CloudStack management server.
type Server struct {
	infra  Infra
	opts   Options
	logger *slog.Logger
	now    func() time.Time

	mu        sync.Mutex
	alertWait *int
	nextSeq   int64
	zone      *zone
	clusters  []*cluster
	hosts     []*host
	offerings []*offering
	vms       []*vm
	pools     []*storagePool
	projects  []*project
	jobs      map[string]*job
	jobOrder  []*job
	configs   []*setting
	// nextMonitor is when the maintenance monitor runs next.
	nextMonitor time.Time
	// migrator is the Infra's Migrator, nil if it has none.
	migrator Migrator
	// starter is the Infra's Starter, nil if it has none.
	starter Starter
}

// New builds a Server over infra. It reads infra once to learn the hosts
// and clusters; call Run to keep following it.
func New(infra Infra, opts Options) (*Server, error) {
	return newServer(infra, opts, time.Now)
}

func newServer(infra Infra, opts Options, now func() time.Time) (*Server, error) {
	if infra == nil {
		return nil, errors.New("cloudstack: no infra")
	}
	if opts.APIKey == "" || opts.SecretKey == "" {
		return nil, errors.New("cloudstack: API key and secret key are required")
	}
	if opts.Speedup < 0 {
		return nil, fmt.Errorf("cloudstack: speedup %v is negative", opts.Speedup)
	}
	if opts.Speedup == 0 {
		opts.Speedup = 1
	}
	setDefault(&opts.PingInterval, DefaultPingInterval)
	setDefault(&opts.PingTimeout, DefaultPingTimeout)
	setDefault(&opts.HeartbeatTimeout, DefaultHeartbeatTimeout)
	setDefault(&opts.VMStartTime, DefaultVMStartTime)
	setDefault(&opts.MigrateTime, DefaultMigrateTime)
	setDefault(&opts.ReconnectTime, DefaultReconnectTime)
	setDefault(&opts.JobTime, DefaultJobTime)
	setDefault(&opts.MigrateRetryInterval, DefaultMigrateRetry)
	setDefault(&opts.RestartRetryInterval, DefaultRestartRetry)
	opts.MigrateMaxRetries = orInt(opts.MigrateMaxRetries, DefaultMigrateRetries)
	opts.HAWorkers = orInt(opts.HAWorkers, DefaultHAWorkers)
	setDefault(&opts.Tick, defaultTick)
	if opts.Zone == "" {
		opts.Zone = "zone1"
	}
	if opts.Pod == "" {
		opts.Pod = "pod1"
	}
	if opts.Version == "" {
		opts.Version = "4.3.2"
	}
	if opts.HypervisorVersion == "" {
		opts.HypervisorVersion = "6.2.0"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		infra:  infra,
		opts:   opts,
		logger: logger,
		now:    now,
		jobs:   map[string]*job{},
	}
	if opts.AlertWait != nil {
		v := *opts.AlertWait
		s.alertWait = &v
	}
	s.migrator, _ = infra.(Migrator)
	s.starter, _ = infra.(Starter)
	s.nextMonitor = now().Add(s.real(opts.PingInterval))
	if err := s.build(); err != nil {
		return nil, err
	}
	return s, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// real converts a simulated duration to wall-clock time.
func (s *Server) real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.opts.Speedup)
}

// Run steps the state model until ctx is done.
func (s *Server) Run(ctx context.Context) {
	tick := max(s.real(s.opts.Tick), minRealTick)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.step()
		}
	}
}

// SetAlertWait sets the alert.wait global setting; nil makes it blank.
func (s *Server) SetAlertWait(seconds *int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seconds == nil {
		s.alertWait = nil
	} else {
		v := *seconds
		s.alertWait = &v
	}
	s.logger.Info("alert.wait changed", "value", s.alertWaitString())
}

// alertWaitString is the stored alert.wait value, "" when blank.
func (s *Server) alertWaitString() string {
	if s.alertWait == nil {
		return ""
	}
	return strconv.Itoa(*s.alertWait)
}

// effectiveAlertWait is the simulated delay alert.wait stands for.
func (s *Server) effectiveAlertWait() time.Duration {
	if s.alertWait == nil {
		return DefaultAlertWait
	}
	return time.Duration(*s.alertWait) * time.Second
}

// ServeHTTP answers one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	params, err := requestParams(r)
	if err != nil {
		writeError(w, "errorresponse", &apiError{code: http.StatusUnauthorized, text: errUnauthorized})
		return
	}
	name := params.get("command")
	if name == "" {
		writeError(w, "errorresponse", &apiError{code: http.StatusBadRequest, text: "no command specified"})
		return
	}
	cmd, known := commands[name]
	if !known {
		writeError(w, "errorresponse", &apiError{code: http.StatusUnauthorized, text: errUnauthorized})
		return
	}
	key := strings.ToLower(name) + "response"
	if !verifySignature(params, s.opts.APIKey, s.opts.SecretKey, time.Now()) {
		writeError(w, key, &apiError{code: http.StatusUnauthorized, text: errUnauthorized})
		return
	}
	payload, aerr := s.run(cmd, newRequest(name, params))
	if aerr != nil {
		writeError(w, key, aerr)
		return
	}
	writeJSON(w, http.StatusOK, key, payload)
}

// run executes a command; a panic becomes CloudStack's 530 INTERNAL_ERROR.
func (s *Server) run(cmd command, req *request) (payload any, aerr *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("CloudStack command failed", "command", req.cmd, "err", fmt.Sprint(r))
			payload, aerr = nil, &apiError{code: codeInternalError, csCode: csCodeServerAPI, text: "Internal error executing command, please contact your system administrator"}
		}
	}()
	return cmd(s, req)
}

// values holds request parameters the way the servlet sees them: only the
// first value of a repeated name counts.
type values map[string]string

func (v values) get(name string) string { return v[name] }

// requestParams parses the query string and, for POST, the form body, as
// the servlet's parameter map has them: query values before body values.
// The simulated commands match parameter names case-insensitively, as
// CloudStack's parameter processing does.
func requestParams(r *http.Request) (values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("parsing query: %w", err)
	}
	out := values{}
	add := func(vs url.Values) {
		for k, v := range vs {
			if _, seen := out[k]; !seen && len(v) > 0 {
				out[k] = v[0]
			}
		}
	}
	add(q)
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("parsing form: %w", err)
		}
		add(r.PostForm)
	}
	return out, nil
}
