package lu

import (
	"google.golang.org/protobuf/proto"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// The LU phases (opexec.Phased) of the executors whose prerequisite
// checks and effect are one function, their body (Ganeti's CheckPrereq
// and Exec after ExpandNames): most of them. They share this shape:
//
//   - Check runs body on a private copy of the snapshot
//     (CheckContext.Scratch), under the opcode's locks and outside the
//     write transaction, with a recording allocator plan: every
//     prerequisite check runs there, and so does every allocator request
//     (an external iallocator such as hail included) and every new
//     object's UUID (ExecContext.NewUUID), which the plan records. The
//     copy, follow-up jobs and AfterCommit hooks of that run are
//     discarded. A failed check fails the opcode with the log entries and
//     parameter writes made before it (opexec.FailCheck), as Ganeti's
//     feedback before the failure; a FailKeeping error is Apply's to give,
//     with its changes.
//   - Apply runs body again on the configuration being changed, with the
//     plan replaying (applyPlan): the same checks, now on the
//     transaction's contents, fail cleanly with Ganeti's errors when that
//     configuration no longer takes the plan; allocator answers and UUIDs
//     come from the plan, and an allocator request the plan lacks fails
//     (runIAllocatorFor) instead of running an allocator. So Apply does no
//     I/O and its outcome is a function of the transaction and the plan,
//     however often the store runs it.
//
// body must keep to Exec's contract (no effect outside x.Config, x.Tx and
// x's logs, parameters, follow-up jobs and AfterCommit hooks).

// luBody is an executor's body: its prerequisite checks and its effect.
type luBody func(x *opexec.ExecContext, op proto.Message) (any, error)

// checkOnSnapshot is the Check phase of an executor in this shape: body on
// a private copy of the snapshot; the plan is the recorded allocator
// answers and UUIDs.
func checkOnSnapshot(c *opexec.CheckContext, op proto.Message, body luBody) (any, error) {
	p := opexec.NewAllocPlan()
	x := c.Scratch(c.State.Config(), p)
	var logs []opexec.LogRecord
	x.Env.Logf = func(logType string, msg any) {
		logs = append(logs, opexec.LogRecord{Type: logType, Msg: msg})
	}
	_, err := body(x, op)
	p.Done()
	if _, kept := opexec.Kept(err); err != nil && !kept {
		return nil, opexec.FailCheck(err, logs, x.Params())
	}
	return p, nil
}

// applyPlan is the Apply phase of an executor in this shape: body on the
// configuration being changed, replaying plan from its start.
func applyPlan(x *opexec.ExecContext, op proto.Message, plan any, body luBody) (any, error) {
	p, _ := plan.(*opexec.AllocPlan)
	if p == nil {
		p = opexec.NewAllocPlan() // no Check ran: an empty plan, replaying
		p.Done()
	}
	saved := x.Env.Plan
	x.Env.Plan = p.Rewound()
	defer func() { x.Env.Plan = saved }()
	return body(x, op)
}
