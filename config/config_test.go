package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "xenroot\n")
	key := writeFile(t, dir, "key", "KEY")
	t.Setenv("XSHA_TEST_SECRET", "SECRET")

	tests := []struct {
		name    string
		yaml    string
		wantErr string
		check   func(t *testing.T, c *Config)
	}{
		{
			name: "defaults",
			yaml: "pools:\n- name: cluster-a\n  hosts: [10.0.0.11]\n  password_file: " + pw + "\n",
			check: func(t *testing.T, c *Config) {
				p := c.Pools[0]
				if p.Port != 443 || p.Scheme != "https" || p.Username != "root" || p.HeartbeatSR != "MGMT-HA" {
					t.Errorf("defaults not applied: %+v", p)
				}
				if len(p.RequiredHotfixes) != 1 || p.RequiredHotfixes[0] != "XS62ESP1004" {
					t.Errorf("required hotfixes = %v", p.RequiredHotfixes)
				}
				if p.Password != "xenroot" {
					t.Errorf("password not read from file without its newline")
				}
				if p.CloudStackCluster != "cluster-a" || time.Duration(p.ProbeInterval) != defaultProbeInterval ||
					time.Duration(p.BackgroundProbeInterval) != defaultBackgroundProbe {
					t.Errorf("cluster/probe defaults not applied: %+v", p)
				}
			},
		},
		{
			name: "cloudstack block",
			yaml: "pools:\n- name: a\n  hosts: [h]\n  password_env: XSHA_TEST_SECRET\n" +
				"cloudstack:\n  url: http://127.0.0.1:8080/client/api\n  api_key_file: " + key + "\n  secret_key_env: XSHA_TEST_SECRET\n",
			check: func(t *testing.T, c *Config) {
				if c.CloudStack.APIKey != "KEY" || c.CloudStack.SecretKey != "SECRET" {
					t.Errorf("cloudstack secrets not loaded")
				}
				if time.Duration(c.CloudStack.Interval) != DefaultCSInterval {
					t.Errorf("interval default not applied")
				}
			},
		},
		{name: "unknown key", yaml: "pools:\n- name: a\n  hosts: [h]\n  password_file: " + pw + "\n  pasword: x\n", wantErr: "pasword"},
		{name: "no pools", yaml: "pools: []\n", wantErr: "no pools"},
		{name: "empty file", yaml: "", wantErr: "no pools"},
		{name: "no hosts", yaml: "pools:\n- name: a\n  password_file: " + pw + "\n", wantErr: "hosts"},
		{name: "host with port", yaml: "pools:\n- name: a\n  hosts: ['h:443']\n  password_file: " + pw + "\n", wantErr: "set port instead"},
		{name: "missing password", yaml: "pools:\n- name: a\n  hosts: [h]\n", wantErr: "password"},
		{name: "missing password file", yaml: "pools:\n- name: a\n  hosts: [h]\n  password_file: /nonexistent/pw\n", wantErr: "password"},
		{name: "unset env", yaml: "pools:\n- name: a\n  hosts: [h]\n  password_env: XSHA_NOT_SET_ANYWHERE\n", wantErr: "not set"},
		{name: "duplicate pool", yaml: "pools:\n- {name: a, hosts: [h], password_file: " + pw + "}\n- {name: a, hosts: [g], password_file: " + pw + "}\n", wantErr: "twice"},
		{name: "bad scheme", yaml: "pools:\n- {name: a, hosts: [h], scheme: ftp, password_file: " + pw + "}\n", wantErr: "scheme"},
		{name: "tls over http", yaml: "pools:\n- {name: a, hosts: [h], scheme: http, tls: {insecure_skip_verify: true}, password_file: " + pw + "}\n", wantErr: "scheme is http"},
		{name: "two verification modes", yaml: "pools:\n- {name: a, hosts: [h], tls: {insecure_skip_verify: true, fingerprints_sha256: ['" + strings.Repeat("ab", 32) + "']}, password_file: " + pw + "}\n", wantErr: "at most one"},
		{name: "bad fingerprint", yaml: "pools:\n- {name: a, hosts: [h], tls: {fingerprints_sha256: [zz]}, password_file: " + pw + "}\n", wantErr: "SHA-256"},
		{name: "missing ca file", yaml: "pools:\n- {name: a, hosts: [h], tls: {ca_file: /nonexistent/ca.pem}, password_file: " + pw + "}\n", wantErr: "CA file"},
		{name: "cloudstack without url", yaml: "pools:\n- {name: a, hosts: [h], password_file: " + pw + "}\ncloudstack: {api_key_file: " + key + ", secret_key_file: " + key + "}\n", wantErr: "url is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestSecretsNeverMarshal(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "hunter2")
	c, err := Parse([]byte("pools:\n- name: a\n  hosts: [h]\n  password_file: " + pw + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(y), string(j), c.Pools[0].Password.String(), fmt.Sprintf("%v %+v %#v %s", c, c.Pools[0], c.Pools[0], c.Pools[0].Password)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret leaked: %s", out)
		}
	}
}

func TestStoreKeepsRunningConfigOnBadReload(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "x")
	path := writeFile(t, dir, "xsha.yml", "pools:\n- {name: a, hosts: [h], password_file: "+pw+"}\n")
	reg := prometheus.NewRegistry()
	s := NewStore(path, reg)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "xsha.yml", "pools:\n- {name: b, hostz: [h]}\n")
	if err := s.Reload(); err == nil {
		t.Fatal("reload of a bad file succeeded")
	}
	if got := s.Get().Pools[0].Name; got != "a" {
		t.Errorf("running config replaced by a bad one: pool %q", got)
	}
	if v := testutil.ToFloat64(s.reloadSuccess); v != 0 {
		t.Errorf("xsha_config_last_reload_successful = %v after a failed reload", v)
	}
	writeFile(t, dir, "xsha.yml", "pools:\n- {name: b, hosts: [h], password_file: "+pw+"}\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := s.Get().Pools[0].Name; got != "b" || testutil.ToFloat64(s.reloadSuccess) != 1 {
		t.Errorf("good reload not applied: pool %q", got)
	}
}

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestTLSClientConfig(t *testing.T) {
	cert, certPEM := selfSigned(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	sum := sha256.Sum256(cert.Certificate[0])
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", string(certPEM))
	_, otherPEM := selfSigned(t)
	otherCA := writeFile(t, dir, "other.pem", string(otherPEM))

	tests := []struct {
		name string
		tls  TLS
		ok   bool
	}{
		{"system roots reject a lab certificate", TLS{}, false},
		{"matching CA file", TLS{CAFile: ca}, true},
		{"other CA file", TLS{CAFile: otherCA}, false},
		{"pinned fingerprint with colons", TLS{Fingerprints: []string{colonHex(sum[:])}}, true},
		{"wrong pin", TLS{Fingerprints: []string{strings.Repeat("00", 32)}}, false},
		{"insecure by name", TLS{InsecureSkipVerify: true}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.tls.ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
			resp, err := client.Get(srv.URL)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("request error = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func colonHex(b []byte) string {
	h := hex.EncodeToString(b)
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, strings.ToUpper(h[i:i+2]))
	}
	return strings.Join(parts, ":")
}
