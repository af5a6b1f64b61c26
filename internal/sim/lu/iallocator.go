package lu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// This file speaks Ganeti's IAllocator protocol (doc/iallocator.rst,
// lib/masterd/iallocator.py) to an external allocator: the request is a
// JSON file with the cluster's data and a "request" object, the allocator
// (hail, from ganeti-htools) is run on it and prints {"success", "info",
// "result"}. Requests: allocate, multi-allocate, node-evacuate and
// relocate. Only "hail" is run; any other name, or hail missing, leaves
// the choice to the built-in allocator (allocateUsed).

// iallocatorVersion is Ganeti's IALLOCATOR_VERSION.
const iallocatorVersion = 2

// allocReq is one instance to place: the fields of Ganeti's
// IAReqInstanceAlloc.
type allocReq struct {
	name       string
	memory     int64
	vcpus      int64
	spindleUse int64
	disks      []newDisk
	template   string
	os         string
	tags       []string
	nics       []map[string]any
	hypervisor string
	group      string // group name, "" for any
}

// requiredNodes is the number of nodes the instance needs.
func (r allocReq) requiredNodes() int {
	if mirrored(r.template) {
		return 2
	}
	return 1
}

// diskSpaceTotal is Ganeti's ComputeDiskSize.
func diskSpaceTotal(template string, sizes []int64) int64 {
	var t int64
	switch template {
	case "diskless":
		return 0
	case "drbd":
		for _, s := range sizes {
			t += s + cluster.DRBDMetaSize
		}
	default:
		for _, s := range sizes {
			t += s
		}
	}
	return t
}

// fields are the request's instance fields.
func (r allocReq) fields() map[string]any {
	disks := []any{}
	var sizes []int64
	for _, d := range r.disks {
		var sp any
		if d.spindles != nil {
			sp = *d.spindles
		}
		disks = append(disks, map[string]any{"size": d.size, "mode": d.mode, "spindles": sp})
		sizes = append(sizes, d.size)
	}
	nics := []any{}
	for _, n := range r.nics {
		nics = append(nics, n)
	}
	out := map[string]any{
		"name":             r.name,
		"memory":           r.memory,
		"vcpus":            r.vcpus,
		"spindle_use":      r.spindleUse,
		"disks":            disks,
		"disk_template":    r.template,
		"disk_space_total": diskSpaceTotal(r.template, sizes),
		"nics":             nics,
		"os":               r.os,
		"tags":             nonNilStrings(r.tags),
		"required_nodes":   r.requiredNodes(),
		"hypervisor":       r.hypervisor,
	}
	if r.group != "" {
		out["group_name"] = r.group
	}
	return out
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

// requestNICs are the NICs of a creation opcode in the request's form.
func requestNICs(cfg *cluster.Config, specs []nicSpec) []map[string]any {
	out := []map[string]any{}
	for _, s := range specs {
		p := cluster.Params{}
		if s.mode != nil {
			p["mode"] = *s.mode
		}
		if s.link != nil {
			p["link"] = *s.link
		}
		filled := cluster.FillParams(cfg.Cluster.NICParams, p)
		n := map[string]any{"mac": "auto", "ip": nil, "mode": filled["mode"], "link": filled["link"], "network": nil}
		if s.mac != nil {
			n["mac"] = strings.ToLower(*s.mac)
		}
		if s.ip != nil && !isNone(s.ip) {
			n["ip"] = *s.ip
		}
		if s.network != nil && !isNone(s.network) {
			n["network"] = *s.network
		}
		if filled["mode"] == "bridged" {
			n["bridge"] = filled["link"]
		}
		out = append(out, n)
	}
	return out
}

// iallocatorInput is Ganeti's IAllocator._ComputeClusterData plus the
// request: the JSON document an iallocator reads.
func iallocatorInput(cfg *cluster.Config, request map[string]any) map[string]any {
	c := cfg.Cluster
	groups := map[string]any{}
	for uuid, g := range cfg.Groups {
		nets := []string{}
		for n := range g.Networks {
			nets = append(nets, n)
		}
		sort.Strings(nets)
		groups[uuid] = map[string]any{
			"name":         g.Name,
			"alloc_policy": g.AllocPolicy,
			"ipolicy":      cfg.GroupIPolicy(uuid),
			"tags":         nonNilStrings(g.Tags),
			"networks":     nets,
		}
	}
	// Memory of the instances per primary node (all, and running ones).
	priMem := map[string]int64{}
	priUpMem := map[string]int64{}
	usedSpindles := map[string]int64{}
	instances := map[string]any{}
	for _, inst := range cfg.Instances {
		be := cfg.InstanceBEParams(inst)
		mem, _ := be["maxmem"].(int64)
		vcpus, _ := be["vcpus"].(int64)
		su, _ := be["spindle_use"].(int64)
		priMem[inst.PrimaryNode] += mem
		if inst.AdminState == cluster.AdminUp {
			priUpMem[inst.PrimaryNode] += mem
		}
		nodes := []string{}
		for _, u := range append([]string{inst.PrimaryNode}, inst.SecondaryNodes...) {
			if n := cfg.Nodes[u]; n != nil {
				nodes = append(nodes, n.Name)
			}
		}
		disks := []any{}
		var sizes []int64
		for _, d := range inst.Disks {
			var sp any
			if d.Spindles != nil {
				sp = *d.Spindles
				for _, u := range append([]string{inst.PrimaryNode}, inst.SecondaryNodes...) {
					usedSpindles[u] += *d.Spindles
				}
			}
			disks = append(disks, map[string]any{"size": d.Size, "mode": d.Mode, "spindles": sp})
			sizes = append(sizes, d.Size)
		}
		nics := []any{}
		for _, nic := range inst.NICs {
			filled := cluster.FillParams(c.NICParams, nic.NICParams)
			n := map[string]any{"mac": nic.MAC, "ip": nic.IP, "mode": filled["mode"], "link": filled["link"], "network": nil}
			if nic.Network != nil {
				if nw := cfg.Networks[*nic.Network]; nw != nil {
					n["network"] = nw.Name
				}
			}
			if filled["mode"] == "bridged" {
				n["bridge"] = filled["link"]
			}
			nics = append(nics, n)
		}
		instances[inst.Name] = map[string]any{
			"tags":               nonNilStrings(inst.Tags),
			"admin_state":        inst.AdminState,
			"admin_state_source": inst.AdminStateSource,
			"vcpus":              vcpus,
			"memory":             mem,
			"spindle_use":        su,
			"os":                 inst.OS,
			"nodes":              nodes,
			"nics":               nics,
			"disks":              disks,
			"disk_template":      inst.DiskTemplate,
			"disk_space_total":   diskSpaceTotal(inst.DiskTemplate, sizes),
			"hypervisor":         inst.Hypervisor,
		}
	}
	nodes := map[string]any{}
	for uuid, n := range cfg.Nodes {
		var groupND cluster.Params
		if g := cfg.Groups[n.Group]; g != nil {
			groupND = g.NDParams
		}
		nd := cluster.FillParams(cluster.FillParams(c.NDParams, groupND), n.NDParams)
		d := map[string]any{
			"tags":             nonNilStrings(n.Tags),
			"primary_ip":       n.PrimaryIP,
			"secondary_ip":     n.SecondaryIP,
			"offline":          n.Offline,
			"drained":          n.Drained,
			"master_candidate": n.MasterCandidate,
			"group":            n.Group,
			"master_capable":   n.MasterCapable,
			"vm_capable":       n.VMCapable,
			"ndparams":         nd,
		}
		if !n.Offline && n.VMCapable {
			fm, fd := cfg.NodeFree(uuid)
			d["total_memory"] = n.MemTotal
			d["reserved_memory"] = n.MemNode
			d["free_memory"] = max(fm, 0)
			d["total_disk"] = n.DiskTotal
			d["free_disk"] = max(fd, 0)
			d["total_spindles"] = n.Spindles
			d["free_spindles"] = max(n.Spindles-usedSpindles[uuid], 0)
			d["total_cpus"] = n.CPUTotal
			d["reserved_cpus"] = n.CPUNodeOS
			d["i_pri_memory"] = priMem[uuid]
			d["i_pri_up_memory"] = priUpMem[uuid]
		}
		nodes[n.Name] = d
	}
	return map[string]any{
		"version":             iallocatorVersion,
		"cluster_name":        c.Name,
		"cluster_tags":        nonNilStrings(c.Tags),
		"enabled_hypervisors": nonNilStrings(c.EnabledHypervisors),
		"ipolicy":             c.IPolicy,
		"nodegroups":          groups,
		"nodes":               nodes,
		"instances":           instances,
		"request":             request,
	}
}

// allocateRequest is the "request" of an "allocate" run.
func allocateRequest(r allocReq) map[string]any {
	req := r.fields()
	req["type"] = "allocate"
	return req
}

// runIAllocator runs the named iallocator on request and returns its
// "result" (opexec.ErrNoExternalIAllocator when it is not one to run or not
// installed). A failed allocation is Ganeti's OpPrereqError.
func runIAllocator(x *opexec.ExecContext, name string, request map[string]any) (json.RawMessage, error) {
	return runIAllocatorFor(x, name, request, "Can't compute nodes using iallocator")
}

// runIAllocatorFor is runIAllocator with the start of the message of a
// failed run ("Can't compute nodes using iallocator", or LUNodeEvacuate's
// "Can't compute node evacuation using iallocator").
func runIAllocatorFor(x *opexec.ExecContext, name string, request map[string]any, failure string) (res json.RawMessage, err error) {
	if res, err, ok := x.Plan().Replay(name, request); ok {
		if errors.Is(err, opexec.ErrNoExternalIAllocator) && x.IAllocator().Lookup(name) == "" {
			logNoIAllocator(x, name) // as the run did
		}
		return res, err
	}
	if x.Plan().IsReplaying() {
		// The apply phase runs no allocator: the configuration it got
		// asks what the checks on the snapshot did not (it changed
		// between the phases).
		return nil, errs.Prereq(errs.CodeState, "%s '%s': the configuration changed since the allocation was planned", failure, name)
	}
	defer func() { x.Plan().Record(name, request, res, err) }()
	ctx, span := startAllocatorSpan(x, name, request)
	defer func() {
		if span.IsRecording() {
			endAllocatorSpan(span, res, err)
		}
	}()
	path := x.IAllocator().Lookup(name)
	if path == "" {
		logNoIAllocator(x, name)
		return nil, opexec.ErrNoExternalIAllocator
	}
	in, err := json.Marshal(iallocatorInput(x.Config, request))
	if err != nil {
		return nil, err
	}
	out, err := x.IAllocator().Run(ctx, path, in)
	if errors.Is(err, opexec.ErrNoExternalIAllocator) {
		return nil, opexec.ErrNoExternalIAllocator
	}
	if err != nil {
		return nil, errs.Exec("Failure while running the iallocator script: %v", err)
	}
	var resp struct {
		Success *bool           `json:"success"`
		Info    *string         `json:"info"`
		Result  json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, errs.Exec("Can't parse iallocator results: %v", err)
	}
	switch {
	case resp.Success == nil:
		return nil, errs.Exec("Can't parse iallocator results: missing key 'success'")
	case resp.Info == nil:
		return nil, errs.Exec("Can't parse iallocator results: missing key 'info'")
	case resp.Result == nil:
		return nil, errs.Exec("Can't parse iallocator results: missing key 'result'")
	}
	if !*resp.Success {
		return nil, errs.Prereq(errs.CodeNoRes, "%s '%s': %s", failure, name, *resp.Info)
	}
	return resp.Result, nil
}

// resultNodes resolves the node names of an allocation result.
func resultNodes(cfg *cluster.Config, names []string, required int) ([]*cluster.Node, error) {
	if len(names) != required {
		return nil, errs.Prereq(errs.CodeFault, "iallocator returned invalid number of nodes (%d), required %d", len(names), required)
	}
	var out []*cluster.Node
	for _, n := range names {
		node := findByName(cfg.Nodes, n, func(n *cluster.Node) string { return n.Name }, false)
		if node == nil {
			return nil, errs.Exec("Can't parse iallocator results: unknown node '%s'", n)
		}
		out = append(out, node)
	}
	return out, nil
}

// externalAllocate places one instance with an external iallocator
// (opexec.ErrNoExternalIAllocator: use the built-in one).
func externalAllocate(x *opexec.ExecContext, name string, r allocReq) ([]*cluster.Node, error) {
	res, err := runIAllocator(x, name, allocateRequest(r))
	if err != nil {
		return nil, err
	}
	var names []string
	if err := json.Unmarshal(res, &names); err != nil {
		return nil, errs.Exec("Can't parse iallocator results: %v", err)
	}
	return resultNodes(x.Config, names, r.requiredNodes())
}

// createAllocReq is the allocation request of an OP_INSTANCE_CREATE.
func createAllocReq(cfg *cluster.Config, m *rapiv2.OpInstanceCreate, hv, template string, disks []newDisk, be cluster.Params) allocReq {
	mem, _ := be["maxmem"].(int64)
	vcpus, _ := be["vcpus"].(int64)
	su, _ := be["spindle_use"].(int64)
	var specs []nicSpec
	for _, p := range m.GetNics() {
		specs = append(specs, nicSpecOf(p))
	}
	return allocReq{
		name: m.GetInstanceName(), memory: mem, vcpus: vcpus, spindleUse: su,
		disks: disks, template: template, os: m.GetOsType(), tags: m.GetTags(),
		nics: requestNICs(cfg, specs), hypervisor: hv, group: m.GetGroupName(),
	}
}

// logNoIAllocator logs the fallback to the built-in allocator.
func logNoIAllocator(x *opexec.ExecContext, name string) {
	if name == "hail" {
		x.LogInfo("iallocator %s is not installed; using the built-in allocator", name)
	}
}

// multiAllocBuiltin places the instances of a multi-allocation one after
// the other with the built-in allocator (nil nodes: no room).
func multiAllocBuiltin(cfg *cluster.Config, insts []*rapiv2.OpInstanceCreate) ([][]*cluster.Node, error) {
	used := map[string]nodeUse{}
	var place [][]*cluster.Node
	for _, c := range insts {
		nodes, err := multiAllocPlace(cfg, c, used)
		if err != nil {
			return nil, err
		}
		place = append(place, nodes)
	}
	return place, nil
}

// multiAllocReq is the allocation request of one instance of an
// OP_INSTANCE_MULTI_ALLOC (the defaults OP_INSTANCE_CREATE would use).
func multiAllocReq(cfg *cluster.Config, c *rapiv2.OpInstanceCreate) (allocReq, error) {
	hv := ""
	if c.Hypervisor != nil {
		hv = legacyenum.StringOf(c.GetHypervisor())
	} else if len(cfg.Cluster.EnabledHypervisors) > 0 {
		hv = cfg.Cluster.EnabledHypervisors[0]
	}
	template := multiAllocDiskTemplate(cfg, c)
	be, err := checkBEParams(opexec.StructMap(c.GetBeparams()), func(p cluster.Params) cluster.Params { return cluster.FillParams(cfg.Cluster.BEParams, p) })
	if err != nil {
		return allocReq{}, err
	}
	var disks []newDisk
	for _, d := range c.GetDisks() {
		nd, err := computeDisk(opexec.StructMap(d), false)
		if err != nil {
			return allocReq{}, err
		}
		disks = append(disks, nd)
	}
	return createAllocReq(cfg, c, hv, template, disks, cluster.FillParams(cfg.Cluster.BEParams, be)), nil
}

// externalMultiAllocate runs Ganeti's "multi-allocate" request
// (IAReqMultiInstanceAlloc) and returns the nodes of every instance by
// instance index (nil: failed) and the allocatable and failed names in
// the iallocator's order (opexec.ErrNoExternalIAllocator: use the built-in one).
func externalMultiAllocate(x *opexec.ExecContext, name string, insts []*rapiv2.OpInstanceCreate) (place [][]*cluster.Node, allocatable, failed []string, err error) {
	if x.IAllocator().Lookup(name) == "" {
		logNoIAllocator(x, name)
		return nil, nil, nil, opexec.ErrNoExternalIAllocator
	}
	reqs := make([]any, 0, len(insts))
	byName := map[string]int{}
	var required []int
	for i, c := range insts {
		r, err := multiAllocReq(x.Config, c)
		if err != nil {
			return nil, nil, nil, err
		}
		reqs = append(reqs, r.fields())
		byName[r.name] = i
		required = append(required, r.requiredNodes())
	}
	res, err := runIAllocator(x, name, map[string]any{"type": "multi-allocate", "instances": reqs})
	if err != nil {
		return nil, nil, nil, err
	}
	// [[[instance, [nodes]], ...], [failed instance names]]
	var out []json.RawMessage
	if err := json.Unmarshal(res, &out); err != nil || len(out) != 2 {
		return nil, nil, nil, errs.Exec("Can't parse iallocator results: invalid multi-allocate result %s", res)
	}
	var allocs [][2]json.RawMessage
	if err := json.Unmarshal(out[0], &allocs); err != nil {
		return nil, nil, nil, errs.Exec("Can't parse iallocator results: %v", err)
	}
	if err := json.Unmarshal(out[1], &failed); err != nil {
		return nil, nil, nil, errs.Exec("Can't parse iallocator results: %v", err)
	}
	place = make([][]*cluster.Node, len(insts))
	for _, a := range allocs {
		var inst string
		var names []string
		if err := json.Unmarshal(a[0], &inst); err != nil {
			return nil, nil, nil, errs.Exec("Can't parse iallocator results: %v", err)
		}
		if err := json.Unmarshal(a[1], &names); err != nil {
			return nil, nil, nil, errs.Exec("Can't parse iallocator results: %v", err)
		}
		i, ok := byName[inst]
		if !ok || place[i] != nil {
			return nil, nil, nil, errs.Exec("Can't parse iallocator results: unexpected instance '%s'", inst)
		}
		nodes, err := resultNodes(x.Config, names, required[i])
		if err != nil {
			return nil, nil, nil, err
		}
		place[i] = nodes
		allocatable = append(allocatable, inst)
		x.LogInfo("Selected nodes for instance %s via iallocator %s: %s", inst, name, strings.Join(names, ", "))
	}
	// LUInstanceMultiAlloc.Exec: every instance is allocatable or failed.
	for i, c := range insts {
		if place[i] == nil && !slices.Contains(failed, c.GetInstanceName()) {
			return nil, nil, nil, errs.Exec("Iallocator returned an incomplete result: instance %s is neither allocatable nor failed", c.GetInstanceName())
		}
	}
	return place, allocatable, failed, nil
}

// evacMoved is one entry of the "moved" list of a node-evacuate result:
// [instance, group, [nodes]].
type evacMoved struct {
	inst, group string
	nodes       []string
}

// externalEvacuate runs Ganeti's "node-evacuate" request (IAReqNodeEvac)
// and turns the result into follow-up jobs as LoadNodeEvacResult does:
// the result's opcodes, with early_release set on the ones that have it
// (opexec.ErrNoExternalIAllocator: use the built-in planning).
func externalEvacuate(x *opexec.ExecContext, name string, insts []*cluster.Instance, mode string, earlyRelease bool) ([][]*rapiv2.OpCode, error) {
	if x.IAllocator().Lookup(name) == "" {
		logNoIAllocator(x, name)
		return nil, opexec.ErrNoExternalIAllocator
	}
	names := make([]string, 0, len(insts))
	for _, inst := range insts {
		names = append(names, inst.Name)
	}
	res, err := runIAllocatorFor(x, name, map[string]any{"type": "node-evacuate", "instances": names, "evac_mode": mode},
		"Can't compute node evacuation using iallocator")
	if err != nil {
		return nil, err
	}
	var out struct {
		Moved  [][]json.RawMessage `json:"moved"`
		Failed [][]json.RawMessage `json:"failed"`
		Jobs   [][]json.RawMessage `json:"jobs"`
	}
	bad := func(err error) error { return errs.Exec("Can't parse iallocator results: %v", err) }
	// hail prints [moved, failed, jobs]; doc/iallocator.rst names them.
	var tuple []json.RawMessage
	if json.Unmarshal(res, &tuple) == nil {
		if len(tuple) != 3 {
			return nil, bad(fmt.Errorf("invalid node-evacuate result %s", res))
		}
		for i, p := range []any{&out.Moved, &out.Failed, &out.Jobs} {
			if err := json.Unmarshal(tuple[i], p); err != nil {
				return nil, bad(err)
			}
		}
	} else if err := json.Unmarshal(res, &out); err != nil {
		return nil, bad(err)
	}
	var failed []string
	for _, f := range out.Failed {
		var inst, reason string
		if len(f) != 2 {
			return nil, bad(fmt.Errorf("invalid failed entry"))
		}
		if err := json.Unmarshal(f[0], &inst); err != nil {
			return nil, bad(err)
		}
		if err := json.Unmarshal(f[1], &reason); err != nil {
			return nil, bad(err)
		}
		failed = append(failed, fmt.Sprintf("%s (%s)", inst, reason))
	}
	var moved []evacMoved
	for _, mv := range out.Moved {
		var e evacMoved
		if len(mv) != 3 {
			return nil, bad(fmt.Errorf("invalid moved entry"))
		}
		for i, p := range []any{&e.inst, &e.group, &e.nodes} {
			if err := json.Unmarshal(mv[i], p); err != nil {
				return nil, bad(err)
			}
		}
		moved = append(moved, e)
	}
	var jobs [][]*rapiv2.OpCode
	for _, ops := range out.Jobs {
		var job []*rapiv2.OpCode
		for _, raw := range ops {
			op, err := decodeOpCode(raw)
			if err != nil {
				return nil, bad(err)
			}
			if r := op.GetInstanceReplaceDisks(); r != nil {
				r.EarlyRelease = proto.Bool(earlyRelease)
			}
			job = append(job, op)
		}
		jobs = append(jobs, job)
	}
	if len(failed) > 0 {
		reason := strings.Join(failed, ", ")
		x.LogWarning("Unable to evacuate instances %s", reason)
		return nil, errs.Exec("Unable to evacuate instances %s", reason)
	}
	if len(moved) > 0 {
		var parts []string
		for _, e := range moved {
			parts = append(parts, fmt.Sprintf("%s (to %s)", e.inst, strings.Join(e.nodes, ", ")))
		}
		x.LogInfo("Instances to be moved: %s", strings.Join(parts, ", "))
	}
	return jobs, nil
}

// decodeOpCode is Ganeti's OpCode.LoadOpCode: an opcode dict whose OP_ID
// picks the opcode.
func decodeOpCode(raw json.RawMessage) (*rapiv2.OpCode, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	op := &rapiv2.OpCode{}
	if err := legacyjson.FromValue(op, v); err != nil {
		return nil, err
	}
	if op.GetOp() == nil {
		return nil, fmt.Errorf("invalid opcode %s", raw)
	}
	return op, nil
}

// relocateRequest is the "request" of a "relocate" run (IAReqRelocate):
// a new node for inst instead of the nodes from (its secondary for
// replace-disks, its primary for the migration of an externally mirrored
// instance).
func relocateRequest(cfg *cluster.Config, inst *cluster.Instance, from []string) map[string]any {
	sizes := make([]int64, 0, len(inst.Disks))
	for _, d := range inst.Disks {
		sizes = append(sizes, d.Size)
	}
	names := make([]string, 0, len(from))
	for _, uuid := range from {
		names = append(names, cfg.Nodes[uuid].Name)
	}
	return map[string]any{
		"type":             "relocate",
		"name":             inst.Name,
		"disk_space_total": diskSpaceTotal(inst.DiskTemplate, sizes),
		"required_nodes":   1,
		"relocate_from":    names,
	}
}

// externalRelocate asks the named iallocator for a node to replace the
// nodes from of inst (opexec.ErrNoExternalIAllocator: use the built-in
// allocator). As IAReqRelocate.ValidateResult, the node must be in a
// group of the nodes it replaces or of the primary.
func externalRelocate(x *opexec.ExecContext, name string, inst *cluster.Instance, from []string) (*cluster.Node, error) {
	cfg := x.Config
	res, err := runIAllocator(x, name, relocateRequest(cfg, inst, from))
	if err != nil {
		return nil, err
	}
	var names []string
	if err := json.Unmarshal(res, &names); err != nil {
		return nil, &errs.Error{Class: "ResultValidationError", Msg: fmt.Sprintf("iallocator returned invalid result, expected TList, got %s", res)}
	}
	nodes, err := resultNodes(cfg, names, 1)
	if err != nil {
		return nil, err
	}
	groupsOf := func(uuids ...string) []string {
		var out []string
		for _, u := range uuids {
			if g := cfg.Groups[cfg.Nodes[u].Group]; g != nil && !slices.Contains(out, g.Name) {
				out = append(out, g.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	want := groupsOf(append(slices.Clone(from), inst.PrimaryNode)...)
	got := groupsOf(nodes[0].UUID, inst.PrimaryNode)
	for _, g := range got {
		if !slices.Contains(want, g) {
			return nil, &errs.Error{Class: "ResultValidationError", Msg: fmt.Sprintf(
				"Groups of nodes returned by iallocator (%s) differ from original groups (%s)", strings.Join(got, ", "), strings.Join(want, ", "))}
		}
	}
	return nodes[0], nil
}
