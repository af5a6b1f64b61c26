package lu

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// Opcodes whose result lists follow-up jobs (Ganeti's ResultWithJobs):
// OP_NODE_MIGRATE, OP_NODE_EVACUATE and OP_INSTANCE_MULTI_ALLOC. Their
// jobs are submitted with ExecContext.SubmitFollowUp, in the transaction
// of the opcode's success.

// submitJobs submits one follow-up job per opcode list and returns the
// {"jobs": [[true, id], ...]} value.
func submitJobs(x *opexec.ExecContext, jobs [][]*rapiv2.OpCode) ([]any, error) {
	ids := make([]int64, 0, len(jobs))
	for _, ops := range jobs {
		id, err := x.SubmitFollowUp(ops)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return opexec.FollowUpResult(ids), nil
}

// Exec implements Executor: opexec.CheckApply.
func (e NodeMigrate) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e NodeMigrate) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e NodeMigrate) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is LUNodeMigrate after its locks: one OP_INSTANCE_MIGRATE job per
// primary instance of the node (LUNodeMigrate.Exec), with the node
// opcode's migration parameters.
func (NodeMigrate) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNodeMigrate)
	if !ok {
		return nil, obUnexpected(op)
	}
	node := obNode(x.Config, m.GetNodeName())
	if node == nil {
		return nil, errs.NotFound("Node", m.GetNodeName())
	}
	if x.DryRun {
		return nil, nil
	}
	var insts []string
	for _, inst := range x.Config.Instances {
		if inst.PrimaryNode == node.UUID {
			insts = append(insts, inst.Name)
		}
	}
	cluster.NiceSort(insts)
	jobs := make([][]*rapiv2.OpCode, 0, len(insts))
	for _, name := range insts {
		mig := &rapiv2.OpInstanceMigrate{
			InstanceName:        proto.String(name),
			Mode:                m.Mode,
			Live:                m.Live,
			Iallocator:          m.Iallocator,
			TargetNode:          m.TargetNode,
			AllowRuntimeChanges: m.AllowRuntimeChanges,
			IgnoreIpolicy:       m.IgnoreIpolicy,
		}
		jobs = append(jobs, []*rapiv2.OpCode{{Op: &rapiv2.OpCode_InstanceMigrate{InstanceMigrate: mig}}})
	}
	res, err := submitJobs(x, jobs)
	if err != nil {
		return nil, err
	}
	return map[string]any{"jobs": res}, nil
}

// Exec implements Executor: opexec.CheckApply.
func (e NodeEvacuate) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e NodeEvacuate) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e NodeEvacuate) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is LUNodeEvacuate after its locks: one job per instance to move.
// With a remote node, OP_INSTANCE_REPLACE_DISKS to that node for every
// secondary instance. With hail installed, its "node-evacuate" result
// gives the jobs (externalEvacuate); otherwise the built-in allocator
// plans the moves as hail's node evacuation does: a DRBD primary instance migrates
// to its secondary (failing over when it is down), an instance of an
// externally mirrored template (diskless, sharedfile, ...) migrates to
// another node of its group, a DRBD secondary gets a new secondary node of
// its group (OP_INSTANCE_REPLACE_DISKS, replace_new_secondary); plain and
// file instances cannot be moved, and an instance that cannot be placed
// fails the whole evacuation.
func (NodeEvacuate) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNodeEvacuate)
	if !ok {
		return nil, obUnexpected(op)
	}
	cfg := x.Config
	ialloc := m.GetIallocator()
	// CheckIAllocatorOrNode.
	if ialloc != "" && m.RemoteNode != nil {
		return nil, errs.Prereq(errs.CodeInval, "Give either the iallocator or the new secondary, not both")
	}
	if ialloc == "" && m.RemoteNode == nil {
		ialloc = cfg.Cluster.DefaultIAllocator
		if ialloc == "" {
			return nil, errs.Prereq(errs.CodeInval, "No iallocator or node given and no cluster-wide default iallocator found; please specify either an iallocator or a node, or set a cluster-wide default iallocator")
		}
	}
	node := obNode(cfg, m.GetNodeName())
	if node == nil {
		return nil, errs.NotFound("Node", m.GetNodeName())
	}
	mode, _ := legacyenum.Of(m.Mode)
	var remote *cluster.Node
	if m.RemoteNode != nil {
		remote = obNode(cfg, m.GetRemoteNode())
		if remote == nil {
			return nil, errs.NotFound("Node", m.GetRemoteNode())
		}
		if remote.UUID == node.UUID {
			return nil, errs.Prereq(errs.CodeInval, "Can not use evacuated node as a new secondary node")
		}
		if mode != "secondary-only" {
			return nil, errs.Prereq(errs.CodeInval, "Without the use of an iallocator only secondary instances can be evacuated")
		}
	} else if mode == "all" {
		return nil, errs.Prereq(errs.CodeInval, "Due to an issue with the iallocator interface it is not possible to evacuate all instances at once; specify explicitly whether to evacuate primary or secondary instances")
	}
	var insts []*cluster.Instance
	for _, inst := range cfg.Instances {
		primary := inst.PrimaryNode == node.UUID
		secondary := slices.Contains(inst.SecondaryNodes, node.UUID)
		if (mode != "secondary-only" && primary) || (mode != "primary-only" && secondary) {
			insts = append(insts, inst)
		}
	}
	slices.SortFunc(insts, func(a, b *cluster.Instance) int { return cluster.NiceCompare(a.Name, b.Name) })
	if x.DryRun {
		return nil, nil
	}
	var jobs [][]*rapiv2.OpCode
	if remote != nil {
		for _, inst := range insts {
			jobs = append(jobs, []*rapiv2.OpCode{replaceSecondaryOp(inst.Name, remote.Name, m.GetEarlyRelease())})
		}
	} else if len(insts) > 0 {
		var err error
		jobs, err = externalEvacuate(x, ialloc, insts, mode, m.GetEarlyRelease())
		if errors.Is(err, opexec.ErrNoExternalIAllocator) {
			end := traceBuiltinAllocator(x, ialloc, "node-evacuate", instanceNames(insts)...)
			jobs, err = planEvacuation(x, node, insts, mode, m.GetEarlyRelease())
			end(nil, err)
		}
		if err != nil {
			return nil, err
		}
	}
	res, err := submitJobs(x, jobs)
	if err != nil {
		return nil, err
	}
	return map[string]any{"jobs": res}, nil
}

func replaceSecondaryOp(inst, remote string, earlyRelease bool) *rapiv2.OpCode {
	return &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceReplaceDisks{InstanceReplaceDisks: &rapiv2.OpInstanceReplaceDisks{
		InstanceName:  proto.String(inst),
		RemoteNode:    proto.String(remote),
		Disks:         []int64{},
		Mode:          rapiv2.ReplaceDisksMode_REPLACE_DISKS_MODE_REPLACE_NEW_SECONDARY.Enum(),
		EarlyRelease:  proto.Bool(earlyRelease),
		IgnoreIpolicy: proto.Bool(false),
	}}}
}

// planEvacuation is the built-in allocator's node evacuation (hail's
// nodeEvacInstance and Ganeti's LoadNodeEvacResult).
func planEvacuation(x *opexec.ExecContext, node *cluster.Node, insts []*cluster.Instance, mode string, earlyRelease bool) ([][]*rapiv2.OpCode, error) {
	cfg := x.Config
	used := map[string]nodeUse{}
	var jobs [][]*rapiv2.OpCode
	var moved, failed []string
	for _, inst := range insts {
		be := cfg.InstanceBEParams(inst)
		maxmem, _ := be["maxmem"].(int64)
		var disk int64
		for _, d := range inst.Disks {
			disk += d.Size
			if mirrored(inst.DiskTemplate) {
				disk += cluster.DRBDMetaSize
			}
		}
		if inst.PrimaryNode == node.UUID && mode != "secondary-only" {
			switch {
			case isNotMigratable(inst.DiskTemplate):
				failed = append(failed, fmt.Sprintf("%s (Instances of type %s cannot be relocated)", inst.Name, inst.DiskTemplate))
			case mirrored(inst.DiskTemplate):
				if len(inst.SecondaryNodes) == 0 {
					failed = append(failed, fmt.Sprintf("%s (Instance has no secondary node)", inst.Name))
					continue
				}
				sec := cfg.Nodes[inst.SecondaryNodes[0]]
				moved = append(moved, fmt.Sprintf("%s (to %s, %s)", inst.Name, sec.Name, node.Name))
				jobs = append(jobs, []*rapiv2.OpCode{evacMigrateOp(inst.Name, "")})
			default:
				nodes := allocateUsed(cfg, node.Group, maxmem, 0, false, used, []string{node.UUID})
				if nodes == nil {
					failed = append(failed, fmt.Sprintf("%s (No valid allocation solutions)", inst.Name))
					continue
				}
				u := used[nodes[0].UUID]
				u.mem += maxmem
				used[nodes[0].UUID] = u
				moved = append(moved, fmt.Sprintf("%s (to %s)", inst.Name, nodes[0].Name))
				jobs = append(jobs, []*rapiv2.OpCode{evacMigrateOp(inst.Name, nodes[0].Name)})
			}
			continue
		}
		// A secondary instance: a new secondary in its group.
		pnode := cfg.Nodes[inst.PrimaryNode]
		group := node.Group
		if pnode != nil {
			group = pnode.Group
		}
		nodes := allocateUsed(cfg, group, 0, disk, false, used, []string{node.UUID, inst.PrimaryNode})
		if nodes == nil {
			failed = append(failed, fmt.Sprintf("%s (No valid allocation solutions)", inst.Name))
			continue
		}
		u := used[nodes[0].UUID]
		u.disk += disk
		used[nodes[0].UUID] = u
		pname := ""
		if pnode != nil {
			pname = pnode.Name
		}
		moved = append(moved, fmt.Sprintf("%s (to %s, %s)", inst.Name, pname, nodes[0].Name))
		jobs = append(jobs, []*rapiv2.OpCode{replaceSecondaryOp(inst.Name, nodes[0].Name, earlyRelease)})
	}
	if len(failed) > 0 {
		reason := strings.Join(failed, ", ")
		x.LogWarning("Unable to evacuate instances %s", reason)
		return nil, errs.Exec("Unable to evacuate instances %s", reason)
	}
	if len(moved) > 0 {
		x.LogInfo("Instances to be moved: %s", strings.Join(moved, ", "))
	}
	return jobs, nil
}

// evacMigrateOp is hail's migration opcode of an evacuation (failover
// allowed; target only for externally mirrored templates).
func evacMigrateOp(inst, target string) *rapiv2.OpCode {
	mig := &rapiv2.OpInstanceMigrate{
		InstanceName:        proto.String(inst),
		AllowRuntimeChanges: proto.Bool(false),
		IgnoreIpolicy:       proto.Bool(false),
		Cleanup:             proto.Bool(false),
		AllowFailover:       proto.Bool(true),
		IgnoreHvversions:    proto.Bool(true),
	}
	if target != "" {
		mig.TargetNode = proto.String(target)
	}
	return &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceMigrate{InstanceMigrate: mig}}
}

// InstanceMultiAlloc implements OP_INSTANCE_MULTI_ALLOC
// (LUInstanceMultiAlloc): with an iallocator (the opcode's, or the
// cluster's default when no instance names its nodes) hail's
// "multi-allocate" places the instances, or without hail the built-in
// allocator one after the other; then one
// OP_INSTANCE_CREATE job per placed instance. The result is {"jobs":
// [...], "allocatable": [names], "failed": [names]}; in dry-run mode the
// same with no jobs.
type InstanceMultiAlloc struct{}

// multiAllocOps decodes the instances of a multi-allocation.
func multiAllocOps(m *rapiv2.OpInstanceMultiAlloc) ([]*rapiv2.OpInstanceCreate, error) {
	out := make([]*rapiv2.OpInstanceCreate, 0, len(m.GetInstances()))
	for _, v := range m.GetInstances() {
		c := &rapiv2.OpInstanceCreate{}
		if err := legacyjson.FromValue(c, nestedParams(v)); err != nil {
			return nil, errs.Prereq(errs.CodeInval, "Invalid instance in multi-allocation: %v", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// multiAllocArgs is LUInstanceMultiAlloc.CheckArguments; it returns the
// iallocator to use ("" when the instances name their nodes).
func multiAllocArgs(m *rapiv2.OpInstanceMultiAlloc, insts []*rapiv2.OpInstanceCreate, defaultIAlloc string) (string, error) {
	var nodes []bool
	for _, c := range insts {
		if c.Iallocator != nil {
			return "", errs.Prereq(errs.CodeInval, "iallocator are not allowed to be set on instance objects")
		}
		nodes = append(nodes, c.GetPnode() != "")
		if c.DiskTemplate != nil && mirrored(legacyenum.StringOf(c.GetDiskTemplate())) {
			nodes = append(nodes, c.GetSnode() != "")
		}
	}
	has := slices.Contains(nodes, true)
	all := !slices.Contains(nodes, false)
	if all != has {
		return "", errs.Prereq(errs.CodeInval, "There are instance objects providing pnode/snode while others do not")
	}
	ialloc := m.GetIallocator()
	if !has && ialloc == "" {
		if defaultIAlloc == "" {
			return "", errs.Prereq(errs.CodeInval, "No iallocator or nodes on the instances given and no cluster-wide default iallocator found; please specify either an iallocator or nodes on the instances or set a cluster-wide default iallocator")
		}
		ialloc = defaultIAlloc
	}
	if has {
		ialloc = ""
	}
	seen := map[string]bool{}
	var dups []string
	for _, c := range insts {
		if seen[c.GetInstanceName()] && !slices.Contains(dups, c.GetInstanceName()) {
			dups = append(dups, c.GetInstanceName())
		}
		seen[c.GetInstanceName()] = true
	}
	if len(dups) > 0 {
		return "", errs.Prereq(errs.CodeInval, "There are duplicate instance names: %s", strings.Join(dups, ", "))
	}
	return ialloc, nil
}

// Locks implements Executor: with an iallocator every node, otherwise the
// nodes the instances name, shared (the creation jobs take their own).
func (InstanceMultiAlloc) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpInstanceMultiAlloc)
	if !ok {
		return nil, obUnexpected(op)
	}
	insts, err := multiAllocOps(m)
	if err != nil {
		return nil, err
	}
	var uuids []string
	if insts2 := insts; len(insts2) > 0 && insts2[0].GetPnode() == "" {
		uuids = allNodeUUIDs(st)
	} else {
		for _, c := range insts {
			for _, n := range []string{c.GetPnode(), c.GetSnode()} {
				if n == "" {
					continue
				}
				u, err := lookupState(st, "node", n, "uuid")
				if err != nil {
					return nil, err
				}
				if !slices.Contains(uuids, u) {
					uuids = append(uuids, u)
				}
			}
		}
	}
	var locks []opexec.Lock
	for _, u := range uuids {
		locks = append(locks, opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: opexec.Shared}, opexec.Lock{Level: opexec.LevelNodeRes, Name: u, Mode: opexec.Shared})
	}
	return locks, nil
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceMultiAlloc) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceMultiAlloc) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceMultiAlloc) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceMultiAlloc) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceMultiAlloc)
	if !ok {
		return nil, obUnexpected(op)
	}
	cfg := x.Config
	insts, err := multiAllocOps(m)
	if err != nil {
		return nil, err
	}
	// recs are the instances as the job keeps them (Ganeti's LU changes
	// the instance opcodes it submits in place).
	recs := make([]*rapiv2.OpInstanceCreate, len(insts))
	for i, c := range insts {
		recs[i] = proto.Clone(c).(*rapiv2.OpInstanceCreate)
	}
	recordMultiAlloc(x, recs)
	ialloc, err := multiAllocArgs(m, insts, cfg.Cluster.DefaultIAllocator)
	if err != nil {
		return nil, err
	}
	if m.GetIallocator() == "" && ialloc != "" {
		x.SetParam("iallocator", ialloc)
	}
	allocatable := []any{}
	failed := []any{}
	var place [][]*cluster.Node // by instance; nil when failed
	if ialloc != "" {
		var ok, bad []string
		place, ok, bad, err = externalMultiAllocate(x, ialloc, insts)
		switch {
		case err == nil:
			for _, n := range ok {
				allocatable = append(allocatable, n)
			}
			for _, n := range bad {
				failed = append(failed, n)
			}
		case errors.Is(err, opexec.ErrNoExternalIAllocator):
			end := traceBuiltinAllocator(x, ialloc, "multi-allocate")
			place, err = multiAllocBuiltin(cfg, insts)
			end(nil, err)
			if err != nil {
				return nil, err
			}
			for i, c := range insts {
				if place[i] == nil {
					failed = append(failed, c.GetInstanceName())
				} else {
					allocatable = append(allocatable, c.GetInstanceName())
				}
			}
		default:
			return nil, err
		}
	} else {
		for i, c := range insts {
			for _, n := range []string{c.GetPnode(), c.GetSnode()} {
				if n != "" && obNode(cfg, n) == nil {
					recordMultiAlloc(x, recs)
					return nil, errs.NotFound("Node", n)
				}
			}
			// ExpandNames: the nodes' uuids and full names.
			setNodes(cfg, recs[i], c.GetPnode(), c.GetSnode())
			allocatable = append(allocatable, c.GetInstanceName())
		}
	}
	recordMultiAlloc(x, recs)
	if x.DryRun {
		return map[string]any{"jobs": []any{}, "allocatable": allocatable, "failed": failed}, nil
	}
	// The creation jobs in the order of "allocatable" (an external
	// iallocator's order).
	order := make([]int, 0, len(insts))
	for _, n := range allocatable {
		for i, c := range insts {
			if c.GetInstanceName() == n && !slices.Contains(order, i) {
				order = append(order, i)
				break
			}
		}
	}
	var jobs [][]*rapiv2.OpCode
	submitted := make([]bool, len(insts))
	for _, i := range order {
		c := proto.Clone(insts[i]).(*rapiv2.OpInstanceCreate)
		if ialloc != "" {
			if place[i] == nil {
				continue
			}
			c.Pnode = proto.String(place[i][0].Name)
			if len(place[i]) > 1 {
				c.Snode = proto.String(place[i][1].Name)
			}
			setNodes(cfg, recs[i], c.GetPnode(), c.GetSnode())
		}
		if n := obNode(cfg, c.GetPnode()); n != nil {
			c.Pnode, c.PnodeUuid = proto.String(n.Name), proto.String(n.UUID)
		}
		if n := obNode(cfg, c.GetSnode()); c.GetSnode() != "" && n != nil {
			c.Snode, c.SnodeUuid = proto.String(n.Name), proto.String(n.UUID)
		}
		submitted[i] = true
		jobs = append(jobs, []*rapiv2.OpCode{{Op: &rapiv2.OpCode_InstanceCreate{InstanceCreate: c}}})
	}
	res, err := submitJobs(x, jobs)
	if err != nil {
		return nil, err
	}
	// The submitted instances got the multi-allocation's base parameters
	// (_SetBaseOpParams).
	for i, sub := range submitted {
		if sub {
			opexec.SetBaseOpParams(op, 0, recs[i])
		}
	}
	recordMultiAlloc(x, recs)
	return map[string]any{"jobs": res, "allocatable": allocatable, "failed": failed}, nil
}

// setNodes writes the primary and secondary node (full name and uuid) into
// an instance opcode, as Ganeti's ExpandNodeUuidAndName.
func setNodes(cfg *cluster.Config, c *rapiv2.OpInstanceCreate, pnode, snode string) {
	if n := obNode(cfg, pnode); pnode != "" && n != nil {
		c.Pnode, c.PnodeUuid = proto.String(n.Name), proto.String(n.UUID)
	}
	if n := obNode(cfg, snode); snode != "" && n != nil {
		c.Snode, c.SnodeUuid = proto.String(n.Name), proto.String(n.UUID)
	}
}

// recordMultiAlloc writes the instances of a multi-allocation back as the
// job keeps them: full OP_INSTANCE_CREATE objects as loaded by Ganeti's job
// process, whose JSON loader makes a null private parameter an empty
// dictionary (serializer.WrapPrivateValues).
func recordMultiAlloc(x *opexec.ExecContext, recs []*rapiv2.OpInstanceCreate) {
	out := make([]any, 0, len(recs))
	for _, c := range recs {
		v, err := opexec.FullOpcodeValue(c)
		if err != nil {
			return
		}
		obj := opexec.JSONValue(v).(map[string]any)
		fields := c.ProtoReflect().Descriptor().Fields()
		m := c.ProtoReflect()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if !opexec.ParamSpec(fd).GetPrivate() {
				continue
			}
			// The record keeps the real values (the encoder nulls them;
			// every view of the job redacts them).
			if fd.Message() == nil {
				continue
			}
			if st, ok := m.Get(fd).Message().Interface().(*structpb.Struct); ok && m.Has(fd) {
				obj[fd.JSONName()] = opexec.JSONValue(structpb.NewStructValue(st))
			} else if obj[fd.JSONName()] == nil {
				obj[fd.JSONName()] = map[string]any{}
			}
		}
		out = append(out, obj)
	}
	x.SetParam("instances", out)
}

// multiAllocDiskTemplate is the disk template of one instance of a
// multi-allocation: its own, else the cluster's first enabled one.
func multiAllocDiskTemplate(cfg *cluster.Config, c *rapiv2.OpInstanceCreate) string {
	if c.DiskTemplate != nil {
		return legacyenum.StringOf(c.GetDiskTemplate())
	}
	if len(cfg.Cluster.EnabledDiskTemplates) > 0 {
		return cfg.Cluster.EnabledDiskTemplates[0]
	}
	return ""
}

// multiAllocPlace places one instance of a multi-allocation with the
// built-in allocator, reserving its resources in used (nil: no room).
func multiAllocPlace(cfg *cluster.Config, c *rapiv2.OpInstanceCreate, used map[string]nodeUse) ([]*cluster.Node, error) {
	template := multiAllocDiskTemplate(cfg, c)
	be, err := checkBEParams(opexec.StructMap(c.GetBeparams()), func(p cluster.Params) cluster.Params { return cluster.FillParams(cfg.Cluster.BEParams, p) })
	if err != nil {
		return nil, err
	}
	mem, _ := cluster.FillParams(cfg.Cluster.BEParams, be)["maxmem"].(int64)
	mir := mirrored(template)
	var disk int64
	for _, d := range c.GetDisks() {
		nd, err := computeDisk(opexec.StructMap(d), false)
		if err != nil {
			return nil, err
		}
		disk += nd.size
		if mir {
			disk += cluster.DRBDMetaSize
		}
	}
	group := ""
	if c.GetGroupName() != "" {
		g := findByName(cfg.Groups, c.GetGroupName(), func(g *cluster.Group) string { return g.Name }, false)
		if g == nil {
			return nil, errs.Prereq(errs.CodeNoEnt, "Group '%s' not found", c.GetGroupName())
		}
		group = g.UUID
	}
	if template == "diskless" {
		disk = 0
	}
	nodes := allocateUsed(cfg, group, mem, disk, mir, used, nil)
	for i, n := range nodes {
		u := used[n.UUID]
		if i == 0 {
			u.mem += mem
		}
		u.disk += disk
		used[n.UUID] = u
	}
	return nodes, nil
}

// nestedParams is the JSON value of a nested opcode without its "OP_ID"
// (the full form nestedCreate gives is decoded like what the client sent).
func nestedParams(v *structpb.Value) any {
	val := opexec.JSONValue(v)
	if obj, ok := val.(map[string]any); ok {
		if _, has := obj["OP_ID"]; has {
			c := make(map[string]any, len(obj))
			for k, e := range obj {
				if k != "OP_ID" {
					c[k] = e
				}
			}
			return c
		}
	}
	return val
}
