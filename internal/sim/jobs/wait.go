package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
)

// Fields are the fields of the "job" query resource, which Info and
// WaitForChange accept.
var Fields = []string{
	"id", "ops", "status", "summary", "opstatus", "opresult", "oplog", "opstart", "opexec", "opend",
	"oppriority", "priority", "received_ts", "start_ts", "end_ts", "archived",
}

var fieldSet = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range Fields {
		m[f] = true
	}
	return m
}()

func checkFields(fields []string) error {
	for _, f := range fields {
		if !fieldSet[f] {
			return errs.Prereq(errs.CodeInval, "Unknown job field '%s'", f)
		}
	}
	return nil
}

// Info returns the values of fields of a job snapshot, as Ganeti's JSON
// values (timestamps [seconds, microseconds], ops as legacy objects).
func (e *Engine) Info(j *Job, fields []string) ([]any, error) {
	if err := checkFields(fields); err != nil {
		return nil, err
	}
	out := make([]any, len(fields))
	for i, f := range fields {
		out[i] = e.fieldValue(j, f)
	}
	return out, nil
}

func (e *Engine) fieldValue(j *Job, name string) any {
	switch name {
	case "id":
		return j.ID
	case "ops":
		out := make([]any, len(j.Ops))
		for i, op := range j.Ops {
			v, err := e.cfg.EncodeOp(op)
			if err != nil {
				e.log.Error("encoding an opcode failed", "job", j.ID, "opcode", i, "err", err)
			}
			out[i] = v
		}
		return out
	case "status":
		return j.Status
	case "summary":
		return strs(j.Summary)
	case "opstatus":
		return strs(j.OpStatus)
	case "opresult":
		return append([]any{}, j.OpResult...)
	case "oplog":
		out := make([]any, len(j.OpLog))
		for i, l := range j.OpLog {
			entries := make([]any, len(l))
			for k, le := range l {
				entries[k] = le.Value()
			}
			out[i] = entries
		}
		return out
	case "opstart":
		return tsList(j.OpStart)
	case "opexec":
		return tsList(j.OpExec)
	case "opend":
		return tsList(j.OpEnd)
	case "oppriority":
		out := make([]any, len(j.OpPriority))
		for i, p := range j.OpPriority {
			out[i] = int64(p)
		}
		return out
	case "priority":
		return int64(j.Priority)
	case "received_ts":
		return tsValue(j.ReceivedTS)
	case "start_ts":
		return tsValue(j.StartTS)
	case "end_ts":
		return tsValue(j.EndTS)
	case "archived":
		return j.Archived
	}
	return nil
}

func strs(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func tsList(ts []*Timestamp) []any {
	out := make([]any, len(ts))
	for i, t := range ts {
		out[i] = tsValue(t)
	}
	return out
}

// LogValues returns log entries as JSON-like values.
func LogValues(entries []LogEntry) [][]any {
	out := make([][]any, len(entries))
	for i, l := range entries {
		out[i] = l.Value()
	}
	return out
}

// WaitForChange waits until job id changes, with the semantics of
// Ganeti's WaitForJobChange: it returns at once (changed true) with the
// current values of fields and the log entries with a serial above
// prevSerial (use -1 for all) when those values differ from prevInfo, when
// there are such log entries, or when the job is no longer queued, waiting
// or running (a finished job returns its info even if it equals
// prevInfo). Otherwise it blocks until the job changes, and returns changed
// false when timeout passes first. The waiter is woken by the change
// itself. An unknown job is NotFound.
func (e *Engine) WaitForChange(ctx context.Context, id int64, fields []string, prevInfo []any, prevSerial int64,
	timeout time.Duration) (info []any, logs [][]any, changed bool, err error) {
	if err := checkFields(fields); err != nil {
		return nil, nil, false, err
	}
	prev, err := json.Marshal(prevInfo)
	if err != nil {
		return nil, nil, false, errs.Prereq(errs.CodeInval, "Invalid previous job info")
	}
	if prevInfo == nil {
		prev = nil // null never equals a list
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		snap, notify, err := e.watchSnapshot(ctx, id)
		if err != nil {
			return nil, nil, false, err
		}
		info, _ := e.Info(snap, fields)
		logs := LogValues(snap.LogSince(prevSerial))
		cur, err := json.Marshal(info)
		if err != nil {
			return nil, nil, false, err
		}
		active := snap.Status == StatusQueued || snap.Status == StatusWaiting || snap.Status == StatusRunning
		if !active || !bytes.Equal(cur, prev) || len(logs) > 0 || notify == nil {
			return info, logs, true, nil
		}
		if timer == nil {
			timer = time.NewTimer(timeout)
		}
		select {
		case <-notify:
		case <-timer.C:
			return nil, nil, false, nil
		case <-ctx.Done():
			return nil, nil, false, ctx.Err()
		}
	}
}

// watchSnapshot returns a snapshot of a job and the channel closed on its
// next change (nil for an archived job, which does not change); NotFound
// for an unknown job.
func (e *Engine) watchSnapshot(ctx context.Context, id int64) (*Job, <-chan struct{}, error) {
	e.mu.Lock()
	if j := e.jobs[id]; j != nil && !j.pending {
		s, n := e.snapshot(j), j.notify
		e.mu.Unlock()
		return s, n, nil
	}
	e.mu.Unlock()
	s, ok, err := e.Lookup(ctx, id)
	switch {
	case err != nil:
		return nil, nil, err
	case !ok:
		return nil, nil, NotFound(id)
	}
	return s, nil, nil
}

// Watch streams a job: its current snapshot at once, then a snapshot after
// every change, until the job has ended (the last snapshot is the final
// one; the channel is then closed), ctx ends or the engine stops. A slow
// reader gets the latest state, not every intermediate one. An unknown
// job is NotFound.
func (e *Engine) Watch(ctx context.Context, id int64) (<-chan *Job, error) {
	e.mu.Lock()
	var first *Job
	var last uint64
	if j := e.jobs[id]; j != nil && !j.pending {
		first, last = e.snapshot(j), j.version
	}
	e.mu.Unlock()
	if first == nil {
		s, ok, err := e.Lookup(ctx, id)
		switch {
		case err != nil:
			return nil, err
		case !ok:
			return nil, NotFound(id)
		}
		first = s
	}
	out := make(chan *Job)
	go func() {
		defer close(out)
		select {
		case out <- first:
		case <-ctx.Done():
			return
		}
		if first.Finalized() {
			return
		}
		for {
			e.mu.Lock()
			j := e.jobs[id]
			if j == nil {
				e.mu.Unlock()
				return
			}
			if j.version == last {
				n := j.notify
				e.mu.Unlock()
				select {
				case <-n:
					continue
				case <-ctx.Done():
					return
				case <-e.quit:
					return
				}
			}
			s := e.snapshot(j)
			last = j.version
			e.mu.Unlock()
			select {
			case out <- s:
			case <-ctx.Done():
				return
			}
			if s.Finalized() {
				return
			}
		}
	}()
	return out, nil
}

// jobRow is one row of the "job" query resource.
type jobRow struct {
	e *Engine
	j *Job
}

func (r jobRow) Field(name string) cluster.Cell {
	return cluster.Cell{Status: cluster.StatusNormal, Value: r.e.fieldValue(r.j, name)}
}

func (e *Engine) jobRows() []cluster.Row {
	jobs := e.List()
	rows := make([]cluster.Row, len(jobs))
	for i, j := range jobs {
		rows[i] = jobRow{e: e, j: j}
	}
	return rows
}

type lockRowCell struct{ r *lockRow }

func (r lockRowCell) Field(name string) cluster.Cell {
	return cluster.Cell{Status: cluster.StatusNormal, Value: r.r.value(name)}
}

func (e *Engine) lockRows() []cluster.Row {
	e.mu.Lock()
	rows := e.locks.rows()
	e.mu.Unlock()
	out := make([]cluster.Row, len(rows))
	for i, r := range rows {
		out[i] = lockRowCell{r}
	}
	return out
}

// Locks returns the current locks as rows of the "lock" query resource:
// for each, the values of name, mode, owner and pending.
func (e *Engine) Locks() [][]any {
	e.mu.Lock()
	rows := e.locks.rows()
	e.mu.Unlock()
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = []any{r.name, r.mode, r.owner, r.pending}
	}
	return out
}
