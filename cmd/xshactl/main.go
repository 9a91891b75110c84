// Command xshactl starts, follows, cancels and lists xsha-remediator's
// planned-maintenance workflows through its HTTP API.
//
//	xshactl [--url URL] [--token-file FILE] [--ca-file FILE] COMMAND ...
//
//	start WORKFLOW --pool POOL --host HOST [--new-master HOST] [--dry-run] [--detach]
//	follow ID
//	cancel ID
//	list
//
// WORKFLOW is restart_slave, restart_master, shutdown or bring_back. start
// follows the workflow, printing each step as it happens with the time
// elapsed since it was queued, and exits 0 when it succeeded (or, with
// --dry-run, printed its plan from live state), 1 when it failed, was
// refused or cancelled, 2 on a usage error. The bearer token (the one
// Alertmanager sends to the webhook) comes from --token-file or the
// XSHACTL_TOKEN environment variable, never from a flag's value.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// client talks to one remediator.
type client struct {
	base  string
	token string
	http  *http.Client
	out   io.Writer
	poll  time.Duration
}

// action is the part of a remediator action xshactl shows.
type action struct {
	ID        uint64    `json:"id"`
	Name      string    `json:"action"`
	Pool      string    `json:"pool"`
	Host      string    `json:"host"`
	State     string    `json:"state"`
	DryRun    bool      `json:"dry_run"`
	Reason    string    `json:"reason"`
	NewMaster string    `json:"new_master"`
	Created   time.Time `json:"created"`
	Finished  time.Time `json:"finished"`
}

func (a *action) open() bool { return a.State == "pending" || a.State == "running" }

// entry is one journal entry.
type entry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: xshactl [--url URL] [--token-file FILE] [--ca-file FILE] COMMAND
  start WORKFLOW --pool POOL --host HOST [--new-master HOST] [--dry-run] [--detach]
  follow ID
  cancel ID
  list
WORKFLOW: restart_slave, restart_master, shutdown, bring_back.
The token comes from --token-file or XSHACTL_TOKEN.
`)
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xshactl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr) }
	url := fs.String("url", "http://localhost:9682", "the remediator's base URL")
	tokenFile := fs.String("token-file", "", "file with the bearer token (else XSHACTL_TOKEN)")
	caFile := fs.String("ca-file", "", "CA bundle to verify an https remediator with (else the system's)")
	poll := fs.Duration("poll", time.Second, "how often a followed workflow is read")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		usage(stderr)
		return exitUsage
	}
	c := &client{base: strings.TrimRight(*url, "/"), out: stdout, poll: *poll}
	var err error
	if c.token, err = readToken(*tokenFile, getenv); err != nil {
		fmt.Fprintln(stderr, "xshactl:", err)
		return exitUsage
	}
	if c.http, err = httpClient(*caFile); err != nil {
		fmt.Fprintln(stderr, "xshactl:", err)
		return exitUsage
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var code int
	switch cmd {
	case "start":
		code, err = c.start(rest, stderr)
	case "follow", "cancel":
		if len(rest) != 1 {
			usage(stderr)
			return exitUsage
		}
		if cmd == "follow" {
			code, err = c.follow(rest[0])
		} else {
			code, err = c.cancel(rest[0])
		}
	case "list":
		code, err = c.list()
	default:
		fmt.Fprintf(stderr, "xshactl: unknown command %q\n", cmd)
		usage(stderr)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintln(stderr, "xshactl:", err)
	}
	return code
}

// readToken reads the bearer token from the file, else the environment.
func readToken(file string, getenv func(string) string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimSpace(line), nil
	}
	return strings.TrimSpace(getenv("XSHACTL_TOKEN")), nil
}

func httpClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// call makes one API request and decodes the answer into out; an error
// answer becomes an error with the remediator's message.
func (c *client) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return json.Unmarshal(b, out)
}

func (c *client) start(args []string, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pool := fs.String("pool", "", "the pool (its name in xsha.yml)")
	host := fs.String("host", "", "the host worked on (name_label)")
	newMaster := fs.String("new-master", "", "restart_master, shutdown of the master: the slave that takes over (default: the most suitable)")
	dryRun := fs.Bool("dry-run", false, "print the plan from live state; change nothing")
	detach := fs.Bool("detach", false, "print the workflow's id and return without following it")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		usage(stderr)
		return exitUsage, nil
	}
	name := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage, nil
	}
	if *pool == "" || *host == "" || fs.NArg() > 0 {
		usage(stderr)
		return exitUsage, nil
	}
	req := map[string]any{"workflow": name, "pool": *pool, "host": *host, "dry_run": *dryRun}
	if *newMaster != "" {
		req["new_master"] = *newMaster
	}
	var out struct {
		Workflow action `json:"workflow"`
	}
	if err := c.call(http.MethodPost, "/api/v1/workflows", req, &out); err != nil {
		return exitFail, err
	}
	if *detach {
		fmt.Fprintln(c.out, out.Workflow.ID)
		return exitOK, nil
	}
	return c.follow(strconv.FormatUint(out.Workflow.ID, 10))
}

// follow prints the workflow's journal as it grows until it ends.
func (c *client) follow(id string) (int, error) {
	var seen uint64
	header := false
	for {
		var out struct {
			Workflow action  `json:"workflow"`
			Journal  []entry `json:"journal"`
		}
		if err := c.call(http.MethodGet, "/api/v1/workflows/"+id, nil, &out); err != nil {
			return exitFail, err
		}
		w := out.Workflow
		if !header {
			mode := ""
			if w.DryRun {
				mode = " (dry-run)"
			}
			fmt.Fprintf(c.out, "workflow %d: %s of %s on pool %s%s\n", w.ID, w.Name, w.Host, w.Pool, mode)
			header = true
		}
		for _, e := range out.Journal {
			if e.Seq <= seen {
				continue
			}
			seen = e.Seq
			if line, ok := show(e); ok {
				fmt.Fprintf(c.out, "%8s  %s\n", elapsed(e.Time.Sub(w.Created)), line)
			}
		}
		if !w.open() {
			return c.result(w), nil
		}
		time.Sleep(c.poll)
	}
}

// show formats the entries an operator follows: steps, writes, notes and
// the workflow's own changes; live-state snapshots are left out.
func show(e entry) (string, bool) {
	switch e.Kind {
	case "step":
		return e.Message, true
	case "call", "note":
		return "    " + e.Message, true
	case "action":
		return e.Message, !strings.HasPrefix(e.Message, "dry_run: ")
	}
	return "", false
}

func elapsed(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// result prints how the workflow ended and returns the exit code.
func (c *client) result(w action) int {
	switch w.State {
	case "success":
		fmt.Fprintf(c.out, "workflow %d succeeded in %s\n", w.ID, elapsed(w.Finished.Sub(w.Created)))
		return exitOK
	case "dry_run":
		plan := strings.TrimPrefix(w.Reason, "dry-run plan: ")
		fmt.Fprintf(c.out, "dry run: nothing was changed; the plan from live state:\n")
		for s := range strings.SplitSeq(plan, "; ") {
			fmt.Fprintf(c.out, "  %s\n", s)
		}
		return exitOK
	}
	fmt.Fprintf(c.out, "workflow %d %s: %s\n", w.ID, w.State, w.Reason)
	return exitFail
}

func (c *client) cancel(id string) (int, error) {
	var out struct {
		Workflow action `json:"workflow"`
	}
	if err := c.call(http.MethodPost, "/api/v1/workflows/"+id+"/cancel", struct{}{}, &out); err != nil {
		return exitFail, err
	}
	if out.Workflow.open() {
		fmt.Fprintf(c.out, "workflow %d: cancel requested; it stops before its next step\n", out.Workflow.ID)
	} else {
		fmt.Fprintf(c.out, "workflow %d %s\n", out.Workflow.ID, out.Workflow.State)
	}
	return exitOK, nil
}

func (c *client) list() (int, error) {
	var out struct {
		Workflows []action `json:"workflows"`
	}
	if err := c.call(http.MethodGet, "/api/v1/workflows", nil, &out); err != nil {
		return exitFail, err
	}
	if len(out.Workflows) == 0 {
		fmt.Fprintln(c.out, "no workflows")
		return exitOK, nil
	}
	fmt.Fprintf(c.out, "%-5s %-15s %-12s %-12s %-10s %s\n", "ID", "WORKFLOW", "POOL", "HOST", "STATE", "CREATED")
	for _, w := range out.Workflows {
		fmt.Fprintf(c.out, "%-5d %-15s %-12s %-12s %-10s %s\n", w.ID, w.Name, w.Pool, w.Host, w.State, w.Created.UTC().Format(time.RFC3339))
	}
	return exitOK, nil
}
