package exporter

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"xsha/config"
	"xsha/xapi"
)

// metric pairs a descriptor with its value type. Every family the package
// exposes is built from one of these, so MetricNames and the descriptors
// cannot drift apart.
type metric struct {
	name string
	desc *prometheus.Desc
	typ  prometheus.ValueType
}

func newMetric(typ prometheus.ValueType, name, help string, labels ...string) *metric {
	return &metric{name: name, typ: typ, desc: prometheus.NewDesc(name, help, labels, nil)}
}

func (m *metric) must(v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(m.desc, m.typ, v, labels...)
}

const (
	gauge   = prometheus.GaugeValue
	counter = prometheus.CounterValue
)

// The XenServer families. HELP names the XAPI field each comes from; all of
// them are read from a view the exporter keeps current with event.from in
// the background, never from XAPI at scrape time.
var (
	poolUp = newMetric(gauge, "xenserver_pool_up",
		"1 while the exporter holds a current view of the pool through a session on its master (event.from stream alive), else 0; other xenserver_pool_* values are then the last view.", "pool")
	poolHAEnabled = newMetric(gauge, "xenserver_pool_ha_enabled",
		"pool.ha_enabled: 1 when Pool HA is enabled.", "pool")
	poolHATolerate = newMetric(gauge, "xenserver_pool_ha_host_failures_to_tolerate",
		"pool.ha_host_failures_to_tolerate.", "pool")
	poolHAPlan = newMetric(gauge, "xenserver_pool_ha_plan_exists_for",
		"pool.ha_plan_exists_for: host failures a failover plan exists for.", "pool")
	poolHAOvercommitted = newMetric(gauge, "xenserver_pool_ha_overcommitted",
		"pool.ha_overcommitted: 1 when no plan exists for ha_host_failures_to_tolerate failures.", "pool")
	poolHATimeout = newMetric(gauge, "xenserver_pool_ha_timeout_seconds",
		"HA timeout T xapi uses: pool.ha_configuration[\"timeout\"], else pool.other_config[\"default_ha_timeout\"], else 60 s. xapi keeps ha_configuration after disable_ha.", "pool")
	poolMasterInfo = newMetric(gauge, "xenserver_pool_master_info",
		"The host pool.master points at (name_label, uuid, address); always 1.", "pool", "host", "host_uuid", "address")
	poolMasterChanges = newMetric(counter, "xenserver_pool_master_changes_total",
		"Changes of pool.master observed by this exporter since it started watching the pool (at start, or when the pool's configuration changed).", "pool")
	hbPresent = newMetric(gauge, "xenserver_ha_heartbeat_sr_present",
		"1 when an SR whose name_label is the configured heartbeat SR exists.", "pool")
	hbInfo = newMetric(gauge, "xenserver_ha_heartbeat_sr_info",
		"The configured heartbeat SR (SR.name_label, uuid, type); always 1.", "pool", "sr", "sr_uuid", "type")
	hbShared = newMetric(gauge, "xenserver_ha_heartbeat_sr_shared",
		"SR.shared of the heartbeat SR.", "pool")
	hbSize = newMetric(gauge, "xenserver_ha_heartbeat_sr_size_bytes",
		"SR.physical_size of the heartbeat SR in bytes.", "pool")
	hbAttached = newMetric(gauge, "xenserver_ha_heartbeat_sr_attached",
		"PBD.currently_attached of the heartbeat SR's PBD on the host (0 when the host has none).", "pool", "host")
	hbStatefile = newMetric(gauge, "xenserver_ha_heartbeat_sr_statefile",
		"1 when a VDI of pool.ha_statefiles is on the heartbeat SR (SR.VDIs); xapi keeps ha_statefiles after disable_ha.", "pool")
	hostInfo = newMetric(gauge, "xenserver_host_info",
		"A pool member (host.name_label, uuid, address, software_version[\"product_version\"]); always 1.", "pool", "host", "host_uuid", "address", "product_version")
	hostLive = newMetric(gauge, "xenserver_host_live",
		"host_metrics.live: the master thinks the host is live (lags up to 10 min without HA).", "pool", "host")
	hostEnabled = newMetric(gauge, "xenserver_host_enabled",
		"host.enabled (every new master disables all hosts until they re-enable).", "pool", "host")
	hostRole = newMetric(gauge, "xenserver_host_role",
		"The host's own view from a login probe on its address: master (login accepted), slave (HOST_IS_SLAVE), emergency (any other XAPI error: emergency mode, still booting), unreachable (no answer); one series per role, the current one 1. Absent before the first probe and while the host refuses the credentials (SESSION_AUTHENTICATION_FAILED).", "pool", "host", "role")
	hostHotfix = newMetric(gauge, "xenserver_host_hotfix_applied",
		"1 when a required hotfix is applied on the host: pool_patch.name_label with an applied host_patch (6.x), pool_update.name_label in host.updates (7.x), or for XS62ESP1004 also host.API_version >= 2.2 (roll-ups).", "pool", "host", "hotfix")
	hostStatefile = newMetric(gauge, "xenserver_host_ha_statefile_access",
		"1 when host.ha_statefiles is not empty: the host reaches the HA statefile.", "pool", "host")
	poolVMsHAProtected = newMetric(gauge, "xenserver_pool_vms_ha_protected",
		"Guest VMs (not control domains, templates or snapshots) with a non-empty VM.ha_restart_priority; CloudStack owns VM HA, so this should be 0.", "pool")
	poolStateAge = newMetric(gauge, "xsha_pool_state_age_seconds",
		"Seconds since the pool's view was last confirmed current by its master (an event.from answer or a full read).", "pool")
)

// xenServerMetrics lists every family the XenServer collector emits.
var xenServerMetrics = []*metric{
	poolUp, poolHAEnabled, poolHATolerate, poolHAPlan, poolHAOvercommitted, poolHATimeout,
	poolMasterInfo, poolMasterChanges,
	hbPresent, hbInfo, hbShared, hbSize, hbAttached, hbStatefile,
	hostInfo, hostLive, hostEnabled, hostRole, hostHotfix, hostStatefile,
	poolVMsHAProtected, poolStateAge,
}

// metricSets are the families of every collector of this package; a file
// adding a collector adds its table here in an init function.
var metricSets = [][]*metric{xenServerMetrics}

// MetricNames returns the name of every metric family xsha-exporter can
// expose besides the Go runtime, process and build-info ones: its
// collectors' tables, the XAPI client's own metrics and the configuration
// reload metrics.
func MetricNames() []string {
	var names []string
	for _, set := range metricSets {
		for _, m := range set {
			names = append(names, m.name)
		}
	}
	names = append(names, xapi.MetricNames()...)
	reg := prometheus.NewRegistry()
	config.NewStore("", reg)
	if mfs, err := reg.Gather(); err == nil {
		for _, mf := range mfs {
			names = append(names, mf.GetName())
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
