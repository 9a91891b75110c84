package cloudstacksim

import (
	"strings"

	"xsha/sim/scenario"
)

// FromScenario returns the Options for the CloudStack deployment a lab
// scenario describes: one cluster per pool (named like the pool), a host per
// XenServer host, the scenario's offerings, its guests, routers and system
// VMs, and the pools' SRs listed under cloudstack.primary_storage as primary
// storage pools. Durations not in the scenario keep CloudStack's defaults,
// compressed by the scenario's time scale.
func FromScenario(sc *scenario.Scenario) Options {
	cs := sc.CloudStack
	o := Options{
		APIKey: cs.APIKey, SecretKey: cs.SecretKey,
		Zone: cs.Zone, Pod: cs.Pod,
	}
	if cs.AlertWait != nil {
		v := *cs.AlertWait
		o.AlertWait = &v
	}
	if sc.TimeScale > 0 {
		o.Speedup = 1 / sc.TimeScale
	}
	for _, off := range cs.Offerings {
		o.Offerings = append(o.Offerings, Offering{Name: off.Name, OfferHA: off.OfferHA, CPUs: off.CPUs, MemoryMB: int(off.MemoryMiB)})
	}
	primary := map[string]bool{}
	for _, name := range cs.PrimaryStorage {
		primary[name] = true
	}
	for _, p := range sc.Pools {
		for _, sr := range p.SRs {
			if !primary[sr.Name] || !sr.Shared {
				continue
			}
			o.StoragePools = append(o.StoragePools, StoragePool{
				Name: sr.Name, Cluster: p.Name, Type: storagePoolType(sr.Type),
				Address: "127.0.0.1", Path: "/" + sr.Name, SizeBytes: sr.SizeBytes,
			})
		}
		for _, v := range p.VMs {
			vm := VM{Name: v.DisplayName, InstanceName: v.Name, Account: v.Account}
			if v.PowerState == "Running" || v.PowerState == "" {
				vm.Host = v.Host
				if vm.Host == "" {
					vm.Host = p.Master
				}
			}
			switch v.Kind {
			case scenario.KindRouter:
				vm.Name, vm.Type = v.Name, VMTypeDomainRouter
			case scenario.KindSystem:
				vm.Name, vm.Type = v.Name, VMTypeSecondaryStorageVM
				if strings.HasPrefix(v.Name, "v-") {
					vm.Type = VMTypeConsoleProxy
				}
			default:
				vm.Type, vm.Offering = VMTypeUser, v.Offering
			}
			if vm.Name == "" {
				vm.Name = v.Name
			}
			o.VMs = append(o.VMs, vm)
		}
	}
	return o
}

// storagePoolType maps a XenServer SR type to CloudStack's storage pool
// type.
func storagePoolType(srType string) string {
	switch srType {
	case "nfs":
		return "NetworkFilesystem"
	case "lvmoiscsi":
		return "IscsiLUN"
	default:
		return "PreSetup"
	}
}
