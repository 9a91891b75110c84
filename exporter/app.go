package exporter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"xsha/config"
	"xsha/xapi"
)

// CloudStackFactory starts polling the CloudStack API that cfg describes
// for the given pools and returns the collector of its metrics and a
// function that stops the polling.
type CloudStackFactory func(ctx context.Context, cfg config.CloudStack, pools []config.Pool, logger *slog.Logger) (prometheus.Collector, func(), error)

// Options configure an App.
type Options struct {
	// ConfigFile is the configuration file, read at Start and on Reload.
	ConfigFile string
	// Registry receives the exporter's collectors; it is served at /metrics.
	Registry *prometheus.Registry
	// Logger receives the logs; nil discards them.
	Logger *slog.Logger
	// ReadyTimeout bounds how long /-/ready waits for every pool's first
	// connection attempt.
	ReadyTimeout time.Duration
	// CloudStack, when set, is used while the configuration has a cloudstack
	// block.
	CloudStack CloudStackFactory
	// Shard selects the configured pools this exporter watches (and reports
	// to CloudStack's collector); the zero Shard takes them all.
	Shard Shard
}

// App is the exporter process without its flags and listener: the
// configuration store, the pool watchers, the collectors and the HTTP
// endpoints.
type App struct {
	opts    Options
	log     *slog.Logger
	store   *config.Store
	metrics *xapi.Metrics
	pools   *poolWatchers
	started time.Time

	reloadMu  sync.Mutex // serialises reloads from SIGHUP and HTTP
	cs        *cloudStackRun
	readyOnce sync.Once
	isReady   chan struct{}
}

type cloudStackRun struct {
	cfg       config.CloudStack
	pools     []config.Pool
	collector prometheus.Collector
	stop      func()
}

// New registers the exporter's collectors with opts.Registry and returns
// the App; Start loads the configuration.
func New(ctx context.Context, opts Options) *App {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	a := &App{
		opts:    opts,
		log:     opts.Logger,
		store:   config.NewStore(opts.ConfigFile, opts.Registry),
		metrics: xapi.NewMetrics(opts.Registry),
		started: time.Now(),
		isReady: make(chan struct{}),
	}
	a.pools = newPoolWatchers(ctx, opts.Logger, a.metrics)
	opts.Registry.MustRegister(newXenServerCollector(a.pools))
	return a
}

// Start loads the configuration and starts the watchers; an invalid file is
// an error.
func (a *App) Start() error { return a.Reload() }

// Reload reads the configuration file again. A bad file keeps the running
// configuration and returns why; a good one starts, stops and restarts
// watchers for the pools added, removed and changed.
func (a *App) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if err := a.store.Reload(); err != nil {
		a.log.Error("failed to reload config, keeping the running one", "file", a.opts.ConfigFile, "err", err)
		return err
	}
	all := a.store.Get()
	cfg := a.opts.Shard.filter(all)
	a.pools.Apply(cfg)
	a.applyCloudStack(cfg)
	a.log.Info("loaded config", "file", a.opts.ConfigFile, "pools", len(all.Pools), "shard", a.opts.Shard.String(), "watched", len(cfg.Pools))
	return nil
}

func (a *App) applyCloudStack(cfg *config.Config) {
	if a.opts.CloudStack == nil {
		return
	}
	if a.cs != nil {
		if cfg.CloudStack != nil && reflect.DeepEqual(*cfg.CloudStack, a.cs.cfg) && reflect.DeepEqual(cfg.Pools, a.cs.pools) {
			return
		}
		a.opts.Registry.Unregister(a.cs.collector)
		a.cs.stop()
		a.cs = nil
	}
	if cfg.CloudStack == nil {
		return
	}
	c, stop, err := a.opts.CloudStack(a.pools.ctx, *cfg.CloudStack, cfg.Pools, a.log)
	if err != nil {
		a.log.Error("cannot start the CloudStack poller", "err", err)
		return
	}
	if err := a.opts.Registry.Register(c); err != nil {
		stop()
		a.log.Error("cannot register the CloudStack collector", "err", err)
		return
	}
	a.cs = &cloudStackRun{cfg: *cfg.CloudStack, pools: cfg.Pools, collector: c, stop: stop}
}

// Stop stops the watchers (logging their sessions out) and the CloudStack
// poller.
func (a *App) Stop() {
	a.reloadMu.Lock()
	if a.cs != nil {
		a.cs.stop()
		a.cs = nil
	}
	a.reloadMu.Unlock()
	a.pools.Stop()
}

// ready reports whether the exporter has something to say about every pool:
// each pool was read once or its first connection attempt failed (then
// xenserver_pool_up 0 is the answer), or ReadyTimeout has passed since the
// start. Once ready it stays ready. The second result names the pools still
// awaited.
func (a *App) ready() (bool, []string) {
	select {
	case <-a.isReady:
		return true, nil
	default:
	}
	waiting := a.pools.Waiting()
	if a.store.Get() != nil && (len(waiting) == 0 || (a.opts.ReadyTimeout > 0 && time.Since(a.started) >= a.opts.ReadyTimeout)) {
		a.readyOnce.Do(func() { close(a.isReady) })
		return true, nil
	}
	return false, waiting
}

// Handler serves the landing page, /metrics, /-/healthy, /-/ready and
// /-/reload. The health endpoints answer as the remediator's do: 200
// "Healthy\n", 200 "Ready\n" or 503 "Not ready: <reason>\n".
func (a *App) Handler() (http.Handler, error) {
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "xsha exporter",
		Description: "XenServer Pool HA, master, heartbeat SR, hotfix and emergency-mode metrics, and the CloudStack settings and host states that go with them",
		Version:     version.Info(),
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics"},
			{Address: "/-/healthy", Text: "Health"},
			{Address: "/-/ready", Text: "Readiness"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("landing page: %w", err)
	}
	r := mux.NewRouter()
	r.Handle("/metrics", promhttp.InstrumentMetricHandler(a.opts.Registry,
		promhttp.HandlerFor(a.opts.Registry, promhttp.HandlerOpts{Registry: a.opts.Registry})))
	r.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "Healthy\n")
	})
	r.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if ok, waiting := a.ready(); !ok {
			http.Error(w, "Not ready: waiting for the first read of pools "+strings.Join(waiting, ", "), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "Ready\n")
	})
	r.HandleFunc("/-/reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := a.Reload(); err != nil {
			http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "Reloaded\n")
	}).Methods(http.MethodPost)
	r.HandleFunc("/-/reload", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
	})
	r.Handle("/", landing)
	return r, nil
}
