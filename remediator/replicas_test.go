package remediator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"xsha/remediator/journal"
	"xsha/test/etcdcluster"
)

// sharedHarnesses returns n harnesses (replicas "r0", "r1", ...) on one
// etcd journal with a short lease, acting on the same fake pools. They
// are not started.
func sharedHarnesses(t *testing.T, n int, pools ...*fakePool) []*harness {
	t.Helper()
	_, hs := sharedCluster(t, n, 2, pools...)
	return hs
}

// sharedCluster is sharedHarnesses with the etcd cluster and a lease TTL.
func sharedCluster(t *testing.T, n, ttl int, pools ...*fakePool) (*etcdcluster.Cluster, []*harness) {
	t.Helper()
	c := etcdcluster.Start(t, 3)
	opts := journal.EtcdOptions{Endpoints: c.Endpoints(), Prefix: "/xsha-test/" + t.Name(), LeaseTTL: ttl}
	harnessJournal = func(*testing.T) func() (journal.Journal, error) {
		return func() (journal.Journal, error) { return journal.OpenEtcd(opts) }
	}
	defer func() { harnessJournal = nil }()
	hs := make([]*harness, n)
	for i := range hs {
		hs[i] = newHarness(t, livePolicy, pools...)
		hs[i].r.replica = "r" + string(rune('0'+i))
		hs[i].r.poll = 50 * time.Millisecond
	}
	return c, hs
}

// The same webhook sent to every replica at once gives one action, run by
// one replica; the others answer that it is already handled.
func TestReplicasSameWebhookOneAction(t *testing.T) {
	p := newFakePool("cluster-a")
	hs := sharedHarnesses(t, 3, p)
	msg := message(haDisabled("cluster-a", time.Now()))
	var wg sync.WaitGroup
	answered := make([][]uint64, len(hs))
	for i, h := range hs {
		h.start()
		wg.Go(func() {
			code, out := h.post(msg)
			if code != 200 {
				t.Errorf("replica %d answered %d: %v", i, code, out)
			}
			answered[i] = actionIDs(out)
		})
	}
	wg.Wait()
	var all []uint64
	for _, v := range answered {
		all = append(all, v...)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if len(all) != 1 {
		t.Fatalf("action ids %v from the three replicas, want one action", answered)
	}
	rec := hs[0].waitFinal(all[0])
	if rec.State != journal.StateSuccess {
		t.Fatalf("action %s: %s", rec.State, rec.Reason)
	}
	if got := p.Calls(); len(got) != 1 {
		t.Errorf("XAPI calls %v, want pool.enable_ha once", got)
	}
	if !strings.HasPrefix(rec.Replica, "r") {
		t.Errorf("the action does not say which replica ran it: %q", rec.Replica)
	}
	var open []*journal.Action
	if err := hs[2].journal.View(func(tx journal.Tx) (err error) { open, err = tx.Open(""); return err }); err != nil || len(open) != 0 {
		t.Errorf("open actions %v (%v)", ids(open), err)
	}
}

// A replica that dies (no lease revoked, as with SIGKILL) right after an
// XAPI write: once its lease expires another replica takes the pool and
// finishes the action without making any write twice, and the journal
// says who took over from whom.
func TestReplicaTakesOverDeadHoldersAction(t *testing.T) {
	p := newFakePool("cluster-a")
	old := p.emergencyOldMaster()
	hs := sharedHarnesses(t, 2, p)
	a, b := hs[0], hs[1]
	a.start()
	crashed := make(chan struct{})
	var once sync.Once
	p.after = func(method string) {
		if method == "host.emergency_ha_disable" {
			once.Do(func() {
				// The process dies with the write done: its etcd client
				// goes without revoking the lease.
				_ = a.journal.(*journal.Etcd).Abandon()
				close(crashed)
			})
		}
	}
	id := a.queue("XenServerHostEmergencyMode", "cluster-a", old, "fp-em")
	<-crashed
	p.after = nil
	died := time.Now()
	b.start()
	rec := b.waitFinal(id)
	t.Logf("replica r1 finished the action %s after r0 died (lease TTL 2 s)", time.Since(died).Round(10*time.Millisecond))
	if rec.State != journal.StateSuccess {
		t.Fatalf("after the takeover: %s: %s\n%s", rec.State, rec.Reason, journalText(b.entriesFor(id)))
	}
	want := []string{"pool.disable_ha", "host.emergency_ha_disable(127.0.9.1)", "pool.enable_ha(sr-cluster-a,map[timeout:180])"}
	if got := p.Calls(); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want each once: %v", got, want)
	}
	if rec.Replica != "r1" {
		t.Errorf("action run by %q, want r1", rec.Replica)
	}
	if text := journalText(b.entriesFor(id)); !strings.Contains(text, "taken over by replica r1 from r0") {
		t.Errorf("journal does not say r1 took over from r0:\n%s", text)
	}
}

// Without an etcd quorum a replica answers webhooks 503 with the reason
// (Alertmanager retries), says so on the status page and in
// xsha_remediator_journal_up, and acts again by itself once the quorum is
// back: the retried webhook gives the action, which runs.
func TestReplicaStopsWithoutQuorumAndResumes(t *testing.T) {
	p := newFakePool("cluster-a")
	c, hs := sharedCluster(t, 1, 2, p)
	h := hs[0]
	h.start()
	c.LoseQuorum()
	msg := message(haDisabled("cluster-a", time.Now()))
	code, out := h.post(msg)
	if code != 503 || !strings.Contains(fmt.Sprint(out["error"]), "etcd unavailable") {
		t.Fatalf("webhook without quorum: %d %v, want 503 saying etcd is unavailable", code, out)
	}
	if code, page := get(t, h.srv.URL+"/"); code != 503 || !strings.Contains(page, `id="journal-down"`) || !strings.Contains(page, "etcd unavailable") {
		t.Errorf("status page without quorum: %d %q", code, page)
	}
	if got := testutil.ToFloat64(h.r.metrics.journalUp); got != 0 {
		t.Errorf("xsha_remediator_journal_up = %v without quorum, want 0", got)
	}
	if calls := p.Calls(); len(calls) != 0 {
		t.Errorf("XAPI calls without quorum: %v", calls)
	}
	c.RestoreQuorum()
	var ids []uint64
	for range 20 { // as Alertmanager retries
		if code, out = h.post(msg); code == 200 {
			ids = actionIDs(out)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(ids) != 1 {
		t.Fatalf("webhook after the quorum came back: %d %v", code, out)
	}
	if rec := h.waitFinal(ids[0]); rec.State != journal.StateSuccess {
		t.Fatalf("action %s: %s", rec.State, rec.Reason)
	}
	if got := testutil.ToFloat64(h.r.metrics.journalUp); got != 1 {
		t.Errorf("xsha_remediator_journal_up = %v after recovery, want 1", got)
	}
	if code, _ := get(t, h.srv.URL+"/"); code != 200 {
		t.Errorf("status page after recovery: %d", code)
	}
}

// The etcd leader killed in the middle of an action changes nothing: the
// action finishes with each XAPI write made once.
func TestReplicaSurvivesEtcdLeaderKilledMidAction(t *testing.T) {
	p := newFakePool("cluster-a")
	old := p.emergencyOldMaster()
	c, hs := sharedCluster(t, 1, 2, p)
	h := hs[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	leader, err := c.Leader(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	killed := make(chan struct{})
	var once sync.Once
	p.after = func(method string) {
		if method == "pool.disable_ha" {
			once.Do(func() { close(killed) })
		}
	}
	h.start()
	id := h.queue("XenServerHostEmergencyMode", "cluster-a", old, "fp-em")
	<-killed
	c.Kill(leader)
	rec := h.waitFinal(id)
	if rec.State != journal.StateSuccess {
		t.Fatalf("action %s: %s\n%s", rec.State, rec.Reason, journalText(h.entriesFor(id)))
	}
	want := []string{"pool.disable_ha", "host.emergency_ha_disable(127.0.9.1)", "pool.enable_ha(sr-cluster-a,map[timeout:180])"}
	if got := p.Calls(); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want each once: %v", got, want)
	}
}
