package cluster

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// State is an immutable snapshot of the cluster: the configuration plus the
// indices and derived values (instances per node, free memory, ...) that the
// read API needs. Every read of one request should use one State (take it
// once with Model.State). Nothing reachable from a State may be modified;
// values returned by its methods are fresh copies the caller may keep.
type State struct {
	cfg *Config
	reg *registry
	rev int64 // the configuration's revision in the store (see persist.go)

	// Objects sorted as Ganeti lists them (NiceSort by name; filters by UUID).
	nodes     []*Node
	groups    []*Group
	instances []*Instance
	instRows  []*instRow // same order as instances
	networks  []*Network
	filters   []*FilterRule
	oses      []*OS

	nodeByName     map[string]*Node
	groupByName    map[string]*Group
	instanceByName map[string]*Instance
	networkByName  map[string]*Network

	instRowByUUID map[string]*instRow

	nodeStats  map[string]*nodeStats  // by node UUID
	groupStats map[string]*groupStats // by group UUID
	netStats   map[string]*netStats   // by network UUID
	pools      map[string]*addrPool   // by network UUID

	// sharedInfo is InfoShared's value, made on first use.
	infoOnce   sync.Once
	sharedInfo map[string]any
}

// nodeStats are values derived for one node.
type nodeStats struct {
	pinst, sinst []string // instance names, NiceSorted
	memUsed      int64    // oper_ram of running primary instances
	diskUsed     int64    // local storage used by instance disks
	fileUsed     int64    // apparent size of the file disks (MiB)
	spindlesUsed int64
}

type groupStats struct {
	nodes []string // node names, NiceSorted
	pinst []string // names of instances whose primary node is in the group
}

type netStats struct {
	instances []string
	groups    []any // [name, mode, link, vlan] per connected group
}

// newState indexes cfg and computes the derived values. It fails when the
// configuration is inconsistent (dangling references, duplicate names).
//
// prev, the State cfg was derived from (or nil), lets unchanged instances
// keep their precomputed query rows.
func newState(cfg *Config, reg *registry, prev *State) (*State, error) {
	if cfg == nil || cfg.Cluster == nil {
		return nil, fmt.Errorf("cluster: configuration without a cluster object")
	}
	s := &State{
		cfg:            cfg,
		reg:            reg,
		nodeByName:     make(map[string]*Node, len(cfg.Nodes)),
		groupByName:    make(map[string]*Group, len(cfg.Groups)),
		instanceByName: make(map[string]*Instance, len(cfg.Instances)),
		networkByName:  make(map[string]*Network, len(cfg.Networks)),
		nodeStats:      make(map[string]*nodeStats, len(cfg.Nodes)),
		groupStats:     make(map[string]*groupStats, len(cfg.Groups)),
		netStats:       make(map[string]*netStats, len(cfg.Networks)),
		pools:          make(map[string]*addrPool, len(cfg.Networks)),
	}
	for _, g := range cfg.Groups {
		if _, dup := s.groupByName[g.Name]; dup {
			return nil, fmt.Errorf("cluster: two groups named %s", g.Name)
		}
		s.groupByName[g.Name] = g
		s.groups = append(s.groups, g)
		s.groupStats[g.UUID] = &groupStats{nodes: []string{}, pinst: []string{}}
	}
	for _, n := range cfg.Nodes {
		if _, dup := s.nodeByName[n.Name]; dup {
			return nil, fmt.Errorf("cluster: two nodes named %s", n.Name)
		}
		gs, ok := s.groupStats[n.Group]
		if !ok {
			return nil, fmt.Errorf("cluster: node %s is in unknown group %s", n.Name, n.Group)
		}
		s.nodeByName[n.Name] = n
		s.nodes = append(s.nodes, n)
		s.nodeStats[n.UUID] = &nodeStats{pinst: []string{}, sinst: []string{}}
		gs.nodes = append(gs.nodes, n.Name)
	}
	if _, ok := cfg.Nodes[cfg.Cluster.MasterNode]; !ok {
		return nil, fmt.Errorf("cluster: master node %s is not a node", cfg.Cluster.MasterNode)
	}
	for _, nw := range cfg.Networks {
		if _, dup := s.networkByName[nw.Name]; dup {
			return nil, fmt.Errorf("cluster: two networks named %s", nw.Name)
		}
		pool, err := poolOf(nw)
		if err != nil {
			return nil, err
		}
		s.networkByName[nw.Name] = nw
		s.networks = append(s.networks, nw)
		s.pools[nw.UUID] = pool
		s.netStats[nw.UUID] = &netStats{instances: []string{}, groups: []any{}}
	}
	for _, inst := range cfg.Instances {
		if _, dup := s.instanceByName[inst.Name]; dup {
			return nil, fmt.Errorf("cluster: two instances named %s", inst.Name)
		}
		if _, ok := cfg.Nodes[inst.PrimaryNode]; !ok {
			return nil, fmt.Errorf("cluster: instance %s has unknown primary node %s", inst.Name, inst.PrimaryNode)
		}
		for _, sn := range inst.SecondaryNodes {
			if _, ok := cfg.Nodes[sn]; !ok {
				return nil, fmt.Errorf("cluster: instance %s has unknown secondary node %s", inst.Name, sn)
			}
		}
		s.instanceByName[inst.Name] = inst
		s.instances = append(s.instances, inst)
	}
	for uuid, u := range nodeUsage(cfg) {
		st := s.nodeStats[uuid]
		st.memUsed, st.diskUsed, st.spindlesUsed, st.fileUsed = u.mem, u.disk, u.spindles, u.file
	}
	for _, inst := range cfg.Instances {
		ps := s.nodeStats[inst.PrimaryNode]
		ps.pinst = append(ps.pinst, inst.Name)
		gs := s.groupStats[cfg.Nodes[inst.PrimaryNode].Group]
		gs.pinst = append(gs.pinst, inst.Name)
		for _, sn := range inst.SecondaryNodes {
			s.nodeStats[sn].sinst = append(s.nodeStats[sn].sinst, inst.Name)
		}
		seen := map[string]bool{}
		for _, nic := range inst.NICs {
			if nic.Network == nil {
				continue
			}
			ns, ok := s.netStats[*nic.Network]
			if !ok {
				return nil, fmt.Errorf("cluster: instance %s has a NIC in unknown network %s", inst.Name, *nic.Network)
			}
			if !seen[*nic.Network] {
				seen[*nic.Network] = true
				ns.instances = append(ns.instances, inst.Name)
			}
		}
	}
	for _, g := range cfg.Groups {
		for _, netUUID := range sortedKeys(g.Networks) {
			ns, ok := s.netStats[netUUID]
			if !ok {
				return nil, fmt.Errorf("cluster: group %s is connected to unknown network %s", g.Name, netUUID)
			}
			p := g.Networks[netUUID]
			ns.groups = append(ns.groups, []any{g.Name, valueOr(p["mode"], "-"), valueOr(p["link"], "-"), valueOr(p["vlan"], "-")})
		}
	}
	for _, ns := range s.netStats {
		niceSort(ns.instances)
		sort.SliceStable(ns.groups, func(i, j int) bool {
			return niceLess(ns.groups[i].([]any)[0].(string), ns.groups[j].([]any)[0].(string))
		})
	}
	for _, st := range s.nodeStats {
		niceSort(st.pinst)
		niceSort(st.sinst)
	}
	for _, gs := range s.groupStats {
		niceSort(gs.nodes)
		niceSort(gs.pinst)
	}
	for _, f := range cfg.Filters {
		s.filters = append(s.filters, f)
	}
	for _, o := range cfg.OSes {
		s.oses = append(s.oses, o)
	}
	sort.Slice(s.nodes, func(i, j int) bool { return niceLess(s.nodes[i].Name, s.nodes[j].Name) })
	sort.Slice(s.groups, func(i, j int) bool { return niceLess(s.groups[i].Name, s.groups[j].Name) })
	sort.Slice(s.instances, func(i, j int) bool { return niceLess(s.instances[i].Name, s.instances[j].Name) })
	sort.Slice(s.networks, func(i, j int) bool { return niceLess(s.networks[i].Name, s.networks[j].Name) })
	sort.Slice(s.filters, func(i, j int) bool { return s.filters[i].UUID < s.filters[j].UUID })
	sort.Slice(s.oses, func(i, j int) bool { return niceLess(s.oses[i].Name, s.oses[j].Name) })
	s.instRows = make([]*instRow, len(s.instances))
	s.instRowByUUID = make(map[string]*instRow, len(s.instances))
	for k, inst := range s.instances {
		r := prev.reusableRow(cfg, inst)
		if r == nil {
			r = newInstRow(s, inst)
		}
		s.instRows[k] = r
		s.instRowByUUID[inst.UUID] = r
	}
	return s, nil
}

// valueOr is a network's group parameter as Ganeti's network query shows
// it: the value when the group has one (even an empty string), def when
// it has none.
func valueOr(v any, def string) string {
	if s, ok := v.(string); ok {
		return s
	}
	return def
}

// Config returns a deep copy of the configuration, for a writer to modify
// and commit with Model.Update.
func (s *State) Config() *Config { return s.cfg.Clone() }

// Snapshot returns the configuration as a read-only snapshot, in O(1):
// its Edit methods panic with ErrFrozen; its maps and objects are the
// state's own and must not be modified.
func (s *State) Snapshot() *Config {
	c := *s.cfg
	c.owned, c.frozen = nil, true
	return &c
}

// Master returns the master node's name.
func (s *State) Master() string { return s.cfg.Nodes[s.cfg.Cluster.MasterNode].Name }

// usage is what instances use on one node.
type usage struct{ mem, disk, spindles, file int64 }

// nodeUsage computes, per node UUID, the memory of running primary
// instances, the local storage (and spindles) of instance disks and the
// apparent size of the file disks in the file storage directory.
func nodeUsage(cfg *Config) map[string]usage {
	out := make(map[string]usage, len(cfg.Nodes))
	for _, inst := range cfg.Instances {
		if inst.Running {
			u := out[inst.PrimaryNode]
			u.mem += inst.OperRAM
			out[inst.PrimaryNode] = u
		}
		nodes := []string{inst.PrimaryNode}
		if inst.DiskTemplate == "drbd" {
			nodes = append(nodes, inst.SecondaryNodes...)
		}
		if inst.DiskTemplate == "file" {
			u := out[inst.PrimaryNode]
			for _, d := range inst.Disks {
				u.file += d.Size
			}
			out[inst.PrimaryNode] = u
		}
		disk := localDiskUsage(inst)
		var spindles int64
		for _, d := range inst.Disks {
			if d.Spindles != nil {
				spindles += *d.Spindles
			}
		}
		for _, n := range nodes {
			u := out[n]
			u.disk += disk
			u.spindles += spindles
			out[n] = u
		}
	}
	return out
}

// localDiskUsage is the node-local storage an instance's disks take on each
// of its nodes: file and plain disks on the primary, DRBD disks plus their
// metadata on both nodes; shared and external storage takes none.
func localDiskUsage(inst *Instance) int64 {
	var sum int64
	// Only LVM-backed templates take space from the node's volume group.
	// File disks are sparse files, and Ganeti measures a node's free space
	// on the filesystem, so creating or growing them barely moves dfree
	// (captures seq 8, 93 and 289: 77869 before and after a 1024 MiB file
	// disk).
	switch inst.DiskTemplate {
	case "plain":
		for _, d := range inst.Disks {
			sum += d.Size
		}
	case "drbd":
		for _, d := range inst.Disks {
			sum += d.Size + defaultDRBDMetaSize
		}
	}
	return sum
}

// Lookups ---------------------------------------------------------------------

// lookupName finds an object by exact name, by UUID, or by a unique short
// name ("node1" for "node1.example.com"), as Ganeti's name expansion does.
func lookupName[T any](byName map[string]*T, byUUID map[string]*T, name string) (*T, bool) {
	if v, ok := byName[name]; ok {
		return v, true
	}
	if v, ok := byUUID[name]; ok {
		return v, true
	}
	var found *T
	for n, v := range byName {
		if strings.HasPrefix(n, name+".") {
			if found != nil {
				return nil, false // ambiguous
			}
			found = v
		}
	}
	return found, found != nil
}

func (s *State) node(name string) (*Node, error) {
	if n, ok := lookupName(s.nodeByName, s.cfg.Nodes, name); ok {
		return n, nil
	}
	return nil, errs.NotFound("Node", name)
}

func (s *State) instance(name string) (*Instance, error) {
	if i, ok := lookupName(s.instanceByName, s.cfg.Instances, name); ok {
		return i, nil
	}
	return nil, errs.NotFound("Instance", name)
}

func (s *State) group(name string) (*Group, error) {
	if g, ok := lookupName(s.groupByName, s.cfg.Groups, name); ok {
		return g, nil
	}
	return nil, errs.NotFound("Group", name)
}

func (s *State) network(name string) (*Network, error) {
	if n, ok := lookupName(s.networkByName, s.cfg.Networks, name); ok {
		return n, nil
	}
	return nil, errs.NotFound("Network", name)
}

func (s *State) filter(uuid string) (*FilterRule, error) {
	if f, ok := s.cfg.Filters[strings.ToLower(uuid)]; ok {
		return f, nil
	}
	return nil, errs.NotFound("Filter", uuid)
}

// Simple read API ---------------------------------------------------------------

// Names returns the names of resource's objects in Ganeti's order (what the
// non-bulk lists show): NiceSorted names for node, instance, group and
// network, UUIDs for filter. Other resources have no names (nil).
func (s *State) Names(resource string) []string {
	var out []string
	switch resource {
	case "node":
		for _, n := range s.nodes {
			out = append(out, n.Name)
		}
	case "instance":
		for _, i := range s.instances {
			out = append(out, i.Name)
		}
	case "group":
		for _, g := range s.groups {
			out = append(out, g.Name)
		}
	case "network":
		for _, n := range s.networks {
			out = append(out, n.Name)
		}
	case "filter":
		for _, f := range s.filters {
			out = append(out, f.UUID)
		}
	default:
		return nil
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// Tags returns the sorted tags of an object: kind is cluster (name
// ignored), node, nodegroup, instance or network.
func (s *State) Tags(kind, name string) ([]string, error) {
	var tags []string
	switch kind {
	case TagCluster:
		tags = s.cfg.Cluster.Tags
	case TagNode:
		n, err := s.node(name)
		if err != nil {
			return nil, err
		}
		tags = n.Tags
	case TagNodeGroup:
		g, err := s.group(name)
		if err != nil {
			return nil, err
		}
		tags = g.Tags
	case TagInstance:
		i, err := s.instance(name)
		if err != nil {
			return nil, err
		}
		tags = i.Tags
	case TagNetwork:
		n, err := s.network(name)
		if err != nil {
			return nil, err
		}
		tags = n.Tags
	default:
		return nil, errs.Prereq(errs.CodeInval, "Invalid tag kind '%s'", kind)
	}
	return nonNil(cloneStrings(tags)), nil
}

// OSNames returns what GET /2/os lists: each OS name, or name+variant for
// every variant of an OS that has variants.
func (s *State) OSNames() []string {
	out := []string{}
	for _, o := range s.oses {
		if len(o.Variants) == 0 {
			out = append(out, o.Name)
			continue
		}
		for _, v := range o.Variants {
			out = append(out, o.Name+"+"+v)
		}
	}
	return out
}

// reusableRow returns prev's query row of inst if everything it was
// computed from is unchanged in cfg: objects are never modified in place
// (see Config.cow), so comparing pointers is enough.
func (prev *State) reusableRow(cfg *Config, inst *Instance) *instRow {
	if prev == nil || prev.cfg.Cluster != cfg.Cluster {
		return nil
	}
	r := prev.instRowByUUID[inst.UUID]
	if r == nil || r.Instance != inst || r.pnode != cfg.Nodes[inst.PrimaryNode] {
		return nil
	}
	for _, nic := range inst.NICs {
		if nic.Network != nil && prev.cfg.Networks[*nic.Network] != cfg.Networks[*nic.Network] {
			return nil
		}
	}
	return r
}
