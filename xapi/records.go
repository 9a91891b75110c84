package xapi

import (
	"context"
	"fmt"
	"strconv"

	xmlrpc "github.com/amfranz/go-xmlrpc-client"
	xenapi "github.com/terra-farm/go-xen-api-client"
)

// The records below keep only the fields the package uses. Each comes from
// two sources: terra-farm's typed get_all_records at a full read, and the
// snapshots of event.from, which terra-farm cannot decode (see event.go).

type poolRec struct {
	UUID, Master             string
	HAEnabled                bool
	HAConfiguration          map[string]string
	DefaultHATimeout         string // other_config["default_ha_timeout"]
	HAStatefiles             []string
	HAHostFailuresToTolerate int64
	HAPlanExistsFor          int64
	HAOvercommitted          bool
}

type hostRec struct {
	UUID, Name, Address, Metrics string
	SoftwareVersion              map[string]string
	APIMajor, APIMinor           int64
	Enabled                      bool
	HAStatefiles                 []string
	Updates                      []string // pool_update refs (7.1 and later)
}

type hostMetricsRec struct{ Live bool }

type srRec struct {
	UUID, Name, Type string
	Shared           bool
	PhysicalSize     int64
	VDIs             []string
}

type pbdRec struct {
	Host, SR string
	Attached bool
}

type vmRec struct {
	Guest             bool // not a control domain, template or snapshot
	HARestartPriority string
}

type patchRec struct{ UUID, Name string } // pool_patch and pool_update

type hostPatchRec struct {
	Host, PoolPatch string
	Applied         bool
}

// store is one cached XAPI class.
type store interface {
	class() string
	load(ctx context.Context, s *session) error
	apply(op, ref string, snapshot any) error
}

// table caches one class's records by ref.
type table[R any] struct {
	name   string // event class (lower case)
	wire   string // class name in method names, when it differs (SR, PBD, VM)
	getAll func(api *xenapi.Client, s xenapi.SessionRef) (map[string]R, error)
	decode func(m xmlrpc.Struct) R
	rows   map[string]R
}

func (t *table[R]) class() string { return t.name }

func (t *table[R]) load(ctx context.Context, s *session) error {
	var rows map[string]R
	class := t.name
	if t.wire != "" {
		class = t.wire
	}
	err := s.c.call(ctx, class+".get_all_records", 0, func(api *xenapi.Client) error {
		var err error
		rows, err = t.getAll(api, s.ref)
		return err
	})
	if err != nil {
		return err
	}
	t.rows = rows
	return nil
}

func (t *table[R]) apply(op, ref string, snapshot any) error {
	if t.rows == nil {
		t.rows = map[string]R{}
	}
	if op == "del" {
		delete(t.rows, ref)
		return nil
	}
	m, ok := snapshot.(xmlrpc.Struct)
	if !ok {
		return fmt.Errorf("%s event for %s: snapshot is %T, not a struct", t.name, ref, snapshot)
	}
	t.rows[ref] = t.decode(m)
	return nil
}

func convert[K ~string, V, R any](in map[K]V, f func(V) R) map[string]R {
	out := make(map[string]R, len(in))
	for k, v := range in {
		out[string(k)] = f(v)
	}
	return out
}

func refs[K ~string](in []K) []string {
	out := make([]string, len(in))
	for i, r := range in {
		out[i] = string(r)
	}
	return out
}

func newPoolTable() *table[poolRec] {
	return &table[poolRec]{
		name: "pool",
		getAll: func(api *xenapi.Client, s xenapi.SessionRef) (map[string]poolRec, error) {
			m, err := api.Pool.GetAllRecords(s)
			return convert(m, func(r xenapi.PoolRecord) poolRec {
				return poolRec{
					UUID: r.UUID, Master: string(r.Master), HAEnabled: r.HaEnabled,
					HAConfiguration: r.HaConfiguration, DefaultHATimeout: r.OtherConfig["default_ha_timeout"], HAStatefiles: r.HaStatefiles,
					HAHostFailuresToTolerate: int64(r.HaHostFailuresToTolerate),
					HAPlanExistsFor:          int64(r.HaPlanExistsFor), HAOvercommitted: r.HaOvercommitted,
				}
			}), err
		},
		decode: func(m xmlrpc.Struct) poolRec {
			return poolRec{
				UUID: fStr(m, "uuid"), Master: fStr(m, "master"), HAEnabled: fBool(m, "ha_enabled"),
				HAConfiguration: fMap(m, "ha_configuration"), DefaultHATimeout: fMap(m, "other_config")["default_ha_timeout"], HAStatefiles: fStrs(m, "ha_statefiles"),
				HAHostFailuresToTolerate: fInt(m, "ha_host_failures_to_tolerate"),
				HAPlanExistsFor:          fInt(m, "ha_plan_exists_for"), HAOvercommitted: fBool(m, "ha_overcommitted"),
			}
		},
	}
}

func newHostTable() *table[hostRec] {
	return &table[hostRec]{
		name: "host",
		getAll: func(api *xenapi.Client, s xenapi.SessionRef) (map[string]hostRec, error) {
			m, err := api.Host.GetAllRecords(s)
			return convert(m, func(r xenapi.HostRecord) hostRec {
				return hostRec{
					UUID: r.UUID, Name: r.NameLabel, Address: r.Address, Metrics: string(r.Metrics),
					SoftwareVersion: r.SoftwareVersion, APIMajor: int64(r.APIVersionMajor), APIMinor: int64(r.APIVersionMinor),
					Enabled: r.Enabled, HAStatefiles: r.HaStatefiles, Updates: refs(r.Updates),
				}
			}), err
		},
		decode: func(m xmlrpc.Struct) hostRec {
			return hostRec{
				UUID: fStr(m, "uuid"), Name: fStr(m, "name_label"), Address: fStr(m, "address"), Metrics: fStr(m, "metrics"),
				SoftwareVersion: fMap(m, "software_version"), APIMajor: fInt(m, "API_version_major"), APIMinor: fInt(m, "API_version_minor"),
				Enabled: fBool(m, "enabled"), HAStatefiles: fStrs(m, "ha_statefiles"), Updates: fStrs(m, "updates"),
			}
		},
	}
}

func newHostMetricsTable() *table[hostMetricsRec] {
	return &table[hostMetricsRec]{
		name: "host_metrics",
		getAll: func(api *xenapi.Client, s xenapi.SessionRef) (map[string]hostMetricsRec, error) {
			m, err := api.HostMetrics.GetAllRecords(s)
			return convert(m, func(r xenapi.HostMetricsRecord) hostMetricsRec { return hostMetricsRec{Live: r.Live} }), err
		},
		decode: func(m xmlrpc.Struct) hostMetricsRec { return hostMetricsRec{Live: fBool(m, "live")} },
	}
}

func newSRTable() *table[srRec] {
	return &table[srRec]{
		name: "sr", wire: "SR",
		getAll: func(api *xenapi.Client, s xenapi.SessionRef) (map[string]srRec, error) {
			m, err := api.SR.GetAllRecords(s)
			return convert(m, func(r xenapi.SRRecord) srRec {
				return srRec{UUID: r.UUID, Name: r.NameLabel, Type: r.Type, Shared: r.Shared, PhysicalSize: int64(r.PhysicalSize), VDIs: refs(r.VDIs)}
			}), err
		},
		decode: func(m xmlrpc.Struct) srRec {
			return srRec{UUID: fStr(m, "uuid"), Name: fStr(m, "name_label"), Type: fStr(m, "type"), Shared: fBool(m, "shared"),
				PhysicalSize: fInt(m, "physical_size"), VDIs: fStrs(m, "VDIs")}
		},
	}
}

func newPBDTable() *table[pbdRec] {
	return &table[pbdRec]{
		name: "pbd", wire: "PBD",
		getAll: func(api *xenapi.Client, s xenapi.SessionRef) (map[string]pbdRec, error) {
			m, err := api.PBD.GetAllRecords(s)
			return convert(m, func(r xenapi.PBDRecord) pbdRec {
				return pbdRec{Host: string(r.Host), SR: string(r.SR), Attached: r.CurrentlyAttached}
			}), err
		},
		decode: func(m xmlrpc.Struct) pbdRec {
			return pbdRec{Host: fStr(m, "host"), SR: fStr(m, "SR"), Attached: fBool(m, "currently_attached")}
		},
	}
}

func newVMTable() *table[vmRec] {
	return &table[vmRec]{
		name: "vm", wire: "VM",
		getAll: func(api *xenapi.Client, s xenapi.SessionRef) (map[string]vmRec, error) {
			m, err := api.VM.GetAllRecords(s)
			return convert(m, func(r xenapi.VMRecord) vmRec {
				return vmRec{Guest: !r.IsControlDomain && !r.IsATemplate && !r.IsASnapshot, HARestartPriority: r.HaRestartPriority}
			}), err
		},
		decode: func(m xmlrpc.Struct) vmRec {
			return vmRec{
				Guest:             !fBool(m, "is_control_domain") && !fBool(m, "is_a_template") && !fBool(m, "is_a_snapshot"),
				HARestartPriority: fStr(m, "ha_restart_priority"),
			}
		},
	}
}

func newPoolPatchTable() *table[patchRec] {
	return &table[patchRec]{
		name: "pool_patch",
		getAll: func(api *xenapi.Client, s xenapi.SessionRef) (map[string]patchRec, error) {
			m, err := api.PoolPatch.GetAllRecords(s)
			return convert(m, func(r xenapi.PoolPatchRecord) patchRec { return patchRec{UUID: r.UUID, Name: r.NameLabel} }), err
		},
		decode: func(m xmlrpc.Struct) patchRec { return patchRec{UUID: fStr(m, "uuid"), Name: fStr(m, "name_label")} },
	}
}

func newHostPatchTable() *table[hostPatchRec] {
	return &table[hostPatchRec]{
		name: "host_patch",
		getAll: func(api *xenapi.Client, s xenapi.SessionRef) (map[string]hostPatchRec, error) {
			m, err := api.HostPatch.GetAllRecords(s)
			return convert(m, func(r xenapi.HostPatchRecord) hostPatchRec {
				return hostPatchRec{Host: string(r.Host), PoolPatch: string(r.PoolPatch), Applied: r.Applied}
			}), err
		},
		decode: func(m xmlrpc.Struct) hostPatchRec {
			return hostPatchRec{Host: fStr(m, "host"), PoolPatch: fStr(m, "pool_patch"), Applied: fBool(m, "applied")}
		},
	}
}

func newPoolUpdateTable() *table[patchRec] {
	return &table[patchRec]{
		name: "pool_update",
		getAll: func(api *xenapi.Client, s xenapi.SessionRef) (map[string]patchRec, error) {
			m, err := api.PoolUpdate.GetAllRecords(s)
			return convert(m, func(r xenapi.PoolUpdateRecord) patchRec { return patchRec{UUID: r.UUID, Name: r.NameLabel} }), err
		},
		decode: func(m xmlrpc.Struct) patchRec { return patchRec{UUID: fStr(m, "uuid"), Name: fStr(m, "name_label")} },
	}
}

// Field readers for event snapshots. Missing or mistyped fields read as zero
// values, as terra-farm's converters treat missing fields.

func fStr(m xmlrpc.Struct, k string) string {
	s, _ := m[k].(string)
	return s
}

func fBool(m xmlrpc.Struct, k string) bool {
	b, _ := m[k].(bool)
	return b
}

// fInt reads an XAPI int: a decimal string on the wire.
func fInt(m xmlrpc.Struct, k string) int64 {
	switch v := m[k].(type) {
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	case int64:
		return v
	}
	return 0
}

func fStrs(m xmlrpc.Struct, k string) []string {
	a, _ := m[k].([]any)
	out := make([]string, 0, len(a))
	for _, v := range a {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func fMap(m xmlrpc.Struct, k string) map[string]string {
	in, _ := m[k].(xmlrpc.Struct)
	out := make(map[string]string, len(in))
	for key, v := range in {
		s, _ := v.(string)
		out[key] = s
	}
	return out
}
