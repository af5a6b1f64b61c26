package cluster

import "github.com/ganeti-gateway/ganeti-gateway/internal/errs"

// Node query fields. The hardware values ("live" fields in Ganeti: memory,
// storage, CPUs, boot id) come from the fake hypervisor; an offline node
// reports them with status offline, as Ganeti does.

var nodeTable = newTable("node", nodeGetters(), map[string]qffMode{"name": qffHostname},
	func(s *State) []*Node { return s.nodes },
	func(s *State, name string) (*Node, error) { return s.node(name) })

// nodeNDParams returns the node's parameters merged over its group's and
// the cluster's.
func (s *State) nodeNDParams(n *Node) Params {
	group := s.cfg.Groups[n.Group]
	return fillParams(fillParams(s.cfg.Cluster.NDParams, group.NDParams), n.NDParams)
}

// live wraps a hardware value: an offline node reports none.
func live(n *Node, v any) Cell {
	if n.Offline {
		return offline
	}
	return normal(v)
}

// memFree is the memory available for instance allocations on n.
func (s *State) memFree(n *Node) int64 {
	return n.MemTotal - n.MemNode - n.MemOther - s.nodeStats[n.UUID].memUsed
}

// diskFree is the free space of n's storage unit.
func (s *State) diskFree(n *Node) int64 {
	return n.DiskTotal - n.DiskOther - s.nodeStats[n.UUID].diskUsed
}

func nodeGetters() map[string]getter[*Node] {
	g := map[string]getter[*Node]{
		"name":             func(_ *queryCtx, n *Node) Cell { return normal(n.Name) },
		"drained":          func(_ *queryCtx, n *Node) Cell { return normal(n.Drained) },
		"master_candidate": func(_ *queryCtx, n *Node) Cell { return normal(n.MasterCandidate) },
		"master_capable":   func(_ *queryCtx, n *Node) Cell { return normal(n.MasterCapable) },
		"offline":          func(_ *queryCtx, n *Node) Cell { return normal(n.Offline) },
		"vm_capable":       func(_ *queryCtx, n *Node) Cell { return normal(n.VMCapable) },
		"pip":              func(_ *queryCtx, n *Node) Cell { return normal(n.PrimaryIP) },
		"sip":              func(_ *queryCtx, n *Node) Cell { return normal(n.SecondaryIP) },
		"master": func(c *queryCtx, n *Node) Cell {
			return normal(n.UUID == c.s.cfg.Cluster.MasterNode)
		},
		"group":      func(c *queryCtx, n *Node) Cell { return normal(c.s.cfg.Groups[n.Group].Name) },
		"group.uuid": func(_ *queryCtx, n *Node) Cell { return normal(n.Group) },
		"ndparams":   func(c *queryCtx, n *Node) Cell { return normal(c.s.nodeNDParams(n)) },
		"custom_ndparams": func(c *queryCtx, n *Node) Cell {
			return normal(c.params(n.NDParams))
		},
		"pinst_cnt":  func(c *queryCtx, n *Node) Cell { return normal(int64(len(c.s.nodeStats[n.UUID].pinst))) },
		"sinst_cnt":  func(c *queryCtx, n *Node) Cell { return normal(int64(len(c.s.nodeStats[n.UUID].sinst))) },
		"pinst_list": func(c *queryCtx, n *Node) Cell { return normal(c.strs(c.s.nodeStats[n.UUID].pinst)) },
		"sinst_list": func(c *queryCtx, n *Node) Cell { return normal(c.strs(c.s.nodeStats[n.UUID].sinst)) },
		"role":       func(c *queryCtx, n *Node) Cell { return normal(c.s.roleCode(n)) },
		"powered": func(c *queryCtx, n *Node) Cell {
			// Without an out-of-band program Ganeti cannot tell.
			if oob, _ := c.s.nodeNDParams(n)["oob_program"].(string); oob == "" {
				return unavail
			}
			return normal(n.Powered)
		},
		// Declared for parity with Ganeti, which does not implement them.
		"hv_state":   func(*queryCtx, *Node) Cell { return unavail },
		"disk_state": func(*queryCtx, *Node) Cell { return unavail },

		// Hardware, as the fake hypervisor reports it.
		"bootid":   func(_ *queryCtx, n *Node) Cell { return live(n, n.BootID) },
		"cnodes":   func(_ *queryCtx, n *Node) Cell { return live(n, n.CPUNodes) },
		"cnos":     func(_ *queryCtx, n *Node) Cell { return live(n, n.CPUNodeOS) },
		"csockets": func(_ *queryCtx, n *Node) Cell { return live(n, n.CPUSockets) },
		"ctotal":   func(_ *queryCtx, n *Node) Cell { return live(n, n.CPUTotal) },
		"mtotal":   func(_ *queryCtx, n *Node) Cell { return live(n, n.MemTotal) },
		"mnode":    func(_ *queryCtx, n *Node) Cell { return live(n, n.MemNode) },
		"mfree":    func(c *queryCtx, n *Node) Cell { return live(n, c.s.memFree(n)) },
		"dtotal":   func(_ *queryCtx, n *Node) Cell { return live(n, n.DiskTotal) },
		"dfree":    func(c *queryCtx, n *Node) Cell { return live(n, c.s.diskFree(n)) },
		// Spindles are reported with exclusive storage only.
		"sptotal": func(c *queryCtx, n *Node) Cell {
			if n.Offline {
				return offline
			}
			if es, _ := c.s.nodeNDParams(n)["exclusive_storage"].(bool); !es {
				return noData
			}
			return normal(n.Spindles)
		},
		"spfree": func(c *queryCtx, n *Node) Cell {
			if n.Offline {
				return offline
			}
			if es, _ := c.s.nodeNDParams(n)["exclusive_storage"].(bool); !es {
				return noData
			}
			return normal(n.Spindles - c.s.nodeStats[n.UUID].spindlesUsed)
		},
	}
	ndpGetters(g, func(c *queryCtx, n *Node) Params { return c.s.nodeNDParams(n) })
	commonGetters(g, func(n *Node) (float64, float64, string, int64, []string) {
		return n.CTime, n.MTime, n.UUID, n.SerialNo, n.Tags
	})
	return g
}

// ndpGetters adds the ndp/<param> fields, read from merged ndparams.
func ndpGetters[T any](g map[string]getter[T], merged func(*queryCtx, T) Params) {
	for name := range defaultNDParams {
		name := name
		g["ndp/"+name] = func(c *queryCtx, it T) Cell {
			v, ok := merged(c, it)[name]
			if !ok {
				return unavail
			}
			return normal(v)
		}
	}
}

func nonNilParams(p Params) Params {
	if p == nil {
		return Params{}
	}
	return p
}

// NodeRole returns the role of a node as GET /2/nodes/[node_name]/role
// shows it: master, master-candidate, regular, drained or offline.
func (s *State) NodeRole(name string) (string, error) {
	n, err := s.node(name)
	if err != nil {
		return "", err
	}
	return roleNames[s.roleCode(n)], nil
}

var roleNames = map[string]string{"M": RoleMaster, "C": RoleCandidate, "D": RoleDrained, "O": RoleOffline, "R": RoleRegular}

// roleCode is the one-letter role of the node query's "role" field.
func (s *State) roleCode(n *Node) string {
	switch {
	case n.UUID == s.cfg.Cluster.MasterNode:
		return "M"
	case n.MasterCandidate:
		return "C"
	case n.Drained:
		return "D"
	case n.Offline:
		return "O"
	default:
		return "R"
	}
}

// StorageUnit is one storage unit of a node (GET /2/nodes/[n]/storage).
type StorageUnit struct {
	Name        string
	Type        string
	Size        int64 // MiB
	Used        int64
	Free        int64
	Allocatable bool
}

// StorageUnits returns the storage units of a node for a storage type: the
// file storage directory for "file" (when file is enabled), the volume
// group for "lvm-vg" and its physical volume PVName for "lvm-pv" (when
// plain or drbd is enabled), none otherwise. The allocatable flag is the
// one OP_NODE_MODIFY_STORAGE set.
func (s *State) StorageUnits(node, storageType string) ([]StorageUnit, error) {
	n, err := s.node(node)
	if err != nil {
		return nil, err
	}
	if !contains(StorageTypes, storageType) {
		return nil, errs.Prereq(errs.CodeInval, "Unknown storage type: %s", storageType)
	}
	c := s.cfg.Cluster
	free := n.DiskTotal - n.DiskOther - s.nodeStats[n.UUID].diskUsed
	unit := StorageUnit{Type: storageType, Size: n.DiskTotal, Used: s.nodeStats[n.UUID].diskUsed, Free: free, Allocatable: true}
	switch {
	case storageType == "file" && contains(c.EnabledDiskTemplates, "file"):
		// Ganeti's "used" of a directory is the apparent size of its files.
		unit.Name, unit.Used = c.FileStorageDir, s.nodeStats[n.UUID].fileUsed
	case storageType == "lvm-vg" && c.VolumeGroupName != nil &&
		(contains(c.EnabledDiskTemplates, "plain") || contains(c.EnabledDiskTemplates, "drbd")):
		unit.Name = *c.VolumeGroupName
	case storageType == "lvm-pv" && c.VolumeGroupName != nil &&
		(contains(c.EnabledDiskTemplates, "plain") || contains(c.EnabledDiskTemplates, "drbd")):
		unit.Name = PVName
	default:
		return []StorageUnit{}, nil
	}
	unit.Allocatable = c.StorageAllocatable(n.UUID, storageType, unit.Name)
	return []StorageUnit{unit}, nil
}
