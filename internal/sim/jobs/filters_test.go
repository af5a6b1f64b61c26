package jobs

import (
	"context"
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

// gate is an OP_TEST_DELAY executor whose Run blocks until released; it
// takes no lock but the shared BGL, so gated jobs run side by side.
type gate struct {
	release chan struct{}
	running atomic.Int64
}

func (g *gate) Locks(proto.Message, *cluster.State) ([]opexec.Lock, error) { return nil, nil }
func (g *gate) Exec(*opexec.ExecContext, proto.Message) (any, error)       { return nil, nil }
func (g *gate) Run(*opexec.ExecContext, proto.Message) error {
	g.running.Add(1)
	defer g.running.Add(-1)
	<-g.release
	return nil
}

const (
	uuidA = "00000000-0000-4000-8000-00000000000a"
	uuidB = "00000000-0000-4000-8000-00000000000b"
	uuidC = "00000000-0000-4000-8000-00000000000c"
)

var tagsSetPred = []any{"opcode", []any{"==", "OP_ID", "OP_TAGS_SET"}}

// setRule adds or replaces a rule and tells the engine, as the server does.
func (v *env) setRule(r *cluster.FilterRule) {
	v.t.Helper()
	err := v.model.Update(context.Background(), func(_ store.Tx, cfg *cluster.Config) error {
		cfg.Filters[r.UUID] = r
		return nil
	})
	if err != nil {
		v.t.Fatal(err)
	}
	v.e.FiltersChanged()
}

func (v *env) deleteRule(uuid string) {
	v.t.Helper()
	err := v.model.Update(context.Background(), func(_ store.Tx, cfg *cluster.Config) error {
		delete(cfg.Filters, uuid)
		return nil
	})
	if err != nil {
		v.t.Fatal(err)
	}
	v.e.FiltersChanged()
}

// stays checks that job id is still queued and has not started after the
// workers had time to pick it up.
func (v *env) stays(id int64) {
	v.t.Helper()
	time.Sleep(50 * time.Millisecond)
	j, ok := v.e.Get(id)
	if !ok || j.Status != StatusQueued || j.StartTS != nil || j.OpStatus[0] != StatusQueued {
		v.t.Fatalf("job %d: %+v, want queued and not started", id, j)
	}
}

func rule(uuid string, prio int64, action any, preds ...any) *cluster.FilterRule {
	return &cluster.FilterRule{UUID: uuid, Priority: prio, Action: action, Predicates: preds, ReasonTrail: []any{}}
}

func TestFilterPauseUntilDeleted(t *testing.T) {
	v := newEnv(t, 0, nil)
	v.e.Start()
	v.setRule(rule(uuidA, 5, "PAUSE", tagsSetPred))
	paused := v.submit(tagsSet(kCluster, "", "paused"))
	other := v.submit(opOf(delay(0)))
	if j := v.wait(other); j.Status != StatusSuccess {
		t.Fatalf("non-matching job: %s", j.Status)
	}
	v.stays(paused)
	// Another change of the rules that leaves the PAUSE in place.
	v.setRule(rule(uuidB, 9, "ACCEPT"))
	v.stays(paused)
	v.deleteRule(uuidA)
	if j := v.wait(paused); j.Status != StatusSuccess {
		t.Fatalf("after the rule was deleted: %s", j.Status)
	}
	if tags, _ := v.model.State().Tags("cluster", ""); len(tags) != 2 {
		t.Errorf("tags = %v", tags)
	}
}

func TestFilterPausedJobCanceled(t *testing.T) {
	v := newEnv(t, 0, nil)
	v.e.Start()
	v.setRule(rule(uuidA, 0, "PAUSE", tagsSetPred))
	id := v.submit(tagsSet(kCluster, "", "x"))
	v.stays(id)
	if ok, msg := v.e.Cancel(id); !ok || msg != "Dequeued job 1" {
		t.Fatalf("Cancel = %v %q", ok, msg)
	}
	j := v.wait(id)
	if j.Status != StatusCanceled || jsonOf(t, j.OpResult) != `[null]` || j.StartTS != nil || j.EndTS == nil {
		t.Fatalf("canceled paused job: %s %s", j.Status, jsonOf(t, j.OpResult))
	}
	v.deleteRule(uuidA) // releasing must not run the canceled job
	if j, _ := v.e.Get(id); j.Status != StatusCanceled {
		t.Fatalf("status %s", j.Status)
	}
}

func TestFilterReject(t *testing.T) {
	v := newEnv(t, 0, nil)
	v.e.Start()
	v.setRule(rule(uuidA, 5, "REJECT", tagsSetPred))
	id := v.submit(tagsSet(kCluster, "", "rejected"))
	j := v.wait(id)
	if j.Status != StatusCanceled || jsonOf(t, j.OpStatus) != `["canceled"]` || jsonOf(t, j.OpResult) != `[null]` ||
		jsonOf(t, j.OpLog) != `[[]]` || j.StartTS != nil || j.EndTS == nil {
		t.Fatalf("rejected job: %s", jsonOf(t, j))
	}
	if tags, _ := v.model.State().Tags("cluster", ""); len(tags) != 1 {
		t.Errorf("tags = %v", tags)
	}
}

// A rule replaced by REJECT cancels the jobs it kept queued.
func TestFilterReplacedPauseByReject(t *testing.T) {
	v := newEnv(t, 0, nil)
	v.e.Start()
	v.setRule(rule(uuidA, 5, "PAUSE", tagsSetPred))
	id := v.submit(tagsSet(kCluster, "", "x"))
	v.stays(id)
	v.setRule(rule(uuidA, 5, "REJECT", tagsSetPred))
	if j := v.wait(id); j.Status != StatusCanceled || j.StartTS != nil {
		t.Fatalf("status %s", j.Status)
	}
}

// Rules apply in order of priority, then UUID; CONTINUE rules are passed
// over; no applying rule means ACCEPT.
func TestFilterOrderAcceptContinue(t *testing.T) {
	v := newEnv(t, 0, nil)
	v.e.Start()
	v.setRule(rule(uuidA, 0, "CONTINUE", tagsSetPred))
	v.setRule(rule(uuidB, 1, "ACCEPT", tagsSetPred))
	v.setRule(rule(uuidC, 2, "REJECT"))
	if j := v.wait(v.submit(tagsSet(kCluster, "", "a"))); j.Status != StatusSuccess {
		t.Fatalf("ACCEPT before REJECT: %s", j.Status)
	}
	if j := v.wait(v.submit(opOf(delay(0)))); j.Status != StatusCanceled {
		t.Fatalf("only REJECT matches: %s", j.Status)
	}
	// Same priority: the lower UUID first.
	v.setRule(rule(uuidB, 2, "ACCEPT", tagsSetPred))
	v.setRule(rule(uuidA, 2, "REJECT", tagsSetPred))
	if j := v.wait(v.submit(tagsSet(kCluster, "", "b"))); j.Status != StatusCanceled {
		t.Fatalf("REJECT has the lower UUID: %s", j.Status)
	}
	v.deleteRule(uuidA)
	v.deleteRule(uuidC)
	if j := v.wait(v.submit(opOf(delay(0)))); j.Status != StatusSuccess {
		t.Fatalf("no applying rule: %s", j.Status)
	}
}

// The watermark matters to predicates that name it.
func TestFilterWatermark(t *testing.T) {
	v := newEnv(t, 0, nil)
	old := v.submit(tagsSet(kCluster, "", "old"))
	r := rule(uuidA, 0, "REJECT", []any{"jobid", []any{">", "id", "watermark"}})
	r.Watermark = v.e.LastJobID()
	if r.Watermark != old {
		t.Fatalf("LastJobID = %d, want %d", r.Watermark, old)
	}
	v.setRule(r)
	newer := v.submit(tagsSet(kCluster, "", "new"))
	v.e.Start()
	if j := v.wait(old); j.Status != StatusSuccess {
		t.Errorf("job at the watermark: %s", j.Status)
	}
	if j := v.wait(newer); j.Status != StatusCanceled {
		t.Errorf("job above the watermark: %s", j.Status)
	}
	// Numeric job id comparisons.
	v.setRule(rule(uuidA, 0, "REJECT", []any{"jobid", []any{"==", "id", int64(4)}}))
	if j := v.wait(v.submit(opOf(delay(0)))); j.ID != 3 || j.Status != StatusSuccess {
		t.Errorf("job 3: %s", j.Status)
	}
	if j := v.wait(v.submit(opOf(delay(0)))); j.ID != 4 || j.Status != StatusCanceled {
		t.Errorf("job 4: %s", j.Status)
	}
}

func TestFilterReasonAndOpcodeFields(t *testing.T) {
	v := newEnv(t, 0, nil)
	v.e.Start()
	v.setRule(rule(uuidA, 0, "REJECT",
		[]any{"reason", []any{"==", "source", "gnt:library:rlib2:tags"}},
		[]any{"opcode", []any{"=[]", "tags", "bad"}}))
	withReason := func(tags ...string) *rapiv2.OpCode {
		op := tagsSet(kCluster, "", tags...)
		op.GetTagsSet().Reason = []*rapiv2.ReasonEntry{{Source: "gnt:library:rlib2:tags", TimestampNs: 1}}
		return op
	}
	if j := v.wait(v.submit(withReason("good"))); j.Status != StatusSuccess {
		t.Errorf("opcode predicate false: %s", j.Status)
	}
	if j := v.wait(v.submit(tagsSet(kCluster, "", "bad"))); j.Status != StatusSuccess {
		t.Errorf("reason predicate false: %s", j.Status)
	}
	if j := v.wait(v.submit(withReason("bad", "x"))); j.Status != StatusCanceled {
		t.Errorf("both predicates true: %s", j.Status)
	}
	// An unknown opcode field makes the predicate false.
	v.setRule(rule(uuidA, 0, "REJECT", []any{"opcode", []any{"==", "no_such_field", "x"}}))
	if j := v.wait(v.submit(withReason("y"))); j.Status != StatusSuccess {
		t.Errorf("unknown field: %s", j.Status)
	}
}

func TestFilterRateLimit(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	v := newEnv(t, 0, func(c *Config) {
		c.Executors = lu.DefaultExecutors()
		c.Executors["OP_TEST_DELAY"] = g
		c.Workers = 8
	})
	v.e.Start()
	v.setRule(rule(uuidA, 0, []any{"RATE_LIMIT", int64(2)}, []any{"opcode", []any{"==", "OP_ID", "OP_TEST_DELAY"}}))
	var ids []int64
	for range 4 {
		ids = append(ids, v.submit(opOf(delay(1))))
	}
	waitFor(t, func() bool { return g.running.Load() == 2 })
	time.Sleep(50 * time.Millisecond)
	if n := g.running.Load(); n != 2 {
		t.Fatalf("%d jobs run, limit 2", n)
	}
	// Jobs the rule does not match are not limited.
	if j := v.wait(v.submit(tagsSet(kCluster, "", "t"))); j.Status != StatusSuccess {
		t.Fatalf("tag job: %s", j.Status)
	}
	queued := 0
	for _, id := range ids {
		if j, _ := v.e.Get(id); j.Status == StatusQueued {
			queued++
		}
	}
	if queued != 2 {
		t.Fatalf("%d jobs queued, want 2", queued)
	}
	g.release <- struct{}{} // one ends: a third starts
	waitFor(t, func() bool { return g.running.Load() == 2 })
	// Raising the limit lets the last one start.
	v.setRule(rule(uuidA, 0, []any{"RATE_LIMIT", int64(5)}, []any{"opcode", []any{"==", "OP_ID", "OP_TEST_DELAY"}}))
	waitFor(t, func() bool { return g.running.Load() == 3 })
	close(g.release)
	for _, id := range ids {
		if j := v.wait(id); j.Status != StatusSuccess {
			t.Errorf("job %d: %s", id, j.Status)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
