package jobs

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
)

// benchEngine is an engine with cfg's settings (its model and logger
// filled in) on a bbolt store (fsync on every commit) in a temporary
// directory, with a cluster of instances instances.
func benchEngine(b *testing.B, instances int, cfg Config) *Engine {
	b.Helper()
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Model, cfg.Logger = openModel(b, st, instances), quiet
	if cfg.Executors == nil {
		cfg.Executors = lu.DefaultExecutors()
	}
	e, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	e.Start()
	b.Cleanup(func() {
		_ = e.Stop(context.Background())
		_ = st.Close()
	})
	return e
}

// waitDone blocks until job id has ended, the way a client does (long
// polls on the status).
func waitDone(b *testing.B, e *Engine, id int64) string {
	prev := []any{}
	for {
		info, _, changed, err := e.WaitForChange(context.Background(), id, []string{"status"}, prev, 1<<62, 10*time.Second)
		if err != nil {
			b.Error(err)
			return ""
		}
		if changed {
			if s := info[0].(string); Finalized(s) {
				return s
			}
			prev = info
		}
	}
}

// BenchmarkSubmitToSuccessTagAdd measures one job at a time, from Submit to
// the job's success as a client waiting for it sees it: OP_TAGS_SET on an
// instance, on bbolt with fsync.
func BenchmarkSubmitToSuccessTagAdd(b *testing.B) {
	e := benchEngine(b, 10, Config{})
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		op := tagsSet(kInstance, "inst"+strconv.Itoa(i%10+1)+".example.com", "bench")
		start := time.Now()
		id, err := e.Submit(ctx, []*rapiv2.OpCode{op}, SubmitOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if s := waitDone(b, e, id); s != StatusSuccess {
			b.Fatalf("job %d: %s", id, s)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkBurst1000 submits 1,000 jobs at once (one client goroutine per
// job, each submitting and then waiting for its job) and reports jobs per
// second from the first submission to the last success. Half are
// OP_TAGS_SET on 100 instances (jobs on the same instance serialize on its
// lock), half on the cluster.
func BenchmarkBurst1000(b *testing.B) {
	const n = 1000
	e := benchEngine(b, 100, Config{})
	ctx := context.Background()
	var total time.Duration
	var lat []time.Duration
	var mu sync.Mutex
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		start := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				op := tagsSet(kCluster, "", "burst")
				if i%2 == 0 {
					op = tagsSet(kInstance, "inst"+strconv.Itoa(i%100+1)+".example.com", "burst")
				}
				t0 := time.Now()
				id, err := e.Submit(ctx, []*rapiv2.OpCode{op}, SubmitOptions{})
				if err != nil {
					b.Error(err)
					return
				}
				if s := waitDone(b, e, id); s != StatusSuccess {
					b.Errorf("job %d: %s", id, s)
				}
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}()
		}
		wg.Wait()
		total += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "jobs/s")
	reportLatency(b, lat)
}

// BenchmarkSubmitIdempotent measures Submit alone (the job's record durable
// on bbolt) without a key, with a new key each time (the key record is
// written in the same transaction) and with a key seen before (a replay:
// one read, nothing written).
func BenchmarkSubmitIdempotent(b *testing.B) {
	for _, mode := range []string{"no-key", "new-key", "replay"} {
		b.Run(mode, func(b *testing.B) {
			e := benchEngine(b, 0, Config{ArchiveAfter: -1, QueueSize: -1})
			ctx := context.Background()
			op := []*rapiv2.OpCode{tagsSet(kCluster, "", "bench")}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var opt SubmitOptions
				switch mode {
				case "new-key":
					opt.Idempotency = &Idempotency{Scope: "u", Key: strconv.Itoa(i), Fingerprint: "fp"}
				case "replay":
					opt.Idempotency = &Idempotency{Scope: "u", Key: "k", Fingerprint: "fp"}
				}
				if _, err := e.Submit(ctx, op, opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
