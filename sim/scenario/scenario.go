// Package scenario describes what the lab simulates: the XenServer pools with
// their hosts, storage and virtual machines, the CloudStack deployment that
// manages them, and every duration of the simulated HA state machine.
//
// A scenario is a YAML document (see Parse). Every duration is scaled by
// TimeScale, so a test can replay minutes of real behaviour in a second.
package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Product versions the lab knows. A version starting with "6.2" is
// XenServer 6.2 (strict XML-RPC, pool_patch); one starting with "7." is
// XenServer 7.x (lenient XML-RPC, pool_update).
const (
	Version62 = "6.2.0"
	Version71 = "7.1.0"
)

// Emergency errors a returning old master can report while pool HA is on.
const (
	ErrHeartbeatDaemonStartupFailed = "HA_HEARTBEAT_DAEMON_STARTUP_FAILED"
	ErrHostCannotAccessStatefile    = "HA_HOST_CANNOT_ACCESS_STATEFILE"
	ErrHostStillBooting             = "HOST_STILL_BOOTING"
)

// Slave login behaviours (see Pool.SlaveLogin).
const (
	// SlaveLoginModern answers login on a slave with HOST_IS_SLAVE before
	// authenticating (CA-129089), even when the master is dead.
	SlaveLoginModern = "modern"
	// SlaveLoginLegacy authenticates first through the master's database,
	// as XenServer 6.2 release code did: a bad password gives
	// SESSION_AUTHENTICATION_FAILED and, with the master dead, the call
	// hangs.
	SlaveLoginLegacy = "legacy"
)

// ReturningHost says what an armed host does when it boots while pool HA is
// on and another host is master (see Pool.ReturningHost).
type ReturningHost string

// Returning-host behaviours.
const (
	// ReturningHostStuck is what the seed observed on XenServer 6.2: the
	// old master stays in emergency mode, and a returning slave stays not
	// live, until pool HA is disabled and (for the old master)
	// host.emergency_ha_disable runs on it.
	ReturningHostStuck ReturningHost = "stuck"
	// ReturningHostSelfRejoin is what xen-api's code reads
	// (ocaml/xapi/xapi_ha.ml, on_server_restart and on_master_failure):
	// the host's HA daemon joins the running liveset, the old master's
	// proposal to be master is refused and it restarts as a slave of the
	// liveset's master; a host whose daemon keeps failing retries every
	// 10 s and disarms itself once pool HA is disabled.
	ReturningHostSelfRejoin ReturningHost = "self_rejoin"
)

// Editions a pool can be licensed for (host.edition).
const (
	// EditionPerSocket is the paid 6.2 edition; HA is licensed.
	EditionPerSocket = "per-socket"
	// EditionFree restricts HA: pool.enable_ha fails with
	// LICENSE_RESTRICTION.
	EditionFree = "free"
)

// Scenario is everything the lab simulates.
type Scenario struct {
	// TimeScale multiplies every duration: 1 is real time, 0.01 runs a
	// 60 s HA timeout in 0.6 s. Defaults to 1.
	TimeScale float64 `yaml:"time_scale"`
	// Credentials are the local superuser's, valid on every host.
	Credentials Credentials `yaml:"credentials"`
	// Durations of the simulated behaviour, before scaling.
	Durations Durations `yaml:"durations"`
	// Pools are the simulated XenServer pools.
	Pools []Pool `yaml:"pools"`
	// CloudStack is the simulated CloudStack deployment.
	CloudStack CloudStack `yaml:"cloudstack"`
}

// Credentials is a user name and password.
type Credentials struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Durations are the lengths of simulated operations and timeouts, in
// unscaled (real XenServer) time. Zero values take the defaults shown.
type Durations struct {
	// HATimeout is the HA timeout T used when pool.enable_ha's
	// configuration has no "timeout" key (xapi's default, 60 s).
	HATimeout Duration `yaml:"ha_timeout"`
	// HAMonitorInterval is how often slaves poll the HA liveset (20 s); a
	// dead master is noticed up to this long after the timeout.
	HAMonitorInterval Duration `yaml:"ha_monitor_interval"`
	// MasterFuse is the delay before xapi restarts to change role (10 s).
	MasterFuse Duration `yaml:"master_fuse"`
	// XAPIStart is how long xapi takes to start and answer (15 s).
	XAPIStart Duration `yaml:"xapi_start"`
	// Boot is the time from power-on until xapi starts (120 s).
	Boot Duration `yaml:"boot"`
	// HostReenable is how long hosts stay enabled=false after a master
	// start before they re-enable themselves (30 s).
	HostReenable Duration `yaml:"host_reenable"`
	// RejoinDelay is how long a host takes to rejoin as a slave once
	// nothing prevents it any more (30 s).
	RejoinDelay Duration `yaml:"rejoin_delay"`
	// EnableHA is how long pool.enable_ha takes (90 s).
	EnableHA Duration `yaml:"enable_ha"`
	// DisableHA is how long pool.disable_ha takes (10 s).
	DisableHA Duration `yaml:"disable_ha"`
	// AuthFailureDelay is the delay before SESSION_AUTHENTICATION_FAILED (5 s).
	AuthFailureDelay Duration `yaml:"auth_failure_delay"`
	// HostAssumedDead is how long, without pool HA, the master keeps a
	// silent host live (600 s).
	HostAssumedDead Duration `yaml:"host_assumed_dead"`
	// ContactRetry is how long the master retries forwarding a call to a
	// host it holds live but cannot reach before it answers
	// CANNOT_CONTACT_HOST (10 s).
	ContactRetry Duration `yaml:"contact_retry"`
	// MigrateVM is how long one live migration (VM.pool_migrate) takes,
	// one VM after another during host.evacuate (5 s).
	MigrateVM Duration `yaml:"migrate_vm"`
	// HostShutdown is how long a host takes from host.reboot or
	// host.shutdown until its power is off: xapi's 10 s delay before it
	// runs shutdown (xapi_host.ml, shutdown_and_reboot_common) and the
	// shutdown itself (30 s).
	HostShutdown Duration `yaml:"host_shutdown"`
}

// Pool is one simulated XenServer pool.
type Pool struct {
	// Name is the pool's name_label and the CloudStack cluster name.
	Name string `yaml:"name"`
	// UUID is the pool's uuid; derived from the name when empty.
	UUID string `yaml:"uuid"`
	// ProductVersion is the XenServer version, e.g. "6.2.0" or "7.1.0".
	ProductVersion string `yaml:"product_version"`
	// Master is the name of the initial master; the first host by default.
	Master string `yaml:"master"`
	// HAEnabled starts the pool with pool HA already enabled on its
	// heartbeat SR.
	HAEnabled bool `yaml:"ha_enabled"`
	// HATimeout is the HA timeout stored in ha_configuration when the pool
	// starts with HA enabled; Durations.HATimeout when zero.
	HATimeout Duration `yaml:"ha_timeout"`
	// EmergencyError is the error a returning old master reports while
	// pool HA is on (HA_HEARTBEAT_DAEMON_STARTUP_FAILED by default;
	// HA_HOST_CANNOT_ACCESS_STATEFILE is used anyway when the host cannot
	// reach its heartbeat SR).
	EmergencyError string `yaml:"emergency_error"`
	// SlaveLogin is "modern" (default) or "legacy"; see SlaveLoginModern.
	SlaveLogin string `yaml:"slave_login"`
	// ReturningHost is "stuck" (default, as the seed saw it) or
	// "self_rejoin" (as xen-api's code reads); see ReturningHostStuck.
	ReturningHost ReturningHost `yaml:"returning_host"`
	// Edition is the hosts' license edition: "per-socket" (default) or
	// "free", which restricts HA.
	Edition string `yaml:"edition"`
	// Hotfixes are the hotfixes applied on every host, e.g. XS62ESP1004.
	Hotfixes []string `yaml:"hotfixes"`
	// Hosts are the pool members.
	Hosts []Host `yaml:"hosts"`
	// SRs are the storage repositories.
	SRs []SR `yaml:"srs"`
	// HeartbeatSR names the SR that enable_ha uses when the pool starts
	// with HA enabled ("MGMT-HA" by default).
	HeartbeatSR string `yaml:"heartbeat_sr"`
	// VMs are the virtual machines other than the control domains, which
	// every host has.
	VMs []VM `yaml:"vms"`
}

// Host is one pool member.
type Host struct {
	// Name is the host's name_label and host name.
	Name string `yaml:"name"`
	// Address is the management IP address, a loopback address.
	Address string `yaml:"address"`
	// UUID is the host's uuid; derived from the name when empty.
	UUID string `yaml:"uuid"`
	// MemoryMiB is the host's memory (256 GiB by default).
	MemoryMiB int64 `yaml:"memory_mib"`
	// CPUs is the number of physical CPUs (32 by default).
	CPUs int `yaml:"cpus"`
}

// SR is a storage repository.
type SR struct {
	// Name is the SR's name_label. For local SRs every host gets one
	// named like this.
	Name string `yaml:"name"`
	// Type is the SM type: nfs, lvmoiscsi, lvmohba, lvm, ext, iso, udev.
	Type string `yaml:"type"`
	// Shared SRs have a PBD on every host; others are per host.
	Shared bool `yaml:"shared"`
	// SizeBytes is the physical size of each SR.
	SizeBytes int64 `yaml:"size_bytes"`
	// ContentType is the content type ("user" by default, "iso" for ISO SRs).
	ContentType string `yaml:"content_type"`
	// Default marks the pool's default SR.
	Default bool `yaml:"default"`
	// UnpluggedOn lists hosts whose PBD starts unplugged.
	UnpluggedOn []string `yaml:"unplugged_on"`
}

// VM kinds.
const (
	KindGuest   = "guest"
	KindRouter  = "router"
	KindSystem  = "system"
	KindDefault = KindGuest
)

// VM is a virtual machine (not a control domain).
type VM struct {
	// Name is the name_label, which CloudStack sets to the instance name
	// (i-2-101-VM, r-4-VM, s-1-VM, v-2-VM).
	Name string `yaml:"name"`
	// DisplayName is what CloudStack users see; Name when empty.
	DisplayName string `yaml:"display_name"`
	// Kind is guest, router or system.
	Kind string `yaml:"kind"`
	// Host is where it runs; the pool's master when empty.
	Host string `yaml:"host"`
	// PowerState is Running (default), Halted, Paused or Suspended.
	PowerState string `yaml:"power_state"`
	// HARestartPriority is XenServer's VM HA priority: "" (default, as
	// CloudStack wants), "restart" or "best-effort".
	HARestartPriority string `yaml:"ha_restart_priority"`
	// MemoryMiB and VCPUs size the VM.
	MemoryMiB int64 `yaml:"memory_mib"`
	VCPUs     int   `yaml:"vcpus"`
	// OS is a free-form operating system name for guests.
	OS string `yaml:"os"`
	// Offering is the CloudStack service offering (guests only).
	Offering string `yaml:"offering"`
	// Account is the CloudStack account owning a guest.
	Account string `yaml:"account"`
	// Project is the CloudStack project owning a guest, if any.
	Project string `yaml:"project"`
}

// CloudStack is the simulated CloudStack deployment that manages the pools:
// one zone and pod, a cluster per pool, a CloudStack host per XenServer host.
type CloudStack struct {
	// Zone and Pod names.
	Zone string `yaml:"zone"`
	Pod  string `yaml:"pod"`
	// AlertWait is the global setting alert.wait in seconds; nil leaves it
	// blank (CloudStack then waits 1800 s).
	AlertWait *int `yaml:"alert_wait"`
	// APIKey and SecretKey sign API requests.
	APIKey    string `yaml:"api_key"`
	SecretKey string `yaml:"secret_key"`
	// Offerings are the compute offerings guests use.
	Offerings []Offering `yaml:"offerings"`
	// PrimaryStorage names the SRs CloudStack uses as primary storage
	// (never the heartbeat SR in a correct set-up).
	PrimaryStorage []string `yaml:"primary_storage"`
}

// Offering is a CloudStack compute offering.
type Offering struct {
	Name      string `yaml:"name"`
	OfferHA   bool   `yaml:"offer_ha"`
	CPUs      int    `yaml:"cpus"`
	MemoryMiB int64  `yaml:"memory_mib"`
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("60s", "1m30s", "250ms") or a number of seconds.
type Duration time.Duration

// UnmarshalYAML parses a duration string or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	if v, err := time.ParseDuration(s); err == nil {
		if v < 0 {
			return fmt.Errorf("line %d: negative duration %q", n.Line, s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := n.Decode(&secs); err != nil || secs < 0 {
		return fmt.Errorf("line %d: %q is not a duration", n.Line, s)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the seed's test bed: two XenServer 6.2 SP1 pools with
// XS62ESP1004 applied, four hosts each, a 1 GiB NFS heartbeat SR named
// MGMT-HA plugged on every host, pool HA off, ten Windows guests, four
// virtual routers and three system VMs all running on the masters, and a
// CloudStack zone with alert.wait set to 60 s.
func Default() *Scenario {
	alertWait := 60
	s := &Scenario{
		CloudStack: CloudStack{
			Zone:      "zone-1",
			Pod:       "pod-1",
			AlertWait: &alertWait,
			Offerings: []Offering{
				{Name: "Medium Instance HA", OfferHA: true, CPUs: 2, MemoryMiB: 4096},
				{Name: "Medium Instance", OfferHA: false, CPUs: 2, MemoryMiB: 4096},
			},
			PrimaryStorage: []string{"primary-a", "primary-b"},
		},
	}
	vmID := 101
	for pi, p := range []struct{ name, letter, net string }{{"cluster-a", "a", "127.0.1."}, {"cluster-b", "b", "127.0.2."}} {
		pool := Pool{
			Name:           p.name,
			ProductVersion: Version62,
			Master:         "xs-" + p.letter + "1",
			Hotfixes:       []string{"XS62ESP1", "XS62ESP1004"},
			HeartbeatSR:    "MGMT-HA",
			SRs: []SR{
				{Name: "MGMT-HA", Type: "nfs", Shared: true, SizeBytes: 1 << 30},
				{Name: "primary-" + p.letter, Type: "lvmoiscsi", Shared: true, SizeBytes: 2 << 40, Default: true},
				{Name: "Local storage", Type: "lvm", SizeBytes: 500 << 30},
				{Name: "XenServer Tools", Type: "iso", Shared: true, ContentType: "iso"},
			},
		}
		for i := 1; i <= 4; i++ {
			pool.Hosts = append(pool.Hosts, Host{
				Name:    fmt.Sprintf("xs-%s%d", p.letter, i),
				Address: fmt.Sprintf("%s%d", p.net, i),
			})
		}
		for i := range 5 {
			offering := "Medium Instance HA"
			if i >= 3 {
				offering = "Medium Instance"
			}
			pool.VMs = append(pool.VMs, VM{
				Name:        fmt.Sprintf("i-2-%d-VM", vmID),
				DisplayName: fmt.Sprintf("win2008r2-%02d", vmID-100),
				Kind:        KindGuest,
				OS:          "Windows Server 2008 R2 (64-bit)",
				MemoryMiB:   4096,
				VCPUs:       2,
				Offering:    offering,
				Account:     "admin",
			})
			if pi == 1 && i == 4 {
				// One guest belongs to a project, so listing needs projectid=-1.
				pool.VMs[len(pool.VMs)-1].Account = "ops"
				pool.VMs[len(pool.VMs)-1].Project = "windows-farm"
			}
			vmID++
		}
		for i := range 2 {
			pool.VMs = append(pool.VMs, VM{
				Name: fmt.Sprintf("r-%d-VM", 4+2*pi+i), Kind: KindRouter, MemoryMiB: 256, VCPUs: 1,
			})
		}
		if pi == 0 {
			pool.VMs = append(pool.VMs,
				VM{Name: "s-1-VM", Kind: KindSystem, MemoryMiB: 512, VCPUs: 1},
				VM{Name: "v-2-VM", Kind: KindSystem, MemoryMiB: 512, VCPUs: 1})
		} else {
			pool.VMs = append(pool.VMs, VM{Name: "s-3-VM", Kind: KindSystem, MemoryMiB: 512, VCPUs: 1})
		}
		s.Pools = append(s.Pools, pool)
	}
	if err := s.setDefaults(); err != nil {
		panic("scenario: default scenario is invalid: " + err.Error())
	}
	return s
}

// Load reads and parses a scenario file.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	return Parse(b)
}

// Parse decodes a scenario, fills in defaults and validates it. Unknown keys
// are errors. A document without pools is the default scenario with the
// document's time_scale, credentials and durations; it may not have a
// cloudstack section.
func Parse(b []byte) (*Scenario, error) {
	var s Scenario
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("decoding scenario: %w", err)
		}
	}
	if len(s.Pools) == 0 {
		// The default cloud's VMs name its offerings and storage: a
		// cloudstack section only makes sense with the pools it manages.
		var top map[string]yaml.Node
		if err := yaml.Unmarshal(b, &top); err == nil {
			if _, ok := top["cloudstack"]; ok {
				return nil, errors.New("scenario: a cloudstack section needs pools; a file without pools takes only time_scale, credentials and durations")
			}
		}
		d := Default()
		if s.TimeScale != 0 {
			d.TimeScale = s.TimeScale
		}
		d.Durations = s.Durations
		if s.Credentials != (Credentials{}) {
			d.Credentials = s.Credentials
		}
		s = *d
	}
	if err := s.setDefaults(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Scale returns d scaled by TimeScale.
func (s *Scenario) Scale(d time.Duration) time.Duration {
	ts := s.TimeScale
	if ts <= 0 {
		ts = 1
	}
	return time.Duration(float64(d) * ts)
}

// Pool returns the pool with the given name.
func (s *Scenario) Pool(name string) (*Pool, bool) {
	for i := range s.Pools {
		if s.Pools[i].Name == name {
			return &s.Pools[i], true
		}
	}
	return nil, false
}

// Clone returns a deep copy of s, so that a test can change one without
// affecting others.
func (s *Scenario) Clone() *Scenario {
	b, err := yaml.Marshal(s)
	if err != nil {
		panic("scenario: marshal: " + err.Error())
	}
	var c Scenario
	if err := yaml.Unmarshal(b, &c); err != nil {
		panic("scenario: unmarshal: " + err.Error())
	}
	return &c
}

// Is62 reports whether the pool runs XenServer 6.2.
func (p *Pool) Is62() bool { return strings.HasPrefix(p.ProductVersion, "6.") }

// Host returns the host with the given name.
func (p *Pool) Host(name string) (*Host, bool) {
	for i := range p.Hosts {
		if p.Hosts[i].Name == name {
			return &p.Hosts[i], true
		}
	}
	return nil, false
}

var defaultDurations = Durations{
	HATimeout:         Duration(60 * time.Second),
	HAMonitorInterval: Duration(20 * time.Second),
	MasterFuse:        Duration(10 * time.Second),
	XAPIStart:         Duration(15 * time.Second),
	Boot:              Duration(120 * time.Second),
	HostReenable:      Duration(30 * time.Second),
	RejoinDelay:       Duration(30 * time.Second),
	EnableHA:          Duration(90 * time.Second),
	DisableHA:         Duration(10 * time.Second),
	AuthFailureDelay:  Duration(5 * time.Second),
	HostAssumedDead:   Duration(600 * time.Second),
	ContactRetry:      Duration(10 * time.Second),
	MigrateVM:         Duration(5 * time.Second),
	HostShutdown:      Duration(30 * time.Second),
}

func (d *Durations) setDefaults() {
	for _, f := range []struct{ v, def *Duration }{
		{&d.HATimeout, &defaultDurations.HATimeout},
		{&d.HAMonitorInterval, &defaultDurations.HAMonitorInterval},
		{&d.MasterFuse, &defaultDurations.MasterFuse},
		{&d.XAPIStart, &defaultDurations.XAPIStart},
		{&d.Boot, &defaultDurations.Boot},
		{&d.HostReenable, &defaultDurations.HostReenable},
		{&d.RejoinDelay, &defaultDurations.RejoinDelay},
		{&d.EnableHA, &defaultDurations.EnableHA},
		{&d.DisableHA, &defaultDurations.DisableHA},
		{&d.AuthFailureDelay, &defaultDurations.AuthFailureDelay},
		{&d.HostAssumedDead, &defaultDurations.HostAssumedDead},
		{&d.ContactRetry, &defaultDurations.ContactRetry},
		{&d.MigrateVM, &defaultDurations.MigrateVM},
		{&d.HostShutdown, &defaultDurations.HostShutdown},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
}

func (s *Scenario) setDefaults() error {
	if s.TimeScale == 0 {
		s.TimeScale = 1
	}
	if s.TimeScale < 0 {
		return fmt.Errorf("scenario: time_scale %v is negative", s.TimeScale)
	}
	if s.Credentials.Username == "" {
		s.Credentials.Username = "root"
	}
	if s.Credentials.Password == "" {
		s.Credentials.Password = "xenroot"
	}
	s.Durations.setDefaults()
	if s.CloudStack.Zone == "" {
		s.CloudStack.Zone = "zone-1"
	}
	if s.CloudStack.Pod == "" {
		s.CloudStack.Pod = "pod-1"
	}
	if s.CloudStack.APIKey == "" {
		s.CloudStack.APIKey = "lab-api-key"
	}
	if s.CloudStack.SecretKey == "" {
		s.CloudStack.SecretKey = "lab-secret-key"
	}
	offerings := map[string]bool{}
	for _, o := range s.CloudStack.Offerings {
		offerings[o.Name] = true
	}
	hostNames := map[string]string{}
	addresses := map[string]string{}
	poolNames := map[string]bool{}
	for pi := range s.Pools {
		p := &s.Pools[pi]
		if p.Name == "" {
			return fmt.Errorf("scenario: pool %d has no name", pi)
		}
		if poolNames[p.Name] {
			return fmt.Errorf("scenario: pool name %q used twice", p.Name)
		}
		poolNames[p.Name] = true
		if p.UUID == "" {
			p.UUID = NameUUID("pool/" + p.Name)
		}
		if p.ProductVersion == "" {
			p.ProductVersion = Version62
		}
		if !strings.HasPrefix(p.ProductVersion, "6.2") && !strings.HasPrefix(p.ProductVersion, "7.") {
			return fmt.Errorf("scenario: pool %q: product_version %q: want 6.2.x or 7.x", p.Name, p.ProductVersion)
		}
		if len(p.Hosts) == 0 {
			return fmt.Errorf("scenario: pool %q has no hosts", p.Name)
		}
		for hi := range p.Hosts {
			h := &p.Hosts[hi]
			if h.Name == "" {
				return fmt.Errorf("scenario: pool %q: host %d has no name", p.Name, hi)
			}
			if other, dup := hostNames[h.Name]; dup {
				return fmt.Errorf("scenario: host name %q used in pools %q and %q", h.Name, other, p.Name)
			}
			hostNames[h.Name] = p.Name
			ip := net.ParseIP(h.Address)
			if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
				return fmt.Errorf("scenario: host %q: address %q is not an IPv4 loopback address", h.Name, h.Address)
			}
			if other, dup := addresses[h.Address]; dup {
				return fmt.Errorf("scenario: address %s used by hosts %q and %q", h.Address, other, h.Name)
			}
			addresses[h.Address] = h.Name
			if h.UUID == "" {
				h.UUID = NameUUID("host/" + h.Name)
			}
			if h.MemoryMiB == 0 {
				h.MemoryMiB = 256 << 10
			}
			if h.CPUs == 0 {
				h.CPUs = 32
			}
		}
		if p.Master == "" {
			p.Master = p.Hosts[0].Name
		}
		if _, ok := p.Host(p.Master); !ok {
			return fmt.Errorf("scenario: pool %q: master %q is not one of its hosts", p.Name, p.Master)
		}
		switch p.EmergencyError {
		case "":
			p.EmergencyError = ErrHeartbeatDaemonStartupFailed
		case ErrHeartbeatDaemonStartupFailed, ErrHostCannotAccessStatefile, ErrHostStillBooting:
		default:
			return fmt.Errorf("scenario: pool %q: emergency_error %q: want %s, %s or %s", p.Name, p.EmergencyError,
				ErrHeartbeatDaemonStartupFailed, ErrHostCannotAccessStatefile, ErrHostStillBooting)
		}
		switch p.SlaveLogin {
		case "":
			p.SlaveLogin = SlaveLoginModern
		case SlaveLoginModern, SlaveLoginLegacy:
		default:
			return fmt.Errorf("scenario: pool %q: slave_login %q: want modern or legacy", p.Name, p.SlaveLogin)
		}
		if p.SlaveLogin == SlaveLoginLegacy && !p.Is62() {
			// xen-api 1.14-lcm's xapi_session.ml raises HOST_IS_SLAVE before
			// authenticating: 7.x has no legacy slave login.
			return fmt.Errorf("scenario: pool %q: slave_login legacy is 6.2 release code; %s answers as modern", p.Name, p.ProductVersion)
		}
		switch p.ReturningHost {
		case "":
			p.ReturningHost = ReturningHostStuck
		case ReturningHostStuck, ReturningHostSelfRejoin:
		default:
			return fmt.Errorf("scenario: pool %q: returning_host %q: want %s or %s", p.Name, p.ReturningHost,
				ReturningHostStuck, ReturningHostSelfRejoin)
		}
		switch p.Edition {
		case "":
			p.Edition = EditionPerSocket
		case EditionPerSocket, EditionFree:
		default:
			return fmt.Errorf("scenario: pool %q: edition %q: want %s or %s", p.Name, p.Edition, EditionPerSocket, EditionFree)
		}
		if p.HeartbeatSR == "" {
			p.HeartbeatSR = "MGMT-HA"
		}
		srNames := map[string]bool{}
		for si := range p.SRs {
			sr := &p.SRs[si]
			if sr.Name == "" {
				return fmt.Errorf("scenario: pool %q: SR %d has no name", p.Name, si)
			}
			if srNames[sr.Name] {
				return fmt.Errorf("scenario: pool %q: SR name %q used twice", p.Name, sr.Name)
			}
			srNames[sr.Name] = true
			if sr.Type == "" {
				sr.Type = "nfs"
			}
			if sr.ContentType == "" {
				sr.ContentType = "user"
			}
			if sr.SizeBytes == 0 && sr.Type != "iso" {
				sr.SizeBytes = 1 << 30
			}
			for _, h := range sr.UnpluggedOn {
				if _, ok := p.Host(h); !ok {
					return fmt.Errorf("scenario: pool %q: SR %q: unplugged_on names unknown host %q", p.Name, sr.Name, h)
				}
			}
		}
		if p.HAEnabled && !srNames[p.HeartbeatSR] {
			return fmt.Errorf("scenario: pool %q: ha_enabled needs the heartbeat SR %q", p.Name, p.HeartbeatSR)
		}
		vmNames := map[string]bool{}
		for vi := range p.VMs {
			vm := &p.VMs[vi]
			if vm.Name == "" {
				return fmt.Errorf("scenario: pool %q: VM %d has no name", p.Name, vi)
			}
			if vmNames[vm.Name] {
				return fmt.Errorf("scenario: pool %q: VM name %q used twice", p.Name, vm.Name)
			}
			vmNames[vm.Name] = true
			if vm.Kind == "" {
				vm.Kind = KindDefault
			}
			switch vm.Kind {
			case KindGuest, KindRouter, KindSystem:
			default:
				return fmt.Errorf("scenario: VM %q: kind %q: want guest, router or system", vm.Name, vm.Kind)
			}
			if vm.Host == "" {
				vm.Host = p.Master
			}
			if _, ok := p.Host(vm.Host); !ok {
				return fmt.Errorf("scenario: VM %q: host %q is not in pool %q", vm.Name, vm.Host, p.Name)
			}
			if vm.PowerState == "" {
				vm.PowerState = "Running"
			}
			switch vm.PowerState {
			case "Running", "Halted", "Paused", "Suspended":
			default:
				return fmt.Errorf("scenario: VM %q: power_state %q", vm.Name, vm.PowerState)
			}
			switch vm.HARestartPriority {
			case "", "restart", "best-effort":
			default:
				return fmt.Errorf("scenario: VM %q: ha_restart_priority %q: want \"\", restart or best-effort", vm.Name, vm.HARestartPriority)
			}
			if vm.MemoryMiB == 0 {
				vm.MemoryMiB = 1024
			}
			if vm.VCPUs == 0 {
				vm.VCPUs = 1
			}
			if vm.DisplayName == "" {
				vm.DisplayName = vm.Name
			}
			if vm.Kind == KindGuest && vm.Offering != "" && !offerings[vm.Offering] {
				return fmt.Errorf("scenario: VM %q: offering %q is not defined under cloudstack.offerings", vm.Name, vm.Offering)
			}
		}
	}
	return nil
}
