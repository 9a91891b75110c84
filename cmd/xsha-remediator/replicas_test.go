package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"xsha/sim/lab"
	"xsha/sim/scenario"
	"xsha/test/etcdcluster"
)

const replicaPolicy = `
dry_run: false
actions:
  enable_pool_ha: {alerts: [XenServerPoolHADisabled], pools: [cluster-a]}
  restart_slave:  {pools: [cluster-a]}
ha_timeout: 180s
poll_interval: 20ms
step_timeout: 60s
`

// replica is one xsha-remediator process on the shared journal.
type replica struct {
	name string
	url  string
	p    *proc
}

// replicaLab is a lab pool, a three-member etcd and three remediator
// processes sharing their journal in it.
type replicaLab struct {
	l        *lab.Lab
	etcd     *etcdcluster.Cluster
	replicas []*replica
	auth     string
}

func startReplicaLab(t *testing.T) *replicaLab {
	t.Helper()
	c := etcdcluster.Start(t, 3)
	sc := scenario.Default()
	sc.TimeScale = 0.01
	sc.Durations.HostReenable = scenario.Duration(200 * time.Second)
	sc.Pools = sc.Pools[:1]
	sc.Pools[0].ProductVersion = scenario.Version62
	sc.Pools[0].HAEnabled = true
	l, err := lab.Start(context.Background(), lab.Options{Scenario: sc, CloudStackListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	dir := t.TempDir()
	pf, tf := filepath.Join(dir, "policy.yml"), filepath.Join(dir, "token")
	for name, content := range map[string]string{pf: replicaPolicy, tf: "tok-replicas\n"} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rl := &replicaLab{l: l, etcd: c, auth: "Bearer tok-replicas"}
	for i := range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		r := &replica{name: fmt.Sprintf("r%d", i), url: "http://" + addr}
		r.p = start(t, "--config.file="+l.ConfigFile(), "--policy.file="+pf, "--webhook.bearer-token-file="+tf,
			"--journal.etcd.endpoints="+strings.Join(c.Endpoints(), ","), "--journal.etcd.prefix=/xsha-e2e",
			"--journal.etcd.lease-ttl=2", "--replica.name="+r.name, "--web.listen-address="+addr)
		t.Cleanup(func() {
			_ = r.p.cmd.Process.Signal(syscall.SIGKILL)
			r.p.wait()
			if t.Failed() {
				t.Logf("%s logs:\n%s", r.name, r.p.out.String())
			}
		})
		rl.replicas = append(rl.replicas, r)
	}
	for _, r := range rl.replicas {
		waitFor(t, r.name+" ready", func() bool {
			resp, err := httpGet(r.url + "/-/ready")
			return err == nil && resp == 200
		})
	}
	return rl
}

func httpGet(url string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// writes returns the XAPI writes the lab has served, by method.
func (rl *replicaLab) writes() map[string]uint64 {
	out := map[string]uint64{}
	for m, n := range rl.l.Stats().Calls {
		switch m {
		case "pool.enable_ha", "pool.disable_ha", "host.disable", "host.enable", "host.evacuate", "host.reboot",
			"host.shutdown", "pool.designate_new_master", "host.emergency_ha_disable":
			out[m] = n
		}
	}
	return out
}

func delta(before, after map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for m, n := range after {
		if d := n - before[m]; d > 0 {
			out[m] = d
		}
	}
	return out
}

func haDisabledWebhook(fp string) string {
	return fmt.Sprintf(`{"version":"4","groupKey":"{}:{alertname=\"XenServerPoolHADisabled\"}","status":"firing","receiver":"xsha",
"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"",
"alerts":[{"status":"firing","labels":{"alertname":"XenServerPoolHADisabled","pool":"cluster-a","severity":"critical"},
"annotations":{"summary":"pool HA off"},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z","fingerprint":%q}]}`,
		time.Now().UTC().Format(time.RFC3339), fp)
}

func actionIDsOf(body string) []uint64 {
	var out struct {
		Alerts []struct {
			ActionID uint64 `json:"action_id"`
		} `json:"alerts"`
	}
	_ = json.Unmarshal([]byte(body), &out)
	var ids []uint64
	for _, a := range out.Alerts {
		if a.ActionID != 0 {
			ids = append(ids, a.ActionID)
		}
	}
	return ids
}

// record reads an action or workflow from a replica's API.
func (r *replica) record(t *testing.T, kind string, id uint64) (map[string]any, string) {
	t.Helper()
	code, body := do(t, "GET", fmt.Sprintf("%s/api/v1/%s/%d", r.url, kind, id), "", "")
	if code != 200 {
		return nil, body
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	rec, _ := out[strings.TrimSuffix(kind, "s")].(map[string]any)
	return rec, body
}

// The test of the shared mode: three xsha-remediator processes on
// a real three-member etcd (Debian's) and the lab.
func TestReplicasOnEtcd(t *testing.T) {
	rl := startReplicaLab(t)
	r0 := rl.replicas[0]

	// One webhook sent to all three at once: one action, one write.
	if err := rl.l.DisablePoolHA("cluster-a"); err != nil {
		t.Fatal(err)
	}
	before := rl.writes()
	var wg sync.WaitGroup
	ids := make([][]uint64, 3)
	for i, r := range rl.replicas {
		wg.Go(func() {
			code, body := do(t, "POST", r.url+"/webhook", rl.auth, haDisabledWebhook("fp-1"))
			if code != 200 {
				t.Errorf("%s answered %d: %s", r.name, code, body)
			}
			ids[i] = actionIDsOf(body)
		})
	}
	wg.Wait()
	all := slices.Compact(slices.Sorted(slices.Values(slices.Concat(ids...))))
	if len(all) != 1 {
		t.Fatalf("action ids %v from the three replicas, want one action", ids)
	}
	waitFor(t, "the action to succeed", func() bool {
		rec, _ := rl.replicas[2].record(t, "actions", all[0])
		return rec != nil && rec["state"] == "success"
	})
	if d := delta(before, rl.writes()); !maps.Equal(d, map[string]uint64{"pool.enable_ha": 1}) {
		t.Errorf("XAPI writes %v, want pool.enable_ha once", d)
	}

	// A workflow; mid-way an etcd member dies, then the replica holding
	// the workflow is SIGKILLed: another finishes it, each write once.
	before = rl.writes()
	code, body := do(t, "POST", r0.url+"/api/v1/workflows", rl.auth, `{"workflow":"restart_slave","pool":"cluster-a","host":"xs-a2"}`)
	if code != 202 {
		t.Fatalf("starting the workflow: %d %s", code, body)
	}
	var started struct {
		Workflow struct {
			ID uint64 `json:"id"`
		} `json:"workflow"`
	}
	if err := json.Unmarshal([]byte(body), &started); err != nil {
		t.Fatal(err)
	}
	wid := started.Workflow.ID
	var holder string
	waitFor(t, "the workflow to wait for xs-a2", func() bool {
		rec, text := r0.record(t, "workflows", wid)
		holder, _ = rec["replica"].(string)
		return strings.Contains(text, "waiting for host xs-a2 to be live") && holder != ""
	})
	// Every replica's metrics say who runs it, read from the shared state.
	for _, r := range rl.replicas {
		want := fmt.Sprintf(`xsha_remediator_action_running{action="restart_slave",pool="cluster-a",replica=%q} 1`, holder)
		waitFor(t, r.name+" to report "+holder+" running the workflow", func() bool {
			_, metrics := do(t, "GET", r.url+"/metrics", "", "")
			return strings.Contains(metrics, want)
		})
	}
	rl.etcd.Kill(2)
	var survivor *replica
	for _, r := range rl.replicas {
		if r.name == holder {
			_ = r.p.cmd.Process.Signal(syscall.SIGKILL)
		} else if survivor == nil {
			survivor = r
		}
	}
	died := time.Now()
	var rec map[string]any
	deadline := time.Now().Add(60 * time.Second)
	for {
		var text string
		rec, text = survivor.record(t, "workflows", wid)
		if rec != nil && rec["state"] != "running" && rec["state"] != "pending" {
			if rec["state"] != "success" {
				t.Fatalf("workflow ended %v: %s", rec["state"], text)
			}
			if !strings.Contains(text, "taken over by replica") {
				t.Errorf("the journal does not say who took over:\n%s", text)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow never finished after %s died: %s", holder, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s SIGKILLed holding workflow %d; %v finished it %s later (lease TTL 2 s)", holder, wid, rec["replica"], time.Since(died).Round(10*time.Millisecond))
	if rec["replica"] == holder {
		t.Errorf("the workflow says %v ran it, the replica that was killed", rec["replica"])
	}
	want := map[string]uint64{"pool.disable_ha": 1, "host.disable": 1, "host.evacuate": 1, "host.reboot": 1, "pool.enable_ha": 1}
	if d := delta(before, rl.writes()); !maps.Equal(d, want) {
		t.Errorf("XAPI writes %v, want each once: %v", d, want)
	}

	// etcd loses its quorum: 503 saying why; back by itself after.
	rl.etcd.LoseQuorum()
	code, body = do(t, "POST", survivor.url+"/webhook", rl.auth, haDisabledWebhook("fp-2"))
	if code != 503 || !strings.Contains(body, "etcd unavailable") {
		t.Fatalf("webhook without quorum: %d %s, want 503 saying etcd is unavailable", code, body)
	}
	rl.etcd.RestoreQuorum()
	waitFor(t, "the webhook to be accepted again", func() bool {
		code, _ := do(t, "POST", survivor.url+"/webhook", rl.auth, haDisabledWebhook("fp-2"))
		return code == 200
	})
}
