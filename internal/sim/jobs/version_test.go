package jobs

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
)

// TestJobVersion: every committed change of a job gives it a higher
// Version; OpsVersion moves past a version whenever an opcode's status or
// parameters changed since; both are stored with the job, so a new engine
// on the same store (a restart) goes on from them, also when it ends a job
// interrupted by a crash.
func TestJobVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := newTestStore(t)
	e1, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: openModel(t, st, 3), Logger: quiet, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	logged := delay(0.01)
	logged.Repeat = proto.Int64(3)     // a Runner: "running" stored first, then a log entry per iteration
	tag := tagsSet(kCluster, "", "v1") // an Exec: running and success in one commit
	unnamed := opOf(delay(0))          // its debug_level is filled in when it starts
	id, err := e1.Submit(ctx, []*rapiv2.OpCode{opOf(logged), tag, unnamed}, SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := e1.Watch(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	e1.Start()
	var seen []*Job
	for s := range ch {
		seen = append(seen, s)
	}
	if len(seen) < 4 || !seen[len(seen)-1].Finalized() {
		t.Fatalf("watched %d snapshots, the job did not end", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		a, b := seen[i-1], seen[i]
		if b.Version <= a.Version {
			t.Errorf("snapshot %d: version %d after %d", i, b.Version, a.Version)
		}
		for _, c := range []struct {
			what            string
			changed         bool
			version, bounds int64
		}{
			{"opcode statuses", !slices.Equal(a.OpStatus, b.OpStatus), b.OpStatusVersion, b.Version},
			{"opcodes", jsonOf(t, a.Ops) != jsonOf(t, b.Ops), b.OpsVersion, b.Version},
		} {
			if c.changed != (c.version > a.Version) || c.version > c.bounds {
				t.Errorf("snapshot %d (version %d, before %d): %s changed %v, their version %d",
					i, b.Version, a.Version, c.what, c.changed, c.version)
			}
		}
	}
	final := seen[len(seen)-1]
	if err := e1.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// A restart reads the versions back.
	model2, err := cluster.Open(st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model2, Logger: quiet, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if j, _ := e2.Get(id); j.Version != final.Version || j.OpStatusVersion != final.OpStatusVersion || j.OpsVersion != final.OpsVersion {
		t.Errorf("after a restart: version %d, ops version %d; before: %d, %d", j.Version, j.OpsVersion, final.Version, final.OpsVersion)
	}
	// A job a crash interrupts ends in error at the next start, with a
	// version above the one it had.
	e2.Start()
	running, err := e2.Submit(ctx, []*rapiv2.OpCode{opOf(delay(60))}, SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e2, running, "running")
	waitStored(t, st, running, "running")
	before, _ := e2.Get(running)
	e2.kill()
	model3, err := cluster.Open(st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e3, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model3, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e3.Stop(ctx)
	if j, _ := e3.Get(running); j.Status != StatusError || j.Version <= before.Version || j.OpStatusVersion != j.Version {
		t.Errorf("interrupted job: %s, version %d (before %d), opstatus version %d", j.Status, j.Version, before.Version, j.OpStatusVersion)
	}
}
