package exporter

import (
	"slices"
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
// cached snapshots only, so a scrape never waits on XAPI.
type xenServerCollector struct {
	src snapshotSource
	now func() time.Time
}

// newXenServerCollector returns a collector reading from src.
func newXenServerCollector(src snapshotSource) *xenServerCollector {
	return &xenServerCollector{src: src, now: time.Now}
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
	for _, s := range c.src.Snapshots() {
		collectSnapshot(ch, s, now)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func collectSnapshot(ch chan<- prometheus.Metric, s *xapi.Snapshot, now time.Time) {
	p := s.Pool
	ch <- poolUp.must(b2f(s.Up), p)
	ch <- poolMasterChanges.must(float64(s.MasterChanges), p)
	if !s.Synced.IsZero() {
		ch <- poolStateAge.must(max(now.Sub(s.Synced).Seconds(), 0), p)
	}
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
			ch <- hostRole.must(b2f(h.Probe.Role == r), p, h.Name, string(r))
		}
	}
	if s.PoolUUID == "" {
		return // never read: nothing more is known
	}
	ch <- poolHAEnabled.must(b2f(s.HAEnabled), p)
	ch <- poolHATolerate.must(float64(s.HAHostFailuresToTolerate), p)
	ch <- poolHAPlan.must(float64(s.HAPlanExistsFor), p)
	ch <- poolHAOvercommitted.must(b2f(s.HAOvercommitted), p)
	ch <- poolHATimeout.must(s.HATimeout.Seconds(), p)
	ch <- poolVMsHAProtected.must(float64(s.VMsHAProtected), p)
	if m, ok := s.Master(); ok {
		ch <- poolMasterInfo.must(1, p, m.Name, m.UUID, m.Address)
	}
	hb := s.HeartbeatSR
	ch <- hbPresent.must(b2f(hb != nil), p)
	if hb != nil {
		ch <- hbInfo.must(1, p, hb.Name, hb.UUID, hb.Type)
		ch <- hbShared.must(b2f(hb.Shared), p)
		ch <- hbSize.must(float64(hb.Size), p)
		ch <- hbStatefile.must(b2f(hb.Statefile), p)
	}
	for _, h := range hosts {
		if h.UUID == "" {
			continue // known from the configuration only
		}
		ch <- hostInfo.must(1, p, h.Name, h.UUID, h.Address, h.ProductVersion)
		ch <- hostLive.must(b2f(h.Live), p, h.Name)
		ch <- hostEnabled.must(b2f(h.Enabled), p, h.Name)
		ch <- hostStatefile.must(b2f(len(h.HAStatefiles) > 0), p, h.Name)
		if hb != nil {
			ch <- hbAttached.must(b2f(hb.Attached[h.Name]), p, h.Name)
		}
		hotfixes := make([]string, 0, len(h.Hotfixes))
		for hf := range h.Hotfixes {
			hotfixes = append(hotfixes, hf)
		}
		slices.Sort(hotfixes)
		for _, hf := range hotfixes {
			ch <- hostHotfix.must(b2f(h.Hotfixes[hf]), p, h.Name, hf)
		}
	}
}
