package backend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
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
		return fmt.Errorf("log entry of %d elements", len(v))
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
	msg, err := DecodeValue(v[3])
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

// DecodeValue decodes a JSON value into nil, bool, int64, float64, string,
// []any and map[string]any.
func DecodeValue(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return NormalizeNumbers(v), nil
}

// NormalizeNumbers turns the json.Numbers of a decoded value into int64
// (integers) or float64.
func NormalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i, e := range x {
			x[i] = NormalizeNumbers(e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = NormalizeNumbers(e)
		}
		return x
	}
	return v
}
