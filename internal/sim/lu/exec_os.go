package lu

import (
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// OsDiagnose implements OP_OS_DIAGNOSE: the OS definitions, one row of
// the requested output fields per OS. On the simulated cluster every OS is
// present and valid on every node.
type OsDiagnose struct{}

// osDiagnoseFields are the fields OP_OS_DIAGNOSE can output.
var osDiagnoseFields = map[string]bool{
	"name": true, "valid": true, "variants": true, "api_versions": true, "parameters": true,
	"node_status": true, "hidden": true, "blacklisted": true, "os_hvp": true, "osparams": true, "trusted": true,
}

// Locks implements Executor: OP_OS_DIAGNOSE only reads.
func (OsDiagnose) Locks(proto.Message, *cluster.State) ([]opexec.Lock, error) { return nil, nil }

// Exec implements Executor: opexec.CheckApply.
func (e OsDiagnose) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e OsDiagnose) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e OsDiagnose) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (OsDiagnose) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpOsDiagnose)
	if !ok {
		return nil, obUnexpected(op)
	}
	var unknown []string
	for _, f := range m.GetOutputFields() {
		if !osDiagnoseFields[f] {
			unknown = append(unknown, f)
		}
	}
	if len(unknown) > 0 {
		return nil, errs.Prereq(errs.CodeInval, "Unknown output fields selected: %s", strings.Join(unknown, ","))
	}
	names := make([]string, 0, len(x.Config.OSes))
	for name := range x.Config.OSes {
		if len(m.GetNames()) == 0 || slices.Contains(m.GetNames(), name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	cl := x.Config.Cluster
	rows := make([]any, 0, len(names))
	for _, name := range names {
		os := x.Config.OSes[name]
		row := make([]any, 0, len(m.GetOutputFields()))
		for _, f := range m.GetOutputFields() {
			row = append(row, osField(os, f, cl.HiddenOS, cl.BlacklistedOS))
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func osField(os *cluster.OS, field string, hidden, blacklisted []string) any {
	switch field {
	case "name":
		return os.Name
	case "valid", "trusted":
		return true
	case "variants":
		out := make([]any, 0, len(os.Variants))
		for _, v := range os.Variants {
			out = append(out, v)
		}
		return out
	case "api_versions":
		return []any{int64(20)}
	case "parameters":
		return []any{}
	case "hidden":
		return slices.Contains(hidden, os.Name)
	case "blacklisted":
		return slices.Contains(blacklisted, os.Name)
	}
	return map[string]any{} // node_status, os_hvp, osparams
}
