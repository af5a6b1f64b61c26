// Package opexec is the contract between the job engine (internal/sim/jobs)
// and the logical units that implement the opcodes (internal/sim/lu): the
// Executor interface and its phases, the context an executor gets, the
// locks it declares, and the runner of external iallocators. Both sides
// import it; neither imports the other.
package opexec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Executor implements one opcode (Ganeti's logical unit).
type Executor interface {
	// Locks returns the locks the opcode needs, computed from the current
	// cluster state (Ganeti's ExpandNames). An error (e.g. an unknown
	// object) fails the opcode before any lock is taken. The engine adds
	// the Big Ganeti Lock (cluster/BGL) in shared mode unless the result
	// already names it.
	Locks(op proto.Message, st *cluster.State) ([]Lock, error)
	// Exec checks the opcode's prerequisites and applies its effect to
	// x.Config (Ganeti's CheckPrereq and Exec). It runs inside a
	// cluster.Model.Update, possibly together with other opcodes, so it
	// must be quick, must not block and must have no effect outside
	// x.Config, x.Tx and x.Log: on an error nothing of what it did is kept.
	// In dry-run mode (x.DryRun) it must only check the prerequisites and
	// return Ganeti's dry-run result; it then gets a private copy of the
	// configuration whose changes are discarded and a read-only Tx.
	//
	// An executor in the full logical-unit shape implements Phased: the
	// engine then runs its Check outside the transaction and its Apply
	// inside, and Exec only in dry-run mode.
	//
	// For the others, an opcode that may run an external iallocator (it has an
	// "iallocator" parameter) first runs Exec in a plan phase, outside any
	// transaction, in the same way (a private copy of the current
	// snapshot, a read-only Tx, its logs, parameter writes and follow-up
	// jobs discarded), to run the allocator there (plan.go); the Exec
	// inside the transaction then gets the planned allocator answers.
	//
	// The result must be a JSON-like value (nil, bool, int64, float64,
	// string, []any, map[string]any). An *errs.Error keeps its class,
	// message and code in the opcode result; any other error becomes
	// ["OpExecError", ["Unexpected error ..."]] (its text is only logged).
	Exec(x *ExecContext, op proto.Message) (result any, err error)
}

// ParamLocker is implemented by executors whose Locks phase writes opcode
// parameters back, as Ganeti's CheckArguments and ExpandNames do (a new
// instance's helper timeouts and primary node uuid, the cluster's default
// iallocator, ...): the engine calls LocksParams instead of Locks, and
// keeps the writes it returns also when it fails (they were made before the
// failing check).
type ParamLocker interface {
	LocksParams(op proto.Message, st *cluster.State) ([]Lock, []ParamWrite, error)
}

// FailKeeping makes an executor's error one after which the opcode's
// changes to x.Config are still committed, with the opcode failed: Ganeti's
// logical units that change the cluster before they fail (an export that
// shut its instance down and then cannot snapshot its disks leaves it
// down). Other errors discard every change.
func FailKeeping(err error) error {
	if err == nil {
		return nil
	}
	return &keptFailure{err: err}
}

// keptFailure is FailKeeping's error.
type keptFailure struct{ err error }

func (k *keptFailure) Error() string { return k.err.Error() }
func (k *keptFailure) Unwrap() error { return k.err }

// Kept reports whether err is (or wraps) a FailKeeping error, and returns
// the error FailKeeping was given.
func Kept(err error) (cause error, ok bool) {
	var kept *keptFailure
	if !errors.As(err, &kept) {
		return nil, false
	}
	return kept.err, true
}

// Runner is implemented by executors whose opcode takes time outside the
// configuration (the sleep of OP_TEST_DELAY, a simulated migration). Run is
// called with the opcode's locks held, before Exec, outside any store
// transaction: x.Config and x.Tx are nil and x.State is the current
// snapshot. x.Context() is canceled when the engine stops; Run should then
// return promptly (the job is left "running" and ends as an unclean
// shutdown on the next start). Run is not called in dry-run mode.
type Runner interface {
	Run(x *ExecContext, op proto.Message) error
}

// ExecContext is what an executor gets for one opcode.
type ExecContext struct {
	// JobID and OpIndex identify the opcode.
	JobID   int64
	OpIndex int
	// DryRun is the opcode's dry_run parameter.
	DryRun bool
	// Config is the configuration to change (nil in Run). Existing objects
	// must be changed through Config.EditNode and friends.
	Config *cluster.Config
	// Tx is the store transaction the change commits in (nil in Run).
	Tx store.Tx
	// State is the snapshot of the cluster before this batch of changes:
	// read-only, and possibly older than Config.
	State *cluster.State
	// Env is the engine's side of the context: set by the engine, read
	// by executors only through the methods of ExecContext.
	Env Env

	params []ParamWrite // written back in this phase (SetParam)
}

// Env is what the engine gives an opcode's phases besides the
// configuration.
type Env struct {
	Ctx context.Context
	Now time.Time
	// Logf adds an entry to the opcode's log.
	Logf func(logType string, msg any)
	// Submit submits a follow-up job (Exec only).
	Submit func(ops []*rapiv2.OpCode) (int64, error)
	// Handoff is what Run leaves for the Exec of the same opcode (Exec
	// may run more than once: it reads it, never consumes it).
	Handoff any
	// RunParams are the parameters Run wrote back, which every Exec run
	// starts from.
	RunParams []ParamWrite
	// IAllocator runs external iallocators (nil: SubprocessIAllocators).
	IAllocator IAllocatorRunner
	// Plan holds the allocator outcomes of the opcode's plan phase.
	Plan *AllocPlan
	// Checked is the outcome of a Phased executor's Check phase, which
	// the engine gives to Apply (nil: no Check phase ran).
	Checked *Checked
	// OnDone holds what the current run of Exec does once its outcome is
	// final (AfterCommit): the engine resets it before each run of Exec
	// and calls it after the transaction that commits that run.
	OnDone []func()
}

// AfterCommit runs f once the opcode's outcome is final: at once outside a
// transaction (Run), else after the transaction of this run of Exec, and
// never for a run the store discarded (Exec may run more than once, as a
// store's update function may).
func (x *ExecContext) AfterCommit(f func()) {
	if x.Tx == nil {
		f()
		return
	}
	x.Env.OnDone = append(x.Env.OnDone, f)
}

// Checked is the outcome of a Check phase.
type Checked struct {
	Plan any
	Err  error
}

// IAllocator is the runner of external iallocators.
func (x *ExecContext) IAllocator() IAllocatorRunner {
	if x.Env.IAllocator == nil {
		return SubprocessIAllocators{}
	}
	return x.Env.IAllocator
}

// Plan is the opcode's allocator plan (nil when it has no plan phase).
func (x *ExecContext) Plan() *AllocPlan { return x.Env.Plan }

// Handoff is what the opcode's Run phase left for Exec (SetHandoff).
func (x *ExecContext) Handoff() any { return x.Env.Handoff }

// SetHandoff leaves v for the Exec of the same opcode (in Run).
func (x *ExecContext) SetHandoff(v any) { x.Env.Handoff = v }

// RunFilter is implemented by Runners whose Run phase only some of their
// opcodes need (a remote export, not a local one): for the others the
// engine skips Run and the durable "running" mark before it.
type RunFilter interface {
	NeedsRun(op proto.Message) bool
}

// RunnerFor returns ex as the Runner of op, or nil.
func RunnerFor(ex Executor, op proto.Message) Runner {
	rn, ok := ex.(Runner)
	if !ok {
		return nil
	}
	if f, ok := ex.(RunFilter); ok && !f.NeedsRun(op) {
		return nil
	}
	return rn
}

// Context is canceled when the engine stops.
func (x *ExecContext) Context() context.Context {
	if x.Env.Ctx == nil {
		return context.Background()
	}
	return x.Env.Ctx
}

// Now is the engine clock's reading when the opcode's phase started.
func (x *ExecContext) Now() time.Time { return x.Env.Now }

// Timestamp is Now as a Ganeti timestamp (seconds with microseconds), for
// ctime and mtime.
func (x *ExecContext) Timestamp() float64 { return float64(x.Env.Now.UnixMicro()) / 1e6 }

// Log adds an entry of type "message" to the opcode's log (Ganeti's
// feedback_fn).
func (x *ExecContext) Log(msg string) { x.LogEntry(LogMessage, msg) }

// LogEntry adds an entry of any of Ganeti's log types (job_log_types).
func (x *ExecContext) LogEntry(logType string, msg any) {
	if x.Env.Logf != nil {
		x.Env.Logf(logType, msg)
	}
}

// LogInfo logs " - INFO: <message>", as Ganeti's LogInfo.
func (x *ExecContext) LogInfo(format string, args ...any) {
	x.Log(" - INFO: " + fmt.Sprintf(format, args...))
}

// LogWarning logs " - WARNING: <message>", as Ganeti's LogWarning.
func (x *ExecContext) LogWarning(format string, args ...any) {
	x.Log(" - WARNING: " + fmt.Sprintf(format, args...))
}

// Log types (constants.json job_log_types).
const (
	LogMessage      = "message"
	LogMessageList  = "message-list"
	LogRemoteImport = "remote-import"
	LogDelayTest    = "delay-test"
	LogJqueueTest   = "jqueue-test"
)

// Level is a lock level. Levels are acquired in this order (Ganeti 3.0's
// lock order, src/Ganeti/Locking/Locks.hs).
type Level int

// The lock levels.
const (
	LevelCluster Level = iota
	LevelInstance
	LevelNodeGroup
	LevelNode
	LevelNodeRes
	LevelNetwork
)

var levelNames = [...]string{"cluster", "instance", "nodegroup", "node", "node-res", "network"}

// String returns Ganeti's name of the level.
func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("level%d", int(l))
	}
	return levelNames[l]
}

// Mode is a lock mode.
type Mode int

// Lock modes.
const (
	Shared Mode = iota
	Exclusive
)

// String returns Ganeti's name of the mode.
func (m Mode) String() string {
	if m == Exclusive {
		return "exclusive"
	}
	return "shared"
}

// Lock is one lock an opcode needs. Name is the instance name, or the UUID
// of the node, node group or network; at the cluster level it is "BGL".
type Lock struct {
	Level Level
	Name  string
	Mode  Mode
}

// BGL is the Big Ganeti Lock's name at the cluster level.
const BGL = "BGL"

// FullName is the lock's name as Ganeti's lock manager shows it, e.g.
// "instance/inst1.example.com" or "cluster/BGL".
func (l Lock) FullName() string { return l.Level.String() + "/" + l.Name }
