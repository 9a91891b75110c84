package exporter

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xsha/xapi"
)

// snapshotSource hands out the latest snapshot of every watched pool. It
// must not block on XAPI.
type snapshotSource interface {
	Snapshots() []*xapi.Snapshot
}

// xenServerCollector turns pool snapshots into metrics. Collect reads the
// cached snapshots only, so a scrape never waits on XAPI. Snapshots are
// immutable and a pool's is replaced only when its watcher learns
// something, so the metrics built from one are kept and sent again while
// it is current: a scrape of a large fleet then costs the encoding alone.
type xenServerCollector struct {
	src snapshotSource
	now func() time.Time

	mu    sync.Mutex
	built map[string]builtSnapshot // by pool
}

// builtSnapshot is the metrics of one snapshot but its age.
type builtSnapshot struct {
	snap    *xapi.Snapshot
	metrics []prometheus.Metric
}

// newXenServerCollector returns a collector reading from src.
func newXenServerCollector(src snapshotSource) *xenServerCollector {
	return &xenServerCollector{src: src, now: time.Now, built: map[string]builtSnapshot{}}
}

// Describe implements prometheus.Collector.
func (c *xenServerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range xenServerMetrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *xenServerCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	snaps := c.src.Snapshots()
	c.mu.Lock()
	fresh := make(map[string]builtSnapshot, len(snaps))
	for _, s := range snaps {
		b, ok := c.built[s.Pool]
		if !ok || b.snap != s {
			b = builtSnapshot{snap: s}
			collectSnapshot(func(m prometheus.Metric) { b.metrics = append(b.metrics, m) }, s)
		}
		fresh[s.Pool] = b
	}
	c.built = fresh // pools no longer watched are forgotten
	c.mu.Unlock()
	for _, s := range snaps {
		for _, m := range fresh[s.Pool].metrics {
			ch <- m
		}
		if !s.Synced.IsZero() {
			ch <- poolStateAge.must(max(now.Sub(s.Synced).Seconds(), 0), s.Pool)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collectSnapshot emits the metrics of one snapshot but its age, which
// changes at every scrape.
func collectSnapshot(emit func(prometheus.Metric), s *xapi.Snapshot) {
	p := s.Pool
	emit(poolUp.must(b2f(s.Up), p))
	emit(poolMasterChanges.must(float64(s.MasterChanges), p))
	// Two members with one name_label would make duplicate series and fail
	// the whole scrape: only the first is exposed.
	seen := make(map[string]bool, len(s.Hosts))
	hosts := make([]xapi.Host, 0, len(s.Hosts))
	for _, h := range s.Hosts {
		if !seen[h.Name] {
			seen[h.Name] = true
			hosts = append(hosts, h)
		}
	}
	for _, h := range hosts {
		if h.Probe.Role == "" {
			continue
		}
		for _, r := range xapi.Roles {
			emit(hostRole.must(b2f(h.Probe.Role == r), p, h.Name, string(r)))
		}
	}
	if s.PoolUUID == "" {
		return // never read: nothing more is known
	}
	emit(poolHAEnabled.must(b2f(s.HAEnabled), p))
	emit(poolHATolerate.must(float64(s.HAHostFailuresToTolerate), p))
	emit(poolHAPlan.must(float64(s.HAPlanExistsFor), p))
	emit(poolHAOvercommitted.must(b2f(s.HAOvercommitted), p))
	emit(poolHATimeout.must(s.HATimeout.Seconds(), p))
	emit(poolVMsHAProtected.must(float64(s.VMsHAProtected), p))
	if m, ok := s.Master(); ok {
		emit(poolMasterInfo.must(1, p, m.Name, m.UUID, m.Address))
	}
	hb := s.HeartbeatSR
	emit(hbPresent.must(b2f(hb != nil), p))
	if hb != nil {
		emit(hbInfo.must(1, p, hb.Name, hb.UUID, hb.Type))
		emit(hbShared.must(b2f(hb.Shared), p))
		emit(hbSize.must(float64(hb.Size), p))
		emit(hbStatefile.must(b2f(hb.Statefile), p))
	}
	for _, h := range hosts {
		if h.UUID == "" {
			continue // known from the configuration only
		}
		emit(hostInfo.must(1, p, h.Name, h.UUID, h.Address, h.ProductVersion))
		emit(hostLive.must(b2f(h.Live), p, h.Name))
		emit(hostEnabled.must(b2f(h.Enabled), p, h.Name))
		emit(hostStatefile.must(b2f(len(h.HAStatefiles) > 0), p, h.Name))
		if hb != nil {
			emit(hbAttached.must(b2f(hb.Attached[h.Name]), p, h.Name))
		}
		hotfixes := make([]string, 0, len(h.Hotfixes))
		for hf := range h.Hotfixes {
			hotfixes = append(hotfixes, hf)
		}
		slices.Sort(hotfixes)
		for _, hf := range hotfixes {
			emit(hostHotfix.must(b2f(h.Hotfixes[hf]), p, h.Name, hf))
		}
	}
}
