// Package etcdcluster runs a real etcd cluster for tests: the etcd binary
// from PATH (Debian's etcd-server, installed by scripts/install-deps.sh),
// one process per member, on free loopback ports with data under the test's
// temporary directory. Tests kill, stop and restart members to see what the
// code under test does when a member dies or the cluster loses its quorum.
//
// Every method must be called from the goroutine running the test: a
// failure ends the test with t.Fatal.
package etcdcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// HealthTimeout bounds how long Start, Restart and RestoreQuorum wait for
// members to report healthy.
const HealthTimeout = 60 * time.Second

// stopGrace is how long Stop waits after SIGTERM before it kills a member.
const stopGrace = 10 * time.Second

// Cluster is a running etcd cluster of real etcd processes.
type Cluster struct {
	t       testing.TB
	bin     string
	members []*member
}

// member is one etcd process and what it needs to be started again.
type member struct {
	name      string
	dataDir   string
	clientURL string
	peerURL   string
	args      []string
	out       *lockedBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts an n-member cluster and waits until every member reports
// healthy. Every member is killed when the test ends, whether it passed or
// not, and on failure the tail of each member's log is written to the test
// log. When no etcd binary is in PATH the test is skipped, unless the
// environment variable CI is set (to anything but "false"): then it fails.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdcluster: a cluster needs at least one member, not %d", n)
	}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		const msg = "etcdcluster: no etcd binary in PATH (Debian's etcd-server; run scripts/install-deps.sh)"
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatalf("%s: %v", msg, err)
		}
		t.Skipf("%s: %v", msg, err)
	}
	dir := t.TempDir()
	c := &Cluster{t: t, bin: bin}
	// Registered after TempDir, so it runs before the data is removed.
	t.Cleanup(c.cleanup)

	addrs, err := freeAddrs(2 * n)
	if err != nil {
		t.Fatalf("etcdcluster: %v", err)
	}
	clientAddrs, peerAddrs := addrs[:n], addrs[n:]
	initial := make([]string, n)
	for i := range n {
		initial[i] = fmt.Sprintf("m%d=http://%s", i, peerAddrs[i])
	}
	token := fmt.Sprintf("etcdcluster-%d-%d", os.Getpid(), time.Now().UnixNano())
	for i := range n {
		m := &member{
			name:      fmt.Sprintf("m%d", i),
			dataDir:   filepath.Join(dir, fmt.Sprintf("m%d", i)),
			clientURL: "http://" + clientAddrs[i],
			peerURL:   "http://" + peerAddrs[i],
			out:       &lockedBuffer{},
		}
		// Once the data directory exists etcd ignores the initial-cluster
		// flags, so the same arguments serve a restart.
		m.args = []string{
			"--name", m.name,
			"--data-dir", m.dataDir,
			"--listen-client-urls", m.clientURL,
			"--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--logger", "zap",
			"--log-outputs", "stderr",
		}
		c.members = append(c.members, m)
	}
	for i := range c.members {
		c.launch(i)
	}
	c.waitHealthy(allIndexes(n)...)
	return c
}

// Endpoints returns the client URLs of every member, running or not, as
// clientv3.Config.Endpoints wants them.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.clientURL
	}
	return eps
}

// Endpoint returns the client URL of member i.
func (c *Cluster) Endpoint(i int) string {
	return c.member(i).clientURL
}

// Size returns the number of members.
func (c *Cluster) Size() int {
	return len(c.members)
}

// Quorum returns how many members must run for the cluster to serve.
func (c *Cluster) Quorum() int {
	return len(c.members)/2 + 1
}

// Running reports whether member i's process is running.
func (c *Cluster) Running(i int) bool {
	return c.member(i).running()
}

// Kill ends member i with SIGKILL, as a crash would, and waits until the
// process is gone. Killing a member that is not running does nothing.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	m := c.member(i)
	m.signal(syscall.SIGKILL)
	m.wait()
}

// Stop ends member i with SIGTERM, as an operator would, and waits until
// the process is gone; a member still running after a grace period is
// killed. Stopping a member that is not running does nothing.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	m := c.member(i)
	if !m.running() {
		return
	}
	m.signal(syscall.SIGTERM)
	select {
	case <-m.doneChan():
	case <-time.After(stopGrace):
		c.t.Logf("etcdcluster: %s still running %v after SIGTERM; killing it", m.name, stopGrace)
		m.signal(syscall.SIGKILL)
		m.wait()
	}
}

// Restart starts member i again on its data directory and ports and waits
// until it reports healthy, which needs a quorum of running members
// including it. A running member is stopped first.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Stop(i)
	c.launch(i)
	c.waitHealthy(i)
}

// LoseQuorum kills (SIGKILL) as many members as it takes for the running
// ones to be one short of a quorum, keeping the lowest-numbered ones
// running, so clients still reach a member that cannot serve. It returns
// the killed members' indexes for RestoreQuorum or Restart.
func (c *Cluster) LoseQuorum() []int {
	c.t.Helper()
	keep := c.Quorum() - 1
	var killed []int
	for i := range slices.Backward(c.members) {
		if !c.Running(i) {
			continue
		}
		if c.runningCount() <= keep {
			break
		}
		c.Kill(i)
		killed = append(killed, i)
	}
	return killed
}

// RestoreQuorum starts every member that is not running and waits until
// every member reports healthy.
func (c *Cluster) RestoreQuorum() {
	c.t.Helper()
	for i := range c.members {
		if !c.Running(i) {
			c.launch(i)
		}
	}
	c.waitHealthy(allIndexes(len(c.members))...)
}

// Healthy reports whether member i answers its /health endpoint with
// health "true", which etcd does only when the member has a leader and a
// quorum read through raft succeeds.
func (c *Cluster) Healthy(ctx context.Context, i int) error {
	return health(ctx, c.member(i).clientURL)
}

// Leader returns the index of the running member that leads the cluster,
// as the members themselves report it (etcd's Status call).
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return -1, fmt.Errorf("connecting to the cluster: %w", err)
	}
	defer cli.Close()
	var errs []error
	for i, m := range c.members {
		if !m.running() {
			continue
		}
		st, err := cli.Status(ctx, m.clientURL)
		if err != nil {
			errs = append(errs, fmt.Errorf("status of member %d: %w", i, err))
			continue
		}
		if st.Header.MemberId == st.Leader {
			return i, nil
		}
	}
	return -1, fmt.Errorf("no member leads the cluster: %w", errors.Join(errs...))
}

// member returns member i or fails the test.
func (c *Cluster) member(i int) *member {
	c.t.Helper()
	if i < 0 || i >= len(c.members) {
		c.t.Fatalf("etcdcluster: no member %d in a %d-member cluster", i, len(c.members))
	}
	return c.members[i]
}

// runningCount returns how many members are running.
func (c *Cluster) runningCount() int {
	n := 0
	for _, m := range c.members {
		if m.running() {
			n++
		}
	}
	return n
}

// launch starts member i's process without waiting for it to be healthy.
func (c *Cluster) launch(i int) {
	c.t.Helper()
	m := c.member(i)
	if m.running() {
		c.t.Fatalf("etcdcluster: %s is already running", m.name)
	}
	fmt.Fprintf(m.out, "--- etcdcluster: starting %s\n", m.name)
	cmd := exec.Command(c.bin, m.args...)
	cmd.Env = memberEnv()
	cmd.Stdout = m.out
	cmd.Stderr = m.out
	// Pdeathsig ends the member even when the test binary itself is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("etcdcluster: starting %s: %v", m.name, err)
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.done, m.err = cmd, done, nil
	m.mu.Unlock()
	go func() {
		err := cmd.Wait()
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		close(done)
	}()
}

// waitHealthy waits until the given members report healthy, failing the
// test with the members' logs when one exits or HealthTimeout passes.
func (c *Cluster) waitHealthy(idx ...int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), HealthTimeout)
	defer cancel()
	for _, i := range idx {
		m := c.member(i)
		for {
			err := health(ctx, m.clientURL)
			if err == nil {
				break
			}
			if !m.running() {
				c.t.Fatalf("etcdcluster: %s exited while waiting for it to be healthy: %v\n%s",
					m.name, m.exitErr(), tail(m.out.String(), 40))
			}
			select {
			case <-ctx.Done():
				c.t.Fatalf("etcdcluster: %s not healthy after %v: %v\n%s",
					m.name, HealthTimeout, err, c.logs(20))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// cleanup kills every member and, when the test failed, logs the tail of
// each member's output.
func (c *Cluster) cleanup() {
	for _, m := range c.members {
		m.signal(syscall.SIGKILL)
		m.wait()
	}
	if c.t.Failed() {
		c.t.Logf("etcdcluster: member logs\n%s", c.logs(30))
	}
}

// logs returns the last n lines of every member's output.
func (c *Cluster) logs(n int) string {
	var b strings.Builder
	for _, m := range c.members {
		fmt.Fprintf(&b, "=== %s (%s)\n%s\n", m.name, m.clientURL, tail(m.out.String(), n))
	}
	return b.String()
}

// running reports whether the member's process has started and not exited.
func (m *member) running() bool {
	done := m.doneChan()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// doneChan returns the channel closed when the current process exits, or
// nil before the first start.
func (m *member) doneChan() chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done
}

// exitErr returns how the last process ended.
func (m *member) exitErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// signal sends sig to the member's process group if it is running.
func (m *member) signal(sig syscall.Signal) {
	if !m.running() {
		return
	}
	m.mu.Lock()
	pid := m.cmd.Process.Pid
	m.mu.Unlock()
	syscall.Kill(-pid, sig) //nolint:errcheck // it may have just exited
}

// wait waits until the member's process, if any, has exited.
func (m *member) wait() {
	if done := m.doneChan(); done != nil {
		<-done
	}
}

// health asks the member at clientURL for its /health.
func health(ctx context.Context, clientURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
	if err != nil {
		return fmt.Errorf("building health request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("asking %s for health: %w", clientURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("reading health of %s: %w", clientURL, err)
	}
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("decoding health of %s (%s): %w", clientURL, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || h.Health != "true" {
		return fmt.Errorf("%s: %w: %s %s", clientURL, errUnhealthy, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// errUnhealthy is wrapped by health when a member answers but is not
// healthy.
var errUnhealthy = errors.New("member not healthy")

// freeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago. All are held open until every one is chosen.
func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// memberEnv returns the test's environment without ETCD_* variables, which
// etcd would read as flags.
func memberEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

// allIndexes returns 0..n-1.
func allIndexes(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of a
// child's stdout and stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
