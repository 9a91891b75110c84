package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmePolicy writes the README's policy example to a file.
func readmePolicy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)### Policy[^\n]*\n\n```yaml\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no policy example under \"### Policy\"")
	}
	path := filepath.Join(t.TempDir(), "readme-policy.yml")
	if err := os.WriteFile(path, m[1], 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkCase is one run of the check.
type checkCase struct {
	name                     string
	config, policy           string
	checkConfig, checkPolicy bool
	// wantErr is part of what is printed when the check fails; empty
	// when it passes.
	wantErr string
}

func TestCheck(t *testing.T) {
	shipped, err := filepath.Glob("../../deploy/xsha/*.yml")
	if err != nil || len(shipped) < 2 {
		t.Fatalf("deploy/xsha policies: %v %v", shipped, err)
	}
	var cases []checkCase
	for _, p := range shipped {
		cases = append(cases, checkCase{"shipped " + filepath.Base(p), "testdata/xsha.yml", p, true, true, ""})
	}
	cases = append(cases, []checkCase{
		{"README policy example", "testdata/xsha.yml", readmePolicy(t), true, true, ""},
		{"empty policy", "", "testdata/policy-empty.yml", false, true, ""},
		{"configuration alone", "testdata/xsha.yml", "", true, false, ""},
		{"policy alone does not need the configuration", "testdata/no-such-file.yml", "testdata/policy-unknown-pool.yml", false, true, ""},
		{"policy names an unconfigured pool", "testdata/xsha.yml", "testdata/policy-unknown-pool.yml", true, true, "cluster-z"},
		{"unknown action", "", "testdata/policy-unknown-action.yml", false, true, `unknown action "reboot_pool"`},
		{"unknown policy key", "", "testdata/policy-unknown-key.yml", false, true, "dry-run"},
		{"alert triggers two actions", "", "testdata/policy-alert-twice.yml", false, true, "triggers both"},
		{"ha_timeout too short", "", "testdata/policy-bad-timeout.yml", false, true, "at least 10s"},
		{"missing policy file", "", "testdata/no-such-file.yml", false, true, "no-such-file.yml"},
		{"unknown configuration key", "testdata/xsha-unknown-key.yml", "", true, false, "heartbeat"},
		{"missing password file", "testdata/xsha-missing-password-file.yml", "", true, false, "no-such-file"},
		{"both bad", "testdata/xsha-unknown-key.yml", "testdata/policy-unknown-key.yml", true, true, "policy-unknown-key.yml"},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := check(&out, &errOut, tc.config, tc.policy, tc.checkConfig, tc.checkPolicy)
			if tc.wantErr == "" {
				if code != 0 || out.String() != "ok\n" || errOut.Len() != 0 {
					t.Errorf("exit %d, stdout %q, stderr %q; want 0, \"ok\\n\", nothing", code, out.String(), errOut.String())
				}
				return
			}
			if code != 1 || out.Len() != 0 || !strings.Contains(errOut.String(), tc.wantErr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing, %q", code, out.String(), errOut.String(), tc.wantErr)
			}
		})
	}
}

// TestCheckFlags runs the program with the check flags and --version: it
// answers and exits without starting (no journal is created).
func TestCheckFlags(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "journal.db")
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--config.check", "--policy.check", "--config.file=testdata/xsha.yml", "--policy.file=../../deploy/xsha/policy.yml"}, 0, "ok"},
		{[]string{"--policy.check", "--policy.file=testdata/policy-unknown-action.yml"}, 1, "reboot_pool"},
		{[]string{"--config.check", "--config.file=testdata/xsha-unknown-key.yml"}, 1, "heartbeat"},
		// version.Print's text, stamped by the Makefile through -ldflags.
		{[]string{"--version"}, 0, "xsha-remediator, version"},
	} {
		p := start(t, append(tc.args, "--journal.path="+journal)...)
		if code := p.wait(); code != tc.code || !strings.Contains(p.out.String()+p.stdout.String(), tc.out) {
			t.Errorf("%v: exit %d, output %q %q; want %d and %q", tc.args, code, p.stdout.String(), p.out.String(), tc.code, tc.out)
		}
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Errorf("a check created the journal: %v", err)
	}
}
