package exporter

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"xsha/cloudstack"
	"xsha/config"
)

// The CloudStack families. They come from the poller's last snapshot; while
// its latest poll failed only cloudstack_up (0) is exposed, so no stale
// CloudStack state is mistaken for the current one.
var (
	csUp = newMetric(gauge, "cloudstack_up",
		"1 when the latest poll of the CloudStack API succeeded (every call answered), else 0; the other CloudStack-derived series are only exposed while it is 1.")
	csAlertWait = newMetric(gauge, "cloudstack_alert_wait_seconds",
		"Effective alert.wait global setting: seconds CloudStack waits before putting a host whose state it cannot determine in Alert (1800 when the setting is blank).")
	csAlertWaitSet = newMetric(gauge, "cloudstack_alert_wait_set",
		"1 when alert.wait has a value, 0 when it is blank and CloudStack falls back to 1800 s.")
	csHostState = newMetric(gauge, "cloudstack_host_state",
		"listHosts state of each XenServer host; one series per state (com.cloud.host.Status), the current one 1.", "cluster", "host", "state")
	csHostResourceState = newMetric(gauge, "cloudstack_host_resource_state",
		"listHosts resourcestate of each XenServer host; one series per state (com.cloud.resource.ResourceState), the current one 1.", "cluster", "host", "state")
	csClusterVMs = newMetric(gauge, "cloudstack_cluster_vms",
		"Guest VMs placed on the cluster's hosts, by whether their service offering offers HA (ha=\"true\"): only those are restarted when a host goes Down.", "cluster", "ha")
	csClusterInfo = newMetric(gauge, "cloudstack_cluster_info",
		"The CloudStack cluster each configured pool backs (cloudstack_cluster in the configuration); always 1. Joins CloudStack series (cluster) to XenServer ones (pool).", "cluster", "pool")
	hbCSPrimary = newMetric(gauge, "xenserver_ha_heartbeat_sr_cloudstack_primary_storage",
		"1 when a CloudStack primary storage pool serving the pool's cluster has the name of the pool's heartbeat SR, which must be dedicated to Pool HA.", "pool")
)

// cloudStackMetrics lists every family the CloudStack collector emits.
var cloudStackMetrics = []*metric{csUp, csAlertWait, csAlertWaitSet, csHostState, csHostResourceState, csClusterVMs, csClusterInfo, hbCSPrimary}

func init() { metricSets = append(metricSets, cloudStackMetrics) }

// cloudStackSource hands out the latest CloudStack snapshot. It must not
// block on CloudStack.
type cloudStackSource interface {
	Snapshot() *cloudstack.Snapshot
}

// cloudStackCollector turns CloudStack snapshots into metrics.
type cloudStackCollector struct {
	src   cloudStackSource
	pools []config.Pool
}

// newCloudStackCollector returns a collector reading from src; pools give
// each pool's CloudStack cluster and heartbeat SR name.
func newCloudStackCollector(src cloudStackSource, pools []config.Pool) *cloudStackCollector {
	return &cloudStackCollector{src: src, pools: append([]config.Pool(nil), pools...)}
}

// Describe implements prometheus.Collector.
func (c *cloudStackCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range cloudStackMetrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *cloudStackCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	up := s != nil && s.Up
	ch <- csUp.must(b2f(up))
	if !up {
		return
	}
	ch <- csAlertWait.must(s.AlertWait.Seconds())
	ch <- csAlertWaitSet.must(b2f(s.AlertWaitSet))
	// Two hosts with one name in a cluster would make duplicate series and
	// fail the whole scrape: only the first is exposed.
	seen := make(map[[2]string]bool, len(s.Hosts))
	for _, h := range s.Hosts {
		key := [2]string{h.Cluster, h.Name}
		if seen[key] {
			continue
		}
		seen[key] = true
		for _, st := range cloudstack.HostStates {
			ch <- csHostState.must(b2f(h.State == st), h.Cluster, h.Name, st)
		}
		for _, st := range cloudstack.ResourceStates {
			ch <- csHostResourceState.must(b2f(h.ResourceState == st), h.Cluster, h.Name, st)
		}
	}
	// Clusters of one name in different zones are added up.
	type counts struct{ ha, noHA int }
	var order []string
	byName := map[string]*counts{}
	for _, cl := range s.Clusters {
		n := byName[cl.Name]
		if n == nil {
			n = &counts{}
			byName[cl.Name] = n
			order = append(order, cl.Name)
		}
		n.ha += cl.VMsHA
		n.noHA += cl.VMsNoHA
	}
	for _, name := range order {
		ch <- csClusterVMs.must(float64(byName[name].ha), name, "true")
		ch <- csClusterVMs.must(float64(byName[name].noHA), name, "false")
	}
	for _, p := range c.pools {
		ch <- csClusterInfo.must(1, p.CloudStackCluster, p.Name)
		ch <- hbCSPrimary.must(b2f(s.PrimaryStorageNamed(p.CloudStackCluster, p.HeartbeatSR)), p.Name)
	}
}

// StartCloudStack is a CloudStackFactory: it starts polling the CloudStack
// API cfg describes and returns the collector of its metrics and a function
// that stops the polling and waits for it.
func StartCloudStack(ctx context.Context, cfg config.CloudStack, pools []config.Pool, logger *slog.Logger) (prometheus.Collector, func(), error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := cloudstack.NewPoller(cfg, logger.With("component", "cloudstack"))
	if err != nil {
		return nil, nil, fmt.Errorf("starting the CloudStack poller: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	return newCloudStackCollector(p, pools), stop, nil
}
