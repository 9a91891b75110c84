package journal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// DefaultEtcdPrefix is where the shared journal keeps its keys unless
// EtcdOptions.Prefix says otherwise.
const DefaultEtcdPrefix = "/xsha/remediator"

const (
	// etcdCallTimeout bounds every etcd request: without a quorum a
	// request otherwise waits as long as its context allows.
	etcdCallTimeout = 3 * time.Second
	// etcdRetryBudget bounds how long a call is retried after a member
	// died with it (an election takes about a second; a lost proposal
	// fails at the server's request timeout, about 7 s).
	etcdRetryBudget = 12 * time.Second
	// etcdLockHold bounds how long a replica keeps the journal mutex for
	// its own queued Updates.
	etcdLockHold = 100 * time.Millisecond
	// DefaultEtcdLeaseTTL is the lease TTL, in seconds, of a replica's
	// session unless EtcdOptions.LeaseTTL says otherwise.
	DefaultEtcdLeaseTTL = 10
	// etcdMaxOps stays below etcd's default --max-txn-ops (128): one
	// transaction's puts and deletes plus its commit key.
	etcdMaxOps = 120
)

// ErrLostLock is returned by an Update whose replica lost the journal
// mutex (its lease expired) before it committed: nothing was written.
var ErrLostLock = errors.New("etcd unavailable: the journal lock was lost before the commit (lease expired); nothing was written")

// EtcdOptions says how to reach the etcd cluster that holds a journal
// shared by several replicas. Secrets come from files only.
type EtcdOptions struct {
	// Endpoints are the cluster's client URLs.
	Endpoints []string
	// Prefix is the key prefix of the journal; DefaultEtcdPrefix when empty.
	Prefix string
	// CAFile is the CA bundle that verifies the members' certificates;
	// the system pool when empty (with https endpoints).
	CAFile string
	// CertFile and KeyFile are the client certificate and its key, for
	// clusters with --client-cert-auth.
	CertFile, KeyFile string
	// AuthFile holds "user:password" for clusters with auth enabled.
	AuthFile string
	// LeaseTTL is the replica's lease TTL in seconds: how long after a
	// replica died its locks are released. DefaultEtcdLeaseTTL when 0.
	LeaseTTL int
}

// Etcd is the journal in etcd, shared by every replica that uses the
// same endpoints and prefix.
//
// Every Update holds the journal mutex (a concurrency.Mutex on the
// replica's lease session), reads at one revision (seeing its own writes),
// buffers its writes and commits them in one etcd Txn that compares the
// mutex's ownership and the commit key, which every commit rewrites. So
// Updates are serializable across replicas, deletes included, and fn runs
// exactly once, as with bbolt.
type Etcd struct {
	cli    *clientv3.Client
	prefix string
	clock  func() time.Time
	// ttl is the lease TTL in seconds: how long a dead replica's locks
	// outlive it.
	ttl int
	// mu serializes this process's Updates: a session's mutex is not
	// reentrant.
	mu sync.Mutex
	// waiting counts Updates waiting for mu; held is the journal mutex
	// kept for them since heldSince (guarded by mu).
	waiting   atomic.Int32
	held      *concurrency.Mutex
	heldSince time.Time
	sessMu    sync.Mutex
	sess      *concurrency.Session
	// token and commits make each commit key value unique, so an Update
	// whose answer was lost can tell whether it applied.
	token   string
	commits atomic.Uint64
}

// OpenEtcd connects to etcd and checks that it answers.
func OpenEtcd(opts EtcdOptions) (*Etcd, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcd journal: no endpoints")
	}
	cfg := clientv3.Config{
		Endpoints:   opts.Endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	if opts.CAFile != "" || opts.CertFile != "" || opts.KeyFile != "" || hasHTTPS(opts.Endpoints) {
		info := transport.TLSInfo{CertFile: opts.CertFile, KeyFile: opts.KeyFile, TrustedCAFile: opts.CAFile}
		tlsCfg, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd journal TLS: %w", err)
		}
		cfg.TLS = tlsCfg
	}
	if opts.AuthFile != "" {
		b, err := os.ReadFile(opts.AuthFile)
		if err != nil {
			return nil, fmt.Errorf("etcd journal auth: %w", err)
		}
		user, pass, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("etcd journal auth file %s: want user:password", opts.AuthFile)
		}
		cfg.Username, cfg.Password = user, pass
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd journal: %w", err)
	}
	prefix := strings.TrimSuffix(opts.Prefix, "/")
	if prefix == "" {
		prefix = DefaultEtcdPrefix
	}
	var tok [8]byte
	if _, err := rand.Read(tok[:]); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd journal: %w", err)
	}
	j := &Etcd{cli: cli, prefix: prefix + "/", clock: time.Now, token: hex.EncodeToString(tok[:]), ttl: opts.LeaseTTL}
	if j.ttl <= 0 {
		j.ttl = DefaultEtcdLeaseTTL
	}
	ctx, cancel := j.callCtx()
	defer cancel()
	if _, err := cli.Get(ctx, j.key(keyCommit)); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd journal %v: %w", opts.Endpoints, err)
	}
	return j, nil
}

func hasHTTPS(eps []string) bool {
	return slices.ContainsFunc(eps, func(e string) bool { return strings.HasPrefix(e, "https://") })
}

// Key layout under the prefix. Ids and sequence numbers are 16 hex digits,
// so lexical order is numeric order; names are path-escaped.
const (
	keyCommit     = "commit"     // rewritten by every commit
	keyLock       = "lock/"      // the journal mutex
	keyPools      = "pools/"     // pools/<pool>/: a pool's mutex
	keySeqAction  = "seq/action" // last action id
	keySeqEntry   = "seq/entry"  // last entry sequence number
	keyActions    = "actions/"   // actions/<id>: Action JSON
	keyOpen       = "open/"      // open/<id>: pool, while the action is open
	keyEntries    = "entries/"   // entries/<seq>: Entry JSON
	keyByAction   = "byaction/"  // byaction/<id>/<seq>: empty
	keyEpisodes   = "episodes/"  // episodes/<key>: action id
	keyTargets    = "targets/"   // targets/<target>: Target JSON
	keyAttempts   = "attempts/"  // attempts/<pool>: []time.Time JSON
	keyHolds      = "holds/"     // holds/<pool or *>: Hold JSON
	keyStormState = "storm"      // the breaker's state
)

func (j *Etcd) key(k string) string { return j.prefix + k }

// retry runs call, each try under its own deadline, until it succeeds, etcd
// says it has no leader (no quorum: there is no point waiting), or
// etcdRetryBudget has passed. A member that dies can take a request in
// flight with it, which then fails only at the server's request timeout;
// the retry goes to a member that answers. call must be safe to repeat.
func (j *Etcd) retry(call func(ctx context.Context) error) error {
	deadline := time.Now().Add(etcdRetryBudget)
	for {
		ctx, cancel := j.callCtx()
		err := call(ctx)
		cancel()
		if err == nil || errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrGRPCNoLeader) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hex16(v uint64) string { return fmt.Sprintf("%016x", v) }

func (j *Etcd) callCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), etcdCallTimeout)
	return clientv3.WithRequireLeader(ctx), cancel
}

// Close revokes the session's lease, releasing its locks at once, and
// closes the client.
func (j *Etcd) Close() error {
	j.sessMu.Lock()
	if j.sess != nil {
		_ = j.sess.Close()
	}
	j.sessMu.Unlock()
	return j.cli.Close()
}

// Abandon closes the connection to etcd without revoking the replica's
// lease, as a replica that dies does: its locks are released only when the
// lease expires. Tests and benchmarks use it to measure a takeover.
func (j *Etcd) Abandon() error { return j.cli.Close() }

// SetClock implements Journal.
func (j *Etcd) SetClock(now func() time.Time) { j.clock = now }

// begin starts a transaction at the current revision.
func (j *Etcd) begin() (*etcdTx, error) {
	var resp *clientv3.GetResponse
	err := j.retry(func(ctx context.Context) (err error) {
		resp, err = j.cli.Get(ctx, j.key(keyCommit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("etcd unavailable: %w", err)
	}
	t := &etcdTx{j: j, rev: resp.Header.Revision, writes: map[string]*string{}}
	if len(resp.Kvs) == 1 {
		t.commitMod = resp.Kvs[0].ModRevision
	}
	return t, nil
}

// View implements Journal.
func (j *Etcd) View(fn func(tx Tx) error) error {
	t, err := j.begin()
	if err != nil {
		return err
	}
	if err := fn(t); err != nil {
		return err
	}
	return t.err
}

// Update implements Journal. Updates are serialized across replicas by
// the journal mutex, as bbolt serializes its writers, so fn runs once; the
// commit is fenced by the mutex's ownership, so a replica whose lease
// expired mid-Update writes nothing.
//
// Under load the replica keeps the journal mutex from one of its Updates to
// the next while more of them wait, for at most etcdLockHold, saving the
// lock's two writes per Update; other replicas then wait at most that long.
func (j *Etcd) Update(fn func(tx Tx) error) (err error) {
	j.waiting.Add(1)
	j.mu.Lock()
	j.waiting.Add(-1)
	defer j.mu.Unlock()
	m := j.held
	if m == nil {
		if m, err = j.lockJournal(); err != nil {
			return err
		}
		j.held, j.heldSince = m, time.Now()
	}
	defer func() {
		if err == nil && j.waiting.Load() > 0 && time.Since(j.heldSince) < etcdLockHold {
			return // the next local Update goes on under the same lock
		}
		j.held = nil
		j.unlockJournal(m)
	}()
	t, err := j.begin()
	if err != nil {
		return err
	}
	if err := fn(t); err != nil {
		return err
	}
	if t.err != nil {
		return t.err
	}
	if len(t.writes) == 0 {
		return nil
	}
	ok, err := j.commit(t, m.IsOwner())
	if err != nil {
		return err
	}
	if !ok {
		return ErrLostLock
	}
	return nil
}

// session returns the replica's lease session, a new one when the last
// expired (etcd was unreachable for its TTL).
func (j *Etcd) session() (*concurrency.Session, error) {
	j.sessMu.Lock()
	defer j.sessMu.Unlock()
	if j.sess != nil {
		select {
		case <-j.sess.Done():
			j.sess = nil
		default:
			return j.sess, nil
		}
	}
	// Grant under a deadline: NewSession's own grant would use the
	// keepalive's context, which must not end.
	ctx, cancel := j.callCtx()
	defer cancel()
	lease, err := j.cli.Grant(ctx, int64(j.ttl))
	if err != nil {
		return nil, fmt.Errorf("etcd unavailable: granting the replica's lease: %w", err)
	}
	s, err := concurrency.NewSession(j.cli, concurrency.WithTTL(j.ttl), concurrency.WithLease(lease.ID))
	if err != nil {
		return nil, fmt.Errorf("etcd unavailable: %w", err)
	}
	j.sess = s
	return s, nil
}

// lockJournal takes the journal mutex, waiting at most a lease TTL (plus
// a call's deadline) for a replica that died holding it.
func (j *Etcd) lockJournal() (*concurrency.Mutex, error) {
	s, err := j.session()
	if err != nil {
		return nil, err
	}
	m := concurrency.NewMutex(s, j.key(keyLock))
	// Waiting for a replica that died holding the lock takes up to its
	// lease TTL; a Lock lost with a dead member is retried (the retry finds
	// its own key, if the first try left it).
	deadline := time.Now().Add(time.Duration(j.ttl)*time.Second + etcdRetryBudget)
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := m.Lock(clientv3.WithRequireLeader(ctx))
		cancel()
		switch {
		case err == nil:
			return m, nil
		case errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrGRPCNoLeader) || time.Now().After(deadline):
			return nil, fmt.Errorf("etcd unavailable: taking the journal lock: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
		select {
		case <-s.Done():
			return nil, fmt.Errorf("etcd unavailable: the replica's lease expired while taking the journal lock: %w", err)
		default:
		}
	}
}

// unlockJournal releases the journal mutex; when that fails the lock goes
// with the lease.
func (j *Etcd) unlockJournal(m *concurrency.Mutex) {
	ctx, cancel := j.callCtx()
	defer cancel()
	_ = m.Unlock(ctx)
}

// commit writes the transaction's buffered writes if nobody committed
// since it began. An error means etcd did not say; commit then reads the
// commit key to learn whether the writes applied.
func (j *Etcd) commit(t *etcdTx, owner clientv3.Cmp) (bool, error) {
	if len(t.writes)+1 > etcdMaxOps+8 {
		return false, fmt.Errorf("etcd journal: one transaction writes %d keys, more than etcd accepts", len(t.writes))
	}
	stamp := fmt.Sprintf("%s-%d", j.token, j.commits.Add(1))
	ops := make([]clientv3.Op, 0, len(t.writes)+1)
	for k, v := range t.writes {
		if v == nil {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			ops = append(ops, clientv3.OpPut(k, *v))
		}
	}
	ops = append(ops, clientv3.OpPut(j.key(keyCommit), stamp))
	// The same Txn is retried when etcd does not answer: its compares make
	// a second application impossible, and the stamp tells whether an
	// earlier try applied.
	applied := false
	err := j.retry(func(ctx context.Context) error {
		resp, err := j.cli.Txn(ctx).
			If(owner, clientv3.Compare(clientv3.ModRevision(j.key(keyCommit)), "=", t.commitMod)).
			Then(ops...).
			Commit()
		if err == nil && resp.Succeeded {
			applied = true
			return nil
		}
		got, gerr := j.cli.Get(ctx, j.key(keyCommit))
		if gerr == nil && len(got.Kvs) == 1 && string(got.Kvs[0].Value) == stamp {
			applied = true
			return nil
		}
		if err == nil {
			return nil // not applied, and never will be: the compares failed
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("etcd unavailable: %w", err)
	}
	return applied, nil
}

// etcdTx is a transaction of an Etcd journal: reads at rev, buffered writes.
type etcdTx struct {
	j         *Etcd
	rev       int64
	commitMod int64
	// writes are the buffered writes by full key; nil deletes.
	writes map[string]*string
	// err is the first read error of a method that cannot return one.
	err error
}

type etcdKV struct {
	key   string
	value []byte
}

func (t *etcdTx) Now() time.Time { return t.j.clock() }

func (t *etcdTx) put(k string, v []byte) {
	s := string(v)
	t.writes[t.j.key(k)] = &s
}

func (t *etcdTx) del(k string) { t.writes[t.j.key(k)] = nil }

// get reads a key as of the transaction: its own writes first.
func (t *etcdTx) get(k string) ([]byte, bool, error) {
	full := t.j.key(k)
	if v, ok := t.writes[full]; ok {
		if v == nil {
			return nil, false, nil
		}
		return []byte(*v), true, nil
	}
	var resp *clientv3.GetResponse
	err := t.j.retry(func(ctx context.Context) (err error) {
		resp, err = t.j.cli.Get(ctx, full, clientv3.WithRev(t.rev))
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("etcd unavailable: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	return resp.Kvs[0].Value, true, nil
}

// scan returns the keys in [from, end) of the prefix (from empty: the
// whole prefix), in key order or reversed, at most limit of them (0: all),
// with the transaction's own writes merged in. Keys are returned without
// the journal's prefix.
func (t *etcdTx) scan(prefix, from string, desc bool, limit int) ([]etcdKV, error) {
	start := t.j.key(prefix)
	end := clientv3.GetPrefixRangeEnd(start)
	if from != "" {
		start = t.j.key(from)
	}
	var mine int
	for k := range t.writes {
		if k >= start && k < end {
			mine++
		}
	}
	order := clientv3.SortAscend
	if desc {
		order = clientv3.SortDescend
	}
	opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithRev(t.rev),
		clientv3.WithSort(clientv3.SortByKey, order)}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(limit+mine)))
	}
	var resp *clientv3.GetResponse
	err := t.j.retry(func(ctx context.Context) (err error) {
		resp, err = t.j.cli.Get(ctx, start, opts...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("etcd unavailable: %w", err)
	}
	merged := map[string][]byte{}
	for _, kv := range resp.Kvs {
		merged[string(kv.Key)] = kv.Value
	}
	for k, v := range t.writes {
		if k < start || k >= end {
			continue
		}
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = []byte(*v)
		}
	}
	out := make([]etcdKV, 0, len(merged))
	for k, v := range merged {
		out = append(out, etcdKV{key: strings.TrimPrefix(k, t.j.prefix), value: v})
	}
	slices.SortFunc(out, func(a, b etcdKV) int {
		if desc {
			return strings.Compare(b.key, a.key)
		}
		return strings.Compare(a.key, b.key)
	})
	// Keys written by this transaction beyond the range the server
	// limited can sort before keys it did not return: drop what lies past
	// the server's last key when it cut the range short.
	if limit > 0 && resp.More && len(resp.Kvs) > 0 {
		last := strings.TrimPrefix(string(resp.Kvs[len(resp.Kvs)-1].Key), t.j.prefix)
		out = slices.DeleteFunc(out, func(kv etcdKV) bool {
			if desc {
				return kv.key < last
			}
			return kv.key > last
		})
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// next bumps a sequence key and returns its new value.
func (t *etcdTx) next(k string) (uint64, error) {
	v, _, err := t.get(k)
	if err != nil {
		return 0, err
	}
	var n uint64
	if len(v) > 0 {
		if n, err = strconv.ParseUint(string(v), 10, 64); err != nil {
			return 0, fmt.Errorf("sequence %s: %w", k, err)
		}
	}
	n++
	t.put(k, []byte(strconv.FormatUint(n, 10)))
	return n, nil
}

// Append adds an entry, assigning its sequence number and time.
func (t *etcdTx) Append(e Entry) error {
	seq, err := t.next(keySeqEntry)
	if err != nil {
		return err
	}
	e.Seq = seq
	if e.Time.IsZero() {
		e.Time = t.Now()
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	t.put(keyEntries+hex16(seq), v)
	if e.ActionID != 0 {
		t.put(keyByAction+hex16(e.ActionID)+"/"+hex16(seq), nil)
	}
	return nil
}

// AppendFor adds an entry about the action.
func (t *etcdTx) AppendFor(r *Action, kind Kind, msg string, data any) error {
	e, err := actionEntry(r, kind, msg, data)
	if err != nil {
		return err
	}
	return t.Append(e)
}

// Create stores a new action, assigning its ID.
func (t *etcdTx) Create(r *Action) error {
	id, err := t.next(keySeqAction)
	if err != nil {
		return err
	}
	r.ID = id
	if r.Created.IsZero() {
		r.Created = t.Now()
	}
	return t.Put(r)
}

// Put stores the action and keeps the index of open actions.
func (t *etcdTx) Put(r *Action) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	t.put(keyActions+hex16(r.ID), v)
	if r.Open() {
		t.put(keyOpen+hex16(r.ID), []byte(r.Pool))
		return nil
	}
	if _, ok, err := t.get(keyOpen + hex16(r.ID)); err != nil {
		return err
	} else if ok {
		t.del(keyOpen + hex16(r.ID))
	}
	return nil
}

// Save stores an action the runner holds in memory, keeping what intake
// may have added meanwhile (episodes and resolved episodes, a workflow's
// cancel request).
func (t *etcdTx) Save(r *Action) error {
	if stored, err := t.Get(r.ID); err == nil {
		keepIntake(r, stored)
	} else if t.err != nil {
		return t.err
	}
	return t.Put(r)
}

// Get returns the action with the ID.
func (t *etcdTx) Get(id uint64) (*Action, error) {
	v, ok, err := t.get(keyActions + hex16(id))
	if err != nil {
		t.err = cmpErr(t.err, err)
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("action %d not in the journal", id)
	}
	var r Action
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("action %d: %w", id, err)
	}
	return &r, nil
}

func cmpErr(old, err error) error {
	if old != nil {
		return old
	}
	return err
}

// Open returns the open actions, oldest first; of one pool unless pool is empty.
func (t *etcdTx) Open(pool string) ([]*Action, error) {
	kvs, err := t.scan(keyOpen, "", false, 0)
	if err != nil {
		return nil, err
	}
	var out []*Action
	for _, kv := range kvs {
		if pool != "" && string(kv.value) != pool {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimPrefix(kv.key, keyOpen), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("open index %s: %w", kv.key, err)
		}
		r, err := t.Get(id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Recent returns up to limit actions, newest first.
func (t *etcdTx) Recent(limit int) ([]*Action, error) {
	if limit <= 0 {
		return nil, nil
	}
	kvs, err := t.scan(keyActions, "", true, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*Action, 0, len(kvs))
	for _, kv := range kvs {
		var r Action
		if err := json.Unmarshal(kv.value, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", kv.key, err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// EntriesFor returns the entries about the action, oldest first.
func (t *etcdTx) EntriesFor(id uint64) ([]Entry, error) {
	kvs, err := t.scan(keyByAction+hex16(id)+"/", "", false, 0)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(kvs))
	for _, kv := range kvs {
		seq := kv.key[strings.LastIndexByte(kv.key, '/')+1:]
		v, ok, err := t.get(keyEntries + seq)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("entry %s: %w", seq, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Entries returns up to limit entries with a sequence number above after,
// oldest first.
func (t *etcdTx) Entries(after uint64, limit int) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	kvs, err := t.scan(keyEntries, keyEntries+hex16(after+1), false, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(kvs))
	for _, kv := range kvs {
		var e Entry
		if err := json.Unmarshal(kv.value, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", kv.key, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func etcdEpisodeKey(key string) string { return keyEpisodes + url.PathEscape(key) }

// Episode returns the action that answers the episode key. A read error
// fails the transaction.
func (t *etcdTx) Episode(key string) (uint64, bool) {
	v, ok, err := t.get(etcdEpisodeKey(key))
	if err != nil {
		t.err = cmpErr(t.err, err)
		return 0, false
	}
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, false
	}
	return id, true
}

// SetEpisode points the episode key at the action.
func (t *etcdTx) SetEpisode(key string, id uint64) error {
	t.put(etcdEpisodeKey(key), []byte(strconv.FormatUint(id, 10)))
	return nil
}

func (t *etcdTx) Target(key string) (Target, error) {
	var s Target
	v, ok, err := t.get(keyTargets + url.PathEscape(key))
	if err != nil || !ok {
		return s, err
	}
	return s, json.Unmarshal(v, &s)
}

func (t *etcdTx) PutTarget(key string, s Target) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	t.put(keyTargets+url.PathEscape(key), v)
	return nil
}

// Attempts returns the pool's Attempts within the hour before now.
func (t *etcdTx) Attempts(pool string, now time.Time) ([]time.Time, error) {
	var all []time.Time
	v, ok, err := t.get(keyAttempts + url.PathEscape(pool))
	if err != nil {
		return nil, err
	}
	if ok {
		if err := json.Unmarshal(v, &all); err != nil {
			return nil, err
		}
	}
	return withinHour(all, now), nil
}

func (t *etcdTx) AddAttempt(pool string, at time.Time) error {
	recent, err := t.Attempts(pool, at)
	if err != nil {
		return err
	}
	v, err := json.Marshal(append(recent, at))
	if err != nil {
		return err
	}
	t.put(keyAttempts+url.PathEscape(pool), v)
	return nil
}

func etcdHoldKey(pool string) string { return keyHolds + url.PathEscape(string(holdKey(pool))) }

// Holds returns the holds set through the API.
func (t *etcdTx) Holds() ([]Hold, error) {
	kvs, err := t.scan(keyHolds, "", false, 0)
	if err != nil {
		return nil, err
	}
	var out []Hold
	for _, kv := range kvs {
		var h Hold
		if err := json.Unmarshal(kv.value, &h); err != nil {
			return nil, fmt.Errorf("%s: %w", kv.key, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// PutHold stores a hold; an empty pool holds every pool.
func (t *etcdTx) PutHold(h Hold) error {
	v, err := json.Marshal(h)
	if err != nil {
		return err
	}
	t.put(etcdHoldKey(h.Pool), v)
	return nil
}

// DeleteHold lifts a hold and reports whether there was one.
func (t *etcdTx) DeleteHold(pool string) (bool, error) {
	_, ok, err := t.get(etcdHoldKey(pool))
	if err != nil || !ok {
		return false, err
	}
	t.del(etcdHoldKey(pool))
	return true, nil
}

func (t *etcdTx) Breaker() (Breaker, error) {
	var s Breaker
	v, ok, err := t.get(keyStormState)
	if err != nil || !ok {
		return s, err
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return s, fmt.Errorf("breaker state: %w", err)
	}
	return s, nil
}

func (t *etcdTx) PutBreaker(s Breaker) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	t.put(keyStormState, v)
	return nil
}

// GC removes old finished actions with their entries and episode keys,
// then old entries about no kept action, as boltTx.GC does. One etcd
// transaction takes at most etcdMaxOps writes, so a batch also stops
// there, possibly part-way through one action's entries (the action itself
// goes with its last entries, in a later batch).
func (t *etcdTx) GC(before time.Time, limit int) (GCCounts, bool, error) {
	var n GCCounts
	budget := etcdMaxOps - 8
	actions, err := t.scan(keyActions, "", false, 0)
	if err != nil {
		return n, false, err
	}
	kept := map[uint64]bool{}
	done := 0
	for _, kv := range actions {
		var a Action
		if err := json.Unmarshal(kv.value, &a); err != nil {
			return n, false, fmt.Errorf("%s: %w", kv.key, err)
		}
		kept[a.ID] = true
		if !a.Created.Before(before) {
			continue
		}
		finished := a.Finished
		if finished.IsZero() {
			finished = a.Created
		}
		if a.Open() || !finished.Before(before) {
			continue
		}
		if done == limit {
			return n, true, nil
		}
		idx, err := t.scan(keyByAction+hex16(a.ID)+"/", "", false, 0)
		if err != nil {
			return n, false, err
		}
		for _, kv := range idx {
			if budget < 2 {
				return n, true, nil
			}
			t.del(keyEntries + kv.key[strings.LastIndexByte(kv.key, '/')+1:])
			t.del(kv.key)
			budget -= 2
			n.Entries++
		}
		if budget < 2+len(a.Episodes) {
			return n, true, nil
		}
		for _, key := range a.Episodes {
			if id, ok := t.Episode(key); ok && id == a.ID {
				t.del(etcdEpisodeKey(key))
				budget--
				n.Episodes++
			}
		}
		t.del(keyActions + hex16(a.ID))
		if _, ok, err := t.get(keyOpen + hex16(a.ID)); err != nil {
			return n, false, err
		} else if ok {
			t.del(keyOpen + hex16(a.ID))
			budget--
		}
		budget--
		delete(kept, a.ID)
		done++
		n.Actions++
	}
	entries, err := t.scan(keyEntries, "", false, 0)
	if err != nil {
		return n, false, err
	}
	removed := 0
	for _, kv := range entries {
		var e Entry
		if err := json.Unmarshal(kv.value, &e); err != nil {
			return n, false, fmt.Errorf("%s: %w", kv.key, err)
		}
		if !e.Time.Before(before) {
			break
		}
		if e.ActionID != 0 && kept[e.ActionID] {
			continue
		}
		if removed >= limit || budget < 2 {
			return n, true, t.err
		}
		t.del(kv.key)
		budget--
		if e.ActionID != 0 {
			t.del(keyByAction + hex16(e.ActionID) + "/" + hex16(e.Seq))
			budget--
		}
		removed++
		n.Entries++
	}
	return n, false, t.err
}

// Stats returns the size of the etcd member's database the client talks
// to (shared with whatever else the cluster holds) and how many actions
// the journal holds.
func (t *etcdTx) Stats() (Stats, error) {
	ctx, cancel := t.j.callCtx()
	defer cancel()
	resp, err := t.j.cli.Get(ctx, t.j.key(keyActions), clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(t.rev))
	if err != nil {
		return Stats{}, fmt.Errorf("etcd unavailable: %w", err)
	}
	st := Stats{Actions: int(resp.Count)}
	for _, ep := range t.j.cli.Endpoints() {
		if s, err := t.j.cli.Status(ctx, ep); err == nil {
			st.SizeBytes = s.DbSizeInUse
			break
		}
	}
	return st, nil
}

var (
	_ Journal = (*Etcd)(nil)
	_ Tx      = (*etcdTx)(nil)
)

// LockPool gives this replica a pool's actions, one replica at a time,
// with a concurrency.Mutex per pool on the replica's lease session: it
// waits while another replica holds the pool, at most until that replica's
// lease expires when it died. It returns a context that ends when the
// replica loses the pool (its lease expired) or ctx ends, and the function
// that releases the pool.
func (j *Etcd) LockPool(ctx context.Context, pool string) (context.Context, func(), error) {
	s, err := j.session()
	if err != nil {
		return nil, nil, err
	}
	m := concurrency.NewMutex(s, j.key(keyPools+url.PathEscape(pool)+"/"))
	if err := m.Lock(clientv3.WithRequireLeader(ctx)); err != nil {
		return nil, nil, fmt.Errorf("etcd unavailable: taking pool %s: %w", pool, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.Done():
			cancel()
		case <-lctx.Done():
		}
	}()
	return lctx, func() {
		cancel()
		uctx, ucancel := j.callCtx()
		defer ucancel()
		_ = m.Unlock(uctx) // when it fails the key goes with the lease
	}, nil
}
