package scenario

import (
	"strings"
	"testing"
)

// TestLegacySlaveLoginOnlyOn62: XenServer 7.x answers a login on a slave
// with HOST_IS_SLAVE before authenticating (xen-api 1.14-lcm,
// ocaml/xapi/xapi_session.ml, login_with_password), so a 7.x pool cannot
// have the legacy slave login of 6.2's release code (XS62's
// xapi_session.ml authenticates first).
func TestLegacySlaveLoginOnlyOn62(t *testing.T) {
	for _, tc := range []struct {
		version string
		ok      bool
	}{{Version62, true}, {Version71, false}} {
		y := "pools:\n  - name: p\n    product_version: " + tc.version + "\n    slave_login: legacy\n" +
			"    hosts: [{name: h1, address: 127.0.9.1}]\n"
		_, err := Parse([]byte(y))
		if (err == nil) != tc.ok {
			t.Errorf("%s with slave_login legacy: err = %v, want ok %v", tc.version, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "slave_login") {
			t.Errorf("%s: error does not name slave_login: %v", tc.version, err)
		}
	}
}
