package remediator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"xsha/remediator/journal"
)

// Storm guard defaults, safe for a fleet of about 50 pools: a storage or
// network outage that takes pool HA down on many pools at once has one
// cause that no per-pool repair fixes, so the remediator stops and pages.
const (
	defaultMaxRunningPools = 3
	defaultBreakerMaxPools = 5
	// defaultBreakerWindow is longer than the remediator receiver's
	// repeat_interval (1h in deploy/alertmanager), so an alert that keeps
	// firing keeps counting between two notifications.
	defaultBreakerWindow = 90 * time.Minute
)

// BreakerPolicy is the circuit breaker of the storm guard: when more pools
// than it allows have a firing remediable alert (an alert the policy maps to
// an action) within the window, no new action runs until it closes.
type BreakerPolicy struct {
	// MaxPools opens the breaker when more pools than this have a firing
	// remediable alert; 0 turns the absolute limit off.
	MaxPools int `yaml:"max_pools"`
	// MaxPoolsPercent opens the breaker when more than this share of the
	// configured pools have one; 0 turns the relative limit off.
	MaxPoolsPercent float64 `yaml:"max_pools_percent"`
	// Window is how long a firing alert counts after the last webhook that
	// carried it; a resolved alert stops counting at once. Keep it longer
	// than the receiver's repeat_interval.
	Window model.Duration `yaml:"window"`
	// AutoClose closes the breaker by itself once the count is back within
	// the limits; when false only POST /api/v1/breaker/reset closes it.
	AutoClose bool `yaml:"auto_close"`
}

// enabled reports whether the breaker can open at all.
func (b BreakerPolicy) enabled() bool { return b.MaxPools > 0 || b.MaxPoolsPercent > 0 }

// trips reports whether n pools with a firing remediable alert, out of
// configured pools, open the breaker, and says why.
func (b BreakerPolicy) trips(n, configured int) (bool, string) {
	if b.MaxPools > 0 && n > b.MaxPools {
		return true, fmt.Sprintf("%d pools have a firing remediable alert, more than breaker.max_pools %d", n, b.MaxPools)
	}
	if b.MaxPoolsPercent > 0 && configured > 0 && float64(n)*100 > b.MaxPoolsPercent*float64(configured) {
		return true, fmt.Sprintf("%d of %d pools (%.0f%%) have a firing remediable alert, more than breaker.max_pools_percent %g%%",
			n, configured, float64(n)*100/float64(configured), b.MaxPoolsPercent)
	}
	return false, ""
}

func (b BreakerPolicy) validate() error {
	switch {
	case b.MaxPools < 0:
		return fmt.Errorf("breaker: max_pools %d must not be negative", b.MaxPools)
	case b.MaxPoolsPercent < 0 || b.MaxPoolsPercent >= 100:
		return fmt.Errorf("breaker: max_pools_percent %g must be within [0, 100)", b.MaxPoolsPercent)
	case b.enabled() && b.Window <= 0:
		return errors.New("breaker: window must be positive")
	}
	return nil
}

// BreakerStatus is the breaker as the API and the status page show it.
type BreakerStatus struct {
	Open     bool      `json:"open"`
	Since    time.Time `json:"since,omitzero"`
	Reason   string    `json:"reason,omitempty"`
	Closed   time.Time `json:"closed,omitzero"`
	ClosedBy string    `json:"closed_by,omitempty"`
	// Pools are the pools with a firing remediable alert within the window.
	Pools []string `json:"pools"`
	// Enabled is false when the policy turns the breaker off.
	Enabled   bool `json:"enabled"`
	AutoClose bool `json:"auto_close"`
}

// breakerStatus returns the state as shown.
func breakerStatus(s journal.Breaker, b BreakerPolicy) BreakerStatus {
	pools := s.Pools()
	if pools == nil {
		pools = []string{}
	}
	return BreakerStatus{Open: s.Open, Since: s.Since, Reason: s.Reason, Closed: s.Closed, ClosedBy: s.ClosedBy,
		Pools: pools, Enabled: b.enabled(), AutoClose: b.AutoClose}
}

// fingerprintOf identifies an alert in the breaker's count.
func fingerprintOf(name, pool, host, fp string) string {
	if fp != "" {
		return fp
	}
	return name + "|" + pool + "|" + host
}

// stormUpdate changes the breaker's state within a journal transaction:
// fn edits the firing alerts, then the breaker opens or (when the policy
// says so) closes on the new count, and every change is journaled. It
// returns the state as stored.
func (r *engine) stormUpdate(tx journal.Tx, pol *Policy, fn func(s *journal.Breaker)) (journal.Breaker, error) {
	s, err := tx.Breaker()
	if err != nil {
		return s, err
	}
	if s.Firing == nil {
		s.Firing = map[string]journal.FiringAlert{}
	}
	before := mustJSON(s)
	now := tx.Now()
	b := pol.Breaker
	s.Prune(now, time.Duration(b.Window))
	if fn != nil {
		fn(&s)
	}
	n := len(s.Pools())
	trips, why := b.trips(n, len(r.cfg.Pools))
	switch {
	case !s.Open && b.enabled() && trips:
		s.Open, s.Since, s.Reason = true, now, why
		r.log.Error("remediation breaker opened: no new action runs until it closes", "reason", why, "pools", s.Pools())
		if err := tx.Append(journal.Entry{Kind: journal.KindBreaker, Message: "breaker opened: " + why + "; no new action runs until it closes",
			Data: mustJSON(map[string]any{"pools": s.Pools()})}); err != nil {
			return s, err
		}
	case s.Open && !b.enabled():
		if err := closeBreaker(tx, &s, "policy", "the policy turns the breaker off"); err != nil {
			return s, err
		}
		r.log.Warn("remediation breaker closed: the policy turns it off")
	case s.Open && b.AutoClose && !trips:
		msg := fmt.Sprintf("%d pool(s) have a firing remediable alert, within the limits again", n)
		if err := closeBreaker(tx, &s, "auto", msg); err != nil {
			return s, err
		}
		r.log.Warn("remediation breaker closed by itself", "pools", s.Pools())
	}
	if string(before) != string(mustJSON(s)) {
		if err := tx.PutBreaker(s); err != nil {
			return s, err
		}
	}
	return s, nil
}

func closeBreaker(tx journal.Tx, s *journal.Breaker, by, why string) error {
	s.Open, s.Closed, s.ClosedBy = false, tx.Now(), by
	return tx.Append(journal.Entry{Kind: journal.KindBreaker, Message: fmt.Sprintf("breaker closed (%s): %s", by, why)})
}

// observeAlerts counts the remediable alerts of a webhook message before
// any of them is decided, so that a message carrying a storm opens the
// breaker before its first action is queued. A firing alert counts from
// the last webhook that carried it until it resolves or the window passes.
func (r *engine) observeAlerts(tx journal.Tx, pol *Policy, alerts []alertLabels) (journal.Breaker, error) {
	return r.stormUpdate(tx, pol, func(s *journal.Breaker) {
		now := tx.Now()
		for _, a := range alerts {
			if _, ok := pol.actionFor(a.name); !ok || a.pool == "" {
				continue
			}
			key := fingerprintOf(a.name, a.pool, a.host, a.fingerprint)
			if a.status == statusResolved {
				delete(s.Firing, key)
				continue
			}
			s.Firing[key] = journal.FiringAlert{Pool: a.pool, Name: a.name, Seen: now}
		}
	})
}

// alertLabels is what the breaker needs of one alert.
type alertLabels struct {
	name, pool, host, fingerprint, status string
}

// breakerGate returns why the breaker keeps an action from starting, or "".
func breakerGate(s journal.Breaker) string {
	if !s.Open {
		return ""
	}
	return fmt.Sprintf("the remediation breaker is open since %s: %s; reset it with POST /api/v1/breaker/reset once the common cause is understood",
		s.Since.UTC().Format(time.RFC3339), s.Reason)
}

// refreshBreaker ages the count out and closes the breaker when the policy
// lets it; the maintenance loop calls it, so the breaker closes and its
// metrics fall back without a webhook.
func (r *engine) refreshBreaker() error {
	var s journal.Breaker
	pol := r.policy.Load()
	err := r.journal.Update(func(tx journal.Tx) error {
		var err error
		s, err = r.stormUpdate(tx, pol, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("refreshing the breaker: %w", err)
	}
	r.setBreakerGauges(s)
	return nil
}

// resetBreaker closes the breaker at an operator's request and forgets the
// alerts counted so far: alerts still firing count again when Alertmanager
// sends them next, and open the breaker again if the storm goes on. It
// reports whether the breaker was open.
func (r *engine) resetBreaker(who string) (bool, error) {
	var s journal.Breaker
	var was bool
	err := r.journal.Update(func(tx journal.Tx) error {
		var err error
		s, err = tx.Breaker()
		if err != nil {
			return err
		}
		was = s.Open
		s.Firing = nil
		if was {
			if err := closeBreaker(tx, &s, "reset", "reset by an operator ("+who+"); counting starts again"); err != nil {
				return err
			}
		}
		return tx.PutBreaker(s)
	})
	if err != nil {
		return false, fmt.Errorf("resetting the breaker: %w", err)
	}
	r.setBreakerGauges(s)
	for pool := range r.wake {
		r.wakePool(pool)
	}
	return was, nil
}

// breakerView returns the breaker's state as last stored.
func (r *engine) breakerView() (BreakerStatus, error) {
	var s journal.Breaker
	err := r.journal.View(func(tx journal.Tx) error {
		var err error
		s, err = tx.Breaker()
		return err
	})
	if err != nil {
		return BreakerStatus{}, err
	}
	pol := r.policy.Load()
	s.Prune(r.now(), time.Duration(pol.Breaker.Window))
	return breakerStatus(s, pol.Breaker), nil
}

func (r *engine) setBreakerGauges(s journal.Breaker) {
	if s.Open {
		r.metrics.breakerOpen.Set(1)
	} else {
		r.metrics.breakerOpen.Set(0)
	}
	r.metrics.breakerPools.Set(float64(len(s.Pools())))
}

// runLimiter lets at most a policy-given number of pools run an action at
// once. A free slot goes to the oldest pending action of a pool that waits
// (action IDs grow as alerts come), so pools run in the order their alerts
// came and none starves.
type runLimiter struct {
	mu      sync.Mutex
	running map[string]bool
	waiting map[string]uint64 // pool -> the ID of the action it waits with
	changed chan struct{}     // closed at every change
	metrics *metrics
}

func newRunLimiter(m *metrics) *runLimiter {
	return &runLimiter{running: map[string]bool{}, waiting: map[string]uint64{}, changed: make(chan struct{}), metrics: m}
}

// broadcastLocked wakes every waiting pool to look again.
func (l *runLimiter) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
	l.metrics.runningPools.Set(float64(len(l.running)))
	l.metrics.waitingPools.Set(float64(len(l.waiting)))
}

// poke wakes waiting pools after the limit changed.
func (l *runLimiter) poke() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.broadcastLocked()
}

// olderFunc reports whether a pool other than pool, and not running, has a
// pending action older than id.
type olderFunc func(pool string, id uint64, running map[string]bool) (bool, error)

// acquire takes the pool's slot for action id, waiting while limit() pools
// already run or an older action waits; limit() <= 0 means no limit. A
// forced acquire (an action that was already running when the remediator
// stopped) never waits: it must finish, the limit notwithstanding.
func (l *runLimiter) acquire(ctx context.Context, pool string, id uint64, force bool, limit func() int, older olderFunc) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.running[pool] {
			return nil
		}
		grant := force
		if n := limit(); !grant && (n <= 0 || len(l.running) < n) {
			o, err := older(pool, id, l.running)
			if err != nil {
				return err
			}
			grant = !o
		}
		if grant {
			delete(l.waiting, pool)
			l.running[pool] = true
			l.broadcastLocked()
			return nil
		}
		if l.waiting[pool] != id {
			l.waiting[pool] = id
			l.broadcastLocked()
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
			l.mu.Lock()
		case <-ctx.Done():
			l.mu.Lock()
			delete(l.waiting, pool)
			l.broadcastLocked()
			return ctx.Err()
		}
	}
}

// release frees the pool's slot.
func (l *runLimiter) release(pool string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[pool] {
		delete(l.running, pool)
		l.broadcastLocked()
	}
}

// olderPending implements olderFunc on the journal's open actions.
func (r *engine) olderPending(pool string, id uint64, running map[string]bool) (bool, error) {
	var older bool
	err := r.journal.View(func(tx journal.Tx) error {
		open, err := tx.Open("")
		if err != nil {
			return err
		}
		for _, a := range open {
			if a.ID < id && a.Pool != pool && a.State == journal.StatePending && !running[a.Pool] {
				if _, ok := r.wake[a.Pool]; ok {
					older = true
					return nil
				}
			}
		}
		return nil
	})
	return older, err
}
