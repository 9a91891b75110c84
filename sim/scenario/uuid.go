package scenario

import (
	"crypto/sha1"
	"fmt"
)

// NameUUID returns a stable version-5 style UUID derived from name, so that
// a scenario gives the same identifiers on every run.
func NameUUID(name string) string {
	sum := sha1.Sum([]byte("xsha-lab/" + name))
	b := sum[:16]
	b[6] = (b[6] & 0x0f) | 0x50
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
