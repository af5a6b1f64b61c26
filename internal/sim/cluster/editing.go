package cluster

import (
	"fmt"
	"net/netip"
	"strings"
)

// Helpers for the job executors that change cluster, node, node group and
// network objects: parameter validation, merging, Ganeti's IPv4 address
// pool and a few lookups on a snapshot.

// CheckNDParams validates custom node parameters and returns a normalized
// copy (integers as int64, ...).
func CheckNDParams(p Params) (Params, error) { return checkParams(p, defaultNDParams) }

// CheckBEParams validates backend parameters.
func CheckBEParams(p Params) (Params, error) { return checkParams(p, defaultBEParams) }

// CheckNICParams validates NIC parameters (mode, link, vlan).
func CheckNICParams(p Params) (Params, error) { return checkParams(p, nicParamDefaults) }

// CheckHVParams validates the parameters of one hypervisor.
func CheckHVParams(hv string, p Params) (Params, error) {
	defs, ok := defaultHVParams[hv]
	if !ok {
		return nil, fmt.Errorf("unknown hypervisor %q", hv)
	}
	return checkParams(p, defs)
}

// CheckDiskParams validates the disk parameters of one disk template.
func CheckDiskParams(template string, p Params) (Params, error) {
	defs, ok := defaultDiskParams[template]
	if !ok {
		return nil, fmt.Errorf("unknown disk template %q", template)
	}
	return checkParams(p, defs)
}

// CheckIPolicy validates a (partial) instance policy and returns a
// normalized copy.
func CheckIPolicy(p Params) (Params, error) { return checkIPolicy(p) }

// CheckIPolicyStd checks that the std spec of a complete policy lies within
// its first min/max pair.
func CheckIPolicyStd(p Params) error { return checkIPolicyStd(p) }

// FillIPolicy overlays a custom policy over base.
func FillIPolicy(base, custom Params) Params { return fillIPolicy(base, custom) }

// CloneParams deep-copies a parameter dictionary (nil stays nil).
func CloneParams(p Params) Params { return cloneParams(p) }

// NiceCompare compares names in NiceSort order.
func NiceCompare(a, b string) int {
	switch {
	case niceLess(a, b):
		return -1
	case niceLess(b, a):
		return 1
	}
	return 0
}

// NiceSort sorts names as Ganeti's utils.NiceSort (numbers by value).
func NiceSort(names []string) { niceSort(names) }

// AllocPolicies returns Ganeti's node group allocation policies.
func AllocPolicies() []string { return cloneStrings(allocPolicies) }

// ValidMACPrefix reports whether p is a normalized three-octet MAC prefix.
func ValidMACPrefix(p string) bool { return pfxRe.MatchString(p) }

// MaxPoolAddrs bounds the addresses of all networks together.
const MaxPoolAddrs = maxPoolAddrs

// NetworkPool is Ganeti's network.AddressPool for one IPv4 network.
type NetworkPool struct{ p *addrPool }

// NewNetworkPool is AddressPool.InitializeNetwork without the gateway: a
// pool for cidr with the network and broadcast addresses reserved
// externally. Errors carry Ganeti's AddressPoolError messages.
func NewNetworkPool(cidr string) (*NetworkPool, error) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil || !prefix.Addr().Is4() {
		//lint:ignore ST1005 Ganeti's wire text
		return nil, fmt.Errorf("Invalid network address '%s'", cidr)
	}
	hosts := 1 << (32 - prefix.Bits())
	if prefix.Bits() < minNetPrefix {
		//lint:ignore ST1005 Ganeti's wire text
		return nil, fmt.Errorf("A big network with %d host(s) is currently not supported. please specify at most a /%d network", hosts, minNetPrefix)
	}
	if prefix.Bits() > maxNetPrefix {
		//lint:ignore ST1005 Ganeti's wire text
		return nil, fmt.Errorf("A network with only %d host(s) is too small, please specify at least a /%d network", hosts, maxNetPrefix)
	}
	p := newAddrPool(prefix.Masked())
	p.reserveExt(p.base)
	p.reserveExt(p.broadcast())
	return &NetworkPool{p: p}, nil
}

// PoolOf returns the address pool of a stored network.
func PoolOf(nw *Network) (*NetworkPool, error) {
	p, err := poolOf(nw)
	if err != nil {
		return nil, err
	}
	return &NetworkPool{p: p}, nil
}

// Size is the number of addresses of the pool.
func (np *NetworkPool) Size() int { return len(np.p.res) }

// Network is the pool's subnet in CIDR notation.
func (np *NetworkPool) Network() string { return np.p.prefix.Masked().String() }

// Contains reports whether ip is an IPv4 address of the network.
func (np *NetworkPool) Contains(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && np.p.contains(a)
}

func (np *NetworkPool) index(ip string) (int, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		//lint:ignore ST1005 Ganeti's wire text
		return 0, fmt.Errorf("Invalid IP address '%s'", ip)
	}
	if !np.p.contains(a) {
		return 0, fmt.Errorf("%s does not contain %s", np.p.prefix.Masked(), a)
	}
	return np.p.index(a), nil
}

func (np *NetworkPool) mapOf(external bool) addrMap {
	if external {
		return np.p.ext
	}
	return np.p.res
}

// Reserve is AddressPool.Reserve.
func (np *NetworkPool) Reserve(ip string, external bool) error {
	i, err := np.index(ip)
	if err != nil {
		return err
	}
	m := np.mapOf(external)
	if m[i] == 'X' {
		if external {
			return fmt.Errorf("IP %s is already externally reserved", ip)
		}
		return fmt.Errorf("IP %s is already used by an instance", ip)
	}
	m[i] = 'X'
	return nil
}

// IsReserved is AddressPool.IsReserved.
func (np *NetworkPool) IsReserved(ip string, external bool) (bool, error) {
	i, err := np.index(ip)
	if err != nil {
		return false, err
	}
	return np.mapOf(external)[i] == 'X', nil
}

// Release is AddressPool.Release.
func (np *NetworkPool) Release(ip string, external bool) error {
	i, err := np.index(ip)
	if err != nil {
		return err
	}
	m := np.mapOf(external)
	if m[i] != 'X' {
		if external {
			return fmt.Errorf("IP %s is not externally reserved", ip)
		}
		return fmt.Errorf("IP %s is not used by an instance", ip)
	}
	m[i] = '.'
	return nil
}

// Maps returns the reservation maps to store in a Network (Reservations,
// ExtReservations).
func (np *NetworkPool) Maps() (res, ext string) { return np.p.res.String(), np.p.ext.String() }

// Snapshot lookups ------------------------------------------------------------

// UUIDs returns the UUIDs of the nodes, groups or networks of the snapshot
// (nil for other resources).
func (s *State) UUIDs(resource string) []string {
	var out []string
	switch resource {
	case "node":
		for _, n := range s.nodes {
			out = append(out, n.UUID)
		}
	case "group":
		for _, g := range s.groups {
			out = append(out, g.UUID)
		}
	case "network":
		for _, n := range s.networks {
			out = append(out, n.UUID)
		}
	}
	return out
}

// GroupInstances returns the names of the instances with a primary or
// secondary node in the group (Ganeti's GetNodeGroupInstances), NiceSorted.
func (s *State) GroupInstances(groupUUID string) []string {
	var out []string
	for _, inst := range s.instances {
		in := s.cfg.Nodes[inst.PrimaryNode].Group == groupUUID
		for _, sn := range inst.SecondaryNodes {
			in = in || s.cfg.Nodes[sn].Group == groupUUID
		}
		if in {
			out = append(out, inst.Name)
		}
	}
	return out
}

// NodeByName resolves a node name (exact or unique short name) or UUID to
// its UUID and full name, as Ganeti's ExpandNodeUuidAndName.
func (s *State) NodeByName(name string) (uuid, full string, err error) {
	n, err := s.node(name)
	if err != nil {
		return "", "", err
	}
	return n.UUID, n.Name, nil
}

// GroupUUID resolves a node group name or UUID (Ganeti's LookupNodeGroup).
func (s *State) GroupUUID(name string) (string, bool) {
	g, ok := lookupName(s.groupByName, s.cfg.Groups, name)
	if !ok {
		return "", false
	}
	return g.UUID, true
}

// NetworkUUID resolves a network name or UUID (Ganeti's LookupNetwork).
func (s *State) NetworkUUID(name string) (string, bool) {
	n, ok := lookupName(s.networkByName, s.cfg.Networks, name)
	if !ok {
		return "", false
	}
	return n.UUID, true
}

// diskTemplateStorageType is Ganeti's MAP_DISK_TEMPLATE_STORAGE_TYPE: the
// storage type of each disk template.
var diskTemplateStorageType = map[string]string{
	"blockdev": "blockdev", "diskless": "diskless", "drbd": "lvm-vg", "ext": "ext", "file": "file",
	"gluster": "gluster", "plain": "lvm-vg", "rbd": "rados", "sharedfile": "sharedfile",
}

// StorageTypeOf returns the storage type of a disk template ("" for an
// unknown one).
func StorageTypeOf(template string) string { return diskTemplateStorageType[template] }

// IsEnabledStorage is Ganeti's CheckStorageTypeEnabled: whether a disk
// template of the storage type is enabled. lvm-pv cannot be enabled by a
// disk template and is checked as lvm-vg. It returns the storage type
// checked and the enabled templates joined by "," for Ganeti's message.
func IsEnabledStorage(c *Cluster, storageType string) (ok bool, checked, enabled string) {
	checked = storageType
	if checked == "lvm-pv" {
		checked = "lvm-vg"
	}
	for _, dt := range DiskTemplates {
		if diskTemplateStorageType[dt] == checked && contains(c.EnabledDiskTemplates, dt) {
			return true, checked, ""
		}
	}
	return false, checked, strings.Join(c.EnabledDiskTemplates, ",")
}
