// Command xsha-sim runs the xsha lab: simulated XenServer pools speaking
// XAPI on loopback addresses (127.0.1.x, 127.0.2.x, ...), a simulated
// CloudStack API and a JSON control API for fault injection.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"

	"xsha/sim/lab"
	"xsha/sim/scenario"
)

// infoFile is written to the state directory once the lab serves, for
// scripts and end-to-end tests that need its addresses.
const infoFile = "lab.json"

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, os.Args[1:], os.Stderr)
}

// info is the content of lab.json.
type info struct {
	ControlURL    string `json:"control_url"`
	CloudStackURL string `json:"cloudstack_url"`
	XAPIPort      int    `json:"xapi_port"`
	CAFile        string `json:"ca_file"`
	PasswordFile  string `json:"password_file"`
	APIKeyFile    string `json:"cloudstack_api_key_file"`
	SecretKeyFile string `json:"cloudstack_secret_key_file"`
	ConfigFile    string `json:"config_file"`
}

// serve runs xsha-sim with args until ctx is done and returns the exit code.
func serve(ctx context.Context, args []string, stderr io.Writer) int {
	app := kingpin.New("xsha-sim", "Simulated XenServer pools and CloudStack API with fault injection, for xsha's tests and demo.")
	var (
		scenarioFile = app.Flag("scenario", "Scenario file (YAML); the built-in default scenario when empty.").String()
		controlAddr  = app.Flag("control-listen", "Address of the JSON control API; empty disables it.").
				Default("127.0.0.1:8100").String()
		csAddr = app.Flag("cloudstack-listen", "Address of the simulated CloudStack API; empty disables it.").
			Default("127.0.0.1:8080").String()
		stateDir = app.Flag("state-dir", "Directory for ca.pem, the secret files, xsha.yml and lab.json.").
				Default("xsha-lab").String()
		xapiPort  = app.Flag("xapi-port", "XAPI port of every simulated host; 0 picks a free one.").Default("8443").Int()
		xapiHTTP  = app.Flag("xapi-http", "Serve XAPI over plain HTTP instead of HTTPS.").Bool()
		timeScale = app.Flag("time-scale", "Override the scenario's time_scale (0.1 runs ten times faster).").Float64()
		returning = app.Flag("returning-host", "Override every pool's returning_host: stuck (as the seed saw it) or self_rejoin (as xen-api's code reads).").
				Enum(string(scenario.ReturningHostStuck), string(scenario.ReturningHostSelfRejoin))
	)
	logConfig := &promslog.Config{Writer: stderr}
	flag.AddFlags(app, logConfig)
	app.Version(version.Print("xsha-sim"))
	app.HelpFlag.Short('h')
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "xsha-sim: %v\n", err)
		return 2
	}
	logger := promslog.New(logConfig)

	sc := scenario.Default()
	if *scenarioFile != "" {
		var err error
		sc, err = scenario.Load(*scenarioFile)
		if err != nil {
			logger.Error("cannot load the scenario", "file", *scenarioFile, "err", err)
			return 1
		}
	}
	if *timeScale < 0 {
		logger.Error("--time-scale must not be negative")
		return 1
	}
	if *timeScale > 0 {
		sc.TimeScale = *timeScale
	}
	if *returning != "" {
		for i := range sc.Pools {
			sc.Pools[i].ReturningHost = scenario.ReturningHost(*returning)
		}
	}
	logger.Info("starting xsha-sim", "version", version.Info(), "pools", len(sc.Pools), "time_scale", sc.TimeScale)

	l, err := lab.Start(ctx, lab.Options{
		Scenario:         sc,
		StateDir:         *stateDir,
		XAPIPort:         *xapiPort,
		XAPIHTTP:         *xapiHTTP,
		ControlListen:    *controlAddr,
		CloudStackListen: *csAddr,
		Logger:           logger,
	})
	if err != nil {
		logger.Error("cannot start the lab", "err", err)
		return 1
	}
	defer l.Close()
	apiKey, secretKey := l.CloudStackKeyFiles()
	b, err := json.MarshalIndent(info{
		ControlURL: l.ControlURL(), CloudStackURL: l.CloudStackURL(), XAPIPort: l.XAPIPort(),
		CAFile: l.CAFile(), PasswordFile: l.PasswordFile(), APIKeyFile: apiKey, SecretKeyFile: secretKey,
		ConfigFile: l.ConfigFile(),
	}, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(l.StateDir(), infoFile), append(b, '\n'), 0o644)
	}
	if err != nil {
		logger.Error("cannot write lab.json", "err", err)
		return 1
	}
	logger.Info("lab ready", "control", l.ControlURL(), "cloudstack", l.CloudStackURL(),
		"xapi_port", l.XAPIPort(), "config", l.ConfigFile())
	<-ctx.Done()
	logger.Info("stopping xsha-sim")
	if err := l.Close(); err != nil {
		logger.Error("stopping the lab", "err", err)
		return 1
	}
	return 0
}
