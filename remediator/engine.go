// Package remediator receives Alertmanager webhooks and, when the
// operator's policy allows it, repairs XenServer pool HA: it re-enables pool
// HA, recovers an old master left in HA emergency mode, and lets a
// returning slave rejoin. Every decision is journaled durably before it is
// acted on; every step re-reads live state through XAPI first; one action
// runs per pool at a time; dry-run is the default.
package remediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xsha/config"
	"xsha/remediator/journal"
)

// defaultMaxBodyBytes caps webhook request bodies.
const defaultMaxBodyBytes = 1 << 20

// engineOptions configure an engine.
type engineOptions struct {
	// Config is the shared configuration; its pools are the ones acted on.
	Config *config.Config
	// Policy is the policy to start with; SetPolicy replaces it.
	Policy *Policy
	// Journal is the open journal.
	Journal journal.Journal
	// Clients gives each configured pool's XAPI client by pool name.
	Clients map[string]PoolClient
	// Maintenance, when set, holds pools whose CloudStack cluster has hosts
	// in maintenance.
	Maintenance maintenanceSource
	// CloudStack, when set, is what workflows use to put hosts into
	// CloudStack maintenance and back; without it they skip those steps.
	CloudStack cloudStackHosts
	// Auth authenticates the webhook and the hold API; required (use
	// NoAuth to turn authentication off explicitly).
	Auth Authenticator
	// MaxBodyBytes caps webhook bodies; defaultMaxBodyBytes when zero.
	MaxBodyBytes int64
	// Registerer receives the metrics; nil for none.
	Registerer prometheus.Registerer
	// Logger receives the logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Retention is how long finished actions are kept; 0 keeps them all.
	Retention time.Duration
	// Replica names this remediator in the actions it runs.
	Replica string
	// Locker, when set, gives one replica at a time a pool's actions (a
	// journal shared by replicas); nil for a journal of one process.
	Locker poolLocker
	// PollInterval is how often a pool's runner looks for open actions
	// besides being woken by its own intake; retryInterval when zero. A
	// shared journal needs it short: another replica's action is found
	// (and taken over) only this way.
	PollInterval time.Duration
}

// poolLocker gives one replica at a time a pool's actions.
type poolLocker interface {
	// LockPool waits until this replica holds the pool. It returns a
	// context that ends when the replica loses the pool (its lease
	// expired) or ctx ends, and the function that releases the pool.
	LockPool(ctx context.Context, pool string) (context.Context, func(), error)
}

// The etcd journal gives replicas their pools one at a time.
var _ poolLocker = (*journal.Etcd)(nil)

// engine is the webhook intake, the journal-backed queue and the
// per-pool action runners.
type engine struct {
	cfg         *config.Config
	policy      atomic.Pointer[Policy]
	journal     journal.Journal
	clients     map[string]PoolClient
	maintenance maintenanceSource
	cloudStack  cloudStackHosts
	auth        Authenticator
	maxBody     int64
	metrics     *metrics
	log         *slog.Logger
	now         func() time.Time
	retention   time.Duration
	limiter     *runLimiter
	replica     string
	locker      poolLocker
	poll        time.Duration

	wake    map[string]chan struct{}
	running atomic.Bool

	mu       sync.Mutex
	autoHeld map[string]autoHold // pool -> last automatic hold evaluation
	// journalDown is the journal's failure while it lasts.
	journalDown *journalFailure
	// lastStatus is what the status page read last, shown while the
	// journal does not answer.
	lastStatus atomic.Pointer[statusData]
}

// journalFailure is why the journal does not answer, and since when.
type journalFailure struct {
	Since time.Time
	Err   string
}

// noteJournal records whether the journal answered, logging once per
// change and keeping xsha_remediator_journal_up.
func (r *engine) noteJournal(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil && r.journalDown != nil:
		r.log.Info("journal answers again; acting resumes", "down_since", r.journalDown.Since)
		r.journalDown = nil
		r.metrics.journalUp.Set(1)
	case err != nil && r.journalDown == nil:
		r.log.Error("journal unavailable: actions stop before their next XAPI write, webhooks are answered 503", "err", err)
		r.journalDown = &journalFailure{Since: time.Now(), Err: err.Error()}
		r.metrics.journalUp.Set(0)
	}
}

// journalFailed returns the journal's failure, nil while it answers.
func (r *engine) journalFailed() *journalFailure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.journalDown
}

// newEngine returns an engine. Call Run to start acting and router to serve HTTP.
func newEngine(opts engineOptions) (*engine, error) {
	switch {
	case opts.Config == nil:
		return nil, errors.New("remediator: no configuration")
	case opts.Policy == nil:
		return nil, errors.New("remediator: no policy")
	case opts.Journal == nil:
		return nil, errors.New("remediator: no journal")
	case opts.Auth == nil:
		return nil, errors.New("remediator: no authenticator (use NoAuth to turn authentication off)")
	}
	for _, p := range opts.Config.Pools {
		if opts.Clients[p.Name] == nil {
			return nil, fmt.Errorf("remediator: no XAPI client for pool %q", p.Name)
		}
	}
	r := &engine{
		cfg:         opts.Config,
		journal:     opts.Journal,
		clients:     opts.Clients,
		maintenance: opts.Maintenance,
		cloudStack:  opts.CloudStack,
		auth:        opts.Auth,
		maxBody:     opts.MaxBodyBytes,
		metrics:     newMetrics(opts.Registerer),
		log:         opts.Logger,
		now:         opts.Now,
		retention:   opts.Retention,
		replica:     opts.Replica,
		locker:      opts.Locker,
		poll:        opts.PollInterval,
		wake:        map[string]chan struct{}{},
		autoHeld:    map[string]autoHold{},
	}
	if r.maxBody <= 0 {
		r.maxBody = defaultMaxBodyBytes
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.poll <= 0 {
		r.poll = retryInterval
	}
	r.limiter = newRunLimiter(r.metrics)
	r.policy.Store(opts.Policy)
	r.journal.SetClock(r.now)
	for _, p := range r.cfg.Pools {
		r.wake[p.Name] = make(chan struct{}, 1)
	}
	r.policyChanged()
	if err := r.refreshBreaker(); err != nil {
		return nil, err
	}
	return r, nil
}

// SetPolicy makes p the running policy (after a reload). Actions already
// queued are gated by it when they start.
func (r *engine) SetPolicy(p *Policy) {
	r.policy.Store(p)
	r.policyChanged()
	r.limiter.poke()
	if err := r.refreshBreaker(); err != nil {
		r.log.Error("breaker not re-evaluated under the new policy; the maintenance loop retries", "err", err)
	}
	r.log.Info("policy loaded", "dry_run", p.DryRun, "actions", len(p.Actions))
}

func (r *engine) policyChanged() {
	p := r.policy.Load()
	if p.anyLive() {
		r.metrics.dryRun.Set(0)
	} else {
		r.metrics.dryRun.Set(1)
	}
	r.updateHoldGauges()
}

// ready reports whether the runners have started.
func (r *engine) ready() bool { return r.running.Load() }

func (r *engine) wakePool(pool string) {
	if ch, ok := r.wake[pool]; ok {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
