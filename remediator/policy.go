package remediator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"xsha/config"
)

// Policy defaults.
const (
	defaultCooldown           = 10 * time.Minute
	defaultMaxAttemptsPerHour = 3
	defaultBackoff            = time.Minute
	defaultStepTimeout        = 15 * time.Minute
	defaultPollInterval       = 5 * time.Second
)

// Policy says which alerts may trigger which actions on which pools, and
// how often. The zero policy enables nothing; a loaded policy is in dry-run
// mode unless the file turns it off.
type Policy struct {
	// DryRun makes every action evaluate, read live state and journal what it
	// would do, without writing anything. On unless the file says false.
	DryRun bool `yaml:"dry_run"`
	// Actions maps an action name to the alerts that trigger it and the
	// pools it may touch. Actions left out are disabled.
	Actions map[ActionName]ActionPolicy `yaml:"actions"`
	// Cooldown is the minimum time between the end of a successful action
	// on a target (pool or host) and the start of the next one.
	Cooldown model.Duration `yaml:"cooldown"`
	// MaxAttemptsPerHour bounds the actions that write to one pool within
	// any hour; once spent, actions on the pool are skipped until attempts
	// age out.
	MaxAttemptsPerHour int `yaml:"max_attempts_per_hour"`
	// Backoff is the wait after a failed action on a target before the
	// next one, doubled for each further consecutive failure (capped at one
	// hour).
	Backoff model.Duration `yaml:"backoff"`
	// HATimeout, when set, is passed to pool.enable_ha as the "timeout"
	// configuration key (the xHA base timeout T; 180s on CloudStack pools).
	HATimeout model.Duration `yaml:"ha_timeout"`
	// StepTimeout bounds how long a step waits for its outcome (HA enabled,
	// a host back as a slave); pool.enable_ha takes minutes on real pools.
	StepTimeout model.Duration `yaml:"step_timeout"`
	// PollInterval is how often live state is re-read while waiting.
	PollInterval model.Duration `yaml:"poll_interval"`
	// Holds pause remediation from the file: every pool, or listed pools.
	Holds HoldsPolicy `yaml:"holds"`
	// MaxRunningPools is the storm guard's global limit: at most this many
	// pools run an action at once; actions on other pools wait, pending, in
	// the order they came. 0 turns the limit off.
	MaxRunningPools int `yaml:"max_running_pools"`
	// Breaker is the storm guard's circuit breaker (stormguard.go).
	Breaker BreakerPolicy `yaml:"breaker"`
}

// ActionPolicy enables one action.
type ActionPolicy struct {
	// Alerts are the alert names (the alertname label) that trigger the action.
	Alerts []string `yaml:"alerts"`
	// Pools are the pools (the pool label, the configured pool name) it may touch.
	Pools []string `yaml:"pools"`
	// DryRun, when set, overrides the policy-wide dry_run for this action.
	DryRun *bool `yaml:"dry_run"`
}

// HoldsPolicy pauses remediation from the policy file.
type HoldsPolicy struct {
	// All holds every pool.
	All bool `yaml:"all"`
	// Pools are held by name.
	Pools []string `yaml:"pools"`
	// Reason is shown with the hold.
	Reason string `yaml:"reason"`
}

// defaultPolicy returns the policy of an empty file: nothing enabled, dry-run on.
func defaultPolicy() *Policy {
	return &Policy{
		DryRun:             true,
		Cooldown:           model.Duration(defaultCooldown),
		MaxAttemptsPerHour: defaultMaxAttemptsPerHour,
		Backoff:            model.Duration(defaultBackoff),
		StepTimeout:        model.Duration(defaultStepTimeout),
		PollInterval:       model.Duration(defaultPollInterval),
		MaxRunningPools:    defaultMaxRunningPools,
		Breaker: BreakerPolicy{MaxPools: defaultBreakerMaxPools, Window: model.Duration(defaultBreakerWindow),
			AutoClose: true},
	}
}

// LoadPolicy reads and validates the policy file at path.
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	return parsePolicy(b)
}

// parsePolicy decodes and validates a policy; unknown keys are errors.
func parsePolicy(b []byte) (*Policy, error) {
	p := defaultPolicy()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decoding policy: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return p, nil
}

func (p *Policy) validate() error {
	byAlert := map[string]ActionName{}
	for name, a := range p.Actions {
		if _, ok := lookupAction(name); !ok {
			return fmt.Errorf("actions: unknown action %q (known: %s)", name, joined(actionNames()))
		}
		switch {
		case isWorkflow(name) && len(a.Alerts) > 0:
			return fmt.Errorf("actions: %s: a workflow is started by an operator, not by alerts", name)
		case !isWorkflow(name) && len(a.Alerts) == 0:
			return fmt.Errorf("actions: %s: alerts: at least one alert name is required", name)
		}
		if len(a.Pools) == 0 {
			return fmt.Errorf("actions: %s: pools: at least one pool is required", name)
		}
		for _, al := range a.Alerts {
			if al == "" {
				return fmt.Errorf("actions: %s: empty alert name", name)
			}
			if other, ok := byAlert[al]; ok && other != name {
				return fmt.Errorf("actions: alert %q triggers both %s and %s", al, other, name)
			}
			byAlert[al] = name
		}
		if slices.Contains(a.Pools, "") {
			return fmt.Errorf("actions: %s: empty pool name", name)
		}
	}
	if p.Cooldown < 0 || p.Backoff < 0 || p.HATimeout < 0 {
		return errors.New("cooldown, backoff and ha_timeout must not be negative")
	}
	if p.MaxAttemptsPerHour < 1 {
		return fmt.Errorf("max_attempts_per_hour %d: must be at least 1 (disable actions instead)", p.MaxAttemptsPerHour)
	}
	if p.HATimeout != 0 && time.Duration(p.HATimeout) < 10*time.Second {
		return fmt.Errorf("ha_timeout %s: xapi needs at least 10s", p.HATimeout)
	}
	if p.StepTimeout <= 0 || p.PollInterval <= 0 {
		return errors.New("step_timeout and poll_interval must be positive")
	}
	if p.MaxRunningPools < 0 {
		return fmt.Errorf("max_running_pools %d must not be negative (0 turns the limit off)", p.MaxRunningPools)
	}
	return p.Breaker.validate()
}

// CheckPools returns an error naming any pool the policy refers to that the
// configuration does not define.
func (p *Policy) CheckPools(cfg *config.Config) error {
	var unknown []string
	check := func(pool string) {
		if _, ok := cfg.Pool(pool); !ok && !slices.Contains(unknown, pool) {
			unknown = append(unknown, pool)
		}
	}
	for _, a := range p.Actions {
		for _, pool := range a.Pools {
			check(pool)
		}
	}
	for _, pool := range p.Holds.Pools {
		check(pool)
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("policy: pools not in the configuration: %v", unknown)
	}
	return nil
}

// actionFor returns the action the alert name triggers, if any.
func (p *Policy) actionFor(alertname string) (ActionName, bool) {
	for name, a := range p.Actions {
		if slices.Contains(a.Alerts, alertname) {
			return name, true
		}
	}
	return "", false
}

// allows reports whether the action may touch the pool.
func (p *Policy) allows(action ActionName, pool string) bool {
	a, ok := p.Actions[action]
	return ok && slices.Contains(a.Pools, pool)
}

// dryRunFor reports whether the action runs in dry-run mode.
func (p *Policy) dryRunFor(action ActionName) bool {
	if a, ok := p.Actions[action]; ok && a.DryRun != nil {
		return *a.DryRun
	}
	return p.DryRun
}

// anyLive reports whether any enabled action is not in dry-run mode.
func (p *Policy) anyLive() bool {
	for name := range p.Actions {
		if !p.dryRunFor(name) {
			return true
		}
	}
	return false
}

// haConfiguration is the configuration map passed to pool.enable_ha.
func (p *Policy) haConfiguration() map[string]string {
	if p.HATimeout == 0 {
		return map[string]string{}
	}
	return map[string]string{"timeout": strconv.FormatInt(int64(time.Duration(p.HATimeout)/time.Second), 10)}
}

// heldByFile returns the reason the policy file holds the pool, if it does.
func (p *Policy) heldByFile(pool string) (string, bool) {
	if p.Holds.All || slices.Contains(p.Holds.Pools, pool) {
		r := p.Holds.Reason
		if r == "" {
			r = "held in the policy file"
		}
		return r, true
	}
	return "", false
}
