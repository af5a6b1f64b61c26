package jobs

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/server/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/server/errs"
	"github.com/ganeti-gateway/ganeti-gateway/server/store"
)

// Config configures an Engine.
type Config struct {
	// Model is the cluster model the opcodes change; the job records live
	// in its store. Required.
	Model *cluster.Model
	// Executors implement the opcodes, by OP_ID. Defaults to
	// DefaultExecutors(). Submitting an opcode without an executor fails.
	Executors map[string]Executor
	// Workers is the number of jobs that run an opcode at the same time
	// (default 4). Jobs waiting for locks or dependencies take no worker.
	Workers int
	// Clock gives the timestamps of jobs (default time.Now).
	Clock func() time.Time
	// ArchiveAfter is how long a finished job stays in the queue (default
	// 6 hours, what Ganeti's watcher uses; negative: never archive).
	ArchiveAfter time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// EncodeOp gives the legacy JSON value of an opcode (an object with
	// OP_ID and the parameters) for the "ops" field of the "job" query
	// resource. The default is a plain protojson rendering; the server
	// wires the legacy codec.
	EncodeOp func(*rapiv2.OpCode) (any, error)
	// TracerProvider traces submissions, jobs, opcodes, lock waits,
	// allocator runs and store transactions (otel.go); nil: no tracing.
	TracerProvider trace.TracerProvider
	// MeterProvider records the job metrics (otel.go); nil: none.
	MeterProvider metric.MeterProvider
}

// DefaultArchiveAfter is Config.ArchiveAfter's default.
const DefaultArchiveAfter = 6 * time.Hour

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Model == nil {
		return errors.New("jobs: Config.Model is required")
	}
	if c.Executors == nil {
		c.Executors = DefaultExecutors()
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.Workers < 0 {
		return errors.New("jobs: Config.Workers must be positive")
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.ArchiveAfter == 0 {
		c.ArchiveAfter = DefaultArchiveAfter
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.EncodeOp == nil {
		c.EncodeOp = protojsonOp
	}
	return nil
}

// SubmitOptions are the options of a submission.
type SubmitOptions struct {
	// Priority, when set, is the priority of every opcode of the job
	// (PriorityHighest..PriorityLowest), overriding their priority
	// parameters.
	Priority *int
}

// Engine is the job queue and executor.
type Engine struct {
	cfg   Config
	model *cluster.Model
	st    store.Store
	log   *slog.Logger
	com   *committer
	tel   *telemetry

	mu         sync.Mutex
	cond       *sync.Cond // signaled when runq gets a job or on stop
	jobs       map[int64]*job
	nextID     int64
	runq       jobHeap
	locks      *lockManager
	depWaiters map[int64][]*job
	flt        filterState // jobs held back by filter rules (filters.go)
	started    bool
	stopping   bool

	runCtx    context.Context // canceled when Stop gives up waiting
	cancelRun context.CancelFunc
	quit      chan struct{} // closed by Stop
	wg        sync.WaitGroup
}

// job is a job in the queue (not archived).
type job struct {
	rec  *record
	ops  []*rapiv2.OpCode
	msgs []proto.Message
	ids  []string // OP_IDs
	dry  []bool

	pending bool // submitted, not durable yet: invisible
	heapIdx int  // index in runq, -1 when not in it
	req     *lockReq
	holds   bool // req is granted: the job is queued to run its opcode
	depPos  int  // dependencies of the current opcode already satisfied
	archive bool // being archived
	version uint64
	notify  chan struct{} // closed and replaced on every change
	tr      jobTrace      // spans and timings (otel.go)
}

// New opens the job queue persisted in cfg.Model's store: finished jobs
// are kept, queued and waiting ones are queued again, and jobs that were
// running when the server stopped uncleanly end in error (see the package
// documentation). It registers the "job" and "lock" query resources. Jobs
// run once Start is called; Submit works before.
func New(cfg Config) (*Engine, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:        cfg,
		model:      cfg.Model,
		st:         cfg.Model.Store(),
		log:        cfg.Logger,
		jobs:       map[int64]*job{},
		nextID:     1,
		locks:      newLockManager(),
		depWaiters: map[int64][]*job{},
		quit:       make(chan struct{}),
	}
	e.cond = sync.NewCond(&e.mu)
	e.runCtx, e.cancelRun = context.WithCancel(context.Background())
	tel, err := newTelemetry(e, cfg.TracerProvider, cfg.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("jobs: telemetry: %w", err)
	}
	e.tel = tel
	next, recs, err := loadAll(e.st)
	if err != nil {
		return nil, err
	}
	if next > e.nextID {
		e.nextID = next
	}
	now := e.now()
	var fixed []int64
	for _, r := range recs {
		j, err := newJobFromRecord(r)
		if err != nil {
			return nil, err
		}
		if r.ID >= e.nextID {
			e.nextID = r.ID + 1
		}
		switch st := r.status(); st {
		case StatusRunning, StatusCanceling:
			e.log.Warn("job interrupted by an unclean shutdown", "job", r.ID, "status", st)
			r.finishUnfinished(StatusError, errorResult(classExec, msgUnclean, ""), now)
			fixed = append(fixed, r.ID)
		case StatusQueued, StatusWaiting:
			for i, s := range r.OpStatus {
				if s == StatusWaiting {
					r.OpStatus[i] = StatusQueued
					fixed = append(fixed, r.ID)
				}
			}
		}
		e.jobs[r.ID] = j
	}
	e.com = newCommitter(e)
	if len(fixed) > 0 {
		if err := <-e.com.write(fixed...); err != nil {
			e.com.stop()
			return nil, err
		}
	}
	e.mu.Lock()
	for _, id := range sortedIDs(e.jobs) {
		if j := e.jobs[id]; !Finalized(j.rec.status()) {
			e.enqueue(j)
		}
	}
	e.mu.Unlock()
	if err := e.model.SetRowSource("job", cluster.RowSourceFunc(e.jobRows)); err != nil {
		e.com.stop()
		return nil, err
	}
	if err := e.model.SetRowSource("lock", cluster.RowSourceFunc(e.lockRows)); err != nil {
		e.com.stop()
		return nil, err
	}
	return e, nil
}

func newJobFromRecord(r *record) (*job, error) {
	ops, err := decodeOps(r)
	if err != nil {
		return nil, err
	}
	j := &job{rec: r, ops: ops, heapIdx: -1, notify: make(chan struct{}), tr: jobTrace{done: Finalized(r.status())}}
	for i, op := range ops {
		msg := opMember(op)
		if msg == nil {
			return nil, fmt.Errorf("jobs: job %d: opcode %d has no opcode set", r.ID, i)
		}
		j.msgs = append(j.msgs, msg)
		j.ids = append(j.ids, opcodeInfo(msg).GetId())
		j.dry = append(j.dry, dryRunOf(msg))
	}
	return j, nil
}

func sortedIDs(m map[int64]*job) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Start starts the workers and the archiver. It may be called once.
func (e *Engine) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.stopping {
		return
	}
	e.started = true
	for i := 0; i < e.cfg.Workers; i++ {
		e.wg.Add(1)
		go e.worker()
	}
	if e.cfg.ArchiveAfter > 0 {
		e.wg.Add(1)
		go e.archiver()
	}
}

// Stop stops taking submissions, lets the running opcodes finish and
// waits for them; when ctx ends first, the running opcodes' Run phases are
// canceled (their jobs stay "running" in the store and end as an unclean
// shutdown on the next start). Queued jobs stay queued in the store.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return nil
	}
	e.stopping = true
	close(e.quit)
	e.cond.Broadcast()
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		e.cancelRun()
		<-done
	}
	e.cancelRun()
	e.com.stop()
	return err
}

// kill simulates a crash (tests): nothing more is written, the workers and
// Run phases stop.
func (e *Engine) kill() {
	e.com.crash()
	e.mu.Lock()
	if !e.stopping {
		e.stopping = true
		close(e.quit)
	}
	e.cond.Broadcast()
	e.mu.Unlock()
	e.cancelRun()
	e.wg.Wait()
	e.com.stop()
}

func (e *Engine) now() Timestamp { return TimestampOf(e.cfg.Clock()) }

// changed records a change of j (mu held): watchers wake up.
func (e *Engine) changed(j *job) {
	j.version++
	close(j.notify)
	j.notify = make(chan struct{})
	e.observe(j)
}

// persist writes j's record asynchronously (mu may be held).
func (e *Engine) persist(j *job) { e.com.write(j.rec.ID) }

// Submit validates and queues a job of ops, and returns its id once the job
// is durable in the store. The opcodes are copied; an opcode
// "gnt:opcode:<name>" entry is appended to each reason trail and relative
// dependencies are made absolute, as Ganeti does. The submission is a
// child span of ctx's; the job's own trace links back to it.
func (e *Engine) Submit(ctx context.Context, ops []*rapiv2.OpCode, opt SubmitOptions) (int64, error) {
	ctx, span := e.startSubmit(ctx, len(ops))
	id, ids, err := e.submit(ctx, ops, opt)
	e.endSubmit(ctx, span, id, ids, err)
	return id, err
}

func (e *Engine) submit(ctx context.Context, ops []*rapiv2.OpCode, opt SubmitOptions) (int64, []string, error) {
	if len(ops) == 0 {
		return 0, nil, errs.Prereq(errs.CodeInval, "Job has no opcodes")
	}
	if opt.Priority != nil && (*opt.Priority < PriorityHighest || *opt.Priority > PriorityLowest) {
		return 0, nil, errs.Prereq(errs.CodeInval, "Invalid priority %d", *opt.Priority)
	}
	j, err := e.newJob(ops)
	if err != nil {
		return 0, nil, err
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return 0, nil, errs.Unavailable("Job queue is drained, cannot submit")
	}
	id := e.nextID
	e.nextID++
	e.mu.Unlock()

	if err := e.newRecord(j, id, opt.Priority); err != nil {
		return 0, nil, err
	}
	e.setOrigin(ctx, j.rec)

	e.mu.Lock()
	e.jobs[id] = j
	e.mu.Unlock()
	if err := <-e.com.writeCtx(ctx, id); err != nil {
		e.mu.Lock()
		delete(e.jobs, id)
		e.wakeDependents(id)
		e.mu.Unlock()
		if errors.Is(err, errStopped) || errors.Is(err, errCrashed) {
			return 0, nil, errs.Unavailable("Job queue is drained, cannot submit")
		}
		return 0, nil, fmt.Errorf("jobs: persist job %d: %w", id, err)
	}
	e.mu.Lock()
	j.pending = false
	if !Finalized(j.rec.status()) {
		e.enqueue(j)
	}
	e.mu.Unlock()
	return id, j.ids, nil
}

// Get returns a snapshot of a job, archived or not; false for an unknown
// id and for an archived job that cannot be read (see Lookup).
func (e *Engine) Get(id int64) (*Job, bool) {
	s, ok, err := e.Lookup(id)
	return s, ok && err == nil
}

// Lookup returns a snapshot of a job, archived or not; false for an
// unknown id. An archived job whose record cannot be read is an error
// (logged, wrapping store.ErrCorrupt when the record is damaged), never a
// partial job and never "not found".
func (e *Engine) Lookup(id int64) (*Job, bool, error) {
	e.mu.Lock()
	if j := e.jobs[id]; j != nil && !j.pending {
		s := e.snapshot(j)
		e.mu.Unlock()
		return s, true, nil
	}
	e.mu.Unlock()
	r, err := loadArchived(e.st, id)
	if err != nil {
		e.log.Error("reading an archived job failed", "job", id, "err", err)
		return nil, false, fmt.Errorf("jobs: archived job %d: %w", id, err)
	}
	if r == nil {
		// It may have been archived between the two reads.
		e.mu.Lock()
		defer e.mu.Unlock()
		if j := e.jobs[id]; j != nil && !j.pending {
			return e.snapshot(j), true, nil
		}
		return nil, false, nil
	}
	s, err := archivedSnapshot(r)
	if err != nil {
		e.log.Error("decoding an archived job failed", "job", id, "err", err)
		return nil, false, fmt.Errorf("jobs: archived job %d: %w", id, err)
	}
	return s, true, nil
}

func archivedSnapshot(r *record) (*Job, error) {
	ops, err := decodeOps(r)
	if err != nil {
		return nil, err
	}
	s := snapshotOf(r, ops)
	s.Archived = true
	return s, nil
}

// List returns the jobs of the queue (not the archived ones) by id.
func (e *Engine) List() []*Job {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Job, 0, len(e.jobs))
	for _, id := range sortedIDs(e.jobs) {
		if j := e.jobs[id]; !j.pending {
			out = append(out, e.snapshot(j))
		}
	}
	return out
}

// IDs returns the ids of the jobs of the queue (not the archived ones).
func (e *Engine) IDs() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]int64, 0, len(e.jobs))
	for id, j := range e.jobs {
		if !j.pending {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (e *Engine) snapshot(j *job) *Job { return snapshotOf(j.rec, j.ops) }

func snapshotOf(r *record, ops []*rapiv2.OpCode) *Job {
	return &Job{
		ID:         r.ID,
		Ops:        slices.Clone(ops),
		Status:     r.status(),
		Summary:    slices.Clone(r.Summary),
		OpStatus:   slices.Clone(r.OpStatus),
		OpResult:   slices.Clone(r.OpResult),
		OpLog:      slices.Clone(r.OpLog),
		OpStart:    slices.Clone(r.OpStart),
		OpExec:     slices.Clone(r.OpExec),
		OpEnd:      slices.Clone(r.OpEnd),
		OpPriority: slices.Clone(r.OpPriority),
		Priority:   r.priority(),
		ReceivedTS: r.Received,
		StartTS:    r.Start,
		EndTS:      r.End,
	}
}

// Cancel cancels a job that has not started running, with Ganeti's
// answers: (true, "Dequeued job N") for a queued or waiting job; (false,
// "Job N is no longer waiting in the queue") for a running one; (false,
// "Job N not found in queue") for a finished or unknown one. The opcodes
// that had not started get a null result, one that was waiting for its
// locks "Job canceled by request".
func (e *Engine) Cancel(id int64) (bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.jobs[id]
	if j == nil || j.pending {
		return false, fmt.Sprintf("Job %d not found in queue", id)
	}
	r := j.rec
	switch st := r.status(); {
	case Finalized(st):
		return false, fmt.Sprintf("Job %d not found in queue", id)
	case st == StatusRunning || st == StatusCanceling:
		return false, fmt.Sprintf("Job %d is no longer waiting in the queue", id)
	}
	// A job waiting for its locks has started: Ganeti's job process marks
	// its opcodes "Job canceled by request". A queued one, or one waiting
	// for a dependency, is dequeued with null results (3.0's luxid).
	var res any
	if j.req != nil {
		res = msgCanceled
	}
	r.finishUnfinished(StatusCanceled, res, e.now())
	if j.heapIdx >= 0 {
		heap.Remove(&e.runq, j.heapIdx)
	}
	e.dropLocks(j)
	e.ended(j)
	e.changed(j)
	e.persist(j)
	return true, fmt.Sprintf("Dequeued job %d", id)
}

// dropLocks releases (or withdraws) j's lock request (mu held).
func (e *Engine) dropLocks(j *job) {
	if j.req == nil {
		return
	}
	if !j.req.granted {
		e.lockAbandoned(j)
	}
	granted := e.locks.release(j.req)
	j.req, j.holds = nil, false
	for _, g := range granted {
		if gj := e.jobs[g.owner]; gj != nil && gj.req == g {
			gj.holds = true
			e.lockAcquired(gj, true)
			e.enqueue(gj)
		}
	}
}

// ended handles a job that reached a final status (mu held).
func (e *Engine) ended(j *job) {
	e.dropLocks(j)
	e.wakeDependents(j.rec.ID)
	e.filtersJobEnded(j)
}

func (e *Engine) wakeDependents(id int64) {
	ws := e.depWaiters[id]
	delete(e.depWaiters, id)
	for _, w := range ws {
		if !w.pending && !Finalized(w.rec.status()) && w.heapIdx < 0 && w.req == nil {
			e.enqueue(w)
		}
	}
}

// enqueue puts j in the run queue (mu held).
func (e *Engine) enqueue(j *job) {
	if j.heapIdx >= 0 {
		heap.Fix(&e.runq, j.heapIdx)
		return
	}
	heap.Push(&e.runq, j)
	e.cond.Signal()
}

// Archive moves the finished jobs that ended more than ArchiveAfter ago
// to the archive and returns how many it moved. The engine does it
// periodically.
func (e *Engine) Archive() (int, error) {
	if e.cfg.ArchiveAfter < 0 {
		return 0, nil
	}
	cutoff := e.cfg.Clock().Add(-e.cfg.ArchiveAfter)
	var ids []int64
	e.mu.Lock()
	for id, j := range e.jobs {
		if j.archive || !Finalized(j.rec.status()) || j.rec.End == nil || !j.rec.End.Time().Before(cutoff) {
			continue
		}
		j.archive = true
		ids = append(ids, id)
	}
	e.mu.Unlock()
	if len(ids) == 0 {
		return 0, nil
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	if err := <-e.com.archiveJobs(ids); err != nil {
		e.mu.Lock()
		for _, id := range ids {
			if j := e.jobs[id]; j != nil {
				j.archive = false
			}
		}
		e.mu.Unlock()
		return 0, err
	}
	return len(ids), nil
}

func (e *Engine) archiver() {
	defer e.wg.Done()
	every := min(e.cfg.ArchiveAfter/10, time.Minute)
	t := time.NewTicker(max(every, time.Second))
	defer t.Stop()
	for {
		select {
		case <-e.quit:
			return
		case <-t.C:
			if _, err := e.Archive(); err != nil && !errors.Is(err, errStopped) {
				e.log.Error("archiving jobs failed", "err", err)
			}
		}
	}
}

// takeBatch snapshots the records the committer writes (called by it).
func (e *Engine) takeBatch(dirty map[int64]struct{}, archive []int64) (*batch, error) {
	recs := map[int64]*record{}
	arch := map[int64]*record{}
	e.mu.Lock()
	for id := range dirty {
		if j := e.jobs[id]; j != nil {
			recs[id] = j.rec.clone()
		}
	}
	for _, id := range archive {
		if j := e.jobs[id]; j != nil && j.archive {
			arch[id] = j.rec.clone()
		}
	}
	next := e.nextID
	e.mu.Unlock()
	b := &batch{recs: map[string][]byte{}, archive: map[string][]byte{}, nextID: next}
	for id, r := range recs {
		enc, err := encodeRecord(r)
		if err != nil {
			return nil, err
		}
		b.recs[jobKey(id)] = enc
	}
	for id, r := range arch {
		enc, err := encodeRecord(r)
		if err != nil {
			return nil, err
		}
		b.archive[jobKey(id)] = enc
		b.archIDs = append(b.archIDs, id)
	}
	return b, nil
}

// archived drops archived jobs from memory (called by the committer).
func (e *Engine) archived(ids []int64) {
	if len(ids) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		if j := e.jobs[id]; j != nil && j.archive {
			delete(e.jobs, id)
			e.changed(j)
		}
	}
}

// encodeError is Ganeti's encoded opcode error for err.
func (e *Engine) encodeError(jobID int64, idx int, err error) []any {
	if de, ok := errs.As(err); ok {
		return errorResult(de.Class, de.Msg, string(de.Code))
	}
	e.log.Error("opcode failed unexpectedly", "job", jobID, "opcode", idx, "err", err)
	return errorResult(classExec, msgUnexpected, "")
}

// safeExec runs an executor's Exec, turning a panic into an error.
func safeExec(e *Engine, ex Executor, x *ExecContext, msg proto.Message) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("executor panic", "job", x.JobID, "opcode", x.OpIndex, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return ex.Exec(x, msg)
}

func safeLocks(e *Engine, ex Executor, msg proto.Message, st *cluster.State) (locks []Lock, err error) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("executor panic in Locks", "panic", p, "stack", string(debug.Stack()))
			locks, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return ex.Locks(msg, st)
}

func safeRun(e *Engine, rn Runner, x *ExecContext, msg proto.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("executor panic in Run", "job", x.JobID, "opcode", x.OpIndex, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return rn.Run(x, msg)
}

// protojsonOp is the default Config.EncodeOp.
func protojsonOp(op *rapiv2.OpCode) (any, error) {
	msg := opMember(op)
	if msg == nil {
		return nil, nil
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil {
		return nil, err
	}
	v, err := decodeValue(b)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	m["OP_ID"] = opcodeInfo(msg).GetId()
	return m, nil
}
