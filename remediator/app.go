package remediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"xsha/cloudstack"
	"xsha/config"
	"xsha/remediator/journal"
	"xsha/xapi"
)

// sharedPollInterval is how often a replica's pool runners look for open
// actions in a shared journal: another replica's intake does not wake
// them, and a dead replica's action is found this way.
const sharedPollInterval = 2 * time.Second

// Options configure an App: everything xsha-remediator's flags say.
type Options struct {
	// ConfigFile is the shared xsha configuration file; its pools are the
	// ones acted on.
	ConfigFile string
	// PolicyFile is the remediation policy, read at New and by ReloadPolicy.
	PolicyFile string
	// JournalPath is the journal file, created if missing.
	JournalPath string
	// Replica names this remediator in the actions it runs; the host name
	// when empty.
	Replica string
	// Etcd, when set, keeps the journal in etcd instead of JournalPath,
	// shared by every replica with the same endpoints and prefix.
	Etcd *journal.EtcdOptions
	// Retention is how long finished actions and their journal entries are
	// kept; journal.DefaultRetention when zero, at least a day.
	Retention time.Duration
	// Auth authenticates the webhook and the hold API; required (use
	// NoAuth to turn authentication off explicitly).
	Auth Authenticator
	// MaxBodyBytes caps webhook bodies; 1 MiB when zero.
	MaxBodyBytes int64
	// Registry receives the metrics and is served at /metrics; a new one
	// when nil.
	Registry *prometheus.Registry
	// Logger receives the logs; nil discards them.
	Logger *slog.Logger
	// Web is where and how HTTP is served (listen addresses, web config
	// file); ignored for the addresses when Listeners is set.
	Web *web.FlagConfig
	// Listeners, when set, are served instead of Web's listen addresses.
	Listeners []net.Listener
	// NewClient returns the XAPI client of a pool; xapi.NewClient when nil.
	NewClient func(p config.Pool, logger *slog.Logger, m *xapi.Metrics) PoolClient
}

// App is the whole xsha-remediator without its flags and signals: the
// configuration, the policy, the journal, the pool runners and the HTTP
// endpoints.
type App struct {
	opts    Options
	log     *slog.Logger
	cfg     *config.Config
	journal journal.Journal
	engine  *engine
	closers []func(context.Context)

	reloadMu sync.Mutex
}

// New loads the configuration and the policy, opens the journal and sets
// up one XAPI client per pool (and the CloudStack client when the
// configuration has a cloudstack block). Nothing runs until Run.
func New(opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.NewClient == nil {
		opts.NewClient = func(p config.Pool, logger *slog.Logger, m *xapi.Metrics) PoolClient {
			return xapi.NewClient(p, xapi.ClientOptions{Logger: logger, Metrics: m})
		}
	}
	switch {
	case opts.Retention == 0:
		opts.Retention = journal.DefaultRetention
	case opts.Retention < minRetention:
		return nil, fmt.Errorf("journal retention %s: must be at least %s", opts.Retention, minRetention)
	}
	a := &App{opts: opts, log: opts.Logger}
	store := config.NewStore(opts.ConfigFile, opts.Registry)
	if err := store.Reload(); err != nil {
		return nil, fmt.Errorf("loading the configuration %s: %w", opts.ConfigFile, err)
	}
	a.cfg = store.Get()
	pol, err := loadPolicy(opts.PolicyFile, a.cfg)
	if err != nil {
		return nil, err
	}
	if opts.Auth == nil {
		return nil, errors.New("no webhook authentication (use NoAuth to turn it off)")
	}
	var maintenance maintenanceSource
	var csHosts cloudStackHosts // nil without CloudStack, not a nil pointer
	if a.cfg.CloudStack != nil {
		poller, err := cloudstack.NewPoller(*a.cfg.CloudStack, opts.Logger)
		if err != nil {
			return nil, fmt.Errorf("setting up the CloudStack client: %w", err)
		}
		maintenance = newCloudStackMaintenance(poller)
		hosts, err := cloudstack.NewHostMaintenance(*a.cfg.CloudStack)
		if err != nil {
			return nil, fmt.Errorf("setting up the CloudStack client: %w", err)
		}
		csHosts = hosts
	}
	replica := opts.Replica
	if replica == "" {
		if replica, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("naming the replica: %w", err)
		}
	}
	var (
		locker poolLocker
		poll   time.Duration
	)
	if opts.Etcd != nil {
		ej, err := journal.OpenEtcd(*opts.Etcd)
		if err != nil {
			return nil, err
		}
		a.journal, locker, poll = ej, ej, sharedPollInterval
	} else if a.journal, err = journal.OpenBolt(opts.JournalPath); err != nil {
		return nil, err
	}
	xm := xapi.NewMetrics(opts.Registry)
	clients := map[string]PoolClient{}
	for _, p := range a.cfg.Pools {
		c := opts.NewClient(p, opts.Logger, xm)
		clients[p.Name] = c
		if cl, ok := c.(interface{ Close(context.Context) error }); ok {
			a.closers = append(a.closers, func(ctx context.Context) { _ = cl.Close(ctx) })
		}
	}
	a.engine, err = newEngine(engineOptions{
		Config: a.cfg, Policy: pol, Journal: a.journal, Clients: clients,
		Maintenance: maintenance, CloudStack: csHosts, Auth: opts.Auth, MaxBodyBytes: opts.MaxBodyBytes,
		Registerer: opts.Registry, Logger: opts.Logger, Retention: opts.Retention,
		Replica: replica, Locker: locker, PollInterval: poll,
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	opts.Logger.Info("policy loaded", "file", opts.PolicyFile, "dry_run", pol.DryRun, "actions", len(pol.Actions))
	return a, nil
}

// loadPolicy reads the policy file and checks that every pool it names is
// configured.
func loadPolicy(path string, cfg *config.Config) (*Policy, error) {
	p, err := LoadPolicy(path)
	if err == nil {
		err = p.CheckPools(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	return p, nil
}

// ReloadPolicy reads the policy file again. A bad file keeps the running
// policy and returns why; actions already queued are gated by the new
// policy when they start.
func (a *App) ReloadPolicy() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	p, err := loadPolicy(a.opts.PolicyFile, a.cfg)
	if err != nil {
		a.log.Error("policy reload failed; the running policy stays", "err", err)
		return err
	}
	a.engine.SetPolicy(p)
	return nil
}

// Handler serves the webhook, the API, the status page, /metrics,
// /-/healthy and /-/ready.
func (a *App) Handler() http.Handler {
	m := a.engine.router()
	m.Handle("/metrics", promhttp.HandlerFor(a.opts.Registry, promhttp.HandlerOpts{Registry: a.opts.Registry}))
	return m
}

// Run serves HTTP and runs the pool runners until ctx is cancelled or the
// HTTP server fails. A running action is interrupted at shutdown and
// resumes at the next start.
func (a *App) Run(ctx context.Context) error {
	if a.opts.Listeners == nil && (a.opts.Web == nil || a.opts.Web.WebListenAddresses == nil) {
		return errors.New("nothing to listen on: set Options.Web or Options.Listeners")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		a.engine.Run(ctx)
	}()
	flags := a.opts.Web
	if flags == nil {
		none := ""
		flags = &web.FlagConfig{WebConfigFile: &none}
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() {
		if a.opts.Listeners != nil {
			errc <- web.ServeMultiple(a.opts.Listeners, srv, flags, a.log)
			return
		}
		errc <- web.ListenAndServe(srv, flags, a.log)
	}()
	var err error
	select {
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else {
			err = fmt.Errorf("HTTP server: %w", err)
		}
	case <-ctx.Done():
	}
	a.log.Info("shutting down; a running action resumes at the next start")
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	<-runDone
	return err
}

// Close logs the XAPI sessions out and closes the journal.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range a.closers {
		c(ctx)
	}
	return a.journal.Close()
}
