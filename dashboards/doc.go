// Package dashboards holds xsha's Grafana dashboards: a fleet overview, a
// pool detail view and the remediator's activity. The JSON files in this
// directory are what Grafana provisions; the package embeds the same files so
// that its tests check exactly what operators load.
package dashboards

import "embed"

// Files holds the dashboard JSON files, one dashboard per file.
//
//go:embed *.json
var Files embed.FS
