package lu

import (
	"slices"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// NodeModifyStorage implements OP_NODE_MODIFY_STORAGE
// (LUNodeModifyStorage): only the modifiable fields of the storage type
// (constants.json storage_modifiable_fields: allocatable on lvm-pv). The
// allocatable flag is kept in the cluster configuration, where the next
// OP_NODE_QUERY_STORAGE reads it.
type NodeModifyStorage struct{}

// RepairNodeStorage implements OP_REPAIR_NODE_STORAGE
// (LURepairNodeStorage): fix-consistency of the storage types that support
// it (lvm-vg). The simulated volume group is always consistent.
type RepairNodeStorage struct{}

// NodePowercycle implements OP_NODE_POWERCYCLE (LUNodePowercycle). Its
// result is the node daemon's answer, "Reboot scheduled in 5 seconds"; the
// simulated node comes back at once with a new boot id, as a rebooted node
// reports (instances keep their state, as the watcher would restart them).
type NodePowercycle struct{}

// storageModifiableFields is constants.json storage_modifiable_fields.
var storageModifiableFields = map[string][]string{"lvm-pv": {"allocatable"}}

// storageOperations is constants.json storage_operations.
var storageOperations = map[string][]string{"lvm-vg": {"fix-consistency"}}

func stStorageType(t *rapiv2.StorageType) string {
	if t == nil {
		return ""
	}
	s, _ := legacyenum.Of(t)
	return s
}

// checkStorageTypeEnabled is Ganeti's CheckStorageTypeEnabled: a disk
// template of the storage type must be enabled (lvm-pv is checked as
// lvm-vg). Ganeti's error has no classification.
func checkStorageTypeEnabled(c *cluster.Cluster, stype string) error {
	if ok, checked, enabled := cluster.IsEnabledStorage(c, stype); !ok {
		return errs.Prereq(errs.CodeNone, "No disk template of storage type '%s' is enabled in this cluster. Enabled disk templates are: %s", checked, enabled)
	}
	return nil
}

// stUnit finds a storage unit of a node in the snapshot.
func stUnit(st *cluster.State, nodeUUID, stype, name string) (cluster.StorageUnit, bool) {
	units, err := st.StorageUnits(nodeUUID, stype)
	if err != nil {
		return cluster.StorageUnit{}, false
	}
	for _, u := range units {
		if u.Name == name {
			return u, true
		}
	}
	return cluster.StorageUnit{}, false
}

// Locks implements Executor: the node.
func (NodeModifyStorage) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNodeModifyStorage)
	if !ok {
		return nil, obUnexpected(op)
	}
	locks, _, err := obNodeLocks(st, m.GetNodeName(), opexec.Exclusive, false)
	return locks, err
}

// Exec implements Executor: opexec.CheckApply.
func (e NodeModifyStorage) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e NodeModifyStorage) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e NodeModifyStorage) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (NodeModifyStorage) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNodeModifyStorage)
	if !ok {
		return nil, obUnexpected(op)
	}
	node := obNode(x.Config, m.GetNodeName())
	if node == nil {
		return nil, errs.NotFound("Node", m.GetNodeName())
	}
	stype := stStorageType(m.StorageType)
	modifiable, ok := storageModifiableFields[stype]
	if !ok {
		return nil, errs.Prereq(errs.CodeInval, "Storage units of type '%s' can not be modified", stype)
	}
	changes := obParams(m.GetChanges())
	var diff []string
	for k := range changes {
		if !slices.Contains(modifiable, k) {
			diff = append(diff, k)
		}
	}
	if len(diff) > 0 {
		slices.Sort(diff)
		return nil, errs.Prereq(errs.CodeInval, "The following fields can not be modified for storage units of type '%s': %s", stype, obPyRepr(diff))
	}
	if err := checkStorageTypeEnabled(x.Config.Cluster, stype); err != nil {
		return nil, err
	}
	var alloc *bool
	if v, ok := changes["allocatable"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return nil, obTypeError("Invalid value for the allocatable field: %v", v)
		}
		alloc = &b
	}
	name := m.GetName()
	if _, found := stUnit(x.State, node.UUID, stype, name); !found || node.Offline {
		why := "Storage unit '" + name + "' not found"
		if node.Offline {
			why = "Node is marked offline"
		}
		return nil, errs.Exec("Failed to modify storage unit '%s' on %s: %s", name, node.Name, why)
	}
	if x.DryRun {
		return nil, nil
	}
	if alloc != nil && x.Config.Cluster.StorageAllocatable(node.UUID, stype, name) != *alloc {
		c := x.Config.EditCluster()
		c.SetStorageAllocatable(node.UUID, stype, name, *alloc)
		c.SerialNo++
		c.MTime = x.Timestamp()
	}
	return nil, nil
}

// Locks implements Executor: the node.
func (RepairNodeStorage) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpRepairNodeStorage)
	if !ok {
		return nil, obUnexpected(op)
	}
	if err := repairArgs(m); err != nil {
		return nil, err
	}
	locks, _, err := obNodeLocks(st, m.GetNodeName(), opexec.Exclusive, false)
	return locks, err
}

func repairArgs(m *rapiv2.OpRepairNodeStorage) error {
	stype := stStorageType(m.StorageType)
	if !slices.Contains(storageOperations[stype], "fix-consistency") {
		return errs.Prereq(errs.CodeInval, "Storage units of type '%s' can not be repaired", stype)
	}
	return nil
}

// Exec implements Executor: opexec.CheckApply.
func (e RepairNodeStorage) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e RepairNodeStorage) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e RepairNodeStorage) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (RepairNodeStorage) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpRepairNodeStorage)
	if !ok {
		return nil, obUnexpected(op)
	}
	node := obNode(x.Config, m.GetNodeName())
	if node == nil {
		return nil, errs.NotFound("Node", m.GetNodeName())
	}
	if err := repairArgs(m); err != nil {
		return nil, err
	}
	stype := stStorageType(m.StorageType)
	if err := checkStorageTypeEnabled(x.Config.Cluster, stype); err != nil {
		return nil, err
	}
	// _CheckFaultyDisks: the other nodes of the node's instances with
	// active disks must be online unless ignore_consistency.
	for _, inst := range x.Config.Instances {
		if !inst.DisksActive || (inst.PrimaryNode != node.UUID && !slices.Contains(inst.SecondaryNodes, node.UUID)) {
			continue
		}
		for _, other := range append([]string{inst.PrimaryNode}, inst.SecondaryNodes...) {
			if other == node.UUID {
				continue
			}
			if n := x.Config.Nodes[other]; n != nil && n.Offline && !m.GetIgnoreConsistency() {
				return nil, errs.Prereq(errs.CodeState, "Instance '%s' has faulty disks on node '%s'", inst.Name, n.Name)
			}
		}
	}
	if x.DryRun {
		return nil, nil
	}
	name := m.GetName()
	x.Log("Repairing storage unit '" + name + "' on " + node.Name + " ...")
	if node.Offline {
		return nil, errs.Exec("Failed to repair storage unit '%s' on %s: Node is marked offline", name, node.Name)
	}
	if _, found := stUnit(x.State, node.UUID, stype, name); !found {
		return nil, errs.Exec("Failed to repair storage unit '%s' on %s: Storage unit '%s' not found", name, node.Name, name)
	}
	return nil, nil
}

// Locks implements Executor: none (Ganeti's LUNodePowercycle takes no
// lock; the engine adds the BGL in shared mode).
func (NodePowercycle) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNodePowercycle)
	if !ok {
		return nil, obUnexpected(op)
	}
	_, _, err := st.NodeByName(m.GetNodeName())
	return nil, err
}

// Exec implements Executor: opexec.CheckApply.
func (e NodePowercycle) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e NodePowercycle) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e NodePowercycle) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (NodePowercycle) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNodePowercycle)
	if !ok {
		return nil, obUnexpected(op)
	}
	node := obNode(x.Config, m.GetNodeName())
	if node == nil {
		return nil, errs.NotFound("Node", m.GetNodeName())
	}
	if node.UUID == x.Config.Cluster.MasterNode && !m.GetForce() {
		return nil, errs.Prereq(errs.CodeInval, "The node is the master and the force parameter was not set")
	}
	if x.DryRun {
		return nil, nil
	}
	if node.Offline {
		return nil, errs.Exec("Failed to schedule the reboot: Node is marked offline")
	}
	// The reboot: the node's boot id (/proc/sys/kernel/random/boot_id, the
	// "bootid" query field) is renewed. Not a configuration change in
	// Ganeti, so neither the node's serial number nor its mtime move.
	x.Config.EditNode(node.UUID).BootID = x.NewUUID()
	return "Reboot scheduled in 5 seconds", nil
}
