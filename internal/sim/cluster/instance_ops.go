package cluster

import "net/netip"

// Helpers for the job engine's instance executors: derived values computed
// from a (possibly modified, not yet committed) Config, and the parameter
// definitions the executors validate against.

// DRBDMetaSize is the MiB of DRBD metadata per disk (Ganeti's
// DRBD_META_SIZE).
const DRBDMetaSize = defaultDRBDMetaSize

// MaxDisks and MaxNICs are Ganeti's MAX_DISKS and MAX_NICS.
const (
	MaxDisks = maxDisks
	MaxNICs  = maxNICs
)

// NodeFree returns the memory and storage of node uuid that instances of
// cfg leave free (what the node query reports as mfree and dfree).
func (c *Config) NodeFree(uuid string) (mem, disk int64) {
	n := c.Nodes[uuid]
	if n == nil {
		return 0, 0
	}
	u := nodeUsage(c)[uuid]
	return n.MemTotal - n.MemNode - n.MemOther - u.mem, n.DiskTotal - n.DiskOther - u.disk
}

// LocalDiskUsage is the node-local storage an instance's disks take on each
// of its nodes (DRBD metadata included).
func LocalDiskUsage(inst *Instance) int64 { return localDiskUsage(inst) }

// GroupIPolicy is the effective instance policy of a node group.
func (c *Config) GroupIPolicy(groupUUID string) Params {
	var custom Params
	if g := c.Groups[groupUUID]; g != nil {
		custom = g.IPolicy
	}
	return fillIPolicy(c.Cluster.IPolicy, custom)
}

// InstanceBEParams are the instance's backend parameters filled with the
// cluster's.
func (c *Config) InstanceBEParams(inst *Instance) Params {
	return fillParams(c.Cluster.BEParams, inst.BEParams)
}

// FillParams returns defaults overlaid with custom, as a new map.
func FillParams(defaults, custom Params) Params { return fillParams(defaults, custom) }

// BEParamTypes returns the backend parameters with their default values
// (which give their types).
func BEParamTypes() Params { return cloneFlat(defaultBEParams) }

// HVParamTypes returns every hypervisor parameter (of any hypervisor) with
// a default value giving its type, and whether it is cluster-wide only.
func HVParamTypes() (types Params, global map[string]bool) {
	types = Params{}
	for _, hv := range Hypervisors {
		for k, v := range defaultHVParams[hv] {
			if _, ok := types[k]; !ok {
				types[k] = v
			}
		}
	}
	global = map[string]bool{}
	for k := range hvGlobalParams {
		global[k] = true
	}
	return types, global
}

// HypervisorParameters returns the parameters hypervisor hv supports
// (the PARAMETERS of Ganeti's hypervisor class), false for an unknown
// hypervisor. They are derived from the hypervisor's defaults
// (HVC_DEFAULTS, as a real cluster's /2/info publishes them): Ganeti's own
// unit tests hold both sets equal (test/py/ganeti.hypervisor_unittest.py).
func HypervisorParameters(hv string) (map[string]bool, bool) {
	defs, ok := defaultHVParams[hv]
	if !ok {
		return nil, false
	}
	out := make(map[string]bool, len(defs))
	for k := range defs {
		out[k] = true
	}
	return out, true
}

// IsMaybeStringParam reports whether a string parameter may also be null.
func IsMaybeStringParam(key string) bool { return maybeStringParams[key] }

// NICModes lists the valid NIC modes.
func NICModes() []string { return cloneStrings(nicModes) }

// MACPrefixOf returns the MAC prefix for a NIC in network netUUID ("" for
// none): the network's own prefix or the cluster's.
func (c *Config) MACPrefixOf(netUUID string) string {
	if nw := c.Networks[netUUID]; nw != nil && nw.MACPrefix != nil {
		return *nw.MACPrefix
	}
	return c.Cluster.MACPrefix
}

// UsedMACs returns the MAC addresses of every instance NIC.
func (c *Config) UsedMACs() map[string]bool {
	out := map[string]bool{}
	for _, inst := range c.Instances {
		for _, n := range inst.NICs {
			out[n.MAC] = true
		}
	}
	return out
}

// NetworkIPStatus tells whether ip belongs to network netUUID and whether
// it is reserved there.
func (c *Config) NetworkIPStatus(netUUID, ip string) (inNetwork, reserved bool) {
	nw := c.Networks[netUUID]
	if nw == nil {
		return false, false
	}
	pool, err := poolOf(nw)
	if err != nil {
		return false, false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || !pool.contains(a) {
		return false, false
	}
	return true, pool.reserved(a)
}

// NetworkFreeIP returns the first free address of network netUUID.
func (c *Config) NetworkFreeIP(netUUID string) (string, bool) {
	nw := c.Networks[netUUID]
	if nw == nil {
		return "", false
	}
	pool, err := poolOf(nw)
	if err != nil {
		return "", false
	}
	a, ok := pool.firstFree()
	if !ok {
		return "", false
	}
	return a.String(), true
}

// SetNetworkIP reserves (reserve) or releases an instance address of
// network netUUID; it reports whether ip belongs to the network.
func (c *Config) SetNetworkIP(netUUID, ip string, reserve bool) bool {
	nw := c.Networks[netUUID]
	if nw == nil {
		return false
	}
	pool, err := poolOf(nw)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || !pool.contains(a) {
		return false
	}
	if reserve {
		pool.reserve(a)
	} else {
		pool.res[pool.index(a)] = '.'
	}
	e := c.EditNetwork(netUUID)
	e.Reservations = pool.res.String()
	if e.ExtReservations == "" {
		e.ExtReservations = pool.ext.String()
	}
	return true
}
