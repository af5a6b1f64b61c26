package service

import (
	"slices"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
)

// watchState is what a WatchJob stream has sent so far: its first message
// is the whole job, every later one only what changed (Job.log_serial_after).
// A stream of a job with n log entries and c changes thus sends O(n + c)
// entries, not O(n * c); and the streams of one job share the conversion
// of its log entries (watchLogs), so each entry is converted once however
// many watch it.
type watchState struct {
	logs     *jobLogs
	sent     bool             // the client has the job: a message was sent, or it resumed
	version  int64            // the job version the client has
	serial   int64            // highest log serial sent
	opstatus []string         // the opcode statuses last sent
	ops      []*rapiv2.OpCode // the opcodes last sent (replaced, never changed, by the engine)
}

// resume prepares the first message of a resumed watch, whose client
// holds version and the log entries up to logSerial, for the job's
// current snapshot j: false when the client has j already (nothing to
// send); otherwise the message next builds is a delta from the client's
// version (with opresult and ops when an opcode changed since), or the
// whole job when j is older than that version or the serial is beyond j's
// log (a store restored from a backup).
func (w *watchState) resume(j *backend.Job, version, logSerial int64) bool {
	switch {
	case j.Version == version:
		w.sent, w.version, w.serial, w.opstatus, w.ops = true, version, logSerial, slices.Clone(j.OpStatus), j.Ops
		return false
	case j.Version < version || logSerial > lastSerial(j, -1):
		w.sent = false
		return true
	}
	w.sent, w.version, w.serial, w.opstatus, w.ops = true, version, logSerial, slices.Clone(j.OpStatus), j.Ops
	// What changed since is sent whole.
	if j.OpStatusVersion > version {
		w.opstatus = nil
	}
	if j.OpsVersion > version {
		w.ops = nil
	}
	return true
}

// next is the stream's message for a snapshot of the job.
func (w *watchState) next(j *backend.Job) (*rapiv2.Job, error) {
	msg, err := w.message(j)
	if err != nil {
		return nil, err
	}
	w.version = j.Version
	msg.Version = proto.Int64(j.Version)
	return msg, nil
}

func (w *watchState) message(j *backend.Job) (*rapiv2.Job, error) {
	if !w.sent {
		// The whole job, its log converted through the shared cache.
		noLog := *j
		noLog.OpLog = nil
		msg, err := jobMessage(&noLog)
		if err != nil {
			return nil, err
		}
		if msg.Oplog, err = w.oplog(j, -1); err != nil {
			return nil, err
		}
		w.sent, w.serial, w.opstatus, w.ops = true, lastSerial(j, -1), slices.Clone(j.OpStatus), j.Ops
		return msg, nil
	}
	return w.delta(j)
}

// delta is the message of what changed since the last one: statuses and
// timestamps, the new log entries, the results when an opcode's status
// changed, the opcodes when one changed (the engine fills an opcode's
// debug_level when it starts).
func (w *watchState) delta(j *backend.Job) (*rapiv2.Job, error) {
	st := jobStatus(j.Status)
	after := w.serial
	out := &rapiv2.Job{
		Id:             j.ID,
		Status:         &st,
		Opstatus:       jobStatusList(j.OpStatus),
		ReceivedTs:     jobTimestamp(j.ReceivedTS),
		StartTs:        jobTimestamp(j.StartTS),
		EndTs:          jobTimestamp(j.EndTS),
		LogSerialAfter: &after,
	}
	var err error
	if out.Oplog, err = w.oplog(j, after); err != nil {
		return nil, err
	}
	if !slices.Equal(j.OpStatus, w.opstatus) {
		out.Opresult = make([]*rapiv2.OpResult, len(j.OpResult))
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
	}
	if !slices.Equal(j.Ops, w.ops) {
		out.Ops = j.Ops
	}
	w.serial, w.opstatus, w.ops = lastSerial(j, after), slices.Clone(j.OpStatus), j.Ops
	return out, nil
}

// oplog converts, per opcode, the log entries with a serial above after.
func (w *watchState) oplog(j *backend.Job, after int64) ([]*rapiv2.OpLog, error) {
	out := make([]*rapiv2.OpLog, len(j.OpLog))
	for i, l := range j.OpLog {
		// Serials grow along a job's log: the new entries are a suffix.
		k := sort.Search(len(l), func(k int) bool { return l[k].Serial > after })
		entries, err := w.logs.convert(l[k:])
		if err != nil {
			return nil, err
		}
		out[i] = &rapiv2.OpLog{Entries: entries}
	}
	return out, nil
}

// lastSerial is the highest log serial of j, at least floor.
func lastSerial(j *backend.Job, floor int64) int64 {
	for _, l := range j.OpLog {
		if n := len(l); n > 0 && l[n-1].Serial > floor {
			floor = l[n-1].Serial
		}
	}
	return floor
}

// watchLogs holds the converted log entries of the jobs being watched,
// shared by their watchers (the messages are only read once built), and
// drops a job's when its last watcher ends.
type watchLogs struct {
	mu   sync.Mutex
	jobs map[int64]*jobLogs
}

type jobLogs struct {
	id      int64
	refs    int // guarded by watchLogs.mu
	mu      sync.Mutex
	entries map[int64]*rapiv2.LogEntry // by serial
}

func (c *watchLogs) acquire(id int64) *jobLogs {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jobs == nil {
		c.jobs = map[int64]*jobLogs{}
	}
	l := c.jobs[id]
	if l == nil {
		l = &jobLogs{id: id, entries: map[int64]*rapiv2.LogEntry{}}
		c.jobs[id] = l
	}
	l.refs++
	return l
}

func (c *watchLogs) release(l *jobLogs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.refs--; l.refs <= 0 {
		delete(c.jobs, l.id)
	}
}

// convert returns the messages of entries, converting those not converted
// yet.
func (l *jobLogs) convert(entries []backend.LogEntry) ([]*rapiv2.LogEntry, error) {
	out := make([]*rapiv2.LogEntry, len(entries))
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range entries {
		if m, ok := l.entries[e.Serial]; ok {
			out[i] = m
			continue
		}
		msg, err := toValue(e.Message)
		if err != nil {
			return nil, err
		}
		m := &rapiv2.LogEntry{Serial: e.Serial, Timestamp: jobTimestamp(&e.Time), LogType: e.Type, Message: msg}
		l.entries[e.Serial] = m
		out[i] = m
	}
	return out, nil
}
