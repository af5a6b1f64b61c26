package cluster

import (
	"errors"
	"maps"
	"slices"
)

// This file holds the configuration objects of the simulated cluster. They
// are what is persisted (one JSON document per object, see persist.go) and
// what a State is built from. Objects refer to each other by UUID, as in
// Ganeti's own configuration, so that renames touch one object only.
//
// Parameter dictionaries hold JSON-like values (bool, int64, float64,
// string, nil); normalizeParams restores those Go types after a JSON round
// trip. "Custom" dictionaries hold only what differs from the inherited
// values; the queries show both the custom and the merged ("filled") view.

// Params is a parameter dictionary (beparams, hvparams, ndparams, ...). It is
// an alias so that values handed to callers are plain map[string]any.
type Params = map[string]any

// Node roles as Ganeti names them in GET /2/nodes/[node_name]/role.
const (
	RoleMaster    = "master"
	RoleCandidate = "master-candidate"
	RoleRegular   = "regular"
	RoleDrained   = "drained"
	RoleOffline   = "offline"
)

// Instance admin states.
const (
	AdminUp      = "up"
	AdminDown    = "down"
	AdminOffline = "offline"
)

// Cluster is the cluster-wide configuration (Ganeti's cluster object).
type Cluster struct {
	Name     string  `json:"name"`
	UUID     string  `json:"uuid"`
	CTime    float64 `json:"ctime"`
	MTime    float64 `json:"mtime"`
	SerialNo int64   `json:"serial_no"`
	// MasterNode is the UUID of the master node.
	MasterNode string   `json:"master_node"`
	Tags       []string `json:"tags"`

	EnabledHypervisors   []string `json:"enabled_hypervisors"`
	EnabledDiskTemplates []string `json:"enabled_disk_templates"`

	// Full parameter sets (defaults already applied).
	HVParams   map[string]Params            `json:"hvparams"`   // hypervisor -> params
	OSHVP      map[string]map[string]Params `json:"os_hvp"`     // os -> hypervisor -> params
	BEParams   Params                       `json:"beparams"`   // the "default" group
	OSParams   map[string]Params            `json:"osparams"`   // os -> params
	NICParams  Params                       `json:"nicparams"`  // the "default" group
	NDParams   Params                       `json:"ndparams"`   // node defaults
	DiskParams map[string]Params            `json:"diskparams"` // disk template -> params
	IPolicy    Params                       `json:"ipolicy"`

	CandidatePoolSize            int64            `json:"candidate_pool_size"`
	MaxRunningJobs               int64            `json:"max_running_jobs"`
	MaxTrackedJobs               int64            `json:"max_tracked_jobs"`
	MACPrefix                    string           `json:"mac_prefix"`
	MasterNetdev                 string           `json:"master_netdev"`
	MasterNetmask                int64            `json:"master_netmask"`
	UseExternalMIPScript         bool             `json:"use_external_mip_script"`
	VolumeGroupName              *string          `json:"volume_group_name"`
	DRBDUsermodeHelper           *string          `json:"drbd_usermode_helper"`
	FileStorageDir               string           `json:"file_storage_dir"`
	SharedFileStorageDir         string           `json:"shared_file_storage_dir"`
	GlusterStorageDir            string           `json:"gluster_storage_dir"`
	MaintainNodeHealth           bool             `json:"maintain_node_health"`
	UIDPool                      [][2]int64       `json:"uid_pool"`
	DefaultIAllocator            string           `json:"default_iallocator"`
	DefaultIAllocatorParams      Params           `json:"default_iallocator_params"`
	ReservedLVs                  []string         `json:"reserved_lvs"`
	PrimaryIPVersion             int64            `json:"primary_ip_version"`
	PreallocWipeDisks            bool             `json:"prealloc_wipe_disks"`
	HiddenOS                     []string         `json:"hidden_os"`
	BlacklistedOS                []string         `json:"blacklisted_os"`
	InstallImage                 string           `json:"install_image"`
	InstanceCommunicationNetwork string           `json:"instance_communication_network"`
	ZeroingImage                 string           `json:"zeroing_image"`
	CompressionTools             []string         `json:"compression_tools"`
	EnabledUserShutdown          bool             `json:"enabled_user_shutdown"`
	EnabledDataCollectors        map[string]bool  `json:"enabled_data_collectors"`
	DataCollectorInterval        map[string]int64 `json:"data_collector_interval"`
	ModifySSHSetup               bool             `json:"modify_ssh_setup"`
	SSHKeyType                   string           `json:"ssh_key_type"`
	SSHKeyBits                   int64            `json:"ssh_key_bits"`
	// Architecture is what /2/info reports: [bits, machine] of the master.
	Architecture []string `json:"architecture"`

	ClusterExtras
}

// Group is a node group.
type Group struct {
	Name        string  `json:"name"`
	UUID        string  `json:"uuid"`
	CTime       float64 `json:"ctime"`
	MTime       float64 `json:"mtime"`
	SerialNo    int64   `json:"serial_no"`
	AllocPolicy string  `json:"alloc_policy"`
	// Custom parameters (overriding the cluster's).
	NDParams   Params            `json:"ndparams"`
	IPolicy    Params            `json:"ipolicy"`
	DiskParams map[string]Params `json:"diskparams"`
	// Networks maps a connected network's UUID to its NIC parameters
	// (mode, link, vlan).
	Networks map[string]Params `json:"networks"`
	Tags     []string          `json:"tags"`
}

// Node is a node, with the hardware the fake hypervisor reports for it.
type Node struct {
	Name            string   `json:"name"`
	UUID            string   `json:"uuid"`
	CTime           float64  `json:"ctime"`
	MTime           float64  `json:"mtime"`
	SerialNo        int64    `json:"serial_no"`
	Group           string   `json:"group"` // group UUID
	PrimaryIP       string   `json:"primary_ip"`
	SecondaryIP     string   `json:"secondary_ip"`
	MasterCandidate bool     `json:"master_candidate"`
	Drained         bool     `json:"drained"`
	Offline         bool     `json:"offline"`
	MasterCapable   bool     `json:"master_capable"`
	VMCapable       bool     `json:"vm_capable"`
	Powered         bool     `json:"powered"`
	NDParams        Params   `json:"ndparams"` // custom
	Tags            []string `json:"tags"`

	// Hardware (MiB, counts). MemOther and DiskOther are memory and storage
	// used by something else than instances, so that a node can report the
	// same mfree/dfree as a captured real one.
	MemTotal   int64  `json:"mtotal"`
	MemNode    int64  `json:"mnode"`
	MemOther   int64  `json:"mem_other"`
	DiskTotal  int64  `json:"dtotal"`
	DiskOther  int64  `json:"disk_other"`
	CPUTotal   int64  `json:"ctotal"`
	CPUNodeOS  int64  `json:"cnos"`
	CPUNodes   int64  `json:"cnodes"`
	CPUSockets int64  `json:"csockets"`
	Spindles   int64  `json:"spindles"`
	BootID     string `json:"bootid"`
}

// Disk is an instance disk.
type Disk struct {
	UUID     string  `json:"uuid"`
	Name     *string `json:"name"`
	Size     int64   `json:"size"` // MiB
	Spindles *int64  `json:"spindles"`
	Mode     string  `json:"mode"` // rw or ro
}

// NIC is an instance network interface.
type NIC struct {
	UUID    string  `json:"uuid"`
	Name    *string `json:"name"`
	MAC     string  `json:"mac"`
	IP      *string `json:"ip"`
	Network *string `json:"network"` // network UUID
	// NICParams are the custom NIC parameters (mode, link, vlan).
	NICParams Params `json:"nicparams"`
}

// Instance is a virtual machine of the fake hypervisor.
type Instance struct {
	Name             string   `json:"name"`
	UUID             string   `json:"uuid"`
	CTime            float64  `json:"ctime"`
	MTime            float64  `json:"mtime"`
	SerialNo         int64    `json:"serial_no"`
	OS               string   `json:"os"`
	Hypervisor       string   `json:"hypervisor"`
	PrimaryNode      string   `json:"primary_node"`    // node UUID
	SecondaryNodes   []string `json:"secondary_nodes"` // node UUIDs
	DiskTemplate     string   `json:"disk_template"`
	Disks            []Disk   `json:"disks"`
	NICs             []NIC    `json:"nics"`
	BEParams         Params   `json:"beparams"` // custom
	HVParams         Params   `json:"hvparams"` // custom
	OSParams         Params   `json:"osparams"` // custom
	AdminState       string   `json:"admin_state"`
	AdminStateSource string   `json:"admin_state_source"`
	DisksActive      bool     `json:"disks_active"`
	NetworkPort      *int64   `json:"network_port"`
	Tags             []string `json:"tags"`

	// Runtime state as the fake hypervisor reports it: whether the instance
	// runs and with which memory and VCPUs it was started (a later change of
	// beparams shows only after a restart, as on a real cluster).
	Running   bool  `json:"running"`
	OperRAM   int64 `json:"oper_ram"`
	OperVCPUs int64 `json:"oper_vcpus"`
}

// OS is an operating system definition known to the nodes.
type OS struct {
	Name     string   `json:"name"`
	Variants []string `json:"variants"`
}

// Network is an IPv4 network with its address pool.
type Network struct {
	Name      string   `json:"name"`
	UUID      string   `json:"uuid"`
	CTime     float64  `json:"ctime"`
	MTime     float64  `json:"mtime"`
	SerialNo  int64    `json:"serial_no"`
	Network   string   `json:"network"` // CIDR
	Gateway   *string  `json:"gateway"`
	Network6  *string  `json:"network6"`
	Gateway6  *string  `json:"gateway6"`
	MACPrefix *string  `json:"mac_prefix"`
	Tags      []string `json:"tags"`
	// Reservations and ExtReservations are Ganeti's address maps: one
	// character per address of the network, 'X' reserved, '.' free. The
	// first holds addresses used by instances, the second external ones.
	Reservations    string `json:"reservations"`
	ExtReservations string `json:"ext_reservations"`
}

// Export is an instance export kept on a node.
type Export struct {
	Node string `json:"node"` // node UUID
	Name string `json:"name"` // exported instance name
	// Info is what the export's config.ini records (Ganeti's
	// backend.FinalizeExport); nil for an export declared without it (a
	// cluster file, an older store), which then holds no information. It
	// is never modified once recorded: copies of a Config share it.
	Info *ExportInfo `json:"info,omitempty"`
}

// ExportInfo is the content of an export's config.ini: the exported
// instance with its parameters filled with the cluster defaults of the
// time of the export (as the export RPC sends them).
type ExportInfo struct {
	OS           string       `json:"os,omitempty"`     // [export] os
	Source       string       `json:"source,omitempty"` // [export] source: the primary node UUID
	DiskTemplate string       `json:"disk_template,omitempty"`
	Hypervisor   string       `json:"hypervisor,omitempty"`
	Tags         []string     `json:"tags,omitempty"`
	Disks        []ExportDisk `json:"disks,omitempty"`
	NICs         []ExportNIC  `json:"nics,omitempty"`
	HVParams     Params       `json:"hvparams,omitempty"` // [hypervisor], without the global ones
	BEParams     Params       `json:"beparams,omitempty"` // [backend]
	OSParams     Params       `json:"osparams,omitempty"` // [os]
}

// ExportDisk is a disk of an export (disk%d_size, disk%d_name, its mode).
type ExportDisk struct {
	Size int64   `json:"size"`
	Name *string `json:"name,omitempty"`
	Mode string  `json:"mode,omitempty"`
}

// ExportNIC is a NIC of an export (nic%d_mac, _ip, _network (a UUID),
// _name and the filled NIC parameters).
type ExportNIC struct {
	MAC       string  `json:"mac"`
	IP        *string `json:"ip,omitempty"`
	Network   *string `json:"network,omitempty"`
	Name      *string `json:"name,omitempty"`
	NICParams Params  `json:"nicparams,omitempty"`
}

// UnmarshalJSON decodes an ExportInfo keeping integral numbers int64 (as
// every parameter map of a Config).
func (e *ExportInfo) UnmarshalJSON(data []byte) error {
	type plain ExportInfo
	var p plain
	if err := decodeJSON(data, &p, false); err != nil {
		return err
	}
	for _, m := range []Params{p.HVParams, p.BEParams, p.OSParams} {
		normalizeJSON(m)
	}
	for _, n := range p.NICs {
		normalizeJSON(n.NICParams)
	}
	*e = ExportInfo(p)
	return nil
}

// Config is the whole configuration of the cluster: what the store holds
// and what a State is built from. Maps are keyed by UUID (OSes by name).
type Config struct {
	Cluster   *Cluster
	Nodes     map[string]*Node
	Groups    map[string]*Group
	Instances map[string]*Instance
	Networks  map[string]*Network
	OSes      map[string]*OS
	Filters   map[string]*FilterRule
	Exports   []Export

	// owned tracks the objects a copy-on-write copy may modify (see cow).
	owned map[any]bool
	// frozen marks a read-only snapshot (State.Snapshot): its Edit
	// methods refuse.
	frozen bool
}

// Clone returns a deep copy of c, which a writer may modify freely.
func (c *Config) Clone() *Config {
	out := &Config{
		Nodes:     make(map[string]*Node, len(c.Nodes)),
		Groups:    make(map[string]*Group, len(c.Groups)),
		Instances: make(map[string]*Instance, len(c.Instances)),
		Networks:  make(map[string]*Network, len(c.Networks)),
		OSes:      make(map[string]*OS, len(c.OSes)),
		Filters:   make(map[string]*FilterRule, len(c.Filters)),
		Exports:   append([]Export(nil), c.Exports...),
	}
	if c.Cluster != nil {
		out.Cluster = c.Cluster.clone()
	}
	for k, v := range c.Nodes {
		out.Nodes[k] = v.clone()
	}
	for k, v := range c.Groups {
		out.Groups[k] = v.clone()
	}
	for k, v := range c.Instances {
		out.Instances[k] = v.clone()
	}
	for k, v := range c.Networks {
		n := *v
		n.Gateway, n.Network6, n.Gateway6, n.MACPrefix = clonePtr(v.Gateway), clonePtr(v.Network6), clonePtr(v.Gateway6), clonePtr(v.MACPrefix)
		n.Tags = cloneStrings(v.Tags)
		out.Networks[k] = &n
	}
	for k, v := range c.OSes {
		o := *v
		o.Variants = cloneStrings(v.Variants)
		out.OSes[k] = &o
	}
	for k, v := range c.Filters {
		f := *v
		f.Predicates, _ = deepCopy(v.Predicates).([]any)
		f.Action = deepCopy(v.Action)
		f.ReasonTrail, _ = deepCopy(v.ReasonTrail).([]any)
		out.Filters[k] = &f
	}
	return out
}

func (c *Cluster) clone() *Cluster {
	o := *c
	o.Tags = cloneStrings(c.Tags)
	o.EnabledHypervisors = cloneStrings(c.EnabledHypervisors)
	o.EnabledDiskTemplates = cloneStrings(c.EnabledDiskTemplates)
	o.HVParams = cloneParamsMap(c.HVParams)
	o.OSHVP = make(map[string]map[string]Params, len(c.OSHVP))
	for k, v := range c.OSHVP {
		o.OSHVP[k] = cloneParamsMap(v)
	}
	o.BEParams = cloneParams(c.BEParams)
	o.OSParams = cloneParamsMap(c.OSParams)
	o.NICParams = cloneParams(c.NICParams)
	o.NDParams = cloneParams(c.NDParams)
	o.DiskParams = cloneParamsMap(c.DiskParams)
	o.IPolicy = cloneParams(c.IPolicy)
	o.VolumeGroupName = clonePtr(c.VolumeGroupName)
	o.DRBDUsermodeHelper = clonePtr(c.DRBDUsermodeHelper)
	o.UIDPool = append([][2]int64(nil), c.UIDPool...)
	o.DefaultIAllocatorParams = cloneParams(c.DefaultIAllocatorParams)
	o.ReservedLVs = cloneStrings(c.ReservedLVs)
	o.HiddenOS = cloneStrings(c.HiddenOS)
	o.BlacklistedOS = cloneStrings(c.BlacklistedOS)
	o.CompressionTools = cloneStrings(c.CompressionTools)
	o.EnabledDataCollectors = make(map[string]bool, len(c.EnabledDataCollectors))
	for k, v := range c.EnabledDataCollectors {
		o.EnabledDataCollectors[k] = v
	}
	o.DataCollectorInterval = make(map[string]int64, len(c.DataCollectorInterval))
	for k, v := range c.DataCollectorInterval {
		o.DataCollectorInterval[k] = v
	}
	o.Architecture = cloneStrings(c.Architecture)
	return &o
}

func (g *Group) clone() *Group {
	o := *g
	o.NDParams = cloneParams(g.NDParams)
	o.IPolicy = cloneParams(g.IPolicy)
	o.DiskParams = cloneParamsMap(g.DiskParams)
	o.Networks = cloneParamsMap(g.Networks)
	o.Tags = cloneStrings(g.Tags)
	return &o
}

func (n *Node) clone() *Node {
	o := *n
	o.NDParams = cloneParams(n.NDParams)
	o.Tags = cloneStrings(n.Tags)
	return &o
}

func (i *Instance) clone() *Instance {
	o := *i
	o.SecondaryNodes = cloneStrings(i.SecondaryNodes)
	o.Disks = make([]Disk, len(i.Disks))
	for k, d := range i.Disks {
		d.Name, d.Spindles = clonePtr(d.Name), clonePtr(d.Spindles)
		o.Disks[k] = d
	}
	o.NICs = make([]NIC, len(i.NICs))
	for k, n := range i.NICs {
		n.Name, n.IP, n.Network = clonePtr(n.Name), clonePtr(n.IP), clonePtr(n.Network)
		n.NICParams = cloneParams(n.NICParams)
		o.NICs[k] = n
	}
	o.BEParams = cloneParams(i.BEParams)
	o.HVParams = cloneParams(i.HVParams)
	o.OSParams = cloneParams(i.OSParams)
	o.NetworkPort = clonePtr(i.NetworkPort)
	o.Tags = cloneStrings(i.Tags)
	return &o
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// cloneStrings copies s; nil stays nil.
func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append(make([]string, 0, len(s)), s...)
}

func cloneParams(p Params) Params {
	if p == nil {
		return nil
	}
	m, _ := deepCopy(p).(map[string]any)
	return m
}

// cloneFlat copies a parameter dictionary whose values are scalars; nil
// gives an empty one.
func cloneFlat(p Params) Params {
	if p == nil {
		return Params{}
	}
	return maps.Clone(p)
}

func cloneParamsMap(m map[string]Params) map[string]Params {
	if m == nil {
		return nil
	}
	out := make(map[string]Params, len(m))
	for k, v := range m {
		out[k] = cloneParams(v)
	}
	return out
}

// deepCopy copies a JSON-like value so that the copy shares no mutable
// memory with v.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	case []string:
		return cloneStrings(x)
	case []int64:
		return append([]int64(nil), x...)
	case map[string]bool:
		m := make(map[string]bool, len(x))
		for k, e := range x {
			m[k] = e
		}
		return m
	case map[string]int64:
		m := make(map[string]int64, len(x))
		for k, e := range x {
			m[k] = e
		}
		return m
	default:
		return v
	}
}

// Copy-on-write editing ------------------------------------------------------

// cow returns a copy of c whose maps are new but share the objects with c.
// Model.Update hands such a copy to writers: they must change an existing
// object only through the Edit methods (which first replace it with a
// private deep copy), may add new objects and delete map entries. A commit
// writes exactly the objects that are not c's.
func (c *Config) cow() *Config {
	out := &Config{
		Cluster:   c.Cluster,
		Nodes:     make(map[string]*Node, len(c.Nodes)),
		Groups:    make(map[string]*Group, len(c.Groups)),
		Instances: make(map[string]*Instance, len(c.Instances)),
		Networks:  make(map[string]*Network, len(c.Networks)),
		OSes:      make(map[string]*OS, len(c.OSes)),
		Filters:   make(map[string]*FilterRule, len(c.Filters)),
		Exports:   append([]Export(nil), c.Exports...),
		owned:     map[any]bool{},
	}
	for k, v := range c.Nodes {
		out.Nodes[k] = v
	}
	for k, v := range c.Groups {
		out.Groups[k] = v
	}
	for k, v := range c.Instances {
		out.Instances[k] = v
	}
	for k, v := range c.Networks {
		out.Networks[k] = v
	}
	for k, v := range c.OSes {
		out.OSes[k] = v
	}
	for k, v := range c.Filters {
		out.Filters[k] = v
	}
	return out
}

// ErrFrozen is the panic value of an Edit method of a read-only snapshot
// (State.Snapshot).
var ErrFrozen = errors.New("cluster: the configuration snapshot is read-only")

// own marks obj as private to this copy; it reports whether it already was.
// On a read-only snapshot it panics with ErrFrozen.
func (c *Config) own(obj any) bool {
	if c.frozen {
		panic(ErrFrozen)
	}
	if c.owned == nil {
		// A Config not made by cow (e.g. from Clone) owns everything.
		return true
	}
	if c.owned[obj] {
		return true
	}
	c.owned[obj] = true
	return false
}

// EditCluster returns the cluster object, ready to be modified.
func (c *Config) EditCluster() *Cluster {
	if !c.own(c.Cluster) {
		c.Cluster = c.Cluster.clone()
		c.owned[c.Cluster] = true
	}
	return c.Cluster
}

// EditNode returns the node with the given UUID ready to be modified, or nil.
func (c *Config) EditNode(uuid string) *Node {
	n := c.Nodes[uuid]
	if n != nil && !c.own(n) {
		n = n.clone()
		c.Nodes[uuid] = n
		c.owned[n] = true
	}
	return n
}

// EditGroup returns the group with the given UUID ready to be modified, or nil.
func (c *Config) EditGroup(uuid string) *Group {
	g := c.Groups[uuid]
	if g != nil && !c.own(g) {
		g = g.clone()
		c.Groups[uuid] = g
		c.owned[g] = true
	}
	return g
}

// EditInstance returns the instance with the given UUID ready to be
// modified, or nil.
func (c *Config) EditInstance(uuid string) *Instance {
	i := c.Instances[uuid]
	if i != nil && !c.own(i) {
		i = i.clone()
		c.Instances[uuid] = i
		c.owned[i] = true
	}
	return i
}

// EditNetwork returns the network with the given UUID ready to be
// modified, or nil.
func (c *Config) EditNetwork(uuid string) *Network {
	n := c.Networks[uuid]
	if n != nil && !c.own(n) {
		cp := (&Config{Networks: map[string]*Network{uuid: n}}).Clone().Networks[uuid]
		c.Networks[uuid] = cp
		c.owned[cp] = true
		n = cp
	}
	return n
}

// EditFilter returns the filter rule with the given UUID ready to be
// modified, or nil.
func (c *Config) EditFilter(uuid string) *FilterRule {
	f := c.Filters[uuid]
	if f != nil && !c.own(f) {
		cp := (&Config{Filters: map[string]*FilterRule{uuid: f}}).Clone().Filters[uuid]
		c.Filters[uuid] = cp
		c.owned[cp] = true
		f = cp
	}
	return f
}

// NewExportInfo is what Ganeti's FinalizeExport writes to config.ini for
// inst: its OS, disk template, hypervisor, tags, disks, NICs, and its
// hypervisor (without the cluster-wide ones), backend, OS and NIC
// parameters filled with c's defaults.
func NewExportInfo(c *Cluster, inst *Instance) *ExportInfo {
	s := &State{cfg: &Config{Cluster: c}} // the fill helpers read only the cluster
	info := &ExportInfo{
		OS: inst.OS, Source: inst.PrimaryNode, DiskTemplate: inst.DiskTemplate, Hypervisor: inst.Hypervisor,
		Tags:     slices.Clone(inst.Tags),
		HVParams: s.instHVParams(inst), BEParams: s.instBEParams(inst), OSParams: s.instOSParams(inst),
	}
	for _, d := range inst.Disks {
		info.Disks = append(info.Disks, ExportDisk{Size: d.Size, Name: clonePtr(d.Name), Mode: d.Mode})
	}
	for _, n := range inst.NICs {
		info.NICs = append(info.NICs, ExportNIC{
			MAC: n.MAC, IP: clonePtr(n.IP), Network: clonePtr(n.Network), Name: clonePtr(n.Name),
			NICParams: fillParams(c.NICParams, n.NICParams),
		})
	}
	return info
}
