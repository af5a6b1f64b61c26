package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clusterJSON is a cluster file with three nodes, a network and n diskless
// instances inst1..instN.
func clusterJSON(n int) string {
	var insts []string
	for i := 1; i <= n; i++ {
		insts = append(insts, fmt.Sprintf(`{"name": "inst%d.example.com", "os": "noop", "pnode": "node%d.example.com",
			"disk_template": "diskless", "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1}, "tags": ["t%d"]}`, i, i%3+1, i))
	}
	return `{
  "cluster": {"name": "cluster.example.com", "master_node": "node1.example.com",
    "enabled_hypervisors": ["fake"], "enabled_disk_templates": ["diskless", "file"],
    "nicparams": {"mode": "bridged", "link": "br0"}, "master_netdev": "eth0", "master_netmask": 24,
    "tags": ["ctag"]},
  "groups": [{"name": "default", "alloc_policy": "preferred", "tags": ["gtag"]}],
  "nodes": [
    {"name": "node1.example.com", "group": "default", "pip": "192.0.2.11", "mtotal": 65536, "mnode": 2048,
     "dtotal": 1048576, "ctotal": 16, "cnos": 1, "cnodes": 1, "csockets": 2, "spindles": 4, "tags": ["rack1"]},
    {"name": "node2.example.com", "group": "default", "pip": "192.0.2.12", "mtotal": 65536, "mnode": 2048,
     "dtotal": 1048576, "ctotal": 16, "cnos": 1, "cnodes": 1, "csockets": 2, "spindles": 4},
    {"name": "node3.example.com", "group": "default", "pip": "192.0.2.13", "mtotal": 65536, "mnode": 2048,
     "dtotal": 1048576, "ctotal": 16, "cnos": 1, "cnodes": 1, "csockets": 2, "spindles": 4}
  ],
  "oses": [{"name": "noop"}],
  "networks": [{"name": "net1", "network": "203.0.113.0/24", "tags": ["ntag"]}],
  "instances": [` + strings.Join(insts, ",\n") + `]
}`
}

// fakeClock advances by one millisecond at every reading.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1795376095, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openModel(t testing.TB, st store.Store, instances int) *cluster.Model {
	t.Helper()
	f, err := cluster.ParseFile([]byte(clusterJSON(instances)))
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	m, err := cluster.Open(st, f, func() time.Time { return time.Unix(1795376000, 0) })
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return m
}

type env struct {
	t     testing.TB
	st    store.Store
	model *cluster.Model
	e     *Engine
	clock *fakeClock
}

// newEnv opens a model on a memstore and an engine (not started).
func newEnv(t testing.TB, instances int, mod func(*Config)) *env {
	t.Helper()
	st := newTestStore(t)
	model := openModel(t, st, instances)
	clock := newFakeClock()
	cfg := Config{Model: model, Clock: clock.Now, Logger: quiet, IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors()}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = e.Stop(ctx)
	})
	return &env{t: t, st: st, model: model, e: e, clock: clock}
}

func (v *env) submit(ops ...*rapiv2.OpCode) int64 {
	v.t.Helper()
	id, err := v.e.Submit(context.Background(), ops, SubmitOptions{})
	if err != nil {
		v.t.Fatalf("Submit: %v", err)
	}
	return id
}

// wait blocks until job id has ended and returns it.
func (v *env) wait(id int64) *Job {
	v.t.Helper()
	return waitJob(v.t, v.e, id)
}

func waitJob(t testing.TB, e *Engine, id int64) *Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var prev []any
	for {
		info, _, changed, err := e.WaitForChange(ctx, id, []string{"status"}, prev, -1, 5*time.Second)
		if err != nil {
			t.Fatalf("job %d: WaitForChange: %v", id, err)
		}
		if changed {
			prev = info
			if Finalized(info[0].(string)) {
				j, ok := e.Get(id)
				if !ok {
					t.Fatalf("job %d vanished", id)
				}
				return j
			}
		}
	}
}

// Opcode builders.

func tagsSet(kind rapiv2.TagKind, name string, tags ...string) *rapiv2.OpCode {
	op := &rapiv2.OpTagsSet{Kind: &kind, Tags: tags}
	if name != "" {
		op.Name = proto.String(name)
	}
	return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: op}}
}

func tagsDel(kind rapiv2.TagKind, name string, tags ...string) *rapiv2.OpCode {
	op := &rapiv2.OpTagsDel{Kind: &kind, Tags: tags}
	if name != "" {
		op.Name = proto.String(name)
	}
	return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsDel{TagsDel: op}}
}

func delay(seconds float64) *rapiv2.OpTestDelay {
	return &rapiv2.OpTestDelay{Duration: proto.Float64(seconds)}
}

func opOf(m proto.Message) *rapiv2.OpCode {
	switch x := m.(type) {
	case *rapiv2.OpTestDelay:
		return &rapiv2.OpCode{Op: &rapiv2.OpCode_TestDelay{TestDelay: x}}
	case *rapiv2.OpTagsSet:
		return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: x}}
	case *rapiv2.OpTagsDel:
		return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsDel{TagsDel: x}}
	}
	panic(fmt.Sprintf("opOf %T", m))
}

func dep(id int64, statuses ...rapiv2.DependencyStatus) *rapiv2.JobDependency {
	return &rapiv2.JobDependency{JobId: id, Statuses: statuses}
}

// jsonOf renders a value for comparisons.
func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// countingStore counts the read-write transactions of a store.
type countingStore struct {
	store.Store
	updates atomic.Int64
}

// Limits returns the counted store's limits.
func (s *countingStore) Limits() store.Limits { return store.LimitsOf(s.Store) }

func (s *countingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	s.updates.Add(1)
	return s.Store.Update(ctx, fn)
}

// recorder is a test executor: it records the order opcodes execute in
// and takes the locks it is told to.
type recorder struct {
	mu    sync.Mutex
	order []int64
	locks []opexec.Lock
}

func (r *recorder) Locks(proto.Message, *cluster.State) ([]opexec.Lock, error) { return r.locks, nil }

func (r *recorder) Exec(x *opexec.ExecContext, _ proto.Message) (any, error) {
	x.AfterCommit(func() { // Exec may run more than once
		r.mu.Lock()
		defer r.mu.Unlock()
		r.order = append(r.order, x.JobID)
	})
	return int64(x.JobID), nil
}

func (r *recorder) Order() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.order...)
}

// testLookup returns a string field of the named object in st.
func testLookup(st *cluster.State, resource, name, fieldName string) (string, error) {
	cells, err := st.Get(resource, name, []string{fieldName})
	if err != nil {
		return "", err
	}
	s, _ := cells[0].Value.(string)
	return s, nil
}
