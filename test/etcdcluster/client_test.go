package etcdcluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"xsha/test/etcdcluster"
)

// These tests pin what the remediator replicas rely on from
// go.etcd.io/etcd/client/v3 (see go.mod) against the etcd server the
// project tests with, Debian 12's etcd-server 3.4.23: a client release
// whose concurrency package calls an API the server lacks fails here.

func TestClientServerVersion(t *testing.T) {
	c := etcdcluster.Start(t, 1)
	cli := newClient(t, c.Endpoints()...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, c.Endpoint(0))
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	t.Logf("etcd server %s", st.Version)
}

func TestClientMutexIsExclusive(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := newClient(t, c.Endpoints()...)
	s1, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	defer s1.Close()
	s2, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	defer s2.Close()
	m1 := concurrency.NewMutex(s1, "/xsha/test/mutex/pool-a")
	m2 := concurrency.NewMutex(s2, "/xsha/test/mutex/pool-a")

	if err := m1.TryLock(ctx); err != nil {
		t.Fatalf("first TryLock: %v", err)
	}
	if err := m2.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
		t.Fatalf("second TryLock = %v; want %v", err, concurrency.ErrLocked)
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	err = m2.Lock(short)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held = %v; want %v", err, context.DeadlineExceeded)
	}

	// A write guarded by IsOwner lands only for the holder.
	for _, tt := range []struct {
		name   string
		m      *concurrency.Mutex
		wantOK bool
	}{
		{"holder", m1, true},
		{"waiter", m2, false},
	} {
		resp, err := cli.Txn(ctx).If(tt.m.IsOwner()).Then(clientv3.OpPut("/xsha/test/owner-write", tt.name)).Commit()
		if err != nil {
			t.Fatalf("%s: guarded Txn: %v", tt.name, err)
		}
		if resp.Succeeded != tt.wantOK {
			t.Errorf("%s: guarded Txn succeeded = %v; want %v", tt.name, resp.Succeeded, tt.wantOK)
		}
	}

	if err := m1.Unlock(ctx); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if err := m2.Lock(ctx); err != nil {
		t.Fatalf("Lock after the holder unlocked: %v", err)
	}
}

func TestClientMutexPassesOnWhenHolderDies(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The holder's client goes away without revoking its lease, as a
	// SIGKILLed replica's would.
	dead := newClient(t, c.Endpoints()...)
	s1, err := concurrency.NewSession(dead, concurrency.WithTTL(2))
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	m1 := concurrency.NewMutex(s1, "/xsha/test/mutex/pool-a")
	if err := m1.Lock(ctx); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	dead.Close()

	cli := newClient(t, c.Endpoints()...)
	s2, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	defer s2.Close()
	m2 := concurrency.NewMutex(s2, "/xsha/test/mutex/pool-a")
	start := time.Now()
	if err := m2.Lock(ctx); err != nil {
		t.Fatalf("Lock after the holder died: %v", err)
	}
	t.Logf("lock passed on %v after the holder's client closed", time.Since(start).Round(10*time.Millisecond))
	resp, err := cli.Get(ctx, m1.Key())
	if err != nil {
		t.Fatalf("Get %s: %v", m1.Key(), err)
	}
	if len(resp.Kvs) != 0 {
		t.Errorf("dead holder's key %s still present", m1.Key())
	}
}

func TestClientTxnComparesModRevision(t *testing.T) {
	c := etcdcluster.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := newClient(t, c.Endpoints()...)
	const record, entry1, entry2 = "/xsha/test/records/a", "/xsha/test/journal/a/1", "/xsha/test/journal/a/2"
	put, err := cli.Put(ctx, record, "v1")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	rev := put.Header.Revision

	// Record and journal entry change together when the record is as read.
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(record), "=", rev)).
		Then(clientv3.OpPut(record, "v2"), clientv3.OpPut(entry1, "step 1")).
		Commit()
	if err != nil || !resp.Succeeded {
		t.Fatalf("Txn on the current revision: succeeded %v, %v", resp != nil && resp.Succeeded, err)
	}
	// Neither changes when another writer got there first.
	resp, err = cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(record), "=", rev)).
		Then(clientv3.OpPut(record, "v3"), clientv3.OpPut(entry2, "step 2")).
		Else(clientv3.OpGet(record)).
		Commit()
	if err != nil {
		t.Fatalf("Txn on a stale revision: %v", err)
	}
	if resp.Succeeded {
		t.Fatal("Txn on a stale revision succeeded")
	}
	if got := string(resp.Responses[0].GetResponseRange().Kvs[0].Value); got != "v2" {
		t.Errorf("Else branch read %q; want \"v2\"", got)
	}
	if got, err := get(cli, 5*time.Second, entry2); err == nil {
		t.Errorf("stale Txn wrote %s = %q", entry2, got)
	}
	// A key that does not exist has ModRevision 0: create-if-absent.
	resp, err = cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(entry1), "=", 0)).
		Then(clientv3.OpPut(entry1, "again")).
		Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("create-if-absent on an existing key: succeeded %v, %v", resp != nil && resp.Succeeded, err)
	}
}

func TestClientWatchReplaysFromRevision(t *testing.T) {
	c := etcdcluster.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := newClient(t, c.Endpoints()...)
	first, err := cli.Put(ctx, "/xsha/test/w/a", "1")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := cli.Delete(ctx, "/xsha/test/w/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), "/xsha/test/w/", clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision))
	if _, err := cli.Put(ctx, "/xsha/test/w/b", "2"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	want := []string{"PUT /xsha/test/w/a", "DELETE /xsha/test/w/a", "PUT /xsha/test/w/b"}
	var got []string
	for len(got) < len(want) {
		select {
		case wr := <-wch:
			if err := wr.Err(); err != nil {
				t.Fatalf("watch: %v", err)
			}
			for _, ev := range wr.Events {
				got = append(got, ev.Type.String()+" "+string(ev.Kv.Key))
			}
		case <-ctx.Done():
			t.Fatalf("watch saw %v; want %v", got, want)
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("watch saw %v; want %v", got, want)
		}
	}
}

func TestClientWithoutQuorum(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	cli := newClient(t, c.Endpoints()...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const ttl = 3
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	m := concurrency.NewMutex(s, "/xsha/test/mutex/pool-a")
	if err := m.Lock(ctx); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	// The watch is drained at once: the client drops a closing error that
	// is not received within a quarter second and just closes the channel.
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), "/xsha/test/", clientv3.WithPrefix())
	watchEnd := make(chan error, 1)
	go func() {
		for wr := range wch {
			if err := wr.Err(); err != nil {
				watchEnd <- err
				return
			}
		}
		watchEnd <- errors.New("watch channel closed without an error")
	}()

	lost := time.Now()
	c.LoseQuorum()

	// Once the surviving member knows it has no leader, a request that
	// requires one fails at once with ErrNoLeader.
	for {
		rctx, rcancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 2*time.Second)
		start := time.Now()
		_, err = cli.Put(rctx, "/xsha/test/k", "lost")
		rcancel()
		if errors.Is(err, rpctypes.ErrNoLeader) {
			t.Logf("Put requiring a leader: %v after %v (%v after the quorum went)",
				err, time.Since(start).Round(time.Millisecond), time.Since(lost).Round(time.Millisecond))
			break
		}
		if err == nil {
			t.Fatal("Put requiring a leader succeeded without a quorum")
		}
		t.Logf("Put requiring a leader, before the member noticed: %v (%T) after %v",
			err, err, time.Since(start).Round(time.Millisecond))
		if ctx.Err() != nil {
			t.Fatalf("Put requiring a leader never failed with %v; last %v", rpctypes.ErrNoLeader, err)
		}
	}

	// Requests that do not require a leader wait for their deadline.
	start := time.Now()
	err = put(cli, 2*time.Second, "/xsha/test/k", "lost")
	if err == nil {
		t.Fatal("Put succeeded without a quorum")
	}
	t.Logf("Put with a 2 s deadline: %v (%T) after %v", err, err, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	_, err = get(cli, 2*time.Second, "/xsha/test/k")
	if err == nil {
		t.Fatal("linearizable Get succeeded without a quorum")
	}
	t.Logf("Get with a 2 s deadline: %v (%T) after %v", err, err, time.Since(start).Round(time.Millisecond))

	// A watch that requires a leader ends with ErrNoLeader.
	select {
	case err := <-watchEnd:
		t.Logf("watch requiring a leader: %v", err)
		if !errors.Is(err, rpctypes.ErrNoLeader) {
			t.Errorf("watch requiring a leader ended with %v; want %v", err, rpctypes.ErrNoLeader)
		}
	case <-ctx.Done():
		t.Fatal("watch requiring a leader still open without a quorum")
	}

	// The session ends when its lease goes unrenewed for its TTL.
	select {
	case <-s.Done():
		t.Logf("session done %v after the quorum went (TTL %d s)", time.Since(lost).Round(time.Millisecond), ttl)
	case <-ctx.Done():
		t.Fatal("session still alive without a quorum")
	}

	c.RestoreQuorum()
	restored := time.Now()
	if err := putSoon(t, cli, "/xsha/test/k", "back"); err != nil {
		t.Fatalf("Put after the quorum came back: %v", err)
	}
	t.Logf("Put after the quorum came back: ok %v after RestoreQuorum", time.Since(restored).Round(time.Millisecond))

	// The old session stays done; a new one takes the mutex once the old
	// lease, extended by the new leader, has expired.
	select {
	case <-s.Done():
	default:
		t.Error("old session alive again after the quorum came back")
	}
	s2, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatalf("NewSession after the quorum came back: %v", err)
	}
	defer s2.Close()
	start = time.Now()
	if err := concurrency.NewMutex(s2, "/xsha/test/mutex/pool-a").Lock(ctx); err != nil {
		t.Fatalf("Lock with a new session: %v", err)
	}
	t.Logf("new session took the mutex %v after asking", time.Since(start).Round(time.Millisecond))
}
