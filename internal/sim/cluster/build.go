package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"runtime"
	"strings"
	"time"
)

// This file turns a parsed File into a Config: defaults, generated ids,
// cross references, address pools and node capacities.

// idSource supplies randomness for UUIDs, MAC addresses and boot ids.
type idSource interface{ read(p []byte) }

type cryptoIDs struct{}

func (cryptoIDs) read(p []byte) {
	if _, err := io.ReadFull(rand.Reader, p); err != nil {
		// crypto/rand does not fail on supported platforms.
		panic("cluster: crypto/rand: " + err.Error())
	}
}

// deterministicIDs is used for ParseFile's trial build and in tests.
type deterministicIDs struct{ r *mrand.ChaCha8 }

func newDeterministicIDs() *deterministicIDs {
	return &deterministicIDs{r: mrand.NewChaCha8([32]byte{'g', 'a', 'n', 'e', 't', 'i'})}
}

func (d *deterministicIDs) read(p []byte) { _, _ = d.r.Read(p) }

func fixedClock() time.Time { return time.Unix(1700000000, 0) }

// newUUID returns a random (version 4) UUID.
func newUUID(ids idSource) string {
	var b [16]byte
	ids.read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// timestamp converts t to Ganeti's float seconds (microsecond precision).
func timestamp(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

type builder struct {
	f   *File
	ids idSource
	now float64
	cfg *Config

	uuids    map[string]string // every UUID in use -> what uses it
	groups   map[string]*Group // by name
	nodes    map[string]*Node  // by name
	nodeIdx  map[string]int    // node name -> index in f.Nodes
	networks map[string]*Network
	pools    map[string]*addrPool // network UUID -> pool
	macs     map[string]bool
}

// build creates the configuration the file declares.
func (f *File) build(clock func() time.Time, ids idSource) (*Config, error) {
	b := &builder{
		f:        f,
		ids:      ids,
		now:      timestamp(clock()),
		uuids:    map[string]string{},
		groups:   map[string]*Group{},
		nodes:    map[string]*Node{},
		nodeIdx:  map[string]int{},
		networks: map[string]*Network{},
		pools:    map[string]*addrPool{},
		macs:     map[string]bool{},
		cfg: &Config{
			Nodes:     map[string]*Node{},
			Groups:    map[string]*Group{},
			Instances: map[string]*Instance{},
			Networks:  map[string]*Network{},
			OSes:      map[string]*OS{},
			Filters:   map[string]*FilterRule{},
		},
	}
	steps := []func() error{
		b.buildCluster, b.buildGroups, b.buildNodes, b.buildMaster, b.buildOSes,
		b.buildNetworks, b.buildInstances, b.buildCapacities, b.buildFilters, b.buildExports,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	for uuid, p := range b.pools {
		b.cfg.Networks[uuid].Reservations = p.res.String()
		b.cfg.Networks[uuid].ExtReservations = p.ext.String()
	}
	return b.cfg, nil
}

// uuid validates a given UUID (or generates one) and checks it is unique.
func (b *builder) uuid(what, given string) (string, error) {
	u := strings.ToLower(given)
	if u == "" {
		u = newUUID(b.ids)
	} else if !uuidRe.MatchString(u) {
		return "", fmt.Errorf("%s: invalid uuid %q", what, given)
	}
	if other, dup := b.uuids[u]; dup {
		return "", fmt.Errorf("%s: uuid %s is already used by %s", what, u, other)
	}
	b.uuids[u] = what
	return u, nil
}

func orDefault[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func (b *builder) buildCluster() error {
	fc := &b.f.Cluster
	if err := checkName("cluster", fc.Name); err != nil {
		return err
	}
	m, err := b.meta("cluster", fc.FileMeta)
	if err != nil {
		return err
	}
	c := &Cluster{
		Name: fc.Name, UUID: m.uuid, CTime: m.ctime, MTime: m.mtime, SerialNo: m.serial, Tags: m.tags,
		CandidatePoolSize:            orDefault(fc.CandidatePoolSize, defaultCandidatePoolSize),
		MaxRunningJobs:               orDefault(fc.MaxRunningJobs, defaultMaxRunningJobs),
		MaxTrackedJobs:               orDefault(fc.MaxTrackedJobs, defaultMaxTrackedJobs),
		MACPrefix:                    orDefault(fc.MACPrefix, defaultMACPrefix),
		MasterNetdev:                 orDefault(fc.MasterNetdev, defaultMasterNetdev),
		MasterNetmask:                orDefault(fc.MasterNetmask, defaultMasterNetmask),
		UseExternalMIPScript:         orDefault(fc.UseExternalMIPScript, false),
		FileStorageDir:               orDefault(fc.FileStorageDir, defaultFileStorageDir),
		SharedFileStorageDir:         orDefault(fc.SharedFileStorageDir, defaultSharedFileDir),
		GlusterStorageDir:            orDefault(fc.GlusterStorageDir, defaultGlusterDir),
		MaintainNodeHealth:           orDefault(fc.MaintainNodeHealth, false),
		UIDPool:                      append([][2]int64{}, fc.UIDPool...),
		DefaultIAllocator:            orDefault(fc.DefaultIAllocator, defaultIAllocator),
		ReservedLVs:                  nonNil(cloneStrings(fc.ReservedLVs)),
		PrimaryIPVersion:             orDefault(fc.PrimaryIPVersion, defaultPrimaryIPVersion),
		PreallocWipeDisks:            orDefault(fc.PreallocWipeDisks, false),
		HiddenOS:                     nonNil(cloneStrings(fc.HiddenOS)),
		BlacklistedOS:                nonNil(cloneStrings(fc.BlacklistedOS)),
		InstallImage:                 orDefault(fc.InstallImage, ""),
		InstanceCommunicationNetwork: orDefault(fc.InstanceCommunicationNetwork, ""),
		ZeroingImage:                 orDefault(fc.ZeroingImage, ""),
		EnabledUserShutdown:          orDefault(fc.EnabledUserShutdown, false),
		ModifySSHSetup:               orDefault(fc.ModifySSHSetup, false),
		SSHKeyType:                   orDefault(fc.SSHKeyType, defaultSSHKeyType),
		SSHKeyBits:                   orDefault(fc.SSHKeyBits, defaultSSHKeyBits),
		OSHVP:                        map[string]map[string]Params{},
		OSParams:                     map[string]Params{},
	}
	switch {
	case c.CandidatePoolSize < 1 || c.CandidatePoolSize > maxObjects:
		return fmt.Errorf("cluster: candidate_pool_size must be between 1 and %d", maxObjects)
	case c.MaxRunningJobs < 1 || c.MaxRunningJobs > maxObjects:
		return fmt.Errorf("cluster: max_running_jobs must be between 1 and %d", maxObjects)
	case c.MaxTrackedJobs < 1 || c.MaxTrackedJobs > maxObjects:
		return fmt.Errorf("cluster: max_tracked_jobs must be between 1 and %d", maxObjects)
	case !pfxRe.MatchString(c.MACPrefix):
		return fmt.Errorf("cluster: invalid mac_prefix %q (want three hex octets like aa:00:00)", c.MACPrefix)
	case c.PrimaryIPVersion != 4 && c.PrimaryIPVersion != 6:
		return fmt.Errorf("cluster: primary_ip_version must be 4 or 6")
	case c.MasterNetmask < 0 || c.MasterNetmask > 128 || (c.PrimaryIPVersion == 4 && c.MasterNetmask > 32):
		return fmt.Errorf("cluster: invalid master_netmask %d (0-32 for IPv4, 0-128 for IPv6)", c.MasterNetmask)
	case !contains(sshKeyTypes, c.SSHKeyType):
		return fmt.Errorf("cluster: ssh_key_type must be one of %s", strings.Join(sshKeyTypes, ", "))
	case c.SSHKeyBits < 1 || c.SSHKeyBits > 65536:
		return fmt.Errorf("cluster: invalid ssh_key_bits %d", c.SSHKeyBits)
	}
	if c.MasterNetdev == "" || len(c.MasterNetdev) > maxNameLen {
		return fmt.Errorf("cluster: invalid master_netdev %q", c.MasterNetdev)
	}
	for what, dir := range map[string]string{
		"file_storage_dir": c.FileStorageDir, "shared_file_storage_dir": c.SharedFileStorageDir,
		"gluster_storage_dir": c.GlusterStorageDir,
	} {
		if dir != "" && !strings.HasPrefix(dir, "/") {
			return fmt.Errorf("cluster: %s must be an absolute path, not %q", what, dir)
		}
	}
	for i, r := range c.UIDPool {
		if r[0] < 0 || r[1] < r[0] || r[1] > math32 {
			return fmt.Errorf("cluster: uid_pool[%d]: invalid range %d-%d", i, r[0], r[1])
		}
	}

	// Hypervisors: only the fake one is simulated.
	c.EnabledHypervisors = cloneStrings(fc.EnabledHypervisors)
	if c.EnabledHypervisors == nil {
		c.EnabledHypervisors = []string{"fake"}
	}
	if len(c.EnabledHypervisors) != 1 || c.EnabledHypervisors[0] != "fake" {
		return fmt.Errorf("cluster: enabled_hypervisors must be [\"fake\"]: only the fake hypervisor is simulated")
	}

	c.EnabledDiskTemplates = cloneStrings(fc.EnabledDiskTemplates)
	if c.EnabledDiskTemplates == nil {
		c.EnabledDiskTemplates = cloneStrings(defaultEnabledDiskTemplates)
	}
	if len(c.EnabledDiskTemplates) == 0 {
		return fmt.Errorf("cluster: enabled_disk_templates must not be empty")
	}
	if err := checkEnum("cluster: enabled_disk_templates", c.EnabledDiskTemplates, DiskTemplates); err != nil {
		return err
	}
	usesLVM := contains(c.EnabledDiskTemplates, "plain") || contains(c.EnabledDiskTemplates, "drbd")
	usesDRBD := contains(c.EnabledDiskTemplates, "drbd")
	c.VolumeGroupName = defaultNullable(fc.VolumeGroupName, usesLVM, defaultVG)
	c.DRBDUsermodeHelper = defaultNullable(fc.DRBDUsermodeHelper, usesDRBD, defaultDRBDHelper)
	if usesLVM && (c.VolumeGroupName == nil || *c.VolumeGroupName == "") {
		return fmt.Errorf("cluster: volume_group_name is required when plain or drbd is enabled")
	}

	// Parameters.
	c.HVParams = cloneParamsMap(defaultHVParams)
	for _, hv := range sortedKeys(fc.HVParams) {
		defs, ok := defaultHVParams[hv]
		if !ok {
			return fmt.Errorf("cluster: hvparams: unknown hypervisor %q", hv)
		}
		p, err := checkParams(fc.HVParams[hv], defs)
		if err != nil {
			return fmt.Errorf("cluster: hvparams %s: %w", hv, err)
		}
		c.HVParams[hv] = fillParams(defs, p)
	}
	for _, os := range sortedKeys(fc.OSHVP) {
		c.OSHVP[os] = map[string]Params{}
		for _, hv := range sortedKeys(fc.OSHVP[os]) {
			defs, ok := defaultHVParams[hv]
			if !ok {
				return fmt.Errorf("cluster: os_hvp %s: unknown hypervisor %q", os, hv)
			}
			p, err := checkParams(fc.OSHVP[os][hv], defs)
			if err != nil {
				return fmt.Errorf("cluster: os_hvp %s %s: %w", os, hv, err)
			}
			c.OSHVP[os][hv] = p
		}
	}
	be, err := checkParams(fc.BEParams, defaultBEParams)
	if err != nil {
		return fmt.Errorf("cluster: beparams: %w", err)
	}
	c.BEParams = fillParams(defaultBEParams, be)
	if err := checkBEParams("cluster: beparams", c.BEParams); err != nil {
		return err
	}
	for _, os := range sortedKeys(fc.OSParams) {
		p, err := checkOSParams(fc.OSParams[os])
		if err != nil {
			return fmt.Errorf("cluster: osparams %s: %w", os, err)
		}
		c.OSParams[os] = p
	}
	nic, err := checkParams(fc.NICParams, nicParamDefaults)
	if err != nil {
		return fmt.Errorf("cluster: nicparams: %w", err)
	}
	c.NICParams = fillParams(Params{"mode": defaultNICMode, "link": defaultBridge, "vlan": ""}, nic)
	if !contains(nicModes, c.NICParams["mode"].(string)) {
		return fmt.Errorf("cluster: nicparams: invalid mode %q", c.NICParams["mode"])
	}
	nd, err := checkParams(fc.NDParams, defaultNDParams)
	if err != nil {
		return fmt.Errorf("cluster: ndparams: %w", err)
	}
	c.NDParams = fillParams(defaultNDParams, nd)
	c.DiskParams, err = checkDiskParams("cluster", fc.DiskParams)
	if err != nil {
		return err
	}
	for dt, p := range c.DiskParams {
		c.DiskParams[dt] = fillParams(defaultDiskParams[dt], p)
	}
	for dt, p := range defaultDiskParams {
		if _, ok := c.DiskParams[dt]; !ok {
			c.DiskParams[dt] = cloneParams(p)
		}
	}
	base := fillIPolicy(defaultIPolicy, Params{"disk-templates": cloneStrings(c.EnabledDiskTemplates)})
	ip, err := checkIPolicy(fc.IPolicy)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.IPolicy = fillIPolicy(base, ip)
	if err := checkIPolicyStd(c.IPolicy); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}

	c.DefaultIAllocatorParams, err = checkFreeParams("cluster: default_iallocator_params", fc.DefaultIAllocatorParams)
	if err != nil {
		return err
	}
	if fc.CompressionTools == nil {
		c.CompressionTools = cloneStrings(defaultCompressionTools)
	} else {
		c.CompressionTools = cloneStrings(fc.CompressionTools)
		if err := checkEnum("cluster: compression_tools", c.CompressionTools, compressTools); err != nil {
			return err
		}
	}
	c.EnabledDataCollectors = map[string]bool{}
	c.DataCollectorInterval = map[string]int64{}
	for k, v := range defaultDataCollectors {
		c.EnabledDataCollectors[k] = v
	}
	for k, v := range defaultDataCollectorInterval {
		c.DataCollectorInterval[k] = v
	}
	for _, k := range sortedKeys(fc.EnabledDataCollectors) {
		if _, ok := defaultDataCollectors[k]; !ok {
			return fmt.Errorf("cluster: enabled_data_collectors: unknown data collector %q", k)
		}
		c.EnabledDataCollectors[k] = fc.EnabledDataCollectors[k]
	}
	for _, k := range sortedKeys(fc.DataCollectorInterval) {
		if _, ok := defaultDataCollectorInterval[k]; !ok {
			return fmt.Errorf("cluster: data_collector_interval: unknown data collector %q", k)
		}
		if v := fc.DataCollectorInterval[k]; v < 0 {
			return fmt.Errorf("cluster: data_collector_interval %s must not be negative", k)
		}
		c.DataCollectorInterval[k] = fc.DataCollectorInterval[k]
	}
	c.Architecture = cloneStrings(fc.Architecture)
	if c.Architecture == nil {
		c.Architecture = defaultArchitecture()
	}
	if len(c.Architecture) != 2 {
		return fmt.Errorf("cluster: architecture must be [bits, machine], e.g. [\"64bits\", \"x86_64\"]")
	}
	for _, lst := range [][]string{c.ReservedLVs, c.HiddenOS, c.BlacklistedOS} {
		if len(lst) > maxListEntries {
			return fmt.Errorf("cluster: lists are limited to %d entries", maxListEntries)
		}
	}
	b.cfg.Cluster = c
	return nil
}

const math32 = 1<<32 - 1

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func defaultNullable(n NullableString, enabled bool, def string) *string {
	if n.Set {
		return clonePtr(n.Value)
	}
	if enabled {
		return &def
	}
	return nil
}

func checkEnum(what string, values, allowed []string) error {
	seen := map[string]bool{}
	for _, v := range values {
		if !contains(allowed, v) {
			return fmt.Errorf("%s: unknown value %q (known: %s)", what, v, strings.Join(allowed, ", "))
		}
		if seen[v] {
			return fmt.Errorf("%s: %q is listed twice", what, v)
		}
		seen[v] = true
	}
	return nil
}

func checkBEParams(what string, filled Params) error {
	minmem, _ := filled["minmem"].(int64)
	maxmem, _ := filled["maxmem"].(int64)
	vcpus, _ := filled["vcpus"].(int64)
	switch {
	case maxmem < 1 || maxmem > maxSizeMiB:
		return fmt.Errorf("%s: maxmem must be between 1 and %d", what, int64(maxSizeMiB))
	case minmem < 1 || minmem > maxmem:
		return fmt.Errorf("%s: minmem must be between 1 and maxmem (%d)", what, maxmem)
	case vcpus < 1 || vcpus > maxCPUs:
		return fmt.Errorf("%s: vcpus must be between 1 and %d", what, maxCPUs)
	}
	if su, _ := filled["spindle_use"].(int64); su < 0 {
		return fmt.Errorf("%s: spindle_use must not be negative", what)
	}
	return nil
}

// checkOSParams validates OS parameters: string values.
func checkOSParams(p Params) (Params, error) {
	out := Params{}
	for _, k := range sortedKeys(p) {
		s, ok := p[k].(string)
		if !ok {
			return nil, fmt.Errorf("%q must be a string, not %s", k, typeName(p[k]))
		}
		out[k] = s
	}
	return out, nil
}

// checkFreeParams accepts any JSON-like dictionary.
func checkFreeParams(what string, p Params) (Params, error) {
	if p == nil {
		return Params{}, nil
	}
	out, ok := normalizeJSON(deepCopy(p)).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s must be an object", what)
	}
	return out, nil
}

// checkDiskParams validates per-template custom disk parameters.
func checkDiskParams(what string, dp map[string]Params) (map[string]Params, error) {
	out := map[string]Params{}
	for _, dt := range sortedKeys(dp) {
		defs, ok := defaultDiskParams[dt]
		if !ok {
			return nil, fmt.Errorf("%s: diskparams: unknown disk template %q", what, dt)
		}
		p, err := checkParams(dp[dt], defs)
		if err != nil {
			return nil, fmt.Errorf("%s: diskparams %s: %w", what, dt, err)
		}
		out[dt] = p
	}
	return out, nil
}

func defaultArchitecture() []string {
	machine := map[string]string{
		"amd64": "x86_64", "386": "i686", "arm64": "aarch64", "arm": "armv7l",
		"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
	}[runtime.GOARCH]
	if machine == "" {
		machine = runtime.GOARCH
	}
	bits := "64bits"
	if runtime.GOARCH == "386" || runtime.GOARCH == "arm" {
		bits = "32bits"
	}
	return []string{bits, machine}
}
