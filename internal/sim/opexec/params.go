package opexec

import (
	"slices"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// ParamWrite is one opcode parameter written back (ExecContext.SetParam):
// its legacy key and JSON value (nil unsets it).
type ParamWrite struct {
	Name  string
	Value any
}

// SetParam writes a parameter of the opcode back into the job, as Ganeti's
// logical units assign self.op.<name>: value is the parameter's legacy JSON
// value (nil: None, the parameter is unset). The job record shows it once
// the opcode's outcome (success or error) is committed; a dry run keeps it
// too.
func (x *ExecContext) SetParam(name string, value any) {
	x.params = append(x.params, ParamWrite{Name: name, Value: value})
}

// Params are the parameters written back in this phase, in order.
func (x *ExecContext) Params() []ParamWrite { return x.params }

// StartParams makes the phase start from the writes of an earlier phase
// (a copy of them): every run of Exec starts from what Run wrote.
func (x *ExecContext) StartParams(writes []ParamWrite) { x.params = slices.Clone(writes) }

// SubmitFollowUp submits a job of ops on behalf of the running opcode and
// returns its id (the engine's follow-up jobs). It may only be called from
// Exec, not in dry-run mode nor from Run.
func (x *ExecContext) SubmitFollowUp(ops []*rapiv2.OpCode) (int64, error) {
	if x.Env.Submit == nil {
		return 0, errs.Exec("Follow-up jobs can only be submitted by an opcode that executes")
	}
	return x.Env.Submit(ops)
}

// FollowUpResult is Ganeti's "jobs" value of a result with jobs: [[true,
// job_id], ...].
func FollowUpResult(ids []int64) []any {
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, []any{true, id})
	}
	return out
}
