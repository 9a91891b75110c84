package remediator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// State is where an action is: pending and running are open; the others
// are final, and the values of the result label of
// xsha_remediator_actions_total.
type State string

// Action states.
const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateSuccess   State = "success"
	StateFailed    State = "failed"
	StateSkipped   State = "skipped"
	StateDryRun    State = "dry_run"
	StateCancelled State = "cancelled"
)

// results are the final states an action can end with once it ran or was
// skipped, pre-set in xsha_remediator_actions_total.
var results = []State{StateSuccess, StateFailed, StateSkipped, StateDryRun}

// StepState is where a step of an action is.
type StepState string

// Step states.
const (
	StepStateStarted StepState = "started"
	StepStateDone    StepState = "done"
	StepStateFailed  StepState = "failed"
)

// Kind is what a journal entry is about.
type Kind string

// Entry kinds.
const (
	KindAlert   Kind = "alert"   // an alert as received
	KindVerdict Kind = "verdict" // what the policy decided about it
	KindAction  Kind = "action"  // an action changed state
	KindStep    Kind = "step"    // a step started or ended
	KindCall    Kind = "call"    // an XAPI write and its result
	KindState   Kind = "state"   // live state as read
	KindHold    Kind = "hold"    // a hold was set or lifted
	KindNote    Kind = "note"    // anything else worth keeping
)

// HoldSource is who holds a pool.
type HoldSource string

// Hold sources.
const (
	HoldSourceAPI  HoldSource = "api"  // an operator, through the hold API
	HoldSourceFile HoldSource = "file" // the policy file's holds
	HoldSourceAuto HoldSource = "auto" // the pool's own state (maintenance)
)

// Action is one remediation action as journaled.
type Action struct {
	ID uint64 `json:"id"`
	// Name says which action it is; the steps follow from it.
	Name ActionName `json:"action"`
	Pool string     `json:"pool"`
	Host string     `json:"host,omitempty"`
	// State is pending, running, or the result.
	State  State `json:"state"`
	DryRun bool  `json:"dry_run"`
	// Reason says why the action ended as it did.
	Reason string `json:"reason,omitempty"`
	// Alert is the alert that asked for the action.
	Alert AlertRef `json:"alert"`
	// Episodes are the episode keys this action answers.
	Episodes []string `json:"episodes"`
	// Resolved are the episodes whose alerts resolved.
	Resolved []string  `json:"resolved,omitempty"`
	Created  time.Time `json:"created"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	Steps    []Step    `json:"steps,omitempty"`
	// Wrote is set once a step that writes through XAPI has started; such
	// an action counts against the pool's hourly attempts.
	Wrote bool `json:"wrote,omitempty"`
	// Resumed counts restarts that found the action running.
	Resumed int `json:"resumed,omitempty"`
}

// AlertRef identifies the alert behind an action.
type AlertRef struct {
	Name        string    `json:"name"`
	Fingerprint string    `json:"fingerprint"`
	StartsAt    time.Time `json:"starts_at"`
	GroupKey    string    `json:"group_key,omitempty"`
}

// Step is one step of an action.
type Step struct {
	Name     stepName  `json:"name"`
	State    StepState `json:"state"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Note     string    `json:"note,omitempty"`
	// Calls are the XAPI writes the step journaled before making them.
	Calls []string `json:"calls,omitempty"`
}

// open reports whether the record still has work to do.
func (r *Action) open() bool { return r.State == StatePending || r.State == StateRunning }

// target is what cooldown and backoff count against: the pool, or the host
// within it.
func (r *Action) target() string { return targetKey(r.Pool, r.Host) }

func targetKey(pool, host string) string {
	if host == "" {
		return pool
	}
	return pool + "/" + host
}

// Entry is one line of the journal.
type Entry struct {
	Seq      uint64          `json:"seq"`
	Time     time.Time       `json:"time"`
	Kind     Kind            `json:"kind"`
	ActionID uint64          `json:"action_id,omitempty"`
	Action   ActionName      `json:"action,omitempty"`
	Pool     string          `json:"pool,omitempty"`
	Host     string          `json:"host,omitempty"`
	Message  string          `json:"message"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// Hold pauses remediation of one pool, or of every pool when Pool is empty.
type Hold struct {
	Pool   string     `json:"pool,omitempty"`
	Reason string     `json:"reason"`
	Since  time.Time  `json:"since"`
	Source HoldSource `json:"source"`
}

// targetState is what cooldown and backoff need about one target.
type targetState struct {
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastFailure time.Time `json:"last_failure,omitzero"`
	Failures    int       `json:"consecutive_failures,omitempty"`
}

var (
	bucketEntries  = []byte("entries")
	bucketActions  = []byte("actions")
	bucketOpen     = []byte("open")
	bucketByAction = []byte("action_entries")
	bucketEpisodes = []byte("episodes")
	bucketTargets  = []byte("targets")
	bucketAttempts = []byte("attempts")
	bucketHolds    = []byte("holds")
	allBuckets     = [][]byte{bucketEntries, bucketActions, bucketOpen, bucketByAction,
		bucketEpisodes, bucketTargets, bucketAttempts, bucketHolds}
)

// globalHoldKey is the holds bucket key of a hold on every pool.
const globalHoldKey = "*"

// Journal is the durable record of every decision, kept in a bbolt file.
// Every Update is fsync'd before it returns.
type Journal struct {
	db  *bolt.DB
	now func() time.Time
}

// OpenJournal opens or creates the journal file at path.
func OpenJournal(path string) (*Journal, error) {
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
	return &Journal{db: db, now: time.Now}, nil
}

// Close closes the file.
func (j *Journal) Close() error { return j.db.Close() }

// Update runs fn in one durable write transaction: everything fn records
// is on disk when Update returns nil, and nothing is when it fails.
func (j *Journal) Update(fn func(tx *Tx) error) error {
	return j.db.Update(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx, now: j.now}) })
}

// View runs fn in a read-only transaction.
func (j *Journal) View(fn func(tx *Tx) error) error {
	return j.db.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx, now: j.now}) })
}

// Tx is a journal transaction.
type Tx struct {
	tx  *bolt.Tx
	now func() time.Time
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// Append adds an entry, assigning its sequence number and time.
func (t *Tx) Append(e Entry) error {
	b := t.tx.Bucket(bucketEntries)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	e.Seq = seq
	if e.Time.IsZero() {
		e.Time = t.now()
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

// AppendFor adds an entry about the record.
func (t *Tx) AppendFor(r *Action, kind Kind, msg string, data any) error {
	e := Entry{Kind: kind, ActionID: r.ID, Action: r.Name, Pool: r.Pool, Host: r.Host, Message: msg}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		e.Data = b
	}
	return t.Append(e)
}

// Create stores a new record, assigning its ID.
func (t *Tx) Create(r *Action) error {
	id, err := t.tx.Bucket(bucketActions).NextSequence()
	if err != nil {
		return err
	}
	r.ID = id
	if r.Created.IsZero() {
		r.Created = t.now()
	}
	return t.Put(r)
}

// Put stores the record and keeps the index of open records.
func (t *Tx) Put(r *Action) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketActions).Put(u64(r.ID), v); err != nil {
		return err
	}
	if r.open() {
		return t.tx.Bucket(bucketOpen).Put(u64(r.ID), []byte(r.Pool))
	}
	return t.tx.Bucket(bucketOpen).Delete(u64(r.ID))
}

// Save stores a record the runner holds in memory, keeping what intake
// may have added meanwhile (episodes and resolved episodes).
func (t *Tx) Save(r *Action) error {
	if stored, err := t.Get(r.ID); err == nil {
		for _, e := range stored.Episodes {
			if !slices.Contains(r.Episodes, e) {
				r.Episodes = append(r.Episodes, e)
			}
		}
		for _, e := range stored.Resolved {
			if !slices.Contains(r.Resolved, e) {
				r.Resolved = append(r.Resolved, e)
			}
		}
	}
	return t.Put(r)
}

// Get returns the record with the ID.
func (t *Tx) Get(id uint64) (*Action, error) {
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

// Open returns the open records, oldest first; of one pool unless pool is empty.
func (t *Tx) Open(pool string) ([]*Action, error) {
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

// Recent returns up to limit records, newest first.
func (t *Tx) Recent(limit int) ([]*Action, error) {
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
func (t *Tx) EntriesFor(id uint64) ([]Entry, error) {
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
func (t *Tx) Entries(after uint64, limit int) ([]Entry, error) {
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
func (t *Tx) Episode(key string) (uint64, bool) {
	v := t.tx.Bucket(bucketEpisodes).Get([]byte(key))
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

// SetEpisode points the episode key at the action.
func (t *Tx) SetEpisode(key string, id uint64) error {
	return t.tx.Bucket(bucketEpisodes).Put([]byte(key), u64(id))
}

func (t *Tx) target(key string) (targetState, error) {
	var s targetState
	v := t.tx.Bucket(bucketTargets).Get([]byte(key))
	if v == nil {
		return s, nil
	}
	return s, json.Unmarshal(v, &s)
}

func (t *Tx) putTarget(key string, s targetState) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketTargets).Put([]byte(key), v)
}

// attempts returns the pool's attempts within the hour before now.
func (t *Tx) attempts(pool string, now time.Time) ([]time.Time, error) {
	var all []time.Time
	if v := t.tx.Bucket(bucketAttempts).Get([]byte(pool)); v != nil {
		if err := json.Unmarshal(v, &all); err != nil {
			return nil, err
		}
	}
	var recent []time.Time
	for _, a := range all {
		if now.Sub(a) < time.Hour {
			recent = append(recent, a)
		}
	}
	return recent, nil
}

func (t *Tx) addAttempt(pool string, at time.Time) error {
	recent, err := t.attempts(pool, at)
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
func (t *Tx) Holds() ([]Hold, error) {
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
func (t *Tx) PutHold(h Hold) error {
	v, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketHolds).Put(holdKey(h.Pool), v)
}

// DeleteHold lifts a hold and reports whether there was one.
func (t *Tx) DeleteHold(pool string) (bool, error) {
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

// mustJSON encodes values that always encode (plain structs).
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding journal data: %v", err))
	}
	return b
}
