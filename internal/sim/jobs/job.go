package jobs

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// Job and opcode statuses (constants.json job_status and op_status).
const (
	StatusQueued    = "queued"
	StatusWaiting   = "waiting"
	StatusCanceling = "canceling"
	StatusRunning   = "running"
	StatusCanceled  = "canceled"
	StatusSuccess   = "success"
	StatusError     = "error"
)

// Finalized reports whether a job or opcode status is final.
func Finalized(status string) bool {
	return status == StatusSuccess || status == StatusError || status == StatusCanceled
}

// JobStatus derives a job's status from its opcodes' statuses as Ganeti's
// _QueuedJob.CalcStatus: all success is success; the first error, canceled
// or canceling opcode decides; otherwise the last waiting or running one;
// otherwise queued.
func JobStatus(opStatus []string) string {
	status := StatusQueued
	allSuccess := true
	for _, s := range opStatus {
		if s == StatusSuccess {
			continue
		}
		allSuccess = false
		switch s {
		case StatusWaiting:
			status = StatusWaiting
		case StatusRunning:
			status = StatusRunning
		case StatusCanceling, StatusError, StatusCanceled:
			return s
		}
	}
	if allSuccess {
		return StatusSuccess
	}
	return status
}

// Messages of job results.
const (
	msgCanceled       = "Job canceled by request"
	msgPrecedingError = "Preceding opcode failed"
	msgUnclean        = "Unclean master daemon shutdown"
	msgUnexpected     = "Unexpected error while executing the opcode"
	classExec         = "OpExecError"
)

// Timestamp is a Ganeti job timestamp, [seconds, microseconds] in JSON.
type Timestamp struct {
	Sec, Usec int64
}

// TimestampOf converts a time.
func TimestampOf(t time.Time) Timestamp {
	us := t.UnixMicro()
	sec, usec := us/1e6, us%1e6
	if usec < 0 {
		sec, usec = sec-1, usec+1e6
	}
	return Timestamp{Sec: sec, Usec: usec}
}

// Time converts back to a time.Time.
func (t Timestamp) Time() time.Time { return time.UnixMicro(t.Sec*1e6 + t.Usec) }

// Value is the JSON-like form [seconds, microseconds].
func (t Timestamp) Value() []any { return []any{t.Sec, t.Usec} }

// MarshalJSON implements json.Marshaler.
func (t Timestamp) MarshalJSON() ([]byte, error) { return json.Marshal([2]int64{t.Sec, t.Usec}) }

// UnmarshalJSON implements json.Unmarshaler.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var v [2]int64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	t.Sec, t.Usec = v[0], v[1]
	return nil
}

func tsValue(t *Timestamp) any {
	if t == nil {
		return nil
	}
	return t.Value()
}

// LogEntry is one entry of an opcode's log: [serial, [seconds,
// microseconds], type, message] in JSON.
type LogEntry struct {
	Serial  int64
	Time    Timestamp
	Type    string
	Message any
}

// Value is the JSON-like form of the entry.
func (l LogEntry) Value() []any { return []any{l.Serial, l.Time.Value(), l.Type, l.Message} }

// MarshalJSON implements json.Marshaler.
func (l LogEntry) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{l.Serial, l.Time, l.Type, l.Message})
}

// UnmarshalJSON implements json.Unmarshaler.
func (l *LogEntry) UnmarshalJSON(b []byte) error {
	var v []json.RawMessage
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if len(v) != 4 {
		return fmt.Errorf("jobs: log entry of %d elements", len(v))
	}
	if err := json.Unmarshal(v[0], &l.Serial); err != nil {
		return err
	}
	if err := json.Unmarshal(v[1], &l.Time); err != nil {
		return err
	}
	if err := json.Unmarshal(v[2], &l.Type); err != nil {
		return err
	}
	msg, err := decodeValue(v[3])
	if err != nil {
		return err
	}
	l.Message = msg
	return nil
}

// Job is a snapshot of a job: every J_FIELDS value and the other fields of
// the "job" query resource. It shares nothing mutable with the engine, but
// Ops are the engine's messages: read them, never modify them.
type Job struct {
	ID  int64
	Ops []*rapiv2.OpCode
	// Status is the job status derived from OpStatus.
	Status     string
	Summary    []string
	OpStatus   []string
	OpResult   []any
	OpLog      [][]LogEntry
	OpStart    []*Timestamp
	OpExec     []*Timestamp
	OpEnd      []*Timestamp
	OpPriority []int
	// Priority is Ganeti's job priority: that of the first unfinished
	// opcode with the lowest number, PriorityLowest once all have ended.
	Priority   int
	ReceivedTS *Timestamp
	StartTS    *Timestamp
	EndTS      *Timestamp
	Archived   bool
	// Version identifies this state of the job: it grows with every
	// change the store commits (by one or more), and is kept with the job,
	// so it keeps growing across restarts. A WatchJob resumes from it.
	Version int64
	// OpStatusVersion is the Version of the last change to an opcode's
	// status (and so result), OpsVersion that of the last change to an
	// opcode's parameters: OpStatusVersion <= v means OpStatus and
	// OpResult are as they were at version v, OpsVersion <= v the same of
	// Ops.
	OpStatusVersion, OpsVersion int64
}

// Finalized reports whether the job has ended.
func (j *Job) Finalized() bool { return Finalized(j.Status) }

// LogSince returns the log entries with a serial above serial, in order.
func (j *Job) LogSince(serial int64) []LogEntry {
	var out []LogEntry
	for _, l := range j.OpLog {
		for _, e := range l {
			if e.Serial > serial {
				out = append(out, e)
			}
		}
	}
	return out
}

// record is a job as persisted, and the mutable state of a job in memory.
// Slices are replaced or appended to, never modified in place by readers;
// snapshots copy the top-level slices.
type record struct {
	ID         int64        `json:"id"`
	Ops        [][]byte     `json:"ops"` // binary rapiv2.OpCode
	Summary    []string     `json:"summary"`
	OpStatus   []string     `json:"opstatus"`
	OpResult   []any        `json:"opresult"`
	OpLog      [][]LogEntry `json:"oplog"`
	OpStart    []*Timestamp `json:"opstart"`
	OpExec     []*Timestamp `json:"opexec"`
	OpEnd      []*Timestamp `json:"opend"`
	OpPriority []int        `json:"oppriority"`
	Received   *Timestamp   `json:"received_ts"`
	Start      *Timestamp   `json:"start_ts"`
	End        *Timestamp   `json:"end_ts"`
	LogSerial  int64        `json:"log_serial"`
	// Version, OpStatusVersion and OpsVersion are those of Job (absent in
	// records written before they existed: 0).
	Version         int64 `json:"version,omitempty"`
	OpStatusVersion int64 `json:"opstatus_version,omitempty"`
	OpsVersion      int64 `json:"ops_version,omitempty"`
	// opsChanged is set when an opcode is replaced (setOp), until the
	// record is next taken for a commit (not stored).
	opsChanged bool
	// Deps are the resolved dependencies of each opcode.
	Deps [][]dependency `json:"deps"`
	// User, Route and RPC are the job's Origin (a follow-up job's are
	// those of the job that submitted it).
	User  string `json:"user,omitempty"`
	Route string `json:"route,omitempty"`
	RPC   string `json:"rpc,omitempty"`
	// Trace is the W3C trace context (traceparent, tracestate) of the
	// submission's span, which the job's span links to; empty when the
	// submission was not traced.
	Trace map[string]string `json:"trace,omitempty"`
}

// clone copies the record deeply enough for the copy to be modified
// without affecting r (log entry slices are copied, values are shared:
// they are never modified).
func (r *record) clone() *record {
	c := *r
	c.OpStatus = slices.Clone(r.OpStatus)
	c.OpResult = slices.Clone(r.OpResult)
	c.OpLog = make([][]LogEntry, len(r.OpLog))
	for i, l := range r.OpLog {
		c.OpLog[i] = slices.Clone(l) // an empty log stays [], not null
	}
	c.OpStart = slices.Clone(r.OpStart)
	c.OpExec = slices.Clone(r.OpExec)
	c.OpEnd = slices.Clone(r.OpEnd)
	c.OpPriority = slices.Clone(r.OpPriority)
	return &c
}

func (r *record) status() string { return JobStatus(r.OpStatus) }

// nextVersion gives r the version of its next commit, which follows the
// committed state last (nil for a job never committed): OpStatusVersion
// and OpsVersion move along when an opcode's status or parameters changed
// since (mu held; the committer takes records one commit at a time, so
// last is the state of the commit before).
func (r *record) nextVersion(last *Job) {
	r.Version++
	if last == nil || !slices.Equal(r.OpStatus, last.OpStatus) {
		r.OpStatusVersion = r.Version
	}
	if last == nil || r.opsChanged {
		r.OpsVersion = r.Version
	}
	r.opsChanged = false
}

// priority is Ganeti's _QueuedJob.CalcPriority.
func (r *record) priority() int {
	p, found := PriorityLowest, false
	for i, s := range r.OpStatus {
		if Finalized(s) {
			continue
		}
		if !found || r.OpPriority[i] < p {
			p, found = r.OpPriority[i], true
		}
	}
	return p
}

// current is the index of the first unfinished opcode (len when none).
func (r *record) current() int {
	for i, s := range r.OpStatus {
		if !Finalized(s) {
			return i
		}
	}
	return len(r.OpStatus)
}

// finishUnfinished gives every unfinished opcode status and result, ends
// the opcodes and the job at now.
func (r *record) finishUnfinished(status string, result any, now Timestamp) {
	for i, s := range r.OpStatus {
		if Finalized(s) {
			continue
		}
		r.OpStatus[i] = status
		r.OpResult[i] = result
		r.OpEnd[i] = &now
	}
	r.End = &now
}

// fail ends opcode i with an error result, the opcodes after it with
// "Preceding opcode failed", and the job.
func (r *record) fail(i int, result any, now Timestamp) {
	r.OpStatus[i] = StatusError
	r.OpResult[i] = result
	r.OpEnd[i] = &now
	r.finishUnfinished(StatusError, errorResult(classExec, msgPrecedingError, ""), now)
}

// appendLog adds a log entry to opcode i.
func (r *record) appendLog(i int, now Timestamp, logType string, msg any) LogEntry {
	r.LogSerial++
	e := LogEntry{Serial: r.LogSerial, Time: now, Type: logType, Message: msg}
	r.OpLog[i] = append(r.OpLog[i], e)
	return e
}

// errorResult is Ganeti's encoded error: [class, [message]] or [class,
// [message, code]].
func errorResult(class, msg, code string) []any {
	args := []any{msg}
	if code != "" {
		args = append(args, code)
	}
	return []any{class, args}
}
