package xapisim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
)

// jsonOf writes v as JSON the way xapi's Rpc values print: strings (refs,
// enums and XAPI's ints, which are strings in the API), date-times and
// base64 as JSON strings, <i4>/<int> and <double> as numbers, booleans,
// arrays and structs as themselves.
func jsonOf(v Value) []byte {
	var b bytes.Buffer
	appendJSON(&b, v)
	return b.Bytes()
}

func appendJSON(b *bytes.Buffer, v Value) {
	switch v.Kind {
	case KindString, KindDateTime, KindBase64:
		s, _ := json.Marshal(v.Str)
		b.Write(s)
	case KindInt:
		b.WriteString(strconv.FormatInt(v.Int, 10))
	case KindBool:
		b.WriteString(strconv.FormatBool(v.Bool))
	case KindDouble:
		b.WriteString(strconv.FormatFloat(v.Double, 'g', -1, 64))
	case KindArray:
		b.WriteByte('[')
		for i, e := range v.Elems {
			if i > 0 {
				b.WriteByte(',')
			}
			appendJSON(b, e)
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
			appendJSON(b, m.Value)
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

// jsonCall is a JSON-RPC request as Jsonrpc.call_of_string reads it: a
// method name, an array of parameters and an integer id.
type jsonCall struct {
	Method *string      `json:"method"`
	Params []any        `json:"params"`
	ID     *json.Number `json:"id"`
}

// serveJSONRPC is Api_server.jsoncallback (ocaml/xapi/api_server.ml, xen-api
// branch 1.14-lcm, XenServer 7.1): the call is dispatched as an XML-RPC one
// and answered with Jsonrpc.a_of_response, version 1 of JSON-RPC:
// {"result": value, "error": null, "id": 0} on success and
// {"result": null, "error": [code, params...], "id": 0} on failure; that
// ocaml-rpc does not echo the request's id. A body it cannot parse raises
// out of the handler: HTTP 500.
func (hd handler) serveJSONRPC(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var jc jsonCall
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	err := d.Decode(&jc)
	if err == nil && (jc.Method == nil || jc.Params == nil || jc.ID == nil) {
		err = fmt.Errorf("method, params and id are required")
	}
	if err == nil {
		_, err = jc.ID.Int64()
	}
	req := &Request{Params: []Value{}}
	if err == nil {
		req.Method = *jc.Method
		for _, x := range jc.Params {
			v, cerr := valueOfJSON(x)
			if cerr != nil {
				err = cerr
				break
			}
			req.Params = append(req.Params, v)
		}
	}
	if err != nil {
		errorPage(w, http.StatusInternalServerError, fmt.Sprintf(internalErrorPage, "Jsonrpc.Malformed_method_request"))
		return
	}
	v, apiErr := hd.p.serve(r.Context(), hd.h, req)
	var b bytes.Buffer
	if apiErr != nil {
		b.WriteString(`{"result":null,"error":`)
		appendJSON(&b, Strings(append([]string{apiErr.code}, apiErr.params...)))
	} else {
		b.WriteString(`{"result":`)
		appendJSON(&b, v)
		b.WriteString(`,"error":null`)
	}
	b.WriteString(`,"id":0}`)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Allow-Headers", "X-Requested-With")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.Write(b.Bytes()) //nolint:errcheck // client gone
}
