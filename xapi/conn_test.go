package xapi

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xenapi "github.com/terra-farm/go-xen-api-client"
)

// Calls on one conn never overlap, not even when a caller gives up on a
// call that goes on running: the amfranz codec breaks with two in flight.
func TestConnCallsTakeTurns(t *testing.T) {
	c := &conn{addr: "127.0.0.1", pool: "p", timeout: 50 * time.Millisecond, busy: make(chan struct{}, 1)}
	var running, overlaps atomic.Int32
	slow := func(*xenapi.Client) error {
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		return nil
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { c.call(context.Background(), "pool.get_all", time.Second, slow) }) //nolint:errcheck // only overlap matters
	}
	// A caller that gives up at once: its call must still not overlap.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.call(ctx, "pool.get_all", time.Second, slow) //nolint:errcheck // cancelled on purpose
	wg.Wait()
	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d calls ran while another was in flight on the same conn", n)
	}
}
