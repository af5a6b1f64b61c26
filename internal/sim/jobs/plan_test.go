package jobs

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
)

// blockingIAllocator is an iallocator whose runs block until release is
// closed; it then places the instance on node2.
type blockingIAllocator struct {
	once    sync.Once
	started chan struct{} // closed when the first run starts
	release chan struct{}
}

func (b *blockingIAllocator) Lookup(name string) string {
	if name != "hail" {
		return ""
	}
	return "/fake/hail"
}

func (b *blockingIAllocator) Run(ctx context.Context, _ string, _ []byte) ([]byte, error) {
	b.once.Do(func() { close(b.started) })
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return []byte(`{"success": true, "info": "ok", "result": ["node2.example.com"]}`), nil
}

// TestIAllocatorOutsideTransaction: while hail runs for an instance
// create, unrelated jobs submit and finish (hail runs in the opcode's plan
// phase, not inside the write transaction every commit waits for).
func TestIAllocatorOutsideTransaction(t *testing.T) {
	hail := &blockingIAllocator{started: make(chan struct{}), release: make(chan struct{})}
	released := sync.OnceFunc(func() { close(hail.release) })
	t.Cleanup(released)
	v := newEnv(t, 3, func(c *Config) { c.IAllocator = hail })
	v.e.Start()
	create := v.submit(wrap(createAlloc("new.example.com", "file", "hail", 1024)))
	select {
	case <-hail.started:
	case <-time.After(10 * time.Second):
		t.Fatal("hail was not run")
	}

	others := []*rapiv2.OpCode{
		tagsSet(rapiv2.TagKind_TAG_KIND_CLUSTER, "", "during-hail"),
		tagsSet(rapiv2.TagKind_TAG_KIND_INSTANCE, "inst1.example.com", "during-hail"),
		tagsSet(rapiv2.TagKind_TAG_KIND_INSTANCE, "inst2.example.com", "during-hail"),
	}
	finished := make(chan []*Job, 1)
	go func() {
		var jobs []*Job
		for _, op := range others {
			id, err := v.e.Submit(context.Background(), []*rapiv2.OpCode{op}, SubmitOptions{})
			if err != nil {
				finished <- nil
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			j, err := finish(ctx, v.e, id)
			cancel()
			if err != nil {
				finished <- nil
				return
			}
			jobs = append(jobs, j)
		}
		finished <- jobs
	}()
	var jobs []*Job
	select {
	case jobs = <-finished:
	case <-time.After(8 * time.Second):
		released()
		t.Fatal("unrelated jobs did not finish while hail ran")
	}
	if len(jobs) != len(others) {
		released()
		t.Fatal("unrelated jobs did not finish while hail ran")
	}
	for _, j := range jobs {
		if j.Status != StatusSuccess {
			t.Errorf("job %d: %s %s", j.ID, j.Status, jsonOf(t, j.OpResult))
		}
	}
	if j, ok := v.e.Get(create); !ok || Finalized(j.Status) {
		t.Fatalf("the instance create ended before hail was released")
	}

	released()
	j := v.wait(create)
	if j.Status != StatusSuccess {
		t.Fatalf("create: %s", jsonOf(t, j.OpResult))
	}
	if log := jsonOf(t, j.OpLog); !strings.Contains(log, "Selected nodes for instance new.example.com via iallocator hail: node2.example.com") {
		t.Errorf("create log %s", log)
	}
	if got := v.instField("new.example.com", "pnode"); jsonOf(t, got) != `["node2.example.com"]` {
		t.Errorf("pnode %s", jsonOf(t, got))
	}
}

// finish waits for job id to end (an error when ctx ends first).
func finish(ctx context.Context, e *Engine, id int64) (*Job, error) {
	var prev []any
	for {
		info, _, changed, err := e.WaitForChange(ctx, id, []string{"status"}, prev, -1, time.Second)
		if err != nil {
			return nil, err
		}
		if changed {
			prev = info
			if Finalized(info[0].(string)) {
				if j, ok := e.Get(id); ok {
					return j, nil
				}
				return nil, context.Canceled
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// TestTracePlannedAllocator: the external allocator, run in the plan
// phase, is one "iallocator hail" span under the opcode span, and the
// built-in allocator of an opcode whose external one declined is one
// "iallocator builtin" span (the plan phase traces neither twice).
func TestTracePlannedAllocator(t *testing.T) {
	tests := []struct {
		name, span string
		runner     opexec.IAllocatorRunner
	}{
		{"hail", "iallocator hail", &fakeIAllocators{path: "/fake/hail", out: `{"success": true, "info": "ok", "result": ["node2.example.com"]}`}},
		{"declined", "iallocator builtin", decliningIAllocator{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTraced()
			v := newEnv(t, 3, func(c *Config) { tr.configure(c); c.IAllocator = tt.runner })
			v.e.Start()
			j := v.run(createAlloc("traced.example.com", "file", "hail", 1024))
			if j.Status != StatusSuccess {
				t.Fatalf("job: %s %s", j.Status, jsonOf(t, j.OpResult))
			}
			op := tr.one(t, "opcode OP_INSTANCE_CREATE", telemetry.AttrJobID.Int64(j.ID))
			alloc := tr.one(t, tt.span, telemetry.AttrJobID.Int64(j.ID))
			if !isChild(alloc, op) {
				t.Errorf("allocator span's parent %v, want the opcode span %v", alloc.Parent().SpanID(), op.SpanContext().SpanID())
			}
		})
	}
}

// decliningIAllocator has hail installed but declines every request.
type decliningIAllocator struct{}

func (decliningIAllocator) Lookup(string) string { return "/fake/hail" }

func (decliningIAllocator) Run(context.Context, string, []byte) ([]byte, error) {
	return nil, opexec.ErrNoExternalIAllocator
}
