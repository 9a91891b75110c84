// Command xsha-exporter exposes the Pool HA state of XenServer pools (HA,
// heartbeat SR, master, hotfixes, emergency mode) as Prometheus metrics.
// It keeps one XAPI session per pool on its master and follows the pool
// with event.from, so a scrape only reads cached state.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"xsha/config"
	"xsha/exporter"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		configFile = kingpin.Flag("config.file", "xsha configuration file (pools, credentials files, TLS).").
				Default("xsha.yml").String()
		readyTimeout = kingpin.Flag("web.ready-timeout",
			"/-/ready answers 200 once every pool was read or failed its first connection attempt, or after this long.").
			Default("2m").Duration()
		checkConfig = kingpin.Flag("config.check",
			"Check the configuration file (decoding, validation, secret and CA files) and exit: 0 with one line when good, 1 saying what is wrong.").
			Bool()
		shardIndex = kingpin.Flag("pools.shard-index",
			"This exporter's shard: it watches the pools whose name Prometheus' hashmod (MD5 modulo --pools.shard-count) assigns to this index.").
			Default("0").Uint64()
		shardCount = kingpin.Flag("pools.shard-count",
			"Number of exporters sharing the configured pools; 1 watches them all.").
			Default("1").Uint64()
		webFlags = kingpinflag.AddFlags(kingpin.CommandLine, ":9681")
	)
	logConfig := &promslog.Config{}
	flag.AddFlags(kingpin.CommandLine, logConfig)
	kingpin.Version(version.Print("xsha-exporter"))
	kingpin.HelpFlag.Short('h')
	kingpin.Parse()
	if *checkConfig {
		return check(*configFile, os.Stdout, os.Stderr)
	}
	shard := exporter.Shard{Index: *shardIndex, Count: *shardCount}
	if err := shard.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "xsha-exporter:", err)
		return 2
	}
	logger := promslog.New(logConfig)
	logger.Info("starting xsha-exporter", "version", version.Info())
	logger.Info("build context", "build_context", version.BuildContext())

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("xsha_exporter"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := exporter.New(ctx, exporter.Options{
		ConfigFile:   *configFile,
		Registry:     reg,
		Logger:       logger,
		ReadyTimeout: *readyTimeout,
		CloudStack:   exporter.StartCloudStack,
		Shard:        shard,
	})
	if err := app.Start(); err != nil {
		logger.Error("cannot load the configuration", "file", *configFile, "err", err)
		return 1
	}
	defer app.Stop()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-hup:
				_ = app.Reload() // logs success or why the running config stays
			case <-ctx.Done():
				return
			}
		}
	}()

	handler, err := app.Handler()
	if err != nil {
		logger.Error("cannot build the HTTP handler", "err", err)
		return 1
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, webFlags, logger) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server failed", "err", err)
			return 1
		}
	case <-ctx.Done():
		logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return 0
}

// check loads the configuration at path as the exporter would at start,
// reading its secret and CA files, prints what is wrong to stderr or one
// line to stdout when it is good, and returns the exit code.
func check(path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: FAILED: %v\n", path, err)
		return 1
	}
	cs := "no cloudstack"
	if cfg.CloudStack != nil {
		cs = "with cloudstack"
	}
	pools := "pools"
	if len(cfg.Pools) == 1 {
		pools = "pool"
	}
	fmt.Fprintf(stdout, "%s: ok: %d %s, %s\n", path, len(cfg.Pools), pools, cs)
	return 0
}
