package cloudstacksim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

const alertWaitName = "alert.wait"

// setting is one global configuration entry.
type setting struct {
	name, category, component, description string
	def                                    string // defaultvalue; "" when null
	value                                  *string
	dynamic                                bool
	kind                                   string // "Number", "Decimal", "Boolean" or "String"
}

type configurationResponse struct {
	Category     string `json:"category"`
	Name         string `json:"name"`
	Value        string `json:"value,omitempty"`
	DefaultValue string `json:"defaultvalue,omitempty"`
	Description  string `json:"description"`
	IsDynamic    bool   `json:"isdynamic"`
	Component    string `json:"component"`
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// initialConfigs are the global settings the simulated cloud shows. Only
// alert.wait drives the model; the others report the model's timers.
func (s *Server) initialConfigs() []*setting {
	// A cloud upgraded from CloudStack 4.2 or earlier keeps the old
	// alert.wait row: category Alert and no value.
	alertCategory := "Advanced"
	if s.alertWait == nil {
		alertCategory = "Alert"
	}
	cs := []*setting{
		{name: alertWaitName, category: alertCategory, component: "AgentManager", def: "1800", dynamic: true, kind: "Number",
			description: "Seconds to wait before alerting on a disconnected agent"},
		{name: "ping.interval", category: "Advanced", component: "AgentManager", def: "60", kind: "Number",
			value: new(seconds(s.opts.PingInterval)), description: "Interval to send application level pings to make sure the connection is still working"},
		{name: "ping.timeout", category: "Advanced", component: "AgentManager", def: "2.5", dynamic: true, kind: "Decimal",
			value:       new(strconv.FormatFloat(float64(s.opts.PingTimeout)/float64(s.opts.PingInterval), 'f', -1, 64)),
			description: "Multiplier to ping.interval before announcing an agent has timed out"},
		{name: "xenserver.heartbeat.interval", category: "Advanced", component: "ManagementServer", def: "60", kind: "Number",
			value: new(seconds(s.opts.HeartbeatTimeout / 2)), description: "heartbeat to use when implementing XenServer Self Fencing"},
		{name: "xenserver.heartbeat.timeout", category: "Advanced", component: "ManagementServer", def: "120", kind: "Number",
			value: new(seconds(s.opts.HeartbeatTimeout)), description: "heartbeat timeout to use when implementing XenServer Self Fencing"},
		{name: "ha.tag", category: "Advanced", component: "ManagementServer", kind: "String",
			description: "HA tag defining that the host marked with this tag can be used for HA purposes only"},
		{name: "force.ha", category: "Advanced", component: "HighAvailabilityManager", def: "false", dynamic: true, kind: "Boolean",
			value: new("false"), description: "Force High-Availability to happen even if the VM says no."},
		{name: "alert.purge.delay", category: "Advanced", component: "AlertManager", def: "0", kind: "Number",
			value: new("0"), description: "Alerts older than specified number days will be purged. Set this value to 0 to never purge alerts"},
		{name: "security.hash.key", category: "Hidden", component: "ManagementServer", kind: "String",
			value: new(randomUUID()), description: "for generic key-ed hash"},
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	return cs
}

func (s *Server) settingValue(c *setting) *string {
	if c.name == alertWaitName {
		if s.alertWait == nil {
			return nil
		}
		return new(strconv.Itoa(*s.alertWait))
	}
	return c.value
}

func (s *Server) configResponse(c *setting) configurationResponse {
	r := configurationResponse{
		Category: c.category, Name: c.name, DefaultValue: c.def, Description: c.description,
		IsDynamic: c.dynamic, Component: c.component,
	}
	if v := s.settingValue(c); v != nil {
		r.Value = *v
	}
	return r
}

func (s *Server) setting(name string) *setting {
	for _, c := range s.configs {
		if c.name == name && c.category != "Hidden" {
			return c
		}
	}
	return nil
}

func (s *Server) listConfigurations(r *request) (any, *apiError) {
	pg, err := r.paging()
	if err != nil {
		return nil, err
	}
	// Scoped queries list the settings of that scope; the simulated cloud
	// only has global values.
	scoped := false
	for _, p := range []struct{ name, kind string }{{"zoneid", "zone"}, {"clusterid", "cluster"}, {"storageid", "storagepool"}, {"accountid", "account"}, {"domainid", "domain"}} {
		if id, ok := r.get(p.name); ok {
			if !s.knownID(p.kind, id) {
				return nil, invalidValue(r.cmd, p.name, id)
			}
			scoped = true
		}
	}
	name, _ := r.get("name")
	category, _ := r.get("category")
	keyword, _ := r.get("keyword")
	var out []configurationResponse
	for _, c := range s.configs {
		if scoped || c.category == "Hidden" {
			continue
		}
		if !like(c.name, name) || !like(c.name, keyword) || (category != "" && !strings.EqualFold(category, c.category)) {
			continue
		}
		out = append(out, s.configResponse(c))
	}
	return page(pg, "configuration", out), nil
}

func (s *Server) updateConfiguration(r *request) (any, *apiError) {
	name, ok := r.get("name")
	if !ok {
		return nil, missingParam(r.cmd, "name")
	}
	c := s.setting(name)
	if c == nil {
		return nil, paramError(fmt.Sprintf("Config parameter with name %s doesn't exist", name))
	}
	raw, _ := r.get("value")
	var value *string
	if raw != "" && !strings.EqualFold(raw, "null") {
		switch c.kind {
		case "Number":
			if _, err := strconv.Atoi(raw); err != nil {
				return nil, paramError("There was an error trying to parse the integer value for configuration parameter: " + name)
			}
		case "Decimal":
			if _, err := strconv.ParseFloat(raw, 64); err != nil {
				return nil, paramError("There was an error trying to parse the float value for configuration parameter: " + name)
			}
		case "Boolean":
			if raw != "true" && raw != "false" {
				return nil, paramError("Please enter either 'true' or 'false'.")
			}
		}
		value = new(raw)
	}
	if c.name == alertWaitName {
		if value == nil {
			s.alertWait = nil
		} else {
			v, _ := strconv.Atoi(*value)
			s.alertWait = &v
		}
		s.logger.Info("alert.wait changed", "value", s.alertWaitString())
	} else {
		c.value = value
	}
	return map[string]any{"configuration": s.configResponse(c)}, nil
}
