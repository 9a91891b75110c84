package xapisim

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeRequest checks that the request decoder never panics, that
// every failure is ErrMalformed, and that whatever it accepts survives an
// encode/decode round trip unchanged.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`<?xml version='1.0'?><methodCall><methodName>session.login_with_password</methodName><params><param><value><string>root</string></value></param><param><value><string>xenroot</string></value></param><param><value><string>1.0</string></value></param><param><value><string>xsha</string></value></param></params></methodCall>`,
		`<methodCall><methodName>event.from</methodName><params><param><value>OpaqueRef:s</value></param><param><value><array><data><value>vm</value><value>*</value></data></array></value></param><param><value></value></param><param><value><double>60.1</double></value></param></params></methodCall>`,
		`<methodCall><methodName>pool.enable_ha</methodName><params><param><value>OpaqueRef:s</value></param><param><value><array><data/></array></value></param><param><value><struct><member><name>timeout</name><value>180</value></member></struct></value></param></params></methodCall>`,
		`<methodCall><methodName>pool.set_ha_host_failures_to_tolerate</methodName><params><param><value><i4>1</i4></value></param><param><value><int>2</int></value></param><param><value><i8>3</i8></value></param><param><value><boolean>0</boolean></value></param><param><value><dateTime.iso8601>20130613T02:13:48Z</dateTime.iso8601></value></param><param><value><base64>aGk=</base64></value></param></params></methodCall>`,
		`<methodCall><methodName>x</methodName><params><param><value>a &amp; b &#x9;</value></param><param><value/></param></params></methodCall>`,
		`<methodCall><methodName>x</methodName><params><!-- c --></params></methodCall>`,
		`<methodCall><methodName>x</methodName></methodCall>`,
		`<methodCall>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		enc := Encoder{}.EncodeRequest(req)
		again, err := DecodeRequest(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("re-decoding %q: %v", enc, err)
		}
		if again.Method != req.Method || !Array(again.Params...).Equal(Array(req.Params...)) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", req, again)
		}
		// The 6.2 encoder's empty elements decode the same.
		enc62 := Encoder{EmptyElement: true}.EncodeRequest(req)
		if _, err := DecodeRequest(bytes.NewReader(enc62)); err != nil {
			t.Fatalf("re-decoding the 6.2 form %q: %v", enc62, err)
		}
	})
}
