package jobs

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore/etcdtest"
)

// etcdEngine is a started engine on a single-member embedded etcd (fsync
// on, etcd's default limits: 128 operations per transaction).
func etcdEngine(b *testing.B) *Engine {
	b.Helper()
	endpoint, stop, err := etcdtest.Launch(b.TempDir(), etcdtest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
	st, err := etcdstore.New(etcdstore.Config{Client: etcdtest.Client(b, endpoint)})
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(Config{Model: openModel(b, st, 0), Logger: quiet, IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors()})
	if err != nil {
		b.Fatal(err)
	}
	e.Start()
	b.Cleanup(func() { _ = e.Stop(context.Background()) })
	return e
}

// BenchmarkEtcdSubmitToSuccess is one trivial job (OP_TEST_DELAY of 0 s)
// at a time, from Submit to its success as a waiting client sees it; it
// reports the median.
func BenchmarkEtcdSubmitToSuccess(b *testing.B) {
	e := etcdEngine(b)
	op := []*rapiv2.OpCode{opOf(delay(0))}
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		id, err := e.Submit(context.Background(), op, SubmitOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if s := waitDone(b, e, id); s != StatusSuccess {
			b.Fatalf("job %d: %s", id, s)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
}

// BenchmarkEtcdBurst1000 submits 1,000 trivial jobs at once (100
// submitters) and waits for all of them; it reports jobs per second.
func BenchmarkEtcdBurst1000(b *testing.B) {
	e := etcdEngine(b)
	op := []*rapiv2.OpCode{opOf(delay(0))}
	const n, submitters = 1000, 100
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		var wg sync.WaitGroup
		for range submitters {
			wg.Go(func() {
				for range n / submitters {
					id, err := e.Submit(context.Background(), op, SubmitOptions{})
					if err != nil {
						b.Error(err)
						return
					}
					if s := waitDone(b, e, id); s != StatusSuccess {
						b.Errorf("job %d: %s", id, s)
					}
				}
			})
		}
		wg.Wait()
		total += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "jobs/s")
}
