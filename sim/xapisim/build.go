package xapisim

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"xsha/sim/scenario"
)

// Well-known hotfix uuids (they are fixed per hotfix).
var hotfixUUIDs = map[string]string{
	"XS62ESP1":    "0850b186-4d47-11e3-a720-001b2151a503",
	"XS62ESP1004": "996dd2e7-ad95-49cc-a0be-2c9adc4dfb0b",
}

func refFor(kind, name string) string { return "OpaqueRef:" + scenario.NameUUID("ref/"+kind+"/"+name) }

// apiVersion returns the API version a host reports.
func apiVersion(p *scenario.Pool) (int64, int64) {
	if p.Is62() {
		minor := int64(0)
		for _, h := range p.Hotfixes {
			switch h {
			case "XS62ESP1004":
				minor = max(minor, 2)
			case "XS62ESP1":
				minor = max(minor, 1)
			}
		}
		return 2, minor
	}
	var major, minor int
	fmt.Sscanf(p.ProductVersion, "%d.%d", &major, &minor) //nolint:errcheck // validated by the scenario
	// 7.0 dundee is API 2.5, 7.1 ely 2.6, 7.2 falcon 2.7, 7.3 inverness 2.8, ...
	return 2, int64(5 + minor)
}

// smCapable reports whether an SR type's driver supports
// VDI_GENERATE_CONFIG, which a heartbeat SR needs.
func smCapable(typ string) bool {
	switch typ {
	case "nfs", "lvmoiscsi", "lvmohba", "lvmofcoe", "lvm", "ext", "cslg", "netapp", "equal", "rawhba", "smb":
		return true
	}
	return false
}

// build fills the database from the scenario.
// haRestricted reports whether the pool's license edition restricts HA
// (Pool_features.is_enabled Features.HA is false).
func (p *Pool) haRestricted() bool { return p.cfg.Edition == scenario.EditionFree }

func (p *Pool) build() {
	restrictHA := strconv.FormatBool(p.haRestricted())
	cfg := p.cfg
	d := p.db
	now := p.started
	is62 := cfg.Is62()
	major, minor := apiVersion(cfg)
	poolRef := refFor("pool", cfg.Name)
	p.poolRef = poolRef

	// Hosts first, so other rows can point at them.
	for _, h := range p.hosts {
		h.ref = refFor("host", h.name)
		h.metricsRef = refFor("host_metrics", h.name)
		h.dom0Ref = refFor("VM", "dom0/"+h.name)
	}
	// Storage.
	var defaultSR string
	type srRow struct {
		sr    scenario.SR
		ref   string
		host  *hostState // nil for shared
		pbds  []string
		vdis  []string
		alloc int64
	}
	var srs []*srRow
	for _, s := range cfg.SRs {
		if s.Shared {
			srs = append(srs, &srRow{sr: s, ref: refFor("SR", cfg.Name+"/"+s.Name)})
			continue
		}
		for _, h := range p.hosts {
			srs = append(srs, &srRow{sr: s, ref: refFor("SR", cfg.Name+"/"+s.Name+"/"+h.name), host: h})
		}
	}
	srByName := map[string]*srRow{}
	localSR := map[*hostState]string{}
	for _, s := range srs {
		if s.host == nil {
			srByName[s.sr.Name] = s
			if s.sr.Default && defaultSR == "" {
				defaultSR = s.ref
			}
		} else if _, ok := localSR[s.host]; !ok && s.sr.ContentType == "user" {
			localSR[s.host] = s.ref
		}
	}
	if defaultSR == "" {
		defaultSR = NullRef
	}
	if hb, ok := srByName[cfg.HeartbeatSR]; ok {
		p.heartbeatSR = hb.ref
	}

	// VMs and their disks.
	resident := map[*hostState][]string{}
	for _, h := range p.hosts {
		resident[h] = append(resident[h], h.dom0Ref)
	}
	primary := ""
	for _, s := range srs {
		if s.host == nil && s.sr.ContentType == "user" && s.sr.Name != cfg.HeartbeatSR {
			primary = s.ref
			if s.sr.Default {
				break
			}
		}
	}
	var srRowByRef = map[string]*srRow{}
	for _, s := range srs {
		srRowByRef[s.ref] = s
	}
	for _, vm := range cfg.VMs {
		h := p.byName[vm.Host]
		ref := refFor("VM", cfg.Name+"/"+vm.Name)
		running := vm.PowerState == "Running" || vm.PowerState == "Paused"
		residentOn := NullRef
		if running {
			residentOn = h.ref
			resident[h] = append(resident[h], ref)
		}
		memory := vm.MemoryMiB << 20
		f := vmFields(vm.Name, scenario.NameUUID("vm/"+cfg.Name+"/"+vm.Name), vm.PowerState, residentOn, memory, int64(vm.VCPUs))
		f["ha_restart_priority"] = vm.HARestartPriority
		f["ha_always_run"] = vm.HARestartPriority != "" && running
		f["name_description"] = vm.DisplayName
		if running {
			f["domid"] = int64(len(resident[h]))
		}
		if vm.Kind == scenario.KindGuest {
			f["HVM_boot_policy"] = "BIOS order"
			f["HVM_boot_params"] = map[string]string{"order": "dc"}
			f["platform"] = map[string]string{"acpi": "1", "apic": "true", "nx": "true", "pae": "true", "viridian": "true", "timeoffset": "0"}
			f["other_config"] = map[string]string{"vm_uuid": f["uuid"].(string), "os": vm.OS}
		} else {
			f["PV_bootloader"] = "pygrub"
			f["PV_args"] = "console=hvc0"
			f["platform"] = map[string]string{"acpi": "1", "apic": "true", "nx": "false", "pae": "true", "viridian": "false"}
			f["other_config"] = map[string]string{"vm_uuid": f["uuid"].(string)}
		}
		if primary != "" {
			vdiRef := refFor("VDI", cfg.Name+"/"+vm.Name)
			size := int64(20 << 30)
			if vm.Kind != scenario.KindGuest {
				size = 2 << 30
			}
			d.add("VDI", vdiRef, vdiFields("ROOT-"+vm.Name, scenario.NameUUID("vdi/"+cfg.Name+"/"+vm.Name), primary, size, "user"))
			row := srRowByRef[primary]
			row.vdis = append(row.vdis, vdiRef)
			row.alloc += size
		}
		d.add("VM", ref, f)
	}
	for _, h := range p.hosts {
		f := vmFields("Control domain on host: "+h.name, scenario.NameUUID("dom0/"+h.name), "Running", h.ref, 752<<20, 4)
		f["is_control_domain"] = true
		f["domid"] = int64(0)
		f["name_description"] = "The domain which manages physical devices and manages other domains"
		f["PV_args"] = ""
		f["other_config"] = map[string]string{"storage_driver_domain": h.dom0Ref, "is_system_domain": "true"}
		d.add("VM", h.dom0Ref, f)
	}

	// ISO VDIs in ISO SRs.
	for _, s := range srs {
		if s.sr.ContentType == "iso" {
			ref := refFor("VDI", cfg.Name+"/"+s.sr.Name+"/xs-tools.iso")
			f := vdiFields("xs-tools.iso", scenario.NameUUID("vdi/"+s.ref+"/tools"), s.ref, 60<<20, "user")
			f["read_only"] = true
			f["sharable"] = true
			f["location"] = "xs-tools.iso"
			f["is_tools_iso"] = true
			d.add("VDI", ref, f)
			s.vdis = append(s.vdis, ref)
		}
	}

	// SRs and PBDs.
	for _, s := range srs {
		hosts := p.hosts
		if s.host != nil {
			hosts = []*hostState{s.host}
		}
		for _, h := range hosts {
			pbdRef := refFor("PBD", s.ref+"/"+h.name)
			attached := true
			for _, u := range s.sr.UnpluggedOn {
				if u == h.name {
					attached = false
				}
			}
			d.add("PBD", pbdRef, map[string]any{
				"uuid":               scenario.NameUUID("pbd/" + s.ref + "/" + h.name),
				"host":               h.ref,
				"SR":                 s.ref,
				"device_config":      deviceConfig(s.sr, h.name),
				"currently_attached": attached,
				"other_config":       map[string]string{},
			})
			s.pbds = append(s.pbds, pbdRef)
			h.pbds = append(h.pbds, pbdRef)
		}
		name := s.sr.Name
		desc := ""
		switch {
		case s.sr.Name == cfg.HeartbeatSR:
			desc = "Heartbeat SR for pool HA"
		case s.sr.Type == "nfs":
			desc = "NFS SR [192.0.2.10:/export/" + strings.ToLower(s.sr.Name) + "]"
		case s.sr.Type == "lvmoiscsi":
			desc = "iSCSI SR [192.0.2.20 (iqn.2010-01.com.solidfire:" + strings.ToLower(s.sr.Name) + ")]"
		}
		ops := []string{"unplug", "plug", "pbd_create", "update", "pbd_destroy", "vdi_resize", "vdi_clone", "scan", "vdi_snapshot", "vdi_create", "vdi_destroy", "forget", "destroy"}
		if s.sr.ContentType == "iso" {
			ops = []string{"forget", "vdi_introduce", "scan", "pbd_create", "pbd_destroy", "plug", "update", "destroy", "unplug"}
		}
		f := map[string]any{
			"uuid":                 scenario.NameUUID("sr/" + s.ref),
			"name_label":           name,
			"name_description":     desc,
			"allowed_operations":   ops,
			"current_operations":   map[string]string{},
			"VDIs":                 s.vdis,
			"PBDs":                 s.pbds,
			"virtual_allocation":   s.alloc,
			"physical_utilisation": s.alloc / 2,
			"physical_size":        s.sr.SizeBytes,
			"type":                 s.sr.Type,
			"content_type":         s.sr.ContentType,
			"shared":               s.sr.Shared,
			"other_config":         map[string]string{},
			"tags":                 []string{},
			"sm_config":            map[string]string{},
			"blobs":                map[string]string{},
			"local_cache_enabled":  false,
			"introduced_by":        NullRef,
			"clustered":            false,
			"is_tools_sr":          s.sr.ContentType == "iso" && strings.Contains(s.sr.Name, "Tools"),
		}
		if s.sr.Type == "lvmoiscsi" || s.sr.Type == "lvm" || s.sr.Type == "lvmohba" {
			f["sm_config"] = map[string]string{"allocation": "thick", "use_vhd": "true"}
		}
		if s.sr.Type == "nfs" {
			f["other_config"] = map[string]string{"auto-scan": "false"}
		}
		d.add("SR", s.ref, f)
	}

	// Patches (6.2) or updates (7.x).
	patchesOf := map[*hostState][]string{}
	var updateRefs []string
	for _, hf := range cfg.Hotfixes {
		uuid, ok := hotfixUUIDs[hf]
		if !ok {
			uuid = scenario.NameUUID("hotfix/" + hf)
		}
		patchRef := refFor("pool_patch", cfg.Name+"/"+hf)
		updateRef := NullRef
		patchUUID := uuid
		if !is62 {
			updateRef = refFor("pool_update", cfg.Name+"/"+hf)
			updateRefs = append(updateRefs, updateRef)
			hosts := make([]string, len(p.hosts))
			for i, h := range p.hosts {
				hosts[i] = h.ref
			}
			d.add("pool_update", updateRef, map[string]any{
				"uuid":                 uuid,
				"name_label":           hf,
				"name_description":     "Hotfix " + hf,
				"version":              "1.0",
				"installation_size":    int64(104857600),
				"key":                  "",
				"after_apply_guidance": []string{"restartHost"},
				"vdi":                  NullRef,
				"hosts":                hosts,
				"other_config":         map[string]string{},
				"enforce_homogeneity":  false,
			})
			// The shadow pool_patch of an update: its uuid is the update's
			// with bytes 4 to 7 zeroed.
			patchUUID = uuid[:9] + "0000-0000" + uuid[18:]
		}
		var hostPatches []string
		for _, h := range p.hosts {
			hpRef := refFor("host_patch", cfg.Name+"/"+hf+"/"+h.name)
			hostPatches = append(hostPatches, hpRef)
			patchesOf[h] = append(patchesOf[h], hpRef)
			d.add("host_patch", hpRef, map[string]any{
				"uuid":              scenario.NameUUID("host_patch/" + hf + "/" + h.name),
				"name_label":        "",
				"name_description":  "",
				"version":           "",
				"host":              h.ref,
				"applied":           true,
				"timestamp_applied": now.Add(-30 * 24 * time.Hour),
				"size":              int64(0),
				"pool_patch":        patchRef,
				"other_config":      map[string]string{},
			})
		}
		guidance := []string{"restartHost"}
		if hf == "XS62ESP1004" {
			guidance = []string{"restartXAPI"}
		}
		d.add("pool_patch", patchRef, map[string]any{
			"uuid":                 patchUUID,
			"name_label":           hf,
			"name_description":     "Public Availability: hotfix " + hf,
			"version":              "1.0",
			"size":                 int64(0),
			"pool_applied":         true,
			"host_patches":         hostPatches,
			"after_apply_guidance": guidance,
			"pool_update":          updateRef,
			"other_config":         map[string]string{},
		})
	}

	// Hosts and their metrics.
	for _, h := range p.hosts {
		sh, _ := cfg.Host(h.name)
		mem := sh.MemoryMiB << 20
		d.add("host_metrics", h.metricsRef, map[string]any{
			"uuid":         scenario.NameUUID("host_metrics/" + h.name),
			"memory_total": mem,
			"memory_free":  mem - 8<<30,
			"live":         true,
			"last_updated": now,
			"other_config": map[string]string{},
		})
		local := localSR[h]
		if local == "" {
			local = NullRef
		}
		d.add("host", h.ref, map[string]any{
			"uuid":                              h.uuid,
			"name_label":                        h.name,
			"name_description":                  "Default install of XenServer",
			"memory_overhead":                   int64(1092616192),
			"allowed_operations":                []string{"vm_migrate", "provision", "vm_resume", "evacuate", "vm_start"},
			"current_operations":                map[string]string{},
			"API_version_major":                 major,
			"API_version_minor":                 minor,
			"API_version_vendor":                "XenSource",
			"API_version_vendor_implementation": map[string]string{},
			"enabled":                           true,
			"software_version":                  softwareVersion(cfg, major, minor),
			"other_config": map[string]string{
				"agent_start_time": fmt.Sprintf("%d.", now.Unix()),
				"boot_time":        fmt.Sprintf("%d.", now.Add(-time.Hour).Unix()),
				"iscsi_iqn":        "iqn.2013-06.lab.xsha:" + h.name,
			},
			"capabilities":                       []string{"xen-3.0-x86_64", "xen-3.0-x86_32p", "hvm-3.0-x86_32", "hvm-3.0-x86_32p", "hvm-3.0-x86_64"},
			"cpu_configuration":                  map[string]string{},
			"sched_policy":                       "credit",
			"supported_bootloaders":              []string{"pygrub", "eliloader"},
			"resident_VMs":                       resident[h],
			"logging":                            map[string]string{},
			"PIFs":                               []string{},
			"suspend_image_sr":                   local,
			"crash_dump_sr":                      local,
			"crashdumps":                         []string{},
			"patches":                            patchesOf[h],
			"updates":                            updateRefs,
			"PBDs":                               h.pbds,
			"host_CPUs":                          []string{},
			"cpu_info":                           map[string]string{"cpu_count": strconv.Itoa(sh.CPUs), "socket_count": "2", "vendor": "GenuineIntel", "speed": "2599.998", "modelname": "Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", "family": "6", "model": "45", "stepping": "7", "flags": "fpu de tsc msr pae mce cx8 apic sep mtrr mca cmov pat clflush acpi mmx fxsr sse sse2 ht syscall nx lm constant_tsc", "features": "17bee3ff-bfebfbff-00000001-2c100800", "features_after_reboot": "17bee3ff-bfebfbff-00000001-2c100800", "physical_features": "17bee3ff-bfebfbff-00000001-2c100800", "maskable": "full"},
			"hostname":                           h.name,
			"address":                            h.address,
			"metrics":                            h.metricsRef,
			"license_params":                     map[string]string{"sku_type": p.cfg.Edition, "expiry": "20380119T03:14:07Z", "restrict_ha": restrictHA},
			"ha_statefiles":                      []string{},
			"ha_network_peers":                   []string{},
			"blobs":                              map[string]string{},
			"tags":                               []string{},
			"external_auth_type":                 "",
			"external_auth_service_name":         "",
			"external_auth_configuration":        map[string]string{},
			"edition":                            p.cfg.Edition,
			"license_server":                     map[string]string{"address": "localhost", "port": "27000"},
			"bios_strings":                       map[string]string{"bios-vendor": "Cisco Systems, Inc.", "system-manufacturer": "Cisco Systems Inc", "system-product-name": "UCSB-B200-M3"},
			"power_on_mode":                      "",
			"power_on_config":                    map[string]string{},
			"local_cache_sr":                     NullRef,
			"chipset_info":                       map[string]string{"iommu": "true"},
			"PCIs":                               []string{},
			"PGPUs":                              []string{},
			"PUSBs":                              []string{},
			"ssl_legacy":                         true,
			"guest_VCPUs_params":                 map[string]string{},
			"display":                            "enabled",
			"virtual_hardware_platform_versions": []string{"0", "1", "2"},
			"control_domain":                     h.dom0Ref,
			"updates_requiring_reboot":           []string{},
			"features":                           []string{},
		})
	}

	// The pool.
	masterRef := p.byName[cfg.Master].ref
	d.add("pool", poolRef, map[string]any{
		"uuid":                         cfg.UUID,
		"name_label":                   cfg.Name,
		"name_description":             "",
		"master":                       masterRef,
		"default_SR":                   defaultSR,
		"suspend_image_SR":             defaultSR,
		"crash_dump_SR":                defaultSR,
		"other_config":                 map[string]string{"cpuid_feature_mask": "ffffff7f-ffffffff-ffffffff-ffffffff", "memory-ratio-hvm": "0.25", "memory-ratio-pv": "0.25"},
		"ha_enabled":                   false,
		"ha_configuration":             map[string]string{},
		"ha_statefiles":                []string{},
		"ha_host_failures_to_tolerate": int64(0),
		"ha_plan_exists_for":           int64(0),
		"ha_allow_overcommit":          false,
		"ha_overcommitted":             false,
		"blobs":                        map[string]string{},
		"tags":                         []string{},
		"gui_config":                   map[string]string{},
		"health_check_config":          map[string]string{},
		"wlb_url":                      "",
		"wlb_username":                 "",
		"wlb_enabled":                  false,
		"wlb_verify_cert":              false,
		"redo_log_enabled":             false,
		"redo_log_vdi":                 NullRef,
		"vswitch_controller":           "",
		"restrictions":                 map[string]string{"restrict_ha": restrictHA, "restrict_pool_attached_storage": "false", "restrict_wlb": "false", "restrict_vswitch_controller": "false", "sku_type": p.cfg.Edition, "enable_xha": strconv.FormatBool(!p.haRestricted())},
		"metadata_VDIs":                []string{},
		"ha_cluster_stack":             "xhad",
		"allowed_operations":           []string{"ha_enable"},
		"current_operations":           map[string]string{},
		"guest_agent_config":           map[string]string{},
		"cpu_info":                     map[string]string{"cpu_count": "64", "socket_count": "8", "vendor": "GenuineIntel"},
		"policy_no_vendor_device":      false,
		"live_patching_disabled":       false,
		"igmp_snooping_enabled":        false,
	})
}

func deviceConfig(s scenario.SR, host string) map[string]string {
	switch s.Type {
	case "nfs":
		return map[string]string{"server": "192.0.2.10", "serverpath": "/export/" + strings.ToLower(s.Name)}
	case "lvmoiscsi":
		return map[string]string{"target": "192.0.2.20", "targetIQN": "iqn.2010-01.com.solidfire:" + strings.ToLower(s.Name), "SCSIid": "36f47acc1000000006e61616800000001", "port": "3260"}
	case "lvm", "ext":
		return map[string]string{"device": "/dev/disk/by-id/scsi-" + scenario.NameUUID("disk/" + host)[:13] + "-part3"}
	case "iso":
		return map[string]string{"location": "/opt/xensource/packages/iso", "legacy_mode": "true"}
	}
	return map[string]string{}
}

func softwareVersion(p *scenario.Pool, major, minor int64) map[string]string {
	if p.Is62() {
		return map[string]string{
			"product_version":            p.ProductVersion,
			"product_version_text":       "6.2",
			"product_version_text_short": "6.2",
			"platform_name":              "XCP",
			"platform_version":           "1.8.0",
			"product_brand":              "XenServer",
			"build_number":               "70446c",
			"hostname":                   "lab-build",
			"date":                       "2013-06-14",
			"dbv":                        "2013.0621",
			"xapi":                       "1.3",
			"xen":                        "4.1.5",
			"linux":                      "2.6.32.43-0.4.1.xs1.8.0.847.170785xen",
			"xencenter_min":              "2.0",
			"xencenter_max":              fmt.Sprintf("%d.%d", major, minor),
			"network_backend":            "openvswitch",
			"xs:main":                    "Base Pack, version 6.2.0, build 70446c",
		}
	}
	short := strings.Join(strings.Split(p.ProductVersion, ".")[:2], ".")
	return map[string]string{
		"product_version":            p.ProductVersion,
		"product_version_text":       short,
		"product_version_text_short": short,
		"platform_name":              "XCP",
		"platform_version":           "2.2.0",
		"product_brand":              "XenServer",
		"build_number":               "137272c",
		"hostname":                   "lab-build",
		"date":                       "2017-02-03",
		"dbv":                        "2017.0203",
		"xapi":                       "1.9",
		"xen":                        "4.7.1-1-d",
		"linux":                      "4.4.0+10",
		"xencenter_min":              "2.6",
		"xencenter_max":              fmt.Sprintf("%d.%d", major, minor),
		"network_backend":            "openvswitch",
		"db_schema":                  "5.120",
	}
}

func vmFields(name, uuid, power, residentOn string, memory, vcpus int64) map[string]any {
	running := power == "Running"
	ops := []string{"changing_dynamic_range", "changing_static_range", "make_into_template", "start", "start_on", "export", "clone", "copy", "snapshot", "destroy"}
	domid := int64(-1)
	if running {
		ops = []string{"changing_dynamic_range", "clean_reboot", "clean_shutdown", "hard_reboot", "hard_shutdown", "pause", "pool_migrate", "snapshot", "suspend", "checkpoint"}
		domid = 1
	}
	return map[string]any{
		"uuid":                      uuid,
		"allowed_operations":        ops,
		"current_operations":        map[string]string{},
		"power_state":               power,
		"name_label":                name,
		"name_description":          "",
		"user_version":              int64(1),
		"is_a_template":             false,
		"is_default_template":       false,
		"suspend_VDI":               NullRef,
		"resident_on":               residentOn,
		"affinity":                  NullRef,
		"memory_overhead":           memory / 128,
		"memory_target":             memory,
		"memory_static_max":         memory,
		"memory_dynamic_max":        memory,
		"memory_dynamic_min":        memory,
		"memory_static_min":         memory / 2,
		"VCPUs_params":              map[string]string{},
		"VCPUs_max":                 vcpus,
		"VCPUs_at_startup":          vcpus,
		"actions_after_shutdown":    "destroy",
		"actions_after_reboot":      "restart",
		"actions_after_crash":       "restart",
		"consoles":                  []string{},
		"VIFs":                      []string{},
		"VBDs":                      []string{},
		"VUSBs":                     []string{},
		"crash_dumps":               []string{},
		"VTPMs":                     []string{},
		"PV_bootloader":             "",
		"PV_kernel":                 "",
		"PV_ramdisk":                "",
		"PV_args":                   "",
		"PV_bootloader_args":        "",
		"PV_legacy_args":            "",
		"HVM_boot_policy":           "",
		"HVM_boot_params":           map[string]string{},
		"HVM_shadow_multiplier":     1.0,
		"platform":                  map[string]string{},
		"PCI_bus":                   "",
		"other_config":              map[string]string{},
		"domid":                     domid,
		"domarch":                   "x64",
		"last_boot_CPU_flags":       map[string]string{"vendor": "GenuineIntel", "features": "17bee3ff-bfebfbff-00000001-2c100800"},
		"is_control_domain":         false,
		"metrics":                   NullRef,
		"guest_metrics":             NullRef,
		"last_booted_record":        "",
		"recommendations":           `<restrictions><restriction field="memory-static-max" max="137438953472" /><restriction field="vcpus-max" max="16" /></restrictions>`,
		"xenstore_data":             map[string]string{},
		"ha_always_run":             false,
		"ha_restart_priority":       "",
		"is_a_snapshot":             false,
		"snapshot_of":               NullRef,
		"snapshots":                 []string{},
		"snapshot_time":             time.Unix(0, 0),
		"transportable_snapshot_id": "",
		"blobs":                     map[string]string{},
		"tags":                      []string{},
		"blocked_operations":        map[string]string{},
		"snapshot_info":             map[string]string{},
		"snapshot_metadata":         "",
		"parent":                    NullRef,
		"children":                  []string{},
		"bios_strings":              map[string]string{},
		"protection_policy":         NullRef,
		"is_snapshot_from_vmpp":     false,
		"snapshot_schedule":         NullRef,
		"is_vmss_snapshot":          false,
		"appliance":                 NullRef,
		"start_delay":               int64(0),
		"shutdown_delay":            int64(0),
		"order":                     int64(0),
		"VGPUs":                     []string{},
		"attached_PCIs":             []string{},
		"suspend_SR":                NullRef,
		"version":                   int64(0),
		"generation_id":             "",
		"hardware_platform_version": int64(0),
		"has_vendor_device":         false,
		"requires_reboot":           false,
		"reference_label":           "",
	}
}

func vdiFields(name, uuid, sr string, size int64, typ string) map[string]any {
	return map[string]any{
		"uuid":                 uuid,
		"name_label":           name,
		"name_description":     "",
		"allowed_operations":   []string{"forget", "generate_config", "update", "resize", "destroy", "clone", "copy", "snapshot"},
		"current_operations":   map[string]string{},
		"SR":                   sr,
		"VBDs":                 []string{},
		"crash_dumps":          []string{},
		"virtual_size":         size,
		"physical_utilisation": size / 4,
		"type":                 typ,
		"sharable":             false,
		"read_only":            false,
		"other_config":         map[string]string{},
		"storage_lock":         false,
		"location":             uuid,
		"managed":              true,
		"missing":              false,
		"parent":               NullRef,
		"xenstore_data":        map[string]string{},
		"sm_config":            map[string]string{"vdi_type": "vhd"},
		"is_a_snapshot":        false,
		"snapshot_of":          NullRef,
		"snapshots":            []string{},
		"snapshot_time":        time.Unix(0, 0),
		"tags":                 []string{},
		"allow_caching":        false,
		"on_boot":              "persist",
		"metadata_of_pool":     NullRef,
		"metadata_latest":      false,
		"is_tools_iso":         false,
		"cbt_enabled":          false,
	}
}
