// Package config loads and validates the YAML file shared by xsha-exporter
// and xsha-remediator: the XenServer pools to watch, how to reach and
// authenticate to them, and the CloudStack API that manages them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Defaults applied to every pool that leaves the field out.
const (
	defaultPort            = 443
	defaultUsername        = "root"
	defaultHeartbeatSR     = "MGMT-HA"
	defaultProbeInterval   = 30 * time.Second
	defaultBackgroundProbe = 2 * time.Minute
	defaultCallTimeout     = 30 * time.Second
	defaultEventTimeout    = 60 * time.Second
	DefaultCSInterval      = 30 * time.Second
	DefaultCSTimeout       = 10 * time.Second
	schemeHTTPS            = "https"
	schemeHTTP             = "http"
	requiredHotfixDefault  = "XS62ESP1004"
)

// Config is the whole configuration file.
type Config struct {
	// Pools are the XenServer pools to watch and, for the remediator, to act on.
	Pools []Pool `yaml:"pools"`
	// CloudStack is the CloudStack API that manages the pools; nil when absent.
	CloudStack *CloudStack `yaml:"cloudstack,omitempty"`
}

// Pool describes one XenServer pool and how to reach it.
type Pool struct {
	// Name is the value of the `pool` label; it need not match XAPI's name_label.
	Name string `yaml:"name"`
	// Hosts are addresses of any members; the master is found and followed.
	Hosts []string `yaml:"hosts"`
	// Port is the XAPI port on every host.
	Port int `yaml:"port"`
	// Scheme is "https" (the default) or "http".
	Scheme string `yaml:"scheme"`
	// Username is the XAPI user, root by default.
	Username string `yaml:"username"`
	// PasswordFile names a file holding the password; trailing newlines are dropped.
	PasswordFile string `yaml:"password_file"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"password_env"`
	// Password is read from PasswordFile or PasswordEnv at load time.
	Password Secret `yaml:"-"`
	// TLS says how the hosts' certificates are verified.
	TLS TLS `yaml:"tls"`
	// HeartbeatSR is the name_label of the SR dedicated to the HA statefile.
	HeartbeatSR string `yaml:"heartbeat_sr"`
	// RequiredHotfixes are the hotfixes every host must have.
	RequiredHotfixes []string `yaml:"required_hotfixes"`
	// CloudStackCluster is the CloudStack cluster backed by this pool; the
	// pool name when left out.
	CloudStackCluster string `yaml:"cloudstack_cluster"`
	// ProbeInterval is how often a member is probed on its own address
	// while it needs watching: every member while the pool has no session
	// on its master, and otherwise a member the master's view of which
	// changed, that the master holds not live, or that did not answer its
	// last probe as a slave.
	ProbeInterval model.Duration `yaml:"probe_interval"`
	// BackgroundProbeInterval is how often, while the master's view of
	// every member is steady, one member in turn is probed anyway: each
	// member is probed once every this many times the number of members.
	BackgroundProbeInterval model.Duration `yaml:"background_probe_interval"`
	// CallTimeout bounds every XAPI call but event.from.
	CallTimeout model.Duration `yaml:"call_timeout"`
	// EventTimeout is the event.from long-poll timeout.
	EventTimeout model.Duration `yaml:"event_timeout"`
}

// CloudStack describes the CloudStack management server API.
type CloudStack struct {
	// URL is the API endpoint, e.g. https://cloud.example/client/api.
	URL string `yaml:"url"`
	// APIKeyFile and APIKeyEnv give the API key.
	APIKeyFile string `yaml:"api_key_file"`
	APIKeyEnv  string `yaml:"api_key_env"`
	// SecretKeyFile and SecretKeyEnv give the secret key.
	SecretKeyFile string `yaml:"secret_key_file"`
	SecretKeyEnv  string `yaml:"secret_key_env"`
	// APIKey and SecretKey are read at load time.
	APIKey    Secret `yaml:"-"`
	SecretKey Secret `yaml:"-"`
	// TLS says how the server certificate is verified.
	TLS TLS `yaml:"tls"`
	// Interval is how often CloudStack is polled.
	Interval model.Duration `yaml:"interval"`
	// Timeout bounds each API call.
	Timeout model.Duration `yaml:"timeout"`
}

// Secret is a string that never prints or marshals its value.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalYAML hides the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON hides the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// Load reads, decodes and validates the file at path, and reads the secrets
// it points to.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(b)
}

// Parse decodes and validates a configuration; unknown keys are errors.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	if err := c.setDefaultsAndValidate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Pool returns the pool with the given name.
func (c *Config) Pool(name string) (Pool, bool) {
	for _, p := range c.Pools {
		if p.Name == name {
			return p, true
		}
	}
	return Pool{}, false
}

func (c *Config) setDefaultsAndValidate() error {
	if len(c.Pools) == 0 {
		return errors.New("config: no pools")
	}
	seen := map[string]bool{}
	for i := range c.Pools {
		p := &c.Pools[i]
		if err := p.setDefaultsAndValidate(); err != nil {
			return fmt.Errorf("config: pool %d (%q): %w", i, p.Name, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("config: pool name %q used twice", p.Name)
		}
		seen[p.Name] = true
	}
	if c.CloudStack != nil {
		if err := c.CloudStack.setDefaultsAndValidate(); err != nil {
			return fmt.Errorf("config: cloudstack: %w", err)
		}
	}
	return nil
}

func (p *Pool) setDefaultsAndValidate() error {
	if p.Name == "" {
		return errors.New("name is required")
	}
	if len(p.Hosts) == 0 {
		return errors.New("hosts: at least one address is required")
	}
	for _, h := range p.Hosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			return fmt.Errorf("hosts: %q is not a host name or address", h)
		}
		if _, _, err := net.SplitHostPort(h); err == nil {
			return fmt.Errorf("hosts: %q carries a port; set port instead", h)
		}
	}
	if p.Port == 0 {
		p.Port = defaultPort
	}
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("port %d out of range", p.Port)
	}
	switch p.Scheme {
	case "":
		p.Scheme = schemeHTTPS
	case schemeHTTPS:
	case schemeHTTP:
		if !p.TLS.isZero() {
			return errors.New("tls is set but scheme is http")
		}
	default:
		return fmt.Errorf("scheme %q: want https or http", p.Scheme)
	}
	if p.Username == "" {
		p.Username = defaultUsername
	}
	pw, err := readSecret("password", p.PasswordFile, p.PasswordEnv)
	if err != nil {
		return err
	}
	p.Password = pw
	if err := p.TLS.validate(); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if p.HeartbeatSR == "" {
		p.HeartbeatSR = defaultHeartbeatSR
	}
	if p.RequiredHotfixes == nil {
		p.RequiredHotfixes = []string{requiredHotfixDefault}
	}
	if p.CloudStackCluster == "" {
		p.CloudStackCluster = p.Name
	}
	setDuration(&p.ProbeInterval, defaultProbeInterval)
	setDuration(&p.BackgroundProbeInterval, defaultBackgroundProbe)
	setDuration(&p.CallTimeout, defaultCallTimeout)
	setDuration(&p.EventTimeout, defaultEventTimeout)
	return nil
}

func (cs *CloudStack) setDefaultsAndValidate() error {
	if cs.URL == "" {
		return errors.New("url is required")
	}
	if !strings.HasPrefix(cs.URL, "http://") && !strings.HasPrefix(cs.URL, "https://") {
		return fmt.Errorf("url %q: want http:// or https://", cs.URL)
	}
	if strings.HasPrefix(cs.URL, "http://") && !cs.TLS.isZero() {
		return errors.New("tls is set but url is http://")
	}
	var err error
	if cs.APIKey, err = readSecret("api key", cs.APIKeyFile, cs.APIKeyEnv); err != nil {
		return err
	}
	if cs.SecretKey, err = readSecret("secret key", cs.SecretKeyFile, cs.SecretKeyEnv); err != nil {
		return err
	}
	if err := cs.TLS.validate(); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	setDuration(&cs.Interval, DefaultCSInterval)
	setDuration(&cs.Timeout, DefaultCSTimeout)
	return nil
}

func setDuration(d *model.Duration, def time.Duration) {
	if *d == 0 {
		*d = model.Duration(def)
	}
}

// readSecret reads a secret from exactly one of a file or an environment
// variable.
func readSecret(what, file, env string) (Secret, error) {
	switch {
	case file != "" && env != "":
		return "", fmt.Errorf("%s: set a file or an environment variable, not both", what)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", fmt.Errorf("%s: file %s is empty", what, file)
		}
		return Secret(s), nil
	case env != "":
		s, ok := os.LookupEnv(env)
		if !ok || s == "" {
			return "", fmt.Errorf("%s: environment variable %s is not set", what, env)
		}
		return Secret(s), nil
	default:
		return "", fmt.Errorf("%s: a file or an environment variable is required", what)
	}
}
