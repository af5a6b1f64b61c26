package lu

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// InstanceRemove implements OP_INSTANCE_REMOVE (LUInstanceRemove): the
// instance is stopped and removed with its disks; its addresses return to
// their networks' pools. Result: null.
type InstanceRemove struct{}

// InstanceRename implements OP_INSTANCE_RENAME (LUInstanceRename) of a
// stopped instance. Result: the new name.
type InstanceRename struct{}

// InstanceGrowDisk implements OP_INSTANCE_GROW_DISK (LUInstanceGrowDisk).
// Result: null.
type InstanceGrowDisk struct{}

// InstanceActivateDisks implements OP_INSTANCE_ACTIVATE_DISKS. Result:
// [[node, iv_name, device path], ...].
type InstanceActivateDisks struct{}

// InstanceDeactivateDisks implements OP_INSTANCE_DEACTIVATE_DISKS.
// Result: null.
type InstanceDeactivateDisks struct{}

// InstanceReinstall implements OP_INSTANCE_REINSTALL (LUInstanceReinstall)
// of a stopped instance with disks. Result: null.
type InstanceReinstall struct{}

var nodeLocks = lockSpec{instanceMode: opexec.Exclusive, nodes: true, nodeMode: opexec.Exclusive, nodeRes: true, nodeResMode: opexec.Exclusive}

// Locks implements Executor: the instance, its nodes and their resources.
func (InstanceRemove) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return instanceLocks(op, st, nodeLocks)
}

// releaseIPs returns the addresses of inst's NICs to their pools.
func releaseIPs(cfg *cluster.Config, nics []cluster.NIC) {
	for _, n := range nics {
		if n.Network != nil && n.IP != nil {
			cfg.SetNetworkIP(*n.Network, *n.IP, false)
		}
	}
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceRemove) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceRemove) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceRemove) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceRemove) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceRemove)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	inst, err := findInstance(x.Config, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	if pn := x.Config.Nodes[inst.PrimaryNode]; pn.Offline && inst.Running && !m.GetIgnoreFailures() {
		return nil, errs.Exec("Could not shutdown instance %s on node %s: Node is marked offline", inst.Name, pn.Name)
	}
	if x.DryRun {
		return nil, nil
	}
	releaseIPs(x.Config, inst.NICs)
	delete(x.Config.Instances, inst.UUID)
	return nil, nil
}

// Locks implements Executor: the instance under its old and new names.
func (InstanceRename) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, err := renameParams(op)
	if err != nil {
		return nil, err
	}
	return instanceLocks(op, st, lockSpec{instanceMode: opexec.Exclusive, extraInstances: []string{m.GetNewName()}})
}

// renameParams is CheckArguments and _PerformChecksAndResolveNewName of
// LUInstanceRename: the opcode with its new name checked and normalized
// (a copy when the name changes; the job's opcode is never modified).
//
// With name_check (the default) the name is resolved as Ganeti's
// CheckHostnameSane does: normalized (an invalid host name fails), looked
// up by the simulated resolver (see resolveName), and the result must
// look like the given name (utils.MatchNameComponent, case-sensitive), so
// "Inst2" fails as it does on Ganeti. Without name_check Ganeti stores the
// name as given; here it is normalized all the same (a deliberate
// difference: a name such as "a b" or "x/y" could not be addressed over
// RAPI afterwards).
func renameParams(op proto.Message) (*rapiv2.OpInstanceRename, error) {
	m, ok := op.(*rapiv2.OpInstanceRename)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	nameCheck := m.NameCheck == nil || m.GetNameCheck()
	ipCheck := m.IpCheck == nil || m.GetIpCheck()
	if ipCheck && !nameCheck {
		return nil, errs.Prereq(errs.CodeInval, "IP address check requires a name check")
	}
	given := m.GetNewName()
	name, err := cluster.NormalizeHostname(given)
	if err != nil {
		return nil, err
	}
	if nameCheck {
		if err := resolveName(name); err != nil {
			return nil, err
		}
		if name != given && !strings.HasPrefix(name, given+".") {
			return nil, errs.Prereq(errs.CodeInval, "Resolved hostname '%s' does not look the same as given hostname '%s'", name, given)
		}
	}
	if name != given {
		m = proto.Clone(m).(*rapiv2.OpInstanceRename)
		m.NewName = proto.String(name)
	}
	return m, nil
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceRename) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceRename) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceRename) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceRename) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, err := renameParams(op)
	if err != nil {
		return nil, err
	}
	inst, err := findInstance(x.Config, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	if err := checkInstanceState(inst, stNotRunning, "cannot rename"); err != nil {
		return nil, err
	}
	newName := m.GetNewName()
	for _, i := range x.Config.Instances {
		if i.Name == newName && i.UUID != inst.UUID {
			return nil, errs.Prereq(errs.CodeExists, "Instance '%s' is already in the cluster", newName)
		}
	}
	if x.DryRun {
		return newName, nil
	}
	e := editInstance(x, inst.UUID)
	e.Name = newName
	return newName, nil
}

// Locks implements Executor.
func (InstanceGrowDisk) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return instanceLocks(op, st, nodeLocks)
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceGrowDisk) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceGrowDisk) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceGrowDisk) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceGrowDisk) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceGrowDisk)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	cfg := x.Config
	inst, err := findInstance(cfg, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	var nodes []*cluster.Node
	for _, u := range append([]string{inst.PrimaryNode}, inst.SecondaryNodes...) {
		n := cfg.Nodes[u]
		if err := checkNodeOnline(n, ""); err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	switch inst.DiskTemplate {
	case "file", "plain", "drbd", "sharedfile", "rbd", "ext", "gluster":
	default:
		return nil, errs.Prereq(errs.CodeInval, "Instance's disk layout does not support growing")
	}
	idx := int(m.GetDisk())
	if idx < 0 || idx >= len(inst.Disks) {
		return nil, errs.Prereq(errs.CodeInval, "Invalid disk index: %d (instace has disks 0 to %d", idx, len(inst.Disks)-1)
	}
	disk := inst.Disks[idx]
	var delta, target int64
	if m.GetAbsolute() {
		target = m.GetAmount()
		delta = target - disk.Size
		if delta < 0 {
			return nil, errs.Prereq(errs.CodeState, "Requested size (%s) is smaller than current disk size (%s)", sizeString(target), sizeString(disk.Size))
		}
	} else {
		delta = m.GetAmount()
		target = disk.Size + delta
		if delta < 0 {
			return nil, errs.Prereq(errs.CodeInval, "Requested increment (%s) is negative", sizeString(delta))
		}
	}
	// Beyond Ganeti (whose sizes are unbounded Python ints): no disk grows
	// past cluster.MaxSizeMiB, so sizes and their sums never overflow.
	if delta > cluster.MaxSizeMiB || target > cluster.MaxSizeMiB {
		return nil, errs.Prereq(errs.CodeInval, "Requested disk size exceeds the largest supported one (%s)", sizeString(cluster.MaxSizeMiB))
	}
	if err := checkFreeDisk(cfg, inst.DiskTemplate, nodes, delta); err != nil {
		return nil, err
	}
	sizes := make([]int64, len(inst.Disks))
	for i, d := range inst.Disks {
		sizes[i] = d.Size
	}
	sizes[idx] = target
	ipol := cfg.GroupIPolicy(cfg.Nodes[inst.PrimaryNode].Group)
	var res []string
	for _, v := range ipolicyViolations(ipol, inst.DiskTemplate, 0, 0, 0, 0, sizes) {
		if len(v) > 9 && v[:9] == "disk-size" {
			res = append(res, v)
		}
	}
	if len(res) > 0 {
		msg := fmt.Sprintf("Growing disk %d violates policy: %s", idx, joinComma(res))
		if !m.GetIgnoreIpolicy() {
			return nil, errs.Prereq(errs.CodeInval, "%s", msg)
		}
		x.LogWarning("%s", msg)
	}
	if x.DryRun {
		return nil, nil
	}
	x.Log(fmt.Sprintf("Growing disk %d of instance '%s' by %s to %s", idx, inst.Name, sizeString(delta), sizeString(target)))
	e := editInstance(x, inst.UUID)
	e.Disks[idx].Size = target
	if m.WaitForSync == nil || m.GetWaitForSync() {
		x.LogInfo("Waiting for instance %s to sync disks", inst.Name)
		x.LogInfo("Instance %s's disks are in sync", inst.Name)
	}
	return nil, nil
}

func joinComma(s []string) string {
	out := ""
	for i, e := range s {
		if i > 0 {
			out += ", "
		}
		out += e
	}
	return out
}

// Locks implements Executor: the instance and its nodes, shared.
func (InstanceActivateDisks) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return instanceLocks(op, st, lockSpec{instanceMode: opexec.Exclusive, nodes: true, nodeMode: opexec.Shared})
}

// diskPath is the device path the fake cluster reports for a disk.
func diskPath(cfg *cluster.Config, inst *cluster.Instance, idx int) string {
	d := inst.Disks[idx]
	switch inst.DiskTemplate {
	case "file":
		return fmt.Sprintf("%s/%s/%s.file.disk%d", cfg.Cluster.FileStorageDir, inst.Name, d.UUID, idx)
	case "plain":
		vg := "xenvg"
		if cfg.Cluster.VolumeGroupName != nil {
			vg = *cfg.Cluster.VolumeGroupName
		}
		return fmt.Sprintf("/dev/%s/%s.disk%d", vg, d.UUID, idx)
	case "drbd":
		return fmt.Sprintf("/dev/drbd%d", idx)
	}
	return ""
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceActivateDisks) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceActivateDisks) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceActivateDisks) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceActivateDisks) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceActivateDisks)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	cfg := x.Config
	inst, err := findInstance(cfg, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	pnode := cfg.Nodes[inst.PrimaryNode]
	if err := checkNodeOnline(pnode, ""); err != nil {
		return nil, err
	}
	out := []any{}
	for i := range inst.Disks {
		out = append(out, []any{pnode.Name, fmt.Sprintf("disk/%d", i), diskPath(cfg, inst, i)})
	}
	if x.DryRun {
		return out, nil
	}
	if !inst.DisksActive {
		editInstance(x, inst.UUID).DisksActive = true
	}
	if m.GetWaitForSync() && inst.DiskTemplate == "drbd" {
		x.LogInfo("Waiting for instance %s to sync disks", inst.Name)
		x.LogInfo("Instance %s's disks are in sync", inst.Name)
	}
	return out, nil
}

// Locks implements Executor: the instance and its nodes.
func (InstanceDeactivateDisks) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return instanceLocks(op, st, lockSpec{instanceMode: opexec.Exclusive, nodes: true, nodeMode: opexec.Exclusive})
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceDeactivateDisks) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceDeactivateDisks) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceDeactivateDisks) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceDeactivateDisks) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceDeactivateDisks)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	inst, err := findInstance(x.Config, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	if !m.GetForce() {
		if err := checkInstanceState(inst, []string{cluster.AdminDown}, "cannot shutdown disks"); err != nil {
			return nil, err
		}
	}
	if x.DryRun {
		return nil, nil
	}
	if inst.DisksActive {
		editInstance(x, inst.UUID).DisksActive = false
	}
	return nil, nil
}

// Locks implements Executor.
func (InstanceReinstall) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return instanceLocks(op, st, lockSpec{instanceMode: opexec.Exclusive, nodes: true, nodeMode: opexec.Exclusive})
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceReinstall) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceReinstall) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceReinstall) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceReinstall) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceReinstall)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	cfg := x.Config
	inst, err := findInstance(cfg, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	pnode := cfg.Nodes[inst.PrimaryNode]
	if err := checkNodeOnline(pnode, "Instance primary node offline, cannot reinstall"); err != nil {
		return nil, err
	}
	if len(inst.Disks) == 0 {
		return nil, errs.Prereq(errs.CodeInval, "Instance '%s' has no disks", m.GetInstanceName())
	}
	if err := checkInstanceState(inst, []string{cluster.AdminDown}, "cannot reinstall"); err != nil {
		return nil, err
	}
	// _MergeValidateOsParams: the OS parameters not given become {}.
	for _, k := range []struct {
		key string
		set bool
	}{{"osparams", len(m.GetOsparams().GetFields()) > 0}, {"osparams_private", len(m.GetOsparamsPrivate().GetFields()) > 0},
		{"osparams_secret", len(m.GetOsparamsSecret().GetFields()) > 0}} {
		if !k.set {
			x.SetParam(k.key, map[string]any{})
		}
	}
	osName := inst.OS
	if m.OsType != nil {
		osName = m.GetOsType()
	}
	if err := checkOS(cfg, pnode, osName, m.GetForceVariant()); err != nil {
		return nil, err
	}
	osp := checkOSParams(opexec.StructMap(m.GetOsparams()))
	if x.DryRun {
		return nil, nil
	}
	e := editInstance(x, inst.UUID)
	if m.OsType != nil {
		x.Log(fmt.Sprintf("Changing OS scripts to '%s'...", osName))
		e.OS = osName
	}
	if len(osp) > 0 {
		e.OSParams = osp
	}
	x.LogInfo("Running instance OS create scripts...")
	return nil, nil
}

// mirrored reports whether a template keeps a copy on a secondary node.
func mirrored(template string) bool { return template == "drbd" }

// notMigratable are the templates with node-local, unmirrored disks.
var notMigratable = []string{"file", "plain"}

func isNotMigratable(t string) bool { return slices.Contains(notMigratable, t) }
