package xapi

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"time"

	"xsha/config"
)

// XS62ESP1004 is the hotfix that made master failover depend on Pool HA.
const (
	hotfixXS62ESP1004     = "XS62ESP1004"
	hotfixXS62ESP1004UUID = "996dd2e7-ad95-49cc-a0be-2c9adc4dfb0b"
)

// defaultHATimeout is xapi's HA timeout when neither the pool's HA
// configuration nor its other_config sets one (ha_default_timeout_base).
const defaultHATimeout = 60 * time.Second

// haTimeout is the HA timeout T xapi uses for p, as Timeouts.get_base_t
// reads it: ha_configuration["timeout"], else
// other_config["default_ha_timeout"], else 60 s.
func haTimeout(p poolRec) time.Duration {
	for _, v := range []string{p.HAConfiguration["timeout"], p.DefaultHATimeout} {
		if t, err := strconv.ParseFloat(v, 64); err == nil && t > 0 {
			return time.Duration(t * float64(time.Second))
		}
	}
	return defaultHATimeout
}

// cache holds one pool's records, filled by a full read and kept current by
// events.
type cache struct {
	pool        *table[poolRec]
	hosts       *table[hostRec]
	hostMetrics *table[hostMetricsRec]
	srs         *table[srRec]
	pbds        *table[pbdRec]
	vms         *table[vmRec]
	poolPatches *table[patchRec]
	hostPatches *table[hostPatchRec]
	poolUpdates *table[patchRec]
	// stores are the classes read and subscribed to for this pool's version.
	stores []store
}

func newCache() *cache {
	c := &cache{
		pool: newPoolTable(), hosts: newHostTable(), hostMetrics: newHostMetricsTable(),
		srs: newSRTable(), pbds: newPBDTable(), vms: newVMTable(),
		poolPatches: newPoolPatchTable(), hostPatches: newHostPatchTable(), poolUpdates: newPoolUpdateTable(),
	}
	c.stores = c.common()
	return c
}

// common are the classes every XAPI version has.
func (c *cache) common() []store {
	return []store{c.pool, c.hosts, c.hostMetrics, c.srs, c.pbds, c.vms}
}

// classes are the event classes to subscribe to.
func (c *cache) classes() []string {
	out := make([]string, len(c.stores))
	for i, s := range c.stores {
		out[i] = s.class()
	}
	return out
}

// hasUpdates reports whether a host's API has pool_update (XenServer 7.1,
// API 2.6, and later); older ones have pool_patch and host_patch.
func hasUpdates(major, minor int64) bool { return major > 2 || (major == 2 && minor >= 6) }

// load reads every class afresh. The master's API version decides which
// hotfix classes the pool has.
func (c *cache) load(ctx context.Context, s *session) error {
	common := c.common()
	for _, st := range common {
		if err := st.load(ctx, s); err != nil {
			return err
		}
	}
	hotfixes := []store{c.poolPatches, c.hostPatches}
	c.poolUpdates.rows = nil
	if c.modern() {
		hotfixes = []store{c.poolUpdates}
		c.poolPatches.rows, c.hostPatches.rows = nil, nil
	}
	for _, st := range hotfixes {
		if err := st.load(ctx, s); err != nil {
			return err
		}
	}
	c.stores = append(common, hotfixes...)
	return nil
}

// modern reports whether the master's API has pool_update.
func (c *cache) modern() bool {
	p, ok := c.onePool()
	if !ok {
		return false
	}
	h, ok := c.hosts.rows[p.Master]
	return ok && hasUpdates(h.APIMajor, h.APIMinor)
}

func (c *cache) onePool() (poolRec, bool) {
	for _, p := range c.pool.rows {
		return p, true
	}
	return poolRec{}, false
}

// apply applies one batch of events.
func (c *cache) apply(events []event) error {
	for _, e := range events {
		for _, st := range c.stores {
			if st.class() == e.class {
				if err := st.apply(e.operation, e.ref, e.snapshot); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// build turns the records into a snapshot (without probes and liveness,
// which the caller adds).
func (c *cache) build(cfg config.Pool) (*Snapshot, error) {
	p, ok := c.onePool()
	if !ok {
		return nil, errors.New("pool.get_all_records returned no pool")
	}
	s := &Snapshot{
		Pool: cfg.Name, PoolUUID: p.UUID, HAEnabled: p.HAEnabled,
		HAHostFailuresToTolerate: p.HAHostFailuresToTolerate, HAPlanExistsFor: p.HAPlanExistsFor,
		HAOvercommitted: p.HAOvercommitted, HAStatefiles: p.HAStatefiles,
	}
	s.HATimeout = haTimeout(p)
	// Hotfix names by pool_patch / pool_update ref.
	patchName := func(r patchRec) string {
		if r.UUID == hotfixXS62ESP1004UUID {
			return hotfixXS62ESP1004
		}
		return r.Name
	}
	applied := map[string]map[string]bool{} // host ref -> hotfix name
	for _, hp := range c.hostPatches.rows {
		if pp, ok := c.poolPatches.rows[hp.PoolPatch]; ok && hp.Applied {
			if applied[hp.Host] == nil {
				applied[hp.Host] = map[string]bool{}
			}
			applied[hp.Host][patchName(pp)] = true
		}
	}
	names := map[string]string{} // host ref -> name
	for ref, h := range c.hosts.rows {
		names[ref] = h.Name
		host := Host{
			Ref: ref, UUID: h.UUID, Name: h.Name, Address: h.Address,
			ProductVersion:  h.SoftwareVersion["product_version"],
			APIVersionMajor: h.APIMajor, APIVersionMinor: h.APIMinor,
			Enabled: h.Enabled, Live: c.hostMetrics.rows[h.Metrics].Live,
			IsMaster: ref == p.Master, HAStatefiles: h.HAStatefiles,
			Hotfixes: make(map[string]bool, len(cfg.RequiredHotfixes)),
		}
		for _, u := range h.Updates {
			if pu, ok := c.poolUpdates.rows[u]; ok {
				if applied[ref] == nil {
					applied[ref] = map[string]bool{}
				}
				applied[ref][patchName(pu)] = true
			}
		}
		for _, hf := range cfg.RequiredHotfixes {
			ok := applied[ref][hf]
			// A later roll-up contains XS62ESP1004 without a pool_patch of
			// that name; the API version it brings (2.2) still shows it.
			if hf == hotfixXS62ESP1004 && (h.APIMajor > 2 || (h.APIMajor == 2 && h.APIMinor >= 2)) {
				ok = true
			}
			host.Hotfixes[hf] = ok
		}
		if host.IsMaster {
			s.MasterUUID = h.UUID
		}
		s.Hosts = append(s.Hosts, host)
	}
	sort.Slice(s.Hosts, func(i, j int) bool { return s.Hosts[i].Name < s.Hosts[j].Name })

	// The heartbeat SR: the one named in the configuration (the lowest ref
	// if several share the name).
	var srRef string
	for ref, sr := range c.srs.rows {
		if sr.Name == cfg.HeartbeatSR && (srRef == "" || ref < srRef) {
			srRef = ref
		}
	}
	if srRef != "" {
		sr := c.srs.rows[srRef]
		hb := &SR{Ref: srRef, UUID: sr.UUID, Name: sr.Name, Type: sr.Type, Shared: sr.Shared, Size: sr.PhysicalSize, Attached: map[string]bool{}}
		for _, pbd := range c.pbds.rows {
			if pbd.SR == srRef {
				if n, ok := names[pbd.Host]; ok {
					hb.Attached[n] = hb.Attached[n] || pbd.Attached
				}
			}
		}
		vdis := make(map[string]bool, len(sr.VDIs))
		for _, v := range sr.VDIs {
			vdis[v] = true
		}
		for _, f := range p.HAStatefiles {
			if vdis[f] {
				hb.Statefile = true
			}
		}
		s.HeartbeatSR = hb
	}
	for _, vm := range c.vms.rows {
		if vm.Guest {
			s.VMs++
			if vm.HARestartPriority != "" {
				s.VMsHAProtected++
			}
		}
	}
	return s, nil
}
