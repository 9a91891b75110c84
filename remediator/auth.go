package remediator

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Authenticator checks the credentials of requests that can make the
// remediator act: the webhook and the hold API.
type Authenticator interface {
	// Authenticate reports whether the request carries valid credentials.
	Authenticate(r *http.Request) bool
	// Challenge is the WWW-Authenticate header value sent with a 401.
	Challenge() string
}

// digest hides a secret's length from the comparison: both sides are
// hashed, then compared in constant time.
type digest [sha256.Size]byte

func newDigest(s string) digest { return sha256.Sum256([]byte(s)) }

func (d digest) equal(s string) bool {
	other := sha256.Sum256([]byte(s))
	return subtle.ConstantTimeCompare(d[:], other[:]) == 1
}

// BearerAuth accepts requests with "Authorization: Bearer <token>".
type BearerAuth struct{ token digest }

// newBearerAuth returns an authenticator for the token.
func newBearerAuth(token string) (*BearerAuth, error) {
	if token == "" {
		return nil, errors.New("bearer token is empty")
	}
	return &BearerAuth{token: newDigest(token)}, nil
}

// Authenticate implements Authenticator.
func (a *BearerAuth) Authenticate(r *http.Request) bool {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return a.token.equal(strings.TrimSpace(cred))
}

// Challenge implements Authenticator.
func (a *BearerAuth) Challenge() string { return `Bearer realm="xsha-remediator"` }

// BasicAuth accepts requests with HTTP basic authentication.
type BasicAuth struct{ user, password digest }

// newBasicAuth returns an authenticator for the user and password.
func newBasicAuth(user, password string) (*BasicAuth, error) {
	if user == "" || password == "" {
		return nil, errors.New("basic auth user and password must not be empty")
	}
	return &BasicAuth{user: newDigest(user), password: newDigest(password)}, nil
}

// Authenticate implements Authenticator.
func (a *BasicAuth) Authenticate(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	// Both comparisons always run, so timing does not tell which failed.
	uok, pok := a.user.equal(u), a.password.equal(p)
	return uok && pok
}

// Challenge implements Authenticator.
func (a *BasicAuth) Challenge() string { return `Basic realm="xsha-remediator"` }

// AnyAuth accepts a request any of its authenticators accepts.
type AnyAuth []Authenticator

// Authenticate implements Authenticator.
func (a AnyAuth) Authenticate(r *http.Request) bool {
	ok := false
	for _, x := range a {
		if x.Authenticate(r) {
			ok = true
		}
	}
	return ok
}

// Challenge implements Authenticator.
func (a AnyAuth) Challenge() string {
	var c []string
	for _, x := range a {
		c = append(c, x.Challenge())
	}
	return strings.Join(c, ", ")
}

// NoAuth accepts every request. It exists so that turning authentication
// off is an explicit choice.
type NoAuth struct{}

// Authenticate implements Authenticator.
func (NoAuth) Authenticate(*http.Request) bool { return true }

// Challenge implements Authenticator.
func (NoAuth) Challenge() string { return "" }

// ReadBearerTokenFile reads a bearer token from a file; surrounding
// whitespace is dropped.
func ReadBearerTokenFile(path string) (*BearerAuth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading bearer token file: %w", err)
	}
	a, err := newBearerAuth(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("bearer token file %s: %w", path, err)
	}
	return a, nil
}

// ReadBasicAuthFile reads "user:password" from the first line of a file.
func ReadBasicAuthFile(path string) (*BasicAuth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading basic auth file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	user, password, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
	if !ok {
		return nil, fmt.Errorf("basic auth file %s: want user:password", path)
	}
	a, err := newBasicAuth(user, password)
	if err != nil {
		return nil, fmt.Errorf("basic auth file %s: %w", path, err)
	}
	return a, nil
}
