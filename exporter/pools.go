package exporter

import (
	"context"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"

	"xsha/config"
	"xsha/xapi"
)

// poolWatchers runs one xapi.Watcher per configured pool and hands out their
// snapshots. Apply starts, stops and restarts watchers as the configuration
// changes.
type poolWatchers struct {
	ctx     context.Context
	log     *slog.Logger
	metrics *xapi.Metrics

	// fullReads bounds the pools read in full at once.
	fullReads chan struct{}

	mu      sync.Mutex
	running map[string]*poolRun
	wg      sync.WaitGroup
}

// concurrentFullReads is how many pools are read in full at once: enough to
// keep the pool masters and two cores busy, few enough that decoding the
// answers of a fleet starting together stays a few tens of MiB.
const concurrentFullReads = 8

type poolRun struct {
	cfg    config.Pool
	w      *xapi.Watcher
	cancel context.CancelFunc
	done   chan struct{} // closed when the watcher has logged out
}

// newPoolWatchers returns an empty set of watchers that run until ctx ends.
func newPoolWatchers(ctx context.Context, logger *slog.Logger, metrics *xapi.Metrics) *poolWatchers {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &poolWatchers{
		ctx: ctx, log: logger, metrics: metrics, running: map[string]*poolRun{},
		fullReads: make(chan struct{}, concurrentFullReads),
	}
}

// Apply makes the running watchers match cfg: pools added are started,
// pools removed are stopped (their sessions logged out), pools whose
// settings changed are restarted.
func (p *poolWatchers) Apply(cfg *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[string]config.Pool{}
	for _, pc := range cfg.Pools {
		want[pc.Name] = pc
	}
	for name, r := range p.running {
		if pc, ok := want[name]; !ok || !reflect.DeepEqual(pc, r.cfg) {
			if ok {
				p.log.Info("pool changed, restarting its watcher", "pool", name)
			} else {
				p.log.Info("pool removed, stopping its watcher", "pool", name)
				go p.forget(name, r.done)
			}
			r.cancel()
			delete(p.running, name)
		}
	}
	for name, pc := range want {
		if _, ok := p.running[name]; ok {
			continue
		}
		p.log.Info("starting watcher", "pool", name, "hosts", strings.Join(pc.Hosts, ","))
		ctx, cancel := context.WithCancel(p.ctx)
		w := xapi.NewWatcher(pc, xapi.WatcherOptions{Logger: p.log, Metrics: p.metrics, FullReads: p.fullReads})
		r := &poolRun{cfg: pc, w: w, cancel: cancel, done: make(chan struct{})}
		p.running[name] = r
		p.wg.Go(func() {
			defer close(r.done)
			w.Run(ctx)
		})
	}
}

// forget drops a removed pool's own metrics once its watcher has logged
// out, unless the pool came back meanwhile.
func (p *poolWatchers) forget(name string, done <-chan struct{}) {
	<-done
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, back := p.running[name]; !back {
		p.metrics.Forget(name)
	}
}

// Snapshots returns the latest snapshot of every pool, sorted by pool name.
func (p *poolWatchers) Snapshots() []*xapi.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*xapi.Snapshot, 0, len(p.running))
	for _, r := range p.running {
		out = append(out, r.w.Snapshot())
	}
	slices.SortFunc(out, func(a, b *xapi.Snapshot) int { return strings.Compare(a.Pool, b.Pool) })
	return out
}

// Waiting returns the pools whose first connection attempt has not ended.
func (p *poolWatchers) Waiting() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name, r := range p.running {
		select {
		case <-r.w.Attempted():
		default:
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Stop stops every watcher and waits until they have logged out.
func (p *poolWatchers) Stop() {
	p.mu.Lock()
	for name, r := range p.running {
		r.cancel()
		delete(p.running, name)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
