package lu

import (
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// InstanceStartup implements OP_INSTANCE_STARTUP (Ganeti's
// LUInstanceStartup): the instance is marked up (unless no_remember) and
// started with its beparams, or the temporary ones of the opcode. Starting
// a running instance changes nothing but the admin state. Result: null.
type InstanceStartup struct{}

// InstanceShutdown implements OP_INSTANCE_SHUTDOWN (LUInstanceShutdown):
// the instance is marked down (unless no_remember) with the opcode's
// admin_state_source, stopped, and its disks deactivated. Result: null.
type InstanceShutdown struct{}

// InstanceReboot implements OP_INSTANCE_REBOOT (LUInstanceReboot): a soft
// or hard reboot of a running instance restarts it in place (a hard one
// picks up changed parameters); a full reboot, or any reboot of a stopped
// instance, starts it. The instance ends up marked up. Result: null.
type InstanceReboot struct{}

// Locks implements Executor: the instance and its primary node's resources.
func (InstanceStartup) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return instanceLocks(op, st, lockSpec{instanceMode: opexec.Exclusive, nodeRes: true, nodeResMode: opexec.Exclusive, primaryOnly: true})
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceStartup) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceStartup) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceStartup) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceStartup) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceStartup)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	inst, err := findInstance(x.Config, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	cfg := x.Config
	var beOverride cluster.Params
	if p := opexec.StructMap(m.GetBeparams()); len(p) > 0 {
		if beOverride, err = checkBEParams(p, func(b cluster.Params) cluster.Params { return cluster.FillParams(cfg.InstanceBEParams(inst), b) }); err != nil {
			return nil, err
		}
	}
	if p := opexec.StructMap(m.GetHvparams()); len(p) > 0 {
		hvp, err := forceHVTypes(p)
		if err != nil {
			return nil, err
		}
		filled := cluster.FillParams(cluster.FillParams(hvDefaults(cfg.Cluster, inst.Hypervisor, inst.OS), inst.HVParams), hvp)
		if err := checkHVSyntax(inst.Hypervisor, filled); err != nil {
			return nil, err
		}
	}
	if err := checkInstanceState(inst, stOnline, ""); err != nil {
		return nil, err
	}
	pnode := cfg.Nodes[inst.PrimaryNode]
	primaryOffline := pnode.Offline
	if primaryOffline && m.GetIgnoreOfflineNodes() {
		x.LogWarning("Ignoring offline primary node")
		if len(beOverride) > 0 || len(opexec.StructMap(m.GetHvparams())) > 0 {
			x.LogWarning("Overridden parameters are ignored")
		}
	} else {
		if err := checkNodeOnline(pnode, ""); err != nil {
			return nil, err
		}
		if !inst.Running {
			be := cluster.FillParams(cfg.InstanceBEParams(inst), beOverride)
			minmem, _ := be["minmem"].(int64)
			if err := checkFreeMemory(cfg, pnode, "starting instance "+inst.Name, minmem); err != nil {
				return nil, err
			}
			maxmem, _ := be["maxmem"].(int64)
			if free, _ := cfg.NodeFree(pnode.UUID); maxmem > free {
				// The fake hypervisor starts the instance with all of
				// maxmem; with less free it cannot start it.
				return nil, errs.Exec("Could not start instance: Not enough memory on node %s: needed %d MiB, available %d MiB", pnode.Name, maxmem, free)
			}
		}
	}
	if x.DryRun {
		return nil, nil
	}
	e := editInstance(x, inst.UUID)
	if !m.GetNoRemember() {
		e.AdminState = cluster.AdminUp
		e.AdminStateSource = "admin"
	}
	if !primaryOffline && !e.Running {
		startInstance(cfg, e, beOverride)
	}
	return nil, nil
}

// Locks implements Executor: the instance only.
func (InstanceShutdown) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return instanceLocks(op, st, lockSpec{instanceMode: opexec.Exclusive})
}

// LocksParams is Locks with LUInstanceShutdown.CheckArguments' write: the
// admin state source defaults to "admin".
func (s InstanceShutdown) LocksParams(op proto.Message, st *cluster.State) ([]opexec.Lock, []opexec.ParamWrite, error) {
	var w []opexec.ParamWrite
	if m, ok := op.(*rapiv2.OpInstanceShutdown); ok && m.AdminStateSource == nil {
		w = append(w, opexec.ParamWrite{Name: "admin_state_source", Value: "admin"})
	}
	locks, err := s.Locks(op, st)
	return locks, w, err
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceShutdown) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceShutdown) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceShutdown) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceShutdown) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceShutdown)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	inst, err := findInstance(x.Config, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	if !m.GetForce() {
		if err := checkInstanceState(inst, stOnline, ""); err != nil {
			return nil, err
		}
	} else {
		x.LogWarning("Ignoring offline instance check")
	}
	pnode := x.Config.Nodes[inst.PrimaryNode]
	primaryOffline := pnode.Offline
	if primaryOffline && !m.GetIgnoreOfflineNodes() {
		if err := checkNodeOnline(pnode, ""); err != nil {
			return nil, err
		}
	}
	source := "admin"
	if m.AdminStateSource != nil && m.GetAdminStateSource() == rapiv2.AdminStateSource_ADMIN_STATE_SOURCE_USER {
		source = "user"
	}
	if x.DryRun {
		return nil, nil
	}
	e := editInstance(x, inst.UUID)
	if !m.GetNoRemember() {
		e.AdminState = cluster.AdminDown
		e.AdminStateSource = source
	}
	if primaryOffline {
		x.LogWarning("Primary node offline, marked instance as stopped")
		return nil, nil
	}
	stopInstance(e)
	e.DisksActive = false
	return nil, nil
}

// Locks implements Executor: the instance only.
func (InstanceReboot) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return instanceLocks(op, st, lockSpec{instanceMode: opexec.Exclusive})
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceReboot) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceReboot) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceReboot) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceReboot) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceReboot)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	inst, err := findInstance(x.Config, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	if err := checkInstanceState(inst, stOnline, ""); err != nil {
		return nil, err
	}
	cfg := x.Config
	pnode := cfg.Nodes[inst.PrimaryNode]
	if err := checkNodeOnline(pnode, ""); err != nil {
		return nil, err
	}
	rtype := m.GetRebootType()
	if !inst.Running {
		be := cfg.InstanceBEParams(inst)
		maxmem, _ := be["maxmem"].(int64)
		if free, _ := cfg.NodeFree(pnode.UUID); maxmem > free {
			return nil, errs.Exec("Could not start instance for full reboot: Not enough memory on node %s: needed %d MiB, available %d MiB", pnode.Name, maxmem, free)
		}
	}
	if x.DryRun {
		return nil, nil
	}
	e := editInstance(x, inst.UUID)
	switch {
	case inst.Running && rtype == rapiv2.RebootType_REBOOT_TYPE_SOFT:
		// The guest reboots itself: nothing changes for the hypervisor.
	case inst.Running:
		// Hard and full reboots stop and start the instance.
		stopInstance(e)
		startInstance(cfg, e, nil)
	default:
		x.LogInfo("Instance %s was already stopped, starting now", inst.Name)
		startInstance(cfg, e, nil)
	}
	e.AdminState = cluster.AdminUp
	e.AdminStateSource = "admin"
	return nil, nil
}
