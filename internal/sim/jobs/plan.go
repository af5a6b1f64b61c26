package jobs

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// The plan phase of an opcode that allocates nodes with an external
// iallocator (Ganeti's CheckPrereq, which runs the iallocator under the
// logical unit's locks; Nomad's scheduler, which plans on a snapshot and
// leaves the leader to re-check and apply). The allocator may run for up
// to iallocatorTimeout, so it must not run inside the committer's write
// transaction, where every other job's commit would wait behind it.
//
// With the opcode's locks held and outside any transaction, the engine
// runs the executor's Exec once on a private copy of the current snapshot
// (a read-only store view, no follow-up jobs, its logs and parameter
// writes discarded) and records the outcome of every allocator request it
// makes. Exec then runs in the transaction as before: each allocator call
// whose request (the "request" object of the IAllocator input) matches a
// recorded one gets the recorded outcome instead of running the
// allocator, and the executor checks the chosen nodes against the current
// configuration as it always does (resultNodes and the executor's own
// prerequisite checks), failing with Ganeti's errors. The job's locks
// (every node for an allocation) keep that configuration from changing
// under the plan. A request that was not planned (the executor took
// another path on the current configuration) fails the opcode with
// OpPrereqError instead of running the allocator inside the transaction.
// Every executor of internal/sim/lu that may run an iallocator is Phased
// (its Check phase plans in the same way: internal/sim/lu/phases.go); this
// generic plan phase is for the others.

// needsPlan tells whether opcode msg may run an external iallocator: it
// has an "iallocator" parameter naming one that is installed, or an empty
// one and the cluster's default iallocator is installed.
func (e *Engine) needsPlan(msg proto.Message, defaultIAllocator func() string) bool {
	m, fd := field(msg, "iallocator")
	if fd == nil || fd.Kind() != protoreflect.StringKind {
		return false
	}
	name := m.Get(fd).String()
	if name == "" || name == "." {
		name = defaultIAllocator()
	}
	return name != "" && e.cfg.IAllocator.Lookup(name) != ""
}

// plan runs the plan phase of opcode msg (see above) and returns the plan
// for x, nil when the opcode runs no external iallocator.
func (e *Engine) plan(ex opexec.Executor, x *opexec.ExecContext, msg proto.Message) *opexec.AllocPlan {
	st := e.model.State()
	if !e.needsPlan(msg, func() string { return st.Snapshot().Cluster.DefaultIAllocator }) {
		return nil
	}
	cfg := st.Config() // a private copy, only for an opcode that plans
	p := opexec.NewAllocPlan()
	px := &opexec.ExecContext{
		JobID: x.JobID, OpIndex: x.OpIndex, Config: cfg, State: st,
		Env: opexec.Env{
			Ctx: x.Env.Ctx, Now: x.Env.Now, Handoff: x.Env.Handoff,
			IAllocator: x.Env.IAllocator, Plan: p,
			Submit: func([]*rapiv2.OpCode) (int64, error) { return 0, nil },
		},
	}
	px.StartParams(x.Env.RunParams)
	px.Tx = planTx{x.Context(), e.st}
	_, _ = safeExec(e, ex, px, msg) // its outcome is the apply phase's to give
	p.Done()
	return p
}

// check runs the Check phase of a Phased executor on the current snapshot
// with a read-only view of the store (see opexec.Phased), outside any
// transaction, under the opcode's locks.
func (e *Engine) check(ph opexec.Phased, x *opexec.ExecContext, msg proto.Message) *opexec.Checked {
	c := opexec.NewCheckContext(x, e.model.State(), planTx{x.Context(), e.st})
	plan, err := safeCheck(e, ph, c, msg)
	return &opexec.Checked{Plan: plan, Err: err}
}

// safeCheck runs an executor's Check, turning a panic (a write to the
// read-only snapshot among them) into an error.
func safeCheck(e *Engine, ph opexec.Phased, c *opexec.CheckContext, msg proto.Message) (plan any, err error) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("executor panic in Check", "job", c.JobID, "opcode", c.OpIndex, "panic", p, "stack", string(debug.Stack()))
			plan, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return ph.Check(c, msg)
}

// planTx is the store as the plan phase sees it: each read in its own
// short read transaction (a read transaction held while the allocator
// runs would hold back the writers of some stores), writes refused.
type planTx struct {
	ctx context.Context
	st  store.Store
}

func (p planTx) Get(bucket, key string) (val []byte, err error) {
	verr := p.st.View(p.ctx, func(tx store.Tx) error {
		v, err := tx.Get(bucket, key)
		val = slices.Clone(v)
		return err
	})
	return val, verr
}

func (p planTx) ForEach(bucket string, fn func(key string, val []byte) error) error {
	type kv struct {
		k string
		v []byte
	}
	var all []kv
	if err := p.st.View(p.ctx, func(tx store.Tx) error {
		return tx.ForEach(bucket, func(k string, v []byte) error {
			all = append(all, kv{k, slices.Clone(v)})
			return nil
		})
	}); err != nil {
		return err
	}
	for _, e := range all {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// Revision is the store's revision when it is asked: each read is its own
// transaction.
func (p planTx) Revision() int64 {
	rev, _ := store.Rev(p.ctx, p.st)
	return rev
}

func (planTx) Put(string, string, []byte) error { return store.ErrReadOnly }
func (planTx) Delete(string, string) error      { return store.ErrReadOnly }
