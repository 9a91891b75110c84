package xapisim_test

import (
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"xsha/sim/scenario"
)

// post sends a raw XML-RPC body and returns status and body.
func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "text/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func call(method string, params ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0"?><methodCall><methodName>%s</methodName><params>`, method)
	for _, p := range params {
		fmt.Fprintf(&b, "<param>%s</param>", p)
	}
	b.WriteString("</params></methodCall>")
	return b.String()
}

func str(s string) string { return "<value><string>" + s + "</string></value>" }

var sessionRE = regexp.MustCompile(`OpaqueRef:[0-9a-f-]{36}`)

func rawLogin(t *testing.T, url string) string {
	t.Helper()
	code, body := post(t, url, call("session.login_with_password", str("root"), str("xenroot")))
	if code != 200 || !strings.Contains(body, "Success") {
		t.Fatalf("login: %d %s", code, body)
	}
	return sessionRE.FindString(body)
}

func failure(desc ...string) string {
	var b strings.Builder
	b.WriteString(`<member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data>`)
	for _, d := range desc {
		if d == "" {
			b.WriteString("<value/>")
		} else {
			fmt.Fprintf(&b, "<value>%s</value>", d)
		}
	}
	b.WriteString("</data></array></value></member>")
	return b.String()
}

// TestWireFormat checks XAPI's wire format: envelopes with HTTP 200 for
// API errors, a fault for unparsable XML, untyped strings and ints, and
// the error parameters real xapi sends.
func TestWireFormat(t *testing.T) {
	tp := newTestPool(t, fast(0.001), "cluster-a")
	master, slave := tp.urls["xs-a1"], tp.urls["xs-a2"]
	s := rawLogin(t, master)
	sess := str(s)
	refOf := func(class, name string) string {
		_, body := post(t, master, call(class+".get_by_name_label", sess, str(name)))
		return sessionRE.FindString(body)
	}
	hostRef, vmRef := refOf("host", "xs-a1"), refOf("VM", "i-2-101-VM")
	for _, tc := range []struct {
		name     string
		url      string
		body     string
		wantCode int
		want     []string
	}{
		{"6.2 answers unparsable XML with a fault", master, "<methodCall><bad", 200, []string{"<fault>", "Failed to parse supplied XML"}},
		{"missing params is HTTP 500", master, "<methodCall><methodName>pool.get_all</methodName></methodCall>", 500, nil},
		{"unknown method", master, call("pool.frobnicate", sess), 200, []string{failure("MESSAGE_METHOD_UNKNOWN", "pool.frobnicate")}},
		{"parameter count excludes the session", master, call("pool.disable_ha", sess, str("x")), 200, []string{failure("MESSAGE_PARAMETER_COUNT_MISMATCH", "pool.disable_ha", "0", "1")}},
		{"missing session counts -1", master, call("pool.get_all"), 200, []string{failure("MESSAGE_PARAMETER_COUNT_MISMATCH", "pool.get_all", "0", "-1")}},
		{"6.2 emergency_ha_disable takes no soft", master, call("host.emergency_ha_disable", sess, "<value><boolean>1</boolean></value>"), 200, []string{failure("MESSAGE_PARAMETER_COUNT_MISMATCH", "host.emergency_ha_disable", "0", "1")}},
		{"6.2 ignores extra params of methods with defaults", master, call("session.login_with_password", str("root"), str("xenroot"), str("1.0"), str("originator"), str("extra")), 200, []string{"<value>Success</value>", "<value>OpaqueRef:"}},
		{"slave redirects login", slave, call("session.login_with_password", str("root"), str("xenroot"), str("1.0"), str("xsha")), 200, []string{failure("HOST_IS_SLAVE", "127.0.1.1")}},
		{"slave redirects session calls", slave, call("pool.get_all", sess), 200, []string{failure("HOST_IS_SLAVE", "127.0.1.1")}},
		{"unknown session", master, call("pool.get_all", str("OpaqueRef:nope")), 200, []string{failure("SESSION_INVALID", "OpaqueRef:nope")}},
		{"bad ref", master, call("host.get_record", sess, str("OpaqueRef:nope")), 200, []string{failure("HANDLE_INVALID", "host", "OpaqueRef:nope")}},
		{"bad uuid", master, call("VM.get_by_uuid", sess, str("nope")), 200, []string{failure("UUID_INVALID", "VM", "nope")}},
		{"ints are untyped decimal strings", master, call("host.get_API_version_minor", sess, str(hostRef)), 200, []string{"<member><name>Value</name><value>2</value></member>"}},
		{"6.2 rejects i4 for an int parameter", master, call("pool.set_ha_host_failures_to_tolerate", sess, str("x"), "<value><i4>1</i4></value>"), 200, []string{failure("FIELD_TYPE_ERROR", "value")}},
		{"6.2 needs a double for a float parameter", master, call("event.from", sess, "<value><array><data><value>pool</value></data></array></value>", str(""), "<value><i4>1</i4></value>"), 200, []string{failure("FIELD_TYPE_ERROR", "timeout")}},
		{"6.2 writes empty strings as <value/>", master, call("host.get_external_auth_type", sess, str(hostRef)), 200, []string{"<name>Value</name><value/>"}},
		{"datetimes in basic ISO 8601", master, call("host_patch.get_all_records", sess), 200, []string{"<name>timestamp_applied</name><value><dateTime.iso8601>"}},
		{"null refs", master, call("host.get_local_cache_sr", sess, str(hostRef)), 200, []string{"<value>OpaqueRef:NULL</value>"}},
		{"void results are empty strings", master, call("VM.set_ha_restart_priority", sess, str(vmRef), str("")), 200, []string{"<member><name>Status</name><value>Success</value></member><member><name>Value</name><value/></member>"}},
		{"calls on a bad ref", master, call("VM.set_ha_restart_priority", sess, str("OpaqueRef:nope"), str("")), 200, []string{failure("HANDLE_INVALID", "VM", "OpaqueRef:nope")}},
		{"valid_ref_counts are i4", master, call("event.from", sess, "<value><array><data><value>pool</value></data></array></value>", str(""), "<value><double>0</double></value>"), 200, []string{"<member><name>valid_ref_counts</name><value><struct>", "<member><name>vm</name><value><i4>13</i4></value></member>", "<member><name>token</name><value>000"}},
		{"unsimulated classes are empty tables", master, call("network.get_all_records", sess), 200, []string{"<name>Value</name><value><struct></struct></value>"}},
		{"wrong password", master, call("session.login_with_password", str("root"), str("wrong")), 200, []string{failure("SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, tc.url, tc.body)
			if code != tc.wantCode {
				t.Fatalf("HTTP %d, want %d: %s", code, tc.wantCode, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("response lacks %s:\n%s", w, body)
				}
			}
		})
	}
}

// TestPoolRecordFields62 checks that a 6.2 pool record has exactly the
// fields XenServer 6.2 has.
func TestPoolRecordFields62(t *testing.T) {
	tp := newTestPool(t, fast(0.001), "cluster-a")
	c, s := tp.login(t, "xs-a1")
	res, err := c.APICall("pool.get_all_records", string(s))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	// amfranz decodes structs into its own map type.
	recs := reflect.ValueOf(res.Value)
	for _, ref := range recs.MapKeys() {
		for _, name := range reflect.ValueOf(recs.MapIndex(ref).Interface()).MapKeys() {
			got = append(got, name.String())
		}
	}
	sort.Strings(got)
	want := strings.Fields("uuid name_label name_description master default_SR suspend_image_SR crash_dump_SR other_config ha_enabled ha_configuration ha_statefiles ha_host_failures_to_tolerate ha_plan_exists_for ha_allow_overcommit ha_overcommitted blobs tags gui_config wlb_url wlb_username wlb_enabled wlb_verify_cert redo_log_enabled redo_log_vdi vswitch_controller restrictions metadata_VDIs")
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("6.2 pool fields:\n%s\nwant\n%s", strings.Join(got, " "), strings.Join(want, " "))
	}
}

// TestModernLeniency: 7.x accepts <int> ints, int floats and the soft flag.
func TestModernLeniency(t *testing.T) {
	sc := scenario.Default()
	sc.TimeScale = 0.001
	sc.Pools[0].ProductVersion = scenario.Version71
	tp := newTestPool(t, sc, "cluster-a")
	master := tp.urls["xs-a1"]
	sess := str(rawLogin(t, master))
	_, body := post(t, master, call("pool.get_all", sess))
	pool := sessionRE.FindString(body)
	for _, tc := range []struct{ body, want string }{
		{call("pool.set_ha_host_failures_to_tolerate", sess, str(pool), "<value><int>1</int></value>"), "<value>Success</value>"},
		{call("event.from", sess, "<value><array><data><value>pool</value></data></array></value>", str(""), "<value><i4>0</i4></value>"), "<value>Success</value>"},
		{call("host.emergency_ha_disable", sess, "<value><boolean>1</boolean></value>"), "<value>Success</value>"},
		{call("host.emergency_ha_disable", sess), failure("HA_NOT_ENABLED")},
		{call("host.get_external_auth_type", sess, str("OpaqueRef:x")), failure("HANDLE_INVALID", "host", "OpaqueRef:x")},
		{call("pool.get_all", sess), "<value><array><data><value>OpaqueRef:"},
	} {
		if _, body := post(t, master, tc.body); !strings.Contains(body, tc.want) {
			t.Errorf("%s:\n%s\nwant %s", tc.body, body, tc.want)
		}
	}
	_, body = post(t, master, call("host.get_all_records", sess))
	if !strings.Contains(body, "<name>control_domain</name>") || strings.Contains(body, "<value/>") {
		t.Errorf("7.x host record lacks control_domain or uses <value/>")
	}
}
