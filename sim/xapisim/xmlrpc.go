package xapisim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is the XML-RPC type of a Value.
type Kind uint8

// XML-RPC value kinds.
const (
	// KindString is an untyped <value>text</value> or a <string>.
	KindString Kind = iota
	// KindInt is an <int>, <i4> or <i8>.
	KindInt
	// KindBool is a <boolean>.
	KindBool
	// KindDouble is a <double>.
	KindDouble
	// KindDateTime is a <dateTime.iso8601>.
	KindDateTime
	// KindBase64 is a <base64>.
	KindBase64
	// KindArray is an <array>.
	KindArray
	// KindStruct is a <struct>.
	KindStruct
)

// String returns the XML-RPC element name of the kind.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindInt:
		return "int"
	case KindBool:
		return "boolean"
	case KindDouble:
		return "double"
	case KindDateTime:
		return "dateTime.iso8601"
	case KindBase64:
		return "base64"
	case KindArray:
		return "array"
	case KindStruct:
		return "struct"
	}
	return "unknown"
}

// Value is one XML-RPC value. Only the fields of its Kind are used.
type Value struct {
	Kind Kind
	// Tag is the element that carried the value: "" for an untyped string,
	// "string", "int", "i4" or "i8". The encoder writes it back.
	Tag string
	// Str holds strings, base64 text and date-time text.
	Str     string
	Int     int64
	Bool    bool
	Double  float64
	Elems   []Value
	Members []Member
}

// Member is one struct member; order is kept.
type Member struct {
	Name  string
	Value Value
}

// Request is a decoded methodCall.
type Request struct {
	Method string
	Params []Value
}

// Value constructors for responses. XAPI sends strings, refs, enums and ints
// as untyped values.

// String returns an untyped string value.
func String(s string) Value { return Value{Kind: KindString, Str: s} }

// Int returns an XAPI int: a decimal string, as XAPI sends ints.
func Int(n int64) Value { return Value{Kind: KindString, Str: strconv.FormatInt(n, 10)} }

// I4 returns a true XML-RPC <i4>, which XAPI uses only in event.from's
// valid_ref_counts.
func I4(n int32) Value { return Value{Kind: KindInt, Tag: "i4", Int: int64(n)} }

// Bool returns a <boolean>.
func Bool(b bool) Value { return Value{Kind: KindBool, Bool: b} }

// Double returns a <double>.
func Double(f float64) Value { return Value{Kind: KindDouble, Double: f} }

// DateTime returns a <dateTime.iso8601> in XAPI's basic form, UTC with Z.
func DateTime(t time.Time) Value {
	return Value{Kind: KindDateTime, Str: t.UTC().Format("20060102T15:04:05Z")}
}

// Array returns an <array> of vs.
func Array(vs ...Value) Value {
	if vs == nil {
		vs = []Value{}
	}
	return Value{Kind: KindArray, Elems: vs}
}

// Strings returns an <array> of untyped strings.
func Strings(ss []string) Value {
	vs := make([]Value, len(ss))
	for i, s := range ss {
		vs[i] = String(s)
	}
	return Array(vs...)
}

// Struct returns a <struct> of ms.
func Struct(ms ...Member) Value {
	if ms == nil {
		ms = []Member{}
	}
	return Value{Kind: KindStruct, Members: ms}
}

// StringMap returns a <struct> with string values, keys sorted.
func StringMap(m map[string]string) Value {
	ms := make([]Member, 0, len(m))
	for _, k := range sortedKeys(m) {
		ms = append(ms, Member{Name: k, Value: String(m[k])})
	}
	return Struct(ms...)
}

// Get returns the struct member called name.
func (v Value) Get(name string) (Value, bool) {
	for _, m := range v.Members {
		if m.Name == name {
			return m.Value, true
		}
	}
	return Value{}, false
}

// Equal reports whether v and w are the same value, tags included.
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind || v.Tag != w.Tag {
		return false
	}
	switch v.Kind {
	case KindString, KindDateTime, KindBase64:
		return v.Str == w.Str
	case KindInt:
		return v.Int == w.Int
	case KindBool:
		return v.Bool == w.Bool
	case KindDouble:
		return v.Double == w.Double
	case KindArray:
		if len(v.Elems) != len(w.Elems) {
			return false
		}
		for i := range v.Elems {
			if !v.Elems[i].Equal(w.Elems[i]) {
				return false
			}
		}
		return true
	case KindStruct:
		if len(v.Members) != len(w.Members) {
			return false
		}
		for i := range v.Members {
			if v.Members[i].Name != w.Members[i].Name || !v.Members[i].Value.Equal(w.Members[i].Value) {
				return false
			}
		}
		return true
	}
	return false
}

// Limits of the request decoder.
const (
	maxDepth  = 64
	maxValues = 1 << 20
)

// ErrMalformed is wrapped by every DecodeRequest error: the body is not a
// well-formed XML-RPC methodCall.
var ErrMalformed = errors.New("malformed XML-RPC request")

// ErrNotXML is wrapped, besides ErrMalformed, by DecodeRequest errors for
// bodies that are not well-formed XML at all (as opposed to well-formed XML
// that is not a methodCall). XenServer 6.2 parses the XML first and answers
// such bodies with an XML-RPC fault (ocaml/xapi/api_server.ml, tag XS62:
// Xml.Error is caught, "Failed to parse supplied XML"); a methodCall of the
// wrong shape fails later, in XMLRPC.From.methodCall, with HTTP 500.
var ErrNotXML = errors.New("not well-formed XML")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// DecodeRequest decodes an XML-RPC methodCall. The params element is
// required (it may be empty).
func DecodeRequest(r io.Reader) (*Request, error) {
	return decodeRequest(r, false)
}

// decodeRequest is DecodeRequest; with firstTree it stops at the end of
// the root element, as xapi does: XenServer 6.2's Xml.parse_string
// (xml-light2/xml.ml in xen-api-libs) and 7.1's Xmlrpc.call_of_string
// (lib/xmlrpc.ml in ocaml-rpc 1.6) read one tree with Xmlm and never look
// at what follows it.
func decodeRequest(r io.Reader, firstTree bool) (*Request, error) {
	d := &decoder{x: xml.NewDecoder(r), firstTree: firstTree}
	d.x.Strict = true
	// Only UTF-8 (and its ASCII subset) is accepted, as by xapi.
	d.x.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "utf-8", "us-ascii", "ascii":
			return input, nil
		}
		return nil, fmt.Errorf("unsupported charset %q", charset)
	}
	req, err := d.request()
	if err != nil {
		var syn *xml.SyntaxError
		switch {
		case errors.Is(err, ErrMalformed):
			return nil, err
		case errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%w: %w: %w", ErrMalformed, ErrNotXML, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return req, nil
}

// errText is wrapped by the error for text where an element belongs.
var errText = errors.New("unexpected text")

// truncated is the error for a document that ends before its root element
// does: not well-formed XML.
func truncated(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrMalformed, ErrNotXML, fmt.Sprintf(format, args...))
}

type decoder struct {
	x         *xml.Decoder
	values    int
	firstTree bool
}

// next returns the next start or end element, failing on non-space text.
func (d *decoder) next() (xml.Token, error) {
	for {
		t, err := d.x.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, truncated("unexpected end of document")
			}
			return nil, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if t.Name.Space != "" {
				return nil, malformed("unexpected namespace %q", t.Name.Space)
			}
			return t.Copy(), nil
		case xml.EndElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, fmt.Errorf("%w: %w %q", ErrMalformed, errText, truncate(string(t)))
			}
		case xml.Comment, xml.ProcInst:
		case xml.Directive:
			return nil, malformed("unexpected directive")
		}
	}
}

func (d *decoder) expectStart(name string) error {
	t, err := d.next()
	if err != nil {
		return err
	}
	s, ok := t.(xml.StartElement)
	if !ok || s.Name.Local != name {
		return malformed("expected <%s>, got %s", name, describe(t))
	}
	if len(s.Attr) != 0 {
		return malformed("unexpected attributes on <%s>", name)
	}
	return nil
}

func (d *decoder) expectEnd(name string) error {
	t, err := d.next()
	if err != nil {
		return err
	}
	if e, ok := t.(xml.EndElement); !ok || e.Name.Local != name {
		return malformed("expected </%s>, got %s", name, describe(t))
	}
	return nil
}

// text reads character data up to the end of the element name; child
// elements are errors.
func (d *decoder) text(name string) (string, error) {
	var b strings.Builder
	for {
		t, err := d.x.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", truncated("unexpected end of document in <%s>", name)
			}
			return "", err
		}
		switch t := t.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.EndElement:
			return b.String(), nil
		case xml.StartElement:
			return "", malformed("unexpected <%s> in <%s>", t.Name.Local, name)
		case xml.Comment, xml.ProcInst:
		case xml.Directive:
			return "", malformed("unexpected directive")
		}
	}
}

func (d *decoder) request() (*Request, error) {
	// Outside the root element, text or a second element makes the
	// document ill-formed XML, not merely no methodCall.
	if err := d.expectStart("methodCall"); err != nil {
		if errors.Is(err, errText) {
			return nil, truncated("text before the root element")
		}
		return nil, err
	}
	if err := d.expectStart("methodName"); err != nil {
		return nil, err
	}
	name, err := d.text("methodName")
	if err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, malformed("empty methodName")
	}
	req := &Request{Method: name, Params: []Value{}}
	if err := d.expectStart("params"); err != nil {
		return nil, err
	}
	for {
		t, err := d.next()
		if err != nil {
			return nil, err
		}
		if e, ok := t.(xml.EndElement); ok && e.Name.Local == "params" {
			break
		}
		if s, ok := t.(xml.StartElement); !ok || s.Name.Local != "param" || len(s.Attr) != 0 {
			return nil, malformed("expected <param>, got %s", describe(t))
		}
		if err := d.expectStart("value"); err != nil {
			return nil, err
		}
		v, err := d.value(1)
		if err != nil {
			return nil, err
		}
		if err := d.expectEnd("param"); err != nil {
			return nil, err
		}
		req.Params = append(req.Params, v)
	}
	if err := d.expectEnd("methodCall"); err != nil {
		return nil, err
	}
	if d.firstTree {
		return req, nil
	}
	// Only white space, comments and processing instructions may follow.
	for {
		t, err := d.x.Token()
		if errors.Is(err, io.EOF) {
			return req, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, truncated("text after </methodCall>")
			}
		case xml.Comment, xml.ProcInst:
		default:
			return nil, truncated("content after </methodCall>")
		}
	}
}

// value decodes the inside of a <value> whose start tag was consumed, and
// its end tag.
func (d *decoder) value(depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, malformed("values nested deeper than %d", maxDepth)
	}
	d.values++
	if d.values > maxValues {
		return Value{}, malformed("more than %d values", maxValues)
	}
	var text strings.Builder
	for {
		t, err := d.x.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Value{}, truncated("unexpected end of document in <value>")
			}
			return Value{}, err
		}
		switch t := t.(type) {
		case xml.CharData:
			text.Write(t)
		case xml.Comment, xml.ProcInst:
		case xml.Directive:
			return Value{}, malformed("unexpected directive")
		case xml.EndElement:
			// An untyped value is a string, kept verbatim.
			return Value{Kind: KindString, Str: text.String()}, nil
		case xml.StartElement:
			if strings.TrimSpace(text.String()) != "" {
				return Value{}, malformed("text mixed with <%s> in <value>", t.Name.Local)
			}
			if t.Name.Space != "" || len(t.Attr) != 0 {
				return Value{}, malformed("unexpected namespace or attributes on <%s>", t.Name.Local)
			}
			v, err := d.typed(t.Name.Local, depth)
			if err != nil {
				return Value{}, err
			}
			if err := d.expectEnd("value"); err != nil {
				return Value{}, err
			}
			return v, nil
		}
	}
}

func (d *decoder) typed(tag string, depth int) (Value, error) {
	switch tag {
	case "string":
		s, err := d.text(tag)
		return Value{Kind: KindString, Tag: "string", Str: s}, err
	case "int", "i4", "i8":
		s, err := d.text(tag)
		if err != nil {
			return Value{}, err
		}
		bits := 64
		if tag == "i4" {
			bits = 32
		}
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, bits)
		if err != nil {
			return Value{}, malformed("bad <%s> %q", tag, truncate(s))
		}
		return Value{Kind: KindInt, Tag: tag, Int: n}, nil
	case "boolean":
		s, err := d.text(tag)
		if err != nil {
			return Value{}, err
		}
		switch strings.TrimSpace(s) {
		case "0":
			return Value{Kind: KindBool, Bool: false}, nil
		case "1":
			return Value{Kind: KindBool, Bool: true}, nil
		}
		return Value{}, malformed("bad <boolean> %q", truncate(s))
	case "double":
		s, err := d.text(tag)
		if err != nil {
			return Value{}, err
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return Value{}, malformed("bad <double> %q", truncate(s))
		}
		return Value{Kind: KindDouble, Double: f}, nil
	case "dateTime.iso8601":
		s, err := d.text(tag)
		if err != nil {
			return Value{}, err
		}
		s = strings.TrimSpace(s)
		if _, err := ParseDateTime(s); err != nil {
			return Value{}, malformed("bad <dateTime.iso8601> %q", truncate(s))
		}
		return Value{Kind: KindDateTime, Str: s}, nil
	case "base64":
		s, err := d.text(tag)
		return Value{Kind: KindBase64, Str: s}, err
	case "array":
		return d.array(depth)
	case "struct":
		return d.strct(depth)
	}
	return Value{}, malformed("unknown value type <%s>", tag)
}

func (d *decoder) array(depth int) (Value, error) {
	if err := d.expectStart("data"); err != nil {
		return Value{}, err
	}
	v := Value{Kind: KindArray, Elems: []Value{}}
	for {
		t, err := d.next()
		if err != nil {
			return Value{}, err
		}
		if e, ok := t.(xml.EndElement); ok && e.Name.Local == "data" {
			break
		}
		if s, ok := t.(xml.StartElement); !ok || s.Name.Local != "value" || len(s.Attr) != 0 {
			return Value{}, malformed("expected <value> in <data>, got %s", describe(t))
		}
		e, err := d.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		v.Elems = append(v.Elems, e)
	}
	return v, d.expectEnd("array")
}

func (d *decoder) strct(depth int) (Value, error) {
	v := Value{Kind: KindStruct, Members: []Member{}}
	for {
		t, err := d.next()
		if err != nil {
			return Value{}, err
		}
		if e, ok := t.(xml.EndElement); ok && e.Name.Local == "struct" {
			return v, nil
		}
		if s, ok := t.(xml.StartElement); !ok || s.Name.Local != "member" || len(s.Attr) != 0 {
			return Value{}, malformed("expected <member> in <struct>, got %s", describe(t))
		}
		if err := d.expectStart("name"); err != nil {
			return Value{}, err
		}
		name, err := d.text("name")
		if err != nil {
			return Value{}, err
		}
		if err := d.expectStart("value"); err != nil {
			return Value{}, err
		}
		mv, err := d.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		if err := d.expectEnd("member"); err != nil {
			return Value{}, err
		}
		v.Members = append(v.Members, Member{Name: name, Value: mv})
	}
}

// ParseDateTime parses an XML-RPC date-time: the basic ISO 8601 form
// 20130613T02:13:48 with an optional Z or offset, as xapi and its clients
// write it.
func ParseDateTime(s string) (time.Time, error) {
	for _, layout := range []string{"20060102T15:04:05Z07:00", "20060102T15:04:05", "20060102T150405Z07:00", "20060102T150405"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad date-time %q", s)
}

func describe(t xml.Token) string {
	switch t := t.(type) {
	case xml.StartElement:
		return "<" + t.Name.Local + ">"
	case xml.EndElement:
		return "</" + t.Name.Local + ">"
	}
	return fmt.Sprintf("%T", t)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Encoder writes XML-RPC documents. XAPI 6.2 writes an empty string as
// <value/>, later versions as <value></value>.
type Encoder struct {
	// EmptyElement writes empty untyped strings as <value/>.
	EmptyElement bool
}

// AppendValue appends v to b.
func (e Encoder) AppendValue(b *bytes.Buffer, v Value) {
	switch v.Kind {
	case KindString:
		switch {
		case v.Tag == "string":
			b.WriteString("<value><string>")
			escape(b, v.Str)
			b.WriteString("</string></value>")
		case v.Str == "" && e.EmptyElement:
			b.WriteString("<value/>")
		default:
			b.WriteString("<value>")
			escape(b, v.Str)
			b.WriteString("</value>")
		}
	case KindInt:
		tag := v.Tag
		if tag == "" {
			tag = "int"
		}
		fmt.Fprintf(b, "<value><%s>%d</%s></value>", tag, v.Int, tag)
	case KindBool:
		if v.Bool {
			b.WriteString("<value><boolean>1</boolean></value>")
		} else {
			b.WriteString("<value><boolean>0</boolean></value>")
		}
	case KindDouble:
		b.WriteString("<value><double>")
		b.WriteString(strconv.FormatFloat(v.Double, 'g', -1, 64))
		b.WriteString("</double></value>")
	case KindDateTime:
		b.WriteString("<value><dateTime.iso8601>")
		escape(b, v.Str)
		b.WriteString("</dateTime.iso8601></value>")
	case KindBase64:
		b.WriteString("<value><base64>")
		escape(b, v.Str)
		b.WriteString("</base64></value>")
	case KindArray:
		b.WriteString("<value><array><data>")
		for _, el := range v.Elems {
			e.AppendValue(b, el)
		}
		b.WriteString("</data></array></value>")
	case KindStruct:
		b.WriteString("<value><struct>")
		for _, m := range v.Members {
			b.WriteString("<member><name>")
			escape(b, m.Name)
			b.WriteString("</name>")
			e.AppendValue(b, m.Value)
			b.WriteString("</member>")
		}
		b.WriteString("</struct></value>")
	}
}

// EncodeResponse returns a methodResponse carrying v.
func (e Encoder) EncodeResponse(v Value) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><methodResponse><params><param>`)
	e.AppendValue(&b, v)
	b.WriteString("</param></params></methodResponse>\n")
	return b.Bytes()
}

// EncodeFault returns a methodResponse carrying an XML-RPC fault, as
// XMLRPC.To.methodResponse writes it (http-svr/xMLRPC.ml in xen-api-libs):
// the code as an <i4>, the string untyped.
func (e Encoder) EncodeFault(code int32, msg string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><methodResponse><fault>`)
	e.AppendValue(&b, Struct(Member{"faultCode", I4(code)}, Member{"faultString", String(msg)}))
	b.WriteString("</fault></methodResponse>\n")
	return b.Bytes()
}

// EncodeRequest returns a methodCall for req.
func (e Encoder) EncodeRequest(req *Request) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><methodCall><methodName>`)
	escape(&b, req.Method)
	b.WriteString("</methodName><params>")
	for _, p := range req.Params {
		b.WriteString("<param>")
		e.AppendValue(&b, p)
		b.WriteString("</param>")
	}
	b.WriteString("</params></methodCall>\n")
	return b.Bytes()
}

// Success is XAPI's result envelope for a successful call.
func Success(v Value) Value {
	return Struct(Member{"Status", String("Success")}, Member{"Value", v})
}

// Failure is XAPI's result envelope for a failed call.
func Failure(code string, params ...string) Value {
	return Struct(Member{"Status", String("Failure")}, Member{"ErrorDescription", Strings(append([]string{code}, params...))})
}

// escape writes s as XML character data. Characters XML cannot carry are
// replaced by U+FFFD; carriage returns, tabs and newlines are written as
// character references so they survive parsing.
func escape(b *bytes.Buffer, s string) {
	xml.EscapeText(b, []byte(s)) //nolint:errcheck // bytes.Buffer never fails
}
