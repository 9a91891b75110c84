package xapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	xenapi "github.com/terra-farm/go-xen-api-client"

	"xsha/config"
)

// WatcherOptions are the optional parts of a Watcher.
type WatcherOptions struct {
	// Logger receives the watcher's logs; nil discards them.
	Logger *slog.Logger
	// Metrics counts calls and sessions; nil counts nothing.
	Metrics *Metrics
	// FullReads, when set, bounds how many of the watchers sharing it read
	// their pool in full at once (a token is a buffered slot): decoding a
	// pool's get_all_records answers takes far more memory than the
	// records kept, so a fleet starting or reconnecting all at once would
	// otherwise need that memory for every pool together. nil does not
	// bound.
	FullReads chan struct{}
}

// Watcher keeps one pool's snapshot current: one session on the master,
// a full read, then event.from; and probes of the members on their own
// addresses where the master's view says they need one (see
// probeDueLocked). Each pool has its own Watcher, so one pool down or
// hanging never delays another.
type Watcher struct {
	pool config.Pool
	d    *dialer
	log  *slog.Logger

	attempted     chan struct{}
	attemptedOnce sync.Once

	mu                  sync.Mutex
	view                *Snapshot // last full view built from records; nil before the first
	up                  bool
	lastErr             string
	masterAddr          string
	synced              time.Time
	masterChanges       uint64
	lastMaster          string // UUID
	probes              map[string]Probe
	probedAs            map[string]memberView // the master's view of each address when it was last probed
	lastBackgroundProbe time.Time
	current             *liveSession // the open session; nil between sessions
	published           *Snapshot
	probeNow            chan struct{} // asks for a probe round before the next tick
	fullReads           chan struct{}
}

// NewWatcher returns a watcher for pool; Run starts it.
func NewWatcher(pool config.Pool, opts WatcherOptions) *Watcher {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		pool:      pool,
		d:         newDialer(pool, opts.Metrics),
		log:       log.With("pool", pool.Name),
		attempted: make(chan struct{}),
		probes:    map[string]Probe{},
		probedAs:  map[string]memberView{},
		// Every member is probed on the first read: the background
		// rotation starts one interval after.
		lastBackgroundProbe: time.Now(),
		probeNow:            make(chan struct{}, 1),
		fullReads:           opts.FullReads,
	}
	w.publishLocked()
	return w
}

// Snapshot returns the latest snapshot. It never blocks on XAPI.
func (w *Watcher) Snapshot() *Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.published
}

// Attempted is closed once the first connection attempt ended: the pool was
// read in full, or no master could be reached.
func (w *Watcher) Attempted() <-chan struct{} { return w.attempted }

func (w *Watcher) markAttempted() { w.attemptedOnce.Do(func() { close(w.attempted) }) }

// Run keeps the snapshot current until ctx ends, then logs out.
func (w *Watcher) Run(ctx context.Context) {
	defer w.d.close()
	var wg sync.WaitGroup
	wg.Go(func() { w.probeLoop(ctx) })
	defer wg.Wait()

	backoff := time.Second
	maxBackoff := max(time.Duration(w.pool.ProbeInterval), time.Second)
	for ctx.Err() == nil {
		start := time.Now()
		err := w.runSession(ctx)
		if ctx.Err() != nil {
			break
		}
		w.setDown(err)
		w.markAttempted()
		if errors.Is(err, errMasterMoved) && time.Since(start) > backoff {
			// Follow the new master at once (unless masters keep sending
			// the watcher back and forth: then it backs off as below).
			w.log.Info("following the new master", "master", w.masterAddress())
			backoff = time.Second
			continue
		}
		w.log.Warn("pool connection lost", "err", err)
		if time.Since(start) > maxBackoff {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
	w.setDown(errors.New("watcher stopped"))
}

func (w *Watcher) masterAddress() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.masterAddr
}

var (
	errMasterMoved = errors.New("pool.master moved to another host")
	errKicked      = errors.New("probe found the master not answering as master")
	errResync      = errors.New("cannot apply an event; reading the pool again")
)

// runSession finds the master, reads the pool and follows its events until
// something ends the session; it logs out before returning.
func (w *Watcher) runSession(ctx context.Context) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.mu.Lock()
	preferred := w.masterAddr
	if preferred == "" && w.view != nil {
		if m, ok := w.view.Master(); ok {
			preferred = m.Address
		}
	}
	w.mu.Unlock()
	s, err := w.d.findMaster(sctx, preferred, w.candidates(), w.log)
	if err != nil {
		return err
	}
	w.log.Info("session opened on master", "master", s.addr())
	w.mu.Lock()
	w.masterAddr = s.addr()
	w.current = &liveSession{s: s, end: func() { cancel(errKicked) }}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.current = nil
		w.mu.Unlock()
		w.logout(ctx, s)
	}()

	ev, err := w.d.dial(s.addr(), w.d.events)
	if err != nil {
		return err
	}
	for {
		err = w.follow(sctx, s, &ev)
		if cause := context.Cause(sctx); cause != nil && ctx.Err() == nil {
			return cause
		}
		if code := ErrorCode(err); code == CodeEventsLost || code == CodeTokenParseFailure || errors.Is(err, errResync) {
			w.log.Info("resynchronising", "err", err)
			continue
		}
		if m, ok := masterAddress(err); ok {
			// The session's host became a slave; its answer names the
			// master.
			w.mu.Lock()
			w.masterAddr = m
			w.mu.Unlock()
			return fmt.Errorf("%w: %w", errMasterMoved, err)
		}
		return err
	}
}

// logout ends s. On shutdown it runs before Run returns. Otherwise it runs
// in the background, bounded by the call timeout, so that the next session
// is not delayed by a host that went away or is restarting as a slave.
func (w *Watcher) logout(ctx context.Context, s *session) {
	lctx := context.WithoutCancel(ctx)
	if ctx.Err() == nil {
		go func() { _ = w.d.logout(lctx, s) }()
		return
	}
	if err := w.d.logout(lctx, s); err != nil {
		w.log.Debug("logout failed", "err", err)
	}
}

// follow reads the pool in full, publishes it, and applies events until an
// error.
func (w *Watcher) follow(ctx context.Context, s *session, ev **conn) error {
	c := newCache()
	var poolRef string
	if err := s.c.call(ctx, "pool.get_all", 0, func(api *xenapi.Client) error {
		refs, err := api.Pool.GetAll(s.ref)
		if err == nil && len(refs) > 0 {
			poolRef = string(refs[0])
		}
		return err
	}); err != nil {
		return err
	}
	if poolRef == "" {
		return errors.New("pool.get_all returned no pool")
	}
	if w.fullReads != nil {
		select {
		case w.fullReads <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	token, err := inject(ctx, s, poolRef)
	if err == nil {
		err = c.load(ctx, s)
	}
	if w.fullReads != nil {
		<-w.fullReads
	}
	if err != nil {
		return err
	}
	master, err := w.publishView(c)
	if err != nil {
		return err
	}
	w.markAttempted()
	classes := c.classes()
	timeout := time.Duration(w.pool.EventTimeout)
	for {
		if (*ev).broken.Load() {
			n, err := w.d.dial(s.addr(), w.d.events)
			if err != nil {
				return err
			}
			*ev = n
		}
		b, err := eventFrom(ctx, *ev, s.ref, classes, token, timeout)
		if err != nil {
			return err
		}
		token = b.token
		if err := c.apply(b.events); err != nil {
			return fmt.Errorf("%w: %w", errResync, err)
		}
		m, err := w.publishView(c)
		if err != nil {
			return err
		}
		if m != master {
			// The session's host handed mastership over: follow the new
			// master at its address.
			w.mu.Lock()
			if h, ok := w.view.Master(); ok && h.Address != "" {
				w.masterAddr = h.Address
			}
			w.mu.Unlock()
			return errMasterMoved
		}
	}
}

// publishView builds a snapshot from c and publishes it as current. It
// returns the UUID of the host pool.master points at.
func (w *Watcher) publishView(c *cache) (string, error) {
	v, err := c.build(w.pool)
	if err != nil {
		return "", err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastMaster != "" && v.MasterUUID != "" && v.MasterUUID != w.lastMaster {
		w.masterChanges++
		w.log.Info("master changed", "from", w.lastMaster, "to", v.MasterUUID)
	}
	if v.MasterUUID != "" {
		w.lastMaster = v.MasterUUID
	}
	now := time.Now()
	w.view, w.up, w.lastErr, w.synced = v, true, "", now
	if m, ok := v.Master(); ok && m.Address != "" {
		// The session's host answered as master just now: that is what a
		// probe of it would learn, so it is not probed while the session
		// lasts (a probe of a master is a login and a logout).
		w.probes[m.Address] = Probe{Role: RoleMaster, At: now}
		w.probedAs[m.Address] = viewOf(v, m)
	}
	w.publishLocked()
	for _, h := range v.Hosts {
		if h.Address == "" {
			continue
		}
		if seen, ok := w.probedAs[h.Address]; !ok || seen != viewOf(v, h) {
			// A member never probed, or the master's view of it changed:
			// probe now rather than at the next tick.
			select {
			case w.probeNow <- struct{}{}:
			default:
			}
			break
		}
	}
	return v.MasterUUID, nil
}

func (w *Watcher) setDown(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.up {
		// Every member needs a probe now that no session vouches for the
		// master.
		select {
		case w.probeNow <- struct{}{}:
		default:
		}
	}
	w.up = false
	if err != nil {
		w.lastErr = err.Error()
	}
	w.publishLocked()
}

// candidates are every address the master may be found at: the configured
// ones and the members' addresses from the last view.
func (w *Watcher) candidates() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.candidatesLocked()
}

func (w *Watcher) candidatesLocked() []string {
	if w.view == nil {
		return slices.Clone(w.pool.Hosts)
	}
	return addresses(w.pool.Hosts, w.view.Hosts)
}

// publishLocked merges the view, the session state and the probes into a
// new snapshot.
func (w *Watcher) publishLocked() {
	s := &Snapshot{Pool: w.pool.Name}
	if w.view != nil {
		*s = *w.view
		s.Hosts = slices.Clone(w.view.Hosts)
	}
	s.Up, s.Synced, s.MasterChanges = w.up, w.synced, w.masterChanges
	if w.up {
		s.MasterAddress, s.LastError = w.masterAddr, ""
	} else {
		s.MasterAddress, s.LastError = "", w.lastErr
	}
	s.attachProbes(w.pool.Hosts, w.probes)
	w.published = s
}

// probeLoop probes, at every probe interval and whenever the master's view
// changes, the members that are due (probeDue).
func (w *Watcher) probeLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(w.pool.ProbeInterval))
	defer t.Stop()
	for {
		w.probeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.probeNow:
		}
	}
}

// memberView is what the master's view says about one member: a probe is
// due when it changes.
type memberView struct {
	known, live, enabled, master, statefile bool
	poolHA                                  bool
	poolMaster                              string
}

// viewOf returns the master's view of h in v.
func viewOf(v *Snapshot, h Host) memberView {
	return memberView{
		known: true, live: h.Live, enabled: h.Enabled, master: h.IsMaster, statefile: len(h.HAStatefiles) > 0,
		poolHA: v.HAEnabled, poolMaster: v.MasterUUID,
	}
}

// probeDueLocked returns the addresses to probe now, and records the
// master's view of each as the one it is probed under. A probe is a login
// on the member's own address (see dialer.probe): one call on a slave or a
// host in emergency mode, a login and a logout on a master. So:
//
//   - while the pool has no session on its master, every address is probed
//     at every probe interval, as the probes are then the only view;
//   - the master the session is on is not probed: every answer on the
//     session says it is master (publishView records that);
//   - a member is probed at once when the master's view of it changed (live,
//     enabled, master, statefile access, pool HA or pool.master), at every
//     probe interval while the master holds it not live, and while its last
//     probe found it anything but a slave (emergency, unreachable, refusing
//     the credentials, or a master that pool.master does not name);
//   - otherwise one member in turn, the one probed longest ago, is probed
//     every background probe interval, so each steady member is probed once
//     every that interval times the members.
func (w *Watcher) probeDueLocked(now time.Time) []string {
	addrs := w.candidatesLocked()
	if !w.up || w.view == nil {
		for _, a := range addrs {
			w.probedAs[a] = memberView{}
		}
		return addrs
	}
	views := make(map[string]memberView, len(w.view.Hosts))
	for _, h := range w.view.Hosts {
		if h.Address != "" {
			views[h.Address] = viewOf(w.view, h)
		}
	}
	master, _ := w.view.Master()
	var due, steady []string
	for _, a := range addrs {
		v := views[a]
		if a == master.Address || a == w.masterAddr {
			continue
		}
		p, probed := w.probes[a]
		switch {
		case !probed,
			v.known && (w.probedAs[a] != v || !v.live),
			p.Role == RoleMaster && v.known,
			p.Role != RoleSlave && p.Role != RoleMaster:
			w.probedAs[a] = v
			due = append(due, a)
		default:
			steady = append(steady, a)
		}
	}
	if len(steady) > 0 && now.Sub(w.lastBackgroundProbe) >= time.Duration(w.pool.BackgroundProbeInterval) {
		oldest := slices.MinFunc(steady, func(a, b string) int { return w.probes[a].At.Compare(w.probes[b].At) })
		w.probedAs[oldest] = views[oldest]
		due = append(due, oldest)
		w.lastBackgroundProbe = now
	}
	return due
}

// liveSession is the session a Watcher follows the pool with.
type liveSession struct {
	s   *session
	end func() // ends the session with errKicked
}

// probeAll probes the addresses that are due, publishes the results and
// ends the session if its host no longer answers as master.
func (w *Watcher) probeAll(ctx context.Context) {
	w.mu.Lock()
	addrs, current := w.probeDueLocked(time.Now()), w.current
	w.mu.Unlock()
	if len(addrs) == 0 {
		return
	}
	results := probeAll(ctx, w.d, addrs)
	if ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	maps.Copy(w.probes, results)
	all := w.candidatesLocked()
	for a := range w.probes {
		if !slices.Contains(all, a) {
			delete(w.probes, a)
			delete(w.probedAs, a)
		}
	}
	w.publishLocked()
	// The session's master no longer answers as master: end the session
	// now rather than waiting for the event long-poll to time out. Only a
	// session that was open before the probes started is judged by them.
	if current == nil || current != w.current {
		return
	}
	if p, ok := results[current.s.addr()]; ok && p.Role != RoleMaster {
		w.log.Info("master probe failed, reconnecting", "master", current.s.addr(), "role", p.Role, "answer", strings.Join(p.Error, " "))
		current.end()
	}
}

// probeAll probes addrs in parallel.
func probeAll(ctx context.Context, d *dialer, addrs []string) map[string]Probe {
	var mu sync.Mutex
	out := make(map[string]Probe, len(addrs))
	var wg sync.WaitGroup
	for _, a := range addrs {
		wg.Go(func() {
			p := d.probe(ctx, a)
			mu.Lock()
			out[a] = p
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
