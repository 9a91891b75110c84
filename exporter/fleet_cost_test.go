package exporter

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"xsha/sim/lab"
	"xsha/sim/scenario"
)

// TestFleetCost measures what one xsha-exporter process costs when it
// watches a fleet of 200 pools of 16 hosts and 500 guests each on the lab
// at real time, with the default settings: start-up until ready, resident
// memory, goroutines, CPU and XAPI calls at steady state, scrape time and
// size, and freshness (a VM's HA priority changed in XAPI until
// xenserver_pool_vms_ha_protected shows it on /metrics) with 1 and 200
// pools, and again with 10 pools whose masters hang and 10 that refuse the
// exporter's login. It prints a table. It takes about ten minutes and runs
// only with XSHA_FLEET=1 (make bench).
func TestFleetCost(t *testing.T) {
	if os.Getenv("XSHA_FLEET") != "1" {
		t.Skip("XSHA_FLEET=1 runs the fleet measurement (make bench)")
	}
	const (
		pools        = 200
		hostsPerPool = 16
		steadyWindow = 2 * time.Minute
		changes      = 200
	)
	dir := t.TempDir()
	bin := filepath.Join(dir, "xsha-exporter")
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	if out, err := exec.Command(goCmd, "build", "-o", bin, "xsha/cmd/xsha-exporter").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	var rows [][2]string
	row := func(k, v string) {
		rows = append(rows, [2]string{k, v})
		t.Logf("%s: %s", k, v)
	}
	defer func() {
		var b strings.Builder
		fmt.Fprintf(&b, "\n| fleet: %d pools × %d hosts × 500 VMs, one exporter | result |\n|---|---|\n", pools, hostsPerPool)
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s |\n", r[0], r[1])
		}
		fmt.Print(b.String())
	}()

	start := time.Now()
	sc, err := scenario.Fleet(scenario.FleetOptions{Pools: pools, HostsPerPool: hostsPerPool, VMsPerPool: 500, TimeScale: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := lab.Start(ctx, lab.Options{Scenario: sc, StateDir: filepath.Join(dir, "lab")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	row("lab start-up (generate and serve the fleet)", time.Since(start).Round(100*time.Millisecond).String())

	wrongPassword := filepath.Join(dir, "wrong-password")
	if err := os.WriteFile(wrongPassword, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeConfig := func(path string, names []string, refuse map[string]bool) {
		var b strings.Builder
		b.WriteString("pools:\n")
		for _, name := range names {
			p, _ := sc.Pool(name)
			pw := l.PasswordFile()
			if refuse[name] {
				pw = wrongPassword
			}
			fmt.Fprintf(&b, "  - name: %s\n    hosts: [%s]\n    port: %d\n    tls: {ca_file: %s}\n    password_file: %s\n",
				name, p.Hosts[0].Address, l.XAPIPort(), l.CAFile(), pw)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	for _, p := range sc.Pools {
		all = append(all, p.Name)
	}

	// The fleet exporter.
	fleetCfg := filepath.Join(dir, "fleet.yml")
	writeConfig(fleetCfg, all, nil)
	start = time.Now()
	ex := startExporterProcess(t, bin, fleetCfg)
	waitLong(t, ex, "the exporter ready", func() bool { return ex.get("/-/ready") == http.StatusOK })
	row("exporter start-up until /-/ready", time.Since(start).Round(100*time.Millisecond).String())
	waitLong(t, ex, "every host's role", func() bool {
		v, _, _ := ex.scrape()
		n := 0
		for k, x := range v {
			if x == 1 && strings.HasPrefix(k, "xenserver_host_role{") && !strings.Contains(k, `role="unreachable"`) {
				n++
			}
		}
		return n == pools*hostsPerPool
	})
	row("exporter start-up until every host's role is on /metrics", time.Since(start).Round(100*time.Millisecond).String())

	// Steady state: Prometheus scraping every 15 s.
	time.Sleep(10 * time.Second)
	calls0, cpu0 := labTotalCalls(l), ex.cpu()
	end := time.Now().Add(steadyWindow)
	for time.Now().Before(end) {
		ex.scrape()
		time.Sleep(15 * time.Second)
	}
	calls1, cpu1 := labTotalCalls(l), ex.cpu()
	minutes := steadyWindow.Minutes()
	row("resident memory at steady state", fmt.Sprintf("%.0f MiB", float64(ex.rss())/(1<<20)))
	v, _, _ := ex.scrape()
	row("goroutines at steady state", fmt.Sprintf("%.0f", v["go_goroutines"]))
	row("CPU at steady state (15 s scrapes)", fmt.Sprintf("%.1f %% of one core", 100*(cpu1-cpu0).Seconds()/steadyWindow.Seconds()))
	row("XAPI calls per minute per pool at steady state", fmt.Sprintf("%.2f", float64(calls1-calls0)/pools/minutes))
	sessions, _ := poolCounts(l)
	leaked := 0
	for _, n := range sessions {
		leaked += int(n) - 1
	}
	row("sessions open on the masters beyond one per pool", strconv.Itoa(leaked))

	scrapes := func(n int) (p50, p99 time.Duration, size int) {
		var ds []time.Duration
		for range n {
			_, d, b := ex.scrape()
			ds = append(ds, d)
			size = b
		}
		slices.Sort(ds)
		return ds[len(ds)/2], ds[len(ds)*99/100], size
	}
	p50, p99, size := scrapes(200)
	row("scrape p50 / p99 (200 scrapes)", fmt.Sprintf("%s / %s", ms(p50), ms(p99)))
	row("scrape size", fmt.Sprintf("%d KiB, %d series", size>>10, countSeries(v)))

	fresh := func(e *exporterProcess, poolNames []string, firstVM int) (time.Duration, time.Duration) {
		var ds []time.Duration
		for i := range changes {
			name := poolNames[i%len(poolNames)]
			vm := fmt.Sprintf("i-%s-%d-VM", strings.TrimLeft(strings.TrimPrefix(name, "pool-"), "0"), firstVM+i/len(poolNames))
			series := `xenserver_pool_vms_ha_protected{pool="` + name + `"}`
			before, _, _ := e.scrape()
			if err := l.SetVMHARestartPriority(vm, "restart"); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			waitUntil(t, series+" to count "+vm, func() bool {
				after, _, _ := e.scrape()
				return after[series] == before[series]+1
			})
			ds = append(ds, time.Since(t0))
		}
		slices.Sort(ds)
		return ds[len(ds)/2], ds[len(ds)*99/100]
	}
	fp50, fp99 := fresh(ex, all, 1)
	row(fmt.Sprintf("freshness p50 / p99, 200 pools (%d VM HA priority changes)", changes), fmt.Sprintf("%s / %s", ms(fp50), ms(fp99)))

	// Faults: 10 masters cut off (they accept connections and never
	// answer), 10 pools refusing the exporter's password.
	refuse := map[string]bool{}
	for _, name := range all[180:190] {
		refuse[name] = true
	}
	writeConfig(fleetCfg, all, refuse)
	if err := ex.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for _, name := range all[190:] {
		p, _ := sc.Pool(name)
		if err := l.Isolate(p.Master); err != nil {
			t.Fatal(err)
		}
	}
	waitLong(t, ex, "the 20 faulty pools down", func() bool {
		v, _, _ := ex.scrape()
		for _, name := range all[180:] {
			if v[`xenserver_pool_up{pool="`+name+`"}`] != 0 {
				return false
			}
		}
		return true
	})
	p50, p99, _ = scrapes(200)
	row("scrape p50 / p99 with 10 masters hanging and 10 pools refusing logins", fmt.Sprintf("%s / %s", ms(p50), ms(p99)))
	fp50, fp99 = fresh(ex, all[:180], 3)
	row("freshness p50 / p99 of the other 180 pools meanwhile", fmt.Sprintf("%s / %s", ms(fp50), ms(fp99)))
	ex.stop()

	// One pool alone.
	oneCfg := filepath.Join(dir, "one.yml")
	writeConfig(oneCfg, all[:1], nil)
	one := startExporterProcess(t, bin, oneCfg)
	waitUntil(t, "the one-pool exporter ready", func() bool { return one.get("/-/ready") == http.StatusOK })
	fp50, fp99 = fresh(one, all[:1], 300)
	row(fmt.Sprintf("freshness p50 / p99, 1 pool (%d changes)", changes), fmt.Sprintf("%s / %s", ms(fp50), ms(fp99)))
	one.stop()
}

// waitLong polls cond for up to ten minutes, showing the exporter's logs
// if it never holds.
func waitLong(t testing.TB, e *exporterProcess, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; exporter logs:\n%s", what, e.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func countSeries(v map[string]float64) int { return len(v) }

// labTotalCalls is every XAPI call the lab served.
func labTotalCalls(l *lab.Lab) uint64 {
	var n uint64
	for _, c := range l.Stats().Calls {
		n += c
	}
	return n
}

// exporterProcess is an xsha-exporter running as its own process.
type exporterProcess struct {
	t    testing.TB
	cmd  *exec.Cmd
	base string
	hc   *http.Client
	out  *bytes.Buffer
}

func startExporterProcess(t testing.TB, bin, cfg string) *exporterProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	out := &bytes.Buffer{}
	cmd := exec.Command(bin, "--config.file", cfg, "--web.listen-address", addr, "--log.level", "warn")
	cmd.Stdout, cmd.Stderr = io.Discard, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &exporterProcess{t: t, cmd: cmd, base: "http://" + addr, hc: &http.Client{Timeout: 30 * time.Second}, out: out}
	t.Cleanup(e.stop)
	return e
}

func (e *exporterProcess) stop() {
	if e.cmd.ProcessState != nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	_ = e.cmd.Wait()
}

func (e *exporterProcess) get(path string) int {
	resp, err := e.hc.Get(e.base + path)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// scrape reads /metrics: the values by series, the time it took and its
// size.
func (e *exporterProcess) scrape() (map[string]float64, time.Duration, int) {
	start := time.Now()
	resp, err := e.hc.Get(e.base + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		e.t.Fatal(err)
	}
	v := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if x, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			v[line[:i]] = x
		}
	}
	return v, d, len(b)
}

// cpu is the user and system CPU time the process used so far.
func (e *exporterProcess) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", e.cmd.Process.Pid))
	if err != nil {
		e.t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	// utime and stime are fields 14 and 15 of stat, 12 and 13 after the
	// command name; in clock ticks of 1/100 s on Linux.
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// rss is the process's resident set size in bytes.
func (e *exporterProcess) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
	if err != nil {
		e.t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
