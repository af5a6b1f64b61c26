package cluster

// Info returns what GET /2/info returns: every key of Ganeti 3.0.2's
// cluster information, including the response aliases vg_name (of
// volume_group_name) and drbd_helper (of drbd_usermode_helper).
func (s *State) Info() map[string]any { return s.info() }

// InfoShared is Info for callers that only read the result: it is computed
// once per State and shared by every caller, so it must not be modified.
func (s *State) InfoShared() map[string]any {
	s.infoOnce.Do(func() { s.sharedInfo = s.info() })
	return s.sharedInfo
}

func (s *State) info() map[string]any {
	c := s.cfg.Cluster
	hvparams := make(map[string]any, len(c.HVParams))
	for hv, p := range c.HVParams {
		hvparams[hv] = cloneParams(p)
	}
	osHVP := make(map[string]any, len(c.OSHVP))
	for os, m := range c.OSHVP {
		perHV := make(map[string]any, len(m))
		for hv, p := range m {
			perHV[hv] = cloneParams(p)
		}
		osHVP[os] = perHV
	}
	osparams := make(map[string]any, len(c.OSParams))
	for os, p := range c.OSParams {
		osparams[os] = cloneParams(p)
	}
	diskparams := make(map[string]any, len(c.DiskParams))
	for dt, p := range c.DiskParams {
		diskparams[dt] = cloneParams(p)
	}
	uidPool := make([]any, len(c.UIDPool))
	for i, r := range c.UIDPool {
		uidPool[i] = []any{r[0], r[1]}
	}
	collectors := make(map[string]any, len(c.EnabledDataCollectors))
	for k, v := range c.EnabledDataCollectors {
		collectors[k] = v
	}
	intervals := make(map[string]any, len(c.DataCollectorInterval))
	for k, v := range c.DataCollectorInterval {
		intervals[k] = v
	}
	vg, helper := optString(c.VolumeGroupName), optString(c.DRBDUsermodeHelper)
	return map[string]any{
		"software_version":               SoftwareVersion,
		"protocol_version":               int64(ProtocolVersion),
		"config_version":                 int64(ConfigVersion),
		"os_api_version":                 int64(OSAPIVersion),
		"export_version":                 int64(ExportVersion),
		"vcs_version":                    VCSVersion,
		"architecture":                   strList(c.Architecture),
		"name":                           c.Name,
		"master":                         s.Master(),
		"default_hypervisor":             c.EnabledHypervisors[0],
		"enabled_hypervisors":            strList(c.EnabledHypervisors),
		"hvparams":                       hvparams,
		"os_hvp":                         osHVP,
		"beparams":                       map[string]any{"default": cloneParams(c.BEParams)},
		"osparams":                       osparams,
		"ipolicy":                        cloneParams(c.IPolicy),
		"nicparams":                      map[string]any{"default": cloneParams(c.NICParams)},
		"ndparams":                       cloneParams(c.NDParams),
		"diskparams":                     diskparams,
		"candidate_pool_size":            c.CandidatePoolSize,
		"max_running_jobs":               c.MaxRunningJobs,
		"max_tracked_jobs":               c.MaxTrackedJobs,
		"mac_prefix":                     c.MACPrefix,
		"master_netdev":                  c.MasterNetdev,
		"master_netmask":                 c.MasterNetmask,
		"use_external_mip_script":        c.UseExternalMIPScript,
		"volume_group_name":              vg,
		"drbd_usermode_helper":           helper,
		"file_storage_dir":               c.FileStorageDir,
		"shared_file_storage_dir":        c.SharedFileStorageDir,
		"gluster_storage_dir":            c.GlusterStorageDir,
		"maintain_node_health":           c.MaintainNodeHealth,
		"ctime":                          c.CTime,
		"mtime":                          c.MTime,
		"uuid":                           c.UUID,
		"tags":                           strList(c.Tags),
		"uid_pool":                       uidPool,
		"default_iallocator":             c.DefaultIAllocator,
		"default_iallocator_params":      cloneParams(nonNilParams(c.DefaultIAllocatorParams)),
		"reserved_lvs":                   strList(c.ReservedLVs),
		"primary_ip_version":             c.PrimaryIPVersion,
		"prealloc_wipe_disks":            c.PreallocWipeDisks,
		"hidden_os":                      strList(c.HiddenOS),
		"blacklisted_os":                 strList(c.BlacklistedOS),
		"enabled_disk_templates":         strList(c.EnabledDiskTemplates),
		"install_image":                  c.InstallImage,
		"instance_communication_network": c.InstanceCommunicationNetwork,
		"zeroing_image":                  c.ZeroingImage,
		"compression_tools":              strList(c.CompressionTools),
		"enabled_user_shutdown":          c.EnabledUserShutdown,
		"enabled_data_collectors":        collectors,
		"data_collector_interval":        intervals,
		"modify_ssh_setup":               c.ModifySSHSetup,
		"ssh_key_type":                   c.SSHKeyType,
		"ssh_key_bits":                   c.SSHKeyBits,
		"vg_name":                        vg,
		"drbd_helper":                    helper,
	}
}
