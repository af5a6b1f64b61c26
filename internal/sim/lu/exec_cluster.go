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

// ClusterSetParams implements OP_CLUSTER_SET_PARAMS (Ganeti's
// LUClusterSetParams) for the common parameters; the others are refused
// with an OpPrereqError naming them. The result is null.
type ClusterSetParams struct{}

// ClusterRedistConf implements OP_CLUSTER_REDIST_CONF
// (LUClusterRedistConf): the simulated nodes need no copy, so only the
// cluster object's serial number and mtime change, as in Ganeti.
type ClusterRedistConf struct{}

// obAllLocks lists every node (and, with groups/instances, every group and
// instance) in mode.
func obAllLocks(st *cluster.State, mode opexec.Mode, groups, instances bool) []opexec.Lock {
	var locks []opexec.Lock
	for _, u := range st.UUIDs("node") {
		locks = append(locks, opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: mode})
	}
	if groups {
		for _, u := range st.UUIDs("group") {
			locks = append(locks, opexec.Lock{Level: opexec.LevelNodeGroup, Name: u, Mode: mode})
		}
	}
	if instances {
		for _, n := range st.Names("instance") {
			locks = append(locks, opexec.Lock{Level: opexec.LevelInstance, Name: n, Mode: mode})
		}
	}
	return locks
}

// Locks implements Executor: all nodes, shared.
func (ClusterRedistConf) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	if _, ok := op.(*rapiv2.OpClusterRedistConf); !ok {
		return nil, obUnexpected(op)
	}
	return obAllLocks(st, opexec.Shared, false, false), nil
}

// Exec implements Executor: opexec.CheckApply.
func (e ClusterRedistConf) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e ClusterRedistConf) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e ClusterRedistConf) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (ClusterRedistConf) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	if _, ok := op.(*rapiv2.OpClusterRedistConf); !ok {
		return nil, obUnexpected(op)
	}
	if x.DryRun {
		return nil, nil
	}
	obBumpCluster(x)
	return nil, nil
}

// Locks implements Executor: all nodes, groups and instances, shared.
func (ClusterSetParams) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	if _, ok := op.(*rapiv2.OpClusterSetParams); !ok {
		return nil, obUnexpected(op)
	}
	return obAllLocks(st, opexec.Shared, true, true), nil
}

// Exec implements Executor: opexec.CheckApply.
func (e ClusterSetParams) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e ClusterSetParams) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e ClusterSetParams) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (ClusterSetParams) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpClusterSetParams)
	if !ok {
		return nil, obUnexpected(op)
	}
	// Parameters this server does not implement.
	var unsupported []string
	for name, set := range map[string]bool{
		"hv_state": m.HvState != nil, "disk_state": m.DiskState != nil, "vg_name": m.VgName != nil,
		"enabled_hypervisors": len(m.EnabledHypervisors) > 0, "os_hvp": m.OsHvp != nil, "osparams": m.Osparams != nil,
		"osparams_private_cluster": m.OsparamsPrivateCluster != nil, "add_uids": len(m.AddUids) > 0,
		"remove_uids": len(m.RemoveUids) > 0, "drbd_helper": m.DrbdHelper != nil,
		"modify_etc_hosts": m.ModifyEtcHosts != nil, "instance_communication_network": m.InstanceCommunicationNetwork != nil,
		"compression_tools": len(m.CompressionTools) > 0,
	} {
		if set {
			unsupported = append(unsupported, name)
		}
	}
	if len(unsupported) > 0 {
		slices.Sort(unsupported)
		return nil, errs.Prereq(errs.CodeInval, "Changing %s is not supported by this server", obCommaJoin(unsupported))
	}
	cfg := x.Config
	c := cfg.Cluster

	// CheckArguments / CheckPrereq: compute every new value first.
	if m.CandidatePoolSize != nil && *m.CandidatePoolSize < 1 {
		return nil, errs.Prereq(errs.CodeInval, "At least one master candidate needed")
	}
	for name, v := range map[string]*int64{"max_running_jobs": m.MaxRunningJobs, "max_tracked_jobs": m.MaxTrackedJobs} {
		if v != nil && *v < 1 {
			return nil, errs.Prereq(errs.CodeInval, "Invalid %s value: %d", name, *v)
		}
	}
	if m.MasterNetmask != nil && (*m.MasterNetmask < 1 || *m.MasterNetmask > 32) {
		return nil, errs.Prereq(errs.CodeInval, "Invalid netmask '%d'", *m.MasterNetmask)
	}
	var macPrefix string
	if m.MacPrefix != nil {
		p, err := obMACPrefix(*m.MacPrefix)
		if err != nil {
			return nil, err
		}
		macPrefix = p
	}
	var be, nd, nic, ipol cluster.Params
	var err error
	if m.Beparams != nil {
		if be, err = cluster.CheckBEParams(obUpdatedParams(c.BEParams, obParams(m.Beparams), false)); err != nil {
			return nil, obTypeError("%s", err)
		}
	}
	if m.Ndparams != nil {
		if nd, err = cluster.CheckNDParams(obUpdatedParams(c.NDParams, obParams(m.Ndparams), false)); err != nil {
			return nil, obTypeError("%s", err)
		}
	}
	if n := m.Nicparams; n != nil {
		upd := cluster.Params{}
		for key, v := range map[string]*string{"mode": n.Mode, "link": n.Link, "vlan": n.Vlan} {
			if v != nil {
				upd[key] = *v
			}
		}
		if n.Bridge != nil || n.Ip != nil || n.Mac != nil || n.Name != nil || n.Network != nil {
			return nil, obTypeError("Only mode, link and vlan are cluster NIC parameters")
		}
		if nic, err = cluster.CheckNICParams(obUpdatedParams(c.NICParams, upd, false)); err != nil {
			return nil, obTypeError("%s", err)
		}
		mode, _ := nic["mode"].(string)
		if !slices.Contains(cluster.NICModes(), mode) {
			return nil, &errs.Error{Class: "ConfigurationError", Msg: "Invalid NIC mode '" + mode + "'"}
		}
		if link, _ := nic["link"].(string); mode == "bridged" && link == "" {
			return nil, &errs.Error{Class: "ConfigurationError", Msg: "Missing bridged NIC link"}
		}
	}
	var hv map[string]cluster.Params
	if m.Hvparams != nil {
		hv = map[string]cluster.Params{}
		for name, v := range obParams(m.Hvparams) {
			p, _ := v.(map[string]any)
			if _, ok := c.HVParams[name]; !ok && !slices.Contains(cluster.Hypervisors, name) {
				return nil, errs.Prereq(errs.CodeInval, "Unknown hypervisor '%s'", name)
			}
			upd := obUpdatedParams(c.HVParams[name], p, false)
			// Ganeti's ForceDictType, then the hypervisor's own check.
			if _, err := forceHVTypes(upd); err != nil {
				return nil, err
			}
			if err := checkHVSyntax(name, upd); err != nil {
				return nil, err
			}
			if hv[name], err = cluster.CheckHVParams(name, upd); err != nil {
				return nil, obTypeError("%s", err)
			}
		}
	}
	var disk map[string]cluster.Params
	if m.Diskparams != nil {
		disk = map[string]cluster.Params{}
		for dt, p := range obDiskParams(m.Diskparams) {
			if !slices.Contains(cluster.DiskTemplates, dt) {
				return nil, errs.Prereq(errs.CodeInval, "Unknown disk template '%s'", dt)
			}
			if disk[dt], err = cluster.CheckDiskParams(dt, obUpdatedParams(c.DiskParams[dt], p, false)); err != nil {
				return nil, obTypeError("%s", err)
			}
		}
	}
	if m.Ipolicy != nil {
		upd := obParams(m.Ipolicy)
		if ipol, err = cluster.CheckIPolicy(upd); err != nil {
			return nil, errs.Prereq(errs.CodeInval, "Invalid instance policy: %s", err)
		}
		ipol = cluster.FillIPolicy(c.IPolicy, ipol)
		if err := cluster.CheckIPolicyStd(ipol); err != nil {
			return nil, errs.Prereq(errs.CodeInval, "Invalid instance policy: %s", err)
		}
	}
	var templates []string
	if len(m.EnabledDiskTemplates) > 0 {
		for _, dt := range m.EnabledDiskTemplates {
			s, ok := legacyenum.Of(dt)
			if !ok || !slices.Contains(cluster.DiskTemplates, s) {
				return nil, errs.Prereq(errs.CodeInval, "Unknown disk template '%s'", dt.String())
			}
			if !slices.Contains(templates, s) {
				templates = append(templates, s)
			}
		}
		for _, old := range c.EnabledDiskTemplates {
			if slices.Contains(templates, old) {
				continue
			}
			for _, inst := range cfg.Instances {
				if inst.DiskTemplate == old {
					return nil, errs.Prereq(errs.CodeState, "Cannot disable disk template '%s', because there is at least one instance using it.", old)
				}
			}
		}
	}
	var hidden, blacklisted []string
	for _, l := range []struct {
		mods []*rapiv2.OsListModification
		cur  []string
		out  *[]string
		what string
	}{{m.HiddenOs, c.HiddenOS, &hidden, "hidden"}, {m.BlacklistedOs, c.BlacklistedOS, &blacklisted, "blacklisted"}} {
		if len(l.mods) == 0 {
			continue
		}
		list := slices.Clone(l.cur)
		for _, mod := range l.mods {
			action, _ := legacyenum.Of(mod.Item1)
			switch action {
			case "add":
				if slices.Contains(list, mod.Item2) {
					x.LogInfo("OS %s already in %s_os list", mod.Item2, l.what)
				} else {
					list = append(list, mod.Item2)
				}
			case "remove":
				if i := slices.Index(list, mod.Item2); i >= 0 {
					list = slices.Delete(list, i, i+1)
				} else {
					x.LogInfo("OS %s not found in %s_os list", mod.Item2, l.what)
				}
			default:
				return nil, errs.Prereq(errs.CodeInval, "Invalid OS modification action '%s'", action)
			}
		}
		if list == nil {
			list = []string{}
		}
		*l.out = list
	}
	if x.DryRun {
		return nil, nil
	}

	// Exec.
	e := cfg.EditCluster()
	if hv != nil {
		if e.HVParams == nil {
			e.HVParams = map[string]cluster.Params{}
		}
		for name, p := range hv {
			e.HVParams[name] = p
		}
	}
	if be != nil {
		e.BEParams = be
	}
	if nd != nil {
		e.NDParams = nd
	}
	if nic != nil {
		e.NICParams = nic
	}
	if disk != nil {
		if e.DiskParams == nil {
			e.DiskParams = map[string]cluster.Params{}
		}
		for dt, p := range disk {
			e.DiskParams[dt] = p
		}
	}
	if ipol != nil {
		e.IPolicy = ipol
	}
	if templates != nil {
		e.EnabledDiskTemplates = templates
	}
	if m.CandidatePoolSize != nil {
		e.CandidatePoolSize = *m.CandidatePoolSize
	}
	if m.MaxRunningJobs != nil {
		e.MaxRunningJobs = *m.MaxRunningJobs
	}
	if m.MaxTrackedJobs != nil {
		e.MaxTrackedJobs = *m.MaxTrackedJobs
	}
	if m.MaintainNodeHealth != nil {
		e.MaintainNodeHealth = *m.MaintainNodeHealth
	}
	if m.PreallocWipeDisks != nil {
		e.PreallocWipeDisks = *m.PreallocWipeDisks
	}
	if m.UseExternalMipScript != nil {
		e.UseExternalMIPScript = *m.UseExternalMipScript
	}
	if m.EnabledUserShutdown != nil {
		e.EnabledUserShutdown = *m.EnabledUserShutdown
	}
	if m.MacPrefix != nil {
		e.MACPrefix = macPrefix
	}
	if m.MasterNetdev != nil {
		e.MasterNetdev = *m.MasterNetdev
	}
	if m.MasterNetmask != nil {
		e.MasterNetmask = *m.MasterNetmask
	}
	if m.DefaultIallocator != nil {
		e.DefaultIAllocator = *m.DefaultIallocator
	}
	if m.DefaultIallocatorParams != nil {
		e.DefaultIAllocatorParams = obParams(m.DefaultIallocatorParams)
	}
	if m.ReservedLvs != nil {
		e.ReservedLVs = slices.Clone(m.ReservedLvs)
	}
	if hidden != nil {
		e.HiddenOS = hidden
	}
	if blacklisted != nil {
		e.BlacklistedOS = blacklisted
	}
	if m.UidPool != nil {
		pool := make([][2]int64, len(m.UidPool))
		for i, r := range m.UidPool {
			pool[i] = [2]int64{r.Item1, r.Item2}
		}
		e.UIDPool = pool
	}
	if m.FileStorageDir != nil {
		e.FileStorageDir = *m.FileStorageDir
	}
	if m.SharedFileStorageDir != nil {
		e.SharedFileStorageDir = *m.SharedFileStorageDir
	}
	if m.GlusterStorageDir != nil {
		e.GlusterStorageDir = *m.GlusterStorageDir
	}
	if m.InstallImage != nil {
		e.InstallImage = *m.InstallImage
	}
	if m.ZeroingImage != nil {
		e.ZeroingImage = *m.ZeroingImage
	}
	for k, v := range m.EnabledDataCollectors {
		if e.EnabledDataCollectors == nil {
			e.EnabledDataCollectors = map[string]bool{}
		}
		e.EnabledDataCollectors[k] = v
	}
	for k, v := range m.DataCollectorInterval {
		if e.DataCollectorInterval == nil {
			e.DataCollectorInterval = map[string]int64{}
		}
		e.DataCollectorInterval[k] = v
	}
	e.SerialNo++
	e.MTime = x.Timestamp()
	if m.CandidatePoolSize != nil {
		obAdjustCandidatePool(x)
	}
	return nil, nil
}
