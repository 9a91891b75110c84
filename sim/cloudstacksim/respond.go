package cloudstacksim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// API error codes (ApiErrorCode) and CloudStack exception codes.
const (
	codeParamError    = 431
	codeInternalError = 530
	csCodeServerAPI   = 9999
)

// dateLayout is Gson's "yyyy-MM-dd'T'HH:mm:ssZ": the offset has no colon.
const dateLayout = "2006-01-02T15:04:05-0700"

// apiError is an ExceptionResponse.
type apiError struct {
	code   int // errorcode, also the HTTP status
	csCode int // cserrorcode; 0 leaves it out
	text   string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.code, e.text) }

// exceptionResponse keeps the field order of the Java class.
type exceptionResponse struct {
	UUIDList    []string `json:"uuidList"`
	ErrorCode   int      `json:"errorcode"`
	CSErrorCode int      `json:"cserrorcode,omitempty"`
	ErrorText   string   `json:"errortext"`
}

func paramError(text string) *apiError {
	return &apiError{code: codeParamError, csCode: csCodeServerAPI, text: text}
}

// invalidValue is ParamProcessWorker's answer to a value it cannot convert
// or an id it cannot find.
func invalidValue(cmd, param, value string) *apiError {
	return paramError(fmt.Sprintf("Unable to execute API command %s due to invalid value. Invalid parameter %s value=%s due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class.", cmd, param, value))
}

func missingParam(cmd, param string) *apiError {
	return paramError(fmt.Sprintf("Unable to execute API command %s due to missing parameter %s", cmd, param))
}

func writeError(w http.ResponseWriter, key string, e *apiError) {
	writeJSON(w, e.code, key, exceptionResponse{UUIDList: []string{}, ErrorCode: e.code, CSErrorCode: e.csCode, ErrorText: e.text})
}

func writeJSON(w http.ResponseWriter, status int, key string, payload any) {
	body, err := json.Marshal(map[string]any{key: payload})
	if err != nil {
		status = codeInternalError
		body = []byte(fmt.Sprintf(`{%q:{"uuidList":[],"errorcode":530,"errortext":"internal error"}}`, key))
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// list is a list response: {"count":N,"<name>":[...]}, or {} when empty.
type list struct {
	name  string
	count int
	items any
}

// MarshalJSON puts count first, as the server does.
func (l list) MarshalJSON() ([]byte, error) {
	if l.count == 0 {
		return []byte("{}"), nil
	}
	if l.items == nil { // a page past the end
		return []byte(fmt.Sprintf(`{"count":%d}`, l.count)), nil
	}
	items, err := json.Marshal(l.items)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"count":%d,%q:`, l.count, l.name)
	b.Write(items)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// date formats t for a response; the zero time is left out by callers.
func date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(dateLayout)
}
