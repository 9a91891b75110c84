package exporter

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"xsha/sim/scenario"
)

// BenchmarkEmergencyDetection measures how long after an old master's xapi
// starts in emergency mode (pool HA on, another host elected meanwhile)
// xenserver_host_role{role="emergency"} is 1 for it, with the default probe
// interval (30 s) and event.from timeout (60 s). The lab runs 50 times
// faster; the figures are reported in XenServer time (p50 and worst over
// b.N failovers, each on a fresh lab).
func BenchmarkEmergencyDetection(b *testing.B) {
	const scale = 0.02
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) * scale) }
	var lat []time.Duration
	for range b.N {
		sc := scenario.Default()
		sc.TimeScale = scale
		sc.Pools = sc.Pools[:1]
		sc.Pools[0].HAEnabled = true
		timing := fmt.Sprintf("probe_interval: %dms\n    background_probe_interval: %dms\n    call_timeout: 2s\n    event_timeout: %dms\n",
			scaled(30*time.Second).Milliseconds(), scaled(2*time.Minute).Milliseconds(), scaled(60*time.Second).Milliseconds())
		e := startLabTimed(b, sc, timing, "cluster-a")
		const p = `pool="cluster-a"`
		e.waitValue(`xenserver_pool_up{`+p+`}`, 1)
		e.waitValue(`xenserver_host_role{host="xs-a4",`+p+`,role="slave"}`, 1)
		if err := e.lab.PowerOff("xs-a1"); err != nil {
			b.Fatal(err)
		}
		e.waitFor("a new master", func(v map[string]float64) bool {
			return v[`xenserver_pool_master_changes_total{`+p+`}`] == 1 && v[`xenserver_pool_up{`+p+`}`] == 1
		})
		if err := e.lab.PowerOn("xs-a1"); err != nil {
			b.Fatal(err)
		}
		var started time.Time
		waitUntil(b, "xs-a1's xapi in emergency mode", func() bool {
			for _, h := range e.lab.State().Pools[0].Hosts {
				if h.Name == "xs-a1" && h.Role == "emergency" {
					started = time.Now()
					return true
				}
			}
			return false
		})
		series := `xenserver_host_role{host="xs-a1",` + p + `,role="emergency"}`
		waitUntil(b, series+" == 1", func() bool { return e.values()[series] == 1 })
		lat = append(lat, time.Duration(float64(time.Since(started))/scale))
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2].Seconds(), "p50-s")
	b.ReportMetric(lat[len(lat)-1].Seconds(), "max-s")
}
