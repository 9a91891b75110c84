package remediator

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"xsha/remediator/journal"
	"xsha/test/etcdcluster"
)

// testJournalEnv names the journal every harness opens: "bbolt" (the
// default) or "etcd". `make test` runs this package once with each, so the
// remediator's whole suite holds on both implementations of
// journal.Journal.
const testJournalEnv = "XSHA_TEST_JOURNAL"

// journalOpener returns a function that opens the same fresh journal each
// time it is called, as a restart does.
type journalOpener func(t *testing.T) func() (journal.Journal, error)

// journalOpeners are the journal's implementations, by name.
var journalOpeners = map[string]journalOpener{"bbolt": boltOpener, "etcd": etcdOpener}

// journalNames are the names of journalOpeners, in a stable order.
var journalNames = []string{"bbolt", "etcd"}

// testJournal returns the opener testJournalEnv names.
func testJournal(t *testing.T) journalOpener {
	t.Helper()
	name := os.Getenv(testJournalEnv)
	if name == "" {
		name = "bbolt"
	}
	o, ok := journalOpeners[name]
	if !ok {
		t.Fatalf("%s=%q: want one of %v", testJournalEnv, name, journalNames)
	}
	return o
}

// boltOpener opens a bbolt file in the test's temporary directory.
func boltOpener(t *testing.T) func() (journal.Journal, error) {
	path := t.TempDir() + "/journal.db"
	return func() (journal.Journal, error) { return journal.OpenBolt(path) }
}

var (
	// testClusters are the etcd clusters of running tests, one each.
	testClusters sync.Map // *testing.T -> *etcdcluster.Cluster
	// journalSeq gives each journal opened by etcdOpener its own prefix.
	journalSeq atomic.Uint64
)

// etcdOpener opens a journal under a prefix of its own in a one-member
// etcd cluster (Debian's etcd) started for the test.
func etcdOpener(t *testing.T) func() (journal.Journal, error) {
	t.Helper()
	c, ok := testClusters.Load(t)
	if !ok {
		c = etcdcluster.Start(t, 1)
		testClusters.Store(t, c)
		t.Cleanup(func() { testClusters.Delete(t) })
	}
	return etcdOpenerOn(c.(*etcdcluster.Cluster))(t)
}

// etcdOpenerOn opens journals in the cluster c, each under a prefix of its
// own.
func etcdOpenerOn(c *etcdcluster.Cluster) journalOpener {
	return func(t *testing.T) func() (journal.Journal, error) {
		opts := journal.EtcdOptions{Endpoints: c.Endpoints(),
			Prefix: fmt.Sprintf("/xsha-test/%s/%d", t.Name(), journalSeq.Add(1))}
		return func() (journal.Journal, error) { return journal.OpenEtcd(opts) }
	}
}

// harnessJournal, when set, is the journal harnesses open instead of the
// one testJournalEnv names; withJournal sets it for one test.
var harnessJournal journalOpener

// withJournal runs fn with harnesses on the opener's journals. Tests that
// use it must not run in parallel.
func withJournal(t *testing.T, o journalOpener, fn func(t *testing.T)) {
	t.Helper()
	harnessJournal = o
	defer func() { harnessJournal = nil }()
	fn(t)
}
