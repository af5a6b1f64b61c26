package jobs

import (
	"slices"
)

// Messages of job results.
const (
	msgCanceled       = "Job canceled by request"
	msgPrecedingError = "Preceding opcode failed"
	msgUnclean        = "Unclean master daemon shutdown"
	msgUnexpected     = "Unexpected error while executing the opcode"
	classExec         = "OpExecError"
)

func tsValue(t *Timestamp) any {
	if t == nil {
		return nil
	}
	return t.Value()
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
