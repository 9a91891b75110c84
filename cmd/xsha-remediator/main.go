// Command xsha-remediator receives Alertmanager webhooks and, when the
// operator's policy allows it, repairs XenServer pool HA through XAPI:
// re-enables pool HA, recovers an old master left in HA emergency mode, and
// lets a returning slave rejoin. Dry-run is the default; every decision is
// journaled durably.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"xsha/cloudstack"
	"xsha/config"
	"xsha/remediator"
	"xsha/xapi"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		configFile = kingpin.Flag("config.file", "xsha configuration file (the same as xsha-exporter's).").
				Default("xsha.yml").String()
		policyFile = kingpin.Flag("policy.file", "Remediation policy file. Nothing is enabled and dry-run is on unless it says otherwise.").
				Default("policy.yml").String()
		tokenFile = kingpin.Flag("webhook.bearer-token-file",
			"File holding the bearer token Alertmanager sends (its authorization.credentials_file).").String()
		basicFile = kingpin.Flag("webhook.basic-auth-file",
			"File holding user:password Alertmanager sends as basic auth.").String()
		noAuth = kingpin.Flag("webhook.no-auth",
			"Accept webhooks and hold changes without authentication (test beds only).").Bool()
		maxBody = kingpin.Flag("webhook.max-body-size", "Largest webhook body accepted.").
			Default("1MiB").Bytes()
		journalPath = kingpin.Flag("journal.path", "Journal file, created if missing.").
				Default("xsha-remediator.db").String()
		webFlags = kingpinflag.AddFlags(kingpin.CommandLine, ":9682")
	)
	logConfig := &promslog.Config{}
	flag.AddFlags(kingpin.CommandLine, logConfig)
	kingpin.Version(version.Print("xsha-remediator"))
	kingpin.HelpFlag.Short('h')
	kingpin.Parse()
	logger := promslog.New(logConfig)
	logger.Info("starting xsha-remediator", "version", version.Info())

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("xsha_remediator"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	store := config.NewStore(*configFile, reg)
	if err := store.Reload(); err != nil {
		logger.Error("cannot load the configuration", "file", *configFile, "err", err)
		return 1
	}
	cfg := store.Get()
	pol, err := loadPolicy(*policyFile, cfg)
	if err != nil {
		logger.Error("cannot load the policy", "err", err)
		return 1
	}
	auth, err := authenticator(*tokenFile, *basicFile, *noAuth, logger)
	if err != nil {
		logger.Error("webhook authentication", "err", err)
		return 1
	}
	journal, err := remediator.OpenJournal(*journalPath)
	if err != nil {
		logger.Error("cannot open the journal", "err", err)
		return 1
	}
	defer journal.Close()

	clients, closeClients := xapiClients(cfg, reg, logger)
	defer closeClients()
	var maintenance remediator.MaintenanceSource
	if cfg.CloudStack != nil {
		poller, err := cloudstack.NewPoller(*cfg.CloudStack, logger)
		if err != nil {
			logger.Error("cannot set up the CloudStack client", "err", err)
			return 1
		}
		maintenance = remediator.NewCloudStackMaintenance(poller)
	}
	rem, err := remediator.New(remediator.Options{
		Config: cfg, Policy: pol, Journal: journal, Clients: clients,
		Maintenance: maintenance, Auth: auth, MaxBodyBytes: int64(*maxBody),
		Registerer: reg, Logger: logger,
	})
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	logger.Info("policy loaded", "dry_run", pol.DryRun, "actions", len(pol.Actions))
	return serve(rem, reg, webFlags, logger, func() (*remediator.Policy, error) { return loadPolicy(*policyFile, cfg) })
}

// xapiClients returns one XAPI client per configured pool and a function
// that logs them all out.
func xapiClients(cfg *config.Config, reg prometheus.Registerer, logger *slog.Logger) (map[string]remediator.PoolClient, func()) {
	xm := xapi.NewMetrics(reg)
	clients := map[string]remediator.PoolClient{}
	var xcs []*xapi.Client
	for _, p := range cfg.Pools {
		c := xapi.NewClient(p, xapi.ClientOptions{Logger: logger, Metrics: xm})
		clients[p.Name], xcs = c, append(xcs, c)
	}
	return clients, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, c := range xcs {
			_ = c.Close(ctx)
		}
	}
}

// serve runs the pool runners and the HTTP server until SIGINT or SIGTERM,
// reloading the policy on SIGHUP, and returns the exit code. A running
// action is interrupted at shutdown and resumes at the next start.
func serve(rem *remediator.Remediator, reg *prometheus.Registry, webFlags *web.FlagConfig, logger *slog.Logger,
	reload func() (*remediator.Policy, error)) int {
	router := mux.NewRouter()
	router.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	router.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Healthy.") })
	router.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !rem.Ready() {
			http.Error(w, "Not ready.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready.")
	})
	rem.Register(router)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		rem.Run(ctx)
	}()

	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, webFlags, logger) }()
	code := 0
loop:
	for {
		select {
		case <-hup:
			p, err := reload()
			if err != nil {
				logger.Error("policy reload failed; the running policy stays", "err", err)
				continue
			}
			rem.SetPolicy(p)
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				logger.Error("HTTP server failed", "err", err)
				code = 1
			}
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	logger.Info("shutting down; a running action resumes at the next start")
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-runDone
	return code
}

// loadPolicy reads the policy file and checks that every pool it names is
// configured.
func loadPolicy(path string, cfg *config.Config) (*remediator.Policy, error) {
	p, err := remediator.LoadPolicy(path)
	if err == nil {
		err = p.CheckPools(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	return p, nil
}

// authenticator builds webhook authentication from the flags: a bearer
// token, basic auth, or both; none only when turned off explicitly.
func authenticator(tokenFile, basicFile string, noAuth bool, logger *slog.Logger) (remediator.Authenticator, error) {
	var auths remediator.AnyAuth
	if tokenFile != "" {
		a, err := remediator.ReadBearerTokenFile(tokenFile)
		if err != nil {
			return nil, err
		}
		auths = append(auths, a)
	}
	if basicFile != "" {
		a, err := remediator.ReadBasicAuthFile(basicFile)
		if err != nil {
			return nil, err
		}
		auths = append(auths, a)
	}
	switch {
	case len(auths) > 0 && noAuth:
		return nil, errors.New("--webhook.no-auth contradicts the credential files given")
	case len(auths) > 0:
		return auths, nil
	case noAuth:
		logger.Warn("webhook authentication is OFF: anyone who reaches the port can trigger actions")
		return remediator.NoAuth{}, nil
	}
	return nil, errors.New("set --webhook.bearer-token-file or --webhook.basic-auth-file (or --webhook.no-auth on a test bed)")
}
