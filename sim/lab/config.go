package lab

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// The xsha configuration file for the lab, written without importing the
// product's config package (the lab must not depend on the product).
type xshaConfig struct {
	Pools      []xshaPool      `yaml:"pools"`
	CloudStack *xshaCloudStack `yaml:"cloudstack,omitempty"`
}

type xshaPool struct {
	Name              string   `yaml:"name"`
	Hosts             []string `yaml:"hosts"`
	Port              int      `yaml:"port"`
	Scheme            string   `yaml:"scheme"`
	Username          string   `yaml:"username"`
	PasswordFile      string   `yaml:"password_file"`
	TLS               *xshaTLS `yaml:"tls,omitempty"`
	HeartbeatSR       string   `yaml:"heartbeat_sr"`
	RequiredHotfixes  []string `yaml:"required_hotfixes,omitempty"`
	CloudStackCluster string   `yaml:"cloudstack_cluster"`
}

type xshaTLS struct {
	CAFile string `yaml:"ca_file"`
}

type xshaCloudStack struct {
	URL           string `yaml:"url"`
	APIKeyFile    string `yaml:"api_key_file"`
	SecretKeyFile string `yaml:"secret_key_file"`
}

// xshaConfig returns a ready xsha configuration (YAML) for this lab.
func (l *Lab) xshaConfig() []byte {
	var c xshaConfig
	for _, p := range l.sc.Pools {
		xp := xshaPool{
			Name:              p.Name,
			Port:              l.port,
			Scheme:            "https",
			Username:          l.sc.Credentials.Username,
			PasswordFile:      l.PasswordFile(),
			HeartbeatSR:       p.HeartbeatSR,
			CloudStackCluster: p.Name,
		}
		for _, h := range p.Hosts {
			xp.Hosts = append(xp.Hosts, h.Address)
		}
		if l.http {
			xp.Scheme = "http"
		} else {
			xp.TLS = &xshaTLS{CAFile: l.CAFile()}
		}
		if strings.HasPrefix(p.ProductVersion, "6.2") {
			xp.RequiredHotfixes = []string{"XS62ESP1004"}
		}
		c.Pools = append(c.Pools, xp)
	}
	if l.csURL != "" {
		apiKey, secretKey := l.CloudStackKeyFiles()
		c.CloudStack = &xshaCloudStack{URL: l.csURL, APIKeyFile: apiKey, SecretKeyFile: secretKey}
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		panic("lab: marshalling the xsha configuration: " + err.Error())
	}
	return append([]byte("# xsha configuration for the lab, written by xsha-sim.\n"), b...)
}
