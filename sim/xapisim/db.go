package xapisim

import (
	"crypto/rand"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// NullRef is XAPI's null reference.
const NullRef = "OpaqueRef:NULL"

// fieldType is a parsed data-model type.
type fieldType uint8

const (
	ftString fieldType = iota // string, uuid, ref, enum: untyped strings
	ftInt                     // int: a decimal string
	ftBool
	ftFloat
	ftDateTime
	ftSet // any set: an array of untyped strings (refs, enums, ints as strings)
	ftMap // any map: a struct with untyped string values
)

type field struct {
	name  string
	typ   fieldType
	raw   string
	not62 bool
}

// classDef is a simulated class: its fields in data-model order.
type classDef struct {
	name   string
	fields []field
	byName map[string]*field
	// hasNameLabel says whether get_by_name_label exists.
	hasNameLabel bool
}

var classes = func() map[string]*classDef {
	m := map[string]*classDef{}
	for name, defs := range schema {
		c := &classDef{name: name, byName: map[string]*field{}}
		for _, d := range defs {
			f := field{name: d.name, typ: parseFieldType(d.typ), raw: d.typ, not62: d.not62}
			c.fields = append(c.fields, f)
		}
		for i := range c.fields {
			c.byName[c.fields[i].name] = &c.fields[i]
			if c.fields[i].name == "name_label" {
				c.hasNameLabel = true
			}
		}
		m[name] = c
	}
	return m
}()

func parseFieldType(t string) fieldType {
	switch {
	case strings.HasSuffix(t, " map"):
		return ftMap
	case strings.HasSuffix(t, " set"):
		return ftSet
	case t == "int":
		return ftInt
	case t == "bool":
		return ftBool
	case t == "float":
		return ftFloat
	case t == "datetime":
		return ftDateTime
	}
	return ftString
}

// enumDefaults are valid values for enum fields a builder leaves unset.
var enumDefaults = map[string]string{
	"enum vm_power_state":     "Halted",
	"enum on_normal_exit":     "destroy",
	"enum on_crash_behaviour": "restart",
	"enum vdi_type":           "user",
	"enum on_boot":            "persist",
	"enum host_display":       "enabled",
}

// object is one database row.
type object struct {
	class    string
	ref      string
	f        map[string]any
	created  uint64
	modified uint64
}

func (o *object) str(name string) string {
	s, _ := o.f[name].(string)
	return s
}

func (o *object) boolean(name string) bool {
	b, _ := o.f[name].(bool)
	return b
}

func (o *object) integer(name string) int64 {
	n, _ := o.f[name].(int64)
	return n
}

func (o *object) set(name string) []string {
	s, _ := o.f[name].([]string)
	return s
}

func (o *object) smap(name string) map[string]string {
	m, _ := o.f[name].(map[string]string)
	return m
}

type tombstone struct {
	class   string
	ref     string
	created uint64
	deleted uint64
}

// db is a pool database: rows by class with the generation counters that
// event.from works on. It is not safe for concurrent use; the pool's mutex
// guards it.
type db struct {
	is62    bool
	gen     uint64
	objects map[string]*object   // by ref
	byClass map[string][]*object // creation order
	deleted []tombstone
	// changed is closed and replaced on every change, waking event.from.
	changed chan struct{}
}

func newDB(is62 bool) *db {
	return &db{
		is62:    is62,
		objects: map[string]*object{},
		byClass: map[string][]*object{},
		changed: make(chan struct{}),
	}
}

func (d *db) bump() uint64 {
	d.gen++
	d.wake()
	return d.gen
}

// wake wakes every waiter on changed without a new generation.
func (d *db) wake() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// add inserts a row of class under ref.
func (d *db) add(class, ref string, f map[string]any) *object {
	o := &object{class: class, ref: ref, f: f}
	o.created = d.bump()
	o.modified = o.created
	d.objects[ref] = o
	d.byClass[class] = append(d.byClass[class], o)
	return o
}

func (d *db) remove(ref string) {
	o, ok := d.objects[ref]
	if !ok {
		return
	}
	delete(d.objects, ref)
	list := d.byClass[o.class]
	for i, x := range list {
		if x == o {
			d.byClass[o.class] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	d.deleted = append(d.deleted, tombstone{class: o.class, ref: ref, created: o.created, deleted: d.bump()})
}

// setField changes one field; a change to an equal value is no change.
func (d *db) setField(o *object, name string, v any) {
	if equalAny(o.f[name], v) {
		return
	}
	o.f[name] = v
	o.modified = d.bump()
}

// touch marks o modified, as event.inject does.
func (d *db) touch(o *object) uint64 {
	o.modified = d.bump()
	return o.modified
}

// restart is a master xapi starting on the pool database: the generation
// count and every row's creation and modification generations are persisted
// with the database (generation_count, __ctime and __mtime in
// ocaml/database/db_xml.ml, tag XS62) and, under HA, restored from the redo
// log, so tokens stay valid across an xapi restart or a failover. Deleted
// rows are known only in memory: a del from before the restart is lost.
func (d *db) restart() {
	d.deleted = nil
	d.wake()
}

func (d *db) get(ref string) (*object, bool) {
	o, ok := d.objects[ref]
	return o, ok
}

func (d *db) all(class string) []*object { return d.byClass[class] }

func (d *db) byUUID(class, uuid string) (*object, bool) {
	for _, o := range d.byClass[class] {
		if o.str("uuid") == uuid {
			return o, true
		}
	}
	return nil, false
}

// record encodes o as XAPI does: every field of the class in this version.
func (d *db) record(o *object) Value {
	c := classes[o.class]
	ms := make([]Member, 0, len(c.fields))
	for i := range c.fields {
		f := &c.fields[i]
		if d.is62 && f.not62 {
			continue
		}
		ms = append(ms, Member{Name: f.name, Value: encodeField(f, o.f[f.name])})
	}
	return Struct(ms...)
}

func encodeField(f *field, v any) Value {
	switch f.typ {
	case ftInt:
		n, _ := v.(int64)
		return Int(n)
	case ftBool:
		b, _ := v.(bool)
		return Bool(b)
	case ftFloat:
		x, _ := v.(float64)
		return Double(x)
	case ftDateTime:
		t, _ := v.(time.Time)
		if t.IsZero() {
			t = time.Unix(0, 0)
		}
		return DateTime(t)
	case ftSet:
		s, _ := v.([]string)
		return Strings(s)
	case ftMap:
		m, _ := v.(map[string]string)
		return StringMap(m)
	}
	s, ok := v.(string)
	if !ok || s == "" {
		switch {
		case strings.HasSuffix(f.raw, " ref"):
			return String(NullRef)
		case strings.HasPrefix(f.raw, "enum "):
			return String(enumDefaults[f.raw])
		}
	}
	return String(s)
}

func equalAny(a, b any) bool {
	switch a := a.(type) {
	case []string:
		b, ok := b.([]string)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	case map[string]string:
		b, ok := b.(map[string]string)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if bv, ok := b[k]; !ok || bv != v {
				return false
			}
		}
		return true
	case time.Time:
		b, ok := b.(time.Time)
		return ok && a.Equal(b)
	case nil:
		return b == nil
	}
	switch b.(type) {
	case []string, map[string]string, time.Time:
		return false
	}
	return a == b
}

// newUUID returns a random version-4 UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("xapi: no randomness: " + err.Error())
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// appendUnique appends s to list unless present.
func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(append([]string(nil), list...), s)
}

// without returns list without s.
func without(list []string, s string) []string {
	out := make([]string, 0, len(list))
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
