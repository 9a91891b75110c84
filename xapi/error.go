package xapi

import (
	"errors"
	"fmt"
	"strings"

	xenapi "github.com/terra-farm/go-xen-api-client"
)

// XAPI error codes this package acts on, and the ones the remediator
// accepts as "the wanted state already holds" (HA_IS_ENABLED,
// HA_NOT_ENABLED). Codes are compared as strings: XAPI sends any code of
// ocaml/idl/api_errors.ml.
const (
	CodeHostIsSlave       = "HOST_IS_SLAVE"
	CodeSessionInvalid    = "SESSION_INVALID"
	CodeEventsLost        = "EVENTS_LOST"
	CodeTokenParseFailure = "EVENT_FROM_TOKEN_PARSE_FAILURE"
	CodeAuthFailed        = "SESSION_AUTHENTICATION_FAILED"
	CodeHAIsEnabled       = "HA_IS_ENABLED"
	CodeHANotEnabled      = "HA_NOT_ENABLED"
	CodeInternalError     = "INTERNAL_ERROR"
)

// Error is an XAPI failure: the code and parameters of ErrorDescription.
// Match it with errors.As. terra-farm, which every call goes through, keeps
// only the first two parameters, so Params has at most two entries (enough
// for every error this package acts on: HOST_IS_SLAVE [master],
// SESSION_INVALID [ref], the emergency-mode errors).
type Error struct {
	Code   string
	Params []string
}

// Error formats the code and its parameters.
func (e *Error) Error() string {
	if len(e.Params) == 0 {
		return "XAPI error " + e.Code
	}
	return fmt.Sprintf("XAPI error %s [%s]", e.Code, strings.Join(e.Params, ", "))
}

// Description returns the whole ErrorDescription, code first.
func (e *Error) Description() []string {
	return append([]string{e.Code}, e.Params...)
}

// ErrorCode returns the XAPI error code in err's chain, or "".
func ErrorCode(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}

// emergencyCodes are the errors a host in emergency mode (or still
// starting) answers every normal call with, login included: such a host is
// no working master, whatever the session thought. xapi answers
// !Xapi_globs.emergency_mode_error to every call outside
// Datamodel.emergency_calls while slave_emergency_mode is set
// (ocaml/xapi/api_server.ml); ocaml/xapi/xapi.ml and xapi_ha.ml set it to
// the codes below (HOST_STILL_BOOTING until start-up is done, INTERNAL_ERROR
// for an unexpected failure of Pool.hello). HOST_IN_EMERGENCY_MODE is
// declared in ocaml/idl/api_errors.ml but raised by no xapi of 6.2 (XS62) or
// 7.1 (1.14-lcm); it stays in the set because it can mean nothing else.
var emergencyCodes = map[string]bool{
	"HOST_STILL_BOOTING": true, "HOST_HAS_NO_MANAGEMENT_IP": true, "HOST_MASTER_CANNOT_TALK_BACK": true,
	"HOST_UNKNOWN_TO_MASTER": true, "HOST_BROKEN": true, "HOST_ITS_OWN_SLAVE": true, CodeInternalError: true,
	"HA_HOST_CANNOT_ACCESS_STATEFILE": true, "HA_HEARTBEAT_DAEMON_STARTUP_FAILED": true,
	"HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED": true, "HOST_IN_EMERGENCY_MODE": true,
}

// fromAPI turns terra-farm's error into ours. terra-farm keeps only the first
// three elements of ErrorDescription, calls them code, "type" and "uuid" (so
// HOST_IS_SLAVE's master address lands in Type()), and prints them as one
// string; this rebuilds [code, params...] from what it kept. Any other error
// is returned unchanged (transport, decoding).
func fromAPI(err error) error {
	var te *xenapi.Error
	if !errors.As(err, &te) {
		return err
	}
	e := &Error{Code: te.Code()}
	if te.UUID() != "" {
		e.Params = []string{te.Type(), te.UUID()}
	} else if te.Type() != "" {
		e.Params = []string{te.Type()}
	}
	return e
}

// isAPIError reports whether err is an answer from xapi rather than a
// failure to get one.
func isAPIError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
