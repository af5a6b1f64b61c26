package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
)

// largeCluster is a cluster file with ten nodes and n diskless instances.
func largeCluster(n int) string {
	var nodes, insts []string
	for i := 1; i <= 10; i++ {
		nodes = append(nodes, fmt.Sprintf(`{"name": "node%d.example.com", "group": "default", "pip": "192.0.2.%d",
			"mtotal": 1048576, "mnode": 2048, "dtotal": 10485760, "ctotal": 64}`, i, i+10))
	}
	for i := 1; i <= n; i++ {
		insts = append(insts, fmt.Sprintf(`{"name": "inst%d.example.com", "os": "noop", "pnode": "node%d.example.com",
			"disk_template": "diskless", "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1}, "tags": ["t%d"]}`, i, i%10+1, i))
	}
	return `{"cluster": {"name": "cluster.example.com", "master_node": "node1.example.com",
    "enabled_hypervisors": ["fake"], "enabled_disk_templates": ["diskless"],
    "nicparams": {"mode": "bridged", "link": "br0"}, "master_netdev": "eth0", "master_netmask": 24},
  "groups": [{"name": "default", "alloc_policy": "preferred"}],
  "nodes": [` + strings.Join(nodes, ",") + `],
  "oses": [{"name": "noop"}],
  "instances": [` + strings.Join(insts, ",\n") + `]}`
}

// buildLargeStore creates a data dir whose store holds instances
// instances and jobs jobs (half of them archived).
func buildLargeStore(b *testing.B, instances, njobs int) string {
	b.Helper()
	dir := b.TempDir()
	cf := filepath.Join(dir, "cluster.json")
	if err := os.WriteFile(cf, []byte(largeCluster(instances)), 0o600); err != nil {
		b.Fatal(err)
	}
	a, err := New(context.Background(), Config{DataDir: dir, ClusterFile: cf, Insecure: true,
		JobArchiveAfter: time.Nanosecond, JobWorkers: 8,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	kind := rapiv2.TagKind_TAG_KIND_INSTANCE
	submit := func(from, to int) {
		var wg sync.WaitGroup
		work := make(chan int)
		for range 32 {
			wg.Go(func() {
				for i := range work {
					name := fmt.Sprintf("inst%d.example.com", i%instances+1)
					op := &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Kind: &kind, Name: &name, Tags: []string{fmt.Sprintf("j%d", i)}}}}
					if _, err := a.jobs.Submit(context.Background(), []*rapiv2.OpCode{op}, jobs.SubmitOptions{}); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for i := from; i < to; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
		for _, id := range a.jobs.IDs() {
			for {
				j, _ := a.jobs.Get(id)
				if j.Finalized() {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	submit(0, njobs/2)
	if _, err := a.jobs.Archive(); err != nil {
		b.Fatal(err)
	}
	submit(njobs/2, njobs)
	return dir
}

// BenchmarkStartLargeStore measures a start on a store of 1,000 instances
// and 10,000 jobs (5,000 archived): the file check (Verify), and the whole
// of New (Verify, cluster load, job load with every archived record
// decoded).
//
//	go test ./server -run '^$' -bench StartLargeStore -benchtime 5x
func BenchmarkStartLargeStore(b *testing.B) {
	dir := buildLargeStore(b, 1000, 10000)
	path := filepath.Join(dir, boltstore.FileName)
	fi, _ := os.Stat(path)
	var logs strings.Builder
	var verify, total time.Duration
	for b.Loop() {
		start := time.Now()
		rep, err := boltstore.Verify(path)
		if err != nil {
			b.Fatal(err)
		}
		verify += time.Since(start)
		if rep.Keys < 11000 {
			b.Fatalf("report %+v", rep)
		}
		start = time.Now()
		logs.Reset()
		a, err := New(context.Background(), Config{DataDir: dir, Insecure: true, JobArchiveAfter: -1,
			Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		a.Close()
	}
	b.Logf("%s: %.1f MiB; last start logged: %s", path, float64(fi.Size())/(1<<20), logs.String())
	b.ReportMetric(float64(verify.Milliseconds())/float64(b.N), "verify-ms")
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "start-ms")
}
