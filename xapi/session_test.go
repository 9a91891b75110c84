package xapi

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// TestProbeResult reads roles from the answers real hosts give to a normal
// login (xapi.md 1.7, 2.9).
func TestProbeResult(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Probe
	}{
		{"master accepts", nil, Probe{Role: RoleMaster}},
		{"slave redirects", fmt.Errorf("login: %w", &Error{Code: CodeHostIsSlave, Params: []string{"10.0.0.11"}}),
			Probe{Role: RoleSlave, MasterAddress: "10.0.0.11"}},
		{"slave without an address", &Error{Code: CodeHostIsSlave}, Probe{Role: RoleSlave}},
		{"still booting", &Error{Code: "HOST_STILL_BOOTING"}, Probe{Role: RoleEmergency, Error: []string{"HOST_STILL_BOOTING"}}},
		{"master unreachable from the slave", &Error{Code: CodeInternalError, Params: []string{"Connection refused"}},
			Probe{Role: RoleEmergency, Error: []string{CodeInternalError, "Connection refused"}}},
		{"any other stored error", &Error{Code: "HA_HEARTBEAT_DAEMON_STARTUP_FAILED"},
			Probe{Role: RoleEmergency, Error: []string{"HA_HEARTBEAT_DAEMON_STARTUP_FAILED"}}},
		{"bad credentials say nothing about the role", &Error{Code: CodeAuthFailed, Params: []string{"root", "Authentication failure"}},
			Probe{Error: []string{CodeAuthFailed, "root", "Authentication failure"}}},
		{"no answer", &transportError{addr: "10.0.0.12", method: "session.login_with_password", err: errors.New("connection refused")},
			Probe{Role: RoleUnreachable, Error: []string{"session.login_with_password on 10.0.0.12: connection refused"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := probeResult(tt.err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("probeResult = %+v, want %+v", got, tt.want)
			}
		})
	}
}
