// Package backend is the seam between the RAPI services and a cluster:
// the interface the services call (Backend) and its vocabulary (queries,
// jobs, filter rules, the origin of a call). It is the client interface of
// Ganeti's own RAPI handlers (lib/rapi/baserlib.py: GetClient, then
// Query, SubmitJob, WaitForJobChangeOnce ...), so that a simulated cluster
// (internal/sim) and a real one behind its RAPI or luxi can serve the same
// services.
//
// Every method takes the caller's context: its deadline, cancellation and
// trace reach the backend. Errors are internal/errs errors (Ganeti's error
// classes), which the transport maps to gRPC and legacy answers; an error
// that is not one is an internal error and never shown.
//
// Values are shared: slices, maps and messages a backend returns may be
// shared with other callers and with the backend itself. Read them, never
// modify them.
package backend

import (
	"context"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// Backend is everything the RAPI services need from a cluster.
type Backend interface {
	Reader
	JobQueue
	FilterRules
}

// Reader answers the reads: luxi's Query, QueryFields, QueryClusterInfo,
// QueryTags and the few reads RAPI makes otherwise.
type Reader interface {
	// ClusterInfo is Ganeti's cluster information (GET /2/info).
	ClusterInfo(ctx context.Context) (map[string]any, error)
	// Names lists the names of the objects of a query resource (the
	// UUIDs of filter rules) in Ganeti's order.
	Names(ctx context.Context, resource string) ([]string, error)
	// Get returns the cells of fields of one object of resource, by name;
	// an unknown object is an errs.CodeNoEnt error with Ganeti's message.
	Get(ctx context.Context, resource, name string, fields []string) ([]Cell, error)
	// Query runs a query (filter: a Ganeti query filter, nil for all)
	// within lim.
	Query(ctx context.Context, resource string, fields []string, filter any, lim QueryLimits) (*QueryResult, error)
	// QueryFields describes the fields of resource (all when fields is
	// empty).
	QueryFields(ctx context.Context, resource string, fields []string) ([]FieldDef, error)
	// Tags returns the sorted tags of an object: kind is a Tag* constant,
	// name is ignored for the cluster.
	Tags(ctx context.Context, kind, name string) ([]string, error)
	// NodeRole is a node's role as RAPI shows it (master,
	// master-candidate, regular, drained, offline: Ganeti's _NR_MAP).
	NodeRole(ctx context.Context, name string) (string, error)
	// InstanceConsole is the console information of a running instance.
	InstanceConsole(ctx context.Context, name string) (map[string]any, error)
	// OSNames lists the operating systems (name+variant), as GET /2/os.
	OSNames(ctx context.Context) ([]string, error)
}

// JobQueue runs jobs of opcodes: luxi's SubmitJob, QueryJobs, CancelJob and
// WaitForJobChange, and a stream of a job's states.
type JobQueue interface {
	// Supports reports whether the queue runs the opcode OP_ID opID.
	Supports(opID string) bool
	// Submit queues a job and returns its id once the job is committed.
	Submit(ctx context.Context, ops []*rapiv2.OpCode, opt SubmitOptions) (int64, error)
	// Job returns a snapshot of a job, archived or not; false for an
	// unknown id. A job that cannot be read is an error, never a partial
	// job and never "not found".
	Job(ctx context.Context, id int64) (*Job, bool, error)
	// JobIDs lists the ids of the jobs not archived, in order.
	JobIDs(ctx context.Context) ([]int64, error)
	// Jobs returns snapshots of the jobs not archived, in id order.
	Jobs(ctx context.Context) ([]*Job, error)
	// Cancel cancels a job with Ganeti's answers (true, "Dequeued job
	// N"), (false, "Job N is no longer waiting in the queue") or (false,
	// "Job N not found in queue").
	Cancel(ctx context.Context, id int64) (ok bool, msg string, err error)
	// WaitForChange is Ganeti's WaitForJobChange: the current values of
	// fields and the log entries after prevSerial (-1: all) as soon as
	// they differ from prevInfo or the job has ended; changed is false
	// when timeout passes first. An unknown job is an errs.CodeNoEnt
	// error (JobNotFound).
	WaitForChange(ctx context.Context, id int64, fields []string, prevInfo []any, prevSerial int64,
		timeout time.Duration) (info []any, logs [][]any, changed bool, err error)
	// Watch streams a job's snapshots: the current one at once, then one
	// after every change (a slow reader gets the latest), until the job
	// has ended (the channel is then closed after the final snapshot),
	// ctx ends or the queue stops. An unknown job is JobNotFound.
	Watch(ctx context.Context, id int64) (<-chan *Job, error)
}

// UnsupportedExplainer is implemented by a job queue that can tell why it
// does not run an opcode (Supports false): the error a client gets
// instead of the default "not implemented" (for example, an upstream
// transport that cannot reach the opcode: FAILED_PRECONDITION).
type UnsupportedExplainer interface {
	Unsupported(opID string) error
}

// FilterRules changes the job filter rules (luxi ReplaceFilter and
// DeleteFilter); they are read as the "filter" query resource.
type FilterRules interface {
	// ReplaceFilter adds (uuid "") or replaces the rule uuid and returns
	// its UUID. The backend validates the rule as luxid does.
	ReplaceFilter(ctx context.Context, uuid string, rule FilterRuleSpec) (string, error)
	// DeleteFilter deletes a rule; an unknown one is an errs.CodeNoEnt
	// error.
	DeleteFilter(ctx context.Context, uuid string) error
}

// FilterRuleSpec is a filter rule as a client gives it: JSON-like values
// with integral numbers as int64.
type FilterRuleSpec struct {
	Priority   int64
	Predicates []any
	// Action is nil (CONTINUE), a Filter* action name or ["RATE_LIMIT", n].
	Action any
	// Reason is the reason trail of the change.
	Reason []any
}

// Versioned is implemented by backends whose reads are a function of a
// state that StateVersion identifies: reads made while it returns the same
// (==) value see the same state, so their answers may be reused. The value
// must not be reused for another state (a pointer to an immutable
// snapshot, say). nil means that the reads of this call are not versioned
// (a backend that routes calls to several clusters, not all versioned):
// nothing of them is reused.
type Versioned interface {
	StateVersion(ctx context.Context) any
}
