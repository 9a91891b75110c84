// Package exporter turns the pools' cached XAPI snapshots into Prometheus
// metrics and serves them: the collectors, the set of pool watchers that
// follows the configuration, and the HTTP endpoints of xsha-exporter.
//
// A scrape only reads snapshots that the xapi package keeps current in the
// background (one session per pool, event.from), so it never waits on XAPI
// and one pool down or hanging never delays or blanks another. While a pool
// is down, xenserver_pool_up is 0 and the other xenserver_* values are the
// last view, whose age xsha_pool_state_age_seconds gives; xenserver_host_role
// comes from the probes, which go on regardless (a host has no role series
// before its first probe, nor while it refuses the credentials).
//
// Endpoints:
//   - /metrics: every metric, including the process's own.
//   - /-/healthy: 200 while the process runs.
//   - /-/ready: 200 once every configured pool was read once or its first
//     connection attempt failed (then xenserver_pool_up 0 is the answer), or
//     once the ready timeout passed since the start; 503 naming the pools
//     still awaited before that. Once ready, it stays ready.
//   - /-/reload (POST only): reads the configuration file again, like
//     SIGHUP; a bad file keeps the running configuration, answers 500 with
//     the reason and sets xsha_config_last_reload_successful to 0.
package exporter
