package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// Waiting for a job change: Ganeti's RAPI waits at most _WFJC_TIMEOUT (10
// seconds) and answers null when nothing changed; a typed request may ask
// for another timeout, capped.
const (
	jobWaitDefault = 10 * time.Second
	jobWaitMax     = 30 * time.Second
)

// jobService answers the job RPCs from the backend's job queue.
type jobService struct {
	rapiv2.UnimplementedJobServiceServer
	s *Services
}

func (j *jobService) queue() backend.JobQueue { return j.s.cfg.Backend }

// LegacyOpValue is the legacy JSON value of an opcode (its OP_ID and
// parameters): how a backend shows the "ops" field of the "job" query
// resource.
func LegacyOpValue(op *rapiv2.OpCode) (any, error) { return legacyjson.ToValue(op) }

func (j *jobService) ListJobs(ctx context.Context, req *rapiv2.ListJobsRequest) (*rapiv2.ListJobsResponse, error) {
	q := j.queue()
	if !req.GetBulk() {
		ids, err := q.JobIDs(ctx)
		if err != nil {
			return nil, err
		}
		refs := make([]*rapiv2.JobRef, len(ids))
		for i, id := range ids {
			refs[i] = &rapiv2.JobRef{Id: id, Uri: fmt.Sprintf("/2/jobs/%d", id)}
		}
		return &rapiv2.ListJobsResponse{Refs: refs}, nil
	}
	list, err := q.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*rapiv2.JobSummary, len(list))
	for i, job := range list {
		out[i] = jobSummary(job)
	}
	return &rapiv2.ListJobsResponse{Jobs: out}, nil
}

func (j *jobService) GetJob(ctx context.Context, req *rapiv2.GetJobRequest) (*rapiv2.Job, error) {
	job, ok, err := j.queue().Job(ctx, req.GetJobId())
	if err != nil {
		return nil, err // an internal error: never a partial job, never "not found"
	}
	if !ok {
		return &rapiv2.Job{Id: req.GetJobId()}, nil
	}
	return jobMessage(job)
}

func (j *jobService) CancelJob(ctx context.Context, req *rapiv2.CancelJobRequest) (*rapiv2.CancelJobResponse, error) {
	ok, msg, err := j.queue().Cancel(ctx, req.GetJobId())
	if err != nil {
		return nil, err
	}
	return &rapiv2.CancelJobResponse{Success: ok, Message: msg}, nil
}

func (j *jobService) WaitJobChange(ctx context.Context, req *rapiv2.WaitJobChangeRequest) (*rapiv2.WaitJobChangeResponse, error) {
	if err := j.s.cfg.Limits.checkFields(req.GetFields()); err != nil {
		return nil, err
	}
	var prev []any
	if req.PreviousJobInfo != nil {
		prev = req.PreviousJobInfo.AsSlice()
	}
	serial := int64(-1)
	if req.PreviousLogSerial != nil {
		serial = req.GetPreviousLogSerial()
	}
	timeout := jobWaitDefault
	if t := req.GetTimeoutSeconds(); t > 0 {
		timeout = min(time.Duration(t)*time.Second, jobWaitMax)
	}
	waitCtx, cancel := j.s.untilDrain(ctx)
	defer cancel()
	info, logs, changed, err := j.queue().WaitForChange(waitCtx, req.GetJobId(), req.GetFields(), prev, serial, timeout)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(waitCtx), errDraining) {
		// The server drains: answer as when the wait times out.
		err, changed = nil, false
	}
	if err != nil {
		return nil, err
	}
	if !changed {
		return &rapiv2.WaitJobChangeResponse{}, nil
	}
	lv, err := toListValue(info)
	if err != nil {
		return nil, err
	}
	change := &rapiv2.JobChange{JobInfo: lv, LogEntries: make([]*rapiv2.LogEntry, len(logs))}
	for i, l := range logs {
		e, err := logEntryFromValue(l)
		if err != nil {
			return nil, err
		}
		change.LogEntries[i] = e
	}
	return &rapiv2.WaitJobChangeResponse{Change: change}, nil
}

func (j *jobService) SubmitJob(ctx context.Context, req *rapiv2.SubmitJobRequest) (*rapiv2.JobSubmission, error) {
	q := j.queue()
	ops, err := j.s.typedJob(ctx, req)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		if id := backend.OpID(op); !q.Supports(id) {
			return nil, unsupported(q, id)
		}
		if err := legacyjson.CheckParams(op); err != nil {
			return nil, errs.BadRequest("%s", err.Error())
		}
	}
	id, err := q.Submit(ctx, ops, backend.SubmitOptions{Idempotency: backend.IdempotencyFrom(ctx)})
	if err != nil {
		return nil, err
	}
	return &rapiv2.JobSubmission{JobId: id}, nil
}

func (j *jobService) WatchJob(req *rapiv2.WatchJobRequest, stream grpc.ServerStreamingServer[rapiv2.Job]) error {
	if (req.AfterVersion == nil) != (req.AfterLogSerial == nil) {
		return errs.BadRequest("after_version and after_log_serial go together")
	}
	w := watchState{logs: j.s.watchLogs.acquire(req.GetJobId())} // the whole job first, then what changed
	defer j.s.watchLogs.release(w.logs)
	if req.AfterVersion != nil {
		// What the client holds, until the first snapshot says more.
		w.sent, w.version, w.serial = true, req.GetAfterVersion(), req.GetAfterLogSerial()
	}
	ctx, cancel := j.s.watchContext(stream.Context())
	defer cancel()
	if errors.Is(context.Cause(ctx), errDraining) {
		return watchEnded(errDraining, req.GetJobId(), &w)
	}
	ch, err := j.queue().Watch(ctx, req.GetJobId())
	if err != nil {
		return err
	}
	first, final := true, false
	for snap := range ch {
		final = snap.Finalized()
		if first && req.AfterVersion != nil {
			first = false
			if !w.resume(snap, req.GetAfterVersion(), req.GetAfterLogSerial()) {
				continue // the client has this state
			}
		}
		msg, err := w.next(snap)
		if err != nil {
			return err
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	// The cause tells an interruption from the client's cancellation.
	if cause := context.Cause(ctx); errors.Is(cause, errDraining) || errors.Is(cause, errMaxWatchAge) {
		return watchEnded(cause, req.GetJobId(), &w)
	}
	if err := stream.Context().Err(); err != nil {
		return err
	}
	if !final {
		// The engine stopped (a store failure, or a shutdown without
		// drain) before the job ended: resume on the next start.
		return watchEnded(errQueueStopped, req.GetJobId(), &w)
	}
	return nil
}

// Conversion of engine jobs ------------------------------------------------------

func jobStatus(s string) rapiv2.JobStatus {
	n, _ := legacyenum.Parse(rapiv2.JobStatus(0).Descriptor(), s)
	return rapiv2.JobStatus(n)
}

func jobStatusList(s []string) []rapiv2.JobStatus {
	out := make([]rapiv2.JobStatus, len(s))
	for i, v := range s {
		out[i] = jobStatus(v)
	}
	return out
}

func jobTimestamp(t *backend.Timestamp) *rapiv2.JobTimestamp {
	if t == nil {
		return nil
	}
	return &rapiv2.JobTimestamp{Seconds: t.Sec, Microseconds: t.Usec}
}

func jobSummary(j *backend.Job) *rapiv2.JobSummary {
	return &rapiv2.JobSummary{
		Id:         j.ID,
		Ops:        j.Ops,
		Status:     jobStatus(j.Status),
		Summary:    j.Summary,
		Opstatus:   jobStatusList(j.OpStatus),
		ReceivedTs: jobTimestamp(j.ReceivedTS),
		StartTs:    jobTimestamp(j.StartTS),
		EndTs:      jobTimestamp(j.EndTS),
	}
}

// jobMessage converts a job snapshot to the J_FIELDS message.
func jobMessage(j *backend.Job) (*rapiv2.Job, error) {
	st := jobStatus(j.Status)
	out := &rapiv2.Job{
		Id:         j.ID,
		Ops:        j.Ops,
		Status:     &st,
		Summary:    j.Summary,
		Opstatus:   jobStatusList(j.OpStatus),
		ReceivedTs: jobTimestamp(j.ReceivedTS),
		StartTs:    jobTimestamp(j.StartTS),
		EndTs:      jobTimestamp(j.EndTS),
		Oplog:      make([]*rapiv2.OpLog, len(j.OpLog)),
		Opresult:   make([]*rapiv2.OpResult, len(j.OpResult)),
	}
	for i, l := range j.OpLog {
		ol := &rapiv2.OpLog{Entries: make([]*rapiv2.LogEntry, len(l))}
		for k, e := range l {
			msg, err := toValue(e.Message)
			if err != nil {
				return nil, err
			}
			ol.Entries[k] = &rapiv2.LogEntry{Serial: e.Serial, Timestamp: jobTimestamp(&e.Time), LogType: e.Type, Message: msg}
		}
		out.Oplog[i] = ol
	}
	for i, res := range j.OpResult {
		status := ""
		if i < len(j.OpStatus) {
			status = j.OpStatus[i]
		}
		r, err := opResult(status, res)
		if err != nil {
			return nil, err
		}
		out.Opresult[i] = r
	}
	return out, nil
}

// opResult converts one opcode result: an encoded error for a failed
// opcode, the cancel message for a canceled one, the value otherwise.
func opResult(status string, res any) (*rapiv2.OpResult, error) {
	if res == nil {
		return &rapiv2.OpResult{}, nil
	}
	switch status {
	case backend.StatusError:
		if e := opError(res); e != nil {
			return &rapiv2.OpResult{Result: &rapiv2.OpResult_Error{Error: e}}, nil
		}
	case backend.StatusCanceled:
		if s, ok := res.(string); ok {
			return &rapiv2.OpResult{Result: &rapiv2.OpResult_Canceled{Canceled: s}}, nil
		}
	}
	v, err := toValue(res)
	if err != nil {
		return nil, err
	}
	return &rapiv2.OpResult{Result: &rapiv2.OpResult_Value{Value: v}}, nil
}

// opError converts [class, [message]] or [class, [message, code]].
func opError(res any) *rapiv2.OpError {
	l, ok := res.([]any)
	if !ok || len(l) != 2 {
		return nil
	}
	class, ok := l[0].(string)
	args, ok2 := l[1].([]any)
	if !ok || !ok2 || len(args) == 0 || len(args) > 2 {
		return nil
	}
	msg, ok := args[0].(string)
	if !ok {
		return nil
	}
	out := &rapiv2.OpError{ErrorClass: class, Args: &rapiv2.OpErrorArgs{Message: msg}}
	if len(args) == 2 {
		code, ok := args[1].(string)
		if !ok {
			return nil
		}
		n, known := legacyenum.Parse(rapiv2.ErrorCode(0).Descriptor(), code)
		if !known {
			return nil
		}
		c := rapiv2.ErrorCode(n)
		out.Args.Code = &c
	}
	return out
}

// toValue converts a JSON-like value to a google.protobuf.Value.
func toValue(v any) (*structpb.Value, error) {
	norm, err := jsonNormalize(v)
	if err != nil {
		return nil, err
	}
	return structpb.NewValue(norm)
}

func toListValue(l []any) (*structpb.ListValue, error) {
	norm, err := jsonNormalize(l)
	if err != nil {
		return nil, err
	}
	s, _ := norm.([]any)
	return structpb.NewList(s)
}

// jsonNormalize turns a JSON-like value into what structpb accepts (nil,
// bool, float64, string, []any, map[string]any).
func jsonNormalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("job value: %w", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("job value: %w", err)
	}
	return out, nil
}

// logEntryFromValue converts [serial, [sec, usec], type, message].
func logEntryFromValue(l []any) (*rapiv2.LogEntry, error) {
	if len(l) != 4 {
		return nil, fmt.Errorf("log entry of %d elements", len(l))
	}
	serial, _ := l[0].(int64)
	ts, _ := l[1].([]any)
	typ, _ := l[2].(string)
	msg, err := toValue(l[3])
	if err != nil {
		return nil, err
	}
	e := &rapiv2.LogEntry{Serial: serial, LogType: typ, Message: msg}
	if len(ts) == 2 {
		sec, _ := ts[0].(int64)
		usec, _ := ts[1].(int64)
		e.Timestamp = &rapiv2.JobTimestamp{Seconds: sec, Microseconds: usec}
	}
	return e, nil
}
