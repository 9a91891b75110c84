package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"xsha/sim/scenario"
)

// Options configure a Stack.
type Options struct {
	// Root is the repository root; found from the working directory when empty.
	Root string
	// BinDir holds xsha-sim, xsha-exporter and xsha-remediator; <Root>/bin
	// when empty (`make build` puts them there).
	BinDir string
	// Scenario is the lab's scenario; scenario.Default() when nil.
	Scenario *scenario.Scenario
	// TimeScale runs the lab faster than real time (0.1 = ten times faster).
	TimeScale float64
	// RuleScale shrinks every duration in the alerting rules ("for" and
	// range windows) by this factor, to match the scaled lab.
	RuleScale float64
	// Interval is the Prometheus scrape and rule evaluation interval, and the
	// exporter's probe interval.
	Interval time.Duration
	// Policy is the remediator's policy file content.
	Policy string
	// Log receives every process's output as it comes; nil keeps it only
	// for failure reports.
	Log io.Writer
}

// Stack is the lab, xsha-exporter, xsha-remediator, Prometheus and
// Alertmanager, each a process of its own, wired as an operator would.
type Stack struct {
	opts Options
	dir  string

	sim, exporter, remediator, prometheus, alertmanager *proc

	// URLs of the running services.
	ControlURL, ExporterURL, RemediatorURL, PrometheusURL, AlertmanagerURL string

	tokenFile, xshaConfig, policyFile, journal string
	remediatorAddr                             string
}

// Start starts every process and waits until each answers.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Root == "" {
		root, err := findRoot()
		if err != nil {
			return nil, err
		}
		o.Root = root
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Join(o.Root, "bin")
	}
	if o.Scenario == nil {
		o.Scenario = scenario.Default()
	}
	if o.TimeScale == 0 {
		o.TimeScale = 1
	}
	if o.RuleScale == 0 {
		o.RuleScale = 1
	}
	if o.Interval == 0 {
		o.Interval = 15 * time.Second
	}
	dir, err := os.MkdirTemp("", "xsha-e2e-")
	if err != nil {
		return nil, err
	}
	s := &Stack{opts: o, dir: dir}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Stack) start(ctx context.Context) error {
	o := s.opts
	bin := func(name string) string { return filepath.Join(o.BinDir, name) }
	for _, name := range []string{"xsha-sim", "xsha-exporter", "xsha-remediator"} {
		if _, err := os.Stat(bin(name)); err != nil {
			return fmt.Errorf("%w (run `make build` first)", err)
		}
	}
	promBin, err := lookPath("prometheus")
	if err != nil {
		return err
	}
	amBin, err := lookPath("prometheus-alertmanager", "alertmanager")
	if err != nil {
		return err
	}

	// The lab.
	o.Scenario.TimeScale = o.TimeScale
	sc, err := yaml.Marshal(o.Scenario)
	if err != nil {
		return fmt.Errorf("writing the scenario: %w", err)
	}
	labDir := filepath.Join(s.dir, "lab")
	scenarioFile := filepath.Join(s.dir, "scenario.yml")
	if err := writeFile(scenarioFile, string(sc)); err != nil {
		return err
	}
	ctl, err := freeAddr()
	if err != nil {
		return err
	}
	cs, err := freeAddr()
	if err != nil {
		return err
	}
	s.sim, err = startProc("xsha-sim", s.dir, o.Log, bin("xsha-sim"),
		"--scenario="+scenarioFile, "--state-dir="+labDir, "--xapi-port=0",
		"--control-listen="+ctl, "--cloudstack-listen="+cs)
	if err != nil {
		return err
	}
	s.ControlURL = "http://" + ctl
	if err := waitHTTP(ctx, s.ControlURL+"/v1/state", s.sim); err != nil {
		return err
	}

	// xsha's configuration: the lab's own, with intervals to match.
	if err := s.writeXSHAConfig(filepath.Join(labDir, "xsha.yml")); err != nil {
		return err
	}

	// Exporter.
	exp, err := freeAddr()
	if err != nil {
		return err
	}
	s.exporter, err = startProc("xsha-exporter", s.dir, o.Log, bin("xsha-exporter"),
		"--config.file="+s.xshaConfig, "--web.listen-address="+exp)
	if err != nil {
		return err
	}
	s.ExporterURL = "http://" + exp
	if err := waitHTTP(ctx, s.ExporterURL+"/-/healthy", s.exporter); err != nil {
		return err
	}

	// Remediator, with a fresh webhook token shared with Alertmanager.
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	s.tokenFile = filepath.Join(s.dir, "webhook-token")
	if err := writeFile(s.tokenFile, hex.EncodeToString(token)); err != nil {
		return err
	}
	s.policyFile = filepath.Join(s.dir, "policy.yml")
	s.journal = filepath.Join(s.dir, "journal.db")
	if s.remediatorAddr, err = freeAddr(); err != nil {
		return err
	}
	s.RemediatorURL = "http://" + s.remediatorAddr
	if err := s.StartRemediator(ctx, o.Policy); err != nil {
		return err
	}

	// Alertmanager routes the remediable alerts to the remediator.
	am, err := freeAddr()
	if err != nil {
		return err
	}
	amDir := filepath.Join(s.dir, "alertmanager")
	if err := os.MkdirAll(amDir, 0o700); err != nil {
		return err
	}
	amConfig := filepath.Join(amDir, "alertmanager.yml")
	if err := writeFile(amConfig, alertmanagerConfig(s.RemediatorURL+"/webhook", s.tokenFile, o.Interval)); err != nil {
		return err
	}
	s.alertmanager, err = startProc("alertmanager", amDir, o.Log, amBin,
		"--config.file="+amConfig, "--storage.path="+filepath.Join(amDir, "data"),
		"--web.listen-address="+am, "--cluster.listen-address=")
	if err != nil {
		return err
	}
	s.AlertmanagerURL = "http://" + am
	if err := waitHTTP(ctx, s.AlertmanagerURL+"/-/ready", s.alertmanager); err != nil {
		return err
	}

	// Prometheus with xsha's rules, scaled like the lab.
	prom, err := freeAddr()
	if err != nil {
		return err
	}
	promDir := filepath.Join(s.dir, "prometheus")
	if err := os.MkdirAll(promDir, 0o700); err != nil {
		return err
	}
	rules, err := os.ReadFile(filepath.Join(o.Root, "rules", "xsha-alerts.yml"))
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(promDir, "rules.yml"), ScaleRuleDurations(string(rules), o.RuleScale)); err != nil {
		return err
	}
	promConfig := filepath.Join(promDir, "prometheus.yml")
	if err := writeFile(promConfig, prometheusConfig(o.Interval, exp, s.remediatorAddr, am)); err != nil {
		return err
	}
	s.prometheus, err = startProc("prometheus", promDir, o.Log, promBin,
		"--config.file="+promConfig, "--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address="+prom)
	if err != nil {
		return err
	}
	s.PrometheusURL = "http://" + prom
	return waitHTTP(ctx, s.PrometheusURL+"/-/ready", s.prometheus)
}

// StartRemediator (re)starts xsha-remediator with policy on the same
// address and journal.
func (s *Stack) StartRemediator(ctx context.Context, policy string) error {
	s.remediator.stop(10 * time.Second)
	if err := writeFile(s.policyFile, policy); err != nil {
		return err
	}
	var err error
	s.remediator, err = startProc("xsha-remediator", s.dir, s.opts.Log, filepath.Join(s.opts.BinDir, "xsha-remediator"),
		"--config.file="+s.xshaConfig, "--policy.file="+s.policyFile,
		"--webhook.bearer-token-file="+s.tokenFile, "--journal.path="+s.journal,
		"--web.listen-address="+s.remediatorAddr)
	if err != nil {
		return err
	}
	return waitHTTP(ctx, s.RemediatorURL+"/-/healthy", s.remediator)
}

// KillRemediator ends the remediator at once, as a crash would.
func (s *Stack) KillRemediator() { s.remediator.kill() }

// writeXSHAConfig copies the lab's xsha.yml with the stack's intervals.
func (s *Stack) writeXSHAConfig(labConfig string) error {
	b, err := os.ReadFile(labConfig)
	if err != nil {
		return err
	}
	var c map[string]any
	if err := yaml.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("reading the lab's xsha.yml: %w", err)
	}
	pools, _ := c["pools"].([]any)
	for _, p := range pools {
		if m, ok := p.(map[string]any); ok {
			m["probe_interval"] = s.opts.Interval.String()
			m["event_timeout"] = "10s"
			m["call_timeout"] = "5s"
		}
	}
	if cs, ok := c["cloudstack"].(map[string]any); ok {
		cs["interval"] = s.opts.Interval.String()
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	s.xshaConfig = filepath.Join(s.dir, "xsha.yml")
	return writeFile(s.xshaConfig, string(out))
}

// TokenFile is the file with the bearer token the remediator's webhook
// and workflow API accept.
func (s *Stack) TokenFile() string { return s.tokenFile }

// Close stops every process and removes the stack's directory.
func (s *Stack) Close() {
	for _, p := range []*proc{s.prometheus, s.alertmanager, s.remediator, s.exporter, s.sim} {
		p.stop(10 * time.Second)
	}
	os.RemoveAll(s.dir)
}

// Logs returns the last lines of every process's output.
func (s *Stack) Logs() string {
	var b strings.Builder
	for _, p := range []*proc{s.sim, s.exporter, s.remediator, s.alertmanager, s.prometheus} {
		if p == nil {
			continue
		}
		fmt.Fprintf(&b, "==== %s\n%s\n", p.name, tail(p.out.String(), 60))
	}
	return b.String()
}

// findRoot walks up from the working directory to the directory with go.mod.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

var ruleDuration = regexp.MustCompile(`(for: |\[)(\d+)([smh])\b`)

// ScaleRuleDurations multiplies every `for:` duration and range window in a
// rules file by scale, never going below one second.
func ScaleRuleDurations(rules string, scale float64) string {
	if scale == 1 {
		return rules
	}
	return ruleDuration.ReplaceAllStringFunc(rules, func(m string) string {
		sub := ruleDuration.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[sub[3]]
		d := max(time.Duration(float64(time.Duration(n)*unit)*scale).Round(time.Second), time.Second)
		return sub[1] + strconv.Itoa(int(d/time.Second)) + "s"
	})
}

func prometheusConfig(interval time.Duration, exporter, remediator, alertmanager string) string {
	return fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: [%[4]q]}]
scrape_configs:
  - job_name: xsha-exporter
    static_configs: [{targets: [%[2]q]}]
  - job_name: xsha-remediator
    static_configs: [{targets: [%[3]q]}]
`, interval, exporter, remediator, alertmanager)
}

// alertmanagerConfig routes the remediable alerts to the remediator. It
// repeats a notification every 30s: a skipped alert (its pool on hold) is
// only acted on when Alertmanager sends it again after the hold is lifted,
// which deploy/'s configuration does hourly.
func alertmanagerConfig(webhook, tokenFile string, interval time.Duration) string {
	return fmt.Sprintf(`route:
  receiver: default
  group_by: [alertname, pool, host]
  group_wait: %[3]s
  group_interval: %[4]s
  repeat_interval: 30s
  routes:
    - receiver: xsha-remediator
      matchers: ['alertname=~"XenServerPoolHADisabled|XenServerHostEmergencyMode|XenServerHostCannotRejoin"']
receivers:
  - name: default
  - name: xsha-remediator
    webhook_configs:
      - url: %[1]q
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: %[2]q
`, webhook, tokenFile, interval, 2*interval)
}

// getJSON GETs url and decodes its JSON body into v.
func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// postJSON POSTs body (JSON, or nothing when nil) to url and checks for 2xx.
func postJSON(ctx context.Context, u string, body any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("POST %s: %s: %s", u, resp.Status, b)
	}
	return nil
}

// Control sends a fault-injection request to the lab, e.g.
// Control(ctx, "hosts/xs-a1/power-off", nil).
func (s *Stack) Control(ctx context.Context, path string, body any) error {
	return postJSON(ctx, s.ControlURL+"/v1/"+path, body)
}

// LabState is the part of the lab's state document the tests read.
type LabState struct {
	Pools []struct {
		Name      string `json:"name"`
		Master    string `json:"master"`
		HAEnabled bool   `json:"ha_enabled"`
		Hosts     []struct {
			Name    string `json:"name"`
			Power   string `json:"power"`
			Role    string `json:"role"`
			Live    bool   `json:"live"`
			Enabled bool   `json:"enabled"`
		} `json:"hosts"`
	} `json:"pools"`
	CloudStack struct {
		Hosts []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"hosts"`
		VMs []struct {
			Name     string `json:"name"`
			State    string `json:"state"`
			Host     string `json:"host"`
			HAEnable bool   `json:"haenable"`
		} `json:"vms"`
	} `json:"cloudstack"`
}

// State reads the lab's state.
func (s *Stack) State(ctx context.Context) (LabState, error) {
	var st LabState
	err := getJSON(ctx, s.ControlURL+"/v1/state", &st)
	return st, err
}

// Sample is one element of an instant-query result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query against Prometheus.
func (s *Stack) Query(ctx context.Context, expr string) ([]Sample, error) {
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(ctx, s.PrometheusURL+"/api/v1/query?query="+url.QueryEscape(expr), &r); err != nil {
		return nil, err
	}
	out := make([]Sample, 0, len(r.Data.Result))
	for _, e := range r.Data.Result {
		str, _ := e.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", expr, e.Value[1], err)
		}
		out = append(out, Sample{Metric: e.Metric, Value: v})
	}
	return out, nil
}

// FiringAlerts returns the labels of the alerts Prometheus has firing.
func (s *Stack) FiringAlerts(ctx context.Context) ([]map[string]string, error) {
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := getJSON(ctx, s.PrometheusURL+"/api/v1/alerts", &r); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, a := range r.Data.Alerts {
		if a.State == "firing" {
			out = append(out, a.Labels)
		}
	}
	return out, nil
}

// Action is the part of a remediator action the tests read.
type Action struct {
	ID     uint64 `json:"id"`
	Action string `json:"action"`
	Pool   string `json:"pool"`
	Host   string `json:"host"`
	State  string `json:"state"`
	DryRun bool   `json:"dry_run"`
	Reason string `json:"reason"`
	Wrote  bool   `json:"wrote"`
	Steps  []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"steps"`
}

// Actions lists the remediator's actions, newest first.
func (s *Stack) Actions(ctx context.Context) ([]Action, error) {
	var r struct {
		Actions []Action `json:"actions"`
	}
	err := getJSON(ctx, s.RemediatorURL+"/api/v1/actions", &r)
	return r.Actions, err
}

// LabStats is the part of the lab's call counters (GET /v1/stats) the
// tests read.
type LabStats struct {
	Hosts []struct {
		Name  string            `json:"name"`
		Calls map[string]uint64 `json:"calls"`
	} `json:"hosts"`
}

// Calls returns how many times host was called with method.
func (st LabStats) Calls(host, method string) uint64 {
	for _, h := range st.Hosts {
		if h.Name == host {
			return h.Calls[method]
		}
	}
	return 0
}

// Stats reads the lab's call counters.
func (s *Stack) Stats(ctx context.Context) (LabStats, error) {
	var st LabStats
	err := getJSON(ctx, s.ControlURL+"/v1/stats", &st)
	return st, err
}
