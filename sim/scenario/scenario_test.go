package scenario

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultIsTheSeedTestBed(t *testing.T) {
	s := Default()
	if len(s.Pools) != 2 || s.Credentials != (Credentials{"root", "xenroot"}) || s.TimeScale != 1 {
		t.Fatalf("default: %d pools, %+v, scale %v", len(s.Pools), s.Credentials, s.TimeScale)
	}
	guests, routers, system := 0, 0, 0
	for i, p := range s.Pools {
		wantNet := []string{"127.0.1.", "127.0.2."}[i]
		if p.Name != []string{"cluster-a", "cluster-b"}[i] || p.ProductVersion != Version62 || p.HAEnabled || len(p.Hosts) != 4 {
			t.Errorf("pool %d: %s %s ha=%v hosts=%d", i, p.Name, p.ProductVersion, p.HAEnabled, len(p.Hosts))
		}
		if p.Master != p.Hosts[0].Name || !strings.HasPrefix(p.Hosts[3].Address, wantNet) {
			t.Errorf("pool %s: master %s, addresses %s", p.Name, p.Master, p.Hosts[3].Address)
		}
		hb := p.SRs[0]
		if hb.Name != "MGMT-HA" || hb.Type != "nfs" || !hb.Shared || hb.SizeBytes != 1<<30 || p.HeartbeatSR != "MGMT-HA" {
			t.Errorf("pool %s heartbeat SR %+v", p.Name, hb)
		}
		if strings.Join(p.Hotfixes, ",") != "XS62ESP1,XS62ESP1004" {
			t.Errorf("hotfixes %v", p.Hotfixes)
		}
		for _, vm := range p.VMs {
			if vm.Host != p.Master || vm.PowerState != "Running" || vm.HARestartPriority != "" {
				t.Errorf("VM %s on %s %s priority %q", vm.Name, vm.Host, vm.PowerState, vm.HARestartPriority)
			}
			switch vm.Kind {
			case KindGuest:
				guests++
			case KindRouter:
				routers++
			case KindSystem:
				system++
			}
		}
	}
	if guests != 10 || routers != 4 || system != 3 {
		t.Errorf("%d guests, %d routers, %d system VMs; want 10, 4, 3", guests, routers, system)
	}
	if s.CloudStack.AlertWait == nil || *s.CloudStack.AlertWait != 60 {
		t.Errorf("alert.wait %v", s.CloudStack.AlertWait)
	}
	ha := map[bool]int{}
	for _, o := range s.CloudStack.Offerings {
		ha[o.OfferHA]++
	}
	if ha[true] == 0 || ha[false] == 0 {
		t.Errorf("offerings %+v", s.CloudStack.Offerings)
	}
	if s.Durations.HATimeout.D() != time.Minute || s.Durations.HostAssumedDead.D() != 10*time.Minute || s.Durations.AuthFailureDelay.D() != 5*time.Second {
		t.Errorf("durations %+v", s.Durations)
	}
}

func TestParse(t *testing.T) {
	s, err := Parse([]byte(`
time_scale: 0.01
credentials: {username: root, password: secret}
durations:
  ha_timeout: 180s
  boot: 90
  enable_ha: 1m30s
  migrate_vm: 8s
pools:
  - name: p1
    product_version: "7.1.0"
    ha_enabled: true
    ha_timeout: 30s
    returning_host: self_rejoin
    edition: free
    hosts:
      - {name: h1, address: 127.0.5.1}
      - {name: h2, address: 127.0.5.2}
    srs:
      - {name: MGMT-HA, type: nfs, shared: true, unplugged_on: [h2]}
    vms:
      - {name: i-2-9-VM, host: h2, offering: small}
cloudstack:
  alert_wait: null
  offerings: [{name: small, offer_ha: false}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Scale(time.Minute) != 600*time.Millisecond {
		t.Errorf("scaled minute %v", s.Scale(time.Minute))
	}
	d := s.Durations
	if d.HATimeout.D() != 3*time.Minute || d.Boot.D() != 90*time.Second || d.EnableHA.D() != 90*time.Second || d.XAPIStart.D() != 15*time.Second {
		t.Errorf("durations %+v", d)
	}
	p := s.Pools[0]
	if p.ReturningHost != ReturningHostSelfRejoin || p.Edition != EditionFree || d.ContactRetry.D() != 10*time.Second {
		t.Errorf("returning_host %q, edition %q, contact_retry %v", p.ReturningHost, p.Edition, d.ContactRetry)
	}
	if d.MigrateVM.D() != 8*time.Second || d.HostShutdown.D() != 30*time.Second {
		t.Errorf("migrate_vm %v (want 8s), host_shutdown %v (want the 30s default)", d.MigrateVM, d.HostShutdown)
	}
	if again, _ := Parse([]byte("pools: [{name: p1, hosts: [{name: h1, address: 127.0.5.1}]}]")); again.Pools[0].ReturningHost != ReturningHostStuck ||
		again.Pools[0].Edition != EditionPerSocket {
		t.Errorf("defaults: returning_host %q, edition %q", again.Pools[0].ReturningHost, again.Pools[0].Edition)
	}
	if p.Master != "h1" || p.Is62() || p.HATimeout.D() != 30*time.Second || p.Hosts[1].UUID == "" || p.UUID == "" {
		t.Errorf("pool %+v", p)
	}
	if p.VMs[0].Kind != KindGuest || p.VMs[0].PowerState != "Running" || p.VMs[0].DisplayName != "i-2-9-VM" {
		t.Errorf("vm %+v", p.VMs[0])
	}
	if s.CloudStack.AlertWait != nil || s.Credentials.Password != "secret" {
		t.Errorf("alert_wait %v, credentials %+v", s.CloudStack.AlertWait, s.Credentials)
	}
	// The uuids are stable.
	again, _ := Parse([]byte("pools: [{name: p1, hosts: [{name: h1, address: 127.0.5.1}]}]"))
	if again.Pools[0].Hosts[0].UUID != p.Hosts[0].UUID {
		t.Error("host uuid not stable")
	}
	// An empty document, or one with only settings, is the default scenario.
	s, err = Parse([]byte("time_scale: 0.5\ndurations: {boot: 1s}\n"))
	if err != nil || len(s.Pools) != 2 || s.TimeScale != 0.5 || s.Durations.Boot.D() != time.Second || s.Durations.HATimeout.D() != time.Minute {
		t.Errorf("settings-only scenario: %v %+v", err, s)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"pools: [{name: p, hosts: [{name: h, address: 10.0.0.1}]}]", "loopback"},
		{"pools: [{name: p, hosts: [{name: h, address: 127.0.0.1}, {name: h, address: 127.0.0.2}]}]", "used in pools"},
		{"pools: [{name: p, hosts: [{name: h, address: 127.0.0.1}, {name: g, address: 127.0.0.1}]}]", "used by hosts"},
		{"pools: [{name: p, master: x, hosts: [{name: h, address: 127.0.0.1}]}]", "master"},
		{"pools: [{name: p, product_version: '5.6', hosts: [{name: h, address: 127.0.0.1}]}]", "product_version"},
		{"pools: [{name: p, ha_enabled: true, hosts: [{name: h, address: 127.0.0.1}]}]", "heartbeat SR"},
		{"pools: [{name: p, emergency_error: X, hosts: [{name: h, address: 127.0.0.1}]}]", "emergency_error"},
		{"pools: [{name: p, returning_host: rejoin, hosts: [{name: h, address: 127.0.0.1}]}]", "returning_host"},
		{"pools: [{name: p, edition: enterprise, hosts: [{name: h, address: 127.0.0.1}]}]", "edition"},
		{"pools: [{name: p, hosts: [{name: h, address: 127.0.0.1}], vms: [{name: v, host: nope}]}]", "not in pool"},
		{"pools: [{name: p, hosts: [{name: h, address: 127.0.0.1}], vms: [{name: v, ha_restart_priority: '1'}]}]", "ha_restart_priority"},
		{"pools: [{name: p, hosts: [{name: h, address: 127.0.0.1}], vms: [{name: v, offering: nope}]}]", "offering"},
		{"durations: {boot: soon}", "not a duration"},
		{"durations: {boot: -5s}", "negative"},
		{"time_scale: -1", "negative"},
		{"pool: []", "field pool not found"},
		{"cloudstack: {alert_wait: null}", "cloudstack section needs pools"},
	} {
		if _, err := Parse([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error about %q", tc.doc, err, tc.want)
		}
	}
}

func TestClone(t *testing.T) {
	s := Default()
	c := s.Clone()
	c.Pools[0].Hosts[0].Name = "changed"
	*c.CloudStack.AlertWait = 1
	c.Durations.Boot = 0
	if s.Pools[0].Hosts[0].Name != "xs-a1" || *s.CloudStack.AlertWait != 60 || s.Durations.Boot == 0 {
		t.Error("Clone shares state with the original")
	}
	if c.Pools[1].Hosts[2].UUID != s.Pools[1].Hosts[2].UUID {
		t.Error("Clone lost a uuid")
	}
}
