// Package journal is the remediator's durable record of every decision:
// the alerts it received, what the policy decided, each action with its
// steps and the XAPI writes it made, cooldown and backoff, the hourly
// attempts, holds and the storm guard's breaker.
//
// Two implementations sit behind Journal: Bolt, a bbolt file for a single
// replica (the default), and Etcd, shared by several replicas, which also
// gives each replica a lease and a lock per pool. Both keep finished actions
// for a retention and remove older ones in batches (Collect), as
// Alertmanager's nflog and silences do.
package journal

import (
	"encoding/json"
	"slices"
	"time"
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
	KindBreaker Kind = "breaker" // the storm guard's breaker opened or closed
	KindGC      Kind = "gc"      // retention removed old actions and entries
)

// HoldSource is who holds a pool.
type HoldSource string

// Hold sources.
const (
	HoldSourceAPI  HoldSource = "api"  // an operator, through the hold API
	HoldSourceFile HoldSource = "file" // the policy file's holds
	HoldSourceAuto HoldSource = "auto" // the pool's own state (maintenance)
)

// ActionName names an action. The remediator defines the names.
type ActionName string

// StepName names a step of an action. Names are stable: an interrupted
// action resumes at the step the journal names.
type StepName string

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
	// Replica is the remediator replica that last started or resumed the
	// action: the one running it while it is running.
	Replica string `json:"replica,omitempty"`
	// NewMaster is the slave a workflow hands the master role to: the
	// operator's choice, or the one the workflow chose before it wrote.
	NewMaster string `json:"new_master,omitempty"`
	// RequestedBy is the remote address that started a workflow.
	RequestedBy string `json:"requested_by,omitempty"`
	// CancelRequested stops a running workflow that has not written before
	// its next step.
	CancelRequested bool `json:"cancel_requested,omitempty"`
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
	Name     StepName  `json:"name"`
	State    StepState `json:"state"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Note     string    `json:"note,omitempty"`
	// Calls are the XAPI writes the step journaled before making them.
	Calls []string `json:"calls,omitempty"`
}

// Open reports whether the action still has work to do.
func (r *Action) Open() bool { return r.State == StatePending || r.State == StateRunning }

// Target is what cooldown and backoff count against: the pool, or the host
// within it.
func (r *Action) Target() string { return TargetKey(r.Pool, r.Host) }

// TargetKey is the key cooldown and backoff count against: the pool, or
// pool/host for an action on one host.
func TargetKey(pool, host string) string {
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

// Target is what cooldown and backoff need about one target.
type Target struct {
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastFailure time.Time `json:"last_failure,omitzero"`
	Failures    int       `json:"consecutive_failures,omitempty"`
}

// FiringAlert is a remediable alert counted by the breaker.
type FiringAlert struct {
	Pool string    `json:"pool"`
	Name string    `json:"alertname"`
	Seen time.Time `json:"seen"`
}

// Breaker is the breaker's journaled state: the remediable alerts
// firing, and whether the breaker is open, since when and why. It survives
// restarts, so a restart neither closes an open breaker nor forgets the
// alerts that count towards opening it.
type Breaker struct {
	Open   bool      `json:"open"`
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
	// Closed and ClosedBy say when and how it last closed.
	Closed   time.Time `json:"closed,omitzero"`
	ClosedBy string    `json:"closed_by,omitempty"`
	// Firing maps an alert's fingerprint to the alert.
	Firing map[string]FiringAlert `json:"firing,omitempty"`
}

// Pools returns the Pools with a firing remediable alert, sorted.
func (s *Breaker) Pools() []string {
	var out []string
	for _, a := range s.Firing {
		if !slices.Contains(out, a.Pool) {
			out = append(out, a.Pool)
		}
	}
	slices.Sort(out)
	return out
}

// Prune forgets alerts last seen before the window.
func (s *Breaker) Prune(now time.Time, window time.Duration) {
	for fp, a := range s.Firing {
		if now.Sub(a.Seen) >= window {
			delete(s.Firing, fp)
		}
	}
}

// Journal is the durable record of every decision: actions, journal
// entries, episodes, cooldown and backoff state, attempts, holds and the
// breaker. Bolt keeps it in a bbolt file, Etcd in an etcd cluster.
type Journal interface {
	// Update runs fn in one durable write transaction: everything fn
	// records is stored when Update returns nil, and nothing is when it
	// fails.
	Update(fn func(tx Tx) error) error
	// View runs fn in a read-only transaction.
	View(fn func(tx Tx) error) error
	// Close releases the journal.
	Close() error
	// SetClock sets the clock that stamps entries and actions.
	SetClock(now func() time.Time)
}

// Tx is one journal transaction.
type Tx interface {
	// Now is the transaction's clock.
	Now() time.Time
	// Append adds an entry, assigning its sequence number and time.
	Append(e Entry) error
	// AppendFor adds an entry about the action.
	AppendFor(a *Action, kind Kind, msg string, data any) error
	// Create stores a new action, assigning its ID.
	Create(a *Action) error
	// Put stores the action and keeps the index of open actions.
	Put(a *Action) error
	// Save stores an action the runner holds in memory, keeping what intake
	// may have added meanwhile (episodes and resolved episodes).
	Save(a *Action) error
	// Get returns the action with the ID.
	Get(id uint64) (*Action, error)
	// Open returns the open actions, oldest first; of one pool unless pool
	// is empty.
	Open(pool string) ([]*Action, error)
	// Recent returns up to limit actions, newest first.
	Recent(limit int) ([]*Action, error)
	// EntriesFor returns the entries about the action, oldest first.
	EntriesFor(id uint64) ([]Entry, error)
	// Entries returns up to limit entries with a sequence number above
	// after, oldest first.
	Entries(after uint64, limit int) ([]Entry, error)
	// Episode returns the action that answers the episode key.
	Episode(key string) (uint64, bool)
	// SetEpisode points the episode key at the action.
	SetEpisode(key string, id uint64) error
	// Target returns what cooldown and backoff need about a Target.
	Target(key string) (Target, error)
	// PutTarget stores it.
	PutTarget(key string, s Target) error
	// Attempts returns the pool's Attempts within the hour before now.
	Attempts(pool string, now time.Time) ([]time.Time, error)
	// AddAttempt records an attempt on the pool.
	AddAttempt(pool string, at time.Time) error
	// Holds returns the holds set through the API.
	Holds() ([]Hold, error)
	// PutHold stores a hold; an empty pool holds every pool.
	PutHold(h Hold) error
	// DeleteHold lifts a hold and reports whether there was one.
	DeleteHold(pool string) (bool, error)
	// Breaker returns the storm guard's breaker state.
	Breaker() (Breaker, error)
	// PutBreaker stores it.
	PutBreaker(s Breaker) error
	// GC removes up to limit finished actions that finished before
	// before, their entries and the episode keys that point at them, and
	// entries about no kept action older than before. It reports what it
	// removed and whether more is left to remove. Cooldown, backoff,
	// attempts, holds and the breaker are kept apart and never removed.
	GC(before time.Time, limit int) (GCCounts, bool, error)
	// Stats returns the journal's size and how many actions it holds.
	Stats() (Stats, error)
}

// withinHour returns the attempts made less than an hour before now: the
// window of max_attempts_per_hour.
func withinHour(all []time.Time, now time.Time) []time.Time {
	var recent []time.Time
	for _, a := range all {
		if now.Sub(a) < time.Hour {
			recent = append(recent, a)
		}
	}
	return recent
}

// actionEntry is a journal entry about the action r.
func actionEntry(r *Action, kind Kind, msg string, data any) (Entry, error) {
	e := Entry{Kind: kind, ActionID: r.ID, Action: r.Name, Pool: r.Pool, Host: r.Host, Message: msg}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return Entry{}, err
		}
		e.Data = b
	}
	return e, nil
}

// keepIntake copies into r, which the runner holds in memory, what intake
// may have added to the stored action meanwhile: episodes and resolved
// episodes, and a workflow's cancel request.
func keepIntake(r, stored *Action) {
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
	r.CancelRequested = r.CancelRequested || stored.CancelRequested
}
