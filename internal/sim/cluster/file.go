package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
)

// File is a declarative cluster file: the cluster a fresh store is seeded
// with (see Open). ParseFile reads it from JSON strictly: unknown keys,
// wrong types, bad names, sizes or references are errors.
//
// Everything except cluster.name, cluster.master_node and the nodes is
// optional and defaults as "gnt-cluster init" would; uuid, ctime, mtime
// and serial_no may be given on every object so that a file reproduces a
// captured cluster exactly, and are generated (random v4 UUIDs, the clock)
// when absent. Sizes are MiB.
//
// A short example:
//
//	{
//	  "cluster": {"name": "cluster.example.com", "master_node": "node1.example.com",
//	              "enabled_disk_templates": ["diskless", "file", "plain", "drbd"],
//	              "nicparams": {"mode": "bridged", "link": "br0"}},
//	  "groups": [{"name": "default"}],
//	  "nodes": [{"name": "node1.example.com", "pip": "192.0.2.11", "mtotal": 65536, "mnode": 1024,
//	             "dtotal": 1048576, "ctotal": 16}],
//	  "oses": [{"name": "noop"}],
//	  "instances": [{"name": "web1.example.com", "os": "noop", "pnode": "node1.example.com",
//	                 "disk_template": "plain", "disks": [{"size": 10240}],
//	                 "beparams": {"maxmem": 2048, "minmem": 2048, "vcpus": 2}}]
//	}
type File struct {
	Cluster   FileCluster    `json:"cluster"`
	Groups    []FileGroup    `json:"groups"`
	Nodes     []FileNode     `json:"nodes"`
	OSes      []FileOS       `json:"oses"`
	Networks  []FileNetwork  `json:"networks"`
	Instances []FileInstance `json:"instances"`
	Filters   []FileFilter   `json:"filters"`
	Exports   []FileExport   `json:"exports"`

	// hasOSes records whether "oses" was given (absent means just noop).
	hasOSes bool
}

// FileMeta are the bookkeeping fields every object may carry.
type FileMeta struct {
	UUID     string   `json:"uuid"`
	CTime    *float64 `json:"ctime"`
	MTime    *float64 `json:"mtime"`
	SerialNo *int64   `json:"serial_no"`
	Tags     []string `json:"tags"`
}

// NullableString is a JSON string that may be null, remembering whether it
// was given at all.
type NullableString struct {
	Set   bool
	Value *string
}

// UnmarshalJSON implements json.Unmarshaler.
func (n *NullableString) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Value = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("must be a string or null")
	}
	n.Value = &s
	return nil
}

// FileCluster declares the cluster object.
type FileCluster struct {
	Name       string `json:"name"`
	MasterNode string `json:"master_node"`
	FileMeta

	EnabledHypervisors   []string                     `json:"enabled_hypervisors"`
	EnabledDiskTemplates []string                     `json:"enabled_disk_templates"`
	HVParams             map[string]Params            `json:"hvparams"`
	OSHVP                map[string]map[string]Params `json:"os_hvp"`
	BEParams             Params                       `json:"beparams"`
	OSParams             map[string]Params            `json:"osparams"`
	NICParams            Params                       `json:"nicparams"`
	NDParams             Params                       `json:"ndparams"`
	DiskParams           map[string]Params            `json:"diskparams"`
	IPolicy              Params                       `json:"ipolicy"`

	CandidatePoolSize            *int64           `json:"candidate_pool_size"`
	MaxRunningJobs               *int64           `json:"max_running_jobs"`
	MaxTrackedJobs               *int64           `json:"max_tracked_jobs"`
	MACPrefix                    *string          `json:"mac_prefix"`
	MasterNetdev                 *string          `json:"master_netdev"`
	MasterNetmask                *int64           `json:"master_netmask"`
	UseExternalMIPScript         *bool            `json:"use_external_mip_script"`
	VolumeGroupName              NullableString   `json:"volume_group_name"`
	DRBDUsermodeHelper           NullableString   `json:"drbd_usermode_helper"`
	FileStorageDir               *string          `json:"file_storage_dir"`
	SharedFileStorageDir         *string          `json:"shared_file_storage_dir"`
	GlusterStorageDir            *string          `json:"gluster_storage_dir"`
	MaintainNodeHealth           *bool            `json:"maintain_node_health"`
	UIDPool                      [][2]int64       `json:"uid_pool"`
	DefaultIAllocator            *string          `json:"default_iallocator"`
	DefaultIAllocatorParams      Params           `json:"default_iallocator_params"`
	ReservedLVs                  []string         `json:"reserved_lvs"`
	PrimaryIPVersion             *int64           `json:"primary_ip_version"`
	PreallocWipeDisks            *bool            `json:"prealloc_wipe_disks"`
	HiddenOS                     []string         `json:"hidden_os"`
	BlacklistedOS                []string         `json:"blacklisted_os"`
	InstallImage                 *string          `json:"install_image"`
	InstanceCommunicationNetwork *string          `json:"instance_communication_network"`
	ZeroingImage                 *string          `json:"zeroing_image"`
	CompressionTools             []string         `json:"compression_tools"`
	EnabledUserShutdown          *bool            `json:"enabled_user_shutdown"`
	EnabledDataCollectors        map[string]bool  `json:"enabled_data_collectors"`
	DataCollectorInterval        map[string]int64 `json:"data_collector_interval"`
	ModifySSHSetup               *bool            `json:"modify_ssh_setup"`
	SSHKeyType                   *string          `json:"ssh_key_type"`
	SSHKeyBits                   *int64           `json:"ssh_key_bits"`
	Architecture                 []string         `json:"architecture"`
}

// FileGroup declares a node group.
type FileGroup struct {
	Name string `json:"name"`
	FileMeta
	AllocPolicy string            `json:"alloc_policy"`
	NDParams    Params            `json:"ndparams"`
	IPolicy     Params            `json:"ipolicy"`
	DiskParams  map[string]Params `json:"diskparams"`
}

// FileNode declares a node and the hardware the fake hypervisor reports.
// mfree and dfree, when given, are the free memory and storage the node
// reports with the file's instances in place (the difference to the
// computed values is recorded as used by something else).
type FileNode struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	FileMeta
	PIP             string `json:"pip"`
	SIP             string `json:"sip"`
	MasterCandidate *bool  `json:"master_candidate"`
	Drained         bool   `json:"drained"`
	Offline         bool   `json:"offline"`
	MasterCapable   *bool  `json:"master_capable"`
	VMCapable       *bool  `json:"vm_capable"`
	Powered         *bool  `json:"powered"`
	NDParams        Params `json:"ndparams"`
	MTotal          *int64 `json:"mtotal"`
	MNode           *int64 `json:"mnode"`
	MFree           *int64 `json:"mfree"`
	DTotal          *int64 `json:"dtotal"`
	DFree           *int64 `json:"dfree"`
	CTotal          *int64 `json:"ctotal"`
	CNOs            *int64 `json:"cnos"`
	CNodes          *int64 `json:"cnodes"`
	CSockets        *int64 `json:"csockets"`
	Spindles        *int64 `json:"spindles"`
	BootID          string `json:"bootid"`
}

// FileOS declares an OS definition.
type FileOS struct {
	Name     string   `json:"name"`
	Variants []string `json:"variants"`
}

// FileNetwork declares an IPv4 network. The network and broadcast
// addresses and the gateway are reserved externally, as Ganeti does, plus
// reserved_ips.
type FileNetwork struct {
	Name string `json:"name"`
	FileMeta
	Network     string              `json:"network"`
	Gateway     *string             `json:"gateway"`
	Network6    *string             `json:"network6"`
	Gateway6    *string             `json:"gateway6"`
	MACPrefix   *string             `json:"mac_prefix"`
	ReservedIPs []string            `json:"reserved_ips"`
	Connections []FileNetConnection `json:"connections"`
}

// FileNetConnection connects a network to a node group.
type FileNetConnection struct {
	Group string `json:"group"`
	Mode  string `json:"mode"`
	Link  string `json:"link"`
	VLAN  string `json:"vlan"`
}

// FileInstance declares an instance of the fake hypervisor.
type FileInstance struct {
	Name string `json:"name"`
	FileMeta
	OS               string     `json:"os"`
	Hypervisor       string     `json:"hypervisor"`
	PNode            string     `json:"pnode"`
	SNode            string     `json:"snode"`
	DiskTemplate     string     `json:"disk_template"`
	Disks            []FileDisk `json:"disks"`
	NICs             *[]FileNIC `json:"nics"`
	BEParams         Params     `json:"beparams"`
	HVParams         Params     `json:"hvparams"`
	OSParams         Params     `json:"osparams"`
	AdminState       string     `json:"admin_state"`
	AdminStateSource string     `json:"admin_state_source"`
	DisksActive      *bool      `json:"disks_active"`
	NetworkPort      *int64     `json:"network_port"`
}

// FileDisk declares an instance disk.
type FileDisk struct {
	Size     int64   `json:"size"`
	Name     *string `json:"name"`
	Spindles *int64  `json:"spindles"`
	Mode     string  `json:"mode"`
	UUID     string  `json:"uuid"`
}

// FileNIC declares an instance NIC. ip may be "pool" for a NIC in a
// network: the first free address is taken.
type FileNIC struct {
	MAC     string  `json:"mac"`
	IP      *string `json:"ip"`
	Mode    string  `json:"mode"`
	Link    string  `json:"link"`
	VLAN    *string `json:"vlan"`
	Network string  `json:"network"`
	Name    *string `json:"name"`
	UUID    string  `json:"uuid"`
}

// FileFilter declares a job filter rule.
type FileFilter struct {
	UUID        string `json:"uuid"`
	Watermark   int64  `json:"watermark"`
	Priority    int64  `json:"priority"`
	Predicates  []any  `json:"predicates"`
	Action      any    `json:"action"`
	ReasonTrail []any  `json:"reason_trail"`
}

// FileExport declares an instance export kept on a node.
type FileExport struct {
	Node string `json:"node"`
	Name string `json:"name"`
}

// MaxSizeMiB is the largest memory or disk size, in MiB (1 EiB), of a
// cluster file and of any request: Ganeti has no limit (Python's ints are
// unbounded), but sizes here are int64 MiB whose sums must not overflow.
const MaxSizeMiB = 1 << 40

// Limits that keep a file (and the fuzzer) sane.
const (
	maxFileBytes   = 64 << 20
	maxObjects     = 100000
	maxDisks       = 16 // Ganeti's MAX_DISKS
	maxNICs        = 8  // Ganeti's MAX_NICS
	maxSizeMiB     = MaxSizeMiB
	maxNameLen     = 255
	minNetPrefix   = 16
	maxNetPrefix   = 30
	maxTimestamp   = 1e11
	maxSerial      = 1 << 53
	maxCPUs        = 1 << 20
	maxFilterPrio  = 1000
	maxVariants    = 1024
	maxListEntries = 4096
	// maxPoolAddrs bounds the addresses of all networks together (each
	// address costs two bytes of reservation maps).
	maxPoolAddrs = 1 << 22
)

var (
	nameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
	uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	macRe  = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	pfxRe  = regexp.MustCompile(`^[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$`)
	osRe   = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// ParseFile parses and validates a cluster file. It never panics; every
// problem is reported as an error naming the offending object.
func ParseFile(data []byte) (f *File, err error) {
	defer func() {
		// Defense in depth for the fuzzer: a bug must not crash the server.
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("cluster file: internal error: %v", r)
		}
	}()
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("cluster file: larger than %d bytes", maxFileBytes)
	}
	var raw struct {
		Cluster   json.RawMessage   `json:"cluster"`
		Groups    []json.RawMessage `json:"groups"`
		Nodes     []json.RawMessage `json:"nodes"`
		OSes      []json.RawMessage `json:"oses"`
		Networks  []json.RawMessage `json:"networks"`
		Instances []json.RawMessage `json:"instances"`
		Filters   []json.RawMessage `json:"filters"`
		Exports   []json.RawMessage `json:"exports"`
	}
	if err := decodeJSON(data, &raw, true); err != nil {
		return nil, fmt.Errorf("cluster file: %s", jsonErr(err))
	}
	f = &File{hasOSes: raw.OSes != nil}
	if raw.Cluster == nil || string(raw.Cluster) == "null" {
		return nil, errors.New("cluster file: missing \"cluster\" object")
	}
	if err := decodeJSON(raw.Cluster, &f.Cluster, true); err != nil {
		return nil, fmt.Errorf("cluster file: cluster: %s", jsonErr(err))
	}
	if err := decodeList("groups", raw.Groups, &f.Groups); err != nil {
		return nil, err
	}
	if err := decodeList("nodes", raw.Nodes, &f.Nodes); err != nil {
		return nil, err
	}
	if err := decodeList("oses", raw.OSes, &f.OSes); err != nil {
		return nil, err
	}
	if err := decodeList("networks", raw.Networks, &f.Networks); err != nil {
		return nil, err
	}
	if err := decodeList("instances", raw.Instances, &f.Instances); err != nil {
		return nil, err
	}
	if err := decodeList("filters", raw.Filters, &f.Filters); err != nil {
		return nil, err
	}
	if err := decodeList("exports", raw.Exports, &f.Exports); err != nil {
		return nil, err
	}
	// Building the configuration once with a deterministic id source runs
	// every check (references, pools, capacities) at parse time.
	if _, err := f.build(fixedClock, newDeterministicIDs()); err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	return f, nil
}

func decodeList[T any](what string, raws []json.RawMessage, out *[]T) error {
	if len(raws) > maxObjects {
		return fmt.Errorf("cluster file: more than %d %s", maxObjects, what)
	}
	*out = make([]T, len(raws))
	for i, r := range raws {
		if err := decodeJSON(r, &(*out)[i], true); err != nil {
			return fmt.Errorf("cluster file: %s[%d]: %s", what, i, jsonErr(err))
		}
	}
	return nil
}

// jsonErr makes encoding/json's messages read well in ours.
func jsonErr(err error) string {
	msg := strings.TrimPrefix(err.Error(), "json: ")
	msg = strings.Replace(msg, "unknown field", "unknown key", 1)
	return msg
}

// Name and value checks shared by the builders ---------------------------

func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s: missing name", what)
	}
	if len(name) > maxNameLen || !nameRe.MatchString(name) {
		return fmt.Errorf("%s: invalid name %q (letters, digits, '.', '_' and '-' only)", what, name)
	}
	return nil
}

// checkHostName is the rule of instance and node names (NormalizeHostname),
// which a cluster file must give already normalized.
func checkHostName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s: missing name", what)
	}
	if n, err := NormalizeHostname(name); err != nil || n != name {
		return fmt.Errorf("%s: invalid name %q (a host name: lower-case letters, digits, '.', '_' and '-', no empty label)", what, name)
	}
	return nil
}

// checkObjectName is the rule of node group and network names
// (ValidObjectName).
func checkObjectName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s: missing name", what)
	}
	if !ValidObjectName(name) {
		return fmt.Errorf("%s: invalid name %q (letters, digits, '.', '_' and '-' only)", what, name)
	}
	return nil
}

func checkTags(what string, tags []string) ([]string, error) {
	if len(tags) > MaxTagsPerObj {
		return nil, fmt.Errorf("%s: more than %d tags", what, MaxTagsPerObj)
	}
	out := make([]string, 0, len(tags))
	seen := map[string]bool{}
	for _, t := range tags {
		if err := ValidateTag(t); err != nil {
			return nil, fmt.Errorf("%s: invalid tag %q", what, t)
		}
		if seen[t] {
			return nil, fmt.Errorf("%s: duplicate tag %q", what, t)
		}
		seen[t] = true
		out = append(out, t)
	}
	sortStrings(out)
	return out, nil
}

func checkSize(what string, v *int64, def int64, min int64) (int64, error) {
	if v == nil {
		return def, nil
	}
	if *v < min || *v > maxSizeMiB {
		return 0, fmt.Errorf("%s must be between %d and %d", what, min, int64(maxSizeMiB))
	}
	return *v, nil
}

func checkCount(what string, v *int64, def, min int64) (int64, error) {
	if v == nil {
		return def, nil
	}
	if *v < min || *v > maxCPUs {
		return 0, fmt.Errorf("%s must be between %d and %d", what, min, maxCPUs)
	}
	return *v, nil
}

func checkTimestamp(what string, v *float64, def float64) (float64, error) {
	if v == nil {
		return def, nil
	}
	if math.IsNaN(*v) || *v < 0 || *v > maxTimestamp {
		return 0, fmt.Errorf("%s must be a Unix timestamp", what)
	}
	return *v, nil
}

// meta resolves the bookkeeping fields of an object.
type metaValues struct {
	uuid         string
	ctime, mtime float64
	serial       int64
	tags         []string
}

func (b *builder) meta(what string, m FileMeta) (metaValues, error) {
	var out metaValues
	var err error
	if out.uuid, err = b.uuid(what, m.UUID); err != nil {
		return out, err
	}
	if out.ctime, err = checkTimestamp(what+": ctime", m.CTime, b.now); err != nil {
		return out, err
	}
	if out.mtime, err = checkTimestamp(what+": mtime", m.MTime, out.ctime); err != nil {
		return out, err
	}
	out.serial = 1
	if m.SerialNo != nil {
		if *m.SerialNo < 0 || *m.SerialNo > maxSerial {
			return out, fmt.Errorf("%s: serial_no must be between 0 and %d", what, int64(maxSerial))
		}
		out.serial = *m.SerialNo
	}
	if out.tags, err = checkTags(what, m.Tags); err != nil {
		return out, err
	}
	return out, nil
}
