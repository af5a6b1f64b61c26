package lu

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// InstanceMigrate implements OP_INSTANCE_MIGRATE and InstanceFailover
// OP_INSTANCE_FAILOVER (TLMigrateInstance): a drbd instance swaps its
// primary and secondary node; a diskless one moves to target_node or to
// the node the allocator picks in its group; file and plain instances
// cannot move. A running instance keeps running on its new node (a
// failover restarts it there). Result: null.
type InstanceMigrate struct{}

// InstanceFailover implements OP_INSTANCE_FAILOVER; see InstanceMigrate.
type InstanceFailover struct{}

type moveOp struct {
	name, target, iallocator string
	failover, allowFailover  bool
	cleanup                  bool
}

func moveParams(op proto.Message) (moveOp, error) {
	switch m := op.(type) {
	case *rapiv2.OpInstanceMigrate:
		return moveOp{name: m.GetInstanceName(), target: m.GetTargetNode(), iallocator: m.GetIallocator(),
			allowFailover: m.GetAllowFailover(), cleanup: m.GetCleanup()}, nil
	case *rapiv2.OpInstanceFailover:
		return moveOp{name: m.GetInstanceName(), target: m.GetTargetNode(), iallocator: m.GetIallocator(),
			failover: true, cleanup: m.GetCleanup()}, nil
	}
	return moveOp{}, errs.Exec("Unexpected opcode %T", op)
}

func moveLocks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	mv, err := moveParams(op)
	if err != nil {
		return nil, err
	}
	full, nodes, err := stateInstance(st, mv.name)
	if err != nil {
		return nil, err
	}
	cells, err := st.Get("instance", full, []string{"disk_template"})
	if err != nil {
		return nil, err
	}
	dt, _ := cells[0].Value.(string)
	spec := nodeLocks
	if !mirrored(dt) && !isNotMigratable(dt) {
		if mv.target == "" {
			spec.allNodes = true
		} else {
			u, err := lookupState(st, "node", mv.target, "uuid")
			if err != nil {
				return nil, err
			}
			locks, err := instanceLocks(op, st, spec)
			if err != nil {
				return nil, err
			}
			if u != nodes[0] {
				locks = append(locks, opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: opexec.Exclusive}, opexec.Lock{Level: opexec.LevelNodeRes, Name: u, Mode: opexec.Exclusive})
			}
			return locks, nil
		}
	}
	return instanceLocks(op, st, spec)
}

// Locks implements Executor.
func (InstanceMigrate) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return moveLocks(op, st)
}

// Locks implements Executor.
func (InstanceFailover) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return moveLocks(op, st)
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceMigrate) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceMigrate) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceMigrate) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceMigrate) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	return moveExec(x, op)
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceFailover) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceFailover) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceFailover) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceFailover) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	return moveExec(x, op)
}

func moveExec(x *opexec.ExecContext, op proto.Message) (any, error) {
	mv, err := moveParams(op)
	if err != nil {
		return nil, err
	}
	cfg := x.Config
	inst, err := findInstance(cfg, mv.name)
	if err != nil {
		return nil, err
	}
	what := "migrations"
	if mv.failover {
		what = "failovers"
	}
	if isNotMigratable(inst.DiskTemplate) {
		return nil, errs.Prereq(errs.CodeState, "Instance's disk layout '%s' does not allow %s", inst.DiskTemplate, what)
	}
	if !mv.failover && inst.AdminState != cluster.AdminUp {
		if !mv.allowFailover {
			return nil, errs.Prereq(errs.CodeState, "Instance %s is not running, cannot migrate", inst.Name)
		}
		x.LogInfo("Instance is marked down or offline, fallback allowed, switching to failover")
		mv.failover = true
	}
	pnode := cfg.Nodes[inst.PrimaryNode]
	var target *cluster.Node
	be := cfg.InstanceBEParams(inst)
	maxmem, _ := be["maxmem"].(int64)
	if mirrored(inst.DiskTemplate) {
		if len(inst.SecondaryNodes) == 0 {
			return nil, errs.Prereq(errs.CodeState, "Instance %s has no secondary node", inst.Name)
		}
		target = cfg.Nodes[inst.SecondaryNodes[0]]
		if mv.target != "" {
			t, err := findNode(cfg, mv.target)
			if err != nil {
				return nil, err
			}
			if t.UUID != target.UUID {
				return nil, errs.Prereq(errs.CodeInval, "Instances with disk template %s cannot be migrated to arbitrary nodes", inst.DiskTemplate)
			}
		}
	} else if mv.target != "" {
		if target, err = findNode(cfg, mv.target); err != nil {
			return nil, err
		}
		if target.UUID == pnode.UUID {
			return nil, errs.Prereq(errs.CodeInval, "Instance %s is already on the node %s", inst.Name, target.Name)
		}
	} else {
		ialloc := mv.iallocator
		if ialloc == "" || ialloc == "." {
			// CheckIAllocatorOrNode: the cluster's default, written back.
			ialloc = cfg.Cluster.DefaultIAllocator
			if ialloc != "" {
				x.SetParam("iallocator", ialloc)
			}
		}
		if ialloc == "" {
			return nil, errs.Prereq(errs.CodeInval, "No iallocator or target node given and no cluster-wide default iallocator found; please specify either an iallocator or a node, or set a cluster-wide default iallocator")
		}
		target, err = externalRelocate(x, ialloc, inst, []string{pnode.UUID})
		if errors.Is(err, opexec.ErrNoExternalIAllocator) {
			target, err = relocateBuiltin(x, ialloc, inst, pnode, maxmem)
		}
		if err != nil {
			return nil, err
		}
		x.LogInfo("Selected nodes for instance %s via iallocator %s: %s", inst.Name, ialloc, target.Name)
	}
	if err := checkNodeOnline(target, ""); err != nil {
		return nil, err
	}
	if !mv.failover {
		if err := checkNodeOnline(pnode, ""); err != nil {
			return nil, err
		}
	}
	if inst.Running || (mv.failover && inst.AdminState == cluster.AdminUp) {
		reason := "migrating instance " + inst.Name
		if mv.failover {
			reason = "failing over instance " + inst.Name
		}
		if err := checkFreeMemory(cfg, target, reason, maxmem); err != nil {
			return nil, err
		}
	}
	if x.DryRun {
		return nil, nil
	}
	e := editInstance(x, inst.UUID)
	if mv.failover {
		x.Log("* checking disk consistency between source and target")
		x.Log("* shutting down instance on source node")
	} else {
		x.Log(fmt.Sprintf("Migrating instance %s", inst.Name))
	}
	if mirrored(inst.DiskTemplate) {
		e.SecondaryNodes = []string{pnode.UUID}
	}
	e.PrimaryNode = target.UUID
	if mv.failover {
		wasRunning := e.Running
		stopInstance(e)
		if e.AdminState == cluster.AdminUp && !target.Offline {
			x.Log(fmt.Sprintf("* starting the instance on the target node %s", target.Name))
			startInstance(cfg, e, nil)
		} else if wasRunning {
			e.DisksActive = false
		}
	} else {
		x.Log("* done")
	}
	return nil, nil
}

// InstanceQueryData implements OP_INSTANCE_QUERY_DATA
// (LUInstanceQueryData). Result: {name: {...}} per instance.
type InstanceQueryData struct{}

// Locks implements Executor: with use_locking, the instances and their
// nodes, shared.
func (InstanceQueryData) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpInstanceQueryData)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	names := m.GetInstances()
	if len(names) == 0 {
		names = st.Names("instance")
	}
	var locks []opexec.Lock
	seen := map[string]bool{}
	for _, n := range names {
		full, nodes, err := stateInstance(st, n)
		if err != nil {
			return nil, err
		}
		if !m.GetUseLocking() {
			continue
		}
		locks = append(locks, opexec.Lock{Level: opexec.LevelInstance, Name: full, Mode: opexec.Shared})
		for _, u := range nodes {
			if !seen[u] {
				seen[u] = true
				locks = append(locks, opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: opexec.Shared})
			}
		}
	}
	return locks, nil
}

// LocksParams is Locks with LUInstanceQueryData.ExpandNames' write:
// non-static data is queried with locking.
func (q InstanceQueryData) LocksParams(op proto.Message, st *cluster.State) ([]opexec.Lock, []opexec.ParamWrite, error) {
	var w []opexec.ParamWrite
	if m, ok := op.(*rapiv2.OpInstanceQueryData); ok && !m.GetStatic() && !m.GetUseLocking() {
		w = append(w, opexec.ParamWrite{Name: "use_locking", Value: true})
	}
	locks, err := q.Locks(op, st)
	return locks, w, err
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceQueryData) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceQueryData) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceQueryData) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceQueryData) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceQueryData)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	cfg := x.Config
	static := m.GetStatic()
	if !static {
		x.LogWarning("Non-static data requested, locks need to be acquired")
	}
	var insts []*cluster.Instance
	if len(m.GetInstances()) == 0 {
		for _, i := range cfg.Instances {
			insts = append(insts, i)
		}
	} else {
		for _, n := range m.GetInstances() {
			i, err := findInstance(cfg, n)
			if err != nil {
				return nil, err
			}
			insts = append(insts, i)
		}
	}
	out := map[string]any{}
	for _, i := range insts {
		out[i.Name] = instanceData(cfg, i, static)
	}
	return out, nil
}

func nilOr(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func instanceData(cfg *cluster.Config, inst *cluster.Instance, static bool) map[string]any {
	c := cfg.Cluster
	pnode := cfg.Nodes[inst.PrimaryNode]
	var runState any
	if !static && !pnode.Offline {
		runState = "down"
		if inst.Running {
			runState = "up"
		}
	}
	snodes, sgNames, sgUUIDs := []any{}, []any{}, []any{}
	for _, u := range inst.SecondaryNodes {
		n := cfg.Nodes[u]
		snodes = append(snodes, n.Name)
		sgNames = append(sgNames, cfg.Groups[n.Group].Name)
		sgUUIDs = append(sgUUIDs, n.Group)
	}
	nics := []any{}
	for _, n := range inst.NICs {
		p := cluster.FillParams(c.NICParams, n.NICParams)
		var netName any
		if n.Network != nil {
			if nw := cfg.Networks[*n.Network]; nw != nil {
				netName = nw.Name
			}
		}
		vlan := p["vlan"]
		if vlan == nil {
			vlan = ""
		}
		nics = append(nics, []any{nilOr(n.Name), n.UUID, nilOr(n.IP), n.MAC, p["mode"], p["link"], vlan, nilOr(n.Network), netName})
	}
	disks := []any{}
	for idx, d := range inst.Disks {
		var pstatus, sstatus any
		if !static && inst.DisksActive {
			pstatus = []any{diskPath(cfg, inst, idx), int64(0), int64(0), nil, nil, int64(1), false}
		}
		var spindles any
		if d.Spindles != nil {
			spindles = *d.Spindles
		}
		disks = append(disks, map[string]any{
			"iv_name": fmt.Sprintf("disk/%d", idx), "dev_type": inst.DiskTemplate, "size": d.Size,
			"mode": d.Mode, "name": nilOr(d.Name), "uuid": d.UUID, "spindles": spindles,
			"pstatus": pstatus, "sstatus": sstatus, "children": []any{},
		})
	}
	hvActual := map[string]any{}
	for k, v := range c.HVParams[inst.Hypervisor] {
		hvActual[k] = v
	}
	_, global := cluster.HVParamTypes()
	for k := range global {
		delete(hvActual, k)
	}
	for k, v := range inst.HVParams {
		hvActual[k] = v
	}
	osActual := map[string]any{}
	for k, v := range c.OSParams[inst.OS] {
		osActual[k] = v
	}
	for k, v := range inst.OSParams {
		osActual[k] = v
	}
	var port any
	if inst.NetworkPort != nil {
		port = *inst.NetworkPort
	}
	return map[string]any{
		"name": inst.Name, "uuid": inst.UUID, "config_state": inst.AdminState, "run_state": runState,
		"pnode": pnode.Name, "pnode_group_uuid": pnode.Group, "pnode_group_name": cfg.Groups[pnode.Group].Name,
		"snodes": snodes, "snodes_group_names": sgNames, "snodes_group_uuids": sgUUIDs,
		"os": inst.OS, "network_port": port, "nics": nics, "disk_template": inst.DiskTemplate, "disks": disks,
		"hypervisor": inst.Hypervisor, "hv_instance": cluster.FillParams(nil, inst.HVParams), "hv_actual": hvActual,
		"be_instance": cluster.FillParams(nil, inst.BEParams), "be_actual": cfg.InstanceBEParams(inst),
		"os_instance": cluster.FillParams(nil, inst.OSParams), "os_actual": osActual,
		"ctime": inst.CTime, "mtime": inst.MTime, "serial_no": inst.SerialNo,
	}
}

// InstanceRecreateDisks implements OP_INSTANCE_RECREATE_DISKS of a stopped
// instance (the fake disks are recreated in place, with the new size, mode
// or spindles their entries of "disks" give). Result: null.
type InstanceRecreateDisks struct{}

// recreateModifiable are the disk parameters a recreation may change
// (LUInstanceRecreateDisks._MODIFYABLE).
var recreateModifiable = []string{"size", "mode", "spindles"}

// recreateDiskChanges is LUInstanceRecreateDisks.CheckArguments: "disks"
// is a list of disk indices or of [index, {changes}] pairs; the result
// maps each index to its changes (nil when only recreated).
func recreateDiskChanges(disks any) (map[int64]map[string]any, error) {
	list, _ := disks.([]any)
	out := map[int64]map[string]any{}
	var dups []string
	for _, d := range list {
		var idx any = d
		var params map[string]any
		if l, ok := d.([]any); ok && len(l) > 0 {
			idx = l[0]
			if len(l) > 1 {
				params, _ = l[1].(map[string]any)
			}
		}
		n, ok := toInt(idx)
		if !ok || n < 0 {
			return nil, errs.Prereq(errs.CodeInval, "Invalid disk index '%v'", idx)
		}
		if _, seen := out[n]; seen {
			dups = append(dups, strconv.FormatInt(n, 10))
		}
		out[n] = params
	}
	if len(dups) > 0 {
		return nil, errs.Prereq(errs.CodeInval, "Some disks have been specified more than once: %s", strings.Join(dups, ", "))
	}
	for _, n := range slices.Sorted(maps.Keys(out)) {
		var unsupported []string
		for k := range out[n] {
			if !slices.Contains(recreateModifiable, k) {
				unsupported = append(unsupported, k)
			}
		}
		if len(unsupported) > 0 {
			slices.Sort(unsupported)
			return nil, errs.Prereq(errs.CodeInval, "Parameters for disk %d try to change unmodifyable parameter(s): %s", n, strings.Join(unsupported, ", "))
		}
	}
	return out, nil
}

// Locks implements Executor.
func (InstanceRecreateDisks) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return instanceLocks(op, st, nodeLocks)
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceRecreateDisks) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceRecreateDisks) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceRecreateDisks) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceRecreateDisks) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceRecreateDisks)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	changes, err := recreateDiskChanges(opexec.JSONValue(m.GetDisks()))
	if err != nil {
		return nil, err
	}
	inst, err := findInstance(x.Config, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	if inst.DiskTemplate == "diskless" {
		return nil, errs.Prereq(errs.CodeInval, "Instance '%s' has no disks", m.GetInstanceName())
	}
	if len(m.GetNodes()) > 0 || m.GetIallocator() != "" {
		return nil, errs.Prereq(errs.CodeInval, "Recreating disks on other nodes is not supported by the fake hypervisor simulation")
	}
	if err := checkInstanceState(inst, stNotRunning, "cannot recreate disks"); err != nil {
		return nil, err
	}
	if len(changes) > 0 {
		if maxIdx := slices.Max(slices.Collect(maps.Keys(changes))); int(maxIdx) >= len(inst.Disks) {
			return nil, errs.Prereq(errs.CodeInval, "Invalid disk index '%d'", maxIdx)
		}
	}
	// The new disks, checked as a creation's (ComputeDisks).
	disks := slices.Clone(inst.Disks)
	var grow int64
	for idx, params := range changes {
		if len(params) == 0 {
			continue
		}
		nd, err := computeDisk(params, true)
		if err != nil {
			return nil, err
		}
		d := &disks[idx]
		if _, ok := params["size"]; ok {
			grow += max(nd.size-d.Size, 0)
			d.Size = nd.size
		}
		if _, ok := params["mode"]; ok {
			d.Mode = nd.mode
		}
		if _, ok := params["spindles"]; ok {
			d.Spindles = nd.spindles
		}
	}
	nodes := []*cluster.Node{x.Config.Nodes[inst.PrimaryNode]}
	for _, u := range inst.SecondaryNodes {
		nodes = append(nodes, x.Config.Nodes[u])
	}
	if err := checkFreeDisk(x.Config, inst.DiskTemplate, nodes, grow); err != nil {
		return nil, err
	}
	if x.DryRun || slices.Equal(disks, inst.Disks) {
		return nil, nil
	}
	editInstance(x, inst.UUID).Disks = disks
	return nil, nil
}

// InstanceReplaceDisks implements OP_INSTANCE_REPLACE_DISKS for drbd
// instances, replacing on the primary or secondary node in place (nothing
// changes in the simulation) or moving to a new secondary. Result: null.
type InstanceReplaceDisks struct{}

// Locks implements Executor.
func (InstanceReplaceDisks) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpInstanceReplaceDisks)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	spec := nodeLocks
	if m.GetIallocator() != "" {
		spec.allNodes = true
	}
	locks, err := instanceLocks(op, st, spec)
	if err != nil {
		return nil, err
	}
	if m.GetRemoteNode() != "" {
		u, err := lookupState(st, "node", m.GetRemoteNode(), "uuid")
		if err != nil {
			return nil, err
		}
		locks = append(locks, opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: opexec.Exclusive}, opexec.Lock{Level: opexec.LevelNodeRes, Name: u, Mode: opexec.Exclusive})
	}
	return dedupLocks(locks), nil
}

func dedupLocks(locks []opexec.Lock) []opexec.Lock {
	seen := map[string]bool{}
	out := locks[:0]
	for _, l := range locks {
		if !seen[l.FullName()] {
			seen[l.FullName()] = true
			out = append(out, l)
		}
	}
	return out
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceReplaceDisks) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceReplaceDisks) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceReplaceDisks) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceReplaceDisks) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceReplaceDisks)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	mode := m.GetMode()
	newSecondary := mode == rapiv2.ReplaceDisksMode_REPLACE_DISKS_MODE_REPLACE_NEW_SECONDARY
	remote, ialloc := m.GetRemoteNode(), m.GetIallocator()
	// CheckArguments of LUInstanceReplaceDisks.
	switch {
	case newSecondary && remote == "" && ialloc == "":
		return nil, errs.Prereq(errs.CodeInval, "When changing the secondary either an iallocator script must be used or the new node given")
	case newSecondary && remote != "" && ialloc != "":
		return nil, errs.Prereq(errs.CodeInval, "Do not specify both, iallocator and node")
	case !newSecondary && (remote != "" || ialloc != ""):
		return nil, errs.Prereq(errs.CodeInval, "The iallocator and new node options can only be used when changing the secondary node")
	}
	cfg := x.Config
	inst, err := findInstance(cfg, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	var target *cluster.Node
	if remote != "" {
		if target, err = findNode(cfg, remote); err != nil {
			return nil, err
		}
	}
	// CheckPrereq of TLReplaceDisks, in Ganeti's order: the layout first.
	if len(inst.SecondaryNodes) != 1 {
		return nil, errs.Prereq(errs.CodeFault, "The instance has a strange layout, expected one secondary but found %d", len(inst.SecondaryNodes))
	}
	if ialloc != "" {
		// The instance's own nodes are not candidates (allocate alone
		// returns only the best node, which may be one of them).
		need := cluster.LocalDiskUsage(inst)
		exclude := append([]string{inst.PrimaryNode}, inst.SecondaryNodes...)
		target, err = externalRelocate(x, ialloc, inst, inst.SecondaryNodes)
		if errors.Is(err, opexec.ErrNoExternalIAllocator) {
			end := traceBuiltinAllocator(x, ialloc, "relocate", inst.Name)
			target, err = nil, nil
			nodes := allocateUsed(cfg, cfg.Nodes[inst.PrimaryNode].Group, 0, need, false, nil, exclude)
			if len(nodes) > 0 {
				target = nodes[0]
			} else {
				err = errs.Prereq(errs.CodeNoRes, "Can't compute nodes using iallocator '%s': Request failed: Can't find any good node: ", ialloc)
			}
			end(nodeNames(nodes), err)
		}
		if err != nil {
			return nil, err
		}
		// Ganeti names the instance by its UUID here.
		x.LogInfo("Selected new secondary for instance '%s': %s", inst.UUID, target.Name)
	}
	if target != nil {
		if target.UUID == inst.PrimaryNode {
			return nil, errs.Prereq(errs.CodeInval, "The specified node is the primary node of the instance")
		}
		if containsStr(inst.SecondaryNodes, target.UUID) {
			return nil, errs.Prereq(errs.CodeInval, "The specified node is already the secondary node of the instance")
		}
	}
	if len(m.GetDisks()) > 0 && (newSecondary || mode == rapiv2.ReplaceDisksMode_REPLACE_DISKS_MODE_REPLACE_AUTO) {
		return nil, errs.Prereq(errs.CodeInval, "Cannot specify disks to be replaced")
	}
	if inst.DiskTemplate != "drbd" || len(inst.Disks) == 0 {
		return nil, errs.Prereq(errs.CodeInval, "Can only run replace disks for DRBD8-based instances")
	}
	if target != nil {
		if err := checkNodeOnline(target, ""); err != nil {
			return nil, err
		}
	}
	for _, d := range m.GetDisks() {
		if d < 0 || int(d) >= len(inst.Disks) {
			return nil, errs.Prereq(errs.CodeInval, "Invalid disk index: %d (instace has disks 0 to %d", d, len(inst.Disks)-1)
		}
	}
	if !newSecondary {
		return nil, nil
	}
	if err := checkFreeDisk(cfg, inst.DiskTemplate, []*cluster.Node{target}, cluster.LocalDiskUsage(inst)); err != nil {
		return nil, err
	}
	if x.DryRun {
		return nil, nil
	}
	editInstance(x, inst.UUID).SecondaryNodes = []string{target.UUID}
	return nil, nil
}

func containsStr(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// relocateBuiltin is the built-in allocator's answer to the relocation of
// an externally mirrored instance's primary: the usable node of the
// primary's group with the most free memory (enough for the instance
// when it runs).
func relocateBuiltin(x *opexec.ExecContext, ialloc string, inst *cluster.Instance, pnode *cluster.Node, maxmem int64) (*cluster.Node, error) {
	cfg := x.Config
	end := traceBuiltinAllocator(x, ialloc, "relocate", inst.Name)
	var need int64
	if inst.Running {
		need = maxmem
	}
	var cands []*cluster.Node
	for _, n := range cfg.Nodes {
		if n.UUID == pnode.UUID || n.Group != pnode.Group || !usableNode(cfg, n) {
			continue
		}
		if free, _ := cfg.NodeFree(n.UUID); free < need {
			continue
		}
		cands = append(cands, n)
	}
	if len(cands) == 0 {
		err := errs.Prereq(errs.CodeNoRes, "Can't compute nodes using iallocator '%s': Request failed: Can't find any good node: ", ialloc)
		end(nil, err)
		return nil, err
	}
	sort.Slice(cands, func(i, j int) bool {
		fi, _ := cfg.NodeFree(cands[i].UUID)
		fj, _ := cfg.NodeFree(cands[j].UUID)
		if fi != fj {
			return fi > fj
		}
		return cands[i].Name < cands[j].Name
	})
	end([]string{cands[0].Name}, nil)
	return cands[0], nil
}
