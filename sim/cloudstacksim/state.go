package cloudstacksim

// State is the simulated CloudStack's view, as the lab's control API shows
// it.
type State struct {
	// AlertWait is the alert.wait setting, "" when blank.
	AlertWait string `json:"alert_wait"`
	// Hosts are the hypervisor (Routing) hosts.
	Hosts []HostState `json:"hosts"`
	// VMs are all VMs, user and system.
	VMs []VMState `json:"vms"`
}

// HostState is one host's CloudStack state.
type HostState struct {
	Name          string `json:"name"`
	Cluster       string `json:"cluster"`
	State         string `json:"state"`
	ResourceState string `json:"resourcestate"`
}

// VMState is one VM's CloudStack state.
type VMState struct {
	// Name is the instance name (the hypervisor's name_label).
	Name     string `json:"name"`
	State    string `json:"state"`
	Host     string `json:"host"`
	HAEnable bool   `json:"haenable"`
	// MigrationFault is set while SetMigrationFault keeps the VM from
	// moving.
	MigrationFault bool `json:"migration_fault,omitempty"`
}

// State returns a copy of the current state.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{AlertWait: s.alertWaitString(), Hosts: []HostState{}, VMs: []VMState{}}
	for _, h := range s.hosts {
		if h.typ != hostRouting {
			continue
		}
		st.Hosts = append(st.Hosts, HostState{Name: h.name, Cluster: h.cluster.name, State: h.state, ResourceState: h.rs})
	}
	for _, v := range s.vms {
		vs := VMState{Name: v.instanceName, State: v.state, HAEnable: v.haEnabled(), MigrationFault: v.noMigrate}
		if v.host != nil && v.active() {
			vs.Host = v.host.name
		}
		st.VMs = append(st.VMs, vs)
	}
	return st
}
