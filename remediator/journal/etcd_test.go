package journal

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"xsha/test/etcdcluster"
)

func openTestEtcd(t *testing.T, c *etcdcluster.Cluster, prefix string) *Etcd {
	t.Helper()
	j, err := OpenEtcd(EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// Replicas sharing one etcd journal see one another's commits, and a
// read-then-create in one Update is atomic across them: the same episode
// created by many replicas at once gives one action. Each Update's fn runs
// once, as with bbolt (callers append to the actions they hold).
func TestEtcdJournalSharedAcrossReplicas(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	prefix := "/xsha-test/" + t.Name()
	const replicas = 3
	js := make([]*Etcd, replicas)
	for i := range js {
		js[i] = openTestEtcd(t, c, prefix)
	}
	var wg sync.WaitGroup
	created := make([]bool, replicas*2)
	errs := make([]error, replicas*2)
	var runs atomic.Int32
	for i := range replicas * 2 {
		wg.Go(func() {
			errs[i] = js[i%replicas].Update(func(tx Tx) error {
				runs.Add(1)
				created[i] = false
				if _, ok := tx.Episode("same-webhook"); ok {
					return nil
				}
				a := &Action{Name: "enable_pool_ha", Pool: "pool-a", State: StatePending, Episodes: []string{"same-webhook"}}
				if err := tx.Create(a); err != nil {
					return err
				}
				created[i] = true
				return tx.SetEpisode("same-webhook", a.ID)
			})
		})
	}
	wg.Wait()
	n := 0
	for i := range created {
		if errs[i] != nil {
			t.Errorf("update %d: %v", i, errs[i])
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d updates created an action for the same episode, want 1", n)
	}
	if got := runs.Load(); got != replicas*2 {
		t.Errorf("%d Updates ran their function %d times, want once each", replicas*2, got)
	}
	if err := js[2].View(func(tx Tx) error {
		open, err := tx.Open("")
		if err != nil {
			return err
		}
		if len(open) != 1 {
			t.Errorf("replica 2 sees open actions %v, want one", ids(open))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Without a quorum the etcd journal fails every call at once with a reason
// that says etcd is unavailable, and works again by itself once the
// quorum is back.
func TestEtcdJournalQuorumLoss(t *testing.T) {
	c := etcdcluster.Start(t, 3)
	j := openTestEtcd(t, c, "/xsha-test/"+t.Name())
	create := func() error {
		return j.Update(func(tx Tx) error {
			return tx.Create(&Action{Name: "enable_pool_ha", Pool: "pool-a", State: StatePending})
		})
	}
	if err := create(); err != nil {
		t.Fatal(err)
	}
	c.LoseQuorum()
	err := create()
	if err == nil || !strings.Contains(err.Error(), "etcd unavailable") {
		t.Fatalf("update without quorum: %v, want etcd unavailable", err)
	}
	c.RestoreQuorum()
	var last error
	for range 20 {
		if last = create(); last == nil {
			break
		}
	}
	if last != nil {
		t.Fatalf("after the quorum came back: %v", last)
	}
	if err := j.View(func(tx Tx) error {
		open, err := tx.Open("pool-a")
		if len(open) != 2 {
			t.Errorf("open actions %v, want 2 (the one that failed without quorum not stored)", ids(open))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
