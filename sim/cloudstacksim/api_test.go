package cloudstacksim

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// startAPI serves a running simulated CloudStack (real clock).
func startAPI(t *testing.T, infra Infra, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(infra, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); cancel(); <-done })
	return s, ts
}

// startAPIOnClock serves a simulated CloudStack whose model only moves when
// the test says so.
func startAPIOnClock(t *testing.T) (*Server, *fakeClock, *fakeInfra, *httptest.Server) {
	t.Helper()
	infra := newFakeInfra()
	s, clock := newModel(t, infra, testOptions())
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, clock, infra, ts
}

// signedURL builds a request URL exactly as cloudstack-go signs it.
func signedURL(base, secret string, params url.Values) string {
	s := cloudstack.EncodeValues(params)
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(strings.ToLower(s)))
	return base + "?" + s + "&signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}

func apiParams(command string, kv ...string) url.Values {
	p := url.Values{"apiKey": {testAPIKey}, "command": {command}, "response": {"json"}}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Set(kv[i], kv[i+1])
	}
	return p
}

func get(t *testing.T, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestCloudStackGoDecodesListResponses(t *testing.T) {
	s, ts := startAPI(t, newFakeInfra(), testOptions())
	cs := cloudstack.NewClient(ts.URL+"/client/api", testAPIKey, testSecretKey, false)

	cfg, err := cs.Configuration.ListConfigurations(func() *cloudstack.ListConfigurationsParams {
		p := cs.Configuration.NewListConfigurationsParams()
		p.SetName("alert.wait")
		return p
	}())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Count != 1 || cfg.Configurations[0].Name != "alert.wait" || cfg.Configurations[0].Value != "60" ||
		cfg.Configurations[0].Defaultvalue != "1800" || !cfg.Configurations[0].Isdynamic {
		t.Errorf("listConfigurations name=alert.wait = %+v", cfg.Configurations)
	}

	// name is a substring match.
	p := cs.Configuration.NewListConfigurationsParams()
	p.SetName("ping")
	cfg, err = cs.Configuration.ListConfigurations(p)
	if err != nil || cfg.Count != 2 {
		t.Errorf("listConfigurations name=ping: %v, %+v; want ping.interval and ping.timeout", err, cfg)
	}

	hp := cs.Host.NewListHostsParams()
	hp.SetType("Routing")
	hp.SetHypervisor("XenServer")
	hosts, err := cs.Host.ListHosts(hp)
	if err != nil {
		t.Fatal(err)
	}
	if hosts.Count != 8 || len(hosts.Hosts) != 8 {
		t.Fatalf("listHosts type=Routing: %d hosts, want 8", hosts.Count)
	}
	for _, h := range hosts.Hosts {
		if h.State != "Up" || h.Resourcestate != "Enabled" || h.Hypervisor != "XenServer" || h.Type != "Routing" ||
			!strings.HasPrefix(h.Clustername, "cluster-") || h.Managementserverid == "" || !cloudstack.IsID(h.Id) {
			t.Errorf("host %+v", h)
		}
		if _, err := time.Parse("2006-01-02T15:04:05-0700", h.Created); err != nil {
			t.Errorf("host %s created %q: %v", h.Name, h.Created, err)
		}
	}
	all, err := cs.Host.ListHosts(cs.Host.NewListHostsParams())
	if err != nil || all.Count != 10 {
		t.Errorf("listHosts without filters: %v, %d hosts, want 8 hypervisors + 2 system VMs", err, all.Count)
	}

	cl, err := cs.Cluster.ListClusters(cs.Cluster.NewListClustersParams())
	if err != nil || cl.Count != 2 || cl.Clusters[0].Name != "cluster-a" || cl.Clusters[0].Hypervisortype != "XenServer" {
		t.Errorf("listClusters: %v %+v", err, cl)
	}

	sp, err := cs.Pool.ListStoragePools(cs.Pool.NewListStoragePoolsParams())
	if err != nil || sp.Count != 2 || sp.StoragePools[0].Name != "primary-cluster-a" || sp.StoragePools[0].Clustername != "cluster-a" {
		t.Errorf("listStoragePools: %v %+v", err, sp)
	}

	vp := cs.VirtualMachine.NewListVirtualMachinesParams()
	vp.SetListall(true)
	vp.SetProjectid("-1")
	vms, err := cs.VirtualMachine.ListVirtualMachines(vp)
	if err != nil {
		t.Fatal(err)
	}
	if vms.Count != 10 {
		t.Errorf("listVirtualMachines listall projectid=-1: %d VMs, want 10 guests", vms.Count)
	}
	for _, v := range vms.VirtualMachines {
		wantHA := v.Serviceofferingname == "Windows HA"
		if v.Haenable != wantHA || v.State != "Running" || v.Hostname == "" || v.Hostid == "" || v.Instancename == "" {
			t.Errorf("VM %+v", v)
		}
	}

	so, err := cs.ServiceOffering.ListServiceOfferings(cs.ServiceOffering.NewListServiceOfferingsParams())
	if err != nil || so.Count != 2 {
		t.Fatalf("listServiceOfferings: %v %+v", err, so)
	}
	for _, o := range so.ServiceOfferings {
		if o.Offerha != (o.Name == "Windows HA") {
			t.Errorf("offering %s offerha=%v", o.Name, o.Offerha)
		}
	}

	// updateConfiguration: a value, then blank.
	up := cs.Configuration.NewUpdateConfigurationParams("alert.wait")
	up.SetValue("90")
	if r, err := cs.Configuration.UpdateConfiguration(up); err != nil || r.Value != "90" {
		t.Errorf("updateConfiguration alert.wait=90: %v %+v", err, r)
	}
	if got := s.State().AlertWait; got != "90" {
		t.Errorf("state alert_wait = %q after update, want 90", got)
	}
	up.SetValue("")
	if r, err := cs.Configuration.UpdateConfiguration(up); err != nil || r.Value != "" {
		t.Errorf("updateConfiguration alert.wait blank: %v %+v", err, r)
	}
	p = cs.Configuration.NewListConfigurationsParams()
	p.SetName("alert.wait")
	cfg, err = cs.Configuration.ListConfigurations(p)
	if err != nil || cfg.Configurations[0].Value != "" || cfg.Configurations[0].Defaultvalue != "1800" {
		t.Errorf("blank alert.wait listed as %v %+v", err, cfg)
	}
	up.SetValue("soon")
	if _, err := cs.Configuration.UpdateConfiguration(up); err == nil || !strings.Contains(err.Error(), "CloudStack API error 431") {
		t.Errorf("updateConfiguration alert.wait=soon: %v, want a 431", err)
	}
}

// Only root-admin calls with listall=true and projectid=-1 see every VM.
func TestListVirtualMachinesACL(t *testing.T) {
	_, ts := startAPI(t, newFakeInfra(), testOptions())
	cs := cloudstack.NewClient(ts.URL, testAPIKey, testSecretKey, false)
	tests := []struct {
		name    string
		listall bool
		project string
		want    int
	}{
		{"own account only", false, "", 6},
		{"listall skips projects", true, "", 8},
		{"projectid=-1 alone lists project VMs only", false, "-1", 2},
		{"listall and projectid=-1 list everything", true, "-1", 10},
		{"one project", false, nameUUID("project", "windows-a"), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := cs.VirtualMachine.NewListVirtualMachinesParams()
			if tc.listall {
				p.SetListall(true)
			}
			if tc.project != "" {
				p.SetProjectid(tc.project)
			}
			r, err := cs.VirtualMachine.ListVirtualMachines(p)
			if err != nil {
				t.Fatal(err)
			}
			if r.Count != tc.want {
				t.Errorf("%d VMs, want %d", r.Count, tc.want)
			}
		})
	}
	// hostid is the admin view of where VMs run.
	hp := cs.Host.NewListHostsParams()
	hp.SetName("xs-b1")
	h, err := cs.Host.ListHosts(hp)
	if err != nil || h.Count != 1 {
		t.Fatalf("listHosts name=xs-b1: %v %+v", err, h)
	}
	p := cs.VirtualMachine.NewListVirtualMachinesParams()
	p.SetListall(true)
	p.SetProjectid("-1")
	p.SetHostid(h.Hosts[0].Id)
	p.SetHaenable(true)
	r, err := cs.VirtualMachine.ListVirtualMachines(p)
	if err != nil || r.Count != 3 {
		t.Errorf("HA VMs on xs-b1: %v, %d, want 3", err, r.Count)
	}
}

// The async client from prepareHostForMaintenance to reconnectHost, with
// the model stepped per request (see steppingTransport).
func TestCloudStackGoAsyncMaintenanceFlow(t *testing.T) {
	l := newMaintenanceLab(t, newFakeInfra(), testOptions())
	cs := l.cs
	id := nameUUID("host", "xs-a1")

	prep, err := cs.Host.PrepareHostForMaintenance(cs.Host.NewPrepareHostForMaintenanceParams(id))
	if err != nil {
		t.Fatalf("prepareHostForMaintenance: %v", err)
	}
	if prep.Id != id || prep.Resourcestate != "PrepareForMaintenance" || prep.State != "Up" || prep.JobID == "" {
		t.Errorf("prepareHostForMaintenance result: id %s state %s resourcestate %s job %q", prep.Id, prep.State, prep.Resourcestate, prep.JobID)
	}
	// The VMs migrate away, then the host is in Maintenance.
	runUntil(t, l.s, l.clock, 10*time.Minute, "xs-a1 in Maintenance", resourceState("xs-a1", rsMaintenance))
	if h := l.host(t, "xs-a1"); h.Resourcestate != "Maintenance" {
		t.Errorf("listHosts xs-a1 resourcestate %s, want Maintenance", h.Resourcestate)
	}
	for _, v := range l.s.State().VMs {
		if v.Host == "xs-a1" {
			t.Errorf("VM %+v still on xs-a1 in Maintenance", v)
		}
	}

	cancel, err := cs.Host.CancelHostMaintenance(cs.Host.NewCancelHostMaintenanceParams(id))
	if err != nil || cancel.Resourcestate != "Enabled" {
		t.Errorf("cancelHostMaintenance: %v %+v", err, cancel)
	}
	// Cancelling again fails inside the job, as CloudStack does.
	_, err = cs.Host.CancelHostMaintenance(cs.Host.NewCancelHostMaintenanceParams(id))
	if err == nil || !strings.Contains(err.Error(), `"errorcode":530`) || !strings.Contains(err.Error(), "Cannot perform cancelMaintenance when resource state is Enabled") {
		t.Errorf("second cancelHostMaintenance: %v, want a failed job with errorcode 530", err)
	}

	rc, err := cs.Host.ReconnectHost(cs.Host.NewReconnectHostParams(id))
	if err != nil || rc.Id != id {
		t.Errorf("reconnectHost: %v %+v", err, rc)
	}
	runUntil(t, l.s, l.clock, time.Minute, "xs-a1 Up after reconnect", func(st State) bool { return hostState(st, "xs-a1").State == statusUp })
}

func TestQueryAsyncJobResult(t *testing.T) {
	_, clock, _, ts := startAPIOnClock(t)
	cs := cloudstack.NewClient(ts.URL, testAPIKey, testSecretKey, false)
	id := nameUUID("host", "xs-b2")

	start, err := cs.Host.PrepareHostForMaintenance(cs.Host.NewPrepareHostForMaintenanceParams(id))
	if err != nil || start.JobID == "" || start.Resourcestate != "" {
		t.Fatalf("sync prepareHostForMaintenance: %v %+v, want just a job id", err, start)
	}
	q := cs.Asyncjob.NewQueryAsyncJobResultParams(start.JobID)
	r, err := cs.Asyncjob.QueryAsyncJobResult(q)
	if err != nil {
		t.Fatal(err)
	}
	if r.Jobstatus != 0 || r.Jobresulttype != "" || len(r.Jobresult) != 0 || r.Cmd != cmdPrepareMaintenance || r.Jobinstanceid != id {
		t.Errorf("pending job: %+v", r)
	}
	clock.add(2 * time.Second)
	r, err = cs.Asyncjob.QueryAsyncJobResult(q)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Host cloudstack.Host `json:"host"`
	}
	if err := json.Unmarshal(r.Jobresult, &res); err != nil {
		t.Fatalf("jobresult %s: %v", r.Jobresult, err)
	}
	if r.Jobstatus != 1 || r.Jobresultcode != 0 || r.Jobresulttype != "object" || res.Host.Resourcestate != "PrepareForMaintenance" || r.Completed == "" {
		t.Errorf("finished job: %+v, host %+v", r, res.Host)
	}

	// A job that fails: cancelling maintenance of an Enabled host.
	fail, err := cs.Host.CancelHostMaintenance(cs.Host.NewCancelHostMaintenanceParams(nameUUID("host", "xs-b3")))
	if err != nil {
		t.Fatal(err)
	}
	clock.add(2 * time.Second)
	r, err = cs.Asyncjob.QueryAsyncJobResult(cs.Asyncjob.NewQueryAsyncJobResultParams(fail.JobID))
	if err != nil {
		t.Fatal(err)
	}
	if r.Jobstatus != 2 || r.Jobresultcode != 530 || !strings.HasPrefix(string(r.Jobresult), `{"errorcode":530,"errortext":"Cannot perform cancelMaintenance`) {
		t.Errorf("failed job: status %d code %d result %s", r.Jobstatus, r.Jobresultcode, r.Jobresult)
	}

	_, err = cs.Asyncjob.QueryAsyncJobResult(cs.Asyncjob.NewQueryAsyncJobResultParams("6d5a6c2e-0000-4000-8000-000000000000"))
	if err == nil || !strings.HasPrefix(err.Error(), "CloudStack API error 431 (CSExceptionErrorCode: 9999): Unable to execute API command queryasyncjobresult due to invalid value. Invalid parameter jobid value=") {
		t.Errorf("unknown job: %v", err)
	}
}

func TestSignatureVerification(t *testing.T) {
	_, ts := startAPI(t, newFakeInfra(), testOptions())
	const want401 = `{"listhostsresponse":{"uuidList":[],"errorcode":401,"errortext":"unable to verify user credentials and/or request signature"}}`
	future := time.Now().Add(15 * time.Minute).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	tests := []struct {
		name   string
		url    func() string
		status int
	}{
		{"cloudstack-go v2.16.1 style", func() string { return signedURL(ts.URL, testSecretKey, apiParams("listHosts", "type", "Routing")) }, 200},
		{"space and star in a value", func() string {
			return signedURL(ts.URL, testSecretKey, apiParams("listHosts", "keyword", "xs a*"))
		}, 200},
		{"wrong secret", func() string { return signedURL(ts.URL, "wrong", apiParams("listHosts")) }, 401},
		{"unknown API key", func() string {
			p := apiParams("listHosts")
			p.Set("apiKey", "someone-else")
			return signedURL(ts.URL, testSecretKey, p)
		}, 401},
		{"no signature", func() string { return ts.URL + "?" + cloudstack.EncodeValues(apiParams("listHosts")) }, 401},
		{"parameter changed after signing", func() string {
			return strings.Replace(signedURL(ts.URL, testSecretKey, apiParams("listHosts", "type", "Routing")), "type=Routing", "type=ConsoleProxy", 1)
		}, 401},
		// Go leaves "~" unescaped, Java signs %7E: such values never verify.
		{"tilde in a value", func() string { return signedURL(ts.URL, testSecretKey, apiParams("listHosts", "keyword", "a~b")) }, 401},
		{"signatureversion 3, valid expires", func() string {
			return signedURL(ts.URL, testSecretKey, apiParams("listHosts", "signatureversion", "3", "expires", future))
		}, 200},
		{"signatureversion 3, expired", func() string {
			return signedURL(ts.URL, testSecretKey, apiParams("listHosts", "signatureversion", "3", "expires", past))
		}, 401},
		{"signatureversion 3, no expires", func() string {
			return signedURL(ts.URL, testSecretKey, apiParams("listHosts", "signatureversion", "3"))
		}, 401},
		{"signatureversion 3, unreadable expires", func() string {
			return signedURL(ts.URL, testSecretKey, apiParams("listHosts", "signatureversion", "3", "expires", "tomorrow"))
		}, 401},
		{"expires checked only with signatureversion 3", func() string {
			return signedURL(ts.URL, testSecretKey, apiParams("listHosts", "expires", past))
		}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, hdr := get(t, tc.url())
			if status != tc.status {
				t.Fatalf("status %d, want %d; body %s", status, tc.status, body)
			}
			if status == 401 && body != want401 {
				t.Errorf("body %s\nwant %s", body, want401)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json; charset=UTF-8" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}

	cs := cloudstack.NewClient(ts.URL, testAPIKey, "not-the-secret", false)
	_, err := cs.Host.ListHosts(cs.Host.NewListHostsParams())
	if err == nil || err.Error() != "CloudStack API error 401 (CSExceptionErrorCode: 0): unable to verify user credentials and/or request signature" {
		t.Errorf("cloudstack-go with a wrong secret: %v", err)
	}
}

func TestSignedPOSTForm(t *testing.T) {
	_, ts := startAPI(t, newFakeInfra(), testOptions())
	p := apiParams("listHosts", "keyword", "xs a")
	s := cloudstack.EncodeValues(p)
	mac := hmac.New(sha1.New, []byte(testSecretKey))
	mac.Write([]byte(strings.ToLower(s)))
	p.Set("signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	resp, err := http.PostForm(ts.URL, p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), `{"listhostsresponse":{`) {
		t.Errorf("POST: %d %s", resp.StatusCode, b)
	}

	// A name in both the query and the body: the servlet's parameter map
	// lists the query value first, and only the first value is signed and
	// used.
	p = apiParams("listHosts", "type", "Routing", "keyword", "xs-a")
	u := signedURL(ts.URL, testSecretKey, p)
	resp, err = http.PostForm(u, url.Values{"keyword": {"xs-b"}})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		R struct {
			Count int `json:"count"`
			Host  []struct {
				Name string `json:"name"`
			} `json:"host"`
		} `json:"listhostsresponse"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || got.R.Count != 4 || !strings.HasPrefix(got.R.Host[0].Name, "xs-a") {
		t.Errorf("POST with keyword in query and body: %d %v %+v, want the four xs-a hosts", resp.StatusCode, err, got)
	}
}

func TestErrorResponses(t *testing.T) {
	_, ts := startAPI(t, newFakeInfra(), testOptions())
	tests := []struct {
		name   string
		params url.Values
		status int
		body   string
	}{
		{"unknown host id", apiParams("listHosts", "id", "not-a-uuid"), 431,
			`{"listhostsresponse":{"uuidList":[],"errorcode":431,"cserrorcode":9999,"errortext":"Unable to execute API command listhosts due to invalid value. Invalid parameter id value=not-a-uuid due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."}}`},
		{"unknown host for maintenance", apiParams("prepareHostForMaintenance", "id", "00000000-0000-4000-8000-000000000000"), 431,
			`{"preparehostformaintenanceresponse":{"uuidList":[],"errorcode":431,"cserrorcode":9999,"errortext":"Unable to execute API command preparehostformaintenance due to invalid value. Invalid parameter id value=00000000-0000-4000-8000-000000000000 due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."}}`},
		{"missing id", apiParams("reconnectHost"), 431,
			`{"reconnecthostresponse":{"uuidList":[],"errorcode":431,"cserrorcode":9999,"errortext":"Unable to execute API command reconnecthost due to missing parameter id"}}`},
		{"pagesize without page", apiParams("listHosts", "pagesize", "2"), 431,
			`{"listhostsresponse":{"uuidList":[],"errorcode":431,"cserrorcode":9999,"errortext":"\"page\" parameter is required when \"pagesize\" is specified"}}`},
		{"page size too big", apiParams("listHosts", "page", "1", "pagesize", "501"), 431,
			`{"listhostsresponse":{"uuidList":[],"errorcode":431,"cserrorcode":9999,"errortext":"Page size can't exceed max allowed page size value: 500"}}`},
		{"unknown command", apiParams("listHostz"), 401,
			`{"errorresponse":{"uuidList":[],"errorcode":401,"errortext":"unable to verify user credentials and/or request signature"}}`},
		{"command names are case-sensitive", apiParams("listhosts"), 401,
			`{"errorresponse":{"uuidList":[],"errorcode":401,"errortext":"unable to verify user credentials and/or request signature"}}`},
		{"unknown setting", apiParams("updateConfiguration", "name", "alert.whenever", "value", "1"), 431,
			`{"updateconfigurationresponse":{"uuidList":[],"errorcode":431,"cserrorcode":9999,"errortext":"Config parameter with name alert.whenever doesn't exist"}}`},
		{"empty list", apiParams("listHosts", "state", "Down"), 200, `{"listhostsresponse":{}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := get(t, signedURL(ts.URL, testSecretKey, tc.params))
			if status != tc.status || body != tc.body {
				t.Errorf("got %d %s\nwant %d %s", status, body, tc.status, tc.body)
			}
		})
	}
	status, body, _ := get(t, ts.URL+"?response=json")
	if status != 400 || !strings.Contains(body, `"errorresponse"`) {
		t.Errorf("no command: %d %s", status, body)
	}

	cs := cloudstack.NewClient(ts.URL, testAPIKey, testSecretKey, false)
	p := cs.Host.NewListHostsParams()
	p.SetId("00000000-0000-4000-8000-000000000000")
	if _, err := cs.Host.ListHosts(p); err == nil || !strings.Contains(err.Error(), "CloudStack API error 431 (CSExceptionErrorCode: 9999)") ||
		!strings.Contains(err.Error(), "due to incorrect long value format, or entity does not exist") {
		t.Errorf("cloudstack-go, bad id: %v", err)
	}
	if _, _, err := cs.Host.GetHostByID("00000000-0000-4000-8000-000000000000"); err == nil || !strings.Contains(err.Error(), "No match found") {
		t.Errorf("GetHostByID of an unknown id: %v, want cloudstack-go's not-found error", err)
	}
}

func TestPaging(t *testing.T) {
	_, ts := startAPI(t, newFakeInfra(), testOptions())
	cs := cloudstack.NewClient(ts.URL, testAPIKey, testSecretKey, false)
	var names []string
	for page := 1; page <= 3; page++ {
		p := cs.Host.NewListHostsParams()
		p.SetType("Routing")
		p.SetPage(page)
		p.SetPagesize(3)
		r, err := cs.Host.ListHosts(p)
		if err != nil {
			t.Fatal(err)
		}
		if r.Count != 8 {
			t.Errorf("page %d: count %d, want the total 8", page, r.Count)
		}
		for _, h := range r.Hosts {
			names = append(names, h.Name)
		}
	}
	if strings.Join(names, ",") != "xs-a1,xs-a2,xs-a3,xs-a4,xs-b1,xs-b2,xs-b3,xs-b4" {
		t.Errorf("paged hosts %v", names)
	}
}

// Every response has one top-level key named after the command and no
// nulls, so cloudstack-go's getRawValue and UUID decoding never trip.
func TestResponseShapes(t *testing.T) {
	_, ts := startAPI(t, newFakeInfra(), testOptions())
	for _, cmd := range []string{"listConfigurations", "listHosts", "listClusters", "listStoragePools", "listVirtualMachines", "listServiceOfferings"} {
		t.Run(cmd, func(t *testing.T) {
			status, body, _ := get(t, signedURL(ts.URL, testSecretKey, apiParams(cmd, "listall", "true")))
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var top map[string]any
			if err := json.Unmarshal([]byte(body), &top); err != nil {
				t.Fatal(err)
			}
			want := strings.ToLower(cmd) + "response"
			if _, ok := top[want]; !ok || len(top) != 1 {
				t.Fatalf("top-level keys %v, want only %s", keys(top), want)
			}
			if path := findNull(top, ""); path != "" {
				t.Errorf("null at %s", path)
			}
		})
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func findNull(v any, path string) string {
	switch x := v.(type) {
	case nil:
		return path
	case map[string]any:
		for k, e := range x {
			if p := findNull(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range x {
			if p := findNull(e, path+"["+string(rune('0'+i%10))+"]"); p != "" {
				return p
			}
		}
	}
	return ""
}

// BenchmarkListVirtualMachines measures one signed listVirtualMachines
// round trip through the handler, signature check included.
func BenchmarkListVirtualMachines(b *testing.B) {
	s, err := New(newFakeInfra(), testOptions())
	if err != nil {
		b.Fatal(err)
	}
	u := signedURL("http://sim.invalid/client/api", testSecretKey, apiParams("listVirtualMachines", "listall", "true", "projectid", "-1"))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, u, nil))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
