package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// The committer is the one writer of job records: a goroutine that takes
// every pending write (job records to persist, opcodes to execute, jobs to
// archive) and commits them in one store transaction. While a transaction
// commits (bbolt fsyncs), new writes accumulate and go into the next one:
// group commit, with no added delay. Having one writer also keeps the
// order of a job's writes: a record is encoded from the job's in-memory
// state when the batch is taken, and that state only moves forward.
//
// A batch is split into transactions that fit the store's limits
// (commitParts): with store.DefaultLimits a batch of the whole queue is
// one; etcd bounds a transaction to 128 operations. The functions the
// committer passes to the store may run more than once: they write
// records and take follow-up job IDs (Engine.followUpID) the same way on
// every run, and the committer publishes records and continues jobs only
// after the commit.

var (
	// errBatch aborts a batch of opcodes after one failed; they are then
	// run one by one.
	errBatch = errors.New("jobs: batch aborted")
	// errCrashed is what writes get after kill (a test's simulated crash).
	errCrashed = errors.New("jobs: engine crashed")
	// errStopped is what writes get after the committer stopped.
	errStopped = errors.New("jobs: engine stopped")
	// errFailed is what writes get after the store refused a commit
	// (Engine.failStop).
	errFailed = errors.New("jobs: the store refused a commit")
)

// execFailed carries an executor's error out of a Model.Update, which
// rolls the transaction back.
type execFailed struct{ err error }

func (e *execFailed) Error() string { return "jobs: opcode failed" }

type committer struct {
	e *Engine

	mu      sync.Mutex
	dirty   map[int64]struct{}
	execs   []*execItem
	archive []int64
	waiters []chan error
	traced  commitTrace // the spans the next transaction serves
	closed  bool
	dead    bool // simulated crash: drop everything
	failed  bool // the store refused a commit: write nothing more

	kick chan struct{}
	quit chan struct{}
	done chan struct{}

	// flushes counts the flushes begun and ended; ended is closed and
	// replaced at the end of each (Barrier).
	fmu            sync.Mutex
	begun, settled uint64
	ended          chan struct{}
}

// execItem is one opcode handed to the committer for execution.
type execItem struct {
	j   *job
	idx int
	ex  opexec.Executor
	msg proto.Message
	x   *opexec.ExecContext

	// Outcome, set by the committer before done is closed.
	result any
	err    error
	logs   []pendingLog
	rec    *record        // the job record after a successful execution
	op     *rapiv2.OpCode // the opcode with the parameters written back, in rec
	follow []*job         // follow-up jobs, written in the same transaction

	// followIDs are the job IDs taken for follow-up jobs, kept across the
	// runs of the transaction's function; nfollow counts those the
	// current run used (Engine.followUpID).
	followIDs []int64
	nfollow   int
}

type pendingLog struct {
	at      Timestamp
	logType string
	msg     any
}

func newCommitter(e *Engine) *committer {
	c := &committer{
		e:     e,
		dirty: map[int64]struct{}{},
		kick:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		ended: make(chan struct{}),
	}
	go c.loop()
	return c
}

func (c *committer) signal() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// write queues the records of jobs; the returned channel (buffered) gets
// the commit's outcome.
func (c *committer) write(ids ...int64) <-chan error { return c.writeCtx(context.Background(), ids...) }

// writeCtx is write for the span of ctx (if it has one): the transaction is
// traced as its child.
func (c *committer) writeCtx(ctx context.Context, ids ...int64) <-chan error {
	ch := make(chan error, 1)
	c.mu.Lock()
	if err := c.refusal(); err != nil {
		c.mu.Unlock()
		ch <- err
		return ch
	}
	for _, id := range ids {
		c.dirty[id] = struct{}{}
	}
	c.traced.add(ctx)
	c.waiters = append(c.waiters, ch)
	c.mu.Unlock()
	c.signal()
	return ch
}

// exec queues an opcode for execution; the committer continues the job
// when it is done (Engine.execDone). False when the committer has stopped.
func (c *committer) exec(it *execItem) bool {
	c.mu.Lock()
	if c.refusal() != nil {
		c.mu.Unlock()
		return false
	}
	c.execs = append(c.execs, it)
	c.traced.add(it.x.Env.Ctx)
	c.mu.Unlock()
	c.signal()
	return true
}

// archiveJobs queues jobs to move to the archive.
func (c *committer) archiveJobs(ids []int64) <-chan error {
	ch := make(chan error, 1)
	c.mu.Lock()
	if err := c.refusal(); err != nil {
		c.mu.Unlock()
		ch <- err
		return ch
	}
	c.archive = append(c.archive, ids...)
	c.waiters = append(c.waiters, ch)
	c.mu.Unlock()
	c.signal()
	return ch
}

// refusal is the error a new write gets, nil when it is taken (mu held).
func (c *committer) refusal() error {
	switch {
	case c.dead:
		return errCrashed
	case c.failed:
		return errFailed
	case c.closed:
		return errStopped
	}
	return nil
}

// fail makes the committer refuse every write from now on, and drop what
// is queued (Engine.failStop).
func (c *committer) fail() {
	c.mu.Lock()
	c.failed = true
	c.mu.Unlock()
	c.signal()
}

// stop commits what is queued and ends the loop.
func (c *committer) stop() {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.mu.Unlock()
	if !already {
		close(c.quit)
	}
	<-c.done
}

// crash simulates the process dying: nothing queued or later is written.
func (c *committer) crash() {
	c.mu.Lock()
	c.dead = true
	c.mu.Unlock()
	c.signal()
}

func (c *committer) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.kick:
			c.counted(c.flush)
		case <-c.quit:
			c.counted(c.flush)
			return
		}
	}
}

// counted runs a flush between the counts Barrier waits on.
func (c *committer) counted(flush func()) {
	c.fmu.Lock()
	c.begun++
	n := c.begun
	c.fmu.Unlock()
	defer func() {
		c.fmu.Lock()
		c.settled = n
		close(c.ended)
		c.ended = make(chan struct{})
		c.fmu.Unlock()
	}()
	flush()
}

// barrier returns once the flush under way when it was called (if any)
// has ended: what it committed is published. A commit is visible in etcd
// (to the followers) before it is published here; a read that waits for
// this never shows less than a follower showed before it.
func (c *committer) barrier(ctx context.Context) error {
	c.fmu.Lock()
	want := c.begun
	for c.settled < want {
		ch := c.ended
		c.fmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return nil
		}
		c.fmu.Lock()
	}
	c.fmu.Unlock()
	return nil
}

// batch is what one flush commits.
type batch struct {
	recs    map[string][]byte // job key -> record
	archive map[string][]byte // job key -> record, moved to the archive
	nextID  int64
	archIDs []int64
	pub     []published // the records of recs, published once committed
	// keys are the idempotency keys of the submissions among recs.
	keys []*pendingKey
}

// published is a job record to show once its transaction has committed.
type published struct {
	j   *job
	rec *record
	ops []*rapiv2.OpCode
}

func (c *committer) flush() {
	c.mu.Lock()
	dirty, execs, archive, waiters := c.dirty, c.execs, c.archive, c.waiters
	refused := c.refusal()
	if refused == errStopped {
		refused = nil // stop commits what was queued before it
	}
	links := c.traced.links
	c.dirty, c.execs, c.archive, c.waiters, c.traced = map[int64]struct{}{}, nil, nil, nil, commitTrace{}
	c.mu.Unlock()
	if refused != nil {
		for _, w := range waiters {
			w <- refused
		}
		return // the jobs of execs stay as they are in the store
	}
	if len(dirty) == 0 && len(execs) == 0 && len(archive) == 0 {
		for _, w := range waiters {
			w <- nil
		}
		return
	}
	span := c.e.startCommit(links, len(dirty), len(execs), len(archive))
	// The group commit serves many callers: none's cancellation may abort
	// it. Its context carries the commit's span.
	ctx := context.Background()
	if span != nil {
		ctx = trace.ContextWithSpan(ctx, span)
	}
	var archIDs []int64
	err := c.commitParts(ctx, dirty, archive, execs, &archIDs)
	endCommit(span, err)
	switch {
	case err == nil:
		c.e.archived(archIDs)
	case errors.Is(err, errCrashed):
	default:
		// Job records that were not written must not be shown, and the
		// engine cannot go on without writing them: stop (fail-stop).
		c.e.failStop(err)
		err = errFailed
	}
	for _, w := range waiters {
		w <- err
	}
}

// partSize is how many jobs one transaction may write or archive within
// the store's limits: two operations each (a record and its idempotency
// key, or an archived record and the delete of the live one), and one for
// the next job id. With the default limits a batch of the whole queue is
// one part; on etcd (127 operations) a part is 63 jobs.
func partSize(l store.Limits) int { return max(1, (l.MaxOps-1)/2) }

// commitParts commits the writes of one flush in transactions that fit
// the store's limits, in order: the jobs to write (by id) and archive,
// in parts, then the opcodes to execute with the last part. It stops at
// the first error; archIDs gets the ids archived by committed parts.
func (c *committer) commitParts(ctx context.Context, dirty map[int64]struct{}, archive []int64, execs []*execItem, archIDs *[]int64) error {
	ids := slices.Sorted(maps.Keys(dirty))
	size := partSize(store.LimitsOf(c.e.st))
	for {
		part := map[int64]struct{}{}
		n := min(size, len(ids))
		for _, id := range ids[:n] {
			part[id] = struct{}{}
		}
		ids = ids[n:]
		m := min(size-n, len(archive))
		partArchive := archive[:m]
		archive = archive[m:]
		last := len(ids) == 0 && len(archive) == 0
		b, err := c.e.takeBatch(part, partArchive)
		if err != nil {
			return err
		}
		if last && len(execs) > 0 {
			err = c.runExecs(ctx, b, execs)
		} else {
			err = c.e.st.Update(ctx, func(tx store.Tx) error { return b.write(tx) })
			if err == nil {
				c.e.publishBatch(b)
			}
		}
		if err != nil {
			return err
		}
		*archIDs = append(*archIDs, b.archIDs...)
		if last {
			return nil
		}
	}
}

// write puts the batch's records.
func (b *batch) write(tx store.Tx) error {
	for k, v := range b.recs {
		if err := tx.Put(BucketJobs, k, v); err != nil {
			return err
		}
	}
	for _, k := range b.keys {
		if err := tx.Put(BucketIdempotency, k.key, k.val); err != nil {
			return err
		}
	}
	for k, v := range b.archive {
		if err := tx.Put(BucketArchive, k, v); err != nil {
			return err
		}
		if err := tx.Delete(BucketJobs, k); err != nil {
			return err
		}
	}
	return tx.Put(BucketQueue, keyNextID, []byte(strconv.FormatInt(b.nextID, 10)))
}

// runExecs executes opcodes in one Model.Update together with the batch's
// records. If an opcode fails, the records are written alone and the
// opcodes run one by one, so that a failing opcode commits nothing. A
// store that refuses the commit stops the engine (the error is returned,
// nothing is published).
func (c *committer) runExecs(ctx context.Context, b *batch, execs []*execItem) error {
	e := c.e
	prev := e.model.State()
	now := e.now()
	err := e.model.Update(ctx, func(tx store.Tx, cfg *cluster.Config) error {
		if err := b.write(tx); err != nil {
			return err
		}
		for _, it := range execs {
			if err := c.execOne(tx, cfg, prev, now, it); err != nil {
				if len(execs) > 1 {
					return errBatch
				}
				return err
			}
		}
		return nil
	})
	if err == nil {
		e.publishBatch(b)
		for _, it := range execs {
			e.execDone(it)
		}
		return nil
	}
	if errors.Is(err, store.ErrCommit) {
		return err
	}
	var ef *execFailed
	if !errors.Is(err, errBatch) && !errors.As(err, &ef) {
		e.log.Warn("opcode batch failed, retrying one by one", "opcodes", len(execs), "err", err)
	}
	if err := e.st.Update(ctx, func(tx store.Tx) error { return b.write(tx) }); err != nil {
		return err
	}
	e.publishBatch(b)
	for _, it := range execs {
		if err := c.runSingle(ctx, it); err != nil {
			return err
		}
	}
	return nil
}

// runSingle executes one opcode in its own transaction. It returns an
// error only when the store refused the commit.
func (c *committer) runSingle(ctx context.Context, it *execItem) error {
	e := c.e
	prev := e.model.State()
	now := e.now()
	err := e.model.Update(ctx, func(tx store.Tx, cfg *cluster.Config) error {
		return c.execOne(tx, cfg, prev, now, it)
	})
	var ef *execFailed
	switch {
	case err == nil:
	case errors.Is(err, store.ErrCommit):
		return err
	case errors.As(err, &ef):
		it.err = ef.err
	default:
		// The configuration check failed or a write was refused: the
		// opcode's effect is not applied. Its text is not for clients.
		e.log.Error("opcode commit failed", "job", it.j.rec.ID, "opcode", it.idx, "err", err)
		it.err = fmt.Errorf("commit: %w", err)
	}
	e.execDone(it)
	return nil
}

// execOne runs one opcode inside a transaction and writes its job record
// as succeeded.
func (c *committer) execOne(tx store.Tx, cfg *cluster.Config, prev *cluster.State, now Timestamp, it *execItem) error {
	e := c.e
	// Every run starts afresh: the store may run the transaction's
	// function more than once, and only the last run's outcome counts.
	it.result, it.err, it.logs, it.rec, it.op, it.follow, it.nfollow = nil, nil, nil, nil, nil, nil, 0
	x := it.x
	x.StartParams(x.Env.RunParams)
	x.Env.OnDone = nil
	x.Config, x.Tx, x.State, x.Env.Now = cfg, tx, prev, now.Time()
	x.Env.Logf = func(logType string, msg any) {
		it.logs = append(it.logs, pendingLog{at: TimestampOf(e.cfg.Clock()), logType: logType, msg: msg})
	}
	x.Env.Submit = func(ops []*rapiv2.OpCode) (int64, error) { return e.submitFollowUp(tx, it, ops) }
	res, err := safeExec(e, it.ex, x, it.msg)
	x.Config, x.Tx, x.Env.Logf, x.Env.Submit = nil, nil, nil, nil
	kept, isKept := opexec.Kept(err)
	if err != nil && !isKept {
		it.err = err
		return &execFailed{err: err}
	}
	it.result = res
	e.mu.Lock()
	rec := it.j.rec.clone()
	op := it.j.ops[it.idx]
	e.mu.Unlock()
	// The opcode's status changes (to success or error) in this commit.
	rec.Version++
	rec.OpStatusVersion = rec.Version
	if len(x.Params()) > 0 {
		nop, b, err := withParams(op, x.Params())
		if err != nil {
			it.err = err
			return &execFailed{err: err}
		}
		rec.setOp(it.idx, opMember(nop), b)
		it.op = nop
	}
	if rec.opsChanged {
		rec.OpsVersion, rec.opsChanged = rec.Version, false
	}
	for _, l := range it.logs {
		rec.appendLog(it.idx, l.at, l.logType, l.msg)
	}
	end := e.now()
	switch {
	case isKept: // failed, its changes committed (FailKeeping)
		rec.fail(it.idx, e.encodeError(rec.ID, it.idx, kept), end)
	default:
		rec.OpStatus[it.idx] = StatusSuccess
		rec.OpResult[it.idx] = res
		rec.OpEnd[it.idx] = &end
		if rec.current() == len(rec.OpStatus) {
			rec.End = &end
		}
	}
	enc, err := encodeRecord(rec)
	if err != nil {
		it.err = err
		return &execFailed{err: err}
	}
	it.rec = rec
	return tx.Put(BucketJobs, jobKey(rec.ID), enc)
}
