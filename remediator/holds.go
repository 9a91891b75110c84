package remediator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"xsha/remediator/journal"
	"xsha/xapi"
)

// autoHold is the last automatic hold evaluation of a pool.
type autoHold struct {
	Reasons []string
	At      time.Time
}

// manualHold returns the hold an operator put on the pool (API or policy
// file), global holds included. Holds keep actions from starting; an
// action already running finishes: stopping a repair between disabling and
// re-enabling pool HA would leave the pool without master failover.
func (r *engine) manualHold(tx journal.Tx, pol *Policy, pool string) (journal.Hold, bool, error) {
	if reason, ok := pol.heldByFile(pool); ok {
		h := journal.Hold{Pool: pool, Reason: reason, Source: journal.HoldSourceFile}
		if pol.Holds.All {
			h.Pool = ""
		}
		return h, true, nil
	}
	holds, err := tx.Holds()
	if err != nil {
		return journal.Hold{}, false, err
	}
	for _, h := range holds {
		if h.Pool == "" || h.Pool == pool {
			return h, true, nil
		}
	}
	return journal.Hold{}, false, nil
}

// autoHolds returns why the pool is held by its own state: a host other
// than the action's target disabled in XenServer (maintenance mode, or
// shut down on purpose, which XAPI only allows for a disabled host), or a
// host of its CloudStack cluster in maintenance. A CloudStack error holds
// too: maintenance cannot be ruled out.
func (r *engine) autoHolds(ctx context.Context, pool string, snap *xapi.Snapshot, target string) []string {
	var reasons []string
	for _, h := range snap.Hosts {
		if h.Name == target || h.Enabled {
			continue
		}
		if h.Live {
			reasons = append(reasons, fmt.Sprintf("host %s is disabled in XenServer (maintenance mode)", h.Name))
		} else {
			reasons = append(reasons, fmt.Sprintf("host %s is disabled in XenServer and not live (in maintenance or shut down)", h.Name))
		}
	}
	if r.maintenance != nil {
		cluster := pool
		if p, ok := r.cfg.Pool(pool); ok && p.CloudStackCluster != "" {
			cluster = p.CloudStackCluster
		}
		hosts, err := r.maintenance.HostsInMaintenance(ctx, cluster)
		switch {
		case err != nil:
			reasons = append(reasons, fmt.Sprintf("CloudStack maintenance state of cluster %s unknown: %v", cluster, err))
		case len(hosts) > 0:
			sort.Strings(hosts)
			reasons = append(reasons, fmt.Sprintf("CloudStack hosts in maintenance in cluster %s: %s", cluster, strings.Join(hosts, ", ")))
		}
	}
	r.mu.Lock()
	r.autoHeld[pool] = autoHold{Reasons: reasons, At: r.now()}
	r.mu.Unlock()
	r.updateHoldGauges()
	return reasons
}

// updateHoldGauges sets xsha_remediator_hold for every configured pool.
func (r *engine) updateHoldGauges() {
	pol := r.policy.Load()
	var api []journal.Hold
	_ = r.journal.View(func(tx journal.Tx) error {
		var err error
		api, err = tx.Holds()
		return err
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.cfg.Pools {
		held := len(r.autoHeld[p.Name].Reasons) > 0
		if _, ok := pol.heldByFile(p.Name); ok {
			held = true
		}
		for _, h := range api {
			if h.Pool == "" || h.Pool == p.Name {
				held = true
			}
		}
		v := 0.0
		if held {
			v = 1
		}
		r.metrics.hold.WithLabelValues(p.Name).Set(v)
	}
}

// holdsView lists every hold in force: from the file, the API, and the
// last automatic evaluation of each pool.
func (r *engine) holdsView() ([]journal.Hold, error) {
	pol := r.policy.Load()
	var out []journal.Hold
	if pol.Holds.All {
		reason, _ := pol.heldByFile("")
		out = append(out, journal.Hold{Reason: reason, Source: journal.HoldSourceFile})
	}
	for _, p := range pol.Holds.Pools {
		reason, _ := pol.heldByFile(p)
		out = append(out, journal.Hold{Pool: p, Reason: reason, Source: journal.HoldSourceFile})
	}
	err := r.journal.View(func(tx journal.Tx) error {
		api, err := tx.Holds()
		out = append(out, api...)
		return err
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	for pool, a := range r.autoHeld {
		for _, reason := range a.Reasons {
			out = append(out, journal.Hold{Pool: pool, Reason: reason, Since: a.At, Source: journal.HoldSourceAuto})
		}
	}
	r.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pool < out[j].Pool })
	return out, nil
}

// errUnknownPool rejects a hold on a pool the configuration does not define.
var errUnknownPool = errors.New("pool is not configured")

// setHold holds one pool, or every pool when pool is empty, until lifted.
func (r *engine) setHold(pool, reason string) error {
	if pool != "" {
		if _, ok := r.cfg.Pool(pool); !ok {
			return fmt.Errorf("%w: %q", errUnknownPool, pool)
		}
	}
	if reason == "" {
		reason = "held through the API"
	}
	h := journal.Hold{Pool: pool, Reason: reason, Since: r.now(), Source: journal.HoldSourceAPI}
	err := r.journal.Update(func(tx journal.Tx) error {
		if err := tx.PutHold(h); err != nil {
			return err
		}
		return tx.Append(journal.Entry{Kind: journal.KindHold, Pool: pool, Message: "hold set: " + reason})
	})
	if err != nil {
		return fmt.Errorf("recording hold: %w", err)
	}
	r.updateHoldGauges()
	return nil
}

// liftHold lifts a hold set through the API and reports whether one was set.
func (r *engine) liftHold(pool string) (bool, error) {
	var found bool
	err := r.journal.Update(func(tx journal.Tx) error {
		var err error
		if found, err = tx.DeleteHold(pool); err != nil || !found {
			return err
		}
		return tx.Append(journal.Entry{Kind: journal.KindHold, Pool: pool, Message: "hold lifted"})
	})
	if err != nil {
		return false, fmt.Errorf("recording hold: %w", err)
	}
	r.updateHoldGauges()
	return found, nil
}
