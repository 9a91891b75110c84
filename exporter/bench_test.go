package exporter

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gopkg.in/yaml.v3"

	"xsha/sim/scenario"
)

// bigScenario is one 6.2 pool of n hosts running vms guests.
func bigScenario(tb testing.TB, hosts, vms int) *scenario.Scenario {
	sc := scenario.Default()
	sc.TimeScale = 0.02
	p := sc.Pools[0]
	p.Hosts = nil
	for i := 1; i <= hosts; i++ {
		p.Hosts = append(p.Hosts, scenario.Host{Name: fmt.Sprintf("xs-a%02d", i), Address: fmt.Sprintf("127.0.1.%d", i)})
	}
	p.Master = p.Hosts[0].Name
	guest := p.VMs[0]
	p.VMs = nil
	for i := range vms {
		vm := guest
		vm.Name = fmt.Sprintf("i-2-%d-VM", 1000+i)
		vm.DisplayName = ""
		vm.Host = p.Hosts[i%hosts].Name
		p.VMs = append(p.VMs, vm)
	}
	sc.Pools = []scenario.Pool{p}
	// A round trip through the scenario parser fills in what Default's
	// defaults filled in for the hosts and VMs it had (UUIDs, sizes).
	y, err := yaml.Marshal(sc)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := scenario.Parse(y)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// BenchmarkScrape measures a /metrics scrape of one pool of 4 and of 64
// hosts, each pool running 2000 guests. A scrape only reads the cached
// snapshot, so its cost follows the number of series (per host), not the
// number of VMs or anything XAPI does.
func BenchmarkScrape(b *testing.B) {
	for _, hosts := range []int{4, 64} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			// Probe once at the start, then stay quiet so that the
			// measurement sees the scrape alone.
			e := startLabTimed(b, bigScenario(b, hosts, 2000), "probe_interval: 1h\n    call_timeout: 20s\n    event_timeout: 1h\n")
			e.waitFor("the pool read and every host probed", func(v map[string]float64) bool {
				if v[`xenserver_pool_up{pool="cluster-a"}`] != 1 {
					return false
				}
				for i := 2; i <= hosts; i++ {
					if v[fmt.Sprintf(`xenserver_host_role{host="xs-a%02d",pool="cluster-a",role="slave"}`, i)] != 1 {
						return false
					}
				}
				return true
			})
			// Let the probe round the first read asked for finish, so that
			// the count below sees the scrapes alone.
			calls := e.calls("cluster-a")
			waitUntil(b, "no XAPI call for 200ms", func() bool {
				time.Sleep(200 * time.Millisecond)
				n := e.calls("cluster-a")
				quiet := n == calls
				calls = n
				return quiet
			})
			reg := prometheus.NewRegistry()
			reg.MustRegister(newXenServerCollector(e.pools))
			h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
			runtime.GC() // the full read's garbage is not the scrape's
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			b.ResetTimer()
			for range b.N {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("scrape: HTTP %d", rec.Code)
				}
			}
			b.StopTimer()
			mfs, err := reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			series := 0
			for _, mf := range mfs {
				series += len(mf.GetMetric())
			}
			b.ReportMetric(float64(series), "series")
			b.ReportMetric(e.calls("cluster-a")-calls, "xapi-calls-during-scrapes")
		})
	}
}

// BenchmarkSteadyStateCalls counts the XAPI calls per minute one pool of
// four hosts costs at steady state, with the default probe intervals (30 s, 2 min background)
// and event.from timeout (60 s), while Prometheus scrapes every 15 s, and
// again every 1 s to show that scrapes add no call. Time is compressed by
// the lab's scale factor: every interval and the measuring window shrink
// alike, and the rate is reported per simulated minute. sessions-max is the
// most sessions the lab saw open on the master at any scrape.
func BenchmarkSteadyStateCalls(b *testing.B) {
	const scale = 0.02
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) * scale) }
	for _, scrape := range []time.Duration{15 * time.Second, time.Second} {
		b.Run(fmt.Sprintf("scrape=%s", scrape), func(b *testing.B) {
			sc := scenario.Default()
			sc.TimeScale = scale
			timing := fmt.Sprintf("probe_interval: %dms\n    background_probe_interval: %dms\n    call_timeout: 2s\n    event_timeout: %dms\n",
				scaled(30*time.Second).Milliseconds(), scaled(2*time.Minute).Milliseconds(), scaled(60*time.Second).Milliseconds())
			e := startLabTimed(b, sc, timing, "cluster-a")
			e.waitValue(`xenserver_pool_up{pool="cluster-a"}`, 1)
			e.waitValue(`xenserver_host_role{host="xs-a4",pool="cluster-a",role="slave"}`, 1)
			h := promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{})
			window := scaled(5 * time.Minute)
			var calls, labCalls float64
			sessionsMax := 0
			b.ResetTimer()
			for range b.N {
				c0, l0 := e.calls("cluster-a"), e.labCalls("cluster-a")
				end := time.Now().Add(window)
				tick := time.NewTicker(scaled(scrape))
				for time.Now().Before(end) {
					<-tick.C
					h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/metrics", nil))
					sessionsMax = max(sessionsMax, e.labSessions("cluster-a"))
				}
				tick.Stop()
				calls += e.calls("cluster-a") - c0
				labCalls += e.labCalls("cluster-a") - l0
			}
			b.StopTimer()
			minutes := float64(b.N) * 5
			b.ReportMetric(calls/minutes, "calls/min")
			b.ReportMetric(labCalls/minutes, "lab-calls/min")
			b.ReportMetric(float64(sessionsMax), "sessions-max")
		})
	}
}

// BenchmarkScrapeWhilePoolHangs measures a scrape of two pools while one
// pool's master accepts connections and never answers (its watcher and
// probes are stuck in calls until the 2 s call timeout). A scrape reads
// cached snapshots only, so it costs what any scrape costs; max-ms is the
// slowest one.
func BenchmarkScrapeWhilePoolHangs(b *testing.B) {
	e := startLab(b, testScenario())
	e.waitValue(`xenserver_pool_up{pool="cluster-a"}`, 1)
	e.waitValue(`xenserver_pool_up{pool="cluster-b"}`, 1)
	if err := e.lab.Isolate("xs-b1"); err != nil {
		b.Fatal(err)
	}
	e.waitValue(`xenserver_host_role{host="xs-b1",pool="cluster-b",role="unreachable"}`, 1)
	h := promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	var slowest time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		slowest = max(slowest, time.Since(start))
		if rec.Code != 200 {
			b.Fatalf("scrape: HTTP %d", rec.Code)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(slowest.Microseconds())/1000, "max-ms")
}

// BenchmarkCollect is BenchmarkScrape without the lab running beside it:
// the collector and the text encoding alone, on synthetic snapshots.
func BenchmarkCollect(b *testing.B) {
	for _, hosts := range []int{4, 64} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			s := upSnapshot()
			h0 := s.Hosts[0]
			s.Hosts = nil
			for i := range hosts {
				h := h0
				h.Name, h.UUID = fmt.Sprintf("xs-a%02d", i+1), fmt.Sprintf("u%d", i)
				h.IsMaster = i == 0
				s.Hosts = append(s.Hosts, h)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(newXenServerCollector(staticSource{s}))
			h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			b.ResetTimer()
			for range b.N {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}

// BenchmarkCollectFleet is a scrape, gzipped as Prometheus asks for it, of
// synthetic snapshots of 200 pools of 16 hosts (one exporter for the
// fleet) and of 100 and 67 (one of two or three shards), without the lab
// running beside it.
func BenchmarkCollectFleet(b *testing.B) {
	for _, pools := range []int{200, 100, 67} {
		b.Run(fmt.Sprintf("pools=%d", pools), func(b *testing.B) {
			var src staticSource
			for p := range pools {
				s := upSnapshot()
				s.Pool = fmt.Sprintf("pool-%03d", p+1)
				h0 := s.Hosts[0]
				s.Hosts = nil
				for i := range 16 {
					h := h0
					h.Name, h.UUID = fmt.Sprintf("xs-%03d-%02d", p+1, i+1), fmt.Sprintf("u%d-%d", p, i)
					h.IsMaster = i == 0
					s.Hosts = append(s.Hosts, h)
				}
				src = append(src, s)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(newXenServerCollector(src))
			h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			b.ResetTimer()
			for range b.N {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
