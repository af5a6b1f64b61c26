package opexec

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Phased is an executor in the full shape of Ganeti's logical units
// (lib/cmdlib/base.py: ExpandNames and DeclareLocks, CheckPrereq, Exec),
// split as Nomad splits a scheduler's plan from its application:
//
//  1. Locks declares the locks (Executor.Locks), before anything runs;
//  2. Check runs the prerequisite checks and the planning under those
//     locks on a read-only snapshot, outside any store transaction: the
//     allocator (built-in, or an external one such as hail, which may run
//     for up to IAllocatorTimeout) runs here. Its result is the plan;
//  3. Apply applies the plan inside the write transaction. It must be
//     pure: no I/O, no external process, no sleep, no effect outside
//     x.Config, x.Tx and x's logs, parameter writes and follow-up jobs.
//     The store may run it more than once (store.Store: an update
//     function may be retried), so its outcome must be a function of the
//     transaction's contents and the plan.
//
// The locks keep what Check read from changing before Apply runs; Apply
// still fails cleanly (with Ganeti's error) when the configuration it gets
// does not take the plan. A Check error fails the opcode as an Exec error
// does, and commits nothing.
//
// A Phased executor's Exec (the Executor interface, which the engine uses
// in dry-run mode) is CheckApply.
type Phased interface {
	Executor
	Check(c *CheckContext, op proto.Message) (plan any, err error)
	Apply(x *ExecContext, op proto.Message, plan any) (result any, err error)
}

// CheckContext is what the Check phase gets: nothing it can write to.
type CheckContext struct {
	JobID   int64
	OpIndex int
	DryRun  bool
	// Snapshot is the configuration under the opcode's locks, read-only
	// (cluster.State.Snapshot: its Edit methods refuse).
	Snapshot *cluster.Config
	// State is the same snapshot, for queries.
	State *cluster.State
	// Tx reads the store; its writes fail with store.ErrReadOnly.
	Tx store.Tx

	ctx        context.Context
	now        time.Time
	iallocator IAllocatorRunner
	handoff    any
	runParams  []ParamWrite
}

// NewCheckContext returns the check context of the opcode x is the
// execution context of, on the snapshot st with the read-only store view
// tx.
func NewCheckContext(x *ExecContext, st *cluster.State, tx store.Tx) *CheckContext {
	return &CheckContext{
		JobID: x.JobID, OpIndex: x.OpIndex, DryRun: x.DryRun,
		Snapshot: st.Snapshot(), State: st, Tx: tx,
		ctx: x.Env.Ctx, now: x.Env.Now, iallocator: x.Env.IAllocator,
		handoff: x.Env.Handoff, runParams: x.Env.RunParams,
	}
}

// Scratch returns an execution context on cfg, a private copy of the
// snapshot, for a Check that plans by running its apply code there: the
// store view stays read-only, and the logs, parameter writes and follow-up
// jobs of the run are discarded. plan records the allocator's answers.
func (c *CheckContext) Scratch(cfg *cluster.Config, plan *AllocPlan) *ExecContext {
	x := &ExecContext{
		JobID: c.JobID, OpIndex: c.OpIndex, DryRun: c.DryRun, Config: cfg, State: c.State, Tx: c.Tx,
		Env: Env{
			Ctx: c.ctx, Now: c.now, IAllocator: c.iallocator, Plan: plan, Handoff: c.handoff,
			Submit: func([]*rapiv2.OpCode) (int64, error) { return 0, nil },
		},
	}
	x.StartParams(c.runParams)
	return x
}

// Context is canceled when the engine stops.
func (c *CheckContext) Context() context.Context {
	if c.ctx == nil {
		return context.Background()
	}
	return c.ctx
}

// Now is the engine clock's reading when the opcode started.
func (c *CheckContext) Now() time.Time { return c.now }

// IAllocator is the runner of external iallocators.
func (c *CheckContext) IAllocator() IAllocatorRunner {
	if c.iallocator == nil {
		return SubprocessIAllocators{}
	}
	return c.iallocator
}

// CheckApply runs both phases of p in x, Check on x's own state: the Exec
// of a Phased executor (dry-run mode, tests).
func CheckApply(p Phased, x *ExecContext, op proto.Message) (any, error) {
	st := x.State
	var snap *cluster.Config
	if x.Config != nil {
		snap = x.Config
	}
	c := &CheckContext{JobID: x.JobID, OpIndex: x.OpIndex, DryRun: x.DryRun, Snapshot: snap, State: st,
		Tx: readOnlyTx{x.Tx}, ctx: x.Env.Ctx, now: x.Env.Now, iallocator: x.Env.IAllocator,
		handoff: x.Env.Handoff, runParams: x.Params()}
	plan, err := p.Check(c, op)
	if err != nil {
		return nil, CheckFailed(x, err)
	}
	return p.Apply(x, op, plan)
}

// LogRecord is one entry of an opcode's log (ExecContext.LogEntry).
type LogRecord struct {
	Type string
	Msg  any
}

// checkFailure is a Check error with what the checks logged and wrote
// back before they failed (FailCheck).
type checkFailure struct {
	err    error
	logs   []LogRecord
	params []ParamWrite
}

func (f *checkFailure) Error() string { return f.err.Error() }
func (f *checkFailure) Unwrap() error { return f.err }

// FailCheck is the error of a Check that fails after Ganeti's logical
// unit would have written feedback (logs) or opcode parameters (params,
// the whole list as ExecContext.Params gives it): a Check has no log of
// its own, so the engine writes them into the opcode's log and parameters
// when it fails the opcode with err (CheckFailed), as it keeps those of an
// Exec that fails.
func FailCheck(err error, logs []LogRecord, params []ParamWrite) error {
	if err == nil || (len(logs) == 0 && params == nil) {
		return err
	}
	return &checkFailure{err: err, logs: logs, params: params}
}

// CheckFailed is the error that fails the opcode of x for a Check error
// err: the logs and parameters FailCheck kept are written to x (the
// context the failure commits from), and the error FailCheck was given is
// returned.
func CheckFailed(x *ExecContext, err error) error {
	f, ok := err.(*checkFailure)
	if !ok {
		return err
	}
	for _, l := range f.logs {
		x.LogEntry(l.Type, l.Msg)
	}
	if f.params != nil {
		x.StartParams(f.params)
	}
	return f.err
}

// readOnlyTx is a transaction whose writes are refused.
type readOnlyTx struct{ store.Tx }

func (readOnlyTx) Put(string, string, []byte) error { return store.ErrReadOnly }
func (readOnlyTx) Delete(string, string) error      { return store.ErrReadOnly }
