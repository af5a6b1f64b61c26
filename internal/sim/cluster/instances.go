package cluster

import (
	"fmt"
	"strings"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Instance query fields. The fake hypervisor runs an instance when its
// admin state is up and its primary node is online: oper_state, oper_ram,
// oper_vcpus and status follow from that, as a real Ganeti reports them.

var instanceTable = newTable("instance", instanceGetters(),
	map[string]qffMode{"name": qffHostname, "pnode": qffHostname},
	func(s *State) []*instRow { return s.instRows },
	func(s *State, name string) (*instRow, error) {
		inst, err := s.instance(name)
		if err != nil {
			return nil, err
		}
		return s.instRowByUUID[inst.UUID], nil
	})

// instRow is an instance with the values of its most used query fields
// computed once per State (the bulk list reads them for every instance).
// Boxed scalars and list elements are immutable and may be shared; lists
// and maps are copied for every caller, except for shared queries (see
// State.QueryShared), which get the row's own values.
type instRow struct {
	*Instance
	pnode *Node

	name, os, adminState, adminSource, diskTemplate, uuid, pnodeName, status any
	ctime, mtime, serial, diskUsage, operRAM, operVCPUs                      any

	be, hv Params // merged parameters
	beMem  Params // be with rlib2's "memory" alias
	// customHV and customBE are the instance's own parameters, never nil;
	// customNIC the NICs' own parameters, boxed.
	customHV, customBE Params
	customNIC          any
	tags               any // boxed, never a nil list

	lists [numInstLists][]any
	boxed [numInstLists]any // lists, boxed
}

// The per-NIC and per-disk lists of an instRow.
const (
	lNICMACs = iota
	lNICIPs
	lNICNames
	lNICUUIDs
	lNICModes
	lNICLinks
	lNICBridges
	lNICNetworks
	lNICNetworkNames
	lDiskSizes
	lDiskSpindles
	lDiskNames
	lDiskUUIDs
	numInstLists
)

func newInstRow(s *State, inst *Instance) *instRow {
	r := &instRow{
		Instance: inst, pnode: s.cfg.Nodes[inst.PrimaryNode],
		name: inst.Name, os: inst.OS, adminState: inst.AdminState, adminSource: inst.AdminStateSource,
		diskTemplate: inst.DiskTemplate, uuid: inst.UUID, ctime: inst.CTime, mtime: inst.MTime,
		serial: inst.SerialNo, diskUsage: diskUsage(inst),
		be: s.instBEParams(inst), hv: s.instHVParams(inst),
		operRAM: inst.OperRAM, operVCPUs: inst.OperVCPUs,
		customHV: cloneFlat(inst.HVParams), customBE: cloneFlat(inst.BEParams), tags: strList(inst.Tags),
	}
	r.beMem = withMemoryAlias(cloneFlat(r.be))
	r.pnodeName = r.pnode.Name
	r.status = s.instanceStatus(inst)
	n := len(inst.NICs)
	for _, k := range []int{lNICMACs, lNICIPs, lNICNames, lNICUUIDs, lNICModes, lNICLinks, lNICBridges, lNICNetworks, lNICNetworkNames} {
		r.lists[k] = make([]any, n)
	}
	customNIC := make([]any, n)
	for k := range inst.NICs {
		nic := &inst.NICs[k]
		r.lists[lNICMACs][k], r.lists[lNICIPs][k] = nic.MAC, optString(nic.IP)
		r.lists[lNICNames][k], r.lists[lNICUUIDs][k] = optString(nic.Name), nic.UUID
		r.lists[lNICModes][k], r.lists[lNICLinks][k] = s.nicParam(nic, "mode"), s.nicParam(nic, "link")
		r.lists[lNICBridges][k] = s.nicBridge(nic)
		r.lists[lNICNetworks][k], r.lists[lNICNetworkNames][k] = optString(nic.Network), s.networkName(nic.Network)
		customNIC[k] = cloneFlat(nic.NICParams)
	}
	r.customNIC = customNIC
	d := len(inst.Disks)
	for _, k := range []int{lDiskSizes, lDiskSpindles, lDiskNames, lDiskUUIDs} {
		r.lists[k] = make([]any, d)
	}
	for k, disk := range inst.Disks {
		r.lists[lDiskSizes][k], r.lists[lDiskNames][k], r.lists[lDiskUUIDs][k] = disk.Size, optString(disk.Name), disk.UUID
		if disk.Spindles != nil {
			r.lists[lDiskSpindles][k] = *disk.Spindles
		}
	}
	for k := range r.lists {
		r.boxed[k] = r.lists[k]
	}
	return r
}

// copyList returns a fresh copy of a list of immutable values.
func copyList(l []any) []any { return append(make([]any, 0, len(l)), l...) }

func listGetter(list int) getter[*instRow] {
	return func(c *queryCtx, r *instRow) Cell {
		if c.shared {
			return normal(r.boxed[list])
		}
		return normal(copyList(r.lists[list]))
	}
}

// Instance statuses (constants.json instance_status).
const (
	StatusRunning        = "running"
	StatusAdminDown      = "ADMIN_down"
	StatusAdminOffline   = "ADMIN_offline"
	StatusErrorDown      = "ERROR_down"
	StatusErrorUp        = "ERROR_up"
	StatusNodeOffline    = "ERROR_nodeoffline"
	StatusUserDown       = "USER_down"
	StatusErrorNodeDown  = "ERROR_nodedown"
	StatusErrorWrongNode = "ERROR_wrongnode"
)

func osBase(name string) string {
	base, _, _ := strings.Cut(name, "+")
	return base
}

// instBEParams are the instance's backend parameters merged over the
// cluster's.
func (s *State) instBEParams(inst *Instance) Params {
	return fillParams(s.cfg.Cluster.BEParams, inst.BEParams)
}

// instHVParams are the merged hypervisor parameters without the
// cluster-wide ones (Ganeti's HVC_GLOBALS).
func (s *State) instHVParams(inst *Instance) Params {
	c := s.cfg.Cluster
	filled := Params{}
	for _, layer := range []Params{c.HVParams[inst.Hypervisor], c.OSHVP[osBase(inst.OS)][inst.Hypervisor], inst.HVParams} {
		for k, v := range layer {
			if !hvGlobalParams[k] {
				filled[k] = v
			}
		}
	}
	return filled
}

// instOSParams are the merged OS parameters.
func (s *State) instOSParams(inst *Instance) Params {
	c := s.cfg.Cluster
	p := fillParams(c.OSParams[osBase(inst.OS)], nil)
	if inst.OS != osBase(inst.OS) {
		p = fillParams(p, c.OSParams[inst.OS])
	}
	return fillParams(p, inst.OSParams)
}

func (s *State) pnode(inst *Instance) *Node { return s.cfg.Nodes[inst.PrimaryNode] }

// instanceStatus is Ganeti's status field for the fake hypervisor.
func (s *State) instanceStatus(inst *Instance) string {
	if s.pnode(inst).Offline {
		return StatusNodeOffline
	}
	userDown := s.cfg.Cluster.EnabledUserShutdown && inst.AdminStateSource == "user"
	if inst.Running {
		if inst.AdminState == AdminUp {
			return StatusRunning
		}
		return StatusErrorUp
	}
	switch inst.AdminState {
	case AdminUp:
		return StatusErrorDown
	case AdminOffline:
		return StatusAdminOffline
	}
	if userDown {
		return StatusUserDown
	}
	return StatusAdminDown
}

// diskUsage is Ganeti's disk_usage: the space the disks take on each node.
func diskUsage(inst *Instance) int64 {
	var sum int64
	for _, d := range inst.Disks {
		switch inst.DiskTemplate {
		case "diskless", "blockdev":
		case "drbd":
			sum += d.Size + defaultDRBDMetaSize
		default:
			sum += d.Size
		}
	}
	return sum
}

// nicParam is one of a NIC's parameters (mode, link, vlan), its own or
// the cluster's.
func (s *State) nicParam(nic *NIC, key string) any {
	if v, ok := nic.NICParams[key]; ok {
		return v
	}
	return s.cfg.Cluster.NICParams[key]
}

// nicBridge is the bridge of a bridged NIC (nil otherwise).
func (s *State) nicBridge(nic *NIC) any {
	if s.nicParam(nic, "mode") == "bridged" {
		return s.nicParam(nic, "link")
	}
	return nil
}

// nicVLAN is the VLAN of an Open vSwitch NIC (nil otherwise).
func (s *State) nicVLAN(nic *NIC) any {
	if s.nicParam(nic, "mode") == "openvswitch" {
		return s.nicParam(nic, "vlan")
	}
	return nil
}

func (s *State) networkName(uuid *string) any {
	if uuid == nil {
		return nil
	}
	if nw, ok := s.cfg.Networks[*uuid]; ok {
		return nw.Name
	}
	return nil
}

func instanceGetters() map[string]getter[*instRow] {
	g := map[string]getter[*instRow]{
		"name":               func(_ *queryCtx, i *instRow) Cell { return normal(i.name) },
		"admin_state":        func(_ *queryCtx, i *instRow) Cell { return normal(i.adminState) },
		"admin_state_source": func(_ *queryCtx, i *instRow) Cell { return normal(i.adminSource) },
		"admin_up":           func(_ *queryCtx, i *instRow) Cell { return normal(i.AdminState == AdminUp) },
		"disks_active":       func(_ *queryCtx, i *instRow) Cell { return normal(i.DisksActive) },
		"forthcoming":        func(*queryCtx, *instRow) Cell { return normal(false) },
		"hypervisor":         func(_ *queryCtx, i *instRow) Cell { return normal(i.Hypervisor) },
		"os":                 func(_ *queryCtx, i *instRow) Cell { return normal(i.os) },
		"network_port": func(_ *queryCtx, i *instRow) Cell {
			if i.NetworkPort == nil {
				return unavail
			}
			return normal(*i.NetworkPort)
		},
		"pnode": func(_ *queryCtx, i *instRow) Cell { return normal(i.pnodeName) },
		"pnode.group": func(c *queryCtx, i *instRow) Cell {
			return normal(c.s.cfg.Groups[i.pnode.Group].Name)
		},
		"pnode.group.uuid": func(_ *queryCtx, i *instRow) Cell { return normal(i.pnode.Group) },
		"snodes": func(c *queryCtx, i *instRow) Cell {
			out := make([]string, 0, len(i.SecondaryNodes))
			for _, u := range i.SecondaryNodes {
				out = append(out, c.s.cfg.Nodes[u].Name)
			}
			return normal(out)
		},
		"snodes.group": func(c *queryCtx, i *instRow) Cell {
			out := make([]string, 0, len(i.SecondaryNodes))
			for _, u := range i.SecondaryNodes {
				out = append(out, c.s.cfg.Groups[c.s.cfg.Nodes[u].Group].Name)
			}
			return normal(out)
		},
		"snodes.group.uuid": func(c *queryCtx, i *instRow) Cell {
			out := make([]string, 0, len(i.SecondaryNodes))
			for _, u := range i.SecondaryNodes {
				out = append(out, c.s.cfg.Nodes[u].Group)
			}
			return normal(out)
		},

		"hvparams": sharedOr(func(i *instRow) any { return i.hv }, func(i *instRow) any { return cloneFlat(i.hv) }),
		"beparams": sharedOr(func(i *instRow) any { return i.beMem }, func(i *instRow) any { return cloneFlat(i.beMem) }),
		"osparams": func(c *queryCtx, i *instRow) Cell { return normal(c.s.instOSParams(i.Instance)) },
		"custom_hvparams": sharedOr(func(i *instRow) any { return i.customHV },
			func(i *instRow) any { return cloneFlat(i.HVParams) }),
		"custom_beparams": sharedOr(func(i *instRow) any { return i.customBE },
			func(i *instRow) any { return cloneFlat(i.BEParams) }),
		"custom_osparams": func(_ *queryCtx, i *instRow) Cell { return normal(cloneFlat(i.OSParams)) },
		"custom_nicparams": sharedOr(func(i *instRow) any { return i.customNIC }, func(i *instRow) any {
			out := make([]any, len(i.NICs))
			for k := range i.NICs {
				out[k] = cloneFlat(i.NICs[k].NICParams)
			}
			return out
		}),

		// Disks.
		"disk_usage":    func(_ *queryCtx, i *instRow) Cell { return normal(i.diskUsage) },
		"disk.count":    func(_ *queryCtx, i *instRow) Cell { return normal(int64(len(i.Disks))) },
		"disk_template": func(_ *queryCtx, i *instRow) Cell { return normal(i.diskTemplate) },
		"disk.sizes":    listGetter(lDiskSizes),
		"disk.spindles": listGetter(lDiskSpindles),
		"disk.names":    listGetter(lDiskNames),
		"disk.uuids":    listGetter(lDiskUUIDs),

		// NICs.
		"nic.count":          func(_ *queryCtx, i *instRow) Cell { return normal(int64(len(i.NICs))) },
		"nic.macs":           listGetter(lNICMACs),
		"nic.ips":            listGetter(lNICIPs),
		"nic.names":          listGetter(lNICNames),
		"nic.uuids":          listGetter(lNICUUIDs),
		"nic.modes":          listGetter(lNICModes),
		"nic.links":          listGetter(lNICLinks),
		"nic.bridges":        listGetter(lNICBridges),
		"nic.networks":       listGetter(lNICNetworks),
		"nic.networks.names": listGetter(lNICNetworkNames),
		"nic.vlans":          nicList(func(s *State, n *NIC) any { return s.nicVLAN(n) }),

		// Runtime, from the fake hypervisor.
		"status": func(_ *queryCtx, i *instRow) Cell { return normal(i.status) },
		"oper_state": func(c *queryCtx, i *instRow) Cell {
			if i.pnode.Offline {
				return noData
			}
			return normal(i.Running)
		},
		"oper_ram": func(c *queryCtx, i *instRow) Cell {
			return operCell(c.s, i, i.operRAM)
		},
		"oper_vcpus": func(c *queryCtx, i *instRow) Cell {
			return operCell(c.s, i, i.operVCPUs)
		},
		"console": func(c *queryCtx, i *instRow) Cell {
			if i.pnode.Offline {
				return offline
			}
			return normal(consoleInfo(i.Instance))
		},
	}

	// be/<param> and hv/<param>.
	for name := range defaultBEParams {
		name := name
		g["be/"+name] = func(_ *queryCtx, i *instRow) Cell { return paramCell(i.be, name) }
	}
	g["be/memory"] = g["be/maxmem"]
	g["vcpus"] = g["be/vcpus"]
	for _, params := range defaultHVParams {
		for name := range params {
			if hvGlobalParams[name] {
				continue
			}
			name := name
			g["hv/"+name] = func(_ *queryCtx, i *instRow) Cell { return paramCell(i.hv, name) }
		}
	}

	// Per-disk and per-NIC fields.
	for k := 0; k < maxDisks; k++ {
		k := k
		disk := func(get func(d *Disk) Cell) getter[*instRow] {
			return func(_ *queryCtx, i *instRow) Cell {
				if k >= len(i.Disks) {
					return unavail
				}
				return get(&i.Disks[k])
			}
		}
		g[fmt.Sprintf("disk.size/%d", k)] = disk(func(d *Disk) Cell { return normal(d.Size) })
		g[fmt.Sprintf("disk.uuid/%d", k)] = disk(func(d *Disk) Cell { return normal(d.UUID) })
		g[fmt.Sprintf("disk.name/%d", k)] = disk(func(d *Disk) Cell { return optCell(d.Name) })
		g[fmt.Sprintf("disk.spindles/%d", k)] = disk(func(d *Disk) Cell {
			if d.Spindles == nil {
				return unavail
			}
			return normal(*d.Spindles)
		})
	}
	g["sda_size"] = g["disk.size/0"]
	g["sdb_size"] = g["disk.size/1"]
	for k := 0; k < maxNICs; k++ {
		k := k
		nic := func(get func(s *State, n *NIC) Cell) getter[*instRow] {
			return func(c *queryCtx, i *instRow) Cell {
				if k >= len(i.NICs) {
					return unavail
				}
				return get(c.s, &i.NICs[k])
			}
		}
		orUnavail := func(v any) Cell {
			if v == nil {
				return unavail
			}
			return normal(v)
		}
		g[fmt.Sprintf("nic.ip/%d", k)] = nic(func(_ *State, n *NIC) Cell { return optCell(n.IP) })
		g[fmt.Sprintf("nic.uuid/%d", k)] = nic(func(_ *State, n *NIC) Cell { return normal(n.UUID) })
		g[fmt.Sprintf("nic.mac/%d", k)] = nic(func(_ *State, n *NIC) Cell { return normal(n.MAC) })
		g[fmt.Sprintf("nic.name/%d", k)] = nic(func(_ *State, n *NIC) Cell { return optCell(n.Name) })
		g[fmt.Sprintf("nic.network/%d", k)] = nic(func(_ *State, n *NIC) Cell { return optCell(n.Network) })
		g[fmt.Sprintf("nic.mode/%d", k)] = nic(func(s *State, n *NIC) Cell { return normal(s.nicParam(n, "mode")) })
		g[fmt.Sprintf("nic.link/%d", k)] = nic(func(s *State, n *NIC) Cell { return normal(s.nicParam(n, "link")) })
		g[fmt.Sprintf("nic.vlan/%d", k)] = nic(func(s *State, n *NIC) Cell { return orUnavail(s.nicVLAN(n)) })
		g[fmt.Sprintf("nic.bridge/%d", k)] = nic(func(s *State, n *NIC) Cell { return orUnavail(s.nicBridge(n)) })
		g[fmt.Sprintf("nic.network.name/%d", k)] = nic(func(s *State, n *NIC) Cell {
			return orUnavail(s.networkName(n.Network))
		})
	}
	g["ip"] = g["nic.ip/0"]
	g["mac"] = g["nic.mac/0"]
	g["bridge"] = g["nic.bridge/0"]
	g["nic_mode"] = g["nic.mode/0"]
	g["nic_link"] = g["nic.link/0"]
	g["nic_network"] = g["nic.network/0"]

	commonGetters(g, func(i *instRow) (float64, float64, string, int64, []string) {
		return i.CTime, i.MTime, i.UUID, i.SerialNo, i.Tags
	})
	// The precomputed boxes save an allocation per cell.
	g["ctime"] = func(_ *queryCtx, i *instRow) Cell { return normal(i.ctime) }
	g["mtime"] = func(_ *queryCtx, i *instRow) Cell { return normal(i.mtime) }
	g["uuid"] = func(_ *queryCtx, i *instRow) Cell { return normal(i.uuid) }
	g["serial_no"] = func(_ *queryCtx, i *instRow) Cell { return normal(i.serial) }
	g["tags"] = sharedOr(func(i *instRow) any { return i.tags }, func(i *instRow) any { return strList(i.Tags) })
	return g
}

// sharedOr is a getter that returns the row's own value to shared queries
// and a fresh copy to the others.
func sharedOr(shared, fresh func(*instRow) any) getter[*instRow] {
	return func(c *queryCtx, i *instRow) Cell {
		if c.shared {
			return normal(shared(i))
		}
		return normal(fresh(i))
	}
}

func nicList(get func(s *State, n *NIC) any) getter[*instRow] {
	return func(c *queryCtx, i *instRow) Cell {
		out := make([]any, len(i.NICs))
		for k := range i.NICs {
			out[k] = get(c.s, &i.NICs[k])
		}
		return normal(out)
	}
}

// withMemoryAlias adds rlib2's "memory" key (= maxmem) to merged beparams.
// Ganeti's RAPI adds it to every instance object of the bulk list and the
// single GET (fields.json response_extras); since those are served by
// queries here, the beparams field always carries it (a real /2/query
// answer would not).
func withMemoryAlias(be Params) Params {
	if m, ok := be["maxmem"]; ok {
		be["memory"] = m
	}
	return be
}

func paramCell(p Params, name string) Cell {
	v, ok := p[name]
	if !ok {
		return unavail
	}
	return normal(v)
}

// operCell is a value the hypervisor reports for a running instance.
func operCell(s *State, i *instRow, v any) Cell {
	switch {
	case i.pnode.Offline:
		return offline
	case !i.Running:
		return unavail
	}
	return normal(v)
}

// Console returns the console information of a running instance, as GET
// /2/instances/[instance_name]/console does for the fake hypervisor.
func (s *State) Console(name string) (map[string]any, error) {
	inst, err := s.instance(name)
	if err != nil {
		return nil, err
	}
	if !inst.Running || s.cfg.Nodes[inst.PrimaryNode].Offline {
		return nil, errs.Unavailable("Instance console unavailable")
	}
	return consoleInfo(inst), nil
}

func consoleInfo(inst *Instance) map[string]any {
	return map[string]any{
		"instance": inst.Name,
		"kind":     "msg",
		"message":  "Console not available for fake hypervisor",
	}
}
