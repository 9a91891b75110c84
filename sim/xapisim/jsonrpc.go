package xapisim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
)

// jsonOf writes v as JSON the way xapi 7.x's Rpc values print
// (Jsonrpc.to_string): strings (refs, enums and XAPI's ints, which are
// strings in the API), date-times and base64 as JSON strings, <i4>/<int>
// and <double> as numbers, booleans, arrays and structs as themselves.
// With legacy it writes as XenServer 6.2's Json.xmlrpc_to_json
// (ocaml/idl/ocaml_backend/json.ml, tag XS62): booleans as their XML-RPC
// text 1 or 0, doubles rounded to integers ("%0.0f"), zero as 0.0.
func jsonOf(v Value, legacy bool) []byte {
	var b bytes.Buffer
	appendJSON(&b, v, legacy)
	return b.Bytes()
}

func appendJSON(b *bytes.Buffer, v Value, legacy bool) {
	switch v.Kind {
	case KindString, KindDateTime, KindBase64:
		s, _ := json.Marshal(v.Str)
		b.Write(s)
	case KindInt:
		b.WriteString(strconv.FormatInt(v.Int, 10))
	case KindBool:
		switch {
		case !legacy:
			b.WriteString(strconv.FormatBool(v.Bool))
		case v.Bool:
			b.WriteString("1")
		default:
			b.WriteString("0")
		}
	case KindDouble:
		switch {
		case !legacy:
			b.WriteString(strconv.FormatFloat(v.Double, 'g', -1, 64))
		case v.Double == 0:
			b.WriteString("0.0")
		default:
			b.WriteString(strconv.FormatFloat(v.Double, 'f', 0, 64))
		}
	case KindArray:
		b.WriteByte('[')
		for i, e := range v.Elems {
			if i > 0 {
				b.WriteByte(',')
			}
			appendJSON(b, e, legacy)
		}
		b.WriteByte(']')
	case KindStruct:
		b.WriteByte('{')
		for i, m := range v.Members {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(m.Name)
			b.Write(k)
			b.WriteByte(':')
			appendJSON(b, m.Value, legacy)
		}
		b.WriteByte('}')
	}
}

// valueOfJSON converts a decoded JSON parameter to the Value an XML-RPC
// call would carry: integral numbers as ints, others as doubles.
func valueOfJSON(x any) (Value, error) {
	switch x := x.(type) {
	case string:
		return Value{Kind: KindString, Str: x}, nil
	case bool:
		return Bool(x), nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return Value{Kind: KindInt, Tag: "int", Int: n}, nil
		}
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) {
			return Value{}, fmt.Errorf("bad number %s", x)
		}
		return Double(f), nil
	case []any:
		out := make([]Value, len(x))
		for i, e := range x {
			v, err := valueOfJSON(e)
			if err != nil {
				return Value{}, err
			}
			out[i] = v
		}
		return Array(out...), nil
	case map[string]any:
		ms := make([]Member, 0, len(x))
		for _, k := range sortedKeys(x) {
			v, err := valueOfJSON(x[k])
			if err != nil {
				return Value{}, err
			}
			ms = append(ms, Member{k, v})
		}
		return Struct(ms...), nil
	}
	return Value{}, fmt.Errorf("unsupported JSON value %T", x)
}

// parseJSONCall is Jsonrpc.call_of_string (lib/jsonrpc.ml in ocaml-rpc 1.6,
// which xapi 1.14 uses): an object with a string "method", an integer
// "id" and "params", an array, or with "jsonrpc": "2.0" also one object
// (a single struct parameter); any other "jsonrpc" is malformed.
func parseJSONCall(body []byte) (*Request, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	method, ok := m["method"].(string)
	if !ok {
		return nil, fmt.Errorf("no method")
	}
	var params []any
	switch v, has := m["jsonrpc"]; {
	case !has:
		if params, ok = m["params"].([]any); !ok {
			return nil, fmt.Errorf("params is no array")
		}
	case v == "2.0":
		switch p := m["params"].(type) {
		case []any:
			params = p
		case map[string]any:
			params = []any{p}
		default:
			return nil, fmt.Errorf("params is no array or object")
		}
	default:
		return nil, fmt.Errorf("jsonrpc %v", v)
	}
	id, ok := m["id"].(json.Number)
	if !ok {
		return nil, fmt.Errorf("no id")
	}
	if _, err := id.Int64(); err != nil {
		return nil, fmt.Errorf("id %s is no integer", id)
	}
	req := &Request{Method: method, Params: []Value{}}
	for _, x := range params {
		v, err := valueOfJSON(x)
		if err != nil {
			return nil, err
		}
		req.Params = append(req.Params, v)
	}
	return req, nil
}

// serveJSONRPC is Api_server.jsoncallback (ocaml/xapi/api_server.ml, xen-api
// branch 1.14-lcm, XenServer 7.1): the call is dispatched as an XML-RPC one
// and answered with Jsonrpc.a_of_response of ocaml-rpc 1.6, version 1 of
// JSON-RPC whatever the request's: {"result": value, "error": null, "id": 0}
// on success and {"result": null, "error": [code, params...], "id": 0} on
// failure; the request's id is not echoed. A body it cannot parse raises
// out of the handler: HTTP 500.
func (hd handler) serveJSONRPC(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := parseJSONCall(body)
	if err != nil {
		errorPage(w, http.StatusInternalServerError, fmt.Sprintf(internalErrorPage, "Jsonrpc.Malformed_method_request"))
		return
	}
	v, apiErr := hd.p.serve(r.Context(), hd.h, req)
	var b bytes.Buffer
	if apiErr != nil {
		b.WriteString(`{"result":null,"error":`)
		appendJSON(&b, Strings(append([]string{apiErr.code}, apiErr.params...)), false)
	} else {
		b.WriteString(`{"result":`)
		appendJSON(&b, v, false)
		b.WriteString(`,"error":null`)
	}
	b.WriteString(`,"id":0}`)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Allow-Headers", "X-Requested-With")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.Write(b.Bytes())
}
