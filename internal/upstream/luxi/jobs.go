package luxi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// Supports: luxid runs every opcode of Ganeti 3.0, which are the opcodes
// the proto knows.
func (b *Backend) Supports(opID string) bool { return opID != "" }

// opValue is the luxi form of an opcode: the legacy codec's opcode object,
// unset parameters left out (luxid fills in the defaults).
func opValue(op *rapiv2.OpCode) (legacyjson.Object, error) {
	v, err := legacyjson.Marshaler{OmitUnset: true}.ToValue(op)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(legacyjson.Object)
	if !ok {
		return nil, errors.New("luxi: opcode is not an object")
	}
	return obj, nil
}

// finishOp sets the reason trail (appending the gateway's entry to the
// client's) and the priority of an opcode object.
func finishOp(ctx context.Context, obj legacyjson.Object, opt backend.SubmitOptions) legacyjson.Object {
	out := make(legacyjson.Object, 0, len(obj)+2)
	var reason []any
	for _, m := range obj {
		switch m.Key {
		case "reason":
			if l, ok := m.Value.([]any); ok {
				reason = l
			}
			continue
		case "priority":
			if opt.Priority != nil {
				continue
			}
		}
		out = append(out, m)
	}
	if opt.Priority != nil {
		out = append(out, legacyjson.Member{Key: "priority", Value: *opt.Priority})
	}
	reason = append(append([]any(nil), reason...), reasonEntry(ctx))
	return append(out, legacyjson.Member{Key: "reason", Value: reason})
}

func (b *Backend) Submit(ctx context.Context, ops []*rapiv2.OpCode, opt backend.SubmitOptions) (int64, error) {
	if len(ops) == 0 {
		return 0, errs.BadRequest("A job needs at least one opcode")
	}
	vals := make([]legacyjson.Object, len(ops))
	for i, op := range ops {
		v, err := opValue(op)
		if err != nil {
			return 0, err
		}
		vals[i] = v
	}
	if k := opt.Idempotency; k != nil {
		return b.keys.do(*k, func() (int64, error) { return b.submitValues(ctx, vals, opt) })
	}
	return b.submitValues(ctx, vals, opt)
}

func (b *Backend) submitValues(ctx context.Context, ops []legacyjson.Object, opt backend.SubmitOptions) (int64, error) {
	args := make([]any, len(ops))
	for i, op := range ops {
		args[i] = finishOp(ctx, op, opt)
	}
	var id int64
	if err := b.call(ctx, MethodSubmitJob, &id, args); err != nil {
		return 0, err
	}
	return id, nil
}

// SubmitMany submits several jobs at once (luxi SubmitManyJobs): for each,
// its id, or the error luxid gave for it.
func (b *Backend) SubmitMany(ctx context.Context, jobs [][]*rapiv2.OpCode, opt backend.SubmitOptions) ([]int64, []error, error) {
	args := make([]any, len(jobs))
	for i, ops := range jobs {
		job := make([]any, len(ops))
		for k, op := range ops {
			v, err := opValue(op)
			if err != nil {
				return nil, nil, err
			}
			job[k] = finishOp(ctx, v, opt)
		}
		args[i] = job
	}
	var res [][2]json.RawMessage
	if err := b.call(ctx, MethodSubmitManyJobs, &res, args); err != nil {
		return nil, nil, err
	}
	ids, errsOut := make([]int64, len(res)), make([]error, len(res))
	for i, r := range res {
		var ok bool
		if err := json.Unmarshal(r[0], &ok); err != nil {
			return nil, nil, protocolErr(MethodSubmitManyJobs, err)
		}
		if ok {
			if err := json.Unmarshal(r[1], &ids[i]); err != nil {
				return nil, nil, protocolErr(MethodSubmitManyJobs, err)
			}
			continue
		}
		var msg string
		if json.Unmarshal(r[1], &msg) != nil {
			msg = string(r[1])
		}
		errsOut[i] = errs.Exec("%s", msg)
	}
	return ids, errsOut, nil
}

// ChangePriority changes the priority of a queued job (luxi
// ChangeJobPriority): Ganeti's (ok, message).
func (b *Backend) ChangePriority(ctx context.Context, id int64, priority int) (bool, string, error) {
	var res [2]json.RawMessage
	if err := b.call(ctx, MethodChangeJobPriority, &res, id, priority); err != nil {
		return false, "", err
	}
	return decodeOKMessage(MethodChangeJobPriority, res)
}

func decodeOKMessage(method string, res [2]json.RawMessage) (bool, string, error) {
	var ok bool
	var msg string
	if json.Unmarshal(res[0], &ok) != nil || json.Unmarshal(res[1], &msg) != nil {
		return false, "", protocolErr(method, errors.New("answer is not [bool, message]"))
	}
	return ok, msg, nil
}

func (b *Backend) Cancel(ctx context.Context, id int64) (bool, string, error) {
	var res [2]json.RawMessage
	if err := b.call(ctx, MethodCancelJob, &res, id); err != nil {
		return false, "", err
	}
	return decodeOKMessage(MethodCancelJob, res)
}

// jobFields are the job query fields a snapshot is built from, in the
// order of jobRow.
var jobFields = []string{"id", "status", "ops", "summary", "opstatus", "opresult", "oplog",
	"opstart", "opexec", "opend", "oppriority", "priority", "received_ts", "start_ts", "end_ts"}

func (b *Backend) queryJobs(ctx context.Context, ids []int64) ([]*backend.Job, error) {
	var idArg any
	if ids != nil {
		idArg = ids
	}
	var rows []json.RawMessage
	if err := b.call(ctx, MethodQueryJobs, &rows, idArg, jobFields); err != nil {
		return nil, err
	}
	out := make([]*backend.Job, 0, len(rows))
	for _, r := range rows {
		j, err := decodeJob(r)
		if err != nil {
			return nil, protocolErr(MethodQueryJobs, err)
		}
		out = append(out, j) // nil for an unknown job
	}
	return out, nil
}

func (b *Backend) Job(ctx context.Context, id int64) (*backend.Job, bool, error) {
	jobs, err := b.queryJobs(ctx, []int64{id})
	if err != nil {
		return nil, false, err
	}
	if len(jobs) != 1 || jobs[0] == nil {
		return nil, false, nil
	}
	return jobs[0], true, nil
}

func (b *Backend) JobIDs(ctx context.Context) ([]int64, error) {
	var rows [][1]int64
	if err := b.call(ctx, MethodQueryJobs, &rows, nil, []string{"id"}); err != nil {
		return nil, err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r[0]
	}
	return ids, nil
}

func (b *Backend) Jobs(ctx context.Context) ([]*backend.Job, error) {
	jobs, err := b.queryJobs(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := jobs[:0]
	for _, j := range jobs {
		if j != nil {
			out = append(out, j)
		}
	}
	return out, nil
}

// maxWait is the longest wait asked of luxid at once.
const maxWait = 10 * time.Second

func (b *Backend) WaitForChange(ctx context.Context, id int64, fields []string, prevInfo []any, prevSerial int64,
	timeout time.Duration) ([]any, [][]any, bool, error) {
	if fields == nil {
		fields = []string{}
	}
	var prev any
	if prevInfo != nil {
		prev = prevInfo
	}
	deadline := time.Now().Add(timeout)
	for {
		remaining := time.Until(deadline)
		step := min(remaining, maxWait)
		var raw json.RawMessage
		err := b.waits.Call(ctx, MethodWaitForJobChange, []any{id, fields, prev, prevSerial, secondsCeil(step)}, step, &raw)
		var re *RemoteError
		if errors.As(err, &re) && re.Class == "JobLost" {
			return nil, nil, false, backend.JobNotFound(id)
		}
		if err != nil {
			return nil, nil, false, err
		}
		v, err := backend.DecodeValue(raw)
		if err != nil {
			return nil, nil, false, protocolErr(MethodWaitForJobChange, err)
		}
		if pair, ok := v.([]any); ok && len(pair) == 2 {
			info, _ := pair[0].([]any)
			entries, _ := pair[1].([]any)
			logs := make([][]any, 0, len(entries))
			for _, e := range entries {
				if l, ok := e.([]any); ok {
					logs = append(logs, l)
				}
			}
			return info, logs, true, nil
		}
		// "nochange": ask again only when the wait was cut to maxWait.
		if remaining <= maxWait || time.Until(deadline) <= 0 {
			return nil, nil, false, nil
		}
	}
}

// watchFields are what a Watch waits on: any change of them, or a new log
// entry, is a new snapshot.
var watchFields = []string{"status", "opstatus", "priority"}

func (b *Backend) Watch(ctx context.Context, id int64) (<-chan *backend.Job, error) {
	j, ok, err := b.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, backend.JobNotFound(id)
	}
	ch := make(chan *backend.Job, 1)
	go b.watch(ctx, j, ch)
	return ch, nil
}

func (b *Backend) watch(ctx context.Context, j *backend.Job, ch chan *backend.Job) {
	defer close(ch)
	send := func(j *backend.Job) bool {
		select { // the latest snapshot wins over an unread one
		case <-ch:
		default:
		}
		select {
		case ch <- j:
			return true
		case <-ctx.Done():
			return false
		}
	}
	failures := 0
	for {
		if !send(j) || j.Finalized() {
			return
		}
		prev := []any{j.Status, toAnys(j.OpStatus), int64(j.Priority)}
		_, _, changed, err := b.WaitForChange(ctx, j.ID, watchFields, prev, lastSerial(j), maxWait)
		if err == nil && !changed {
			continue
		}
		var next *backend.Job
		if err == nil {
			var ok bool
			next, ok, err = b.Job(ctx, j.ID)
			if err == nil && !ok {
				return // archived away
			}
		}
		if err != nil {
			failures++
			if ctx.Err() != nil || failures > 3 {
				return
			}
			select {
			case <-time.After(time.Duration(failures) * time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		failures = 0
		j = next
	}
}

func toAnys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func lastSerial(j *backend.Job) int64 {
	last := int64(-1)
	for _, l := range j.OpLog {
		for _, e := range l {
			last = max(last, e.Serial)
		}
	}
	return last
}

// Job snapshots ----------------------------------------------------------------

// decodeJob parses a QueryJobs row of jobFields; nil for an unknown job
// (all fields but the id null).
func decodeJob(raw json.RawMessage) (*backend.Job, error) {
	var row []json.RawMessage
	if err := json.Unmarshal(raw, &row); err != nil {
		return nil, err
	}
	if len(row) != len(jobFields) {
		return nil, fmt.Errorf("job row of %d fields, want %d", len(row), len(jobFields))
	}
	if string(row[1]) == "null" {
		return nil, nil
	}
	j := &backend.Job{}
	var rawOps []json.RawMessage
	var opResult []json.RawMessage
	for i, dst := range []any{&j.ID, &j.Status, &rawOps, &j.Summary, &j.OpStatus, &opResult, &j.OpLog,
		&j.OpStart, &j.OpExec, &j.OpEnd, &j.OpPriority, &j.Priority, &j.ReceivedTS, &j.StartTS, &j.EndTS} {
		if err := json.Unmarshal(row[i], dst); err != nil {
			return nil, fmt.Errorf("job field %s: %w", jobFields[i], err)
		}
	}
	j.Ops = make([]*rapiv2.OpCode, len(rawOps))
	for i, r := range rawOps {
		j.Ops[i] = decodeOp(r)
	}
	j.OpResult = make([]any, len(opResult))
	for i, r := range opResult {
		v, err := backend.DecodeValue(r)
		if err != nil {
			return nil, err
		}
		j.OpResult[i] = v
	}
	progress := int64(0)
	for _, s := range j.OpStatus {
		progress += statusRank[s]
	}
	// Version grows with every change a watcher sees: opcode statuses only
	// move forward (queued, waiting or canceling, running, ended) and log
	// serials only grow.
	j.OpStatusVersion = progress << 32
	j.Version = j.OpStatusVersion + lastSerial(j) + 1
	return j, nil
}

var statusRank = map[string]int64{
	backend.StatusQueued: 0, backend.StatusWaiting: 1, backend.StatusCanceling: 2, backend.StatusRunning: 3,
	backend.StatusSuccess: 4, backend.StatusError: 4, backend.StatusCanceled: 4,
}

// decodeOp parses a stored opcode with the legacy codec; one it cannot
// read (a parameter of a newer Ganeti) keeps only its OP_ID.
func decodeOp(raw json.RawMessage) *rapiv2.OpCode {
	op := &rapiv2.OpCode{}
	v, err := backend.DecodeValue(raw)
	if err == nil {
		if err = legacyjson.FromValue(op, v); err == nil {
			return op
		}
	}
	op = &rapiv2.OpCode{}
	if m, ok := v.(map[string]any); ok {
		_ = legacyjson.FromValue(op, map[string]any{"OP_ID": m["OP_ID"]})
	}
	return op
}

// idempotency remembers keyed submissions for a while: a submission with a
// key seen before gets the first job's id (same fingerprint) or a
// conflict; concurrent ones wait for the first.
type idempotency struct {
	retention time.Duration
	mu        sync.Mutex
	entries   map[[2]string]*keyEntry
}

type keyEntry struct {
	fingerprint string
	done        chan struct{}
	id          int64
	err         error
	at          time.Time
}

func newIdempotency(retention time.Duration) *idempotency {
	return &idempotency{retention: retention, entries: map[[2]string]*keyEntry{}}
}

func (s *idempotency) do(k backend.Idempotency, submit func() (int64, error)) (int64, error) {
	key := [2]string{k.Scope, k.Key}
	s.mu.Lock()
	now := time.Now()
	for kk, e := range s.entries { // expire; the map stays small
		select {
		case <-e.done:
			if now.Sub(e.at) > s.retention {
				delete(s.entries, kk)
			}
		default:
		}
	}
	if e, ok := s.entries[key]; ok {
		s.mu.Unlock()
		if e.fingerprint != k.Fingerprint {
			return 0, errs.Conflict("Idempotency key %q was used for another request", k.Key)
		}
		<-e.done
		return e.id, e.err
	}
	e := &keyEntry{fingerprint: k.Fingerprint, done: make(chan struct{})}
	s.entries[key] = e
	s.mu.Unlock()
	e.id, e.err = submit()
	e.at = time.Now()
	if e.err != nil { // a failed submission may be tried again
		s.mu.Lock()
		delete(s.entries, key)
		s.mu.Unlock()
	}
	close(e.done)
	return e.id, e.err
}
