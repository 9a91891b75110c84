package xapisim

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want Request
	}{
		{
			name: "login as xapi.md shows it",
			body: `<?xml version='1.0'?><methodCall><methodName>session.login_with_password</methodName><params>
<param><value><string>root</string></value></param><param><value><string>pw</string></value></param>
<param><value><string>1.0</string></value></param><param><value><string>exporter</string></value></param>
</params></methodCall>`,
			want: Request{Method: "session.login_with_password", Params: []Value{
				{Kind: KindString, Tag: "string", Str: "root"}, {Kind: KindString, Tag: "string", Str: "pw"},
				{Kind: KindString, Tag: "string", Str: "1.0"}, {Kind: KindString, Tag: "string", Str: "exporter"},
			}},
		},
		{
			name: "untyped values keep their text, empty elements are empty strings",
			body: `<methodCall><methodName>x</methodName><params><param><value> a b </value></param><param><value/></param><param><value><string/></value></param></params></methodCall>`,
			want: Request{Method: "x", Params: []Value{
				{Kind: KindString, Str: " a b "}, {Kind: KindString}, {Kind: KindString, Tag: "string"},
			}},
		},
		{
			name: "every scalar type",
			body: `<methodCall><methodName>x</methodName><params>
<param><value><i4>-7</i4></value></param>
<param><value><int>42</int></value></param>
<param><value><i8>4294967296</i8></value></param>
<param><value><boolean>1</boolean></value></param>
<param><value><double>60.1</double></value></param>
<param><value><dateTime.iso8601>20130613T02:13:48Z</dateTime.iso8601></value></param>
<param><value><base64>aGk=</base64></value></param>
</params></methodCall>`,
			want: Request{Method: "x", Params: []Value{
				{Kind: KindInt, Tag: "i4", Int: -7}, {Kind: KindInt, Tag: "int", Int: 42}, {Kind: KindInt, Tag: "i8", Int: 1 << 32},
				Bool(true), Double(60.1), {Kind: KindDateTime, Str: "20130613T02:13:48Z"}, {Kind: KindBase64, Str: "aGk="},
			}},
		},
		{
			name: "arrays and structs, as terra-farm sends enable_ha",
			body: `<?xml version="1.0" encoding="UTF-8"?><methodCall><methodName>pool.enable_ha</methodName><params><param><value><string>OpaqueRef:s</string></value></param><param><value><array><data><value><string>OpaqueRef:sr</string></value></data></array></value></param><param><value><struct><member><name>timeout</name><value><string>180</string></value></member></struct></value></param></params></methodCall>`,
			want: Request{Method: "pool.enable_ha", Params: []Value{
				{Kind: KindString, Tag: "string", Str: "OpaqueRef:s"},
				Array(Value{Kind: KindString, Tag: "string", Str: "OpaqueRef:sr"}),
				Struct(Member{"timeout", Value{Kind: KindString, Tag: "string", Str: "180"}}),
			}},
		},
		{
			name: "no params",
			body: `<methodCall><methodName> pool.get_all </methodName><params/></methodCall>`,
			want: Request{Method: "pool.get_all", Params: []Value{}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeRequest(strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got.Method != tc.want.Method || !Array(got.Params...).Equal(Array(tc.want.Params...)) {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestDecodeRequestRejectsMalformed(t *testing.T) {
	for _, body := range []string{
		``,
		`not xml`,
		`<methodCall><methodName>x</methodName></methodCall>`,
		`<methodCall><methodName></methodName><params/></methodCall>`,
		`<methodCall><methodName>x</methodName><params><param><value><i4>9999999999</i4></value></param></params></methodCall>`,
		`<methodCall><methodName>x</methodName><params><param><value><boolean>yes</boolean></value></param></params></methodCall>`,
		`<methodCall><methodName>x</methodName><params><param><value><double>NaN</double></value></param></params></methodCall>`,
		`<methodCall><methodName>x</methodName><params><param><value><nil/></value></param></params></methodCall>`,
		`<methodCall><methodName>x</methodName><params><param><value>text<string>s</string></value></param></params></methodCall>`,
		`<methodCall><methodName>x</methodName><params><param><value><struct><member><value>v</value></member></struct></value></param></params></methodCall>`,
		`<methodCall><methodName>x</methodName><params><param><value><array><value>v</value></array></value></param></params></methodCall>`,
		`<methodCall><methodName>x</methodName><params></params></methodCall><extra/>`,
		`<methodCall><methodName>x</methodName><params><param><value><string>unterminated`,
		`<methodCall><methodName>x</methodName><params><param><value><dateTime.iso8601>2013-06-13</dateTime.iso8601></value></param></params></methodCall>`,
		`<?xml version="1.0" encoding="ISO-8859-1"?><methodCall><methodName>x</methodName><params/></methodCall>`,
		strings.Repeat("<methodCall>", 3),
		`<methodCall><methodName>x</methodName><params><param><value>` + strings.Repeat("<array><data><value>", maxDepth+1) + `</value></param></params></methodCall>`,
	} {
		if _, err := DecodeRequest(strings.NewReader(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%.80q: got %v, want ErrMalformed", body, err)
		}
	}
}

func TestEncodeResponse(t *testing.T) {
	at := time.Date(2013, 6, 13, 2, 13, 48, 0, time.UTC)
	v := Success(Struct(
		Member{"s", String("a<b&c")},
		Member{"empty", String("")},
		Member{"n", Int(4294967296)},
		Member{"count", I4(42)},
		Member{"b", Bool(true)},
		Member{"f", Double(0.5)},
		Member{"t", DateTime(at)},
		Member{"set", Strings([]string{"OpaqueRef:NULL"})},
	))
	for _, tc := range []struct {
		enc  Encoder
		want string
	}{
		{Encoder{EmptyElement: true}, `<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value><struct><member><name>s</name><value>a&lt;b&amp;c</value></member><member><name>empty</name><value/></member><member><name>n</name><value>4294967296</value></member><member><name>count</name><value><i4>42</i4></value></member><member><name>b</name><value><boolean>1</boolean></value></member><member><name>f</name><value><double>0.5</double></value></member><member><name>t</name><value><dateTime.iso8601>20130613T02:13:48Z</dateTime.iso8601></value></member><member><name>set</name><value><array><data><value>OpaqueRef:NULL</value></data></array></value></member></struct></value></member></struct></value></param></params></methodResponse>` + "\n"},
		{Encoder{}, `<member><name>empty</name><value></value></member>`},
	} {
		got := string(tc.enc.EncodeResponse(v))
		if !strings.Contains(got, tc.want) {
			t.Errorf("got\n%s\nwant it to contain\n%s", got, tc.want)
		}
	}
	f := string(Encoder{}.EncodeResponse(Failure("HOST_IS_SLAVE", "10.0.0.12")))
	if want := `<struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>HOST_IS_SLAVE</value><value>10.0.0.12</value></data></array></value></member></struct>`; !strings.Contains(f, want) {
		t.Errorf("failure envelope:\n%s", f)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	req := &Request{Method: "event.from", Params: []Value{
		String("OpaqueRef:abc"),
		Strings([]string{"vm", "host_metrics"}),
		String("00000000000000000012,00000000000000000000"),
		Double(60.1),
		Struct(Member{"k\n\t", String(" v ")}, Member{"x", Array()}),
		{Kind: KindInt, Tag: "i8", Int: -1},
	}}
	b := Encoder{}.EncodeRequest(req)
	got, err := DecodeRequest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != req.Method || !Array(got.Params...).Equal(Array(req.Params...)) {
		t.Errorf("round trip:\n%s\ngot %+v", b, got)
	}
}
