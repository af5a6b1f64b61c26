package rapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// ganetiWait is Ganeti's cap on one /2/jobs/{id}/wait (_WFJC_TIMEOUT).
const ganetiWait = 10 * time.Second

// Job ids are the cluster's: GET /2/jobs/{id} (an unknown id answers all
// fields null, as Ganeti does).
func (b *Backend) Job(ctx context.Context, id int64) (*backend.Job, bool, error) {
	r, err := b.c.call(ctx, http.MethodGet, "/2/jobs/"+strconv.FormatInt(id, 10), nil, 0)
	if err != nil {
		if e, ok := errs.As(err); ok && e.Code == errs.CodeNoEnt {
			return nil, false, nil
		}
		return nil, false, err
	}
	v, err := decode(r.body)
	if err != nil {
		return nil, false, err
	}
	m, _ := v.(map[string]any)
	if m == nil || m["id"] == nil || m["status"] == nil {
		return nil, false, nil // Ganeti's answer for an unknown id: every field null
	}
	j, err := parseJob(m)
	if err != nil {
		return nil, false, err
	}
	return j, true, nil
}

func (b *Backend) JobIDs(ctx context.Context) ([]int64, error) {
	r, err := b.c.call(ctx, http.MethodGet, "/2/jobs", nil, 0)
	if err != nil {
		return nil, err
	}
	v, err := decode(r.body)
	if err != nil {
		return nil, err
	}
	list, _ := v.([]any)
	out := make([]int64, 0, len(list))
	for _, e := range list {
		m, _ := e.(map[string]any)
		if id, ok := intOf(m["id"]); ok {
			out = append(out, id)
		}
	}
	return out, nil
}

func (b *Backend) Jobs(ctx context.Context) ([]*backend.Job, error) {
	r, err := b.c.call(ctx, http.MethodGet, "/2/jobs?bulk=1", nil, 0)
	if err != nil {
		return nil, err
	}
	v, err := decode(r.body)
	if err != nil {
		return nil, err
	}
	list, _ := v.([]any)
	out := make([]*backend.Job, 0, len(list))
	for _, e := range list {
		m, _ := e.(map[string]any)
		j, err := parseJob(m)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

func (b *Backend) Cancel(ctx context.Context, id int64) (bool, string, error) {
	r, err := b.c.callWrite(ctx, http.MethodDelete, "/2/jobs/"+strconv.FormatInt(id, 10), nil)
	if err != nil {
		return false, "", err
	}
	v, err := decode(r.body)
	if err != nil {
		return false, "", err
	}
	l, _ := v.([]any)
	if len(l) != 2 {
		return false, "", badAnswer("a job cancel")
	}
	ok, _ := l[0].(bool)
	msg, _ := l[1].(string)
	return ok, msg, nil
}

func intOf(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		return int64(x), true
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// parseJob converts Ganeti's job object (J_FIELDS).
func parseJob(m map[string]any) (*backend.Job, error) {
	id, ok := intOf(m["id"])
	if !ok {
		return nil, badAnswer("a job read")
	}
	j := &backend.Job{ID: id}
	j.Status, _ = m["status"].(string)
	for _, s := range anyList(m["summary"]) {
		str, _ := s.(string)
		j.Summary = append(j.Summary, str)
	}
	for _, s := range anyList(m["opstatus"]) {
		str, _ := s.(string)
		j.OpStatus = append(j.OpStatus, str)
	}
	j.OpResult = anyList(m["opresult"])
	for _, l := range anyList(m["oplog"]) {
		var entries []backend.LogEntry
		for _, e := range anyList(l) {
			b, _ := json.Marshal(e)
			var le backend.LogEntry
			if err := json.Unmarshal(b, &le); err == nil {
				entries = append(entries, le)
			}
		}
		j.OpLog = append(j.OpLog, entries)
	}
	j.OpStart = timestamps(m["opstart"])
	j.OpExec = timestamps(m["opexec"])
	j.OpEnd = timestamps(m["opend"])
	j.ReceivedTS = timestamp(m["received_ts"])
	j.StartTS = timestamp(m["start_ts"])
	j.EndTS = timestamp(m["end_ts"])
	if p, ok := intOf(m["priority"]); ok {
		j.Priority = int(p)
	}
	for _, o := range anyList(m["ops"]) {
		j.Ops = append(j.Ops, parseOp(o))
	}
	n := len(j.Ops)
	for len(j.OpStatus) < n {
		j.OpStatus = append(j.OpStatus, backend.StatusQueued)
	}
	j.OpPriority = make([]int, n)
	for len(j.OpLog) < n {
		j.OpLog = append(j.OpLog, nil)
	}
	for len(j.OpResult) < n {
		j.OpResult = append(j.OpResult, nil)
	}
	for len(j.Summary) < n {
		j.Summary = append(j.Summary, "")
	}
	if j.Status == "" {
		j.Status = backend.JobStatus(j.OpStatus)
	}
	// Version grows with every change Ganeti shows: the opcodes' statuses
	// only move forward and log entries are only added.
	v := int64(1)
	for _, s := range j.OpStatus {
		v += statusRank[s]
	}
	for _, l := range j.OpLog {
		v += int64(len(l))
	}
	j.Version, j.OpStatusVersion, j.OpsVersion = v, v, 1
	return j, nil
}

var statusRank = map[string]int64{
	backend.StatusQueued: 0, backend.StatusWaiting: 1, backend.StatusRunning: 2,
	backend.StatusCanceling: 3, backend.StatusSuccess: 4, backend.StatusError: 4, backend.StatusCanceled: 4,
}

func anyList(v any) []any { l, _ := v.([]any); return l }

func timestamp(v any) *backend.Timestamp {
	l := anyList(v)
	if len(l) != 2 {
		return nil
	}
	s, ok1 := intOf(l[0])
	us, ok2 := intOf(l[1])
	if !ok1 || !ok2 {
		return nil
	}
	return &backend.Timestamp{Sec: s, Usec: us}
}

func timestamps(v any) []*backend.Timestamp {
	l := anyList(v)
	out := make([]*backend.Timestamp, len(l))
	for i, e := range l {
		out[i] = timestamp(e)
	}
	return out
}

// opFields are the OpCode switch's opcode messages by OP_ID.
var opFields = func() map[string]protoreflect.FieldDescriptor {
	out := map[string]protoreflect.FieldDescriptor{}
	fields := (&rapiv2.OpCode{}).ProtoReflect().Descriptor().Oneofs().ByName("op").Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Message() == nil {
			continue
		}
		if id := bodyOpcode(fd.Message()); id != "" {
			out[id] = fd
		}
	}
	return out
}()

// parseOp decodes an opcode of a job record. Parameters this gateway does
// not know (a newer Ganeti's) are left out of the message rather than
// failing the whole job; an opcode it does not know at all is an empty
// OpCode.
func parseOp(v any) *rapiv2.OpCode {
	op := &rapiv2.OpCode{}
	if err := legacyjson.FromValue(op, v); err == nil {
		return op
	}
	m, _ := v.(map[string]any)
	id, _ := m["OP_ID"].(string)
	fd, ok := opFields[id]
	if !ok {
		return &rapiv2.OpCode{}
	}
	known := map[string]any{"OP_ID": id}
	fields := fd.Message().Fields()
	for k, val := range m {
		if fields.ByJSONName(k) != nil {
			known[k] = val
		}
	}
	op = &rapiv2.OpCode{}
	if err := legacyjson.FromValue(op, known); err == nil {
		return op
	}
	// Values of the wrong type: only the OP_ID.
	_ = legacyjson.FromValue(op, map[string]any{"OP_ID": id})
	return op
}

// ---------------------------------------------------------------- waits

// WaitForChange loops Ganeti's /2/jobs/{id}/wait (each at most 10 s)
// until something changed or timeout passed. A service user without the
// write option cannot wait (403): then the job is polled with backoff.
func (b *Backend) WaitForChange(ctx context.Context, id int64, fields []string, prevInfo []any, prevSerial int64,
	timeout time.Duration) ([]any, [][]any, bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		b.waitMu.Lock()
		poll := b.waitForbidden
		b.waitMu.Unlock()
		var info []any
		var logs [][]any
		var changed bool
		var err error
		if poll {
			info, logs, changed, err = b.pollChange(ctx, id, fields, prevInfo, prevSerial, deadline)
		} else {
			info, logs, changed, err = b.waitOnce(ctx, id, fields, prevInfo, prevSerial, time.Until(deadline))
			if e, ok := errs.As(err); ok && e.Class == errs.ClassBadGateway && forbiddenWait(err) {
				b.waitMu.Lock()
				b.waitForbidden = true
				b.waitMu.Unlock()
				continue
			}
		}
		if err != nil || changed || time.Until(deadline) <= 0 {
			return info, logs, changed, err
		}
	}
}

// forbiddenWait reports whether the upstream refused the wait (403).
func forbiddenWait(err error) bool {
	e, _ := errs.As(err)
	return e != nil && e.Msg == forbiddenMsg
}

func (b *Backend) waitOnce(ctx context.Context, id int64, fields []string, prevInfo []any, prevSerial int64,
	left time.Duration) ([]any, [][]any, bool, error) {
	if left <= 0 {
		return nil, nil, false, nil
	}
	body := map[string]any{"fields": nonNilStrings(fields), "previous_job_info": prevInfo, "previous_log_serial": prevSerial}
	if prevSerial < 0 {
		body["previous_log_serial"] = nil
	}
	// Ganeti waits up to 10 s whatever we ask: the call may take that
	// long, plus the usual timeout; a caller with less time cuts it.
	cctx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	r, err := b.c.callWith(cctx, b.c.waitSem, http.MethodGet, "/2/jobs/"+strconv.FormatInt(id, 10)+"/wait", body, ganetiWait+b.c.cfg.Timeout)
	if err != nil {
		if ctx.Err() == nil && cctx.Err() != nil {
			return nil, nil, false, nil // our timeout passed: nothing changed
		}
		if e, ok := errs.As(err); ok && e.Code == errs.CodeNoEnt {
			return nil, nil, false, backend.JobNotFound(id)
		}
		return nil, nil, false, err
	}
	v, err := decode(r.body)
	if err != nil {
		return nil, nil, false, err
	}
	m, _ := v.(map[string]any)
	if m == nil {
		return nil, nil, false, nil // null: nothing changed
	}
	info := anyList(m["job_info"])
	var logs [][]any
	for _, e := range anyList(m["log_entries"]) {
		logs = append(logs, anyList(e))
	}
	return info, logs, true, nil
}

// pollChange polls the job query until a field or the log changed, the
// job ended or deadline passed.
func (b *Backend) pollChange(ctx context.Context, id int64, fields []string, prevInfo []any, prevSerial int64,
	deadline time.Time) ([]any, [][]any, bool, error) {
	delay := 100 * time.Millisecond
	for {
		res, err := b.query(ctx, backend.ResJob, append(append([]string{}, fields...), "oplog", "status"), []any{"=", "id", id})
		if err != nil {
			return nil, nil, false, err
		}
		if len(res.Data) == 0 {
			return nil, nil, false, backend.JobNotFound(id)
		}
		row := res.Data[0]
		info := make([]any, len(fields))
		for i := range fields {
			info[i] = row[i].Value
		}
		var logs [][]any
		for _, l := range anyList(row[len(fields)].Value) {
			for _, e := range anyList(l) {
				le := anyList(e)
				if s, ok := intOf(firstOf(le)); ok && s > prevSerial {
					logs = append(logs, le)
				}
			}
		}
		status, _ := row[len(fields)+1].Value.(string)
		if len(logs) > 0 || !reflect.DeepEqual(normal(info), normal(prevInfo)) || backend.Finalized(status) {
			return info, logs, true, nil
		}
		if time.Until(deadline) <= 0 {
			return nil, nil, false, nil
		}
		select {
		case <-time.After(min(delay, time.Until(deadline))):
		case <-ctx.Done():
			return nil, nil, false, ctx.Err()
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func firstOf(l []any) any {
	if len(l) == 0 {
		return nil
	}
	return l[0]
}

// normal is a value as JSON sees it (for comparisons across decoders).
func normal(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	out, _ := backend.DecodeValue(b)
	return out
}

// Watch streams the job's snapshots: one now, then one after every
// change the upstream's wait (or the poll) reports, until the job ends.
func (b *Backend) Watch(ctx context.Context, id int64) (<-chan *backend.Job, error) {
	j, ok, err := b.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, backend.JobNotFound(id)
	}
	ch := make(chan *backend.Job, 1)
	ch <- j
	go func() {
		defer close(ch)
		cur := j
		for !cur.Finalized() {
			serial := int64(-1)
			for _, l := range cur.OpLog {
				for _, e := range l {
					serial = max(serial, e.Serial)
				}
			}
			_, _, changed, err := b.WaitForChange(ctx, id, []string{"status", "opstatus"},
				[]any{cur.Status, toAny(cur.OpStatus)}, serial, ganetiWait)
			if err != nil || ctx.Err() != nil {
				return
			}
			if !changed {
				continue
			}
			next, ok, err := b.Job(ctx, id)
			if err != nil || !ok {
				return
			}
			cur = next
			select { // the latest replaces an unread one
			case <-ch:
			default:
			}
			select {
			case ch <- cur:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
