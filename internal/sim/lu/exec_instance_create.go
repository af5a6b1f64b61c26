package lu

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/impexp"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// InstanceCreate implements OP_INSTANCE_CREATE (Ganeti's LUInstanceCreate)
// in modes "create", "import" and "remote-import" on the fake hypervisor.
// Without pnode, the iallocator (hail when installed, else a built-in
// allocator that picks the usable node with the most free memory and, for
// drbd, the next one as secondary) chooses the nodes. The result is the list of the
// instance's node names (node UUIDs in dry-run mode).
//
// An import (mode "import") reads an export kept on a node (src_node and
// src_path, relative to Ganeti's export directory or absolute under it;
// without src_node, the export named src_path, by default the instance
// name, is searched on every node), fills the parameters the opcode does
// not give from what the export recorded (Ganeti's _ReadExportParams: the
// OS always; disks, NICs, tags, hypervisor when not given; hypervisor,
// backend and OS parameters key by key), then creates the instance as
// mode "create" does, the disk data being copied (simulated) from the
// export.
//
// A remote import (move-instance's destination side) checks the source
// cluster's handshake and signed CA with the cluster domain secret, then
// (Run, with the locks held) listens for each disk and publishes where in
// a "remote-import" log entry, and waits for the source cluster's export;
// only when every disk arrived does Exec add the instance. A failure or a
// timeout leaves no instance.
//
// It is an opexec.Phased executor (Check plans the allocation, Apply
// applies), except in remote-import mode, whose disk transfer is network
// I/O: that runs in the Runner phase (Run, before Check, outside any
// transaction), which hands Apply only the fact that the disks arrived.
type InstanceCreate struct {
	// Remote configures the remote-import mode (nil: DefaultExecutors'
	// one).
	Remote *Remote
}

// createParams is the opcode with its instance name validated and
// normalized (CheckArguments: Hostname.GetNormalizedName): when the name
// changes (upper case, trailing dots), a copy with the normalized name,
// so the job's own opcode is never modified.
func createParams(op proto.Message) (*rapiv2.OpInstanceCreate, error) {
	m, ok := op.(*rapiv2.OpInstanceCreate)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	name, err := cluster.NormalizeHostname(m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	if name != m.GetInstanceName() {
		m = proto.Clone(m).(*rapiv2.OpInstanceCreate)
		m.InstanceName = proto.String(name)
	}
	return m, nil
}

// createArgs is CheckArguments of LUInstanceCreate: checks that need no
// configuration.
func createArgs(m *rapiv2.OpInstanceCreate) error {
	if isImport(m) && m.GetSrcNode() == "" && path.IsAbs(importPath(m)) {
		return errs.Prereq(errs.CodeInval, "Importing an instance from a path requires a source node option")
	}
	nameCheck := m.NameCheck == nil || m.GetNameCheck()
	ipCheck := m.IpCheck == nil || m.GetIpCheck()
	if nameCheck {
		if err := resolveName(m.GetInstanceName()); err != nil {
			return err
		}
	} else if ipCheck {
		return errs.Prereq(errs.CodeInval, "Cannot do IP address check without a name check")
	}
	if m.GetPnode() != "" && m.GetIallocator() != "" {
		return errs.Prereq(errs.CodeInval, "Do not specify both, iallocator and node")
	}
	return nil
}

// Locks implements Executor: the new instance's name, and its nodes (every
// node when the allocator chooses them), exclusively at node and node-res
// level.
func (c InstanceCreate) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	locks, _, err := c.LocksParams(op, st)
	return locks, err
}

// Ganeti constants LUInstanceCreate fills in.
const (
	helperVMStartup   = 5 * 60   // HELPER_VM_STARTUP, seconds
	helperVMShutdown  = 2 * 3600 // HELPER_VM_SHUTDOWN, seconds
	fileDriverDefault = "loop"   // FD_DEFAULT
)

// fileBased are Ganeti's DTS_FILEBASED disk templates.
var fileBased = []string{"file", "sharedfile", "gluster"}

// LocksParams is Locks with the parameters LUInstanceCreate's
// CheckArguments and ExpandNames write back: the helper VM timeouts, the
// file driver of a file-based template, the default disk template and
// iallocator, the primary and secondary node uuids and full names, an
// import's source.
func (InstanceCreate) LocksParams(op proto.Message, st *cluster.State) ([]opexec.Lock, []opexec.ParamWrite, error) {
	m, err := createParams(op)
	if err != nil {
		return nil, nil, err
	}
	if err := createArgs(m); err != nil {
		return nil, nil, err
	}
	info := st.InfoShared()
	var w []opexec.ParamWrite
	if m.HelperStartupTimeout == nil {
		w = append(w, opexec.ParamWrite{Name: "helper_startup_timeout", Value: helperVMStartup})
	}
	if m.HelperShutdownTimeout == nil {
		w = append(w, opexec.ParamWrite{Name: "helper_shutdown_timeout", Value: helperVMShutdown})
	}
	template := ""
	if m.DiskTemplate != nil {
		template = legacyenum.StringOf(m.GetDiskTemplate())
	} else if dts, _ := info["enabled_disk_templates"].([]string); len(dts) > 0 {
		template = dts[0]
		w = append(w, opexec.ParamWrite{Name: "disk_template", Value: template})
	}
	if m.GetFileDriver() == rapiv2.FileDriver_FILE_DRIVER_UNSPECIFIED && slices.Contains(fileBased, template) {
		w = append(w, opexec.ParamWrite{Name: "file_driver", Value: fileDriverDefault})
	}
	w = append(w, iallocatorOrNode(info, m.GetIallocator(), m.GetPnode() != "")...)
	if isImport(m) {
		w = append(w, opexec.ParamWrite{Name: "force_variant", Value: true})
	}
	// ExpandNames.
	name := m.GetInstanceName()
	if slices.Contains(st.Names("instance"), name) {
		return nil, w, errs.Prereq(errs.CodeExists, "Instance '%s' is already in the cluster", name)
	}
	var nodes []string
	if m.GetPnode() == "" {
		nodes = allNodeUUIDs(st)
	} else {
		for _, n := range []struct{ key, name string }{{"pnode", m.GetPnode()}, {"snode", m.GetSnode()}} {
			if n.name == "" {
				continue
			}
			u, full, err := st.NodeByName(n.name)
			if err != nil {
				return nil, w, err
			}
			if n.key == "pnode" || template == "drbd" { // Ganeti drops another template's snode
				w = append(w, opexec.ParamWrite{Name: n.key + "_uuid", Value: u}, opexec.ParamWrite{Name: n.key, Value: full})
			}
			nodes = append(nodes, u)
		}
	}
	if isImport(m) {
		if m.SrcPath == nil {
			w = append(w, opexec.ParamWrite{Name: "src_path", Value: name})
		}
		// The source node too; without it, the export is searched on
		// every node.
		if m.GetSrcNode() == "" {
			nodes = allNodeUUIDs(st)
		} else {
			u, full, err := st.NodeByName(m.GetSrcNode())
			if err != nil {
				return nil, w, err
			}
			w = append(w, opexec.ParamWrite{Name: "src_node_uuid", Value: u}, opexec.ParamWrite{Name: "src_node", Value: full})
			if !slices.Contains(nodes, u) {
				nodes = append(nodes, u)
			}
		}
	}
	locks := []opexec.Lock{{Level: opexec.LevelInstance, Name: name, Mode: opexec.Exclusive}}
	for _, u := range nodes {
		locks = append(locks, opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: opexec.Exclusive}, opexec.Lock{Level: opexec.LevelNodeRes, Name: u, Mode: opexec.Exclusive})
	}
	return locks, w, nil
}

// iallocatorOrNode is the write of Ganeti's CheckIAllocatorOrNode: without
// a node nor an iallocator, or with the iallocator ".", the cluster's
// default iallocator (when it has one; the executor reports the error).
func iallocatorOrNode(info map[string]any, ialloc string, nodeGiven bool) []opexec.ParamWrite {
	if (nodeGiven || ialloc != "") && ialloc != "." {
		return nil
	}
	def, _ := info["default_iallocator"].(string)
	if def == "" {
		return nil
	}
	return []opexec.ParamWrite{{Name: "iallocator", Value: def}}
}

// newDisk is a disk of the opcode, checked.
type newDisk struct {
	size     int64
	mode     string
	name     *string
	spindles *int64
}

var diskKeys = []string{"size", "mode", "name", "spindles", "vg", "metavg", "adopt", "provider", "uuid"}

// computeDisk is Ganeti's ComputeDisks for one disk.
func computeDisk(d map[string]any, defaultSize bool) (newDisk, error) {
	nd := newDisk{mode: "rw"}
	for k := range d {
		if !slices.Contains(diskKeys, k) {
			return nd, errs.Prereq(errs.CodeInval, "Unknown disk parameter '%s'", k)
		}
	}
	if v, ok := d["mode"]; ok {
		s, _ := v.(string)
		if s != "rw" && s != "ro" {
			return nd, errs.Prereq(errs.CodeInval, "Invalid disk access mode '%v'", v)
		}
		nd.mode = s
	}
	v, ok := d["size"]
	if !ok {
		if !defaultSize {
			return nd, errs.Prereq(errs.CodeInval, "Missing disk size")
		}
	} else {
		size, err := diskSize(v)
		if err != nil {
			return nd, err
		}
		nd.size = size
	}
	if v, ok := d["name"]; ok && v != nil {
		s, _ := v.(string)
		if strings.EqualFold(s, "none") || s == "" {
			s = ""
		} else {
			nd.name = &s
		}
	}
	if v, ok := d["spindles"]; ok && v != nil {
		n, ok := toInt(v)
		if !ok || n < 0 {
			return nd, errs.Prereq(errs.CodeInval, "Invalid disk spindles '%v'", v)
		}
		nd.spindles = &n
	}
	return nd, nil
}

// diskSize is a disk's size as Ganeti's ForceDictType(disk,
// IDISK_PARAMS_TYPES) converts it (VTYPE_SIZE: ParseUnit of str(size),
// so a negative size, 1e+30 or "lots" is a TypeEnforcementError), then
// ComputeDisks' own check (a size of 0 is refused here; Ganeti would
// create an empty disk).
func diskSize(v any) (int64, error) {
	size, err := sizeValue(v)
	if err != nil {
		return 0, typeError("'size' (value %s) is not a valid size. error: %s", pyStr(v), err)
	}
	if size < 1 {
		return 0, errs.Prereq(errs.CodeInval, "Invalid disk size '%v'", pyStr(v))
	}
	return size, nil
}

// nicSpec is the NIC part of an opcode (create or modify).
type nicSpec struct {
	mac, ip, mode, link, vlan, name, network *string
}

func nicSpecOf(p *rapiv2.NicParams) nicSpec {
	s := nicSpec{mac: p.Mac, ip: p.Ip, mode: p.Mode, link: p.Link, vlan: p.Vlan, name: p.Name, network: p.Network}
	if s.link == nil && p.Bridge != nil {
		s.link = p.Bridge
	}
	return s
}

func nicSpecFromMap(d map[string]any) (nicSpec, error) {
	var s nicSpec
	for k, v := range d {
		var p *string
		if v != nil {
			str, ok := v.(string)
			if !ok {
				str = fmt.Sprint(v)
			}
			p = &str
		}
		switch k {
		case "mac":
			s.mac = p
		case "ip":
			s.ip = p
		case "mode":
			s.mode = p
		case "link", "bridge":
			s.link = p
		case "vlan":
			s.vlan = p
		case "name":
			s.name = p
		case "network":
			s.network = p
		default:
			return s, errs.Prereq(errs.CodeInval, "Invalid NIC parameter '%s'", k)
		}
	}
	return s, nil
}

func isNone(p *string) bool { return p != nil && strings.EqualFold(*p, "none") }

var macRe = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)

// generateMAC is Ganeti's GenerateMAC: the prefix and three random bytes,
// unused in the cluster.
// The random bytes are an identifier of the opcode's plan (AllocPlan.ID):
// the apply phase replays the ones its plan phase drew.
func generateMAC(x *opexec.ExecContext, prefix string, used map[string]bool) (string, error) {
	for attempt := 0; attempt < 64; attempt++ {
		mac := x.Plan().ID(func() string {
			var r [3]byte
			_, _ = rand.Read(r[:])
			return fmt.Sprintf("%s:%02x:%02x:%02x", prefix, r[0], r[1], r[2])
		})
		if !used[mac] {
			used[mac] = true
			return mac, nil
		}
	}
	return "", errs.Prereq(errs.CodeNoRes, "Can't generate unique MAC")
}

// buildNIC computes a new NIC from its spec (Ganeti's ComputeNics and the
// NIC part of CheckPrereq) for an instance whose primary node is pnode.
func buildNIC(x *opexec.ExecContext, cfg *cluster.Config, pnode *cluster.Node, s nicSpec, nameCheck bool, used map[string]bool) (cluster.NIC, error) {
	nic := cluster.NIC{UUID: x.NewUUID(), NICParams: cluster.Params{}}
	var netUUID string
	if s.network != nil && !isNone(s.network) {
		nw := findByName(cfg.Networks, *s.network, func(n *cluster.Network) string { return n.Name }, false)
		if nw == nil {
			return nic, errs.Prereq(errs.CodeNoEnt, "Network '%s' not found", *s.network)
		}
		if s.mode != nil || s.link != nil {
			return nic, errs.Prereq(errs.CodeInval, "If network is given, no mode or link is allowed to be passed")
		}
		conn, ok := cfg.Groups[pnode.Group].Networks[nw.UUID]
		if !ok {
			return nic, errs.Prereq(errs.CodeInval, "No netparams found for network %s. Probably not connected to node's %s nodegroup", nw.Name, pnode.Name)
		}
		for _, k := range []string{"mode", "link", "vlan"} {
			nic.NICParams[k] = conn[k]
		}
		netUUID = nw.UUID
		nic.Network = &netUUID
	}
	if s.mode != nil {
		if !slices.Contains(cluster.NICModes(), *s.mode) {
			return nic, errs.Prereq(errs.CodeInval, "Invalid NIC mode '%s'", *s.mode)
		}
		nic.NICParams["mode"] = *s.mode
	}
	if s.link != nil {
		nic.NICParams["link"] = *s.link
	}
	if s.vlan != nil {
		nic.NICParams["vlan"] = *s.vlan
	}
	if s.name != nil && !isNone(s.name) {
		n := *s.name
		nic.Name = &n
	}
	if s.ip != nil && !isNone(s.ip) {
		ip := strings.ToLower(*s.ip)
		switch {
		case ip == "auto":
			if !nameCheck {
				return nic, errs.Prereq(errs.CodeInval, "IP address set to auto but name checks have been skipped")
			}
			return nic, errs.Prereq(errs.CodeInval, "IP address 'auto' cannot be resolved by the simulated resolver")
		case ip == "pool":
			if netUUID == "" {
				return nic, errs.Prereq(errs.CodeInval, "if ip=pool, parameter network must be passed too")
			}
			free, ok := cfg.NetworkFreeIP(netUUID)
			if !ok {
				return nic, errs.Prereq(errs.CodeState, "Unable to get a free IP from pool")
			}
			cfg.SetNetworkIP(netUUID, free, true)
			nic.IP = &free
		default:
			a, err := netip.ParseAddr(ip)
			if err != nil || !a.Is4() {
				return nic, errs.Prereq(errs.CodeInval, "Invalid IP address '%s'", *s.ip)
			}
			ip = a.String()
			if netUUID != "" {
				in, reserved := cfg.NetworkIPStatus(netUUID, ip)
				if !in || reserved {
					return nic, errs.Prereq(errs.CodeNotUnique, "IP address %s already in use or does not belong to network %s", ip, cfg.Networks[netUUID].Name)
				}
				cfg.SetNetworkIP(netUUID, ip, true)
			}
			nic.IP = &ip
		}
	}
	mode, _ := cluster.FillParams(cfg.Cluster.NICParams, nic.NICParams)["mode"].(string)
	if mode == "routed" && nic.IP == nil {
		return nic, errs.Prereq(errs.CodeInval, "Routed nic mode requires an ip address")
	}
	if s.mac == nil || strings.EqualFold(*s.mac, "auto") || strings.EqualFold(*s.mac, "generate") {
		mac, err := generateMAC(x, cfg.MACPrefixOf(netUUID), used)
		if err != nil {
			return nic, err
		}
		nic.MAC = mac
	} else {
		mac := strings.ToLower(*s.mac)
		if !macRe.MatchString(mac) {
			return nic, errs.Prereq(errs.CodeInval, "Invalid MAC address '%s'", *s.mac)
		}
		if used[mac] {
			return nic, errs.Prereq(errs.CodeNotUnique, "MAC address %s already in use in cluster", mac)
		}
		used[mac] = true
		nic.MAC = mac
	}
	return nic, nil
}

// usableNode says whether the allocator may place instances on n.
func usableNode(cfg *cluster.Config, n *cluster.Node) bool {
	g := cfg.Groups[n.Group]
	return !n.Offline && !n.Drained && n.VMCapable && (g == nil || g.AllocPolicy != "unallocable")
}

// allocate is the built-in allocator: the usable nodes (of group, if
// given) with the most free memory that fit mem and disk; for a mirrored
// template two nodes of one group.
func allocate(cfg *cluster.Config, group string, mem, disk int64, mirrored bool) []*cluster.Node {
	return allocateUsed(cfg, group, mem, disk, mirrored, nil, nil)
}

// nodeUse is memory and disk reserved on a node by allocations not yet in
// the configuration (a multi-allocation, an evacuation).
type nodeUse struct{ mem, disk int64 }

// allocateUsed is allocate with the reservations of used (by node UUID)
// taken off the free resources, never choosing a node of exclude.
func allocateUsed(cfg *cluster.Config, group string, mem, disk int64, mirrored bool, used map[string]nodeUse, exclude []string) []*cluster.Node {
	freeOf := func(n *cluster.Node) (int64, int64) {
		fm, fd := cfg.NodeFree(n.UUID)
		u := used[n.UUID]
		return fm - u.mem, fd - u.disk
	}
	var cands []*cluster.Node
	for _, n := range cfg.Nodes {
		if !usableNode(cfg, n) || (group != "" && n.Group != group) || slices.Contains(exclude, n.UUID) {
			continue
		}
		fm, fd := freeOf(n)
		if fm < mem || fd < disk {
			continue
		}
		cands = append(cands, n)
	}
	free := func(n *cluster.Node) int64 { m, _ := freeOf(n); return m }
	sort.Slice(cands, func(i, j int) bool {
		fi, fj := free(cands[i]), free(cands[j])
		if fi != fj {
			return fi > fj
		}
		return cands[i].Name < cands[j].Name
	})
	if !mirrored {
		if len(cands) == 0 {
			return nil
		}
		return cands[:1]
	}
	for i, p := range cands {
		for _, s := range cands[i+1:] {
			if s.Group == p.Group {
				return []*cluster.Node{p, s}
			}
		}
	}
	return nil
}

// Exec implements Executor.
func (c InstanceCreate) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(c, x, op)
}

// Check implements opexec.Phased: the allocation. When the opcode may run
// an external iallocator (hail: its "iallocator", or the cluster's
// default, is installed), LUInstanceCreate's CheckPrereq runs here on a
// private copy of the snapshot and the allocator's answers are recorded
// (the plan); the copy, its logs and parameter writes are discarded, and
// its error is Apply's to give (Apply checks again on the configuration it
// changes, with the same locks held, and logs what the checks say). The
// built-in allocator is a pure function of the configuration: it runs in
// Apply.
func (c InstanceCreate) Check(cc *opexec.CheckContext, op proto.Message) (any, error) {
	m, err := createParams(op)
	if err != nil {
		return nil, nil // Apply reports it
	}
	name := m.GetIallocator()
	if name == "" || name == "." {
		name = cc.Snapshot.Cluster.DefaultIAllocator
	}
	if name == "" || cc.IAllocator().Lookup(name) == "" {
		return nil, nil
	}
	p := opexec.NewAllocPlan()
	func() {
		defer func() { _ = recover() }() // Apply meets the same panic and reports it
		_, _ = c.apply(cc.Scratch(cc.State.Config(), p), op)
	}()
	p.Done()
	return p, nil
}

// Apply implements opexec.Phased: LUInstanceCreate's checks and Exec on
// the configuration being changed, with the allocator's planned answers
// and the planned UUIDs of the new objects, replayed from the start in
// every run. An allocator request the plan does not hold (the checks took
// another path on the configuration Apply gets, which the locks make
// unlikely) fails instead of running the allocator (runIAllocatorFor).
func (c InstanceCreate) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	if p, ok := plan.(*opexec.AllocPlan); ok {
		x.Env.Plan = p.Rewound()
	}
	return c.apply(x, op)
}

// apply is the whole of LUInstanceCreate after the locks.
func (c InstanceCreate) apply(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, err := createParams(op)
	if err != nil {
		return nil, err
	}
	if err := createArgs(m); err != nil {
		return nil, err
	}
	if isRemoteImport(m) {
		if x.DryRun {
			r := remoteOr(c.Remote)
			cds, err := r.secret(x.Config)
			if err != nil {
				return nil, err
			}
			if _, err := r.checkImport(cds, m); err != nil {
				return nil, err
			}
		} else if _, ok := x.Handoff().(*importDone); !ok {
			return nil, errs.Exec("The disks were not imported")
		}
	}
	var src *importSource
	if isImport(m) {
		if src, err = readExport(x.Config, m); err != nil {
			return nil, err
		}
		if m, err = src.fill(x.Config, m); err != nil {
			return nil, err
		}
	}
	return createInstance(x, m, src)
}

// createInstance is CheckPrereq and Exec of LUInstanceCreate, once the
// arguments were checked (and, for a remote import, the disks received;
// for an import, src is the export m was filled from).
func createInstance(x *opexec.ExecContext, m *rapiv2.OpInstanceCreate, src *importSource) (any, error) {
	remote := isRemoteImport(m)
	cfg := x.Config
	c := cfg.Cluster
	name := m.GetInstanceName()
	for _, i := range cfg.Instances {
		if i.Name == name {
			return nil, errs.Prereq(errs.CodeExists, "Instance '%s' is already in the cluster", name)
		}
	}
	nameCheck := m.NameCheck == nil || m.GetNameCheck()
	start := m.Start == nil || m.GetStart()
	if m.GetNoInstall() && start {
		x.LogInfo("No-installation mode selected, disabling startup")
		start = false
		x.SetParam("start", false)
	}
	if src != nil && m.GetNoInstall() {
		x.LogInfo("No-installation mode has no effect during import")
	}

	// Hypervisor and disk template.
	hv := c.EnabledHypervisors[0]
	if m.Hypervisor != nil {
		hv = legacyenum.StringOf(m.GetHypervisor())
	} else {
		x.SetParam("hypervisor", hv)
	}
	if !slices.Contains(c.EnabledHypervisors, hv) {
		return nil, errs.Prereq(errs.CodeState, "Selected hypervisor (%s) not enabled in the cluster (%s)", hv, strings.Join(c.EnabledHypervisors, ","))
	}
	template := ""
	if m.DiskTemplate != nil {
		template = legacyenum.StringOf(m.GetDiskTemplate())
	} else if len(c.EnabledDiskTemplates) > 0 {
		template = c.EnabledDiskTemplates[0]
	}
	if !slices.Contains(c.EnabledDiskTemplates, template) {
		return nil, errs.Prereq(errs.CodeState, "Disk template '%s' is not enabled in cluster. Enabled disk templates are: %s", template, strings.Join(c.EnabledDiskTemplates, ","))
	}
	switch template {
	case "diskless", "file", "plain", "drbd":
	default:
		return nil, errs.Prereq(errs.CodeInval, "Disk template '%s' is not supported by the fake hypervisor simulation", template)
	}

	// Disks and parameters.
	if template == "diskless" && len(m.GetDisks()) > 0 {
		return nil, errs.Prereq(errs.CodeInval, "Diskless instances cannot have disks")
	}
	if len(m.GetDisks()) > cluster.MaxDisks {
		return nil, errs.Prereq(errs.CodeInval, "Too many disks (%d), maximum is %d", len(m.GetDisks()), cluster.MaxDisks)
	}
	if len(m.GetNics()) > cluster.MaxNICs {
		return nil, errs.Prereq(errs.CodeInval, "Too many NICs (%d), maximum is %d", len(m.GetNics()), cluster.MaxNICs)
	}
	// CheckPrereq's tag validity check, and Exec's iobj.AddTag (at most
	// MAX_TAGS_PER_OBJ); nothing is changed before either fails.
	tags, err := cluster.AddTags(nil, m.GetTags())
	if err != nil {
		return nil, err
	}
	var disks []newDisk
	for _, d := range m.GetDisks() {
		nd, err := computeDisk(opexec.StructMap(d), false)
		if err != nil {
			return nil, err
		}
		disks = append(disks, nd)
	}
	// Hypervisor parameters as Ganeti checks them: their types, the
	// hypervisor's own check of the filled set, then the global ones.
	hvp, err := forceHVTypes(opexec.StructMap(m.GetHvparams()))
	if err != nil {
		return nil, err
	}
	if err := checkHVSyntax(hv, cluster.FillParams(hvDefaults(c, hv, m.GetOsType()), hvp)); err != nil {
		return nil, err
	}
	if err := checkHVGlobals(hvp); err != nil {
		return nil, err
	}
	be, err := checkBEParams(opexec.StructMap(m.GetBeparams()), func(p cluster.Params) cluster.Params { return cluster.FillParams(c.BEParams, p) })
	if err != nil {
		return nil, err
	}
	osp := checkOSParams(opexec.StructMap(m.GetOsparams()))
	// Ganeti upgrades and converts the opcode's own beparams and hvparams,
	// and gives it empty private and secret OS parameters.
	x.SetParam("beparams", map[string]any(be))
	x.SetParam("hvparams", map[string]any(hvp))
	for _, k := range []struct {
		key string
		set bool
	}{{"osparams_private", m.OsparamsPrivate != nil}, {"osparams_secret", m.OsparamsSecret != nil}} {
		if !k.set {
			x.SetParam(k.key, map[string]any{})
		}
	}
	beFull := cluster.FillParams(c.BEParams, be)
	if m.GetIdentifyDefaults() {
		revertToDefaults(c, hv, m.GetOsType(), be, hvp, osp)
	}
	if m.GetOsType() == "" && !remote && src == nil {
		return nil, errs.Prereq(errs.CodeInval, "No guest OS or OS image specified")
	}

	// Nodes.
	var pnode, snode *cluster.Node
	mirrored := template == "drbd"
	var diskReq int64
	for _, d := range disks {
		diskReq += d.size
		if mirrored {
			diskReq += cluster.DRBDMetaSize
		}
	}
	if m.GetPnode() != "" {
		if pnode, err = findNode(cfg, m.GetPnode()); err != nil {
			return nil, err
		}
		if mirrored {
			if m.GetSnode() == "" {
				return nil, errs.Prereq(errs.CodeInval, "The networked disk templates need a mirror node")
			}
			if snode, err = findNode(cfg, m.GetSnode()); err != nil {
				return nil, err
			}
		} else if m.GetSnode() != "" {
			x.LogWarning("Secondary node will be ignored on non-mirrored disk template")
			x.SetParam("snode", nil)
		}
	} else {
		ialloc := m.GetIallocator()
		if ialloc == "" {
			ialloc = c.DefaultIAllocator
		}
		if ialloc == "" {
			return nil, errs.Prereq(errs.CodeInval, "No iallocator or node given and no cluster-wide default iallocator found; please specify either an iallocator or a node, or set a cluster-wide default iallocator")
		}
		group := ""
		if m.GetGroupName() != "" {
			g := findByName(cfg.Groups, m.GetGroupName(), func(g *cluster.Group) string { return g.Name }, false)
			if g == nil {
				return nil, errs.Prereq(errs.CodeNoEnt, "Group '%s' not found", m.GetGroupName())
			}
			group = g.UUID
		}
		mem, _ := beFull["maxmem"].(int64)
		nodes, err := externalAllocate(x, ialloc, createAllocReq(cfg, m, hv, template, disks, beFull))
		if errors.Is(err, opexec.ErrNoExternalIAllocator) {
			end := traceBuiltinAllocator(x, ialloc, "allocate", name)
			nodes, err = allocate(cfg, group, mem, diskReq, mirrored), nil
			end(nodeNames(nodes), nil)
		}
		if err != nil {
			return nil, err
		}
		if nodes == nil {
			return nil, errs.Prereq(errs.CodeNoRes, "Can't compute nodes using iallocator '%s': Request failed: No valid allocation solutions", ialloc)
		}
		pnode = nodes[0]
		names := []string{pnode.Name}
		x.SetParam("pnode_uuid", pnode.UUID)
		x.SetParam("pnode", pnode.Name)
		if mirrored {
			snode = nodes[1]
			names = append(names, snode.Name)
			x.SetParam("snode_uuid", snode.UUID)
			x.SetParam("snode", snode.Name)
		}
		x.LogInfo("Selected nodes for instance %s via iallocator %s: %s", name, ialloc, strings.Join(names, ", "))
	}
	switch {
	case pnode.Offline:
		return nil, errs.Prereq(errs.CodeState, "Cannot use offline primary node '%s'", pnode.Name)
	case pnode.Drained:
		return nil, errs.Prereq(errs.CodeState, "Cannot use drained primary node '%s'", pnode.Name)
	case !pnode.VMCapable:
		return nil, errs.Prereq(errs.CodeState, "Cannot use non-vm_capable primary node '%s'", pnode.Name)
	}
	nodes := []*cluster.Node{pnode}
	if snode != nil {
		if snode.UUID == pnode.UUID {
			return nil, errs.Prereq(errs.CodeInval, "The secondary node cannot be the primary node")
		}
		if err := checkNodeOnline(snode, ""); err != nil {
			return nil, err
		}
		if snode.Drained {
			return nil, errs.Prereq(errs.CodeState, "Can't use drained node %s", snode.Name)
		}
		if !snode.VMCapable {
			return nil, errs.Prereq(errs.CodeState, "Can't use non-vm_capable node %s", snode.Name)
		}
		nodes = append(nodes, snode)
	}

	// NICs (they may reserve addresses in cfg; an error discards cfg).
	used := cfg.UsedMACs()
	nicSpecs := m.GetNics()
	var nics []cluster.NIC
	for _, p := range nicSpecs {
		spec := nicSpecOf(p)
		if m.GetIdentifyDefaults() {
			revertNICToDefaults(c, &spec)
		}
		nic, err := buildNIC(x, cfg, pnode, spec, nameCheck, used)
		if err != nil {
			return nil, err
		}
		nics = append(nics, nic)
	}

	// Policy, OS, resources.
	if !m.GetIgnoreIpolicy() {
		sizes := make([]int64, len(disks))
		for i, d := range disks {
			sizes[i] = d.size
		}
		if err := checkIPolicy(cfg, cfg.Groups[pnode.Group], "Instance allocation", template, beFull, len(nics), sizes); err != nil {
			return nil, err
		}
	}
	if m.GetOsType() != "" {
		// An import forces the variant: it worked when the instance was
		// installed.
		if err := checkOS(cfg, pnode, m.GetOsType(), m.GetForceVariant() || src != nil); err != nil {
			return nil, err
		}
	}
	if err := checkFreeDisk(cfg, template, nodes, diskReq); err != nil {
		return nil, err
	}
	if start {
		mem, _ := beFull["maxmem"].(int64)
		if err := checkFreeMemory(cfg, pnode, "creating instance "+name, mem); err != nil {
			return nil, err
		}
	}
	if x.DryRun {
		out := []any{}
		for _, n := range nodes {
			out = append(out, n.UUID)
		}
		return out, nil
	}

	// Create.
	now := x.Timestamp()
	inst := &cluster.Instance{
		Name: name, UUID: x.NewUUID(), CTime: now, MTime: now, SerialNo: 1,
		OS: m.GetOsType(), Hypervisor: hv, PrimaryNode: pnode.UUID, SecondaryNodes: []string{},
		DiskTemplate: template, BEParams: be, HVParams: hvp, OSParams: osp,
		AdminState: cluster.AdminDown, AdminStateSource: "admin", NICs: nics,
		Tags: tags, Disks: []cluster.Disk{},
	}
	if inst.NICs == nil {
		inst.NICs = []cluster.NIC{}
	}
	if snode != nil {
		inst.SecondaryNodes = []string{snode.UUID}
	}
	for i, d := range disks {
		inst.Disks = append(inst.Disks, cluster.Disk{UUID: x.NewUUID(), Name: d.name, Size: d.size, Spindles: d.spindles, Mode: d.mode})
		x.Log(fmt.Sprintf("* disk %d, size %s", i, sizeString(d.size)))
	}
	x.Log("* creating instance disks...")
	x.Log(fmt.Sprintf("adding instance %s to cluster config", name))
	x.Log("adding disks to cluster config")
	cfg.Instances[inst.UUID] = inst
	if mirrored && m.GetWaitForSync() {
		x.LogInfo("Waiting for instance %s to sync disks", name)
		x.LogInfo("Instance %s's disks are in sync", name)
	}
	switch {
	case src != nil:
		if len(disks) > 0 {
			src.copyDisks(x, pnode, len(disks))
			if inst.OS != "" {
				x.Log("Running rename script for " + name)
			}
		}
	case remote:
		if inst.OS != "" {
			x.Log("Running rename script for " + name)
		}
	case len(disks) > 0 && !m.GetNoInstall():
		x.Log("* running the instance OS create scripts...")
	}
	if start {
		x.Log("* starting instance...")
		// Ganeti's MarkInstanceUp, after the instance was added: a new
		// serial number and a later modification time.
		inst.AdminState = cluster.AdminUp
		inst.SerialNo++
		inst.MTime = float64(x.Now().Add(time.Microsecond).UnixMicro()) / 1e6
		startInstance(cfg, inst, nil)
	}
	out := []any{}
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out, nil
}

func isRemoteImport(m *rapiv2.OpInstanceCreate) bool {
	return m.Mode != nil && m.GetMode() == rapiv2.InstanceCreateMode_INSTANCE_CREATE_MODE_REMOTE_IMPORT
}

func (InstanceCreate) NeedsRun(op proto.Message) bool {
	m, ok := op.(*rapiv2.OpInstanceCreate)
	return ok && isRemoteImport(m)
}

// importDone is what InstanceCreate.Run hands to Exec: every disk arrived.
type importDone struct{}

// checkImport is the remote-import part of CheckArguments of
// LUInstanceCreate: the source's handshake and its signed X509 CA.
func (r *Remote) checkImport(cds string, m *rapiv2.OpInstanceCreate) (*x509.Certificate, error) {
	if len(m.GetSourceHandshake()) == 0 {
		return nil, errs.Prereq(errs.CodeInval, "Missing source handshake")
	}
	if msg := impexp.CheckHandshake(cds, listValues(m.GetSourceHandshake())); msg != "" {
		return nil, errs.Prereq(errs.CodeInval, "Invalid handshake: %s", msg)
	}
	if m.GetSourceX509Ca() == "" {
		return nil, errs.Prereq(errs.CodeInval, "Missing source X509 CA")
	}
	ca, err := r.loadPeerCA(cds, m.GetSourceX509Ca(), "source")
	if err != nil {
		return nil, err
	}
	if m.GetSourceInstanceName() == "" {
		return nil, errs.Prereq(errs.CodeInval, "Missing source instance name")
	}
	return ca, nil
}

// maxTimeoutSeconds bounds a timeout given in seconds (about 68 years), so
// that it never overflows a time.Duration.
const maxTimeoutSeconds = 1 << 31

// Ganeti's DEFAULT_SHUTDOWN_TIMEOUT, source_shutdown_timeout's default.
const defaultShutdownTimeout = 120 * time.Second

// Run implements Runner (remote-import mode): the checks, then Ganeti's
// RemoteImport: a new X509 key signed with the domain secret, a listener
// per disk, the "remote-import" log entry the source cluster waits for,
// and the wait for every disk (RIE_CONNECT_TIMEOUT plus
// source_shutdown_timeout). Any failure ends the job before Exec: no
// instance is created.
func (c InstanceCreate) Run(x *opexec.ExecContext, op proto.Message) error {
	m, err := createParams(op)
	if err != nil {
		return err
	}
	r := remoteOr(c.Remote)
	cfg := x.State.Config()
	cds, err := r.secret(cfg)
	if err != nil {
		return err
	}
	srcCA, err := r.checkImport(cds, m)
	if err != nil {
		return err
	}
	// CheckPrereq now, on a copy: the import must not start when the
	// instance cannot be created.
	check := &opexec.ExecContext{JobID: x.JobID, OpIndex: x.OpIndex, DryRun: true, Config: cfg, State: x.State, Env: opexec.Env{Ctx: x.Env.Ctx, Now: x.Env.Now, IAllocator: x.Env.IAllocator}}
	res, err := createInstance(check, m, nil)
	if err != nil {
		return err
	}
	uuids, _ := res.([]any)
	var pnode *cluster.Node
	if len(uuids) > 0 {
		u, _ := uuids[0].(string)
		pnode = cfg.Nodes[u]
	}
	if pnode == nil {
		return errs.Exec("No primary node")
	}
	var sizes []int64
	for _, d := range m.GetDisks() {
		nd, err := computeDisk(opexec.StructMap(d), false)
		if err != nil {
			return err
		}
		sizes = append(sizes, nd.size)
	}
	name := m.GetInstanceName()

	x.Log("* preparing remote import...")
	key, err := r.newKey(pnode.Name)
	if err != nil {
		return err
	}
	var secrets [3]string // certificate salt, disk info salt, magic base
	for i, n := range []int{8, 8, 6} {
		if secrets[i], err = impexp.GenerateSecret(n); err != nil {
			return err
		}
	}
	signedCA, err := impexp.SignCertificate(key.Cert, cds, secrets[0])
	if err != nil {
		return err
	}
	srvTLS := impexp.ServerTLS(key, srcCA, r.cfg.Now)
	recv := make([]*impexp.Receiver, len(sizes))
	defer func() {
		for _, rc := range recv {
			if rc != nil {
				_ = rc.Close()
			}
		}
	}()
	disks := make([]any, len(sizes))
	for i, size := range sizes {
		magic := impexp.DiskMagic(secrets[2], name, i)
		if recv[i], err = impexp.Listen(r.cfg.Address, srvTLS, magic, size); err != nil {
			return err
		}
		x.Log(fmt.Sprintf("Disk %d is now listening", i))
		disks[i] = impexp.ComputeDiskInfo(cds, secrets[1], i, r.cfg.Address, recv[i].Port(), magic)
	}
	x.LogEntry(opexec.LogRemoteImport, map[string]any{"disks": disks, "x509_ca": signedCA})

	timeout := r.cfg.ConnectTimeout + defaultShutdownTimeout
	if m.SourceShutdownTimeout != nil {
		timeout = r.cfg.ConnectTimeout + time.Duration(min(max(m.GetSourceShutdownTimeout(), 0), int64(maxTimeoutSeconds)))*time.Second
	}
	ctx, cancel := context.WithCancel(x.Context())
	defer cancel()
	received := make([]bool, len(recv))
	var wg sync.WaitGroup
	for i, rc := range recv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := rc.Receive(ctx, timeout, impexp.Events{
				Connected: func() { x.Log(fmt.Sprintf("Disk %d is now receiving data", i)) },
				Refused: func(remote string, err error) {
					r.cfg.Logger.Warn("remote import: refused a connection", "job", x.JobID, "disk", i, "remote", remote, "err", err)
				},
			})
			if err == nil {
				x.Log(fmt.Sprintf("Disk %d finished receiving data", i))
				received[i] = true
				return
			}
			if ctx.Err() == nil {
				x.Log(fmt.Sprintf("Disk %d failed to receive data: %s", i, r.transferFailure(x, i, err)))
			}
			cancel() // the import failed: stop waiting for the other disks
		}()
	}
	wg.Wait()
	if err := x.Context().Err(); err != nil {
		return err
	}
	if slices.Contains(received, false) {
		return errs.Exec("Some disks for instance %s on node %s were not imported successfully", name, pnode.Name)
	}
	x.SetHandoff(&importDone{})
	return nil
}

// Local import -----------------------------------------------------------------

// exportDir is Ganeti's pathutils.EXPORT_DIR, where nodes keep exports.
const exportDir = "/srv/ganeti/export"

func isImport(m *rapiv2.OpInstanceCreate) bool {
	return m.Mode != nil && m.GetMode() == rapiv2.InstanceCreateMode_INSTANCE_CREATE_MODE_IMPORT
}

// importPath is the opcode's src_path, the instance name by default.
func importPath(m *rapiv2.OpInstanceCreate) string {
	if m.SrcPath != nil && m.GetSrcPath() != "" {
		return m.GetSrcPath()
	}
	return m.GetInstanceName()
}

// importSource is an export located for an import.
type importSource struct {
	node *cluster.Node
	path string
	exp  cluster.Export
}

// readExport is Ganeti's _ReadExportInfo: the export at src_path on
// src_node or, without src_node, the export named src_path on the first
// online node (by name) that has one.
func readExport(cfg *cluster.Config, m *rapiv2.OpInstanceCreate) (*importSource, error) {
	p := importPath(m)
	var node *cluster.Node
	if m.GetSrcNode() == "" {
		nodes := make([]*cluster.Node, 0, len(cfg.Nodes))
		for _, n := range cfg.Nodes {
			if !n.Offline { // an offline node answers no export list
				nodes = append(nodes, n)
			}
		}
		slices.SortFunc(nodes, func(a, b *cluster.Node) int { return strings.Compare(a.Name, b.Name) })
		for _, n := range nodes {
			if slices.ContainsFunc(cfg.Exports, func(e cluster.Export) bool { return e.Node == n.UUID && e.Name == p }) {
				node = n
				break
			}
		}
		if node == nil {
			return nil, errs.Prereq(errs.CodeInval, "No export found for relative path %s", p)
		}
		p = path.Join(exportDir, p)
	} else {
		var err error
		if node, err = findNode(cfg, m.GetSrcNode()); err != nil {
			return nil, err
		}
		if !path.IsAbs(p) {
			p = path.Join(exportDir, p)
		}
	}
	if err := checkNodeOnline(node, ""); err != nil {
		return nil, err
	}
	clean := path.Clean(p)
	for _, e := range cfg.Exports {
		if e.Node == node.UUID && path.Join(exportDir, e.Name) == clean {
			return &importSource{node: node, path: p, exp: e}, nil
		}
	}
	return nil, errs.Exec("No export or invalid export found in dir %s: Export info file doesn't have the required fields", p)
}

// info is what the export recorded (nothing for an export without it).
func (s *importSource) info() *cluster.ExportInfo {
	if s.exp.Info == nil {
		return &cluster.ExportInfo{}
	}
	return s.exp.Info
}

// fill is Ganeti's _ReadExportParams: a copy of m with the parameters it
// does not give taken from the export. As in Ganeti, the OS is always the
// export's; disks get only their size and name, NICs their MAC, IP, name
// and network (Ganeti's config.ini has nic%d_network "None" for a NIC
// without network, so their mode, link and vlan are never read); and with
// the old instance's name, a NIC given without MAC gets the exported one.
func (s *importSource) fill(cfg *cluster.Config, m *rapiv2.OpInstanceCreate) (*rapiv2.OpInstanceCreate, error) {
	m = proto.Clone(m).(*rapiv2.OpInstanceCreate)
	info := s.info()
	m.OsType = proto.String(info.OS)
	orNone := func(p *string) *string {
		if p == nil {
			return proto.String("None")
		}
		return proto.String(*p)
	}
	if len(m.GetDisks()) == 0 {
		for _, d := range info.Disks {
			st, err := structpb.NewStruct(map[string]any{"size": d.Size, "name": *orNone(d.Name)})
			if err != nil {
				return nil, err
			}
			m.Disks = append(m.Disks, st)
		}
		template := ""
		if m.DiskTemplate != nil {
			template = legacyenum.StringOf(m.GetDiskTemplate())
		} else if ts := cfg.Cluster.EnabledDiskTemplates; len(ts) > 0 {
			template = ts[0]
		}
		if len(m.Disks) == 0 && template != "diskless" {
			return nil, errs.Prereq(errs.CodeInval, "No disk info specified and the export is missing the disk information")
		}
	}
	if len(m.GetNics()) == 0 {
		for _, n := range info.NICs {
			m.Nics = append(m.Nics, &rapiv2.NicParams{Mac: proto.String(n.MAC), Ip: orNone(n.IP), Name: orNone(n.Name), Network: orNone(n.Network)})
		}
	} else if m.GetInstanceName() == s.exp.Name {
		for i, n := range m.Nics {
			if (n.Mac == nil || n.GetMac() == "auto") && i < len(info.NICs) {
				n.Mac = proto.String(info.NICs[i].MAC)
			}
		}
	}
	if len(m.GetTags()) == 0 && len(info.Tags) > 0 {
		m.Tags = slices.Clone(info.Tags)
	}
	if m.Hypervisor == nil && info.Hypervisor != "" {
		if hv, ok := hypervisorEnum(info.Hypervisor); ok {
			m.Hypervisor = &hv
		}
	}
	var err error
	for _, f := range []struct {
		dst  **structpb.Struct
		from cluster.Params
	}{{&m.Hvparams, info.HVParams}, {&m.Beparams, info.BEParams}, {&m.Osparams, info.OSParams}} {
		if *f.dst, err = fillStruct(*f.dst, f.from); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// fillStruct is st with the entries of from it lacks.
func fillStruct(st *structpb.Struct, from cluster.Params) (*structpb.Struct, error) {
	if len(from) == 0 {
		return st, nil
	}
	if st == nil {
		st = &structpb.Struct{}
	}
	if st.Fields == nil {
		st.Fields = map[string]*structpb.Value{}
	}
	for k, v := range from {
		if _, ok := st.Fields[k]; ok {
			continue
		}
		val, err := structpb.NewValue(v)
		if err != nil {
			return nil, errs.Exec("Invalid exported parameter '%s'", k)
		}
		st.Fields[k] = val
	}
	return st, nil
}

// hypervisorEnum is the opcode enum value of a Ganeti hypervisor name.
func hypervisorEnum(name string) (rapiv2.Hypervisor, bool) {
	n, ok := legacyenum.Parse(rapiv2.Hypervisor(0).Descriptor(), name)
	return rapiv2.Hypervisor(n), ok
}

// copyDisks logs Ganeti's TransferInstanceData of the n new disks from
// the export (the disks the export has an image of); the copy itself is
// simulated.
func (s *importSource) copyDisks(x *opexec.ExecContext, pnode *cluster.Node, n int) {
	x.Log("* running the instance OS import scripts...")
	for i := range min(n, len(s.info().Disks)) {
		d := fmt.Sprintf("disk/%d", i)
		x.Log(fmt.Sprintf("Exporting %s from %s to %s", d, s.node.Name, pnode.Name))
		x.Log(d + " is now listening, starting export")
		x.Log(fmt.Sprintf("%s is sending data on %s", d, s.node.Name))
		x.Log(fmt.Sprintf("%s is receiving data on %s", d, pnode.Name))
		x.Log(d + " finished sending data")
		x.Log(d + " finished receiving data")
	}
}

// hvDefaults is what Ganeti's SimpleFillHV fills an instance's hypervisor
// parameters with: the cluster's parameters of hypervisor hv, overlaid
// with the OS's (base name, then with its variant).
func hvDefaults(c *cluster.Cluster, hv, os string) cluster.Params {
	base, _, _ := strings.Cut(os, "+")
	out := cluster.FillParams(c.HVParams[hv], c.OSHVP[base][hv])
	if os != base {
		out = cluster.FillParams(out, c.OSHVP[os][hv])
	}
	return out
}

// revertToDefaults is the parameter part of Ganeti's _RevertToDefaults
// (identify_defaults): instance parameters equal to the cluster's
// defaults are dropped, so that they follow later changes of the
// defaults.
func revertToDefaults(c *cluster.Cluster, hv, os string, be, hvp, osp cluster.Params) {
	base, _, _ := strings.Cut(os, "+")
	osDefs := cluster.FillParams(c.OSParams[base], nil)
	if os != base {
		osDefs = cluster.FillParams(osDefs, c.OSParams[os])
	}
	for _, p := range []struct{ params, defs cluster.Params }{
		{hvp, cluster.FillParams(c.HVParams[hv], c.OSHVP[base][hv])},
		{be, c.BEParams},
		{osp, osDefs},
	} {
		for k, v := range p.params {
			if d, ok := p.defs[k]; ok && reflect.DeepEqual(d, v) {
				delete(p.params, k)
			}
		}
	}
}

// revertNICToDefaults is the NIC part of _RevertToDefaults.
func revertNICToDefaults(c *cluster.Cluster, s *nicSpec) {
	for k, p := range map[string]**string{"mode": &s.mode, "link": &s.link, "vlan": &s.vlan} {
		if *p != nil {
			if d, ok := c.NICParams[k].(string); ok && d == **p {
				*p = nil
			}
		}
	}
}
