package xapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	xenapi "github.com/terra-farm/go-xen-api-client"
)

// Login parameters besides the credentials: the API version (informational,
// ignored by xapi) and the originator (a defaulted parameter that 6.2
// ignores).
const (
	loginVersion    = "1.0"
	loginOriginator = "xsha"
)

// session is a logged-in session on one host.
type session struct {
	c   *conn
	ref xenapi.SessionRef
}

func (s *session) addr() string { return s.c.addr }

// login opens a session on c's host. The call is not abandoned when ctx
// ends (only the call timeout bounds it): a login that xapi completes after
// we stopped waiting would leave a session nobody logs out.
func (d *dialer) login(ctx context.Context, c *conn) (*session, error) {
	var ref xenapi.SessionRef
	err := c.call(context.WithoutCancel(ctx), "session.login_with_password", 0, func(api *xenapi.Client) error {
		var err error
		ref, err = api.Session.LoginWithPassword(d.pool.Username, string(d.pool.Password), loginVersion, loginOriginator)
		return err
	})
	if err != nil {
		return nil, err
	}
	d.metrics.sessionOpened(d.pool.Name)
	return &session{c: c, ref: ref}, nil
}

// logout ends the session; a failure is returned but the session counts as
// closed either way. A connection broken by an earlier call is replaced.
func (d *dialer) logout(ctx context.Context, s *session) error {
	d.metrics.sessionClosed(d.pool.Name)
	c := s.c
	if c.broken.Load() {
		var err error
		if c, err = d.dial(s.addr(), d.calls); err != nil {
			return err
		}
	}
	return c.call(context.WithoutCancel(ctx), "session.logout", 0, func(api *xenapi.Client) error {
		return api.Session.Logout(s.ref)
	})
}

// loginAt dials addr and logs in.
func (d *dialer) loginAt(ctx context.Context, addr string) (*session, error) {
	c, err := d.dial(addr, d.calls)
	if err != nil {
		return nil, err
	}
	return d.login(ctx, c)
}

// masterAddress returns the address a HOST_IS_SLAVE failure points at.
func masterAddress(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) && e.Code == CodeHostIsSlave && len(e.Params) > 0 && e.Params[0] != "" {
		return e.Params[0], true
	}
	return "", false
}

// findMaster opens a session on the pool master. It tries preferred first
// (the last known master), following one HOST_IS_SLAVE redirect; if that
// fails it logs in on every candidate at once, keeps the session of the host
// that accepted (the one most slaves point at if several did), and follows
// the redirects of the others to addresses not yet tried.
func (d *dialer) findMaster(ctx context.Context, preferred string, candidates []string, log *slog.Logger) (*session, error) {
	tried := map[string]bool{}
	var errs []error
	try := func(addr string) (*session, string, error) {
		tried[addr] = true
		s, err := d.loginAt(ctx, addr)
		if err == nil {
			return s, "", nil
		}
		errs = append(errs, err)
		m, _ := masterAddress(err)
		return nil, m, err
	}
	if preferred != "" {
		s, redirect, _ := try(preferred)
		if s != nil {
			return s, nil
		}
		if redirect != "" && !tried[redirect] {
			if s, _, _ := try(redirect); s != nil {
				return s, nil
			}
		}
	}
	var rest []string
	for _, a := range candidates {
		if !tried[a] && !slices.Contains(rest, a) {
			rest = append(rest, a)
		}
	}
	type result struct {
		addr     string
		s        *session
		redirect string
		err      error
	}
	results := make([]result, len(rest))
	var wg sync.WaitGroup
	for i, a := range rest {
		tried[a] = true
		wg.Go(func() {
			s, err := d.loginAt(ctx, a)
			r := result{addr: a, s: s, err: err}
			r.redirect, _ = masterAddress(err)
			results[i] = r
		})
	}
	wg.Wait()
	votes := map[string]int{}
	var masters []result
	var redirects []string
	for _, r := range results {
		switch {
		case r.s != nil:
			masters = append(masters, r)
		case r.redirect != "":
			votes[r.redirect]++
			if !slices.Contains(redirects, r.redirect) {
				redirects = append(redirects, r.redirect)
			}
			errs = append(errs, r.err)
		default:
			errs = append(errs, r.err)
		}
	}
	if len(masters) > 0 {
		best := 0
		for i, m := range masters {
			if votes[m.addr] > votes[masters[best].addr] {
				best = i
			}
		}
		for i, m := range masters {
			if i != best {
				log.Warn("more than one host accepts logins as master", "kept", masters[best].addr, "other", m.addr)
				_ = d.logout(ctx, m.s)
			}
		}
		return masters[best].s, nil
	}
	for _, a := range redirects {
		if tried[a] {
			continue
		}
		if s, _, _ := try(a); s != nil {
			return s, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("no master found: %w", errors.Join(errs...))
}

// probe logs in on addr to learn the host's own view and logs out at once.
func (d *dialer) probe(ctx context.Context, addr string) Probe {
	c, err := d.dial(addr, d.probes)
	if err != nil {
		return Probe{Role: RoleUnreachable, Error: []string{err.Error()}, At: time.Now()}
	}
	s, err := d.login(ctx, c)
	if err == nil {
		_ = d.logout(ctx, s)
	}
	p := probeResult(err)
	p.At = time.Now()
	return p
}

// probeResult reads a host's role from the outcome of a normal login on it.
// A master accepts it; a slave refuses it with HOST_IS_SLAVE and its
// master's address; a host in emergency mode (or still starting) refuses it
// with its stored error, whatever that is. SESSION_AUTHENTICATION_FAILED
// says nothing about the role (a master says it, and so does a 6.2 slave
// without the CA-129089 fix), so the role stays unknown.
func probeResult(err error) Probe {
	var e *Error
	switch {
	case err == nil:
		return Probe{Role: RoleMaster}
	case !errors.As(err, &e):
		return Probe{Role: RoleUnreachable, Error: []string{err.Error()}}
	case e.Code == CodeHostIsSlave:
		m, _ := masterAddress(err)
		return Probe{Role: RoleSlave, MasterAddress: m}
	case e.Code == CodeAuthFailed:
		return Probe{Error: e.Description()}
	default:
		return Probe{Role: RoleEmergency, Error: e.Description()}
	}
}
