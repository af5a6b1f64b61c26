package jobs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
)

// storedStatus is the status of job id in st ("" when absent).
func storedStatus(t *testing.T, st store.Store, id int64) string {
	t.Helper()
	var status string
	err := st.View(context.Background(), func(tx store.Tx) error {
		b, err := tx.Get(BucketJobs, jobKey(id))
		if err != nil || b == nil {
			return err
		}
		r, err := decodeRecord(b)
		if err == nil {
			status = r.status()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// TestStoreFailureFailStop injects commit failures at many points of a
// busy queue: submissions, lock waits, opcode outcomes (committed with the
// cluster change), Run phases. A status is shown only once committed: every
// final status a watcher saw is the one the job has after the store heals
// and the server restarts; the engine stops taking jobs and reports the
// failure; after the restart every job ends, and the cluster holds exactly
// the effects of the jobs that succeeded.
func TestStoreFailureFailStop(t *testing.T) {
	modes := []struct {
		name string
		mode faultstore.Mode
	}{{"refuse", faultstore.Refuse}, {"unknown", faultstore.Unknown}}
	for _, m := range modes {
		for _, skip := range []int{0, 1, 2, 5, 9, 17} {
			t.Run(fmt.Sprintf("%s/after-%d-commits", m.name, skip), func(t *testing.T) {
				testFailStop(t, failStopCase{mode: m.mode, skip: skip, jobs: 24})
			})
		}
	}
}

// TestKillWithStoreFaults is the kill -9 test with the fault injector, in
// process and on bbolt: five bursts of 500 concurrent mixed jobs, each cut
// by a commit failure at a random point and a crash (nothing more is
// written) once 250 jobs were acknowledged or the queue stopped; then the
// same checks after a restart: nothing acknowledged is lost, nothing ran
// twice, every status shown is the one stored.
func TestKillWithStoreFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("2,500 jobs")
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 10))
	for run := range 5 {
		c := failStopCase{
			mode:   []faultstore.Mode{faultstore.Refuse, faultstore.Unknown}[rng.IntN(2)],
			skip:   rng.IntN(300),
			jobs:   500,
			bolt:   true,
			killAt: 250,
		}
		t.Run(fmt.Sprintf("run%d/mode%d/skip%d", run, c.mode, c.skip), func(t *testing.T) { testFailStop(t, c) })
	}
}

type failStopCase struct {
	mode   faultstore.Mode
	skip   int  // commits that succeed before the failures start
	jobs   int  // concurrent submissions
	bolt   bool // bbolt (fsync) instead of memstore
	killAt int  // crash once this many jobs were acknowledged (0: Stop)
}

func testFailStop(t *testing.T, c failStopCase) {
	mode, skip := c.mode, c.skip
	inner := newTestStore(t)
	if c.bolt {
		b, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		inner = b
	}
	fs := faultstore.New(inner)
	model := openModel(t, fs, 0)
	failed := make(chan error, 1)
	e, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Logger: quiet, Workers: 3, OnFailure: func(err error) { failed <- err }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	e.Start()
	fs.Fail(mode, skip, -1)

	// Jobs: tag adds (the outcome commits with the cluster change), short
	// delays (a Run phase, "running" committed first), and tag adds behind
	// a lock held by another job.
	n := c.jobs
	var killOnce sync.Once
	crash := func() { killOnce.Do(e.kill) }
	var (
		mu       sync.Mutex
		acked    []int64
		tagOf    = map[int64]string{}
		seenLast = map[int64]*Job{} // the last final snapshot a watcher saw
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// submitAndWatch submits job i and watches it to its end; false once
	// the queue refuses submissions.
	submitAndWatch := func(i int) bool {
		tag := fmt.Sprintf("t%d", i)
		ops := []*rapiv2.OpCode{tagsSet(kCluster, "", tag)}
		switch i % 3 {
		case 1:
			ops = []*rapiv2.OpCode{opOf(delay(0.001)), tagsSet(kCluster, "", tag)}
		case 2:
			d := delay(0.002)
			d.NoLocks = new(bool)
			ops = []*rapiv2.OpCode{opOf(d), tagsSet(kCluster, "", tag)}
		}
		id, err := e.Submit(context.Background(), ops, SubmitOptions{})
		if err != nil {
			if de, ok := errs.As(err); !ok || de.Class != errs.ClassUnavailable { // drained (crash) or failed
				t.Errorf("submit: %v, want unavailable", err)
			}
			return false
		}
		mu.Lock()
		acked = append(acked, id)
		tagOf[id] = tag
		nAcked := len(acked)
		mu.Unlock()
		if c.killAt > 0 && nAcked >= c.killAt {
			crash()
		}
		ch, err := e.Watch(ctx, id)
		if err != nil {
			t.Errorf("watch %d: %v", id, err)
			return false
		}
		for s := range ch {
			if s.Finalized() {
				mu.Lock()
				seenLast[id] = s
				mu.Unlock()
			}
		}
		return true
	}
	// At most 32 jobs in flight, so that the burst takes many commits.
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	for range min(n, 32) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if !submitAndWatch(i) {
					return
				}
			}
		}()
	}
	burst := make(chan struct{})
	go func() { wg.Wait(); close(burst) }()
	select {
	case err := <-failed:
		if err == nil {
			t.Fatal("OnFailure without an error")
		}
	case <-burst:
		// Enough commits were skipped for the whole burst to finish, or
		// the crash came first.
		if fs.Failures() > 0 && c.killAt == 0 {
			select {
			case <-failed:
			case <-time.After(10 * time.Second):
				t.Fatal("a commit failed but OnFailure was not called")
			}
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the burst did not end")
	}
	if c.killAt > 0 {
		crash()
	}
	cancel()
	wg.Wait()
	if fs.Failures() > 0 && c.killAt == 0 {
		if e.Err() == nil {
			t.Fatal("Err() is nil after a refused commit")
		}
		_, err := e.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "late")}, SubmitOptions{})
		if de, ok := errs.As(err); !ok || de.Class != errs.ClassUnavailable {
			t.Fatalf("submit after the failure: %v, want unavailable", err)
		}
		// Nothing shown is ahead of the store.
		for _, id := range acked {
			j, ok := e.Get(id)
			if !ok {
				t.Fatalf("acknowledged job %d not found", id)
			}
			if stored := storedStatus(t, inner, id); j.Finalized() && stored != j.Status {
				t.Errorf("job %d shows %s, the store holds %s", id, j.Status, stored)
			}
		}
	}
	shownTags, _ := model.State().Tags("cluster", "")
	if c.killAt == 0 {
		_ = e.Stop(context.Background())
	}

	// Space returns, the server restarts.
	fs.Heal()
	model2, err := cluster.Open(inner, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Stop(context.Background())
	e2.Start()
	want := []string{"ctag"}
	for _, id := range acked {
		if !slices.Contains(e2.IDs(), id) {
			t.Errorf("acknowledged job %d is lost", id)
		}
	}
	for _, id := range e2.IDs() {
		j := waitJob(t, e2, id)
		if !slices.Contains(acked, id) {
			// A submission whose commit failed was answered unavailable. It
			// may still be in the store when the failure came after the
			// write (the outcome is unknown, as with Ganeti's queue), never
			// when the write was refused.
			if mode == faultstore.Refuse {
				t.Errorf("job %d is in the store, but its submission was refused", id)
			}
			tagOf[id] = tagOfJob(t, j)
		}
		if seen := seenLast[id]; seen != nil {
			if seen.Status != j.Status || jsonOf(t, seen.OpResult) != jsonOf(t, j.OpResult) {
				t.Errorf("job %d was shown %s %s, reads %s %s after the restart",
					id, seen.Status, jsonOf(t, seen.OpResult), j.Status, jsonOf(t, j.OpResult))
			}
		}
		switch {
		case j.Status == StatusSuccess:
			want = append(want, tagOf[id])
		case j.Status == StatusError && jsonOf(t, j.OpResult[0]) == `["OpExecError",["Unclean master daemon shutdown"]]`:
			// Running (its Run phase) at the crash or the failure.
		default:
			t.Errorf("job %d ended %s %s", id, j.Status, jsonOf(t, j.OpResult))
		}
	}
	// Tags shown before the restart were committed.
	tags, _ := model2.State().Tags("cluster", "")
	for _, tag := range shownTags {
		if !slices.Contains(tags, tag) {
			t.Errorf("tag %q was shown but is not in the store", tag)
		}
	}
	sort.Strings(want)
	if !slices.Equal(tags, want) {
		t.Errorf("tags after the restart = %v, want those of the succeeded jobs %v", tags, want)
	}
	t.Logf("%d acknowledged, %d commits, %d injected failures", len(acked), fs.Commits(), fs.Failures())
}

// TestQueueSizeLimit: Ganeti's hard limit refuses a submission with its
// RAPI answer; finished jobs are archived early from the soft limit on, so
// a queue full of finished jobs takes submissions again.
func tagOfJob(t *testing.T, j *Job) string {
	t.Helper()
	op := j.Ops[len(j.Ops)-1].GetTagsSet()
	if op == nil || len(op.GetTags()) != 1 {
		t.Fatalf("job %d: not a tag job", j.ID)
	}
	return op.GetTags()[0]
}

func TestQueueSizeLimit(t *testing.T) {
	v := newEnv(t, 0, func(c *Config) { c.QueueSize = 10 })
	var ids []int64
	for i := 0; i < 10; i++ {
		ids = append(ids, v.submit(tagsSet(kCluster, "", fmt.Sprintf("q%d", i))))
	}
	_, err := v.e.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "over")}, SubmitOptions{})
	de, ok := errs.As(err)
	if !ok || de.Class != errs.ClassUnavailable || de.Msg != "Job queue is full, needs archiving" {
		t.Fatalf("submission over the limit: %v", err)
	}
	if got := len(v.e.IDs()); got != 10 {
		t.Fatalf("%d jobs in the queue after a refused submission, want 10", got)
	}
	// The early archives the submissions started found nothing finished;
	// let them end, so that the trims below see every job finished.
	waitNoEarlyArchive(t, v.e)
	v.e.Start()
	for _, id := range ids {
		v.wait(id)
	}
	// The queue is full of finished jobs: the submission archives the
	// oldest ones and is taken.
	id, err := v.e.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "after")}, SubmitOptions{})
	if err != nil {
		t.Fatalf("a queue of finished jobs refuses a submission: %v", err)
	}
	v.wait(id)
	if n := len(v.e.IDs()); n > SoftQueueSize(10) {
		t.Errorf("%d jobs left in the queue, want at most the soft limit %d", n, SoftQueueSize(10))
	}
	// The oldest went first, and stay readable.
	j, ok := v.e.Get(ids[0])
	if !ok || !j.Archived || j.Status != StatusSuccess {
		t.Errorf("job %d after the early archive: %+v", ids[0], j)
	}
}

// waitNoEarlyArchive waits until no early archive (archiveEarly) runs.
func waitNoEarlyArchive(t *testing.T, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		busy := e.archiving
		e.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("an early archive still runs after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMaxOpsPerJob(t *testing.T) {
	v := newEnv(t, 0, func(c *Config) { c.MaxOpsPerJob = 3 })
	ops := []*rapiv2.OpCode{opOf(delay(0)), opOf(delay(0)), opOf(delay(0)), opOf(delay(0))}
	_, err := v.e.Submit(context.Background(), ops, SubmitOptions{})
	if de, ok := errs.As(err); !ok || de.Class != errs.ClassPrereq || de.Code != errs.CodeInval {
		t.Fatalf("4 opcodes: %v", err)
	}
	if len(v.e.IDs()) != 0 {
		t.Fatal("a refused job is in the queue")
	}
	v.submit(ops[:3]...)
}
