package jobs

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// jobHeap orders runnable jobs: those holding their locks first (they are
// ready to run), then by priority (lower first), then by id.
type jobHeap []*job

func (h jobHeap) Len() int { return len(h) }

func (h jobHeap) Less(a, b int) bool {
	x, y := h[a], h[b]
	if x.holds != y.holds {
		return x.holds
	}
	if px, py := x.rec.priority(), y.rec.priority(); px != py {
		return px < py
	}
	return x.rec.ID < y.rec.ID
}

func (h jobHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].heapIdx = a
	h[b].heapIdx = b
}

func (h *jobHeap) Push(x any) {
	j := x.(*job)
	j.heapIdx = len(*h)
	*h = append(*h, j)
}

func (h *jobHeap) Pop() any {
	old := *h
	n := len(old)
	j := old[n-1]
	old[n-1] = nil
	j.heapIdx = -1
	*h = old[:n-1]
	return j
}

func (e *Engine) worker() {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		for len(e.runq) == 0 && !e.stopping {
			e.cond.Wait()
		}
		if e.stopping {
			e.mu.Unlock()
			return
		}
		j := heap.Pop(&e.runq).(*job)
		e.mu.Unlock()
		e.step(j)
	}
}

// Results of a dependency check (Ganeti's _JobDependencyManager).
type depResult int

const (
	depContinue depResult = iota
	depWait
	depCancel
	depError
)

// checkDep checks one dependency of j (mu held).
func (e *Engine) checkDep(j *job, d dependency) (depResult, string) {
	if d.JobID == j.rec.ID {
		return depError, "Job can't depend on itself"
	}
	var status string
	if dj := e.jobs[d.JobID]; dj != nil {
		if dj.pending {
			return depWait, ""
		}
		status = dj.shown.Status // a dependency counts once committed
	} else {
		r, err := loadArchived(context.Background(), e.st, d.JobID)
		if err != nil {
			e.log.Error("reading an archived job failed", "job", d.JobID, "err", err)
			return depError, fmt.Sprintf("Dependency error: Job %d cannot be read", d.JobID)
		}
		if r == nil {
			return depError, fmt.Sprintf("Dependency error: Job %d not found", d.JobID)
		}
		status = r.status()
	}
	switch {
	case !Finalized(status):
		return depWait, ""
	case status == StatusCanceled && !slices.Contains(d.Statuses, StatusCanceled):
		return depCancel, fmt.Sprintf("Dependency job %d was cancelled", d.JobID)
	case len(d.Statuses) == 0 || slices.Contains(d.Statuses, status):
		return depContinue, ""
	}
	return depError, fmt.Sprintf("Dependency job %d finished with status '%s', not one of '%s' as required",
		d.JobID, status, strings.Join(d.Statuses, ", "))
}

// step advances j by one opcode: dependencies, locks, execution.
func (e *Engine) step(j *job) {
	e.mu.Lock()
	r := j.rec
	i := r.current()
	if i >= len(r.OpStatus) || Finalized(r.status()) {
		e.mu.Unlock()
		return
	}
	if !j.holds {
		if r.Start == nil && !e.admit(j) { // job filter rules (filters.go)
			e.mu.Unlock()
			return
		}
		e.startJobTrace(j)
		if !e.prepare(j, i) {
			e.mu.Unlock()
			return
		}
	}
	// j holds the opcode's locks.
	j.holds = false
	now := e.now()
	r.OpStatus[i] = StatusRunning
	r.OpExec[i] = &now
	if r.OpStart[i] == nil {
		r.OpStart[i] = &now
	}
	if r.Start == nil {
		r.Start = &now
	}
	e.changed(j)
	opCtx := e.opContext(j)
	e.mu.Unlock()

	ex := e.cfg.Executors[j.ids[i]]
	x := &opexec.ExecContext{JobID: r.ID, OpIndex: i, DryRun: j.dry[i],
		Env: opexec.Env{Ctx: opCtx, Now: now.Time(), IAllocator: e.cfg.IAllocator}}
	if j.dry[i] {
		e.dryRun(j, i, ex, x)
		e.next(j)
		return
	}
	if rn := opexec.RunnerFor(ex, j.msgs[i]); rn != nil {
		// The opcode acts outside the store: "running" is made durable
		// first, so that a crash during Run ends the job in error.
		if err := <-e.com.write(r.ID); err != nil {
			e.abandonOrFail(j, i, err)
			return
		}
		x.State = e.model.State()
		x.Env.Logf = func(logType string, msg any) {
			e.mu.Lock()
			j.rec.appendLog(i, e.now(), logType, msg)
			e.changed(j)
			e.persist(j)
			e.mu.Unlock()
		}
		err := safeRun(e, rn, x, j.msgs[i])
		x.Env.Logf = nil
		if err != nil {
			if e.runCtx.Err() != nil {
				e.abandon(j)
				return
			}
			e.failOp(j, i, err, x.Params())
			e.next(j)
			return
		}
		x.Env.RunParams = x.Params()
	}
	// The plan phase of an opcode that may run an external iallocator: it
	// runs here, under the locks and outside the write transaction
	// (plan.go). It acts on nothing: a crash during it leaves the job as a
	// crash before the commit below does.
	// A Phased executor's Check phase (checks and planning, the
	// allocator included) runs here in the same way, on a read-only
	// snapshot; other executors that may run an external iallocator get
	// the generic plan phase.
	if ph, ok := ex.(opexec.Phased); ok {
		x.Env.Checked = e.check(ph, x, j.msgs[i])
		if e.runCtx.Err() != nil {
			e.abandon(j)
			return
		}
	} else if x.Env.Plan = e.plan(ex, x, j.msgs[i]); x.Env.Plan != nil && e.runCtx.Err() != nil {
		e.abandon(j)
		return
	}
	// Without a Run phase, "running" commits with the opcode's outcome: a
	// crash before leaves the job queued, and nothing happened. The
	// committer continues the job (execDone); this worker is free.
	if !e.com.exec(&execItem{j: j, idx: i, ex: ex, msg: j.msgs[i], x: x}) {
		e.abandon(j)
	}
}

// prepare starts opcode i of j: waits for its dependencies and requests
// its locks. It returns true when j holds the locks (mu held throughout,
// but released while the executor computes the locks).
func (e *Engine) prepare(j *job, i int) bool {
	r := j.rec
	now := e.now()
	if r.OpStatus[i] == StatusQueued {
		r.OpStatus[i] = StatusWaiting
		r.OpStart[i] = &now
		if r.Start == nil {
			r.Start = &now
		}
		j.depPos = 0
		e.setDebugLevel(j, i)
		e.startOpTrace(j, i)
		e.changed(j)
	}
	for j.depPos < len(r.Deps[i]) {
		d := r.Deps[i][j.depPos]
		res, msg := e.checkDep(j, d)
		switch res {
		case depContinue:
			j.depPos++
			continue
		case depWait:
			e.depWaiters[d.JobID] = append(e.depWaiters[d.JobID], j)
			e.persist(j)
			return false
		case depCancel:
			r.finishUnfinished(StatusCanceled, msgCanceled, now)
		case depError:
			r.fail(i, errorResult(classExec, msg, ""), now)
		}
		e.ended(j)
		e.changed(j)
		e.persist(j)
		return false
	}
	ex := e.cfg.Executors[j.ids[i]]
	var locks []opexec.Lock
	var err error
	if ex == nil {
		err = errs.Exec("Opcode %s is not implemented", j.ids[i])
	} else {
		e.mu.Unlock()
		st := e.model.State()
		msg := j.msgs[i]
		var writes []opexec.ParamWrite
		locks, writes, err = safeLocks(e, ex, msg, st)
		if err == nil {
			writes = append(writes, expandNames(msg, st)...)
		}
		e.mu.Lock()
		if Finalized(r.status()) { // canceled meanwhile
			return false
		}
		e.writeParams(j, i, writes)
	}
	if err != nil {
		r.fail(i, e.encodeError(r.ID, i, err), e.now())
		e.ended(j)
		e.changed(j)
		e.persist(j)
		return false
	}
	if !slices.ContainsFunc(locks, func(l opexec.Lock) bool { return l.Level == opexec.LevelCluster && l.Name == opexec.BGL }) {
		locks = append(locks, opexec.Lock{Level: opexec.LevelCluster, Name: opexec.BGL, Mode: opexec.Shared})
	}
	j.req = e.locks.newReq(r.ID, r.priority(), locks)
	if e.locks.acquire(j.req) {
		e.lockAcquired(j, false)
		return true
	}
	e.lockWaitStart(j)
	e.persist(j)
	return false
}

// next releases j's locks after an opcode and queues j for its next one.
func (e *Engine) next(j *job) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropLocks(j)
	j.depPos = 0
	if !Finalized(j.rec.status()) {
		if e.stopping {
			return // stays queued in the store
		}
		e.enqueue(j)
	}
}

// abandon leaves j as it is in the store (the engine is stopping or
// crashed) and releases its locks.
func (e *Engine) abandon(j *job) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dropLocks(j)
}

// abandonOrFail handles a failure to persist the "running" mark.
func (e *Engine) abandonOrFail(j *job, i int, err error) {
	if errors.Is(err, errCrashed) || errors.Is(err, errStopped) || errors.Is(err, errFailed) {
		e.abandon(j)
		return
	}
	e.failOp(j, i, fmt.Errorf("persist: %w", err), nil)
	e.next(j)
}

// failOp ends opcode i of j with err, and the job, keeping the parameters
// the opcode wrote back (mu not held).
func (e *Engine) failOp(j *job, i int, err error, writes []opexec.ParamWrite) {
	res := e.encodeError(j.rec.ID, i, err)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writeParams(j, i, writes)
	j.rec.fail(i, res, e.now())
	e.ended(j)
	e.changed(j)
	e.persist(j)
}

// execDone applies an executed opcode's outcome and continues the job
// (called by the committer).
func (e *Engine) execDone(it *execItem) {
	for _, f := range it.x.Env.OnDone {
		f()
	}
	it.x.Env.OnDone = nil
	e.applyOutcome(it)
	e.next(it.j)
}

func (e *Engine) applyOutcome(it *execItem) {
	if it.err == nil && it.rec != nil {
		e.mu.Lock()
		if it.op != nil { // the parameters it wrote back, in it.rec already
			it.j.ops = slices.Clone(it.j.ops)
			it.j.ops[it.idx] = it.op
			it.j.msgs = slices.Clone(it.j.msgs)
			it.j.msgs[it.idx] = opMember(it.op)
		}
		e.publish(it.j, it.rec, it.j.ops) // committed with the opcode's effect
		it.j.rec = it.rec
		e.addFollowUps(it.follow)
		if Finalized(it.rec.status()) {
			e.ended(it.j)
		}
		e.changed(it.j)
		e.mu.Unlock()
		return
	}
	err := it.err
	if err == nil {
		err = errors.New("no outcome")
	}
	res := e.encodeError(it.j.rec.ID, it.idx, err)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writeParams(it.j, it.idx, it.x.Params())
	r := it.j.rec
	for _, l := range it.logs {
		r.appendLog(it.idx, l.at, l.logType, l.msg)
	}
	r.fail(it.idx, res, e.now())
	e.ended(it.j)
	e.changed(it.j)
	e.persist(it.j)
}

// dryRun runs opcode i in dry-run mode: Exec on a private copy of the
// configuration, in a read-only transaction; the result is Ganeti's
// dry-run result and the log says so.
func (e *Engine) dryRun(j *job, i int, ex opexec.Executor, x *opexec.ExecContext) {
	st := e.model.State()
	var logs []pendingLog
	x.State, x.Config = st, st.Config()
	x.Env.Logf = func(logType string, msg any) {
		logs = append(logs, pendingLog{at: e.now(), logType: logType, msg: msg})
	}
	var res any
	var err error
	verr := e.st.View(x.Context(), func(tx store.Tx) error {
		x.Tx = tx
		res, err = safeExec(e, ex, x, j.msgs[i])
		return nil
	})
	x.Config, x.Tx, x.Env.Logf = nil, nil, nil
	if err == nil {
		err = verr
	}
	var fail []any
	if err != nil {
		fail = e.encodeError(j.rec.ID, i, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writeParams(j, i, x.Params())
	r := j.rec
	for _, l := range logs {
		r.appendLog(i, l.at, l.logType, l.msg)
	}
	now := e.now()
	if fail != nil {
		r.fail(i, fail, now)
	} else {
		r.appendLog(i, now, opexec.LogMessage, " - INFO: dry-run mode requested, not actually executing the operation")
		r.OpStatus[i] = StatusSuccess
		r.OpResult[i] = res
		r.OpEnd[i] = &now
		if r.current() == len(r.OpStatus) {
			r.End = &now
		}
	}
	if Finalized(r.status()) {
		e.ended(j)
	}
	e.changed(j)
	e.persist(j)
}

// setDebugLevel gives an opcode that has no debug_level the default 0 when
// it starts, as Ganeti's logical units do (mu held; only the worker that
// runs j changes its opcodes, copying on write).
func (e *Engine) setDebugLevel(j *job, i int) {
	m, fd := field(j.msgs[i], "debug_level")
	if fd == nil || fd.Kind() != protoreflect.Int64Kind || m.Has(fd) {
		return
	}
	e.writeParams(j, i, []opexec.ParamWrite{{Name: "debug_level", Value: 0}})
}
