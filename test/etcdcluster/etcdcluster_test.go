package etcdcluster_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"xsha/test/etcdcluster"
)

// newClient returns a client of endpoints that is closed when the test ends.
func newClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("connecting to %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// put writes key=val with a deadline of d.
func put(cli *clientv3.Client, d time.Duration, key, val string) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := cli.Put(ctx, key, val)
	return err
}

// get reads key linearizably with a deadline of d.
func get(cli *clientv3.Client, d time.Duration, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) != 1 {
		return "", fmt.Errorf("%d values for %s", len(resp.Kvs), key)
	}
	return string(resp.Kvs[0].Value), nil
}

// putSoon writes key=val, retrying for up to 30 s as a client that must
// get its write through does: a proposal a follower forwarded to a leader
// that just died is lost, and the server answers only when its request
// timeout (about 7 s) has passed.
func putSoon(t *testing.T, cli *clientv3.Client, key, val string) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := put(cli, 5*time.Second, key, val)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		t.Logf("Put %s, retrying: %v", key, err)
	}
}

func TestStartServesOnEveryMember(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	if got := len(c.Endpoints()); got != 3 {
		t.Fatalf("Endpoints() has %d URLs, want 3", got)
	}
	if err := put(newClient(t, c.Endpoint(0)), 5*time.Second, "k", "v"); err != nil {
		t.Fatalf("Put through member 0: %v", err)
	}
	// Each member alone, so a member that is not part of the cluster shows.
	for i := range c.Size() {
		got, err := get(newClient(t, c.Endpoint(i)), 5*time.Second, "k")
		if err != nil || got != "v" {
			t.Errorf("member %d: Get(k) = %q, %v; want \"v\"", i, got, err)
		}
	}
}

// leader returns the index of the member that leads the cluster.
func leader(t *testing.T, c *etcdcluster.Cluster) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	i, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestKillOneOfThreeStillServes(t *testing.T) {
	// The leader is the member whose death a client feels.
	c := etcdcluster.Start(t, 3)
	cli := newClient(t, c.Endpoints()...)
	dead := leader(t, c)
	c.Kill(dead)
	if c.Running(dead) {
		t.Fatalf("member %d still running after Kill(%d)", dead, dead)
	}
	if err := putSoon(t, cli, "k", "after-kill"); err != nil {
		t.Fatalf("Put with the leader (member %d) killed: %v", dead, err)
	}
	if err := c.Healthy(context.Background(), dead); err == nil {
		t.Errorf("killed member %d reports healthy", dead)
	}
	for i := range c.Size() {
		if i == dead {
			continue
		}
		if err := c.Healthy(context.Background(), i); err != nil {
			t.Errorf("member %d: %v", i, err)
		}
	}
}

func TestLoseQuorumThenRestore(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	cli := newClient(t, c.Endpoints()...)
	if err := put(cli, 5*time.Second, "k", "before"); err != nil {
		t.Fatalf("Put before losing quorum: %v", err)
	}

	killed := c.LoseQuorum()
	if len(killed) != 2 || c.Running(1) || c.Running(2) || !c.Running(0) {
		t.Fatalf("LoseQuorum killed %v; want members 2 and 1 killed and 0 running", killed)
	}
	if err := put(cli, 2*time.Second, "k", "lost"); err == nil {
		t.Fatal("Put with a 2 s deadline succeeded without a quorum")
	}
	if err := c.Healthy(context.Background(), 0); err == nil {
		t.Error("member 0 reports healthy without a quorum")
	}

	c.RestoreQuorum()
	for i := range c.Size() {
		if !c.Running(i) {
			t.Errorf("member %d not running after RestoreQuorum", i)
		}
	}
	if err := putSoon(t, cli, "k", "after"); err != nil {
		t.Fatalf("Put after RestoreQuorum: %v", err)
	}
	if got, err := get(cli, 5*time.Second, "k"); err != nil || got != "after" {
		t.Fatalf("Get(k) after RestoreQuorum = %q, %v; want \"after\"", got, err)
	}
}

func TestStopAndRestartKeepsData(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	cli := newClient(t, c.Endpoints()...)
	c.Stop(2)
	if c.Running(2) {
		t.Fatal("member 2 still running after Stop(2)")
	}
	if err := putSoon(t, cli, "k", "while-stopped"); err != nil {
		t.Fatalf("Put with member 2 stopped: %v", err)
	}
	c.Restart(2)
	if !c.Running(2) {
		t.Fatal("member 2 not running after Restart(2)")
	}
	// Member 2 alone: it must have caught up from its data and its peers.
	got, err := get(newClient(t, c.Endpoint(2)), 10*time.Second, "k")
	if err != nil || got != "while-stopped" {
		t.Fatalf("Get(k) from restarted member 2 = %q, %v; want \"while-stopped\"", got, err)
	}
}

func TestRestartOneKilledMemberRestoresQuorum(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	cli := newClient(t, c.Endpoints()...)
	killed := c.LoseQuorum()
	c.Restart(killed[0])
	if err := putSoon(t, cli, "k", "two-of-three"); err != nil {
		t.Fatalf("Put with two of three members running again: %v", err)
	}
}

func TestMembersEndWithTheTest(t *testing.T) {
	var c *etcdcluster.Cluster
	t.Run("cluster", func(t *testing.T) {
		c = etcdcluster.Start(t, 1)
	})
	if c.Running(0) {
		t.Fatal("member 0 still running after its test ended")
	}
	if err := c.Healthy(context.Background(), 0); err == nil {
		t.Fatal("member 0 still answers after its test ended")
	}
}

// recorder is a testing.TB that records how Start ended the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingBinary(t *testing.T) {
	tests := []struct {
		ci       string
		wantSkip bool
	}{
		{ci: "", wantSkip: true},
		{ci: "false", wantSkip: true},
		{ci: "true", wantSkip: false},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir())
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				etcdcluster.Start(r, 3)
			}()
			<-done
			switch {
			case r.skipped == "" && r.failed == "":
				t.Fatal("Start returned without an etcd binary")
			case tt.wantSkip && r.skipped == "":
				t.Errorf("Start failed (%q); want a skip", r.failed)
			case !tt.wantSkip && r.failed == "":
				t.Errorf("Start skipped (%q); want a failure", r.skipped)
			}
		})
	}
}
