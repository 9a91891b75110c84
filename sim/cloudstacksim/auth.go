package cloudstacksim

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"time"
)

const errUnauthorized = "unable to verify user credentials and/or request signature"

// verifySignature checks a request the way ApiServer.verifyRequest does.
// Every parameter but "signature" is signed, in name order, with each
// decoded value re-encoded by javaURLEncode and "+" turned into "%20"; the
// whole string is lower-cased and signed with HMAC-SHA1 under the secret
// key. With signatureversion=3 an unexpired "expires" is required.
func verifySignature(params values, apiKey, secretKey string, now time.Time) bool {
	var signature, key, version, expires string
	var haveSignature, haveKey bool
	names := make([]string, 0, len(params))
	for name, value := range params {
		if strings.EqualFold(name, "signature") {
			signature, haveSignature = value, true
			continue
		}
		switch {
		case strings.EqualFold(name, "apikey"):
			key, haveKey = value, true
		case strings.EqualFold(name, "signatureversion"):
			version = value
		case strings.EqualFold(name, "expires"):
			expires = value
		}
		names = append(names, name)
	}
	if !haveSignature || !haveKey {
		return false
	}
	if version == "3" {
		t, ok := parseExpires(expires)
		if !ok || !now.Before(t) {
			return false
		}
	}
	if !hmac.Equal([]byte(key), []byte(apiKey)) {
		return false
	}
	sort.Strings(names)
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(javaURLEncode(params[name]), "+", "%20"))
	}
	mac := hmac.New(sha1.New, []byte(secretKey))
	mac.Write([]byte(strings.ToLower(b.String())))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(signature), []byte(want))
}

// javaURLEncode is java.net.URLEncoder.encode(s, "UTF-8"): it keeps
// a-z A-Z 0-9 . - * _, turns a space into "+" and escapes every other byte
// as %XX with upper-case hex digits. Unlike Go's url.QueryEscape it escapes
// "~", which is why values containing "~" never verify on a real server.
func javaURLEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '-', c == '*', c == '_':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// expiresLayouts are the forms DateUtil.parseTZDateString accepts.
var expiresLayouts = []string{
	time.RFC3339,
	"2006-01-02T15:04:05-0700",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05.000-0700",
	"2006-01-02T15:04:05.000Z0700",
}

func parseExpires(s string) (time.Time, bool) {
	for _, layout := range expiresLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
