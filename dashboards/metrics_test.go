package dashboards

import (
	"testing"

	"xsha/exporter"
	"xsha/remediator"
)

// histograms are the exposed histogram families. PromQL addresses a
// histogram through its _bucket, _sum and _count series, never by the family
// name alone.
var histograms = []string{
	"xsha_remediator_action_duration_seconds",
}

// exposedMetrics returns every series name xsha-exporter or xsha-remediator
// can expose, as PromQL sees them.
func exposedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	exposed := map[string]bool{}
	for _, n := range exporter.MetricNames() {
		exposed[n] = true
	}
	for _, n := range remediator.MetricNames() {
		exposed[n] = true
	}
	for _, h := range histograms {
		if !exposed[h] {
			t.Fatalf("histogram %s is not exposed by the exporter or the remediator", h)
		}
		delete(exposed, h)
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			exposed[h+suffix] = true
		}
	}
	return exposed
}
