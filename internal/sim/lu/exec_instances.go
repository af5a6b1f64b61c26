package lu

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// instanceExecutors are the executors of the instance opcodes.
func instanceExecutors() map[string]opexec.Executor {
	return map[string]opexec.Executor{
		opKey(&rapiv2.OpInstanceCreate{}):          InstanceCreate{},
		opKey(&rapiv2.OpInstanceRemove{}):          InstanceRemove{},
		opKey(&rapiv2.OpInstanceStartup{}):         InstanceStartup{},
		opKey(&rapiv2.OpInstanceShutdown{}):        InstanceShutdown{},
		opKey(&rapiv2.OpInstanceReboot{}):          InstanceReboot{},
		opKey(&rapiv2.OpInstanceRename{}):          InstanceRename{},
		opKey(&rapiv2.OpInstanceSetParams{}):       InstanceSetParams{},
		opKey(&rapiv2.OpInstanceGrowDisk{}):        InstanceGrowDisk{},
		opKey(&rapiv2.OpInstanceActivateDisks{}):   InstanceActivateDisks{},
		opKey(&rapiv2.OpInstanceDeactivateDisks{}): InstanceDeactivateDisks{},
		opKey(&rapiv2.OpInstanceReinstall{}):       InstanceReinstall{},
		opKey(&rapiv2.OpInstanceMigrate{}):         InstanceMigrate{},
		opKey(&rapiv2.OpInstanceFailover{}):        InstanceFailover{},
		opKey(&rapiv2.OpInstanceQueryData{}):       InstanceQueryData{},
		opKey(&rapiv2.OpInstanceRecreateDisks{}):   InstanceRecreateDisks{},
		opKey(&rapiv2.OpInstanceReplaceDisks{}):    InstanceReplaceDisks{},
		opKey(&rapiv2.OpInstanceMultiAlloc{}):      InstanceMultiAlloc{},
		opKey(&rapiv2.OpBackupPrepare{}):           BackupPrepare{},
		opKey(&rapiv2.OpBackupExport{}):            BackupExport{},
	}
}

// ClassTypeEnforcement is Ganeti's TypeEnforcementError class.
const ClassTypeEnforcement = "TypeEnforcementError"

func typeError(format string, args ...any) error {
	return &errs.Error{Class: ClassTypeEnforcement, Msg: fmt.Sprintf(format, args...)}
}

// instanceNamed is an opcode that names one instance.
type instanceNamed interface {
	proto.Message
	GetInstanceName() string
}

func instanceNameOf(op proto.Message) (string, error) {
	m, ok := op.(instanceNamed)
	if !ok {
		return "", errs.Exec("Unexpected opcode %T", op)
	}
	return m.GetInstanceName(), nil
}

// stateInstance resolves an instance name of the snapshot to its full
// name and its node UUIDs (primary first).
func stateInstance(st *cluster.State, name string) (full string, nodes []string, err error) {
	cells, err := st.Get("instance", name, []string{"name", "pnode", "snodes"})
	if err != nil {
		return "", nil, err
	}
	full, _ = cells[0].Value.(string)
	pnode, _ := cells[1].Value.(string)
	uuid, err := lookupState(st, "node", pnode, "uuid")
	if err != nil {
		return "", nil, err
	}
	nodes = append(nodes, uuid)
	snodes, _ := cells[2].Value.([]string)
	for _, sn := range snodes {
		u, err := lookupState(st, "node", sn, "uuid")
		if err != nil {
			return "", nil, err
		}
		nodes = append(nodes, u)
	}
	return full, nodes, nil
}

// lockSpec says which node-level locks an instance opcode takes.
type lockSpec struct {
	nodes, nodeRes  bool
	nodeMode        opexec.Mode
	nodeResMode     opexec.Mode
	primaryOnly     bool // node-res on the primary node only
	instanceMode    opexec.Mode
	allNodes        bool // every node (an iallocator run)
	extraInstances  []string
	nodeGroupShared bool
}

// instanceLocks is Ganeti's _ExpandAndLockInstance plus _LockInstancesNodes.
func instanceLocks(op proto.Message, st *cluster.State, spec lockSpec) ([]opexec.Lock, error) {
	name, err := instanceNameOf(op)
	if err != nil {
		return nil, err
	}
	full, nodes, err := stateInstance(st, name)
	if err != nil {
		return nil, err
	}
	locks := []opexec.Lock{{Level: opexec.LevelInstance, Name: full, Mode: spec.instanceMode}}
	for _, extra := range spec.extraInstances {
		if extra != full {
			locks = append(locks, opexec.Lock{Level: opexec.LevelInstance, Name: extra, Mode: opexec.Exclusive})
		}
	}
	if spec.allNodes {
		nodes = allNodeUUIDs(st)
	}
	if spec.nodeGroupShared {
		seen := map[string]bool{}
		for _, n := range nodes {
			g, err := lookupState(st, "node", n, "group.uuid")
			if err == nil && !seen[g] {
				seen[g] = true
				locks = append(locks, opexec.Lock{Level: opexec.LevelNodeGroup, Name: g, Mode: opexec.Shared})
			}
		}
	}
	if spec.nodes {
		for _, n := range nodes {
			locks = append(locks, opexec.Lock{Level: opexec.LevelNode, Name: n, Mode: spec.nodeMode})
		}
	}
	if spec.nodeRes {
		resNodes := nodes
		if spec.primaryOnly {
			resNodes = nodes[:1]
		}
		for _, n := range resNodes {
			locks = append(locks, opexec.Lock{Level: opexec.LevelNodeRes, Name: n, Mode: spec.nodeResMode})
		}
	}
	return locks, nil
}

func allNodeUUIDs(st *cluster.State) []string {
	var out []string
	for _, name := range st.Names("node") {
		if u, err := lookupState(st, "node", name, "uuid"); err == nil {
			out = append(out, u)
		}
	}
	return out
}

// findInstance finds an instance of the configuration being changed.
func findInstance(cfg *cluster.Config, name string) (*cluster.Instance, error) {
	i := findByName(cfg.Instances, name, func(i *cluster.Instance) string { return i.Name }, true)
	if i == nil {
		return nil, errs.NotFound("Instance", name)
	}
	return i, nil
}

// findNode finds a node by name, short name or UUID.
func findNode(cfg *cluster.Config, name string) (*cluster.Node, error) {
	n := findByName(cfg.Nodes, name, func(n *cluster.Node) string { return n.Name }, true)
	if n == nil {
		return nil, errs.NotFound("Node", name)
	}
	return n, nil
}

// editInstance returns the instance ready to be modified, with its serial
// number and mtime bumped (Ganeti's ConfigWriter.Update).
func editInstance(x *opexec.ExecContext, uuid string) *cluster.Instance {
	e := x.Config.EditInstance(uuid)
	e.SerialNo++
	e.MTime = x.Timestamp()
	return e
}

// Instance states (Ganeti's INSTANCE_ONLINE, INSTANCE_NOT_RUNNING).
var (
	stOnline     = []string{cluster.AdminUp, cluster.AdminDown}
	stNotRunning = []string{cluster.AdminDown, cluster.AdminOffline}
)

// checkInstanceState is Ganeti's CheckInstanceState.
func checkInstanceState(inst *cluster.Instance, states []string, msg string) error {
	if msg == "" {
		msg = "can't use instance from outside " + strings.Join(states, ", ") + " states"
	}
	if !slices.Contains(states, inst.AdminState) {
		return errs.Prereq(errs.CodeState, "Instance '%s' is marked to be %s, %s", inst.Name, inst.AdminState, msg)
	}
	if !slices.Contains(states, cluster.AdminUp) && inst.Running {
		return errs.Prereq(errs.CodeState, "Instance %s is running, %s", inst.Name, msg)
	}
	return nil
}

// checkNodeOnline is Ganeti's CheckNodeOnline.
func checkNodeOnline(n *cluster.Node, msg string) error {
	if msg == "" {
		msg = "Can't use offline node"
	}
	if n.Offline {
		return errs.Prereq(errs.CodeState, "%s: %s", msg, n.Name)
	}
	return nil
}

// checkFreeMemory is Ganeti's CheckNodeFreeMemory.
func checkFreeMemory(cfg *cluster.Config, node *cluster.Node, reason string, requested int64) error {
	free, _ := cfg.NodeFree(node.UUID)
	if requested > free {
		return errs.Prereq(errs.CodeNoRes, "Not enough memory on node %s for %s: needed %d MiB, available %d MiB",
			node.Name, reason, requested, free)
	}
	return nil
}

// checkFreeDisk is Ganeti's CheckNodesFreeDiskPerVG for the node-local
// disk templates (the file template is checked the same way here, since
// the simulated nodes account file storage too).
func checkFreeDisk(cfg *cluster.Config, template string, nodes []*cluster.Node, requested int64) error {
	if requested <= 0 {
		return nil
	}
	for _, n := range nodes {
		_, free := cfg.NodeFree(n.UUID)
		if requested <= free {
			continue
		}
		switch template {
		case "plain", "drbd":
			vg := "xenvg"
			if cfg.Cluster.VolumeGroupName != nil {
				vg = *cfg.Cluster.VolumeGroupName
			}
			return errs.Prereq(errs.CodeNoRes, "Not enough disk space on target node %s vg %s: required %d MiB, available %d MiB",
				n.Name, vg, requested, free)
		default:
			return errs.Prereq(errs.CodeNoRes, "Not enough disk space on target node %s: required %d MiB, available %d MiB",
				n.Name, requested, free)
		}
	}
	return nil
}

// startInstance marks an instance as running with its current parameters
// (override: temporary beparams of OP_INSTANCE_STARTUP).
func startInstance(cfg *cluster.Config, e *cluster.Instance, override cluster.Params) {
	be := cluster.FillParams(cfg.InstanceBEParams(e), override)
	e.Running = true
	e.DisksActive = true
	e.OperRAM, _ = be["maxmem"].(int64)
	e.OperVCPUs, _ = be["vcpus"].(int64)
}

func stopInstance(e *cluster.Instance) {
	e.Running = false
	e.OperRAM, e.OperVCPUs = 0, 0
}

// Parameters -----------------------------------------------------------------

// parseUnit is Ganeti's utils.ParseUnit: ^([.\d]+)\s*([a-zA-Z]+)?$ (Python's
// "$" also matches before a final newline), the number in MiB unless a
// unit says otherwise (m, mb, mib; g, gb, gib; t, tb, tib; any case),
// rounded up to an integer and then to a multiple of 4. A negative number
// or one written with an exponent does not match ("Invalid format"). The
// result must also be at most cluster.MaxSizeMiB (Python's ints are
// unbounded; the sizes here are int64 MiB, and sums of them must not
// overflow). Digits and spaces are ASCII and Unicode whitespace; Python
// would also take other Unicode decimal digits.
func parseUnit(s string) (int64, error) {
	s = strings.TrimSuffix(s, "\n")
	num := 0
	for num < len(s) && (s[num] == '.' || '0' <= s[num] && s[num] <= '9') {
		num++
	}
	if num == 0 {
		//lint:ignore ST1005 Ganeti's wire text
		return 0, errors.New("Invalid format")
	}
	rest := strings.TrimLeftFunc(s[num:], pyIsSpace)
	for i := 0; i < len(rest); i++ {
		if c := rest[i] | 0x20; c < 'a' || c > 'z' {
			//lint:ignore ST1005 Ganeti's wire text
			return 0, errors.New("Invalid format")
		}
	}
	value, err := strconv.ParseFloat(s[:num], 64)
	if err != nil {
		// Python's float() raises ValueError ("1.2.3", "."), which
		// ForceDictType does not catch; reported as a bad format here.
		//lint:ignore ST1005 Ganeti's wire text
		return 0, errors.New("Invalid format")
	}
	switch strings.ToLower(rest) {
	case "", "m", "mb", "mib":
	case "g", "gb", "gib":
		value *= 1024
	case "t", "tb", "tib":
		value *= 1024 * 1024
	default:
		//lint:ignore ST1005 Ganeti's wire text
		return 0, fmt.Errorf("Unknown unit: %s", rest)
	}
	value = math.Ceil(value)
	if value > cluster.MaxSizeMiB {
		//lint:ignore ST1005 Ganeti's wire text
		return 0, fmt.Errorf("Size too large (at most %d MiB)", int64(cluster.MaxSizeMiB))
	}
	r := int64(value)
	if rem := r % 4; rem != 0 {
		r += 4 - rem
	}
	return r, nil
}

// pyIsSpace is Python's str.isspace (Go's white space plus the
// information separators U+001C..U+001F).
func pyIsSpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

// sizeValue is ForceDictType's VTYPE_SIZE conversion: ParseUnit of
// Python's str() of the value. Numbers arrive as int64 when integral
// (jsonValue), float64 otherwise: a negative number, a bool or null, and a
// float Python writes with an exponent (below 1e-4 or from 1e16 up, such
// as 1e+30) have an invalid format.
func sizeValue(v any) (int64, error) {
	switch x := v.(type) {
	case string:
		return parseUnit(x)
	case int64:
		return parseUnit(strconv.FormatInt(x, 10))
	case float64:
		if math.IsNaN(x) || x < 0 || math.Signbit(x) || x >= 1e16 || (x != 0 && x < 1e-4) {
			//lint:ignore ST1005 Ganeti's wire text
			return 0, errors.New("Invalid format")
		}
		return parseUnit(strconv.FormatFloat(x, 'f', -1, 64))
	}
	//lint:ignore ST1005 Ganeti's wire text
	return 0, errors.New("Invalid format")
}

// intValue is ForceDictType's VTYPE_INT conversion, Python's int(): an
// integer, a float truncated toward zero, a bool as 0 or 1, a decimal
// string (surrounding white space allowed). Beyond Ganeti, the result
// must be in the int64 range.
func intValue(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case float64:
		t := math.Trunc(x)
		if math.IsNaN(t) || t < -(1<<63) || t >= 1<<63 {
			return 0, false
		}
		return int64(t), true
	case string:
		n, err := strconv.ParseInt(strings.TrimFunc(x, pyIsSpace), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// floatValue is ForceDictType's VTYPE_FLOAT conversion, Python's float(),
// except that NaN and infinities are refused.
func floatValue(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case int64:
		f = float64(x)
	case float64:
		f = x
	case bool:
		if x {
			f = 1
		}
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimFunc(x, pyIsSpace), 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

// sizeParams are the beparams of type "size".
var sizeParams = map[string]bool{"maxmem": true, "minmem": true, "memory": true}

// forceDictType is Ganeti's utils.ForceDictType: it converts a parameter
// dictionary to the types of defs (a default value per known key) and
// returns the converted copy. Keys are checked in sorted order, minmem
// before maxmem (as Ganeti reports a bad "memory"). A value that cannot be
// converted is a TypeEnforcementError with Ganeti's message; numbers out
// of the int64 range (or sizes above cluster.MaxSizeMiB) are refused too.
func forceDictType(p map[string]any, defs cluster.Params) (cluster.Params, error) {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a == "minmem" && b == "maxmem" {
			return true
		}
		if a == "maxmem" && b == "minmem" {
			return false
		}
		return a < b
	})
	out := cluster.Params{}
	for _, k := range keys {
		v := p[k]
		def, ok := defs[k]
		if !ok {
			return nil, typeError("Unknown parameter '%s'", k)
		}
		if v == nil && cluster.IsMaybeStringParam(k) {
			out[k] = nil
			continue
		}
		switch def.(type) {
		case bool:
			switch x := v.(type) {
			case bool:
				out[k] = x
			case string:
				switch strings.ToLower(x) {
				case "false", "no", "0", "":
					out[k] = false
				case "true", "yes", "1":
					out[k] = true
				default:
					return nil, typeError("'%s' (value %s) is not a valid boolean", k, x)
				}
			case int64:
				out[k] = x != 0
			default:
				return nil, typeError("'%s' (value %s) is not a valid boolean", k, pyStr(v))
			}
		case int64:
			if sizeParams[k] {
				n, err := sizeValue(v)
				if err != nil {
					return nil, typeError("'%s' (value %s) is not a valid size. error: %s", k, pyStr(v), err)
				}
				out[k] = n
				continue
			}
			n, ok := intValue(v)
			if !ok {
				return nil, typeError("'%s' (value %s) is not a valid integer", k, pyStr(v))
			}
			out[k] = n
		case float64:
			f, ok := floatValue(v)
			if !ok {
				return nil, typeError("'%s' (value %s) is not a valid float", k, pyStr(v))
			}
			out[k] = f
		default:
			switch x := v.(type) {
			case string:
				out[k] = x
			case nil:
				out[k] = ""
			default:
				return nil, typeError("'%s' (value %s) is not a valid string", k, pyStr(v))
			}
		}
	}
	return out, nil
}

// upgradeBEParams is Ganeti's UpgradeBeParams: "memory" sets both maxmem
// and minmem.
func upgradeBEParams(p map[string]any) map[string]any {
	if m, ok := p["memory"]; ok {
		out := map[string]any{}
		for k, v := range p {
			if k != "memory" {
				out[k] = v
			}
		}
		out["maxmem"], out["minmem"] = m, m
		return out
	}
	return p
}

// checkBEParams validates beparams (custom) and the filled result.
func checkBEParams(p map[string]any, filled func(cluster.Params) cluster.Params) (cluster.Params, error) {
	be, err := forceDictType(upgradeBEParams(p), cluster.BEParamTypes())
	if err != nil {
		return nil, err
	}
	full := filled(be)
	minmem, _ := full["minmem"].(int64)
	maxmem, _ := full["maxmem"].(int64)
	if minmem > maxmem {
		return nil, errs.Prereq(errs.CodeInval, "Minimum memory size (%d) must be less than or equal to maximum memory size (%d)", minmem, maxmem)
	}
	return be, nil
}

// checkHVParams validates instance-level hypervisor parameters: none may
// be global (Ganeti's CheckParamsNotGlobal), then forceHVTypes.
func checkHVParams(p map[string]any) (cluster.Params, error) {
	if err := checkHVGlobals(p); err != nil {
		return nil, err
	}
	return forceHVTypes(p)
}

// checkHVGlobals is Ganeti's CheckParamsNotGlobal for hypervisor
// parameters at instance level.
func checkHVGlobals(p map[string]any) error {
	_, global := cluster.HVParamTypes()
	var globals []string
	for k := range p {
		if global[k] {
			globals = append(globals, k)
		}
	}
	if len(globals) > 0 {
		sort.Strings(globals)
		return errs.Prereq(errs.CodeInval, "The following hypervisor parameters are global and cannot be customized at instance level, please modify them at cluster level: %s", strings.Join(globals, ", "))
	}
	return nil
}

// forceHVTypes is Ganeti's ForceDictType with HVS_PARAMETER_TYPES: the
// parameters of every hypervisor, with their types.
func forceHVTypes(p map[string]any) (cluster.Params, error) {
	types, _ := cluster.HVParamTypes()
	return forceDictType(p, types)
}

// checkHVSyntax is the first check of Ganeti's CheckParameterSyntax of
// hypervisor hv, on its filled parameters: each must be one that hv
// supports (its class's PARAMETERS), else HypervisorError "Parameter '<p>'
// is not supported". Parameters are checked in name order.
func checkHVSyntax(hv string, filled map[string]any) error {
	supported, ok := cluster.HypervisorParameters(hv)
	if !ok {
		return errs.Hypervisor("Unknown hypervisor '%s'", hv)
	}
	keys := make([]string, 0, len(filled))
	for k := range filled {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !supported[k] {
			return errs.Hypervisor("Parameter '%s' is not supported", k)
		}
	}
	return nil
}

// checkOSParams validates OS parameters: free-form, string values.
func checkOSParams(p map[string]any) cluster.Params {
	out := cluster.Params{}
	for k, v := range p {
		switch x := v.(type) {
		case string:
			out[k] = x
		case nil:
			out[k] = ""
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out
}

// checkOS is the OS check of instance creation and reinstall: the OS must
// exist on the node, and its variant must be valid.
func checkOS(cfg *cluster.Config, node *cluster.Node, name string, forceVariant bool) error {
	base, variant, hasVariant := strings.Cut(name, "+")
	os, ok := cfg.OSes[base]
	if !ok {
		return errs.Exec("OS Parameters validation failed on node %s: Directory for OS %s not found in search path", node.Name, base)
	}
	if forceVariant {
		return nil
	}
	if len(os.Variants) == 0 {
		if hasVariant {
			return errs.Prereq(errs.CodeInval, "OS '%s' doesn't support variants ('%s' passed)", base, variant)
		}
		return nil
	}
	if !hasVariant {
		return errs.Prereq(errs.CodeInval, "OS name '%s' must include a variant", name)
	}
	if !slices.Contains(os.Variants, variant) {
		return errs.Prereq(errs.CodeInval, "Unsupported OS variant")
	}
	return nil
}

// resolveName is the simulated resolver of name_check: every name
// resolves to itself except those of the reserved .invalid domain
// (RFC 6761), which fail as Ganeti's resolver does.
func resolveName(name string) error {
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	if n == "invalid" || strings.HasSuffix(n, ".invalid") {
		return errs.Prereq(errs.CodeResolver, "The given name (%s) does not resolve: Temporary failure in name resolution", name)
	}
	return nil
}

// ipolicyViolations is Ganeti's ComputeIPolicySpecViolation.
func ipolicyViolations(ipol cluster.Params, template string, mem, cpus, spindles int64, nics int, disks []int64) []string {
	type setting struct {
		name, qual string
		value      int64
	}
	tests := []setting{{"memory-size", "", mem}, {"cpu-count", "", cpus}, {"nic-count", "", int64(nics)}, {"spindle-use", "", spindles}}
	for i, d := range disks {
		tests = append(tests, setting{"disk-size", strconv.Itoa(i), d})
	}
	if template != "diskless" {
		tests = append(tests, setting{"disk-count", "", int64(len(disks))})
	}
	var ret []string
	if dts, ok := ipol["disk-templates"]; ok {
		allowed := toStrings(dts)
		if !slices.Contains(allowed, template) {
			ret = append(ret, fmt.Sprintf("Disk template %s is not allowed (allowed templates: %s)", template, strings.Join(allowed, ", ")))
		}
	}
	var minErrs []string
	first := true
	mm, _ := ipol["minmax"].([]any)
	for _, e := range mm {
		pair, _ := e.(map[string]any)
		lo, _ := pair["min"].(map[string]any)
		hi, _ := pair["max"].(map[string]any)
		var errsHere []string
		for _, t := range tests {
			minV, ok1 := toInt(lo[t.name])
			maxV, ok2 := toInt(hi[t.name])
			if !ok1 {
				minV = t.value
			}
			if !ok2 {
				maxV = t.value
			}
			if maxV < t.value || minV > t.value {
				fqn := t.name
				if t.qual != "" {
					fqn += "/" + t.qual
				}
				errsHere = append(errsHere, fmt.Sprintf("%s value %d is not in range [%d, %d]", fqn, t.value, minV, maxV))
			}
		}
		if first || len(errsHere) < len(minErrs) {
			minErrs, first = errsHere, false
		}
	}
	return append(ret, minErrs...)
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		// Truncated, as before; never beyond the int64 range.
		t := math.Trunc(x)
		if math.IsNaN(t) || t < -(1<<63) || t >= 1<<63 {
			return 0, false
		}
		return int64(t), true
	case int:
		return int64(x), true
	}
	return 0, false
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// checkIPolicy fails with Ganeti's message when the instance spec
// violates its group's policy.
func checkIPolicy(cfg *cluster.Config, group *cluster.Group, what string, template string, be cluster.Params, nics int, disks []int64) error {
	mem, _ := be["maxmem"].(int64)
	cpus, _ := be["vcpus"].(int64)
	spindles, _ := be["spindle_use"].(int64)
	res := ipolicyViolations(cfg.GroupIPolicy(group.UUID), template, mem, cpus, spindles, nics, disks)
	if len(res) == 0 {
		return nil
	}
	return errs.Prereq(errs.CodeInval, "%s to group %s (%s) violates policy: %s", what, group.UUID, group.Name, strings.Join(res, ", "))
}

// sizeString is Ganeti's utils.FormatUnit(mib, "h").
func sizeString(mib int64) string {
	switch {
	case mib < 1024:
		return fmt.Sprintf("%dM", mib)
	case mib < 1024*1024:
		return fmt.Sprintf("%.1fG", float64(mib)/1024)
	}
	return fmt.Sprintf("%.1fT", float64(mib)/1024/1024)
}
