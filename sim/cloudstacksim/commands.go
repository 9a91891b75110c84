package cloudstacksim

import (
	"encoding/json"
	"fmt"
	"time"
)

// command answers one API command; it runs with the server locked.
type command func(s *Server, r *request) (any, *apiError)

// commands are the API names served, case-sensitive as in CloudStack.
var commands = map[string]command{
	"listConfigurations":        (*Server).listConfigurations,
	"updateConfiguration":       (*Server).updateConfiguration,
	"listHosts":                 (*Server).listHosts,
	"listClusters":              (*Server).listClusters,
	"listStoragePools":          (*Server).listStoragePools,
	"listVirtualMachines":       (*Server).listVirtualMachines,
	"listServiceOfferings":      (*Server).listServiceOfferings,
	"prepareHostForMaintenance": (*Server).prepareHostForMaintenance,
	"cancelHostMaintenance":     (*Server).cancelHostMaintenance,
	"reconnectHost":             (*Server).reconnectHost,
	"queryAsyncJobResult":       (*Server).queryAsyncJobResult,
}

// Fixed host capacity figures.
const (
	hostCPUs        = 16
	hostCPUSockets  = 2
	hostCPUSpeedMHz = 2600
	hostMemoryBytes = 128 << 30
	mib             = 1 << 20
)

type hostResponse struct {
	ID                      string      `json:"id"`
	Name                    string      `json:"name"`
	State                   string      `json:"state"`
	Disconnected            string      `json:"disconnected,omitempty"`
	Type                    string      `json:"type"`
	IPAddress               string      `json:"ipaddress"`
	ZoneID                  string      `json:"zoneid"`
	ZoneName                string      `json:"zonename"`
	PodID                   string      `json:"podid"`
	PodName                 string      `json:"podname"`
	Version                 string      `json:"version"`
	Hypervisor              string      `json:"hypervisor,omitempty"`
	HypervisorVersion       string      `json:"hypervisorversion,omitempty"`
	CPUSockets              *int        `json:"cpusockets,omitempty"`
	CPUNumber               *int        `json:"cpunumber,omitempty"`
	CPUSpeed                *int64      `json:"cpuspeed,omitempty"`
	CPUAllocated            string      `json:"cpuallocated,omitempty"`
	CPUUsed                 string      `json:"cpuused,omitempty"`
	CPUWithOverprovisioning string      `json:"cpuwithoverprovisioning,omitempty"`
	NetworkKbsRead          *int64      `json:"networkkbsread,omitempty"`
	NetworkKbsWrite         *int64      `json:"networkkbswrite,omitempty"`
	MemoryTotal             *int64      `json:"memorytotal,omitempty"`
	MemoryAllocated         *int64      `json:"memoryallocated,omitempty"`
	MemoryUsed              *int64      `json:"memoryused,omitempty"`
	Capabilities            string      `json:"capabilities,omitempty"`
	LastPinged              string      `json:"lastpinged"`
	ManagementServerID      json.Number `json:"managementserverid"`
	ClusterID               string      `json:"clusterid,omitempty"`
	ClusterName             string      `json:"clustername,omitempty"`
	ClusterType             string      `json:"clustertype,omitempty"`
	IsLocalStorageActive    bool        `json:"islocalstorageactive"`
	Created                 string      `json:"created"`
	Events                  string      `json:"events"`
	HAHost                  bool        `json:"hahost"`
	ResourceState           string      `json:"resourcestate"`
	JobID                   string      `json:"jobid,omitempty"`
	JobStatus               *int        `json:"jobstatus,omitempty"`
}

// lastPinged reproduces the server's quirk: last_ping is stored as
// milliseconds >> 10 and shown as new Date(last_ping), a 1970 date.
func lastPinged(t time.Time) string {
	return date(time.UnixMilli(t.UnixMilli() >> 10))
}

func (s *Server) hostResponse(h *host) hostResponse {
	r := hostResponse{
		ID: h.id, Name: h.name, State: h.state, Disconnected: date(h.disconnected), Type: h.typ,
		IPAddress: h.address, ZoneID: s.zone.id, ZoneName: s.zone.name, PodID: s.zone.podID, PodName: s.zone.podName,
		Version: s.opts.Version, LastPinged: lastPinged(h.lastPing), ManagementServerID: managementMS,
		Created: date(h.created), Events: hostEvents[h.state], ResourceState: h.rs,
	}
	if h.pending != nil {
		r.JobID, r.JobStatus = h.pending.id, new(h.pending.status)
	}
	if h.typ != hostRouting {
		if r.IPAddress == "" {
			r.IPAddress = fmt.Sprintf("169.254.%d.%d", h.seq/250, h.seq%250+1)
		}
		return r
	}
	var cpuMHz, memMB int64
	for _, v := range s.vms {
		if v.host == h && v.active() {
			cpuMHz += int64(v.offering.cpus * v.offering.speed)
			memMB += int64(v.offering.memory)
		}
	}
	capacity := int64(hostCPUs * hostCPUSpeedMHz)
	r.Hypervisor, r.HypervisorVersion = "XenServer", s.opts.HypervisorVersion
	r.CPUSockets, r.CPUNumber, r.CPUSpeed = new(hostCPUSockets), new(hostCPUs), new(int64(hostCPUSpeedMHz))
	r.CPUAllocated = fmt.Sprintf("%.2f%%", float64(cpuMHz)*100/float64(capacity))
	r.CPUWithOverprovisioning = fmt.Sprintf("%d.0", capacity)
	r.MemoryTotal, r.MemoryAllocated = new(int64(hostMemoryBytes)), new(memMB*mib)
	if h.state == statusUp {
		r.CPUUsed = fmt.Sprintf("%.2f%%", float64(cpuMHz)*30/float64(capacity))
		r.NetworkKbsRead, r.NetworkKbsWrite = new(memMB*3), new(memMB*2)
		r.MemoryUsed = new(memMB*mib*3/4 + 2<<30)
	}
	r.Capabilities = "xen-3.0-x86_64 , xen-3.0-x86_32p , hvm-3.0-x86_32 , hvm-3.0-x86_32p , hvm-3.0-x86_64"
	r.ClusterID, r.ClusterName, r.ClusterType = h.cluster.id, h.cluster.name, "CloudManaged"
	return r
}

func (s *Server) hostByID(id string) *host {
	for _, h := range s.hosts {
		if h.id == id {
			return h
		}
	}
	return nil
}

func (s *Server) clusterByID(id string) *cluster {
	for _, c := range s.clusters {
		if c.id == id {
			return c
		}
	}
	return nil
}

func (s *Server) vmByID(id string) *vm {
	for _, v := range s.vms {
		if v.id == id {
			return v
		}
	}
	return nil
}

// knownID reports whether id names an entity of the kind.
func (s *Server) knownID(kind, id string) bool {
	switch kind {
	case "zone":
		return id == s.zone.id
	case "pod":
		return id == s.zone.podID
	case "cluster":
		return s.clusterByID(id) != nil
	case "host":
		return s.hostByID(id) != nil
	case "vm":
		return s.vmByID(id) != nil
	case "storagepool":
		for _, p := range s.pools {
			if p.id == id {
				return true
			}
		}
	case "offering":
		for _, o := range s.offerings {
			if o.id == id {
				return true
			}
		}
	case "project":
		for _, p := range s.projects {
			if p.id == id {
				return true
			}
		}
	case "account":
		return id == nameUUID("account", adminAccount)
	case "domain":
		return id == nameUUID("domain", rootDomain)
	}
	return false
}

// ids validates the uuid-typed parameters of a request, as
// ParamProcessWorker.translateUuidToInternalId does.
func (s *Server) ids(r *request, kinds map[string]string) *apiError {
	for param, kind := range kinds {
		if id, ok := r.get(param); ok && id != "" && !s.knownID(kind, id) {
			return invalidValue(r.cmd, param, id)
		}
	}
	return nil
}

func (s *Server) listHosts(r *request) (any, *apiError) {
	pg, err := r.paging()
	if err != nil {
		return nil, err
	}
	if err := s.ids(r, map[string]string{"id": "host", "clusterid": "cluster", "zoneid": "zone", "podid": "pod"}); err != nil {
		return nil, err
	}
	id, _ := r.get("id")
	clusterID, _ := r.get("clusterid")
	name, _ := r.get("name")
	keyword, _ := r.get("keyword")
	typ, _ := r.get("type")
	state, _ := r.get("state")
	rs, _ := r.get("resourcestate")
	hyp, _ := r.get("hypervisor")
	_, haHostSet := r.get("hahost")
	var out []hostResponse
	for _, h := range s.hosts {
		if id != "" && h.id != id {
			continue
		}
		if clusterID != "" && (h.cluster == nil || h.cluster.id != clusterID) {
			continue
		}
		// No host carries ha.tag, so hahost is false everywhere.
		if haHostSet && r.flag("hahost") {
			continue
		}
		hv := ""
		if h.typ == hostRouting {
			hv = "XenServer"
		}
		if !like(h.name, name) || !like(h.name, keyword) || !equal(h.typ, typ) || !equal(h.state, state) || !equal(h.rs, rs) {
			continue
		}
		if hyp != "" && !equal(hv, hyp) {
			continue
		}
		out = append(out, s.hostResponse(h))
	}
	return page(pg, "host", out), nil
}

type clusterResponse struct {
	ID                    string `json:"id"`
	Name                  string `json:"name"`
	PodID                 string `json:"podid"`
	PodName               string `json:"podname"`
	ZoneID                string `json:"zoneid"`
	ZoneName              string `json:"zonename"`
	HypervisorType        string `json:"hypervisortype"`
	ClusterType           string `json:"clustertype"`
	AllocationState       string `json:"allocationstate"`
	ManagedState          string `json:"managedstate"`
	CPUOvercommitRatio    string `json:"cpuovercommitratio"`
	MemoryOvercommitRatio string `json:"memoryovercommitratio"`
}

func (s *Server) listClusters(r *request) (any, *apiError) {
	pg, err := r.paging()
	if err != nil {
		return nil, err
	}
	if err := s.ids(r, map[string]string{"id": "cluster", "zoneid": "zone", "podid": "pod"}); err != nil {
		return nil, err
	}
	id, _ := r.get("id")
	name, _ := r.get("name")
	keyword, _ := r.get("keyword")
	hyp, _ := r.get("hypervisor")
	alloc, _ := r.get("allocationstate")
	managed, _ := r.get("managedstate")
	ctype, _ := r.get("clustertype")
	var out []clusterResponse
	for _, c := range s.clusters {
		if id != "" && c.id != id {
			continue
		}
		if !equal(c.name, name) || !like(c.name, keyword) || !equal("XenServer", hyp) ||
			!equal("Enabled", alloc) || !equal("Managed", managed) || !equal("CloudManaged", ctype) {
			continue
		}
		out = append(out, clusterResponse{
			ID: c.id, Name: c.name, PodID: s.zone.podID, PodName: s.zone.podName, ZoneID: s.zone.id, ZoneName: s.zone.name,
			HypervisorType: "XenServer", ClusterType: "CloudManaged", AllocationState: "Enabled", ManagedState: "Managed",
			CPUOvercommitRatio: "1.0", MemoryOvercommitRatio: "1.0",
		})
	}
	return page(pg, "cluster", out), nil
}

type storagePoolResponse struct {
	ID                  string `json:"id"`
	ZoneID              string `json:"zoneid"`
	ZoneName            string `json:"zonename"`
	PodID               string `json:"podid"`
	PodName             string `json:"podname"`
	Name                string `json:"name"`
	IPAddress           string `json:"ipaddress"`
	Path                string `json:"path"`
	Created             string `json:"created"`
	Type                string `json:"type"`
	ClusterID           string `json:"clusterid"`
	ClusterName         string `json:"clustername"`
	DiskSizeTotal       int64  `json:"disksizetotal"`
	DiskSizeAllocated   int64  `json:"disksizeallocated"`
	DiskSizeUsed        int64  `json:"disksizeused"`
	State               string `json:"state"`
	Scope               string `json:"scope"`
	Hypervisor          string `json:"hypervisor"`
	OverProvisionFactor string `json:"overprovisionfactor"`
}

func (s *Server) listStoragePools(r *request) (any, *apiError) {
	pg, err := r.paging()
	if err != nil {
		return nil, err
	}
	if err := s.ids(r, map[string]string{"id": "storagepool", "clusterid": "cluster", "zoneid": "zone", "podid": "pod", "hostid": "host"}); err != nil {
		return nil, err
	}
	id, _ := r.get("id")
	clusterID, _ := r.get("clusterid")
	hostID, _ := r.get("hostid")
	name, _ := r.get("name")
	keyword, _ := r.get("keyword")
	ip, _ := r.get("ipaddress")
	path, _ := r.get("path")
	scope, _ := r.get("scope")
	status, _ := r.get("status")
	var out []storagePoolResponse
	for _, p := range s.pools {
		if id != "" && p.id != id {
			continue
		}
		if clusterID != "" && p.cluster.id != clusterID {
			continue
		}
		if hostID != "" {
			if h := s.hostByID(hostID); h.cluster != p.cluster {
				continue
			}
		}
		if !equal(p.name, name) || !like(p.name, keyword) || !equal(p.address, ip) || !equal(p.path, path) ||
			!equal("CLUSTER", scope) || !equal("Up", status) {
			continue
		}
		out = append(out, storagePoolResponse{
			ID: p.id, ZoneID: s.zone.id, ZoneName: s.zone.name, PodID: s.zone.podID, PodName: s.zone.podName,
			Name: p.name, IPAddress: p.address, Path: p.path, Created: date(p.created), Type: p.typ,
			ClusterID: p.cluster.id, ClusterName: p.cluster.name,
			DiskSizeTotal: p.size, DiskSizeAllocated: p.size / 4, DiskSizeUsed: p.size / 5,
			State: "Up", Scope: "CLUSTER", Hypervisor: "XenServer", OverProvisionFactor: "2.0",
		})
	}
	return page(pg, "storagepool", out), nil
}

type vmResponse struct {
	ID                    string     `json:"id"`
	Name                  string     `json:"name"`
	DisplayName           string     `json:"displayname"`
	Account               string     `json:"account"`
	ProjectID             string     `json:"projectid,omitempty"`
	Project               string     `json:"project,omitempty"`
	DomainID              string     `json:"domainid"`
	Domain                string     `json:"domain"`
	Created               string     `json:"created"`
	State                 string     `json:"state"`
	HAEnable              bool       `json:"haenable"`
	ZoneID                string     `json:"zoneid"`
	ZoneName              string     `json:"zonename"`
	HostID                string     `json:"hostid,omitempty"`
	HostName              string     `json:"hostname,omitempty"`
	InstanceName          string     `json:"instancename"`
	TemplateID            string     `json:"templateid"`
	TemplateName          string     `json:"templatename"`
	TemplateDisplayText   string     `json:"templatedisplaytext"`
	PasswordEnabled       bool       `json:"passwordenabled"`
	ServiceOfferingID     string     `json:"serviceofferingid"`
	ServiceOfferingName   string     `json:"serviceofferingname"`
	CPUNumber             int        `json:"cpunumber"`
	CPUSpeed              int        `json:"cpuspeed"`
	Memory                int        `json:"memory"`
	CPUUsed               string     `json:"cpuused,omitempty"`
	GuestOSID             string     `json:"guestosid"`
	RootDeviceID          int64      `json:"rootdeviceid"`
	RootDeviceType        string     `json:"rootdevicetype"`
	SecurityGroup         []struct{} `json:"securitygroup"`
	Hypervisor            string     `json:"hypervisor"`
	Tags                  []struct{} `json:"tags"`
	AffinityGroup         []struct{} `json:"affinitygroup"`
	DisplayVM             bool       `json:"displayvm"`
	IsDynamicallyScalable bool       `json:"isdynamicallyscalable"`
}

func (s *Server) vmResponse(v *vm) vmResponse {
	r := vmResponse{
		ID: v.id, Name: v.name, DisplayName: v.displayName, Account: v.account,
		DomainID: nameUUID("domain", rootDomain), Domain: rootDomain, Created: date(v.created),
		State: v.state, HAEnable: v.haEnabled(), ZoneID: s.zone.id, ZoneName: s.zone.name,
		InstanceName: v.instanceName, TemplateID: nameUUID("template", templateName), TemplateName: templateName,
		TemplateDisplayText: templateName, ServiceOfferingID: v.offering.id, ServiceOfferingName: v.offering.name,
		CPUNumber: v.offering.cpus, CPUSpeed: v.offering.speed, Memory: v.offering.memory,
		GuestOSID: nameUUID("guestos", templateName), RootDeviceType: "ROOT",
		SecurityGroup: []struct{}{}, Hypervisor: "XenServer", Tags: []struct{}{}, AffinityGroup: []struct{}{},
		DisplayVM: true,
	}
	if v.project != nil {
		r.ProjectID, r.Project = v.project.id, v.project.name
		r.Account = "PrjAcct-" + v.project.name + "-1"
	}
	if v.host != nil && v.active() {
		r.HostID, r.HostName = v.host.id, v.host.name
	}
	if v.state == vmRunning {
		r.CPUUsed = "12.5%"
	}
	return r
}

func (s *Server) listVirtualMachines(r *request) (any, *apiError) {
	pg, err := r.paging()
	if err != nil {
		return nil, err
	}
	if err := s.ids(r, map[string]string{"id": "vm", "hostid": "host", "clusterid": "cluster", "zoneid": "zone",
		"podid": "pod", "serviceofferingid": "offering", "domainid": "domain"}); err != nil {
		return nil, err
	}
	projectID, byProject := r.get("projectid")
	if byProject && projectID != "-1" && !s.knownID("project", projectID) {
		return nil, invalidValue(r.cmd, "projectid", projectID)
	}
	id, _ := r.get("id")
	hostID, _ := r.get("hostid")
	clusterID, _ := r.get("clusterid")
	offeringID, _ := r.get("serviceofferingid")
	name, _ := r.get("name")
	keyword, _ := r.get("keyword")
	state, _ := r.get("state")
	hyp, _ := r.get("hypervisor")
	account, _ := r.get("account")
	_, haSet := r.get("haenable")
	listAll := r.flag("listall")
	var out []vmResponse
	for _, v := range s.vms {
		if v.typ != VMTypeUser {
			continue
		}
		// AccountManagerImpl.buildACLSearchParameters for a root admin.
		switch {
		case id != "":
			if v.id != id {
				continue
			}
		case byProject && projectID == "-1":
			if !listAll && v.project == nil {
				continue // project resources only
			}
		case byProject:
			if v.project == nil || v.project.id != projectID {
				continue
			}
		default:
			if v.project != nil || (!listAll && v.account != adminAccount) {
				continue
			}
		}
		onHost := v.host != nil && v.active()
		if hostID != "" && (!onHost || v.host.id != hostID) {
			continue
		}
		if clusterID != "" && (!onHost || v.host.cluster.id != clusterID) {
			continue
		}
		if offeringID != "" && v.offering.id != offeringID {
			continue
		}
		if haSet && v.haEnabled() != r.flag("haenable") {
			continue
		}
		if !like(v.name, name) || !like(v.name, keyword) || !equal(v.state, state) || !equal("XenServer", hyp) || !equal(v.account, account) {
			continue
		}
		out = append(out, s.vmResponse(v))
	}
	return page(pg, "virtualmachine", out), nil
}

type serviceOfferingResponse struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayText string `json:"displaytext"`
	CPUNumber   int    `json:"cpunumber"`
	CPUSpeed    int    `json:"cpuspeed"`
	Memory      int    `json:"memory"`
	Created     string `json:"created"`
	StorageType string `json:"storagetype"`
	OfferHA     bool   `json:"offerha"`
	LimitCPUUse bool   `json:"limitcpuuse"`
	IsVolatile  bool   `json:"isvolatile"`
	IsSystem    bool   `json:"issystem"`
	DefaultUse  bool   `json:"defaultuse"`
}

func (s *Server) listServiceOfferings(r *request) (any, *apiError) {
	pg, err := r.paging()
	if err != nil {
		return nil, err
	}
	if err := s.ids(r, map[string]string{"id": "offering", "virtualmachineid": "vm", "zoneid": "zone", "domainid": "domain"}); err != nil {
		return nil, err
	}
	id, _ := r.get("id")
	name, _ := r.get("name")
	keyword, _ := r.get("keyword")
	system := r.flag("issystem")
	var out []serviceOfferingResponse
	for _, o := range s.offerings {
		if id != "" && o.id != id {
			continue
		}
		if id == "" && o.system != system {
			continue
		}
		if !equal(o.name, name) || !like(o.name, keyword) {
			continue
		}
		out = append(out, serviceOfferingResponse{
			ID: o.id, Name: o.name, DisplayText: o.name, CPUNumber: o.cpus, CPUSpeed: o.speed, Memory: o.memory,
			Created: date(o.created), StorageType: "shared", OfferHA: o.offerHA, IsSystem: o.system,
		})
	}
	return page(pg, "serviceoffering", out), nil
}

// hostParam resolves the required host id of a host command.
func (s *Server) hostParam(r *request) (*host, *apiError) {
	id, ok := r.get("id")
	if !ok || id == "" {
		return nil, missingParam(r.cmd, "id")
	}
	h := s.hostByID(id)
	if h == nil {
		return nil, invalidValue(r.cmd, "id", id)
	}
	return h, nil
}

func (s *Server) prepareHostForMaintenance(r *request) (any, *apiError) {
	h, err := s.hostParam(r)
	if err != nil {
		return nil, err
	}
	return s.startJob(cmdPrepareMaintenance, h, s.prepareJob(h)), nil
}

func (s *Server) cancelHostMaintenance(r *request) (any, *apiError) {
	h, err := s.hostParam(r)
	if err != nil {
		return nil, err
	}
	return s.startJob(cmdCancelMaintenance, h, s.cancelJob(h)), nil
}

func (s *Server) reconnectHost(r *request) (any, *apiError) {
	h, err := s.hostParam(r)
	if err != nil {
		return nil, err
	}
	return s.startJob(cmdReconnectHost, h, s.reconnectJob(h)), nil
}

func (s *Server) queryAsyncJobResult(r *request) (any, *apiError) {
	id, ok := r.get("jobid")
	if !ok || id == "" {
		return nil, missingParam(r.cmd, "jobid")
	}
	j := s.jobs[id]
	if j == nil {
		return nil, invalidValue(r.cmd, "jobid", id)
	}
	s.runJobs(s.now())
	return s.jobResponse(j), nil
}
