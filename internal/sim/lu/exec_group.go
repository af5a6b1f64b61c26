package lu

import (
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// GroupAdd implements OP_GROUP_ADD (Ganeti's LUGroupAdd). The result is
// null (Ganeti returns follow-up jobs only when the cluster has an
// instance communication network, which is not simulated).
type GroupAdd struct{}

// GroupRename implements OP_GROUP_RENAME (LUGroupRename); the result is
// the new name.
type GroupRename struct{}

// GroupSetParams implements OP_GROUP_SET_PARAMS (LUGroupSetParams); the
// result is the list of [parameter, new value] changes.
type GroupSetParams struct{}

// GroupRemove implements OP_GROUP_REMOVE (LUGroupRemove).
type GroupRemove struct{}

// GroupAssignNodes implements OP_GROUP_ASSIGN_NODES (LUGroupAssignNodes).
type GroupAssignNodes struct{}

// Locks implements Executor: the new group's UUID is only known in Exec,
// so only the BGL (shared) is taken.
func (GroupAdd) Locks(op proto.Message, _ *cluster.State) ([]opexec.Lock, error) {
	if _, ok := op.(*rapiv2.OpGroupAdd); !ok {
		return nil, obUnexpected(op)
	}
	return nil, nil
}

// obCheckGroupParams validates the ndparams, diskparams and ipolicy of a
// group (new values, already merged with the group's old ones).
func obCheckGroupParams(cfg *cluster.Config, nd cluster.Params, disk map[string]cluster.Params, ipol cluster.Params) (cluster.Params, map[string]cluster.Params, cluster.Params, error) {
	var err error
	if nd != nil {
		if nd, err = cluster.CheckNDParams(nd); err != nil {
			return nil, nil, nil, obTypeError("%s", err)
		}
	}
	if disk != nil {
		out := make(map[string]cluster.Params, len(disk))
		for dt, p := range disk {
			if !slices.Contains(cluster.DiskTemplates, dt) {
				return nil, nil, nil, errs.Prereq(errs.CodeInval, "While verify diskparams options: Invalid keys %s", obPyRepr([]string{dt}))
			}
			if out[dt], err = cluster.CheckDiskParams(dt, p); err != nil {
				return nil, nil, nil, obTypeError("%s", err)
			}
		}
		disk = out
	}
	if ipol != nil {
		if ipol, err = cluster.CheckIPolicy(ipol); err != nil {
			return nil, nil, nil, errs.Prereq(errs.CodeInval, "Invalid instance policy: %s", err)
		}
		if err := cluster.CheckIPolicyStd(cluster.FillIPolicy(cfg.Cluster.IPolicy, ipol)); err != nil {
			return nil, nil, nil, errs.Prereq(errs.CodeInval, "Invalid instance policy: %s", err)
		}
	}
	return nd, disk, ipol, nil
}

func obDiskParams(s *structpb.Struct) map[string]cluster.Params {
	if s == nil {
		return nil
	}
	out := map[string]cluster.Params{}
	for dt, v := range s.AsMap() {
		m, _ := v.(map[string]any)
		if m == nil {
			m = cluster.Params{}
		}
		out[dt] = m
	}
	return out
}

// Exec implements Executor.
func (g GroupAdd) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(g, x, op)
}

// groupAddPlan is what GroupAdd.Check leaves for Apply: the new group, its
// UUID included (a rerun of Apply adds the same group).
type groupAddPlan struct{ group cluster.Group }

// Check implements opexec.Phased: LUGroupAdd.CheckPrereq on the snapshot.
func (GroupAdd) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpGroupAdd)
	if !ok {
		return nil, obUnexpected(op)
	}
	name := m.GetGroupName()
	if err := cluster.CheckObjectName("node group", name); err != nil {
		return nil, err
	}
	if g := obGroup(c.Snapshot, name); g != nil {
		return nil, errs.Prereq(errs.CodeExists, "Desired group name '%s' already exists as a node group (UUID: %s)", name, g.UUID)
	}
	nd, disk, ipol, err := obCheckGroupParams(c.Snapshot, obParams(m.Ndparams), obDiskParams(m.Diskparams), obParams(m.Ipolicy))
	if err != nil {
		return nil, err
	}
	policy := "preferred"
	if m.AllocPolicy != nil {
		if s, ok := legacyenum.Of(m.AllocPolicy); ok && s != "" {
			policy = s
		}
	}
	if nd == nil {
		nd = cluster.Params{}
	}
	if disk == nil {
		disk = map[string]cluster.Params{}
	}
	if ipol == nil {
		ipol = cluster.Params{}
	}
	return &groupAddPlan{group: cluster.Group{
		Name: name, UUID: cluster.NewUUID(), SerialNo: 1,
		AllocPolicy: policy, NDParams: nd, IPolicy: ipol, DiskParams: disk,
	}}, nil
}

// Apply implements opexec.Phased: LUGroupAdd.Exec. No lock covers the new
// name, so its uniqueness is checked again on the configuration changed.
func (GroupAdd) Apply(x *opexec.ExecContext, _ proto.Message, plan any) (any, error) {
	p := plan.(*groupAddPlan)
	if g := obGroup(x.Config, p.group.Name); g != nil {
		return nil, errs.Prereq(errs.CodeExists, "Desired group name '%s' already exists as a node group (UUID: %s)", p.group.Name, g.UUID)
	}
	if x.DryRun {
		return nil, nil
	}
	now := x.Timestamp()
	g := p.group // a copy: the plan stays as it was for a rerun
	g.CTime, g.MTime = now, now
	g.NDParams, g.IPolicy = maps.Clone(g.NDParams), maps.Clone(g.IPolicy)
	g.DiskParams = maps.Clone(g.DiskParams)
	g.Networks, g.Tags = map[string]cluster.Params{}, []string{}
	x.Config.Groups[g.UUID] = &g
	obBumpCluster(x)
	return nil, nil
}

// obGroupLock is the exclusive lock on a group named in an opcode.
func obGroupLock(st *cluster.State, name string) ([]opexec.Lock, string, error) {
	uuid, err := obLookupGroup(st, name)
	if err != nil {
		return nil, "", err
	}
	return []opexec.Lock{{Level: opexec.LevelNodeGroup, Name: uuid, Mode: opexec.Exclusive}}, uuid, nil
}

// Locks implements Executor.
func (GroupRename) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpGroupRename)
	if !ok {
		return nil, obUnexpected(op)
	}
	locks, _, err := obGroupLock(st, m.GetGroupName())
	return locks, err
}

// Exec implements Executor.
func (g GroupRename) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(g, x, op)
}

// Check implements opexec.Phased: LUGroupRename.CheckPrereq on the
// snapshot. The plan is the group's UUID.
func (GroupRename) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpGroupRename)
	if !ok {
		return nil, obUnexpected(op)
	}
	g := obGroup(c.Snapshot, m.GetGroupName())
	if g == nil {
		return nil, errs.Prereq(errs.CodeNoEnt, "Node group '%s' not found", m.GetGroupName())
	}
	newName := m.GetNewName()
	if err := cluster.CheckObjectName("node group", newName); err != nil {
		return nil, err
	}
	if other := obGroup(c.Snapshot, newName); other != nil {
		return nil, errs.Prereq(errs.CodeExists, "Desired new name '%s' clashes with existing node group %s (UUID: %s)", newName, other.Name, other.UUID)
	}
	return g.UUID, nil
}

// Apply implements opexec.Phased: LUGroupRename.Exec. The group is
// locked; its new name is not, and is checked again.
func (GroupRename) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	m := op.(*rapiv2.OpGroupRename)
	newName := m.GetNewName()
	if other := obGroup(x.Config, newName); other != nil {
		return nil, errs.Prereq(errs.CodeExists, "Desired new name '%s' clashes with existing node group %s (UUID: %s)", newName, other.Name, other.UUID)
	}
	if x.DryRun {
		return nil, nil
	}
	e := x.Config.EditGroup(plan.(string))
	if e == nil {
		return nil, errs.Prereq(errs.CodeNoEnt, "Node group '%s' not found", m.GetGroupName())
	}
	e.Name = newName
	e.SerialNo++
	e.MTime = x.Timestamp()
	return newName, nil
}

// Locks implements Executor: the group exclusively, its instances shared.
func (GroupSetParams) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpGroupSetParams)
	if !ok {
		return nil, obUnexpected(op)
	}
	locks, uuid, err := obGroupLock(st, m.GetGroupName())
	if err != nil {
		return nil, err
	}
	for _, name := range st.GroupInstances(uuid) {
		locks = append(locks, opexec.Lock{Level: opexec.LevelInstance, Name: name, Mode: opexec.Shared})
	}
	return locks, nil
}

// Exec implements Executor: opexec.CheckApply.
func (e GroupSetParams) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e GroupSetParams) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e GroupSetParams) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (GroupSetParams) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpGroupSetParams)
	if !ok {
		return nil, obUnexpected(op)
	}
	if m.Ndparams == nil && m.Diskparams == nil && m.AllocPolicy == nil && m.HvState == nil && m.DiskState == nil && m.Ipolicy == nil {
		return nil, errs.Prereq(errs.CodeInval, "Please pass at least one modification")
	}
	g := obGroup(x.Config, m.GetGroupName())
	if g == nil {
		return nil, errs.Prereq(errs.CodeNoEnt, "Node group '%s' not found", m.GetGroupName())
	}
	var nd, ipol cluster.Params
	var disk map[string]cluster.Params
	if m.Ndparams != nil {
		nd = obUpdatedParams(g.NDParams, obParams(m.Ndparams), false)
	}
	if m.Diskparams != nil {
		disk = map[string]cluster.Params{}
		for dt, p := range g.DiskParams {
			disk[dt] = cluster.CloneParams(p)
		}
		for dt, p := range obDiskParams(m.Diskparams) {
			disk[dt] = obUpdatedParams(g.DiskParams[dt], p, false)
		}
	}
	if m.Ipolicy != nil {
		ipol = obUpdatedParams(g.IPolicy, obParams(m.Ipolicy), true)
	}
	nd, disk, ipol, err := obCheckGroupParams(x.Config, nd, disk, ipol)
	if err != nil {
		return nil, err
	}
	var changes obChanges
	if nd != nil {
		changes.add("ndparams", obPyRepr(map[string]any(nd)))
	}
	if disk != nil {
		d := map[string]any{}
		for dt, p := range disk {
			d[dt] = map[string]any(p)
		}
		changes.add("diskparams", obPyRepr(d))
	}
	if x.DryRun {
		return nil, nil
	}
	e := x.Config.EditGroup(g.UUID)
	if nd != nil {
		e.NDParams = nd
	}
	if disk != nil {
		e.DiskParams = disk
	}
	if m.AllocPolicy != nil {
		if s, ok := legacyenum.Of(m.AllocPolicy); ok && s != "" {
			e.AllocPolicy = s
		}
	}
	if ipol != nil {
		e.IPolicy = ipol
	}
	e.SerialNo++
	e.MTime = x.Timestamp()
	return changes.result(), nil
}

// Locks implements Executor.
func (GroupRemove) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpGroupRemove)
	if !ok {
		return nil, obUnexpected(op)
	}
	locks, _, err := obGroupLock(st, m.GetGroupName())
	return locks, err
}

// Exec implements Executor.
func (g GroupRemove) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(g, x, op)
}

// groupRemoveCheck is LUGroupRemove.CheckPrereq on cfg: the group's UUID.
func groupRemoveCheck(cfg *cluster.Config, op proto.Message) (string, error) {
	m, ok := op.(*rapiv2.OpGroupRemove)
	if !ok {
		return "", obUnexpected(op)
	}
	g := obGroup(cfg, m.GetGroupName())
	if g == nil {
		return "", errs.Prereq(errs.CodeNoEnt, "Node group '%s' not found", m.GetGroupName())
	}
	var members []string
	for _, n := range cfg.Nodes {
		if n.Group == g.UUID {
			members = append(members, n.UUID)
		}
	}
	if len(members) > 0 {
		cluster.NiceSort(members)
		return "", errs.Prereq(errs.CodeState, "Group '%s' not empty, has the following nodes: %s", m.GetGroupName(), obCommaJoin(members))
	}
	if len(cfg.Groups) == 1 {
		return "", errs.Prereq(errs.CodeState, "Group '%s' is the only group, cannot be removed", m.GetGroupName())
	}
	return g.UUID, nil
}

// Check implements opexec.Phased: CheckPrereq on the snapshot.
func (GroupRemove) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return groupRemoveCheck(c.Snapshot, op)
}

// Apply implements opexec.Phased: LUGroupRemove.Exec. A node assignment
// in the same batch is not excluded by the group lock alone, so the
// checks run again on the configuration changed.
func (GroupRemove) Apply(x *opexec.ExecContext, op proto.Message, _ any) (any, error) {
	uuid, err := groupRemoveCheck(x.Config, op)
	if err != nil {
		return nil, err
	}
	if x.DryRun {
		return nil, nil
	}
	delete(x.Config.Groups, uuid)
	obBumpCluster(x)
	return nil, nil
}

// obWantedNodes is Ganeti's GetWantedNodes: the UUIDs of the named nodes, or
// of all nodes when none is named.
func obWantedNodes(st *cluster.State, names []string) ([]string, error) {
	if len(names) == 0 {
		return st.UUIDs("node"), nil
	}
	out := make([]string, 0, len(names))
	for _, name := range names {
		uuid, _, err := st.NodeByName(name)
		if err != nil {
			return nil, err
		}
		out = append(out, uuid)
	}
	return out, nil
}

// Locks implements Executor: the target group, the nodes and their current
// groups, exclusively.
func (GroupAssignNodes) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpGroupAssignNodes)
	if !ok {
		return nil, obUnexpected(op)
	}
	locks, _, err := obGroupLock(st, m.GetGroupName())
	if err != nil {
		return nil, err
	}
	uuids, err := obWantedNodes(st, m.GetNodes())
	if err != nil {
		return nil, err
	}
	for _, u := range uuids {
		locks = append(locks, opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: opexec.Exclusive})
		cells, err := st.Get("node", u, []string{"group.uuid"})
		if err == nil {
			if g, _ := cells[0].Value.(string); g != "" {
				locks = append(locks, opexec.Lock{Level: opexec.LevelNodeGroup, Name: g, Mode: opexec.Exclusive})
			}
		}
	}
	return locks, nil
}

// Exec implements Executor: opexec.CheckApply.
func (e GroupAssignNodes) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e GroupAssignNodes) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e GroupAssignNodes) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (GroupAssignNodes) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpGroupAssignNodes)
	if !ok {
		return nil, obUnexpected(op)
	}
	cfg := x.Config
	g := obGroup(cfg, m.GetGroupName())
	if g == nil {
		return nil, errs.Prereq(errs.CodeNoEnt, "Node group '%s' not found", m.GetGroupName())
	}
	var nodes []*cluster.Node
	if len(m.GetNodes()) == 0 {
		for _, n := range cfg.Nodes {
			nodes = append(nodes, n)
		}
	}
	for _, name := range m.GetNodes() {
		n := obNode(cfg, name)
		if n == nil {
			return nil, errs.NotFound("Node", name)
		}
		nodes = append(nodes, n)
	}
	// Ganeti's CheckAssignmentForSplitInstances, for mirrored instances.
	newGroup := map[string]string{}
	for _, n := range nodes {
		newGroup[n.UUID] = g.UUID
	}
	groupOf := func(uuid string, after bool) string {
		if gu, ok := newGroup[uuid]; ok && after {
			return gu
		}
		return cfg.Nodes[uuid].Group
	}
	var newSplits, prevSplits []string
	for _, inst := range cfg.Instances {
		if len(inst.SecondaryNodes) == 0 {
			continue
		}
		split := func(after bool) bool {
			pg := groupOf(inst.PrimaryNode, after)
			for _, sn := range inst.SecondaryNodes {
				if groupOf(sn, after) != pg {
					return true
				}
			}
			return false
		}
		before, after := split(false), split(true)
		switch {
		case after && !before:
			newSplits = append(newSplits, inst.Name)
		case after && before:
			prevSplits = append(prevSplits, inst.Name)
		}
	}
	if len(newSplits) > 0 {
		cluster.NiceSort(newSplits)
		if !m.GetForce() {
			return nil, errs.Exec("The following instances get split by this change and --force was not given: %s", obCommaJoin(newSplits))
		}
		x.LogWarning("This operation will split the following instances: %s", obCommaJoin(newSplits))
		if len(prevSplits) > 0 {
			cluster.NiceSort(prevSplits)
			x.LogWarning("In addition, these already-split instances continue to be split across groups: %s", obCommaJoin(prevSplits))
		}
	}
	if x.DryRun {
		return nil, nil
	}
	now := x.Timestamp()
	touched := map[string]bool{}
	for _, n := range nodes {
		if n.Group == g.UUID {
			continue
		}
		touched[n.Group], touched[g.UUID] = true, true
		e := cfg.EditNode(n.UUID)
		e.Group = g.UUID
		e.SerialNo++
		e.MTime = now
	}
	for uuid := range touched {
		e := cfg.EditGroup(uuid)
		e.SerialNo++
		e.MTime = now
	}
	obBumpCluster(x)
	return nil, nil
}
