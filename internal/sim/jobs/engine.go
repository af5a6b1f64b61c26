package jobs

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Config configures an Engine.
type Config struct {
	// Model is the cluster model the opcodes change; the job records live
	// in its store. Required.
	Model *cluster.Model
	// Executors implement the opcodes, by OP_ID (lu.DefaultExecutors()).
	// Required. Submitting an opcode without an executor fails.
	Executors map[string]opexec.Executor
	// Workers is the number of jobs that run an opcode at the same time
	// (default 4). Jobs waiting for locks or dependencies take no worker.
	Workers int
	// Clock gives the timestamps of jobs (default time.Now).
	Clock func() time.Time
	// ArchiveAfter is how long a finished job stays in the queue (default
	// 6 hours, what Ganeti's watcher uses; negative: never archive).
	ArchiveAfter time.Duration
	// ArchiveRetention is how long an archived job is kept after it
	// ended; older ones are removed (RemoveArchived). Default
	// DefaultArchiveRetention (Ganeti's ganeti-cleaner keeps 21 days);
	// negative: keep them forever.
	ArchiveRetention time.Duration
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
	// QueueSize is the most jobs the queue holds (not archived, finished
	// or not) before submissions are refused with Ganeti's "Job queue is
	// full, needs archiving" (503). Default DefaultQueueSize, Ganeti's
	// JOB_QUEUE_SIZE_HARD_LIMIT; negative: no limit. From SoftQueueSize()
	// on, finished jobs are archived early, oldest first.
	QueueSize int
	// MaxOpsPerJob is the most opcodes one job may have (default
	// DefaultMaxOpsPerJob; negative: no limit).
	MaxOpsPerJob int
	// IdempotencyTTL is how long the idempotency key of a submission is
	// kept (SubmitOptions.Idempotency); default DefaultIdempotencyTTL.
	IdempotencyTTL time.Duration
	// OnFailure, when set, is called once (in its own goroutine) when the
	// store refuses a commit and the engine stops (see Engine.Err).
	OnFailure func(error)
	// IAllocator finds and runs external iallocators (hail) for the
	// opcodes that allocate nodes; default: hail on PATH (or where
	// Debian's ganeti-htools-3.0 installs it) run as a subprocess.
	IAllocator opexec.IAllocatorRunner
}

// Queue limits (Config.QueueSize, Config.MaxOpsPerJob).
const (
	// DefaultQueueSize is Ganeti's JOB_QUEUE_SIZE_HARD_LIMIT.
	DefaultQueueSize = 5000
	// DefaultMaxOpsPerJob bounds a job's size; Ganeti has no such limit.
	DefaultMaxOpsPerJob = 1000
)

// SoftQueueSize is Ganeti's JOB_QUEUE_SIZE_SOFT_LIMIT for a queue size:
// 80% of it. Beyond it the engine archives finished jobs early.
func SoftQueueSize(size int) int { return size * 8 / 10 }

// DefaultArchiveAfter is Config.ArchiveAfter's default.
const DefaultArchiveAfter = 6 * time.Hour

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Model == nil {
		return errors.New("jobs: Config.Model is required")
	}
	if c.Executors == nil {
		return errors.New("jobs: Config.Executors is required")
	}
	if c.IAllocator == nil {
		c.IAllocator = opexec.SubprocessIAllocators{}
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
	if c.ArchiveRetention == 0 {
		c.ArchiveRetention = DefaultArchiveRetention
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.EncodeOp == nil {
		c.EncodeOp = protojsonOp
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.MaxOpsPerJob == 0 {
		c.MaxOpsPerJob = DefaultMaxOpsPerJob
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if c.IdempotencyTTL < 0 {
		return errors.New("jobs: Config.IdempotencyTTL must be positive")
	}
	return nil
}

// Engine is the job queue and executor.
type Engine struct {
	cfg   Config
	model *cluster.Model
	st    store.Store
	log   *slog.Logger
	com   *committer
	tel   *instruments

	mu         sync.Mutex
	cond       *sync.Cond // signaled when runq gets a job or on stop
	jobs       map[int64]*job
	nextID     int64
	runq       jobHeap
	locks      *lockManager
	depWaiters map[int64][]*job
	flt        filterState // jobs held back by filter rules (filters.go)
	started    bool
	stopping   bool // no more submissions or runs (Stop, kill, failStop)
	closed     bool // Stop was called
	submitting int  // submissions holding an id, not yet in jobs
	// failed is the store failure that stopped the engine (fail-stop):
	// nothing more is committed, jobs show what was committed last.
	failed error
	// archiving is set while an early (soft-limit) archive runs.
	archiving bool
	trims     singleflight.Group // one trimQueue at a time
	keys      keyLocks           // submissions with an idempotency key being decided

	// follower: the engine shows the records of another replica's commits
	// and runs and writes nothing (NewFollower).
	follower bool

	runCtx    context.Context // canceled when Stop gives up waiting
	cancelRun context.CancelFunc
	quit      chan struct{} // closed by Stop
	wg        sync.WaitGroup
}

// job is a job in the queue (not archived).
type job struct {
	// rec is the job's working state: ahead of the store while a write is
	// pending. Clients never see it: they see shown.
	rec *record
	// shown is the job as last committed (nil until its submission
	// commits): the only state Get, List, queries and waits return.
	shown *Job
	ops   []*rapiv2.OpCode
	msgs  []proto.Message
	ids   []string // OP_IDs
	dry   []bool
	// key is the idempotency key record written with the job's record
	// while the job is pending (nil when none).
	key *pendingKey

	pending bool // submitted, not durable yet: invisible (shown is nil)
	heapIdx int  // index in runq, -1 when not in it
	req     *lockReq
	holds   bool          // req is granted: the job is queued to run its opcode
	depPos  int           // dependencies of the current opcode already satisfied
	archive bool          // being archived
	version uint64        // bumped on every published (committed) change
	notify  chan struct{} // closed and replaced on every published change
	tr      jobTrace      // spans and timings (otel.go)
}

// newEngine is an engine on cfg with no job loaded yet (follower: one
// that only publishes the leader's records).
func newEngine(cfg Config, follower bool) (*Engine, error) {
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
		follower:   follower,
	}
	e.cond = sync.NewCond(&e.mu)
	e.runCtx, e.cancelRun = context.WithCancel(context.Background())
	tel, err := newTelemetry(e, cfg.TracerProvider, cfg.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("jobs: telemetry: %w", err)
	}
	e.tel = tel
	return e, nil
}

// New opens the job queue persisted in cfg.Model's store: finished jobs
// are kept, queued and waiting ones are queued again, and jobs that were
// running when the server stopped uncleanly end in error (see the package
// documentation). It registers the "job" and "lock" query resources. Jobs
// run once Start is called; Submit works before.
func New(cfg Config) (*Engine, error) {
	e, err := newEngine(cfg, false)
	if err != nil {
		return nil, err
	}
	next, recs, err := loadAll(context.Background(), e.st)
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
	if _, err := e.ExpireKeys(); err != nil {
		return nil, fmt.Errorf("jobs: removing expired idempotency keys: %w", err)
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
	j.shown = snapshotOf(r, ops)
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

// Start starts the workers and the housekeeping: the archiver, the
// removal of expired archived jobs and idempotency keys. It may be called
// once; a follower's engine starts nothing.
func (e *Engine) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.stopping || e.follower {
		return
	}
	e.started = true
	for i := 0; i < e.cfg.Workers; i++ {
		e.wg.Add(1)
		go e.worker()
	}
	if e.cfg.ArchiveAfter > 0 {
		// Every tenth of the archive age, between a second and a minute.
		e.periodically(min(max(e.cfg.ArchiveAfter/10, time.Second), time.Minute), false, e.archiveOld)
	}
	if e.cfg.ArchiveRetention > 0 {
		// At once too: a leader may not lead for a whole period.
		e.periodically(sweepEvery(e.cfg.ArchiveRetention), true, e.removeOldArchived)
	}
	e.periodically(min(max(e.cfg.IdempotencyTTL/10, time.Second), time.Minute), false, e.expireKeys)
}

// periodically runs fn every d (and at once when now is set) until the
// engine stops (mu held).
func (e *Engine) periodically(d time.Duration, now bool, fn func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if now {
			fn()
		}
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-e.quit:
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// Barrier returns once what the engine was committing when it was called
// is published: a read made after it shows every commit that etcd (and so
// a follower) could show before the call.
func (e *Engine) Barrier(ctx context.Context) error { return e.com.barrier(ctx) }

// Stop stops taking submissions, lets the running opcodes finish and
// waits for them; when ctx ends first, the running opcodes' Run phases are
// canceled (their jobs stay "running" in the store and end as an unclean
// shutdown on the next start). Queued jobs stay queued in the store.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.halt()
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

// halt stops taking submissions and wakes the workers so that they end
// (mu held).
func (e *Engine) halt() {
	if !e.stopping {
		e.stopping = true
		close(e.quit)
	}
	e.cond.Broadcast()
}

// failStop stops the engine after the store refused a commit, as etcd
// stops on a failed WAL write: nothing more is committed or run, jobs show
// what was committed last, submissions are refused, and Err reports the
// failure until the server is restarted (which reads what the store holds).
func (e *Engine) failStop(err error) {
	e.mu.Lock()
	if e.failed != nil {
		e.mu.Unlock()
		return
	}
	e.failed = err
	e.halt()
	e.mu.Unlock()
	e.com.fail()
	e.cancelRun()
	e.log.Error("the store refused a commit: the job queue stopped; jobs show what was last committed; "+
		"restart the server once the store can write again", "err", err)
	if e.cfg.OnFailure != nil {
		go e.cfg.OnFailure(ErrStoreFailed)
	}
}

// ErrStoreFailed is what Engine.Err returns after the store refused a
// commit.
var ErrStoreFailed = errors.New("jobs: the store refused a commit; the job queue is stopped until a restart")

// Err is nil while the engine works, ErrStoreFailed once the store refused
// a commit (the engine then takes and runs no job until a restart).
func (e *Engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed != nil {
		return ErrStoreFailed
	}
	return nil
}

// kill simulates a crash (tests): nothing more is written, the workers and
// Run phases stop.
func (e *Engine) kill() {
	e.com.crash()
	e.mu.Lock()
	e.closed = true
	e.halt()
	e.mu.Unlock()
	e.cancelRun()
	e.wg.Wait()
	e.com.stop()
}

func (e *Engine) now() Timestamp { return TimestampOf(e.cfg.Clock()) }

// changed records a change of j's working state (mu held). Clients see it
// once the store has committed it (publish): call persist too.
func (e *Engine) changed(j *job) { e.observe(j) }

// publish makes a committed state of j visible (mu held): reads return it,
// waiters wake up and, once it is final, the jobs depending on j re-check.
func (e *Engine) publish(j *job, r *record, ops []*rapiv2.OpCode) {
	j.shown = snapshotOf(r, ops)
	e.wake(j)
	if j.shown.Finalized() {
		e.wakeDependents(r.ID)
	}
}

// wake wakes j's waiters (mu held).
func (e *Engine) wake(j *job) {
	j.version++
	close(j.notify)
	j.notify = make(chan struct{})
}

// persist writes j's record asynchronously (mu may be held); it is
// published once committed.
func (e *Engine) persist(j *job) { e.com.write(j.rec.ID) }

// Submit validates and queues a job of ops, and returns its id once the job
// is durable in the store. The opcodes are copied; an opcode
// "gnt:opcode:<name>" entry is appended to each reason trail and relative
// dependencies are made absolute, as Ganeti does. The submission is a
// child span of ctx's; the job's own trace links back to it.
func (e *Engine) Submit(ctx context.Context, ops []*rapiv2.OpCode, opt SubmitOptions) (int64, error) {
	if e.follower {
		return 0, errFollower()
	}
	ctx, span := e.startSubmit(ctx, len(ops))
	var (
		id       int64
		ids      []string
		replayed bool
		err      error
	)
	if opt.Idempotency != nil {
		id, ids, replayed, err = e.submitKeyed(ctx, ops, opt)
	} else {
		id, ids, err = e.submit(ctx, ops, opt, nil)
	}
	e.endSubmit(ctx, span, id, ids, replayed, err)
	return id, err
}

// submit queues a new job. keyOf, when set, gives the idempotency key
// record to write with the job's first record.
func (e *Engine) submit(ctx context.Context, ops []*rapiv2.OpCode, opt SubmitOptions, keyOf func(id int64) (*pendingKey, error)) (int64, []string, error) {
	if len(ops) == 0 {
		return 0, nil, errs.Prereq(errs.CodeInval, "Job has no opcodes")
	}
	if n := e.cfg.MaxOpsPerJob; n > 0 && len(ops) > n {
		return 0, nil, errs.Prereq(errs.CodeInval, "Job has too many opcodes (%d, at most %d)", len(ops), n)
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
	err = e.admitSubmission()
	if errors.Is(err, errQueueFull) {
		// Make room by archiving finished jobs (oldest first), then check
		// again: only unfinished jobs fill the queue.
		e.mu.Unlock()
		if _, aerr := e.trimQueue(); aerr != nil && !errors.Is(aerr, errStopped) && !errors.Is(aerr, errFailed) {
			e.log.Error("archiving jobs early failed", "err", aerr)
		}
		e.mu.Lock()
		err = e.admitSubmission()
	}
	if err != nil {
		e.mu.Unlock()
		if errors.Is(err, errQueueFull) {
			err = errs.Unavailable("Job queue is full, needs archiving")
		}
		return 0, nil, err
	}
	id := e.nextID
	e.nextID++
	e.submitting++
	e.mu.Unlock()

	err = e.newRecord(j, id, opt.Priority)
	if err == nil {
		e.setOrigin(ctx, j.rec)
		if keyOf != nil {
			j.key, err = keyOf(id)
		}
	}
	e.mu.Lock()
	e.submitting--
	if err == nil {
		e.jobs[id] = j
	}
	e.mu.Unlock()
	if err != nil {
		return 0, nil, err
	}
	if err := <-e.com.writeCtx(ctx, id); err != nil {
		e.mu.Lock()
		delete(e.jobs, id)
		e.wakeDependents(id)
		e.mu.Unlock()
		if errors.Is(err, errStopped) || errors.Is(err, errCrashed) {
			return 0, nil, errs.Unavailable("Job queue is drained, cannot submit")
		}
		if errors.Is(err, errFailed) {
			return 0, nil, errQueueFailed()
		}
		return 0, nil, fmt.Errorf("jobs: persist job %d: %w", id, err)
	}
	e.mu.Lock()
	j.pending = false
	j.key = nil // committed with the job
	if !Finalized(j.rec.status()) {
		e.enqueue(j)
	}
	e.mu.Unlock()
	return id, j.ids, nil
}

// errQueueFailed is what a submission gets after the store refused a
// commit.
func errQueueFailed() error {
	return errs.Unavailable("Job queue is unavailable: the store refused a write")
}

// admitSubmission checks that the queue takes one more job (mu held):
// Ganeti's drain and queue size rules. Reaching the soft limit starts an
// early archive of finished jobs.
func (e *Engine) admitSubmission() error {
	if e.failed != nil {
		return errQueueFailed()
	}
	if e.stopping {
		return errs.Unavailable("Job queue is drained, cannot submit")
	}
	size := e.cfg.QueueSize
	if size <= 0 {
		return nil
	}
	n := len(e.jobs) + e.submitting
	if n >= SoftQueueSize(size) && !e.archiving {
		e.archiving = true
		e.wg.Add(1)
		go e.archiveEarly()
	}
	if n >= size {
		return errQueueFull
	}
	return nil
}

// errQueueFull is admitSubmission's answer for a full queue.
var errQueueFull = errors.New("jobs: queue full")

// Get returns a snapshot of a job, archived or not; false for an unknown
// id and for an archived job that cannot be read (see Lookup).
func (e *Engine) Get(id int64) (*Job, bool) {
	s, ok, err := e.Lookup(context.Background(), id)
	return s, ok && err == nil
}

// Lookup returns a snapshot of a job, archived or not; false for an
// unknown id. An archived job whose record cannot be read is an error
// (logged, wrapping store.ErrCorrupt when the record is damaged), never a
// partial job and never "not found".
func (e *Engine) Lookup(ctx context.Context, id int64) (*Job, bool, error) {
	e.mu.Lock()
	if j := e.jobs[id]; j != nil && !j.pending {
		s := e.snapshot(j)
		e.mu.Unlock()
		return s, true, nil
	}
	e.mu.Unlock()
	r, err := loadArchived(ctx, e.st, id)
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

// snapshot is j as last committed (mu held; j not pending). Snapshots are
// shared by readers: never modify one.
func (e *Engine) snapshot(j *job) *Job { return j.shown }

func snapshotOf(r *record, ops []*rapiv2.OpCode) *Job {
	return &Job{
		ID:              r.ID,
		Ops:             redactOps(ops),
		Status:          r.status(),
		Summary:         slices.Clone(r.Summary),
		OpStatus:        slices.Clone(r.OpStatus),
		OpResult:        slices.Clone(r.OpResult),
		OpLog:           slices.Clone(r.OpLog),
		OpStart:         slices.Clone(r.OpStart),
		OpExec:          slices.Clone(r.OpExec),
		OpEnd:           slices.Clone(r.OpEnd),
		OpPriority:      slices.Clone(r.OpPriority),
		Priority:        r.priority(),
		ReceivedTS:      r.Received,
		StartTS:         r.Start,
		EndTS:           r.End,
		Version:         r.Version,
		OpStatusVersion: r.OpStatusVersion,
		OpsVersion:      r.OpsVersion,
	}
}

// Cancel cancels a job that has not started running, with Ganeti's
// answers: (true, "Dequeued job N") for a queued or waiting job; (false,
// "Job N is no longer waiting in the queue") for a running one; (false,
// "Job N not found in queue") for a finished or unknown one. The opcodes
// that had not started get a null result, one that was waiting for its
// locks "Job canceled by request". It returns once the cancellation is
// committed.
func (e *Engine) Cancel(id int64) (bool, string) {
	if e.follower {
		return false, fmt.Sprintf("Job %d could not be canceled: the job queue is unavailable", id)
	}
	done, ok, msg := e.cancel(id)
	if done == nil {
		return ok, msg
	}
	if err := <-done; err != nil {
		return false, fmt.Sprintf("Job %d could not be canceled: the job queue is unavailable", id)
	}
	return ok, msg
}

func (e *Engine) cancel(id int64) (<-chan error, bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.jobs[id]
	if j == nil || j.pending {
		return nil, false, fmt.Sprintf("Job %d not found in queue", id)
	}
	r := j.rec
	switch st := r.status(); {
	case Finalized(st):
		return nil, false, fmt.Sprintf("Job %d not found in queue", id)
	case st == StatusRunning || st == StatusCanceling:
		return nil, false, fmt.Sprintf("Job %d is no longer waiting in the queue", id)
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
	return e.com.write(id), true, fmt.Sprintf("Dequeued job %d", id)
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

// ended handles a job that reached a final status (mu held). Its
// dependents re-check once the status is committed (publish).
func (e *Engine) ended(j *job) {
	e.dropLocks(j)
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
	return e.archiveWhere(func(ended []*job) []*job {
		return slices.DeleteFunc(ended, func(j *job) bool { return !j.shown.EndTS.Time().Before(cutoff) })
	})
}

// archiveEarly is trimQueue in the background, started when the queue
// reaches its soft limit.
func (e *Engine) archiveEarly() {
	defer e.wg.Done()
	if _, err := e.trimQueue(); err != nil && !errors.Is(err, errStopped) && !errors.Is(err, errFailed) {
		e.log.Error("archiving jobs early failed", "err", err)
	}
	e.mu.Lock()
	e.archiving = false
	e.mu.Unlock()
}

// trimQueue archives the oldest finished jobs until the queue is 10% of
// its size below the soft limit (Ganeti's JOB_QUEUE_SIZE_SOFT_LIMIT, where
// its job queue has a to-do note for this), so that a busy queue does not
// fill up with finished jobs. Archived jobs stay readable by id. Concurrent
// callers share one trim.
func (e *Engine) trimQueue() (int, error) {
	n, err, _ := e.trims.Do("trim", func() (any, error) { return e.trimOnce() })
	return n.(int), err
}

func (e *Engine) trimOnce() (int, error) {
	size := e.cfg.QueueSize
	n, err := e.archiveWhere(func(ended []*job) []*job {
		e.mu.Lock()
		excess := len(e.jobs) - (SoftQueueSize(size) - size/10)
		e.mu.Unlock()
		if excess <= 0 {
			return nil
		}
		slices.SortFunc(ended, func(a, b *job) int { return cmp.Compare(a.rec.ID, b.rec.ID) })
		return ended[:min(excess, len(ended))]
	})
	if n > 0 {
		e.log.Info("job queue over its soft limit: archived finished jobs early", "jobs", n, "soft_limit", SoftQueueSize(size))
	}
	return n, err
}

// archiveWhere archives the jobs pick chooses among those whose final
// status is committed, and returns how many it archived.
func (e *Engine) archiveWhere(pick func(ended []*job) []*job) (int, error) {
	var ended []*job
	e.mu.Lock()
	for _, j := range e.jobs {
		if !j.archive && !j.pending && j.shown.Finalized() && j.shown.EndTS != nil {
			ended = append(ended, j)
		}
	}
	e.mu.Unlock()
	chosen := pick(ended)
	if len(chosen) == 0 {
		return 0, nil
	}
	ids := make([]int64, 0, len(chosen))
	e.mu.Lock()
	for _, j := range chosen {
		if e.jobs[j.rec.ID] == j && !j.archive {
			j.archive = true
			ids = append(ids, j.rec.ID)
		}
	}
	e.mu.Unlock()
	slices.Sort(ids)
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

// archiveOld archives the jobs older than the archive age.
func (e *Engine) archiveOld() {
	if _, err := e.Archive(); err != nil && !errors.Is(err, errStopped) && !errors.Is(err, errFailed) {
		e.log.Error("archiving jobs failed", "err", err)
	}
}

// takeBatch snapshots the records the committer writes (called by it).
func (e *Engine) takeBatch(dirty map[int64]struct{}, archive []int64) (*batch, error) {
	recs := map[int64]*record{}
	arch := map[int64]*record{}
	var pub []published
	var keys []*pendingKey
	e.mu.Lock()
	for id := range dirty {
		if j := e.jobs[id]; j != nil {
			j.rec.nextVersion(j.shown)
			r := j.rec.clone()
			recs[id] = r
			pub = append(pub, published{j: j, rec: r, ops: j.ops})
			if j.key != nil {
				keys = append(keys, j.key)
			}
		}
	}
	for _, id := range archive {
		if j := e.jobs[id]; j != nil && j.archive {
			arch[id] = j.rec.clone()
		}
	}
	next := e.nextID
	e.mu.Unlock()
	b := &batch{recs: map[string][]byte{}, archive: map[string][]byte{}, nextID: next, pub: pub, keys: keys}
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
			e.wake(j)
		}
	}
}

// publishBatch publishes the job records a batch committed (called by the
// committer after the commit).
func (e *Engine) publishBatch(b *batch) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range b.pub {
		if e.jobs[p.rec.ID] == p.j {
			e.publish(p.j, p.rec, p.ops)
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

// safeExec runs an executor's Exec, turning a panic into an error. For a
// Phased executor whose Check phase ran (x.Env.Checked) it runs Apply on
// the plan, or returns the Check's error.
func safeExec(e *Engine, ex opexec.Executor, x *opexec.ExecContext, msg proto.Message) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("executor panic", "job", x.JobID, "opcode", x.OpIndex, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	if ph, ok := ex.(opexec.Phased); ok && x.Env.Checked != nil {
		if x.Env.Checked.Err != nil {
			return nil, opexec.CheckFailed(x, x.Env.Checked.Err)
		}
		return ph.Apply(x, msg, x.Env.Checked.Plan)
	}
	return ex.Exec(x, msg)
}

// safeLocks runs an executor's Locks (or locksParams), turning a panic
// into an error; it returns the parameters written back too.
func safeLocks(e *Engine, ex opexec.Executor, msg proto.Message, st *cluster.State) (locks []opexec.Lock, writes []opexec.ParamWrite, err error) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("executor panic in Locks", "panic", p, "stack", string(debug.Stack()))
			locks, writes, err = nil, nil, fmt.Errorf("panic: %v", p)
		}
	}()
	if pl, ok := ex.(opexec.ParamLocker); ok {
		return pl.LocksParams(msg, st)
	}
	locks, err = ex.Locks(msg, st)
	return locks, nil, err
}

func safeRun(e *Engine, rn opexec.Runner, x *opexec.ExecContext, msg proto.Message) (err error) {
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
