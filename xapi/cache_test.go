package xapi

import (
	"testing"
	"time"

	xmlrpc "github.com/amfranz/go-xmlrpc-client"

	"xsha/config"
)

func testPool() config.Pool {
	return config.Pool{Name: "cluster-a", HeartbeatSR: "MGMT-HA", RequiredHotfixes: []string{"XS62ESP1004", "XS62ESP1005"}}
}

// fill62 returns a cache of a two-host 6.2 pool as event snapshots would
// carry it.
func fill62(t *testing.T) *cache {
	t.Helper()
	c := newCache()
	c.stores = append(c.stores, c.poolPatches, c.hostPatches)
	ev := []event{
		{class: "pool", operation: "add", ref: "OpaqueRef:pool", snapshot: xmlrpc.Struct{
			"uuid": "pool-uuid", "master": "OpaqueRef:h1", "ha_enabled": true,
			"ha_configuration":             xmlrpc.Struct{"timeout": "180"},
			"ha_statefiles":                []any{"OpaqueRef:vdi-sf"},
			"ha_host_failures_to_tolerate": "1", "ha_plan_exists_for": "1", "ha_overcommitted": false,
		}},
		{class: "host", operation: "add", ref: "OpaqueRef:h1", snapshot: xmlrpc.Struct{
			"uuid": "u1", "name_label": "xs-a1", "address": "127.0.1.1", "metrics": "OpaqueRef:m1", "enabled": true,
			"software_version": xmlrpc.Struct{"product_version": "6.2.0"}, "API_version_major": "2", "API_version_minor": "1",
			"ha_statefiles": []any{"OpaqueRef:vdi-sf"}, "patches": []any{"OpaqueRef:hp1"},
		}},
		{class: "host", operation: "add", ref: "OpaqueRef:h2", snapshot: xmlrpc.Struct{
			"uuid": "u2", "name_label": "xs-a2", "address": "127.0.1.2", "metrics": "OpaqueRef:m2", "enabled": false,
			"software_version": xmlrpc.Struct{"product_version": "6.2.0"}, "API_version_major": "2", "API_version_minor": "2",
			"ha_statefiles": []any{}, "patches": []any{},
		}},
		{class: "host_metrics", operation: "add", ref: "OpaqueRef:m1", snapshot: xmlrpc.Struct{"live": true}},
		{class: "host_metrics", operation: "add", ref: "OpaqueRef:m2", snapshot: xmlrpc.Struct{"live": false}},
		{class: "sr", operation: "add", ref: "OpaqueRef:sr-ha", snapshot: xmlrpc.Struct{
			"uuid": "sr-uuid", "name_label": "MGMT-HA", "type": "nfs", "shared": true, "physical_size": "1073741824",
			"VDIs": []any{"OpaqueRef:vdi-sf", "OpaqueRef:vdi-redo"},
		}},
		{class: "sr", operation: "add", ref: "OpaqueRef:sr-local", snapshot: xmlrpc.Struct{"uuid": "l", "name_label": "Local storage", "type": "lvm"}},
		{class: "pbd", operation: "add", ref: "OpaqueRef:p1", snapshot: xmlrpc.Struct{"host": "OpaqueRef:h1", "SR": "OpaqueRef:sr-ha", "currently_attached": true}},
		{class: "pbd", operation: "add", ref: "OpaqueRef:p2", snapshot: xmlrpc.Struct{"host": "OpaqueRef:h2", "SR": "OpaqueRef:sr-ha", "currently_attached": false}},
		{class: "pbd", operation: "add", ref: "OpaqueRef:p3", snapshot: xmlrpc.Struct{"host": "OpaqueRef:h2", "SR": "OpaqueRef:sr-local", "currently_attached": true}},
		{class: "vm", operation: "add", ref: "OpaqueRef:dom0", snapshot: xmlrpc.Struct{"is_control_domain": true, "ha_restart_priority": "restart"}},
		{class: "vm", operation: "add", ref: "OpaqueRef:tmpl", snapshot: xmlrpc.Struct{"is_a_template": true, "ha_restart_priority": "restart"}},
		{class: "vm", operation: "add", ref: "OpaqueRef:vm1", snapshot: xmlrpc.Struct{"ha_restart_priority": ""}},
		{class: "vm", operation: "add", ref: "OpaqueRef:vm2", snapshot: xmlrpc.Struct{"ha_restart_priority": "best-effort"}},
		{class: "pool_patch", operation: "add", ref: "OpaqueRef:pp1", snapshot: xmlrpc.Struct{"uuid": "x", "name_label": "XS62ESP1005"}},
		{class: "host_patch", operation: "add", ref: "OpaqueRef:hp1", snapshot: xmlrpc.Struct{"host": "OpaqueRef:h1", "pool_patch": "OpaqueRef:pp1", "applied": true}},
	}
	if err := c.apply(ev); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBuildSnapshot(t *testing.T) {
	c := fill62(t)
	s, err := c.build(testPool())
	if err != nil {
		t.Fatal(err)
	}
	if s.PoolUUID != "pool-uuid" || !s.HAEnabled || s.HATimeout != 180*time.Second || s.HAHostFailuresToTolerate != 1 || s.HAPlanExistsFor != 1 {
		t.Errorf("pool fields: %+v", s)
	}
	if s.MasterUUID != "u1" {
		t.Errorf("MasterUUID = %q, want u1", s.MasterUUID)
	}
	if len(s.Hosts) != 2 || s.Hosts[0].Name != "xs-a1" || s.Hosts[1].Name != "xs-a2" {
		t.Fatalf("hosts: %+v", s.Hosts)
	}
	h1, h2 := s.Hosts[0], s.Hosts[1]
	if !h1.IsMaster || h2.IsMaster || !h1.Live || h2.Live || !h1.Enabled || h2.Enabled || h1.ProductVersion != "6.2.0" {
		t.Errorf("host flags: %+v %+v", h1, h2)
	}
	if len(h1.HAStatefiles) != 1 || len(h2.HAStatefiles) != 0 {
		t.Errorf("statefiles: %v %v", h1.HAStatefiles, h2.HAStatefiles)
	}
	hb := s.HeartbeatSR
	if hb == nil || hb.UUID != "sr-uuid" || hb.Type != "nfs" || !hb.Shared || hb.Size != 1<<30 || !hb.Statefile {
		t.Fatalf("heartbeat SR: %+v", hb)
	}
	if !hb.Attached["xs-a1"] || hb.Attached["xs-a2"] {
		t.Errorf("attached: %v", hb.Attached)
	}
	if s.VMs != 2 || s.VMsHAProtected != 1 {
		t.Errorf("VMs = %d, protected = %d; want 2, 1", s.VMs, s.VMsHAProtected)
	}
}

func TestHotfixes(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *cache)
		host   string
		hotfix string
		want   bool
	}{
		{"patch applied by name", nil, "xs-a1", "XS62ESP1005", true},
		{"patch not applied on this host", nil, "xs-a2", "XS62ESP1005", false},
		{"XS62ESP1004 without patch, API 2.1", nil, "xs-a1", "XS62ESP1004", false},
		{"XS62ESP1004 by API version 2.2 (roll-up)", nil, "xs-a2", "XS62ESP1004", true},
		{"XS62ESP1004 by patch uuid", func(c *cache) {
			c.poolPatches.rows["OpaqueRef:pp1"] = patchRec{UUID: hotfixXS62ESP1004UUID, Name: ""}
		}, "xs-a1", "XS62ESP1004", true},
		{"host_patch not applied", func(c *cache) {
			c.hostPatches.rows["OpaqueRef:hp1"] = hostPatchRec{Host: "OpaqueRef:h1", PoolPatch: "OpaqueRef:pp1", Applied: false}
		}, "xs-a1", "XS62ESP1005", false},
		{"7.x pool_update in host.updates", func(c *cache) {
			c.poolUpdates.rows = map[string]patchRec{"OpaqueRef:u1": {UUID: "y", Name: "XS62ESP1005"}}
			h := c.hosts.rows["OpaqueRef:h2"]
			h.Updates = []string{"OpaqueRef:u1"}
			c.hosts.rows["OpaqueRef:h2"] = h
		}, "xs-a2", "XS62ESP1005", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fill62(t)
			if tt.mutate != nil {
				tt.mutate(c)
			}
			s, err := c.build(testPool())
			if err != nil {
				t.Fatal(err)
			}
			h, ok := s.Host(tt.host)
			if !ok {
				t.Fatalf("no host %s", tt.host)
			}
			if got := h.Hotfixes[tt.hotfix]; got != tt.want {
				t.Errorf("Hotfixes[%s] = %v, want %v", tt.hotfix, got, tt.want)
			}
		})
	}
}

func TestApplyEvents(t *testing.T) {
	c := fill62(t)
	err := c.apply([]event{
		{class: "pbd", operation: "mod", ref: "OpaqueRef:p2", snapshot: xmlrpc.Struct{"host": "OpaqueRef:h2", "SR": "OpaqueRef:sr-ha", "currently_attached": true}},
		{class: "vm", operation: "del", ref: "OpaqueRef:vm2"},
		{class: "pool", operation: "mod", ref: "OpaqueRef:pool", snapshot: xmlrpc.Struct{"uuid": "pool-uuid", "master": "OpaqueRef:h2", "ha_enabled": false}},
		{class: "message", operation: "add", ref: "OpaqueRef:msg", snapshot: xmlrpc.Struct{}}, // not subscribed: ignored
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.build(testPool())
	if err != nil {
		t.Fatal(err)
	}
	if !s.HeartbeatSR.Attached["xs-a2"] || s.VMsHAProtected != 0 || s.HAEnabled || s.MasterUUID != "u2" {
		t.Errorf("after events: attached=%v protected=%d ha=%v master=%s", s.HeartbeatSR.Attached, s.VMsHAProtected, s.HAEnabled, s.MasterUUID)
	}
	if err := c.apply([]event{{class: "sr", operation: "mod", ref: "OpaqueRef:x", snapshot: "not a struct"}}); err == nil {
		t.Error("a snapshot that is not a struct was accepted")
	}
}

func TestDecodeEventBatch(t *testing.T) {
	good := xmlrpc.Struct{
		"events": []any{
			xmlrpc.Struct{"id": "12", "timestamp": "0.", "class": "host_metrics", "operation": "mod", "ref": "OpaqueRef:m1", "snapshot": xmlrpc.Struct{"live": false}},
			xmlrpc.Struct{"id": "13", "timestamp": "0.", "class": "vm", "operation": "del", "ref": "OpaqueRef:vm"},
		},
		"valid_ref_counts": xmlrpc.Struct{"vm": int64(42)},
		"token":            "00000000000000001234,00000000000000000000",
	}
	b, err := decodeEventBatch(good)
	if err != nil {
		t.Fatal(err)
	}
	if b.token != "00000000000000001234,00000000000000000000" || len(b.events) != 2 || b.events[1].operation != "del" || b.events[0].class != "host_metrics" {
		t.Errorf("decoded %+v", b)
	}
	empty, err := decodeEventBatch(xmlrpc.Struct{"events": []any{}, "token": "t"})
	if err != nil || len(empty.events) != 0 {
		t.Errorf("empty batch: %+v, %v", empty, err)
	}
	for name, bad := range map[string]any{
		"array (the declared type)": []any{xmlrpc.Struct{}},
		"no token":                  xmlrpc.Struct{"events": []any{}},
		"event not a struct":        xmlrpc.Struct{"events": []any{"x"}, "token": "t"},
		"event without ref":         xmlrpc.Struct{"events": []any{xmlrpc.Struct{"class": "vm"}}, "token": "t"},
	} {
		if _, err := decodeEventBatch(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestHATimeout(t *testing.T) {
	tests := []struct {
		name string
		pool poolRec
		want time.Duration
	}{
		{"ha_configuration timeout", poolRec{HAConfiguration: map[string]string{"timeout": "180"}, DefaultHATimeout: "120"}, 180 * time.Second},
		{"other_config default_ha_timeout", poolRec{HAConfiguration: map[string]string{}, DefaultHATimeout: "120"}, 120 * time.Second},
		{"fractional seconds", poolRec{HAConfiguration: map[string]string{"timeout": "90.5"}}, 90500 * time.Millisecond},
		{"unparsable timeout falls through", poolRec{HAConfiguration: map[string]string{"timeout": "soon"}, DefaultHATimeout: "120"}, 120 * time.Second},
		{"nothing set: xapi's default", poolRec{}, 60 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := haTimeout(tt.pool); got != tt.want {
				t.Errorf("haTimeout = %s, want %s", got, tt.want)
			}
		})
	}
}
