// Command xsha-remediator receives Alertmanager webhooks and, when the
// operator's policy allows it, repairs XenServer pool HA through XAPI:
// re-enables pool HA, recovers an old master left in HA emergency mode, and
// lets a returning slave rejoin. Dry-run is the default; every decision is
// journaled durably.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"xsha/remediator"
	"xsha/remediator/journal"
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
		etcdEndpoints = kingpin.Flag("journal.etcd.endpoints",
			"etcd client URLs (comma-separated or repeated): keep the journal in etcd, shared by every replica with the same prefix, instead of --journal.path.").Strings()
		etcdPrefix = kingpin.Flag("journal.etcd.prefix", "Key prefix of the shared journal in etcd.").
				Default(journal.DefaultEtcdPrefix).String()
		etcdCA = kingpin.Flag("journal.etcd.ca-file",
			"CA bundle that verifies the etcd members' certificates (https endpoints); the system's CAs when unset.").String()
		etcdCert = kingpin.Flag("journal.etcd.cert-file", "Client certificate for etcd's --client-cert-auth.").String()
		etcdKey  = kingpin.Flag("journal.etcd.key-file", "Key of --journal.etcd.cert-file.").String()
		etcdTTL  = kingpin.Flag("journal.etcd.lease-ttl",
			"TTL in seconds of this replica's etcd lease: how long after it died another replica takes its pools.").
			Default("10").Int()
		etcdAuth = kingpin.Flag("journal.etcd.auth-file",
			"File holding user:password for an etcd cluster with authentication enabled.").String()
		replica = kingpin.Flag("replica.name",
			"This replica's name in the actions it runs and on the status page; the host name when unset.").String()
		retention   = model.Duration(journal.DefaultRetention)
		configCheck = kingpin.Flag("config.check",
			"Check --config.file (parse, validate, read its secret files), print what is wrong and exit; 0 and \"ok\" when good.").Bool()
		policyCheck = kingpin.Flag("policy.check",
			"Check --policy.file, print what is wrong and exit; 0 and \"ok\" when good. With --config.check, also that its pools are configured.").Bool()
		webFlags = kingpinflag.AddFlags(kingpin.CommandLine, ":9682")
	)
	kingpin.Flag("journal.retention",
		"How long finished actions and their journal entries are kept; older ones are removed every 15 minutes (at least 1d).").
		Default("90d").SetValue(&retention)
	logConfig := &promslog.Config{}
	flag.AddFlags(kingpin.CommandLine, logConfig)
	kingpin.Version(version.Print("xsha-remediator"))
	kingpin.HelpFlag.Short('h')
	kingpin.Parse()
	if *configCheck || *policyCheck {
		return check(os.Stdout, os.Stderr, *configFile, *policyFile, *configCheck, *policyCheck)
	}
	logger := promslog.New(logConfig)
	logger.Info("starting xsha-remediator", "version", version.Info())
	logger.Info("build context", "build_context", version.BuildContext())

	auth, err := authenticator(*tokenFile, *basicFile, *noAuth, logger)
	if err != nil {
		logger.Error("webhook authentication", "err", err)
		return 1
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("xsha_remediator"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	var etcdOpts *journal.EtcdOptions
	if eps := splitList(*etcdEndpoints); len(eps) > 0 {
		etcdOpts = &journal.EtcdOptions{Endpoints: eps, Prefix: *etcdPrefix,
			CAFile: *etcdCA, CertFile: *etcdCert, KeyFile: *etcdKey, AuthFile: *etcdAuth, LeaseTTL: *etcdTTL}
		logger.Info("journal in etcd, shared by replicas", "endpoints", eps, "prefix", *etcdPrefix)
	}
	app, err := remediator.New(remediator.Options{
		Etcd: etcdOpts, Replica: *replica,
		ConfigFile: *configFile, PolicyFile: *policyFile, JournalPath: *journalPath,
		Retention: time.Duration(retention),
		Auth:      auth, MaxBodyBytes: int64(*maxBody), Registry: reg, Logger: logger, Web: webFlags,
	})
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	defer app.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				_ = app.ReloadPolicy() // logs success or why the running policy stays
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := app.Run(ctx); err != nil {
		logger.Error("stopped", "err", err)
		return 1
	}
	return 0
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

// splitList splits repeated and comma-separated flag values.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
