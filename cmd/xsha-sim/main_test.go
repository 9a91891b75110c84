package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeRunsTheLabUntilCancelled(t *testing.T) {
	dir := t.TempDir()
	scenarioFile := filepath.Join(dir, "scenario.yml")
	// One small 7.1 pool with pool HA on, to check the file is used.
	if err := os.WriteFile(scenarioFile, []byte(`
time_scale: 0.01
pools:
  - name: lab
    product_version: "7.1.0"
    ha_enabled: true
    hotfixes: [XS71E001]
    hosts:
      - {name: lab1, address: 127.0.3.1}
      - {name: lab2, address: 127.0.3.2}
    srs:
      - {name: MGMT-HA, type: nfs, shared: true, size_bytes: 1073741824}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- serve(ctx, []string{"--scenario", scenarioFile, "--state-dir", state, "--xapi-port", "0",
			"--control-listen", "127.0.0.1:0", "--cloudstack-listen", "", "--xapi-http", "--returning-host", "self_rejoin"}, &logs)
	}()
	var inf info
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(state, infoFile))
		if err == nil && json.Unmarshal(b, &inf) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lab.json; logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if inf.CloudStackURL != "" || inf.CAFile != "" || inf.XAPIPort == 0 {
		t.Errorf("lab.json: %+v", inf)
	}
	resp, err := http.Get(inf.ControlURL + "/v1/state")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Pools []struct {
			Name           string `json:"name"`
			ProductVersion string `json:"product_version"`
			HAEnabled      bool   `json:"ha_enabled"`
			ReturningHost  string `json:"returning_host"`
		} `json:"pools"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Pools) != 1 || st.Pools[0].Name != "lab" || st.Pools[0].ProductVersion != "7.1.0" || !st.Pools[0].HAEnabled ||
		st.Pools[0].ReturningHost != "self_rejoin" {
		t.Errorf("state %+v", st)
	}
	cfg, err := os.ReadFile(filepath.Join(state, "xsha.yml"))
	if err != nil || !strings.Contains(string(cfg), "127.0.3.1") || !strings.Contains(string(cfg), "scheme: http") {
		t.Errorf("xsha.yml: %v\n%s", err, cfg)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d; logs:\n%s", code, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("xsha-sim did not stop")
	}
}

func TestServeRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("pools:\n  - name: x\n    hosts: [{name: h, address: 10.0.0.1}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		log  string
	}{
		{[]string{"--scenario", bad, "--state-dir", dir}, 1, "not an IPv4 loopback address"},
		{[]string{"--scenario", filepath.Join(dir, "missing.yml")}, 1, "cannot load the scenario"},
		{[]string{"--no-such-flag"}, 2, "unknown long flag"},
		{[]string{"--time-scale=-1"}, 1, "must not be negative"},
		{[]string{"--returning-host", "sometimes"}, 2, "enum value must be one of"},
	} {
		var logs syncBuffer
		if code := serve(context.Background(), tc.args, &logs); code != tc.code || !strings.Contains(logs.String(), tc.log) {
			t.Errorf("%v: exit %d, want %d; logs:\n%s", tc.args, code, tc.code, logs.String())
		}
	}
}
