package cloudstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	csgo "github.com/apache/cloudstack-go/v2/cloudstack"

	"xsha/config"
)

// pageSize is CloudStack's largest page (default.page.size).
const pageSize = 500

const alertWaitName = "alert.wait"

// Poller keeps a current Snapshot of CloudStack.
type Poller struct {
	cfg    config.CloudStack
	logger *slog.Logger
	cs     *csgo.CloudStackClient
	ctx    *ctxTransport
	snap   atomic.Pointer[Snapshot]
	now    func() time.Time
}

// NewPoller builds a poller for the API cfg describes. The server
// certificate is verified as cfg.TLS says; every call is bounded by
// cfg.Timeout.
func NewPoller(cfg config.CloudStack, logger *slog.Logger) (*Poller, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cs, ct, err := newAPIClient(cfg)
	if err != nil {
		return nil, err
	}
	p := &Poller{cfg: cfg, logger: logger, cs: cs, ctx: ct, now: time.Now}
	p.snap.Store(&Snapshot{LastError: "not polled yet"})
	return p, nil
}

// newAPIClient builds a cloudstack-go client for the API cfg describes:
// the server certificate verified as cfg.TLS says, every call bounded by
// cfg.Timeout and tied to the context the returned transport holds.
func newAPIClient(cfg config.CloudStack) (*csgo.CloudStackClient, *ctxTransport, error) {
	if _, err := url.Parse(cfg.URL); err != nil {
		return nil, nil, fmt.Errorf("cloudstack: url: %w", err)
	}
	tlsCfg, err := cfg.TLS.ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("cloudstack: tls: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	ct := &ctxTransport{base: tr}
	ct.ctx.Store(&ctxBox{context.Background()})
	timeout := time.Duration(cfg.Timeout)
	if timeout <= 0 {
		timeout = config.DefaultCSTimeout
	}
	hc := &http.Client{Transport: ct, Timeout: timeout}
	// verifyssl only configures cloudstack-go's own client, which
	// WithHTTPClient replaces.
	cs := csgo.NewClient(cfg.URL, string(cfg.APIKey), string(cfg.SecretKey), true, csgo.WithHTTPClient(hc))
	cs.HTTPGETOnly = true
	return cs, ct, nil
}

// Snapshot returns the latest snapshot; it never blocks.
func (p *Poller) Snapshot() *Snapshot { return p.snap.Load() }

// Run polls now and then every cfg.Interval until ctx is done.
func (p *Poller) Run(ctx context.Context) {
	interval := time.Duration(p.cfg.Interval)
	if interval <= 0 {
		interval = config.DefaultCSInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_, _ = p.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads CloudStack once and publishes the result: a new snapshot when
// every call succeeded, else the previous data marked down with the error.
// Calls to Poll must not overlap; Run makes them one after the other.
func (p *Poller) Poll(ctx context.Context) (*Snapshot, error) {
	p.ctx.ctx.Store(&ctxBox{ctx})
	defer p.ctx.ctx.Store(&ctxBox{context.Background()})
	start := p.now()
	s, err := p.read()
	prev := p.snap.Load()
	if err != nil {
		down := *prev
		down.Up, down.LastError = false, err.Error()
		p.snap.Store(&down)
		if prev.Up || prev.LastError != down.LastError {
			p.logger.Warn("CloudStack poll failed", "url", p.cfg.URL, "err", err)
		}
		return &down, err
	}
	s.Up, s.Synced = true, p.now()
	p.snap.Store(s)
	if !prev.Up {
		p.logger.Info("CloudStack poll succeeded", "url", p.cfg.URL, "hosts", len(s.Hosts), "vms", len(s.VMs), "duration", s.Synced.Sub(start))
	}
	return s, nil
}

// read does one complete poll.
func (p *Poller) read() (*Snapshot, error) {
	s := &Snapshot{}
	if err := p.readAlertWait(s); err != nil {
		return nil, err
	}

	cp := p.cs.Cluster.NewListClustersParams()
	cp.SetHypervisor("XenServer")
	clusters, err := listAll(func(page int) (int, []*csgo.Cluster, error) {
		cp.SetPage(page)
		cp.SetPagesize(pageSize)
		r, err := p.cs.Cluster.ListClusters(cp)
		if err != nil {
			return 0, nil, err
		}
		return r.Count, r.Clusters, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listClusters: %w", err)
	}
	byCluster := map[string]*Cluster{}
	for _, c := range clusters {
		s.Clusters = append(s.Clusters, Cluster{ID: c.Id, Name: c.Name})
	}
	sort.Slice(s.Clusters, func(i, j int) bool { return s.Clusters[i].Name < s.Clusters[j].Name })
	for i := range s.Clusters {
		byCluster[s.Clusters[i].Name] = &s.Clusters[i]
	}

	hp := p.cs.Host.NewListHostsParams()
	hp.SetType("Routing")
	hp.SetHypervisor("XenServer")
	hosts, err := listAll(func(page int) (int, []*csgo.Host, error) {
		hp.SetPage(page)
		hp.SetPagesize(pageSize)
		r, err := p.cs.Host.ListHosts(hp)
		if err != nil {
			return 0, nil, err
		}
		return r.Count, r.Hosts, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listHosts: %w", err)
	}
	hostByID := map[string]Host{}
	for _, h := range hosts {
		host := Host{ID: h.Id, Name: h.Name, Cluster: h.Clustername, IPAddress: h.Ipaddress, State: h.State, ResourceState: h.Resourcestate}
		s.Hosts = append(s.Hosts, host)
		hostByID[h.Id] = host
	}
	sort.Slice(s.Hosts, func(i, j int) bool {
		if s.Hosts[i].Cluster != s.Hosts[j].Cluster {
			return s.Hosts[i].Cluster < s.Hosts[j].Cluster
		}
		return s.Hosts[i].Name < s.Hosts[j].Name
	})

	sp := p.cs.Pool.NewListStoragePoolsParams()
	pools, err := listAll(func(page int) (int, []*csgo.StoragePool, error) {
		sp.SetPage(page)
		sp.SetPagesize(pageSize)
		r, err := p.cs.Pool.ListStoragePools(sp)
		if err != nil {
			return 0, nil, err
		}
		return r.Count, r.StoragePools, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listStoragePools: %w", err)
	}
	for _, sp := range pools {
		s.StoragePools = append(s.StoragePools, StoragePool{ID: sp.Id, Name: sp.Name, Cluster: sp.Clustername, Type: sp.Type, State: sp.State})
	}
	sort.Slice(s.StoragePools, func(i, j int) bool {
		if s.StoragePools[i].Cluster != s.StoragePools[j].Cluster {
			return s.StoragePools[i].Cluster < s.StoragePools[j].Cluster
		}
		return s.StoragePools[i].Name < s.StoragePools[j].Name
	})

	op := p.cs.ServiceOffering.NewListServiceOfferingsParams()
	offerings, err := listAll(func(page int) (int, []*csgo.ServiceOffering, error) {
		op.SetPage(page)
		op.SetPagesize(pageSize)
		r, err := p.cs.ServiceOffering.ListServiceOfferings(op)
		if err != nil {
			return 0, nil, err
		}
		return r.Count, r.ServiceOfferings, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listServiceOfferings: %w", err)
	}
	offerHA := map[string]bool{}
	for _, o := range offerings {
		offerHA[o.Id] = o.Offerha
	}

	vms, err := p.listVMs()
	if err != nil {
		return nil, err
	}
	for _, v := range vms {
		vm := VM{ID: v.Id, Name: v.Name, InstanceName: v.Instancename, State: v.State, HA: v.Haenable}
		if ha, ok := offerHA[v.Serviceofferingid]; ok {
			vm.HA = ha
		}
		if h, ok := hostByID[v.Hostid]; ok && v.Hostid != "" {
			vm.Host, vm.Cluster = h.Name, h.Cluster
			if c := byCluster[h.Cluster]; c != nil {
				if vm.HA {
					c.VMsHA++
				} else {
					c.VMsNoHA++
				}
			}
		}
		s.VMs = append(s.VMs, vm)
	}
	sort.Slice(s.VMs, func(i, j int) bool { return s.VMs[i].Name < s.VMs[j].Name })
	return s, nil
}

// readAlertWait reads alert.wait. The name filter is a substring match, so
// the entry named exactly alert.wait is picked; a blank value means 1800 s.
func (p *Poller) readAlertWait(s *Snapshot) error {
	cp := p.cs.Configuration.NewListConfigurationsParams()
	cp.SetName(alertWaitName)
	r, err := p.cs.Configuration.ListConfigurations(cp)
	if err != nil {
		return fmt.Errorf("listConfigurations: %w", redact(err))
	}
	s.AlertWait = DefaultAlertWait
	for _, c := range r.Configurations {
		if c.Name != alertWaitName || c.Value == "" {
			continue
		}
		secs, err := strconv.Atoi(c.Value)
		if err != nil {
			p.logger.Warn("alert.wait is not a number; CloudStack uses its default", "value", c.Value)
			continue
		}
		s.AlertWait, s.AlertWaitSet = time.Duration(secs)*time.Second, true
	}
	return nil
}

// listVMs lists the guest VMs of every account and project. A root admin
// needs listall=true to see other accounts' VMs; projectid=-1 adds project
// VMs on current CloudStack but lists only them on older releases, so both
// lists are merged.
func (p *Poller) listVMs() ([]*csgo.VirtualMachine, error) {
	var out []*csgo.VirtualMachine
	seen := map[string]bool{}
	for _, projects := range []bool{false, true} {
		vp := p.cs.VirtualMachine.NewListVirtualMachinesParams()
		vp.SetListall(true)
		if projects {
			vp.SetProjectid("-1")
		}
		vms, err := listAll(func(page int) (int, []*csgo.VirtualMachine, error) {
			vp.SetPage(page)
			vp.SetPagesize(pageSize)
			r, err := p.cs.VirtualMachine.ListVirtualMachines(vp)
			if err != nil {
				return 0, nil, err
			}
			return r.Count, r.VirtualMachines, nil
		})
		if err != nil {
			return nil, fmt.Errorf("listVirtualMachines: %w", err)
		}
		for _, v := range vms {
			if !seen[v.Id] {
				seen[v.Id] = true
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// listAll fetches every page of a list command.
func listAll[T any](fetch func(page int) (count int, items []T, err error)) ([]T, error) {
	var all []T
	for page := 1; ; page++ {
		count, items, err := fetch(page)
		if err != nil {
			return nil, redact(err)
		}
		all = append(all, items...)
		if len(items) == 0 || len(all) >= count {
			return all, nil
		}
	}
}

// redact drops the query of the URL quoted in err: cloudstack-go puts the
// API key and the signature in the query string, and net/http errors quote
// the whole URL. It must see err before anything formats it.
func redact(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			ue.URL = u.String()
		} else {
			ue.URL = "(unparsable URL)"
		}
	}
	return err
}

// ctxTransport ties requests to the running poll's context, so that
// stopping the poller cancels calls in flight: cloudstack-go takes no
// context.
type ctxTransport struct {
	base http.RoundTripper
	ctx  atomic.Pointer[ctxBox]
}

type ctxBox struct{ ctx context.Context }

// RoundTrip implements http.RoundTripper.
func (t *ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx.Load().ctx))
}
