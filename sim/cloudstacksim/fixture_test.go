package cloudstacksim

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

const (
	testAPIKey    = "Xsha+Test/Key="
	testSecretKey = "s3cr3t+/=key"
)

// fakeInfra is a hand-driven XenServer side.
type fakeInfra struct {
	mu    sync.Mutex
	hosts []HostView
}

func (f *fakeInfra) Hosts() []HostView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]HostView(nil), f.hosts...)
}

// set changes the named hosts.
func (f *fakeInfra) set(fn func(*HostView), names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range names {
		found := false
		for i := range f.hosts {
			if f.hosts[i].Name == n {
				fn(&f.hosts[i])
				found = true
			}
		}
		if !found {
			panic("fakeInfra: no host " + n)
		}
	}
}

func powerOff(h *HostView) { h.PoweredOn, h.Reachable, h.Heartbeat = false, false, false }
func powerOn(h *HostView)  { h.PoweredOn, h.Reachable, h.Heartbeat = true, true, true }
func cutOff(h *HostView)   { h.Reachable = false }
func rejoin(h *HostView)   { h.Reachable = true }

// newFakeInfra builds the seed's test bed: two pools of four hosts.
func newFakeInfra() *fakeInfra {
	f := &fakeInfra{}
	for i, pool := range []string{"cluster-a", "cluster-b"} {
		for n := 1; n <= 4; n++ {
			f.hosts = append(f.hosts, HostView{
				Name: fmt.Sprintf("xs-%c%d", 'a'+i, n), Cluster: pool,
				Address:   fmt.Sprintf("127.0.%d.%d", i+1, n),
				PoweredOn: true, Reachable: true, Heartbeat: true,
			})
		}
	}
	return f
}

// testOptions are the seed's cloud: per pool five Windows guests on the
// master (three with an HA offering), a virtual router; system VMs on
// cluster-a's master; alert.wait 60 s.
func testOptions() Options {
	wait := 60
	o := Options{
		APIKey: testAPIKey, SecretKey: testSecretKey, AlertWait: &wait,
		Offerings: []Offering{
			{Name: "Windows HA", OfferHA: true, CPUs: 2, CPUSpeedMHz: 2000, MemoryMB: 4096},
			{Name: "Windows", CPUs: 2, CPUSpeedMHz: 2000, MemoryMB: 4096},
			{Name: "System Offering For Software Router", OfferHA: true, CPUs: 1, CPUSpeedMHz: 500, MemoryMB: 256, System: true},
			{Name: "System Offering For Secondary Storage VM", OfferHA: true, CPUs: 1, CPUSpeedMHz: 500, MemoryMB: 512, System: true},
		},
	}
	for i, pool := range []string{"a", "b"} {
		master := "xs-" + pool + "1"
		for n := 1; n <= 5; n++ {
			off := "Windows HA"
			if n > 3 {
				off = "Windows"
			}
			vm := VM{Name: fmt.Sprintf("win-%s%d", pool, n), Offering: off, Host: master}
			if n == 5 {
				vm.Project = "windows-" + pool
			}
			if n == 4 {
				vm.Account = "customer1"
			}
			o.VMs = append(o.VMs, vm)
		}
		o.VMs = append(o.VMs, VM{Name: fmt.Sprintf("r-%d-VM", 4+i), Offering: "System Offering For Software Router", Host: master, Type: VMTypeDomainRouter})
		o.StoragePools = append(o.StoragePools, StoragePool{
			Name: "primary-cluster-" + pool, Cluster: "cluster-" + pool, Address: "127.0.0.1",
			Path: "/export/primary-" + pool, SizeBytes: 2 << 40,
		})
	}
	o.VMs = append(o.VMs,
		VM{Name: "s-1-VM", Offering: "System Offering For Secondary Storage VM", Host: "xs-a1", Type: VMTypeSecondaryStorageVM},
		VM{Name: "v-2-VM", Offering: "System Offering For Secondary Storage VM", Host: "xs-a1", Type: VMTypeConsoleProxy},
	)
	return o
}

// fakeClock is a manual clock for the model.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newModel builds a server on a fake clock, in real time (speedup 1).
func newModel(t *testing.T, infra Infra, opts Options) (*Server, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2014, 11, 20, 10, 0, 0, 0, time.UTC)}
	s, err := newServer(infra, opts, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

// run steps the model once per simulated second for d.
func run(s *Server, c *fakeClock, d time.Duration) {
	for end := c.now().Add(d); c.now().Before(end); {
		c.add(time.Second)
		s.step()
	}
}

// runUntil steps the model until cond holds or limit passes; it returns the
// simulated time it took.
func runUntil(t *testing.T, s *Server, c *fakeClock, limit time.Duration, what string, cond func(State) bool) time.Duration {
	t.Helper()
	start := c.now()
	for c.now().Sub(start) <= limit {
		if cond(s.State()) {
			return c.now().Sub(start)
		}
		c.add(time.Second)
		s.step()
	}
	t.Fatalf("%s: not reached within %v; state %+v", what, limit, s.State())
	return 0
}

func hostState(st State, name string) HostState {
	for _, h := range st.Hosts {
		if h.Name == name {
			return h
		}
	}
	return HostState{}
}

func vmState(st State, name string) VMState {
	for _, v := range st.VMs {
		if v.Name == name {
			return v
		}
	}
	return VMState{}
}
