package jobs

import (
	"context"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
)

// TestCrashRecovery persists jobs, drops the engine without Stop (nothing
// more is written, as if the process died) and opens a new engine on the
// same store: queued and waiting jobs run, the running one ends as an
// unclean shutdown.
func TestCrashRecovery(t *testing.T) {
	st := newTestStore(t)
	model := openModel(t, st, 3)
	clock := newFakeClock()
	e1, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Clock: clock.Now, Logger: quiet, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	running, _ := e1.Submit(context.Background(), []*rapiv2.OpCode{opOf(delay(60)), tagsSet(kCluster, "", "never")}, SubmitOptions{})
	// Waits for the running job (it is picked first: higher priority).
	w := opOf(delay(0))
	w.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(running, rapiv2.DependencyStatus_DEPENDENCY_STATUS_ERROR)}
	w.GetTestDelay().Priority = rapiv2.OpPriority_OP_PRIORITY_HIGH.Enum()
	waiting, _ := e1.Submit(context.Background(), []*rapiv2.OpCode{w}, SubmitOptions{})
	e1.Start()
	waitStatus(t, e1, running, "running")
	waitStored(t, st, running, "running")
	waitStored(t, st, waiting, "waiting")
	// Queued behind the running job (one worker).
	queued, _ := e1.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "after-restart")}, SubmitOptions{})
	e1.kill()

	model2, err := cluster.Open(st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model2, Clock: clock.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Stop(context.Background())
	j, ok := e2.Get(running)
	if !ok || j.Status != "error" || j.EndTS == nil ||
		jsonOf(t, j.OpResult) != `[["OpExecError",["Unclean master daemon shutdown"]],["OpExecError",["Unclean master daemon shutdown"]]]` {
		t.Errorf("running job after the crash: %+v %s", j, jsonOf(t, j.OpResult))
	}
	if j, _ := e2.Get(queued); j.Status != "queued" {
		t.Errorf("queued job after the crash: %s", j.Status)
	}
	if j, _ := e2.Get(waiting); j.Status != "queued" || j.OpStart[0] == nil {
		t.Errorf("waiting job after the crash: %s", j.Status)
	}
	e2.Start()
	if j := waitJob(t, e2, queued); j.Status != "success" {
		t.Errorf("queued job: %s", j.Status)
	}
	if j := waitJob(t, e2, waiting); j.Status != "success" {
		t.Errorf("waiting job: %s", j.Status)
	}
	tags, _ := model2.State().Tags("cluster", "")
	if !slices.Equal(tags, []string{"after-restart", "ctag"}) {
		t.Errorf("tags = %v", tags)
	}
	// The recovery was persisted.
	e2.Stop(context.Background())
	e3, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e3.Stop(context.Background())
	if j, _ := e3.Get(running); j.Status != "error" {
		t.Errorf("running job after two restarts: %s", j.Status)
	}
	if id, _ := e3.Submit(context.Background(), []*rapiv2.OpCode{opOf(delay(0))}, SubmitOptions{}); id != queued+1 {
		t.Errorf("next id = %d, want %d", id, queued+1)
	}
}

// TestStopLeavesRunningJob: Stop with an expired context cancels the Run
// phase; the job stays "running" in the store and ends as an unclean
// shutdown on the next start; queued jobs stay queued.
func TestStopLeavesRunningJob(t *testing.T) {
	v := newEnv(t, 0, func(c *Config) { c.Workers = 1 })
	id := v.submit(opOf(delay(60)))
	next := v.submit(tagsSet(kCluster, "", "later"))
	v.e.Start()
	waitStatus(t, v.e, id, "running")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := v.e.Stop(ctx); err == nil {
		t.Error("Stop did not report the deadline")
	}
	e2, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: v.model, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Stop(context.Background())
	if j, _ := e2.Get(id); j.Status != "error" {
		t.Errorf("interrupted job: %s", j.Status)
	}
	if j, _ := e2.Get(next); j.Status != "queued" {
		t.Errorf("queued job: %s", j.Status)
	}
}

// TestGroupCommit: every id Submit returns is already in the store, and
// concurrent submissions share transactions.
func TestGroupCommit(t *testing.T) {
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	st := &countingStore{Store: bolt}
	model := openModel(t, st, 0)
	e, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	before := st.updates.Load()
	const n = 200
	var wg sync.WaitGroup
	ids := make(chan int64, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := e.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "x")}, SubmitOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			// Durable before the id is returned.
			err = st.View(context.Background(), func(tx store.Tx) error {
				b, err := tx.Get(BucketJobs, jobKey(id))
				if err == nil && b == nil {
					t.Errorf("job %d is not in the store", id)
				}
				return err
			})
			if err != nil {
				t.Error(err)
			}
			ids <- id
		}()
	}
	wg.Wait()
	close(ids)
	var got []int64
	for id := range ids {
		got = append(got, id)
	}
	sort.Slice(got, func(a, b int) bool { return got[a] < got[b] })
	for i, id := range got {
		if id != int64(i+1) {
			t.Fatalf("ids = %v", got)
		}
	}
	updates := st.updates.Load() - before
	t.Logf("%d submissions in %d transactions", n, updates)
	if updates >= n {
		t.Errorf("%d transactions for %d concurrent submissions: no group commit", updates, n)
	}
}

// TestConcurrency runs 200 jobs at once under -race: jobs on distinct
// objects run in parallel, jobs that conflict on a lock never overlap.
func TestConcurrency(t *testing.T) {
	const instances = 100
	v := newEnv(t, instances, func(c *Config) {
		c.Workers = 32
		c.Clock = time.Now
	})
	v.e.Start()
	const d = 0.1
	var parallel, serial, tags []int64
	for i := 0; i < 80; i++ { // no locks but the shared BGL: parallel
		parallel = append(parallel, v.submit(opOf(delay(d))))
	}
	for i := 0; i < 20; i++ { // exclusive lock on the master node: one at a time
		op := delay(0.01)
		op.NoLocks = proto.Bool(false)
		serial = append(serial, v.submit(opOf(op)))
	}
	for i := 1; i <= instances; i++ { // distinct instances
		tags = append(tags, v.submit(tagsSet(kInstance, "inst"+strconv.Itoa(i)+".example.com", "c1", "c2")))
	}
	start := time.Now()
	var all []*Job
	for _, ids := range [][]int64{parallel, serial, tags} {
		for _, id := range ids {
			j := v.wait(id)
			if j.Status != "success" {
				t.Fatalf("job %d: %s %s", id, j.Status, jsonOf(t, j.OpResult))
			}
			all = append(all, j)
		}
	}
	elapsed := time.Since(start)
	// 80 sleeps of 100ms on 32 workers take about 300ms; serially 8s.
	if elapsed > 4*time.Second {
		t.Errorf("200 jobs took %v: not parallel", elapsed)
	}
	// The jobs holding the master's node lock never overlap.
	type span struct{ from, to time.Time }
	var spans []span
	for _, j := range all[80:100] {
		spans = append(spans, span{j.OpExec[0].Time(), j.OpEnd[0].Time()})
	}
	sort.Slice(spans, func(a, b int) bool { return spans[a].from.Before(spans[b].from) })
	for i := 1; i < len(spans); i++ {
		if spans[i].from.Before(spans[i-1].to) {
			t.Errorf("conflicting jobs overlap: %v and %v", spans[i-1], spans[i])
		}
	}
	// Parallel jobs did overlap.
	overlaps := 0
	for i := 1; i < 80; i++ {
		if all[i].OpExec[0].Time().Before(all[i-1].OpEnd[0].Time()) {
			overlaps++
		}
	}
	if overlaps == 0 {
		t.Error("no parallel execution")
	}
	for i := 1; i <= instances; i++ {
		tags, _ := v.model.State().Tags("instance", "inst"+strconv.Itoa(i)+".example.com")
		if !slices.Equal(tags, []string{"c1", "c2", "t" + strconv.Itoa(i)}) {
			t.Fatalf("inst%d tags = %v", i, tags)
		}
	}
	if len(v.e.Locks()) != 0 {
		t.Errorf("locks left: %s", jsonOf(t, v.e.Locks()))
	}
}

// waitStored waits until the store holds job id with status.
func waitStored(t *testing.T, st store.Store, id int64, status string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := storedStatus(t, st, id)
		if got == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d is %q in the store, want %q", id, got, status)
		}
		time.Sleep(time.Millisecond)
	}
}
