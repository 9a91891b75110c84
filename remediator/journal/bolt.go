package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketEntries  = []byte("entries")
	bucketActions  = []byte("actions")
	bucketOpen     = []byte("open")
	bucketByAction = []byte("action_entries")
	bucketEpisodes = []byte("episodes")
	bucketTargets  = []byte("targets")
	bucketAttempts = []byte("attempts")
	bucketHolds    = []byte("holds")
	bucketStorm    = []byte("storm")
	allBuckets     = [][]byte{bucketEntries, bucketActions, bucketOpen, bucketByAction,
		bucketEpisodes, bucketTargets, bucketAttempts, bucketHolds, bucketStorm}
)

// globalHoldKey is the holds bucket key of a hold on every pool.
const globalHoldKey = "*"

// stormKey is the storm bucket's key of the breaker state.
var stormKey = []byte("breaker")

// Bolt is the journal in a bbolt file. Every Update is fsync'd
// before it returns.
type Bolt struct {
	db    *bolt.DB
	clock func() time.Time
}

// OpenBolt opens or creates the journal file at path.
func OpenBolt(path string) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening journal %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising journal %s: %w", path, err)
	}
	return &Bolt{db: db, clock: time.Now}, nil
}

// Close closes the file.
func (j *Bolt) Close() error { return j.db.Close() }

// SetClock implements Journal.
func (j *Bolt) SetClock(now func() time.Time) { j.clock = now }

// Update implements Journal.
func (j *Bolt) Update(fn func(tx Tx) error) error {
	return j.db.Update(func(btx *bolt.Tx) error { return fn(&boltTx{tx: btx, clock: j.clock}) })
}

// View implements Journal.
func (j *Bolt) View(fn func(tx Tx) error) error {
	return j.db.View(func(btx *bolt.Tx) error { return fn(&boltTx{tx: btx, clock: j.clock}) })
}

// boltTx is a transaction of a Bolt journal.
type boltTx struct {
	tx    *bolt.Tx
	clock func() time.Time
}

func (t *boltTx) Now() time.Time { return t.clock() }

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// Append adds an entry, assigning its sequence number and time.
func (t *boltTx) Append(e Entry) error {
	b := t.tx.Bucket(bucketEntries)
	seq, err := b.NextSequence()
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
	if err := b.Put(u64(seq), v); err != nil {
		return err
	}
	if e.ActionID != 0 {
		k := append(u64(e.ActionID), u64(seq)...)
		if err := t.tx.Bucket(bucketByAction).Put(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// AppendFor adds an entry about the action.
func (t *boltTx) AppendFor(r *Action, kind Kind, msg string, data any) error {
	e, err := actionEntry(r, kind, msg, data)
	if err != nil {
		return err
	}
	return t.Append(e)
}

// Create stores a new action, assigning its ID.
func (t *boltTx) Create(r *Action) error {
	id, err := t.tx.Bucket(bucketActions).NextSequence()
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
func (t *boltTx) Put(r *Action) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketActions).Put(u64(r.ID), v); err != nil {
		return err
	}
	if r.Open() {
		return t.tx.Bucket(bucketOpen).Put(u64(r.ID), []byte(r.Pool))
	}
	return t.tx.Bucket(bucketOpen).Delete(u64(r.ID))
}

// Save stores an action the runner holds in memory, keeping what intake
// may have added meanwhile (episodes and resolved episodes, a workflow's
// cancel request).
func (t *boltTx) Save(r *Action) error {
	if stored, err := t.Get(r.ID); err == nil {
		keepIntake(r, stored)
	}
	return t.Put(r)
}

// Get returns the action with the ID.
func (t *boltTx) Get(id uint64) (*Action, error) {
	v := t.tx.Bucket(bucketActions).Get(u64(id))
	if v == nil {
		return nil, fmt.Errorf("action %d not in the journal", id)
	}
	var r Action
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("action %d: %w", id, err)
	}
	return &r, nil
}

// Open returns the open actions, oldest first; of one pool unless pool is empty.
func (t *boltTx) Open(pool string) ([]*Action, error) {
	var out []*Action
	err := t.tx.Bucket(bucketOpen).ForEach(func(k, v []byte) error {
		if pool != "" && string(v) != pool {
			return nil
		}
		r, err := t.Get(binary.BigEndian.Uint64(k))
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// Recent returns up to limit actions, newest first.
func (t *boltTx) Recent(limit int) ([]*Action, error) {
	var out []*Action
	c := t.tx.Bucket(bucketActions).Cursor()
	for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
		var r Action
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, err
		}
		out = append(out, &r)
	}
	return out, nil
}

// EntriesFor returns the entries about the action, oldest first.
func (t *boltTx) EntriesFor(id uint64) ([]Entry, error) {
	var out []Entry
	c := t.tx.Bucket(bucketByAction).Cursor()
	prefix := u64(id)
	for k, _ := c.Seek(prefix); len(k) == 16 && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		v := t.tx.Bucket(bucketEntries).Get(k[8:])
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Entries returns up to limit entries with a sequence number above after,
// oldest first.
func (t *boltTx) Entries(after uint64, limit int) ([]Entry, error) {
	var out []Entry
	c := t.tx.Bucket(bucketEntries).Cursor()
	for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Episode returns the action that answers the episode key.
func (t *boltTx) Episode(key string) (uint64, bool) {
	v := t.tx.Bucket(bucketEpisodes).Get([]byte(key))
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

// SetEpisode points the episode key at the action.
func (t *boltTx) SetEpisode(key string, id uint64) error {
	return t.tx.Bucket(bucketEpisodes).Put([]byte(key), u64(id))
}

func (t *boltTx) Target(key string) (Target, error) {
	var s Target
	v := t.tx.Bucket(bucketTargets).Get([]byte(key))
	if v == nil {
		return s, nil
	}
	return s, json.Unmarshal(v, &s)
}

func (t *boltTx) PutTarget(key string, s Target) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketTargets).Put([]byte(key), v)
}

// Attempts returns the pool's Attempts within the hour before now.
func (t *boltTx) Attempts(pool string, now time.Time) ([]time.Time, error) {
	var all []time.Time
	if v := t.tx.Bucket(bucketAttempts).Get([]byte(pool)); v != nil {
		if err := json.Unmarshal(v, &all); err != nil {
			return nil, err
		}
	}
	return withinHour(all, now), nil
}

func (t *boltTx) AddAttempt(pool string, at time.Time) error {
	recent, err := t.Attempts(pool, at)
	if err != nil {
		return err
	}
	v, err := json.Marshal(append(recent, at))
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketAttempts).Put([]byte(pool), v)
}

// Holds returns the holds set through the API.
func (t *boltTx) Holds() ([]Hold, error) {
	var out []Hold
	err := t.tx.Bucket(bucketHolds).ForEach(func(_, v []byte) error {
		var h Hold
		if err := json.Unmarshal(v, &h); err != nil {
			return err
		}
		out = append(out, h)
		return nil
	})
	return out, err
}

// PutHold stores a hold; an empty pool holds every pool.
func (t *boltTx) PutHold(h Hold) error {
	v, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketHolds).Put(holdKey(h.Pool), v)
}

// DeleteHold lifts a hold and reports whether there was one.
func (t *boltTx) DeleteHold(pool string) (bool, error) {
	b := t.tx.Bucket(bucketHolds)
	if b.Get(holdKey(pool)) == nil {
		return false, nil
	}
	return true, b.Delete(holdKey(pool))
}

func holdKey(pool string) []byte {
	if pool == "" {
		return []byte(globalHoldKey)
	}
	return []byte(pool)
}

func (t *boltTx) Breaker() (Breaker, error) {
	var s Breaker
	v := t.tx.Bucket(bucketStorm).Get(stormKey)
	if v == nil {
		return s, nil
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return s, fmt.Errorf("breaker state: %w", err)
	}
	return s, nil
}

func (t *boltTx) PutBreaker(s Breaker) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketStorm).Put(stormKey, v)
}

// GC removes old finished actions with their entries and episode keys,
// then old entries about no kept action. Actions are scanned in ID order
// and the scan stops at the first one created after before, which cannot
// have finished before it.
func (t *boltTx) GC(before time.Time, limit int) (GCCounts, bool, error) {
	var n GCCounts
	actions, entries := t.tx.Bucket(bucketActions), t.tx.Bucket(bucketEntries)
	var old []*Action
	c := actions.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var a Action
		if err := json.Unmarshal(v, &a); err != nil {
			return n, false, fmt.Errorf("action %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if !a.Created.Before(before) {
			break
		}
		finished := a.Finished
		if finished.IsZero() {
			finished = a.Created
		}
		if a.Open() || !finished.Before(before) {
			continue
		}
		if len(old) == limit {
			return t.gcActions(old, n)
		}
		old = append(old, &a)
	}
	n, _, err := t.gcActions(old, n)
	if err != nil {
		return n, false, err
	}
	// Entries about no action (alerts, verdicts, holds, the breaker) and
	// about actions removed earlier, oldest first.
	var keys [][]byte
	ec := entries.Cursor()
	for k, v := ec.First(); k != nil; k, v = ec.Next() {
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return n, false, fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if !e.Time.Before(before) {
			break
		}
		if e.ActionID != 0 && actions.Get(u64(e.ActionID)) != nil {
			continue
		}
		if len(keys) >= limit {
			return n, true, deleteEntries(t.tx, keys, &n)
		}
		keys = append(keys, append([]byte(nil), k...))
		if e.ActionID != 0 {
			keys = append(keys, append(u64(e.ActionID), k...))
		}
	}
	return n, false, deleteEntries(t.tx, keys, &n)
}

// gcActions removes the actions, their entries and the episode keys that
// point at them; more is true, as the caller stopped at its limit.
func (t *boltTx) gcActions(old []*Action, n GCCounts) (GCCounts, bool, error) {
	byAction, entries, episodes := t.tx.Bucket(bucketByAction), t.tx.Bucket(bucketEntries), t.tx.Bucket(bucketEpisodes)
	for _, a := range old {
		var keys [][]byte
		c := byAction.Cursor()
		prefix := u64(a.ID)
		for k, _ := c.Seek(prefix); len(k) == 16 && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := entries.Delete(k[8:]); err != nil {
				return n, false, err
			}
			if err := byAction.Delete(k); err != nil {
				return n, false, err
			}
			n.Entries++
		}
		for _, key := range a.Episodes {
			if id, ok := t.Episode(key); ok && id == a.ID {
				if err := episodes.Delete([]byte(key)); err != nil {
					return n, false, err
				}
				n.Episodes++
			}
		}
		if err := t.tx.Bucket(bucketActions).Delete(u64(a.ID)); err != nil {
			return n, false, err
		}
		if err := t.tx.Bucket(bucketOpen).Delete(u64(a.ID)); err != nil {
			return n, false, err
		}
		n.Actions++
	}
	return n, true, nil
}

// deleteEntries removes entries (8-byte keys) and action index keys
// (16-byte keys).
func deleteEntries(tx *bolt.Tx, keys [][]byte, n *GCCounts) error {
	for _, k := range keys {
		b := tx.Bucket(bucketEntries)
		if len(k) == 16 {
			b = tx.Bucket(bucketByAction)
		} else {
			n.Entries++
		}
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns the file's size and how many actions it holds. bbolt
// reuses the pages the GC frees; the file itself does not shrink.
func (t *boltTx) Stats() (Stats, error) {
	return Stats{SizeBytes: t.tx.Size(), Actions: t.tx.Bucket(bucketActions).Stats().KeyN}, nil
}

var (
	_ Journal = (*Bolt)(nil)
	_ Tx      = (*boltTx)(nil)
)
