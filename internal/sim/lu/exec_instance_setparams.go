package lu

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// InstanceSetParams implements OP_INSTANCE_SET_PARAMS
// (LUInstanceSetParams): beparams, hvparams, osparams (the value "default"
// removes a custom value), os_name, offline, runtime_mem, and disk and NIC
// additions, removals and modifications in both of Ganeti's list forms.
// Disk template conversions and node changes are not supported. Result:
// [[parameter, new value], ...].
type InstanceSetParams struct{}

// Locks implements Executor: the instance, its groups shared, its nodes
// and their resources.
func (InstanceSetParams) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	spec := nodeLocks
	spec.nodeGroupShared = true
	return instanceLocks(op, st, spec)
}

// LocksParams is Locks with the write of LUInstanceSetParams'
// CheckArguments: disk and NIC modifications given in the old two-element
// form are stored upgraded to [operation, index, parameters]
// (_UpgradeDiskNicMods).
func (s InstanceSetParams) LocksParams(op proto.Message, st *cluster.State) ([]opexec.Lock, []opexec.ParamWrite, error) {
	var w []opexec.ParamWrite
	if m, ok := op.(*rapiv2.OpInstanceSetParams); ok {
		for _, f := range []struct {
			key  string
			mods *structpb.Value
		}{{"disks", m.GetDisks()}, {"nics", m.GetNics()}} {
			up, ok := upgradeMods(f.mods)
			if !ok {
				break // Ganeti raises here: nothing more is written
			}
			if up != nil {
				w = append(w, opexec.ParamWrite{Name: f.key, Value: up})
			}
		}
	}
	locks, err := s.Locks(op, st)
	return locks, w, err
}

// upgradeMods is _UpgradeDiskNicMods' result for a modification list in
// the two-element form (nil when it is not in that form); false when
// Ganeti refuses it (more than one add, attach, remove or detach).
func upgradeMods(v *structpb.Value) ([]any, bool) {
	list, _ := opexec.JSONValue(v).([]any)
	if len(list) == 0 {
		return nil, true
	}
	var out []any
	addRemove := 0
	for _, e := range list {
		t, ok := e.([]any)
		if !ok || len(t) != 2 {
			return nil, true // not the old form: parseMods reports it
		}
		switch t[0] {
		case "add", "attach", "remove", "detach":
			if addRemove++; addRemove > 1 {
				return nil, false
			}
			out = append(out, []any{t[0], int64(-1), t[1]})
		default:
			out = append(out, []any{"modify", t[0], t[1]})
		}
	}
	return out, true
}

// containerMod is one disk or NIC modification: op add, remove or modify;
// ident an index (-1: the last / append) or a name or UUID.
type containerMod struct {
	op     string
	ident  any
	params map[string]any
}

// parseMods reads a disks or nics parameter in either list form (Ganeti's
// _UpgradeDiskNicMods).
func parseMods(kind string, v *structpb.Value) ([]containerMod, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := opexec.JSONValue(v).([]any)
	if !ok {
		return nil, errs.Prereq(errs.CodeInval, "Invalid %s modifications", kind)
	}
	var out []containerMod
	addRemove := 0
	for _, e := range list {
		t, ok := e.([]any)
		if !ok || (len(t) != 2 && len(t) != 3) {
			return nil, errs.Prereq(errs.CodeInval, "Invalid %s modification %v", kind, e)
		}
		params, _ := t[len(t)-1].(map[string]any)
		if params == nil {
			params = map[string]any{}
		}
		if len(t) == 3 {
			op, _ := t[0].(string)
			out = append(out, containerMod{op: op, ident: t[1], params: params})
			continue
		}
		switch t[0] {
		case "add", "attach", "remove", "detach":
			addRemove++
			if addRemove > 1 {
				return nil, errs.Prereq(errs.CodeInval, "Only one %s add/attach/remove/detach operation is supported at a time", kind)
			}
			out = append(out, containerMod{op: t[0].(string), ident: int64(-1), params: params})
		default:
			out = append(out, containerMod{op: "modify", ident: t[0], params: params})
		}
	}
	for _, m := range out {
		switch m.op {
		case "add", "remove", "modify":
		case "attach", "detach":
			return nil, errs.Prereq(errs.CodeInval, "%s %s is not supported by the fake hypervisor simulation", kind, m.op)
		default:
			return nil, errs.Prereq(errs.CodeInval, "Invalid %s modification operation '%s'", kind, m.op)
		}
	}
	return out, nil
}

// itemIndex is Ganeti's GetItemFromContainer.
func itemIndex(ident any, kind string, n int, uuidName func(i int) (string, *string)) (int, error) {
	if idx, ok := toInt(ident); ok {
		switch {
		case idx == -1:
			if n == 0 {
				return 0, errs.Exec("list index out of range")
			}
			return n - 1, nil
		case idx < 0:
			return 0, errs.Exec("Not accepting negative indices other than -1")
		case int(idx) > n:
			return 0, errs.Exec("Got %s index %d, but there are only %d", kind, idx, n)
		case int(idx) == n:
			return 0, errs.Exec("list index out of range")
		}
		return int(idx), nil
	}
	s, _ := ident.(string)
	for i := 0; i < n; i++ {
		uuid, name := uuidName(i)
		if uuid == s || (name != nil && *name == s) {
			return i, nil
		}
	}
	return 0, errs.Prereq(errs.CodeNoEnt, "Cannot find %s with identifier %s", kind, s)
}

// addIndex is where an "add" inserts (Ganeti's _ApplyContainerMods).
func addIndex(ident any, kind string, n int) (int, error) {
	idx, ok := toInt(ident)
	switch {
	case !ok:
		return 0, errs.Prereq(errs.CodeInval, "Invalid %s index %v", kind, ident)
	case idx == -1:
		return n, nil
	case idx < 0:
		return 0, errs.Exec("Not accepting negative indices other than -1")
	case int(idx) > n:
		return 0, errs.Exec("Got %s index %d, but there are only %d", kind, idx, n)
	}
	return int(idx), nil
}

// updatedParams is Ganeti's GetUpdatedParams with use_default: "default"
// removes a key.
func updatedParams(old cluster.Params, upd map[string]any) (cluster.Params, []string) {
	out := cluster.FillParams(nil, old)
	var removed []string
	for k, v := range upd {
		if s, ok := v.(string); ok && s == "default" {
			delete(out, k)
			removed = append(removed, k)
			continue
		}
		out[k] = v
	}
	return out, removed
}

func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case *string:
		if x == nil {
			return "None"
		}
		return *x
	case bool:
		if x {
			return "True"
		}
		return "False"
	}
	return fmt.Sprint(v)
}

// Exec implements Executor: opexec.CheckApply.
func (e InstanceSetParams) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e InstanceSetParams) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e InstanceSetParams) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (InstanceSetParams) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpInstanceSetParams)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	cfg := x.Config
	c := cfg.Cluster
	beUpd, hvUpd, osUpd := opexec.StructMap(m.GetBeparams()), opexec.StructMap(m.GetHvparams()), opexec.StructMap(m.GetOsparams())
	diskMods, err := parseMods("disk", m.GetDisks())
	if err != nil {
		return nil, err
	}
	nicMods, err := parseMods("NIC", m.GetNics())
	if err != nil {
		return nil, err
	}
	if len(beUpd) == 0 && len(hvUpd) == 0 && len(osUpd) == 0 && len(diskMods) == 0 && len(nicMods) == 0 &&
		m.OsName == nil && m.Offline == nil && m.RuntimeMem == nil && m.DiskTemplate == nil && m.GetPnode() == "" &&
		m.InstanceCommunication == nil && len(opexec.StructMap(m.GetOsparamsPrivate())) == 0 {
		return nil, errs.Prereq(errs.CodeInval, "No changes submitted")
	}
	if m.DiskTemplate != nil || m.GetPnode() != "" {
		return nil, errs.Prereq(errs.CodeInval, "Disk template conversions and primary node changes are not supported by the fake hypervisor simulation")
	}
	inst, err := findInstance(cfg, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	pnode := cfg.Nodes[inst.PrimaryNode]
	group := cfg.Groups[pnode.Group]
	var result []any
	change := func(k string, v any) { result = append(result, []any{k, v}) }

	// Backend parameters.
	newBE := inst.BEParams
	if len(beUpd) > 0 {
		upd, _ := updatedParams(inst.BEParams, beUpd)
		if newBE, err = checkBEParams(upd, func(p cluster.Params) cluster.Params { return cluster.FillParams(c.BEParams, p) }); err != nil {
			return nil, err
		}
	}
	beNew := cluster.FillParams(c.BEParams, newBE)
	beOld := cfg.InstanceBEParams(inst)
	// Hypervisor and OS parameters.
	newHV := inst.HVParams
	if len(hvUpd) > 0 {
		upd, _ := updatedParams(inst.HVParams, hvUpd)
		if newHV, err = checkHVParams(upd); err != nil {
			return nil, err
		}
		if err := checkHVSyntax(inst.Hypervisor, cluster.FillParams(hvDefaults(c, inst.Hypervisor, inst.OS), newHV)); err != nil {
			return nil, err
		}
	}
	newOS := inst.OSParams
	if len(osUpd) > 0 {
		upd, _ := updatedParams(inst.OSParams, osUpd)
		newOS = checkOSParams(upd)
	}
	newOSName := inst.OS
	if m.OsName != nil {
		newOSName = m.GetOsName()
		if err := checkOS(cfg, pnode, newOSName, m.GetForceVariant()); err != nil {
			return nil, err
		}
	}

	// Memory: a larger maxmem must still let the instance start.
	newMax, _ := beNew["maxmem"].(int64)
	oldMax, _ := beOld["maxmem"].(int64)
	if len(beUpd) > 0 && newMax > oldMax && !m.GetForce() {
		free, _ := cfg.NodeFree(pnode.UUID)
		var cur int64
		if inst.Running {
			cur = inst.OperRAM
		}
		if miss := newMax - cur - free; miss > 0 {
			return nil, errs.Prereq(errs.CodeNoRes, "This change will prevent the instance from starting, due to %d MB of memory missing on its primary node", miss)
		}
	}
	var runtimeMem int64
	if m.RuntimeMem != nil {
		if !inst.Running {
			return nil, errs.Prereq(errs.CodeState, "Instance %s is not running", inst.Name)
		}
		runtimeMem = m.GetRuntimeMem()
		minmem, _ := beNew["minmem"].(int64)
		if !m.GetForce() && (runtimeMem < minmem || runtimeMem > newMax) {
			return nil, errs.Prereq(errs.CodeInval, "Instance %s must have memory between %d and %d of memory unless --force is given", inst.Name, minmem, newMax)
		}
		if delta := runtimeMem - inst.OperRAM; delta > 0 {
			if err := checkFreeMemory(cfg, pnode, "ballooning memory for instance "+inst.Name, delta); err != nil {
				return nil, err
			}
		}
	}
	if m.Offline != nil && m.GetOffline() {
		if err := checkInstanceState(inst, []string{cluster.AdminDown, cluster.AdminOffline}, "cannot change to offline"); err != nil {
			return nil, err
		}
	}

	// Disks.
	disks := slices.Clone(inst.Disks)
	var diskChanges [][]any
	var diskGrowth int64
	if len(diskMods) > 0 && inst.DiskTemplate == "diskless" {
		return nil, errs.Prereq(errs.CodeInval, "Disk operations not supported for diskless instances")
	}
	hotplug := m.GetHotplug() || m.GetHotplugIfPossible()
	for _, mod := range diskMods {
		switch mod.op {
		case "add":
			idx, err := addIndex(mod.ident, "disk", len(disks))
			if err != nil {
				return nil, err
			}
			nd, err := computeDisk(mod.params, false)
			if err != nil {
				return nil, err
			}
			if len(disks) >= cluster.MaxDisks {
				return nil, errs.Prereq(errs.CodeState, "Instance has too many disks (%d), cannot add more", cluster.MaxDisks)
			}
			d := cluster.Disk{UUID: x.NewUUID(), Name: nd.name, Size: nd.size, Spindles: nd.spindles, Mode: nd.mode}
			disks = slices.Insert(disks, idx, d)
			diskGrowth += nd.size
			if mirrored(inst.DiskTemplate) {
				diskGrowth += cluster.DRBDMetaSize
			}
			diskChanges = append(diskChanges, []any{fmt.Sprintf("disk/%d", idx), fmt.Sprintf("add:size=%d,mode=%s", nd.size, nd.mode)})
		case "remove":
			idx, err := itemIndex(mod.ident, "disk", len(disks), func(i int) (string, *string) { return disks[i].UUID, disks[i].Name })
			if err != nil {
				return nil, err
			}
			if !hotplug {
				if err := checkInstanceState(inst, stNotRunning, "cannot remove disks"); err != nil {
					return nil, err
				}
			}
			if len(disks) == 1 {
				return nil, errs.Prereq(errs.CodeInval, "Can't remove the last disk of an instance")
			}
			disks = slices.Delete(disks, idx, idx+1)
			diskChanges = append(diskChanges, []any{fmt.Sprintf("disk/%d", idx), "remove"})
		case "modify":
			idx, err := itemIndex(mod.ident, "disk", len(disks), func(i int) (string, *string) { return disks[i].UUID, disks[i].Name })
			if err != nil {
				return nil, err
			}
			if _, ok := mod.params["size"]; ok {
				return nil, errs.Prereq(errs.CodeInval, "Disk size change not possible, use grow-disk")
			}
			for k, v := range mod.params {
				switch k {
				case "mode":
					s, _ := v.(string)
					if s != "rw" && s != "ro" {
						return nil, errs.Prereq(errs.CodeInval, "Invalid disk access mode '%v'", v)
					}
					disks[idx].Mode = s
					diskChanges = append(diskChanges, []any{fmt.Sprintf("disk.mode/%d", idx), s})
				case "name":
					s, _ := v.(string)
					if v == nil || strings.EqualFold(s, "none") {
						disks[idx].Name = nil
					} else {
						disks[idx].Name = &s
					}
					diskChanges = append(diskChanges, []any{fmt.Sprintf("disk.name/%d", idx), v})
				default:
					return nil, errs.Prereq(errs.CodeInval, "Disk parameter '%s' cannot be modified", k)
				}
			}
		}
	}
	if diskGrowth > 0 {
		nodes := []*cluster.Node{pnode}
		for _, u := range inst.SecondaryNodes {
			nodes = append(nodes, cfg.Nodes[u])
		}
		if err := checkFreeDisk(cfg, inst.DiskTemplate, nodes, diskGrowth); err != nil {
			return nil, err
		}
	}

	// NICs (changes to network pools happen on cfg; an error discards cfg).
	nics := slices.Clone(inst.NICs)
	var nicChanges [][]any
	used := cfg.UsedMACs()
	for _, mod := range nicMods {
		switch mod.op {
		case "add":
			idx, err := addIndex(mod.ident, "NIC", len(nics))
			if err != nil {
				return nil, err
			}
			if len(nics) >= cluster.MaxNICs {
				return nil, errs.Prereq(errs.CodeState, "Instance has too many network interfaces (%d), cannot add more", cluster.MaxNICs)
			}
			spec, err := nicSpecFromMap(mod.params)
			if err != nil {
				return nil, err
			}
			nic, err := buildNIC(x, cfg, pnode, spec, true, used)
			if err != nil {
				return nil, err
			}
			nics = slices.Insert(nics, idx, nic)
			p := cluster.FillParams(c.NICParams, nic.NICParams)
			var netName any
			if nic.Network != nil {
				netName = cfg.Networks[*nic.Network].Name
			}
			nicChanges = append(nicChanges, []any{fmt.Sprintf("nic.%d", idx),
				fmt.Sprintf("add:mac=%s,ip=%s,mode=%s,link=%s,network=%s", nic.MAC, pyStr(nic.IP), pyStr(p["mode"]), pyStr(p["link"]), pyStr(netName))})
		case "remove":
			idx, err := itemIndex(mod.ident, "NIC", len(nics), func(i int) (string, *string) { return nics[i].UUID, nics[i].Name })
			if err != nil {
				return nil, err
			}
			releaseIPs(cfg, nics[idx:idx+1])
			nics = slices.Delete(nics, idx, idx+1)
			nicChanges = append(nicChanges, []any{fmt.Sprintf("nic.%d", idx), "remove"})
		case "modify":
			idx, err := itemIndex(mod.ident, "NIC", len(nics), func(i int) (string, *string) { return nics[i].UUID, nics[i].Name })
			if err != nil {
				return nil, err
			}
			nic := nics[idx]
			nic.NICParams = cluster.FillParams(nil, nic.NICParams)
			for _, k := range sortedMapKeys(mod.params) {
				v := mod.params[k]
				s, _ := v.(string)
				switch k {
				case "mode":
					if !slices.Contains(cluster.NICModes(), s) {
						return nil, errs.Prereq(errs.CodeInval, "Invalid NIC mode '%s'", s)
					}
					nic.NICParams["mode"] = s
				case "link", "bridge":
					k = "link"
					nic.NICParams["link"] = s
				case "vlan":
					nic.NICParams["vlan"] = s
				case "name":
					if v == nil || strings.EqualFold(s, "none") {
						nic.Name = nil
					} else {
						nic.Name = &s
					}
				case "mac":
					mac := strings.ToLower(s)
					if mac == "auto" || mac == "generate" {
						if mac, err = generateMAC(x, cfg.MACPrefixOf(""), used); err != nil {
							return nil, err
						}
					} else if !macRe.MatchString(mac) {
						return nil, errs.Prereq(errs.CodeInval, "Invalid MAC address '%s'", s)
					} else if used[mac] && mac != nic.MAC {
						return nil, errs.Prereq(errs.CodeNotUnique, "MAC address %s already in use in cluster", mac)
					}
					used[mac] = true
					nic.MAC = mac
					v = mac
				case "ip":
					if v == nil || strings.EqualFold(s, "none") {
						releaseIPs(cfg, []cluster.NIC{nic})
						nic.IP = nil
						break
					}
					tmp, err := buildNIC(x, cfg, pnode, nicSpec{ip: &s, network: nic.Network, mac: &nic.MAC}, true, map[string]bool{})
					if err != nil {
						return nil, err
					}
					releaseIPs(cfg, []cluster.NIC{nic})
					nic.IP = tmp.IP
				default:
					return nil, errs.Prereq(errs.CodeInval, "NIC parameter '%s' cannot be modified", k)
				}
				nicChanges = append(nicChanges, []any{fmt.Sprintf("nic.%s/%d", k, idx), v})
			}
			nics[idx] = nic
		}
	}

	// Policy.
	if (len(beUpd) > 0 || len(diskMods) > 0 || len(nicMods) > 0) && !m.GetIgnoreIpolicy() {
		sizes := make([]int64, len(disks))
		for i, d := range disks {
			sizes[i] = d.Size
		}
		if err := checkIPolicy(cfg, group, "Instance allocation", inst.DiskTemplate, beNew, len(nics), sizes); err != nil {
			return nil, err
		}
		minBE := cluster.FillParams(beNew, cluster.Params{"maxmem": beNew["minmem"]})
		if err := checkIPolicy(cfg, group, "Instance allocation", inst.DiskTemplate, minBE, len(nics), sizes); err != nil {
			return nil, err
		}
	}

	// Results, in Ganeti's order.
	for _, ch := range diskChanges {
		result = append(result, ch)
	}
	for _, ch := range nicChanges {
		result = append(result, ch)
	}
	if x.DryRun {
		return nil, nil
	}
	e := editInstance(x, inst.UUID)
	e.Disks, e.NICs = disks, nics
	if len(hvUpd) > 0 {
		e.HVParams = newHV
		for _, k := range sortedMapKeys(hvUpd) {
			change("hv/"+k, hvUpd[k])
		}
	}
	if len(beUpd) > 0 {
		e.BEParams = newBE
		for _, k := range sortedMapKeys(beUpd) {
			change("be/"+k, beUpd[k])
		}
	}
	if m.RuntimeMem != nil {
		e.OperRAM = runtimeMem
		change("runtime_memory", runtimeMem)
	}
	if m.OsName != nil {
		e.OS = newOSName
		change("os_name", newOSName)
	}
	if len(osUpd) > 0 {
		e.OSParams = newOS
		for _, k := range sortedMapKeys(osUpd) {
			change("os/"+k, osUpd[k])
		}
	}
	if m.Offline != nil {
		if m.GetOffline() {
			e.AdminState = cluster.AdminOffline
			change("admin_state", cluster.AdminOffline)
		} else if e.AdminState == cluster.AdminOffline {
			e.AdminState = cluster.AdminDown
			change("admin_state", cluster.AdminDown)
		}
	}
	if result == nil {
		result = []any{}
	}
	return result, nil
}

func sortedMapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
