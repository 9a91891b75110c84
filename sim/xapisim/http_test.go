package xapisim_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"xsha/sim/lab"
	"xsha/sim/scenario"
)

// pools62and71 returns a 6.2 and a 7.1 test pool.
func pools62and71(t *testing.T) map[string]*testPool {
	t.Helper()
	sc71 := fast(0.001)
	sc71.Pools[0].ProductVersion = scenario.Version71
	return map[string]*testPool{
		"6.2": newTestPool(t, fast(0.001), "cluster-a"),
		"7.1": newTestPool(t, sc71, "cluster-a"),
	}
}

type httpAnswer struct {
	code        int
	contentType string
	body        string
}

// send sends one request with a plain HTTP client. A negative length sends
// the body chunked, without Content-Length.
func send(t *testing.T, method, url, contentType, body string, chunked bool) httpAnswer {
	t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		// An io.Reader of unknown length is sent chunked.
		rd = io.MultiReader(strings.NewReader(body))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpAnswer{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

// TestHTTPRouting speaks plain HTTP to a 6.2 and a 7.1 master. xapi's
// Http_svr (http-svr/http_svr.ml in xen-api-libs) finds a POST handler by
// the longest prefix of the path, so "/", "/RPC2" and any other path reach
// the XML-RPC handler (post_root, ocaml/xapi/xapi.ml); "/json" is post_json
// (XML-RPC, the result as a JSON string) on both; "/jsonrpc" is JSON-RPC
// (post_jsonrpc, api_server.ml jsoncallback) from XenServer 7.x on, and on
// 6.2 falls to post_json, whose string prefix it has. A JSON-RPC probe of a
// 6.2 host thus gets an XML-RPC fault with HTTP 200, text/xml.
func TestHTTPRouting(t *testing.T) {
	pools := pools62and71(t)
	login := call("session.login_with_password", str("root"), str("xenroot"))
	jsonLogin := `{"method":"session.login_with_password","params":["root","xenroot"],"id":7}`
	for _, tc := range []struct {
		what, version, method, path, body string
		chunked                           bool
		wantCode                          int
		wantType                          string
		want                              []string
		notWant                           []string
	}{
		{what: "XML-RPC", version: "6.2", method: "POST", path: "/", body: login, wantCode: 200, wantType: "text/xml", want: []string{"<value>Success</value>", "<value>OpaqueRef:"}},
		{what: "XML-RPC", version: "7.1", method: "POST", path: "/", body: login, wantCode: 200, wantType: "text/xml", want: []string{"<value>Success</value>", "<value>OpaqueRef:"}},
		{what: "XML-RPC", version: "6.2", method: "POST", path: "/RPC2", body: login, wantCode: 200, wantType: "text/xml", want: []string{"<value>Success</value>", "<value>OpaqueRef:"}},
		{what: "XML-RPC", version: "7.1", method: "POST", path: "/RPC2", body: login, wantCode: 200, wantType: "text/xml", want: []string{"<value>Success</value>", "<value>OpaqueRef:"}},
		{what: "XML-RPC", version: "6.2", method: "POST", path: "/any/path", body: login, wantCode: 200, wantType: "text/xml", want: []string{"<value>Success</value>", "<value>OpaqueRef:"}},
		{what: "XML-RPC", version: "7.1", method: "POST", path: "/any/path", body: login, wantCode: 200, wantType: "text/xml", want: []string{"<value>Success</value>", "<value>OpaqueRef:"}},
		// A JSON-RPC probe.
		{what: "JSON-RPC probe", version: "6.2", method: "POST", path: "/jsonrpc", body: jsonLogin, wantCode: 200, wantType: "text/xml", want: []string{"<fault>", "<name>faultCode</name><value><i4>1</i4></value>", "Failed to parse supplied XML"}},
		{what: "JSON-RPC login", version: "7.1", method: "POST", path: "/jsonrpc", body: jsonLogin, wantCode: 200, wantType: "application/json", want: []string{`"result":"OpaqueRef:`, `"error":null`, `"id":0`}},
		{what: "JSON-RPC failure", version: "7.1", method: "POST", path: "/jsonrpc", body: `{"method":"session.login_with_password","params":["root","wrong"],"id":1}`, wantCode: 200, wantType: "application/json", want: []string{`"result":null,"error":["SESSION_AUTHENTICATION_FAILED","root","Authentication failure"]`}},
		{what: "XML-RPC body", version: "7.1", method: "POST", path: "/jsonrpc", body: login, wantCode: 500, wantType: "text/html"},
		// post_json: an XML-RPC call, a JSON string for a result.
		{what: "JSON result", version: "6.2", method: "POST", path: "/json", body: login, wantCode: 200, wantType: "text/xml", want: []string{"<value>Success</value>", `<value>&#34;OpaqueRef:`}},
		{what: "JSON result", version: "7.1", method: "POST", path: "/json", body: login, wantCode: 200, wantType: "text/xml", want: []string{"<value>Success</value>", `<value>&#34;OpaqueRef:`}},
		{what: "XML-RPC body", version: "6.2", method: "POST", path: "/jsonrpc", body: login, wantCode: 200, wantType: "text/xml", want: []string{`<value>&#34;OpaqueRef:`}},
		// Unparsable XML: a fault on 6.2, HTTP 500 on 7.x.
		{what: "unparsable XML", version: "6.2", method: "POST", path: "/", body: "<methodCall><bad", wantCode: 200, wantType: "text/xml", want: []string{"<methodResponse><fault>", "Failed to parse supplied XML"}},
		{what: "empty body", version: "6.2", method: "POST", path: "/", body: "", wantCode: 200, wantType: "text/xml", want: []string{"Failed to parse supplied XML"}},
		{what: "unparsable XML", version: "7.1", method: "POST", path: "/", body: "<methodCall><bad", wantCode: 500, wantType: "text/html", want: []string{"HTTP 500 internal server error"}},
		// xapi reads the first tree and ignores what follows.
		{what: "trailing junk", version: "6.2", method: "POST", path: "/", body: login + "<junk", wantCode: 200, wantType: "text/xml", want: []string{"<value>Success</value>"}},
		{what: "trailing junk", version: "7.1", method: "POST", path: "/", body: login + "<junk", wantCode: 200, wantType: "text/xml", want: []string{"<value>Success</value>"}},
		// JSON-RPC 2.0 requests are read too (the answer stays v1), their
		// params an array or one object.
		{what: "JSON-RPC 2.0", version: "7.1", method: "POST", path: "/jsonrpc", body: `{"jsonrpc":"2.0","method":"session.login_with_password","params":["root","xenroot"],"id":3}`, wantCode: 200, wantType: "application/json", want: []string{`"result":"OpaqueRef:`, `"id":0`}},
		{what: "JSON-RPC 3.0", version: "7.1", method: "POST", path: "/jsonrpc", body: `{"jsonrpc":"3.0","method":"session.login_with_password","params":["root","xenroot"],"id":3}`, wantCode: 500, wantType: "text/html"},
		{what: "JSON-RPC without id", version: "7.1", method: "POST", path: "/jsonrpc", body: `{"method":"session.login_with_password","params":["root","xenroot"]}`, wantCode: 500, wantType: "text/html"},
		// Well-formed XML that is no methodCall fails in XMLRPC.From: 500.
		{what: "no methodCall", version: "6.2", method: "POST", path: "/", body: "<methodCall><methodName>pool.get_all</methodName></methodCall>", wantCode: 500, wantType: "text/html", notWant: []string{"<fault>"}},
		// Without Content-Length, Http_svr.read_body fails: 500.
		{what: "chunked", version: "6.2", method: "POST", path: "/", body: login, chunked: true, wantCode: 500, wantType: "text/html", want: []string{"content-length"}},
		{what: "chunked", version: "7.1", method: "POST", path: "/jsonrpc", body: jsonLogin, chunked: true, wantCode: 500, wantType: "text/html", want: []string{"content-length"}},
		// GET serves the web directory: its index at "/", 404 elsewhere.
		{what: "index", version: "6.2", method: "GET", path: "/", wantCode: 200, wantType: "text/html"},
		{what: "file", version: "7.1", method: "GET", path: "/RPC2", wantCode: 404},
		{what: "file", version: "6.2", method: "GET", path: "/any/path", wantCode: 404},
		// No DELETE handlers at all: 501.
		{what: "method", version: "7.1", method: "DELETE", path: "/", wantCode: 501, wantType: "text/html"},
	} {
		t.Run(tc.version+" "+tc.method+" "+tc.path+" "+tc.what, func(t *testing.T) {
			url := strings.TrimSuffix(pools[tc.version].urls["xs-a1"], "/") + tc.path
			a := send(t, tc.method, url, "text/xml", tc.body, tc.chunked)
			if a.code != tc.wantCode {
				t.Fatalf("HTTP %d, want %d: %s", a.code, tc.wantCode, a.body)
			}
			if tc.wantType != "" && a.contentType != tc.wantType {
				t.Errorf("Content-Type %q, want %q", a.contentType, tc.wantType)
			}
			for _, w := range tc.want {
				if !strings.Contains(a.body, w) {
					t.Errorf("response lacks %s:\n%s", w, a.body)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(a.body, w) {
					t.Errorf("response has %s:\n%s", w, a.body)
				}
			}
		})
	}
}

// TestJSONRPCSession checks that a 7.1 JSON-RPC session works for the
// calls that follow: the session from /jsonrpc is the XML-RPC one, and
// results keep XAPI's types (ints as strings, i4 counts as numbers).
func TestJSONRPCSession(t *testing.T) {
	pools := pools62and71(t)
	url := strings.TrimSuffix(pools["7.1"].urls["xs-a1"], "/") + "/jsonrpc"
	var login struct{ Result string }
	a := send(t, "POST", url, "application/json", `{"method":"session.login_with_password","params":["root","xenroot","1.0","probe"],"id":1}`, false)
	if err := json.Unmarshal([]byte(a.body), &login); err != nil || !strings.HasPrefix(login.Result, "OpaqueRef:") {
		t.Fatalf("login: %v %s", err, a.body)
	}
	a = send(t, "POST", url, "application/json", `{"method":"event.from","params":["`+login.Result+`",["pool"],"",0],"id":2}`, false)
	var ev struct {
		Result struct {
			Token          string
			ValidRefCounts map[string]int `json:"valid_ref_counts"`
			Events         []map[string]any
		}
		Error any
	}
	if err := json.Unmarshal([]byte(a.body), &ev); err != nil || ev.Error != nil {
		t.Fatalf("event.from: %v %s", err, a.body)
	}
	if ev.Result.Token == "" || ev.Result.ValidRefCounts["pool"] != 1 || len(ev.Result.Events) != 1 {
		t.Errorf("event.from over JSON-RPC: %s", a.body)
	}
}

// TestLabHTTP starts the lab (HTTPS endpoints per host address) with a 6.2
// and a 7.1 pool and speaks to each master with a plain HTTP client on
// "/", "/RPC2", "/jsonrpc" and an arbitrary path.
func TestLabHTTP(t *testing.T) {
	sc := fast(0.001)
	sc.Pools[1].ProductVersion = scenario.Version71
	l, err := lab.Start(context.Background(), lab.Options{Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pem, err := os.ReadFile(l.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	xmlLogin := call("session.login_with_password", str("root"), str("xenroot"))
	jsonLogin := `{"method":"session.login_with_password","params":["root","xenroot"],"id":1}`
	for _, tc := range []struct {
		host, path, body string
		wantType         string
		want             string
	}{
		{"xs-a1", "/", xmlLogin, "text/xml", "<value>Success</value>"},
		{"xs-a1", "/RPC2", xmlLogin, "text/xml", "<value>Success</value>"},
		{"xs-a1", "/jsonrpc", jsonLogin, "text/xml", "Failed to parse supplied XML"},
		{"xs-a1", "/some/arbitrary/path", xmlLogin, "text/xml", "<value>Success</value>"},
		{"xs-b1", "/", xmlLogin, "text/xml", "<value>Success</value>"},
		{"xs-b1", "/RPC2", xmlLogin, "text/xml", "<value>Success</value>"},
		{"xs-b1", "/jsonrpc", jsonLogin, "application/json", `"result":"OpaqueRef:`},
		{"xs-b1", "/some/arbitrary/path", xmlLogin, "text/xml", "<value>Success</value>"},
	} {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			url := strings.TrimSuffix(l.XAPIURL(tc.host), "/") + tc.path
			resp, err := client.Post(url, "text/xml", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.wantType || !strings.Contains(string(b), tc.want) {
				t.Errorf("HTTP %d %q, want 200 %q with %s:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), tc.wantType, tc.want, b)
			}
		})
	}
}

// TestJSONResults: POST /json answers an XML-RPC call with the result as a
// JSON string: on 6.2 by Json.xmlrpc_to_json (ocaml/idl/ocaml_backend/
// json.ml, tag XS62: booleans as 1 or 0, and a <value/> left as it is), on
// 7.x by Jsonrpc.to_string (api_server.ml, branch 1.14-lcm).
func TestJSONResults(t *testing.T) {
	pools := pools62and71(t)
	for _, tc := range []struct {
		version, method string
		want            string
	}{
		{"6.2", "host.get_enabled", "<value>1</value>"},
		{"7.1", "host.get_enabled", "<value>true</value>"},
		{"6.2", "host.get_external_auth_type", "<name>Value</name><value/>"},
		{"7.1", "host.get_external_auth_type", "<name>Value</name><value>&#34;&#34;</value>"},
		{"6.2", "host.get_API_version_major", "<value>&#34;2&#34;</value>"},
	} {
		t.Run(tc.version+" "+tc.method, func(t *testing.T) {
			base := strings.TrimSuffix(pools[tc.version].urls["xs-a1"], "/")
			s := str(rawLogin(t, base+"/"))
			_, body := post(t, base+"/", call("host.get_by_name_label", s, str("xs-a1")))
			host := str(sessionRE.FindString(body))
			code, body := post(t, base+"/json", call(tc.method, s, host))
			if code != 200 || !strings.Contains(body, tc.want) {
				t.Errorf("HTTP %d %s, want %s", code, body, tc.want)
			}
		})
	}
}
