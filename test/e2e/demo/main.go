// Command demo runs xsha on the lab and prints what happens in the style of
// the seed's timeline: the lab's two pools start with pool HA off, as after
// XS62ESP1004; xsha enables it; both pool masters lose power; a new master is
// elected and CloudStack restarts the Offer-HA VMs; the old masters come back
// in emergency mode and xsha recovers them and re-enables pool HA. Nobody
// acts but the lab's fault injection. After the recovery an operator
// restarts the new master of cluster-a as planned maintenance with one
// request to the remediator's workflow API (what xshactl sends), and the
// demo prints its steps in the seed's step-list style. Ctrl-C ends it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"xsha/test/e2e"
)

const policy = `# The demo's remediation policy: every action on for both pools.
dry_run: false
actions:
  enable_pool_ha:       {alerts: [XenServerPoolHADisabled],   pools: [cluster-a, cluster-b]}
  clear_emergency_mode: {alerts: [XenServerHostEmergencyMode], pools: [cluster-a, cluster-b]}
  rejoin_host:          {alerts: [XenServerHostCannotRejoin],  pools: [cluster-a, cluster-b]}
  restart_master:       {pools: [cluster-a]}
cooldown: 10s
max_attempts_per_hour: 10
poll_interval: 250ms
`

func main() { os.Exit(run()) }

func run() int {
	scale := flag.Float64("time-scale", 0.1, "Lab speed: 0.1 runs ten times faster than real XenServer pools. Printed times are scaled back.")
	verbose := flag.Bool("v", false, "Also print every process's output.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := e2e.Options{TimeScale: *scale, RuleScale: *scale, Interval: time.Second, Policy: policy}
	if *verbose {
		opts.Log = os.Stderr
	}
	fmt.Println("Starting the lab, xsha-exporter, xsha-remediator, Prometheus and Alertmanager ...")
	s, err := e2e.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	defer s.Close()
	fmt.Printf(`
  lab control API   %s/v1/state
  xsha-exporter     %s/metrics
  xsha-remediator   %s/
  Prometheus        %s/alerts
  Alertmanager      %s/

Times are minutes:seconds as they would pass on real pools (the lab runs at %gx).

`, s.ControlURL, s.ExporterURL, s.RemediatorURL, s.PrometheusURL, s.AlertmanagerURL, 1 / *scale)

	tl := e2e.NewTimeline(s, os.Stdout, *scale)
	go tl.Watch(ctx)

	if err := story(ctx, s, tl); err != nil {
		if ctx.Err() != nil {
			fmt.Println("\nInterrupted.")
			return 0
		}
		fmt.Fprintln(os.Stderr, "demo:", err)
		fmt.Fprintln(os.Stderr, s.Logs())
		return 1
	}
	time.Sleep(time.Second) // let the timeline print the last changes
	fmt.Println("\nEvery pool healed without anyone acting. The stack keeps running: look at the URLs above. Ctrl-C ends it.")
	<-ctx.Done()
	fmt.Println("\nStopping.")
	return 0
}

// story drives the lab through the seed's test and waits for each outcome.
func story(ctx context.Context, s *e2e.Stack, tl *e2e.Timeline) error {
	tl.Printf("lab up: two XenServer 6.2 pools with XS62ESP1004, pool HA off")
	if err := wait(ctx, s, "pool HA enabled on both pools", func(st e2e.LabState) bool {
		return allPools(st, func(haEnabled bool, _ string) bool { return haEnabled })
	}); err != nil {
		return err
	}
	if err := waitActionsDone(ctx, s); err != nil {
		return err
	}
	st, err := s.State(ctx)
	if err != nil {
		return err
	}
	var masters []string
	dead := map[string]bool{}
	for _, p := range st.Pools {
		masters = append(masters, p.Master)
		dead[p.Master] = true
	}

	fmt.Println("\n--- The seed's test: pool masters fail ---")
	tl.Reset()
	tl.Printf("Start – pool master failure simulated by killing power to %s", strings.Join(masters, " and "))
	for _, h := range masters {
		if err := s.Control(ctx, "hosts/"+h+"/power-off", nil); err != nil {
			return err
		}
	}
	if err := wait(ctx, s, "new masters and every Offer-HA VM running on another host", func(st e2e.LabState) bool {
		newMasters := allPools(st, func(_ bool, master string) bool { return master != "" && !dead[master] })
		for _, vm := range st.CloudStack.VMs {
			if vm.HAEnable && (vm.State != "Running" || dead[vm.Host]) {
				return false
			}
		}
		return newMasters
	}); err != nil {
		return err
	}

	fmt.Println("\n--- Recovering from host failures: power comes back ---")
	tl.Printf("power restored to %s", strings.Join(masters, " and "))
	for _, h := range masters {
		if err := s.Control(ctx, "hosts/"+h+"/power-on", nil); err != nil {
			return err
		}
	}
	if err := wait(ctx, s, "old masters back as slaves and pool HA enabled", func(st e2e.LabState) bool {
		for _, p := range st.Pools {
			if !p.HAEnabled {
				return false
			}
			for _, h := range p.Hosts {
				if dead[h.Name] && (h.Role != "slave" || !h.Live) {
					return false
				}
			}
		}
		return true
	}); err != nil {
		return err
	}
	return plannedMasterRestart(ctx, s, tl)
}

// wait polls the lab's state until cond holds.
func wait(ctx context.Context, s *e2e.Stack, what string, cond func(e2e.LabState) bool) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	for {
		if st, err := s.State(ctx); err == nil && cond(st) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitActionsDone waits until the remediator has finished every action, so
// the next fault does not land in the middle of one.
func waitActionsDone(ctx context.Context, s *e2e.Stack) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	for {
		acts, err := s.Actions(ctx)
		open := err != nil
		for _, a := range acts {
			if a.State == "pending" || a.State == "running" {
				open = true
			}
		}
		if !open {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the remediator's actions to finish: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func allPools(st e2e.LabState, f func(haEnabled bool, master string) bool) bool {
	for _, p := range st.Pools {
		if !f(p.HAEnabled, p.Master) {
			return false
		}
	}
	return len(st.Pools) > 0
}

// plannedMasterRestart restarts cluster-a's master as planned maintenance
// through the remediator's workflow API and prints each step as the
// remediator journals it.
func plannedMasterRestart(ctx context.Context, s *e2e.Stack, tl *e2e.Timeline) error {
	if err := waitActionsDone(ctx, s); err != nil {
		return err
	}
	st, err := s.State(ctx)
	if err != nil {
		return err
	}
	master := ""
	for _, p := range st.Pools {
		if p.Name == "cluster-a" {
			master = p.Master
		}
	}
	token, err := os.ReadFile(s.TokenFile())
	if err != nil {
		return err
	}
	fmt.Printf("\n--- Planned maintenance: restart the master of cluster-a ---\n")
	fmt.Printf("The seed: 7 manual steps across CloudStack and XenCenter. xsha: one command,\n")
	fmt.Printf("  xshactl --url %s --token-file TOKEN start restart_master --pool cluster-a --host %s\n\n", s.RemediatorURL, master)
	tl.Reset()
	body, _ := json.Marshal(map[string]string{"workflow": "restart_master", "pool": "cluster-a", "host": master})
	var started struct {
		Workflow struct {
			ID uint64 `json:"id"`
		} `json:"workflow"`
	}
	if err := api(ctx, http.MethodPost, s.RemediatorURL+"/api/v1/workflows", strings.TrimSpace(string(token)), body, &started); err != nil {
		return err
	}
	tl.Printf("operator: restart_master of %s (workflow %d)", master, started.Workflow.ID)
	var seen uint64
	for {
		var out struct {
			Workflow struct {
				State     string `json:"state"`
				Reason    string `json:"reason"`
				NewMaster string `json:"new_master"`
			} `json:"workflow"`
			Journal []struct {
				Seq     uint64 `json:"seq"`
				Kind    string `json:"kind"`
				Message string `json:"message"`
			} `json:"journal"`
		}
		if err := api(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/workflows/%d", s.RemediatorURL, started.Workflow.ID), "", nil, &out); err != nil {
			return err
		}
		for _, e := range out.Journal {
			if e.Seq <= seen {
				continue
			}
			seen = e.Seq
			switch {
			case e.Kind == "call" && strings.Contains(e.Message, ": calling "):
				_, m, _ := strings.Cut(e.Message, ": calling ")
				tl.Printf("xsha: %s", m)
			case e.Kind == "step" && strings.HasSuffix(e.Message, " done: done"):
				tl.Printf("xsha: step %s done", strings.TrimSuffix(strings.TrimPrefix(e.Message, "step "), " done: done"))
			}
		}
		switch out.Workflow.State {
		case "success":
			tl.Printf("restart_master done: %s restarted, %s is the master, pool HA on, back in CloudStack", master, out.Workflow.NewMaster)
			return nil
		case "pending", "running":
		default:
			return fmt.Errorf("workflow %d %s: %s", started.Workflow.ID, out.Workflow.State, out.Workflow.Reason)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// api makes one request to the remediator and decodes its JSON answer.
func api(ctx context.Context, method, url, token string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
