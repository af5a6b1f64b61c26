package lu

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// NodeSetParams implements OP_NODE_SET_PARAMS (Ganeti's LUNodeSetParams):
// role flags with the master candidate pool rules, capabilities, secondary
// IP, ndparams, powered. The result is the list of [parameter, new value]
// changes.
type NodeSetParams struct{}

// NodeQueryStorage implements OP_NODE_QUERY_STORAGE (LUNodeQueryStorage).
type NodeQueryStorage struct{}

// NodeEvacuate implements OP_NODE_EVACUATE (LUNodeEvacuate): it submits
// one follow-up job per instance to move (exec_followup.go); its result is
// {"jobs": [[true, job_id], ...]}.
type NodeEvacuate struct{}

// NodeMigrate implements OP_NODE_MIGRATE (LUNodeMigrate): one follow-up
// OP_INSTANCE_MIGRATE job per primary instance (exec_followup.go).
type NodeMigrate struct{}

// Node roles of LUNodeSetParams, as (master_candidate, drained, offline).
type obRole [3]bool

var (
	roleCandidate = obRole{true, false, false}
	roleDrained   = obRole{false, true, false}
	roleOffline   = obRole{false, false, true}
	roleRegular   = obRole{false, false, false}
)

var roleFlags = [3]string{"master_candidate", "drained", "offline"}

// obMCStats is Ganeti's GetMasterCandidateStats: candidates now, the
// number there should be, and the number of possible candidates.
func obMCStats(cfg *cluster.Config, except ...string) (now, should, max int64) {
	for _, n := range cfg.Nodes {
		if slices.Contains(except, n.UUID) {
			continue
		}
		if !(n.Offline || n.Drained) && n.MasterCapable {
			max++
		}
		if n.MasterCandidate {
			now++
		}
	}
	return now, min(max, cfg.Cluster.CandidatePoolSize), max
}

// obAdjustCandidatePool is Ganeti's AdjustCandidatePool (with
// MaintainCandidatePool promoting nodes in name order, not at random).
func obAdjustCandidatePool(x *opexec.ExecContext, except ...string) {
	cfg := x.Config
	now, should, _ := obMCStats(cfg, except...)
	if now < should {
		nodes := make([]*cluster.Node, 0, len(cfg.Nodes))
		for _, n := range cfg.Nodes {
			nodes = append(nodes, n)
		}
		slices.SortFunc(nodes, func(a, b *cluster.Node) int { return strings.Compare(a.Name, b.Name) })
		var promoted []string
		for _, n := range nodes {
			if now >= should {
				break
			}
			if n.MasterCandidate || n.Offline || n.Drained || slices.Contains(except, n.UUID) || !n.MasterCapable {
				continue
			}
			e := cfg.EditNode(n.UUID)
			e.MasterCandidate = true
			e.SerialNo++
			e.MTime = x.Timestamp()
			promoted = append(promoted, n.Name)
			now++
		}
		if len(promoted) > 0 {
			obBumpCluster(x)
			x.LogInfo("Promoted nodes to master candidate role: %s", obCommaJoin(promoted))
		}
	}
	if now, should, _ := obMCStats(cfg, except...); now > should {
		x.LogInfo("Note: more nodes are candidates (%d) than desired (%d)", now, should)
	}
}

func obNodeLocks(st *cluster.State, name string, mode opexec.Mode, res bool) ([]opexec.Lock, string, error) {
	uuid, _, err := st.NodeByName(name)
	if err != nil {
		return nil, "", err
	}
	locks := []opexec.Lock{{Level: opexec.LevelNode, Name: uuid, Mode: mode}}
	if res {
		locks = append(locks, opexec.Lock{Level: opexec.LevelNodeRes, Name: uuid, Mode: mode})
	}
	return locks, uuid, nil
}

func obMightDemote(m *rapiv2.OpNodeSetParams) bool {
	return (m.MasterCandidate != nil && !*m.MasterCandidate) || m.GetOffline() || m.GetDrained() ||
		(m.MasterCapable != nil && !*m.MasterCapable)
}

// Locks implements Executor: the node (all nodes with auto_promote when
// the node may be demoted) and its resources, and the instances on it when
// the secondary IP changes.
func (NodeSetParams) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNodeSetParams)
	if !ok {
		return nil, obUnexpected(op)
	}
	locks, uuid, err := obNodeLocks(st, m.GetNodeName(), opexec.Exclusive, true)
	if err != nil {
		return nil, err
	}
	if m.GetAutoPromote() && obMightDemote(m) {
		for _, u := range st.UUIDs("node") {
			locks = append(locks, opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: opexec.Exclusive}, opexec.Lock{Level: opexec.LevelNodeRes, Name: u, Mode: opexec.Exclusive})
		}
	}
	if m.SecondaryIp != nil {
		cells, err := st.Get("node", uuid, []string{"pinst_list", "sinst_list"})
		if err == nil {
			for _, c := range cells {
				names, _ := c.Value.([]string)
				for _, n := range names {
					locks = append(locks, opexec.Lock{Level: opexec.LevelInstance, Name: n, Mode: opexec.Shared})
				}
			}
		}
	}
	return locks, nil
}

// Exec implements Executor.
func (p NodeSetParams) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(p, x, op)
}

// nodeSetPlan is what NodeSetParams.Check leaves for Apply.
type nodeSetPlan struct {
	node             string // uuid
	oldRole, newRole obRole
	newND            cluster.Params
	lockAll          bool
	logs             []string // CheckPrereq's feedback, logged by Apply
}

// Check implements opexec.Phased: LUNodeSetParams.CheckArguments and
// CheckPrereq on the snapshot.
func (NodeSetParams) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNodeSetParams)
	if !ok {
		return nil, obUnexpected(op)
	}
	cfg := c.Snapshot
	plan := &nodeSetPlan{}
	logInfo := func(format string, args ...any) {
		plan.logs = append(plan.logs, " - INFO: "+fmt.Sprintf(format, args...))
	}
	logWarning := func(format string, args ...any) {
		plan.logs = append(plan.logs, " - WARNING: "+fmt.Sprintf(format, args...))
	}
	node := obNode(cfg, m.GetNodeName())
	if node == nil {
		return nil, errs.NotFound("Node", m.GetNodeName())
	}
	// CheckArguments.
	set, trues := 0, 0
	for _, b := range []*bool{m.Offline, m.MasterCandidate, m.Drained, m.MasterCapable, m.VmCapable} {
		if b != nil && *b {
			trues++
		}
	}
	for _, v := range []bool{m.Offline != nil, m.MasterCandidate != nil, m.Drained != nil, m.MasterCapable != nil,
		m.VmCapable != nil, m.SecondaryIp != nil, m.Ndparams != nil, m.HvState != nil, m.DiskState != nil} {
		if v {
			set++
		}
	}
	if set == 0 {
		return nil, errs.Prereq(errs.CodeInval, "Please pass at least one modification")
	}
	if trues > 1 {
		return nil, errs.Prereq(errs.CodeInval, "Can't set the node into more than one state at the same time")
	}
	if m.SecondaryIp != nil {
		if a, err := netip.ParseAddr(*m.SecondaryIp); err != nil || !a.Is4() {
			return nil, errs.Prereq(errs.CodeInval, "Secondary IP (%s) needs to be a valid IPv4 address", *m.SecondaryIp)
		}
	}
	mightDemote := obMightDemote(m)
	lockAll := m.GetAutoPromote() && mightDemote

	// CheckPrereq.
	flags := [3]*bool{m.MasterCandidate, m.Drained, m.Offline}
	if (flags[0] != nil || flags[1] != nil || flags[2] != nil) && node.UUID == cfg.Cluster.MasterNode {
		return nil, errs.Prereq(errs.CodeInval, "The master role can be changed only via master-failover")
	}
	if m.GetMasterCandidate() && !node.MasterCapable {
		return nil, errs.Prereq(errs.CodeState, "Node %s is not master capable, cannot make it a master candidate", node.Name)
	}
	if m.VmCapable != nil && !*m.VmCapable {
		for _, inst := range cfg.Instances {
			if inst.PrimaryNode == node.UUID || slices.Contains(inst.SecondaryNodes, node.UUID) {
				return nil, errs.Prereq(errs.CodeState, "Node %s hosts instances, cannot unset the vm_capable flag", node.Name)
			}
		}
	}
	if node.MasterCandidate && mightDemote && !lockAll {
		if now, should, _ := obMCStats(cfg, node.UUID); now < should {
			return nil, errs.Prereq(errs.CodeState, "Not enough master candidates, please pass auto promote option to allow promotion (--auto-promote or RAPI auto_promote=True)")
		}
	}
	oldRole := obRole{node.MasterCandidate, node.Drained, node.Offline}
	switch oldRole {
	case roleCandidate, roleDrained, roleOffline, roleRegular:
	default:
		return nil, errs.Exec("Un-handled old flags %v", oldRole)
	}
	for i, f := range flags {
		if f != nil && !*f && !oldRole[i] {
			logInfo("Ignoring request to unset flag %s, already unset", roleFlags[i])
			flags[i] = nil
		}
	}
	oob, _ := cluster.FillParams(cluster.FillParams(cfg.Cluster.NDParams, cfg.Groups[node.Group].NDParams), node.NDParams)["oob_program"].(string)
	if oob != "" {
		if flags[2] != nil && !*flags[2] && !(node.Powered || m.GetPowered()) {
			return nil, errs.Prereq(errs.CodeState, "Node %s needs to be turned on before its offline status can be reset", m.GetNodeName())
		}
	} else if m.Powered != nil {
		return nil, errs.Prereq(errs.CodeState, "Unable to change powered state for node %s as it does not support out-of-band handling", m.GetNodeName())
	}
	isFalse := func(b *bool) bool { return b != nil && !*b }
	if isFalse(flags[1]) || isFalse(flags[2]) || (m.GetMasterCapable() && !node.MasterCapable) {
		// _DecideSelfPromotion
		now, should, _ := obMCStats(cfg)
		if now < min(should+1, cfg.Cluster.CandidatePoolSize) {
			t := true
			flags[0] = &t
			logInfo("Auto-promoting node to master candidate")
		}
	}
	if isFalse(m.MasterCapable) && node.MasterCandidate {
		logInfo("Demoting from master candidate")
		f := false
		flags[0] = &f
	}
	var newRole obRole
	switch {
	case flags[0] != nil && *flags[0]:
		newRole = roleCandidate
	case flags[1] != nil && *flags[1]:
		newRole = roleDrained
	case flags[2] != nil && *flags[2]:
		newRole = roleOffline
	case isFalse(flags[0]) || isFalse(flags[1]) || isFalse(flags[2]):
		newRole = roleRegular
	default:
		newRole = oldRole
	}
	if oldRole == roleOffline && newRole != oldRole {
		logWarning("Transitioning node from offline to online state without using re-add. Please make sure the node is healthy!")
	}
	if m.SecondaryIp != nil && *m.SecondaryIp != node.SecondaryIP {
		for _, n := range cfg.Nodes {
			if n.UUID != node.UUID && (n.PrimaryIP == *m.SecondaryIp || n.SecondaryIP == *m.SecondaryIp) {
				return nil, errs.Prereq(errs.CodeNotUnique, "Secondary IP address %s already in use on node %s", *m.SecondaryIp, n.Name)
			}
		}
	}
	var newND cluster.Params
	if m.Ndparams != nil {
		upd := obParams(m.Ndparams)
		nd, err := cluster.CheckNDParams(obUpdatedParams(node.NDParams, upd, false))
		if err != nil {
			return nil, obTypeError("%s", err)
		}
		if _, global := upd["exclusive_storage"]; global {
			return nil, errs.Prereq(errs.CodeInval, "The following node parameters are global and cannot be customized at node level, please modify them at cluster or group level: exclusive_storage")
		}
		newND = nd
	}
	plan.node, plan.oldRole, plan.newRole, plan.newND, plan.lockAll = node.UUID, oldRole, newRole, newND, lockAll
	return plan, nil
}

// Apply implements opexec.Phased: LUNodeSetParams.Exec.
func (NodeSetParams) Apply(x *opexec.ExecContext, op proto.Message, p any) (any, error) {
	m := op.(*rapiv2.OpNodeSetParams)
	plan := p.(*nodeSetPlan)
	for _, l := range plan.logs {
		x.Log(l)
	}
	if x.DryRun {
		return nil, nil
	}
	node := x.Config.Nodes[plan.node]
	if node == nil {
		return nil, errs.NotFound("Node", m.GetNodeName())
	}
	oldRole, newRole, newND, lockAll := plan.oldRole, plan.newRole, plan.newND, plan.lockAll
	var changes obChanges
	e := x.Config.EditNode(node.UUID)
	if newND != nil {
		e.NDParams = newND
	}
	if m.Powered != nil {
		e.Powered = *m.Powered
	}
	if m.MasterCapable != nil {
		e.MasterCapable = *m.MasterCapable
		changes.add("master_capable", obPyRepr(*m.MasterCapable))
	}
	if m.VmCapable != nil {
		e.VMCapable = *m.VmCapable
		changes.add("vm_capable", obPyRepr(*m.VmCapable))
	}
	if m.SecondaryIp != nil {
		e.SecondaryIP = *m.SecondaryIp
		changes.add("secondary_ip", *m.SecondaryIp)
	}
	if newRole != oldRole {
		for i := range roleFlags {
			if oldRole[i] != newRole[i] {
				changes.add(roleFlags[i], obPyRepr(newRole[i]))
			}
		}
		e.MasterCandidate, e.Drained, e.Offline = newRole[0], newRole[1], newRole[2]
	}
	e.SerialNo++
	e.MTime = x.Timestamp()
	obBumpCluster(x)
	if newRole != oldRole && lockAll {
		obAdjustCandidatePool(x, node.UUID)
	}
	return changes.result(), nil
}

// storageFields are Ganeti's VALID_STORAGE_FIELDS.
var storageFields = []string{"name", "size", "used", "free", "allocatable", "node", "type"}

// storageReportingTypes is Ganeti's STS_REPORT_NODE_STORAGE: the storage
// types OP_NODE_QUERY_STORAGE can default to. Ganeti joins a frozenset,
// whose order varies between runs; this server names them sorted.
var storageReportingTypes = []string{"file", "gluster", "lvm-pv", "lvm-vg", "sharedfile"}

// queryStorageType is the storage type part of LUNodeQueryStorage's
// CheckPrereq: the given type must be enabled; without one, the type of
// the cluster's first enabled disk template, which must support storage
// reporting.
func queryStorageType(c *cluster.Cluster, given *rapiv2.StorageType) (string, error) {
	if stype, ok := legacyenum.Of(given); ok && stype != "" {
		return stype, checkStorageTypeEnabled(c, stype)
	}
	stype := ""
	if len(c.EnabledDiskTemplates) > 0 {
		stype = cluster.StorageTypeOf(c.EnabledDiskTemplates[0])
	}
	if !slices.Contains(storageReportingTypes, stype) {
		return "", errs.Prereq(errs.CodeNone, "Storage reporting for storage type '%s' is not supported. Please use the --storage-type option to specify one of the supported storage types (%s) or set the default disk template to one that supports storage reporting.", stype, obCommaJoin(storageReportingTypes))
	}
	return stype, nil
}

// Locks implements Executor: the named nodes (all without names), shared.
func (NodeQueryStorage) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNodeQueryStorage)
	if !ok {
		return nil, obUnexpected(op)
	}
	uuids, err := obWantedNodes(st, m.GetNodes())
	if err != nil {
		return nil, err
	}
	locks := make([]opexec.Lock, len(uuids))
	for i, u := range uuids {
		locks[i] = opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: opexec.Shared}
	}
	return locks, nil
}

// Exec implements Executor: opexec.CheckApply.
func (e NodeQueryStorage) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e NodeQueryStorage) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e NodeQueryStorage) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: the storage units of the
// nodes, one row of output_fields each, sorted by node and unit name.
func (NodeQueryStorage) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNodeQueryStorage)
	if !ok {
		return nil, obUnexpected(op)
	}
	var unknown []string
	for _, f := range m.GetOutputFields() {
		if !slices.Contains(storageFields, f) {
			unknown = append(unknown, f)
		}
	}
	if len(unknown) > 0 {
		return nil, errs.Prereq(errs.CodeInval, "Unknown output fields selected: %s", obCommaJoin(unknown))
	}
	stype, err := queryStorageType(x.Config.Cluster, m.StorageType)
	if err != nil {
		return nil, err
	}
	st := x.State
	uuids, err := obWantedNodes(st, m.GetNodes())
	if err != nil {
		return nil, err
	}
	type nodeRef struct{ uuid, name string }
	nodes := make([]nodeRef, 0, len(uuids))
	for _, u := range uuids {
		_, name, err := st.NodeByName(u)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, nodeRef{u, name})
	}
	slices.SortFunc(nodes, func(a, b nodeRef) int { return cluster.NiceCompare(a.uuid, b.uuid) })
	rows := []any{}
	for _, n := range nodes {
		if node := x.Config.Nodes[n.uuid]; node == nil || node.Offline {
			continue
		}
		units, err := st.StorageUnits(n.uuid, stype)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(units, func(a, b cluster.StorageUnit) int { return strings.Compare(a.Name, b.Name) })
		for _, u := range units {
			row := make([]any, 0, len(m.GetOutputFields()))
			for _, f := range m.GetOutputFields() {
				switch f {
				case "name":
					row = append(row, u.Name)
				case "size":
					row = append(row, u.Size)
				case "used":
					row = append(row, u.Used)
				case "free":
					row = append(row, u.Free)
				case "allocatable":
					row = append(row, u.Allocatable)
				case "node":
					row = append(row, n.name)
				case "type":
					row = append(row, stype)
				}
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// Locks implements Executor: the node, shared.
func (NodeMigrate) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNodeMigrate)
	if !ok {
		return nil, obUnexpected(op)
	}
	locks, _, err := obNodeLocks(st, m.GetNodeName(), opexec.Shared, false)
	return locks, err
}

// LocksParams is Locks with the writes of LUNodeEvacuate's CheckArguments
// (the cluster's default iallocator) and ExpandNames (the new secondary's
// uuid and full name).
func (n NodeEvacuate) LocksParams(op proto.Message, st *cluster.State) ([]opexec.Lock, []opexec.ParamWrite, error) {
	m, ok := op.(*rapiv2.OpNodeEvacuate)
	if !ok {
		return nil, nil, obUnexpected(op)
	}
	w := iallocatorOrNode(st.InfoShared(), m.GetIallocator(), m.RemoteNode != nil)
	locks, err := n.Locks(op, st)
	if err == nil && m.RemoteNode != nil {
		if u, full, err := st.NodeByName(m.GetRemoteNode()); err == nil {
			w = append(w, opexec.ParamWrite{Name: "remote_node_uuid", Value: u}, opexec.ParamWrite{Name: "remote_node", Value: full})
		}
	}
	return locks, w, err
}

// Locks implements Executor: the node, shared.
func (NodeEvacuate) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNodeEvacuate)
	if !ok {
		return nil, obUnexpected(op)
	}
	locks, _, err := obNodeLocks(st, m.GetNodeName(), opexec.Shared, false)
	if err != nil {
		return nil, err
	}
	if m.RemoteNode != nil {
		l, _, err := obNodeLocks(st, m.GetRemoteNode(), opexec.Shared, false)
		if err != nil {
			return nil, err
		}
		locks = append(locks, l...)
	}
	return locks, nil
}
