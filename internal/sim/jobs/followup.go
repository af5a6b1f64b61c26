package jobs

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Follow-up jobs (Ganeti's ResultWithJobs).
//
// An executor submits follow-up jobs with ExecContext.SubmitFollowUp from
// Exec. Each job gets its id at once (the engine's next id), and its
// record is written in the store transaction that commits the opcode's
// effect and its "success": the follow-up jobs exist if and only if the
// opcode succeeded, so a crash can neither lose nor duplicate them. They
// become visible (Get, List, the "job" query) and are queued once that
// transaction has committed. A transaction that rolls back (the opcode
// failed, or its batch is re-run one opcode at a time) leaves the ids it
// reserved unused: job ids stay increasing, with gaps.
//
// As Ganeti's mcpu (_SetBaseOpParams), each opcode of a follow-up job gets
// the submitting opcode's debug_level, its priority when it has none, the
// comment "Submitted by <OP_ID>" when it has none, and the submitting
// opcode's reason trail after its own.

// newJob validates the opcodes of a job and makes the job, without an id
// nor a record (the opcodes are copied).
func (e *Engine) newJob(ops []*rapiv2.OpCode) (*job, error) {
	j := &job{heapIdx: -1, notify: make(chan struct{}), pending: true}
	for i, op := range ops {
		op = proto.Clone(op).(*rapiv2.OpCode)
		msg := opMember(op)
		if msg == nil {
			return nil, errs.Prereq(errs.CodeInval, "Opcode %d of the job is empty", i)
		}
		id := opcodeInfo(msg).GetId()
		if e.cfg.Executors[id] == nil {
			return nil, errs.NotImplemented("Opcode %s is not implemented", id)
		}
		j.ops = append(j.ops, op)
		j.msgs = append(j.msgs, msg)
		j.ids = append(j.ids, id)
		j.dry = append(j.dry, dryRunOf(msg))
	}
	return j, nil
}

// newRecord gives j the id and its record: each opcode as Ganeti stores it
// (fillOpcode), the reason trail entry "gnt:opcode:<name>" of each opcode,
// absolute dependencies, priorities (prio, when set, overrides the
// opcodes').
func (e *Engine) newRecord(j *job, id int64, prio *int) error {
	received := e.now()
	ns := (received.Sec*1e6 + received.Usec) * 1000
	n := len(j.ops)
	r := &record{
		ID: id, Ops: make([][]byte, n), Summary: make([]string, n), OpStatus: make([]string, n),
		OpResult: make([]any, n), OpLog: make([][]LogEntry, n), OpStart: make([]*Timestamp, n),
		OpExec: make([]*Timestamp, n), OpEnd: make([]*Timestamp, n), OpPriority: make([]int, n),
		Received: &received, Deps: make([][]dependency, n),
	}
	for i, msg := range j.msgs {
		if err := fillOpcode(msg); err != nil {
			return err
		}
		deps, err := resolveDepends(msg, id)
		if err != nil {
			return err
		}
		appendReason(msg, "gnt:opcode:"+strings.ToLower(strings.TrimPrefix(j.ids[i], "OP_")),
			fmt.Sprintf("job=%d;index=%d", id, i), ns)
		b, err := proto.Marshal(j.ops[i])
		if err != nil {
			return fmt.Errorf("jobs: encode opcode: %w", err)
		}
		r.Ops[i] = b
		r.Summary[i] = summaryOf(msg)
		r.OpStatus[i] = StatusQueued
		r.OpLog[i] = []LogEntry{}
		r.OpPriority[i] = priorityOf(msg)
		if prio != nil {
			r.OpPriority[i] = *prio
		}
		r.Deps[i] = deps
	}
	j.rec = r
	return nil
}

// submitFollowUp implements SubmitFollowUp for the opcode of it, inside
// the transaction tx that commits it.
func (e *Engine) submitFollowUp(tx store.Tx, it *execItem, ops []*rapiv2.OpCode) (int64, error) {
	if len(ops) == 0 {
		return 0, errs.Exec("Follow-up job has no opcodes")
	}
	j, err := e.newJob(ops)
	if err != nil {
		return 0, err
	}
	src := it.msg
	parentPrio := it.j.rec.OpPriority[it.idx]
	for _, msg := range j.msgs {
		opexec.SetBaseOpParams(src, parentPrio, msg)
	}
	id, next := e.followUpID(it)
	if err := e.newRecord(j, id, nil); err != nil {
		return 0, err
	}
	e.inheritOrigin(it, j.rec)
	enc, err := encodeRecord(j.rec)
	if err != nil {
		return 0, err
	}
	if err := tx.Put(BucketJobs, jobKey(id), enc); err != nil {
		return 0, err
	}
	if err := tx.Put(BucketQueue, keyNextID, []byte(strconv.FormatInt(next, 10))); err != nil {
		return 0, err
	}
	it.follow = append(it.follow, j)
	return id, nil
}

// addFollowUps makes the follow-up jobs of a committed opcode visible and
// queues them (mu held).
func (e *Engine) addFollowUps(js []*job) {
	for _, j := range js {
		e.publish(j, j.rec, j.ops) // committed with the opcode that submitted it
		j.pending = false
		e.jobs[j.rec.ID] = j
		if !e.stopping && !Finalized(j.rec.status()) {
			e.enqueue(j)
		}
	}
}

// followUpID returns the job ID of the execution's next follow-up job and
// the next free ID after it. The IDs are taken from the engine once per
// execution item and reused when the transaction runs its function again
// (a store may run it more than once, or the committer retries an opcode
// alone after its batch failed): a rerun submits the same jobs, not new
// ones.
func (e *Engine) followUpID(it *execItem) (id, next int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if it.nfollow == len(it.followIDs) {
		it.followIDs = append(it.followIDs, e.nextID)
		e.nextID++
	}
	id = it.followIDs[it.nfollow]
	it.nfollow++
	return id, max(e.nextID, id+1)
}
