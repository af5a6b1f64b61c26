package jobs

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

const (
	kCluster  = rapiv2.TagKind_TAG_KIND_CLUSTER
	kNode     = rapiv2.TagKind_TAG_KIND_NODE
	kGroup    = rapiv2.TagKind_TAG_KIND_NODEGROUP
	kInstance = rapiv2.TagKind_TAG_KIND_INSTANCE
	kNetwork  = rapiv2.TagKind_TAG_KIND_NETWORK
)

func TestJobStatus(t *testing.T) {
	cases := []struct {
		ops  []string
		want string
	}{
		{[]string{"success", "success"}, "success"},
		{[]string{"queued", "queued"}, "queued"},
		{[]string{"success", "queued"}, "queued"},
		{[]string{"success", "waiting", "queued"}, "waiting"},
		{[]string{"running", "queued"}, "running"},
		{[]string{"success", "error", "error"}, "error"},
		{[]string{"canceled", "canceled"}, "canceled"},
		{[]string{"canceling", "queued"}, "canceling"},
		{[]string{"error", "canceled"}, "error"},
	}
	for _, c := range cases {
		if got := JobStatus(c.ops); got != c.want {
			t.Errorf("JobStatus(%v) = %q, want %q", c.ops, got, c.want)
		}
	}
}

func TestPyFloat(t *testing.T) {
	for f, want := range map[float64]string{
		1: "1.0", 0.5: "0.5", 10: "10.0", 1e16: "1e+16", 1e-5: "1e-05", 0.0001: "0.0001", 123456789.25: "123456789.25", 0: "0.0",
	} {
		if got := pyFloat(f); got != want {
			t.Errorf("pyFloat(%v) = %q, want %q", f, got, want)
		}
	}
	if got := summaryOf(delay(2.5)); got != "TEST_DELAY(2.5)" {
		t.Errorf("summary = %q", got)
	}
	if got := summaryOf(tagsSet(kCluster, "", "a").GetTagsSet()); got != "TAGS_SET" {
		t.Errorf("summary = %q", got)
	}
}

// TestTagJobs runs tag jobs on every kind of object and checks their
// results against Ganeti's (captures seq 47-59) and their effect.
func TestTagJobs(t *testing.T) {
	long := strings.Repeat("x", 129)
	cases := []struct {
		name     string
		ops      []*rapiv2.OpCode
		status   string
		opstatus []string
		result   string // JSON of opresult
		kind     string
		object   string
		tags     []string // the object's tags afterwards
	}{
		{name: "cluster add", ops: []*rapiv2.OpCode{tagsSet(kCluster, "", "anchor-tag1", "b.c+d*e/f:g@h-i_j")},
			status: "success", result: `[null]`, kind: "cluster", tags: []string{"anchor-tag1", "b.c+d*e/f:g@h-i_j", "ctag"}},
		{name: "cluster del", ops: []*rapiv2.OpCode{tagsDel(kCluster, "", "ctag")},
			status: "success", result: `[null]`, kind: "cluster", tags: []string{}},
		{name: "invalid tag", ops: []*rapiv2.OpCode{tagsSet(kCluster, "", "bad tag with spaces")},
			status: "error", result: `[["TagError",["Tag contains invalid characters"]]]`, kind: "cluster", tags: []string{"ctag"}},
		{name: "tag too long", ops: []*rapiv2.OpCode{tagsSet(kCluster, "", long)},
			status: "error", result: `[["TagError",["Tag too long (\u003e128 characters)"]]]`, kind: "cluster", tags: []string{"ctag"}},
		{name: "empty tag", ops: []*rapiv2.OpCode{tagsSet(kCluster, "", "")},
			status: "error", result: `[["TagError",["Tags cannot be empty"]]]`, kind: "cluster", tags: []string{"ctag"}},
		{name: "delete missing", ops: []*rapiv2.OpCode{tagsDel(kCluster, "", "does-not-exist", "ctag", "a-missing")},
			status: "error", result: `[["OpPrereqError",["Tag(s) 'a-missing', 'does-not-exist' not found","unknown_entity"]]]`,
			kind: "cluster", tags: []string{"ctag"}},
		{name: "node add short name", ops: []*rapiv2.OpCode{tagsSet(kNode, "node2", "rack2")},
			status: "success", result: `[null]`, kind: "node", object: "node2.example.com", tags: []string{"rack2"}},
		{name: "node del", ops: []*rapiv2.OpCode{tagsDel(kNode, "node1.example.com", "rack1")},
			status: "success", result: `[null]`, kind: "node", object: "node1.example.com", tags: []string{}},
		{name: "unknown node", ops: []*rapiv2.OpCode{tagsSet(kNode, "nosuch", "x")},
			status: "error", result: `[["OpPrereqError",["Node 'nosuch' not known","unknown_entity"]]]`},
		{name: "group add", ops: []*rapiv2.OpCode{tagsSet(kGroup, "default", "g2")},
			status: "success", result: `[null]`, kind: "nodegroup", object: "default", tags: []string{"g2", "gtag"}},
		{name: "unknown group", ops: []*rapiv2.OpCode{tagsSet(kGroup, "nosuch", "x")},
			status: "error", result: `[["OpPrereqError",["Node group 'nosuch' not found","unknown_entity"]]]`},
		{name: "instance add", ops: []*rapiv2.OpCode{tagsSet(kInstance, "inst1.example.com", "web", "prod")},
			status: "success", result: `[null]`, kind: "instance", object: "inst1.example.com", tags: []string{"prod", "t1", "web"}},
		{name: "instance del", ops: []*rapiv2.OpCode{tagsDel(kInstance, "inst2", "t2")},
			status: "success", result: `[null]`, kind: "instance", object: "inst2.example.com", tags: []string{}},
		{name: "unknown instance", ops: []*rapiv2.OpCode{tagsSet(kInstance, "nosuch.example.com", "x")},
			status: "error", result: `[["OpPrereqError",["Instance 'nosuch.example.com' not known","unknown_entity"]]]`},
		{name: "network add", ops: []*rapiv2.OpCode{tagsSet(kNetwork, "net1", "public")},
			status: "success", result: `[null]`, kind: "network", object: "net1", tags: []string{"ntag", "public"}},
		{name: "unknown network", ops: []*rapiv2.OpCode{tagsDel(kNetwork, "nosuch", "x")},
			status: "error", result: `[["OpPrereqError",["Network 'nosuch' not found","unknown_entity"]]]`},
		{name: "no tags", ops: []*rapiv2.OpCode{tagsSet(kInstance, "inst1.example.com")},
			status: "success", result: `[null]`, kind: "instance", object: "inst1.example.com", tags: []string{"t1"}},
		{name: "preceding failure", ops: []*rapiv2.OpCode{tagsSet(kCluster, "", "ok1"), tagsDel(kCluster, "", "nope"), tagsSet(kCluster, "", "ok2")},
			status: "error", opstatus: []string{"success", "error", "error"},
			result: `[null,["OpPrereqError",["Tag(s) 'nope' not found","unknown_entity"]],["OpExecError",["Preceding opcode failed"]]]`,
			kind:   "cluster", tags: []string{"ctag", "ok1"}},
		{name: "two opcodes", ops: []*rapiv2.OpCode{tagsSet(kCluster, "", "x1"), tagsDel(kCluster, "", "x1", "ctag")},
			status: "success", opstatus: []string{"success", "success"}, result: `[null,null]`, kind: "cluster", tags: []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newEnv(t, 3, nil)
			v.e.Start()
			before := v.model.State()
			id := v.submit(c.ops...)
			j := v.wait(id)
			if j.Status != c.status {
				t.Errorf("status = %q, want %q (results %s)", j.Status, c.status, jsonOf(t, j.OpResult))
			}
			if c.opstatus != nil && !slices.Equal(j.OpStatus, c.opstatus) {
				t.Errorf("opstatus = %v, want %v", j.OpStatus, c.opstatus)
			}
			if got := jsonOf(t, j.OpResult); got != c.result {
				t.Errorf("opresult = %s, want %s", got, c.result)
			}
			if c.kind != "" {
				tags, err := v.model.State().Tags(c.kind, c.object)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(tags, c.tags) {
					t.Errorf("tags = %v, want %v", tags, c.tags)
				}
			}
			if j.Status != "success" && v.model.State() != before {
				// A failed job may only have committed the opcodes before the failure.
				if c.opstatus == nil {
					t.Errorf("a failed job changed the cluster")
				}
			}
			if j.EndTS == nil || j.StartTS == nil || j.ReceivedTS == nil {
				t.Errorf("timestamps: %+v %+v %+v", j.ReceivedTS, j.StartTS, j.EndTS)
			}
			for i := range j.OpStatus {
				if j.OpEnd[i] == nil {
					t.Errorf("op %d has no end", i)
				}
			}
		})
	}
}

// TestTagJobFields checks the recorded J_FIELDS of a job against capture
// seq 47/57: summary, reason trail, dry-run log, timestamps.
func TestTagJobFields(t *testing.T) {
	v := newEnv(t, 0, nil)
	v.e.Start()
	op := tagsSet(kCluster, "", "dryrun-tag")
	op.GetTagsSet().DryRun = proto.Bool(true)
	op.GetTagsSet().Reason = []*rapiv2.ReasonEntry{{Source: "gnt:library:rlib2:tags", TimestampNs: 1}}
	id := v.submit(op)
	j := v.wait(id)
	if j.Status != "success" || jsonOf(t, j.OpResult) != `[null]` {
		t.Fatalf("dry run: %s %s", j.Status, jsonOf(t, j.OpResult))
	}
	if tags, _ := v.model.State().Tags("cluster", ""); !slices.Equal(tags, []string{"ctag"}) {
		t.Errorf("dry run changed the tags: %v", tags)
	}
	if len(j.OpLog[0]) != 1 || j.OpLog[0][0].Serial != 1 || j.OpLog[0][0].Type != "message" ||
		j.OpLog[0][0].Message != " - INFO: dry-run mode requested, not actually executing the operation" {
		t.Errorf("oplog = %s", jsonOf(t, j.OpLog))
	}
	if !slices.Equal(j.Summary, []string{"TAGS_SET"}) {
		t.Errorf("summary = %v", j.Summary)
	}
	set := j.Ops[0].GetTagsSet()
	if len(set.Reason) != 2 || set.Reason[1].Source != "gnt:opcode:tags_set" ||
		set.Reason[1].Reason != "job=1;index=0" ||
		set.Reason[1].TimestampNs != (j.ReceivedTS.Sec*1e6+j.ReceivedTS.Usec)*1000 {
		t.Errorf("reason = %v", set.Reason)
	}
	if set.DebugLevel == nil || *set.DebugLevel != 0 {
		t.Errorf("debug_level = %v, want 0 once started", set.DebugLevel)
	}
	if !(j.ReceivedTS.Time().Before(j.StartTS.Time()) && j.StartTS.Time().Before(j.EndTS.Time())) {
		t.Errorf("timestamps out of order: %v %v %v", j.ReceivedTS, j.StartTS, j.EndTS)
	}
	if j.OpStart[0] == nil || j.OpExec[0] == nil || j.OpEnd[0] == nil {
		t.Errorf("opcode timestamps: %v %v %v", j.OpStart, j.OpExec, j.OpEnd)
	}
	if j.Priority != PriorityLowest || !slices.Equal(j.OpPriority, []int{0}) {
		t.Errorf("priority %d, oppriority %v", j.Priority, j.OpPriority)
	}
	info, err := v.e.Info(j, []string{"id", "status", "summary", "opstatus", "received_ts", "oplog", "oppriority", "archived"})
	if err != nil {
		t.Fatal(err)
	}
	want := `[1,"success",["TAGS_SET"],["success"],[` + jsonOf(t, j.ReceivedTS.Sec) + `,` + jsonOf(t, j.ReceivedTS.Usec) +
		`],[[[1,` + jsonOf(t, j.OpLog[0][0].Time) + `,"message"," - INFO: dry-run mode requested, not actually executing the operation"]]],[0],false]`
	if got := jsonOf(t, info); got != want {
		t.Errorf("info = %s\nwant   %s", got, want)
	}
	if _, err := v.e.Info(j, []string{"nosuch"}); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestSubmitValidation(t *testing.T) {
	v := newEnv(t, 0, nil)
	ctx := context.Background()
	if _, err := v.e.Submit(ctx, nil, SubmitOptions{}); err == nil {
		t.Error("empty job accepted")
	}
	if _, err := v.e.Submit(ctx, []*rapiv2.OpCode{{}}, SubmitOptions{}); err == nil {
		t.Error("empty opcode accepted")
	}
	_, err := v.e.Submit(ctx, []*rapiv2.OpCode{{Op: &rapiv2.OpCode_ClusterVerify{ClusterVerify: &rapiv2.OpClusterVerify{}}}}, SubmitOptions{})
	if de, ok := errs.As(err); !ok || de.Class != errs.ClassNotImplemented {
		t.Errorf("unimplemented opcode: %v", err)
	}
	p := 20
	if _, err := v.e.Submit(ctx, []*rapiv2.OpCode{opOf(delay(0))}, SubmitOptions{Priority: &p}); err == nil {
		t.Error("priority 20 accepted")
	}
	op := opOf(delay(0))
	op.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(-5)}
	if _, err := v.e.Submit(ctx, []*rapiv2.OpCode{op}, SubmitOptions{}); err == nil {
		t.Error("relative dependency before job 1 accepted")
	}
	// The caller's opcodes are not modified.
	op = tagsSet(kCluster, "", "a")
	id := v.submit(op)
	if len(op.GetTagsSet().Reason) != 0 {
		t.Error("Submit modified the caller's opcode")
	}
	if j, ok := v.e.Get(id); !ok || j.Status != "queued" || j.StartTS != nil || j.OpResult[0] != nil {
		t.Errorf("queued job: %+v", j)
	}
	if _, ok := v.e.Get(999); ok {
		t.Error("unknown job found")
	}
	v.e.Stop(ctx)
	_, err = v.e.Submit(ctx, []*rapiv2.OpCode{op}, SubmitOptions{})
	if de, ok := errs.As(err); !ok || de.Class != errs.ClassUnavailable {
		t.Errorf("submit after stop: %v", err)
	}
}

// TestCancel covers Ganeti's cancel answers (captures seq 240, 243, 250,
// 251) for queued, waiting, running, finished and unknown jobs.
func TestCancel(t *testing.T) {
	v := newEnv(t, 3, func(c *Config) { c.Workers = 2 })
	queued := v.submit(tagsSet(kCluster, "", "paused-tag"))
	ok, msg := v.e.Cancel(queued)
	if !ok || msg != "Dequeued job 1" {
		t.Errorf("cancel queued = %v %q", ok, msg)
	}
	j, _ := v.e.Get(queued)
	if j.Status != "canceled" || jsonOf(t, j.OpResult) != `[null]` || j.StartTS != nil || j.EndTS == nil ||
		!slices.Equal(j.OpStatus, []string{"canceled"}) {
		t.Errorf("canceled job: %s %v %s %v %v", j.Status, j.OpStatus, jsonOf(t, j.OpResult), j.StartTS, j.EndTS)
	}
	if ok, msg := v.e.Cancel(queued); ok || msg != "Job 1 not found in queue" {
		t.Errorf("cancel again = %v %q", ok, msg)
	}
	if ok, msg := v.e.Cancel(999999); ok || msg != "Job 999999 not found in queue" {
		t.Errorf("cancel unknown = %v %q", ok, msg)
	}

	// A job holding the master's node lock, one waiting for it.
	hold := delay(30)
	hold.NoLocks = proto.Bool(false)
	running := v.submit(opOf(hold))
	v.e.Start()
	waitStatus(t, v.e, running, "running")
	wait := delay(0)
	wait.NoLocks = proto.Bool(false)
	waiting := v.submit(opOf(wait), tagsSet(kCluster, "", "never"))
	waitStatus(t, v.e, waiting, "waiting")
	waitLocked(t, v.e, "3")
	rows := v.e.Locks()
	if got := jsonOf(t, rows); !strings.Contains(got, `"exclusive",["2"]`) || !strings.Contains(got, `[["exclusive",["3"]]]`) {
		t.Errorf("locks = %s", got)
	}
	if ok, msg := v.e.Cancel(running); ok || msg != "Job 2 is no longer waiting in the queue" {
		t.Errorf("cancel running = %v %q", ok, msg)
	}
	if ok, msg := v.e.Cancel(waiting); !ok || msg != "Dequeued job 3" {
		t.Errorf("cancel waiting = %v %q", ok, msg)
	}
	j, _ = v.e.Get(waiting)
	if j.Status != "canceled" || jsonOf(t, j.OpResult) != `["Job canceled by request","Job canceled by request"]` {
		t.Errorf("canceled waiting job: %s %s", j.Status, jsonOf(t, j.OpResult))
	}
	if got := jsonOf(t, v.e.Locks()); strings.Contains(got, `"3"`) {
		t.Errorf("canceled job still in the locks: %s", got)
	}
	if tags, _ := v.model.State().Tags("cluster", ""); slices.Contains(tags, "never") {
		t.Error("canceled job ran")
	}
}

// waitStatus waits until job id has status.
func waitStatus(t *testing.T, e *Engine, id int64, status string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prev := []any{"?"}
	for {
		info, _, changed, err := e.WaitForChange(ctx, id, []string{"status"}, prev, 1<<62, time.Second)
		if err != nil {
			t.Fatalf("job %d never reached %s: %v", id, status, err)
		}
		if changed {
			if info[0] == status {
				return
			}
			if Finalized(info[0].(string)) {
				t.Fatalf("job %d ended %s, waiting for %s", id, info[0], status)
			}
			prev = info
		}
	}
}

// TestDepends covers Ganeti's job dependencies.
func TestDepends(t *testing.T) {
	v := newEnv(t, 3, nil)
	v.e.Start()
	first := v.submit(opOf(delay(0.2)))
	after := opOf(delay(0))
	after.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(first, rapiv2.DependencyStatus_DEPENDENCY_STATUS_SUCCESS)}
	ok := v.submit(after)
	waitStatus(t, v.e, ok, "waiting")
	rel := opOf(delay(0))
	rel.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(-2, rapiv2.DependencyStatus_DEPENDENCY_STATUS_ERROR)}
	wrong := v.submit(rel) // depends on job 1 (3-2), wants error
	any := opOf(delay(0))
	any.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(first)}
	anyID := v.submit(any)
	unknown := opOf(delay(0))
	unknown.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(999)}
	unknownID := v.submit(unknown)

	if j := v.wait(ok); j.Status != "success" {
		t.Errorf("dependent job: %s %s", j.Status, jsonOf(t, j.OpResult))
	} else if f, _ := v.e.Get(first); !f.EndTS.Time().Before(j.OpExec[0].Time()) && *f.EndTS != *j.OpExec[0] {
		t.Errorf("dependent job ran before its dependency ended")
	}
	j := v.wait(wrong)
	if got := jsonOf(t, j.OpResult); j.Status != "error" ||
		got != `[["OpExecError",["Dependency job 1 finished with status 'success', not one of 'error' as required"]]]` {
		t.Errorf("wrong status dependency: %s %s", j.Status, got)
	}
	if got := j.Ops[0].GetTestDelay().Depends[0].JobId; got != 1 {
		t.Errorf("relative dependency stored as %d", got)
	}
	if j := v.wait(anyID); j.Status != "success" {
		t.Errorf("dependency without statuses: %s", j.Status)
	}
	if j := v.wait(unknownID); jsonOf(t, j.OpResult) != `[["OpExecError",["Dependency error: Job 999 not found"]]]` {
		t.Errorf("unknown dependency: %s", jsonOf(t, j.OpResult))
	}

	// A canceled dependency cancels the job, unless canceled is accepted.
	queued := newEnv(t, 0, nil)
	a := queued.submit(opOf(delay(0)))
	b := opOf(delay(0))
	b.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(a, rapiv2.DependencyStatus_DEPENDENCY_STATUS_SUCCESS)}
	bID := queued.submit(b)
	c := opOf(delay(0))
	c.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(a, rapiv2.DependencyStatus_DEPENDENCY_STATUS_CANCELED)}
	cID := queued.submit(c)
	queued.e.Cancel(a)
	queued.e.Start()
	if j := queued.wait(bID); j.Status != "canceled" || jsonOf(t, j.OpResult) != `["Job canceled by request"]` {
		t.Errorf("job depending on a canceled one: %s %s", j.Status, jsonOf(t, j.OpResult))
	}
	if j := queued.wait(cID); j.Status != "success" {
		t.Errorf("job accepting a canceled dependency: %s", j.Status)
	}
	self := opOf(delay(0))
	self.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(4)}
	if j := queued.wait(queued.submit(self)); jsonOf(t, j.OpResult) != `[["OpExecError",["Job can't depend on itself"]]]` {
		t.Errorf("self dependency: %s", jsonOf(t, j.OpResult))
	}
}

// TestPriorities: with one worker, queued jobs run by priority, then id.
func TestPriorities(t *testing.T) {
	rec := &recorder{}
	v := newEnv(t, 0, func(c *Config) {
		c.Workers = 1
		c.Executors = map[string]opexec.Executor{"OP_TEST_DELAY": rec}
	})
	prio := func(p rapiv2.OpPriority) *rapiv2.OpCode {
		op := opOf(delay(0))
		op.GetTestDelay().Priority = &p
		return op
	}
	low := v.submit(prio(rapiv2.OpPriority_OP_PRIORITY_LOW))
	normal := v.submit(prio(rapiv2.OpPriority_OP_PRIORITY_NORMAL))
	high := v.submit(prio(rapiv2.OpPriority_OP_PRIORITY_HIGH))
	normal2 := v.submit(opOf(delay(0)))
	p := PriorityHighest
	highest, err := v.e.Submit(context.Background(), []*rapiv2.OpCode{opOf(delay(0))}, SubmitOptions{Priority: &p})
	if err != nil {
		t.Fatal(err)
	}
	if j, _ := v.e.Get(highest); j.Priority != PriorityHighest {
		t.Errorf("priority = %d", j.Priority)
	}
	v.e.Start()
	v.wait(low)
	want := []int64{highest, high, normal, normal2, low}
	if got := rec.Order(); !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	if j, _ := v.e.Get(high); jsonOf(t, j.OpResult) != "[3]" {
		t.Errorf("result = %s", jsonOf(t, j.OpResult))
	}
}

// TestWaitForChange covers Ganeti's WaitForJobChange semantics (captures
// seq 233-236) and wake-ups by the change itself.
func TestWaitForChange(t *testing.T) {
	v := newEnv(t, 0, nil)
	ctx := context.Background()
	id := v.submit(opOf(&rapiv2.OpTestDelay{Duration: proto.Float64(0.05), Repeat: proto.Int64(2)}))

	info, logs, changed, err := v.e.WaitForChange(ctx, id, []string{"status"}, nil, -1, time.Second)
	if err != nil || !changed || jsonOf(t, info) != `["queued"]` || len(logs) != 0 {
		t.Fatalf("first call: %v %v %v %v", info, logs, changed, err)
	}
	start := time.Now()
	_, _, changed, err = v.e.WaitForChange(ctx, id, []string{"status"}, []any{"queued"}, -1, 50*time.Millisecond)
	if err != nil || changed || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("timeout: changed %v err %v after %v", changed, err, time.Since(start))
	}

	// A waiter blocked on "queued" wakes up when the job starts.
	type result struct {
		info    []any
		changed bool
		at      time.Time
	}
	done := make(chan result, 1)
	go func() {
		info, _, changed, _ := v.e.WaitForChange(ctx, id, []string{"status"}, []any{"queued"}, -1, 10*time.Second)
		done <- result{info, changed, time.Now()}
	}()
	time.Sleep(20 * time.Millisecond)
	started := time.Now()
	v.e.Start()
	r := <-done
	if !r.changed || r.info[0] == "queued" || r.at.Sub(started) > 2*time.Second {
		t.Errorf("wake-up: %v %v after %v", r.info, r.changed, r.at.Sub(started))
	}

	// Log entries newer than the serial given.
	var serial int64 = -1
	var seen []string
	prev := []any{"?"}
	for {
		info, logs, changed, err := v.e.WaitForChange(ctx, id, []string{"status"}, prev, serial, 5*time.Second)
		if err != nil || !changed {
			t.Fatalf("wait: %v %v", changed, err)
		}
		for _, l := range logs {
			seen = append(seen, l[3].(string))
			serial = l[0].(int64)
		}
		prev = info
		if info[0] == "success" {
			break
		}
	}
	if !slices.Equal(seen, []string{" - INFO: Test delay iteration 0/1", " - INFO: Test delay iteration 1/1"}) {
		t.Errorf("log messages = %q", seen)
	}

	// A finished job answers at once, even with up-to-date info (seq 236).
	start = time.Now()
	info, logs, changed, err = v.e.WaitForChange(ctx, id, []string{"status"}, []any{"success"}, 2, 10*time.Second)
	if err != nil || !changed || jsonOf(t, info) != `["success"]` || len(logs) != 0 || time.Since(start) > time.Second {
		t.Errorf("finished job: %v %v %v %v", info, logs, changed, err)
	}
	info, _, _, _ = v.e.WaitForChange(ctx, id, []string{"status", "opstatus"}, []any{"queued", nil}, -1, time.Second)
	if jsonOf(t, info) != `["success",["success"]]` {
		t.Errorf("stale info: %s", jsonOf(t, info))
	}
	if _, _, _, err := v.e.WaitForChange(ctx, 999, []string{"status"}, nil, -1, time.Second); err == nil {
		t.Error("unknown job: no error")
	} else if de, ok := errs.As(err); !ok || de.Code != errs.CodeNoEnt {
		t.Errorf("unknown job: %v", err)
	}
	if _, _, _, err := v.e.WaitForChange(ctx, id, []string{"bogus"}, nil, -1, time.Second); err == nil {
		t.Error("unknown field: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	queued := v.submit(opOf(delay(10)))
	v.e.Cancel(queued)
	if _, _, _, err := v.e.WaitForChange(cctx, queued, []string{"status"}, []any{"canceled"}, -1, time.Second); err != nil {
		t.Errorf("finished job with a canceled context: %v", err)
	}
}

// TestWatch streams a job until it ends.
func TestWatch(t *testing.T) {
	v := newEnv(t, 0, nil)
	id := v.submit(opOf(&rapiv2.OpTestDelay{Duration: proto.Float64(0.02), Repeat: proto.Int64(3)}))
	ch, err := v.e.Watch(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	v.e.Start()
	var statuses []string
	var last *Job
	for j := range ch {
		statuses = append(statuses, j.Status)
		last = j
	}
	if statuses[0] != "queued" || last == nil || last.Status != "success" || len(last.OpLog[0]) != 3 {
		t.Errorf("statuses %v, last %+v", statuses, last)
	}
	if _, err := v.e.Watch(context.Background(), 999); err == nil {
		t.Error("watching an unknown job")
	}
	// A finished job: one snapshot.
	ch, _ = v.e.Watch(context.Background(), id)
	n := 0
	for range ch {
		n++
	}
	if n != 1 {
		t.Errorf("finished job: %d snapshots", n)
	}
}

// TestArchive: old finished jobs leave the queue but stay readable.
func TestArchive(t *testing.T) {
	v := newEnv(t, 0, func(c *Config) { c.ArchiveAfter = time.Hour })
	v.e.Start()
	done := v.wait(v.submit(tagsSet(kCluster, "", "a")))
	queued := v.submit(opOf(delay(0)))
	v.e.Cancel(queued) // may come too late: the job then runs and succeeds
	v.wait(queued)
	if n, err := v.e.Archive(); err != nil || n != 0 {
		t.Fatalf("archive of young jobs: %d %v", n, err)
	}
	v.clock.Advance(2 * time.Hour)
	if n, err := v.e.Archive(); err != nil || n != 2 {
		t.Fatalf("archive: %d %v", n, err)
	}
	if ids := v.e.IDs(); len(ids) != 0 {
		t.Errorf("IDs = %v", ids)
	}
	if l := v.e.List(); len(l) != 0 {
		t.Errorf("List = %v", l)
	}
	j, ok := v.e.Get(done.ID)
	if !ok || !j.Archived || j.Status != "success" || jsonOf(t, j.OpStatus) != jsonOf(t, done.OpStatus) {
		t.Errorf("archived job: %v %+v", ok, j)
	}
	res, err := v.model.State().Query("job", []string{"id"}, nil)
	if err != nil || len(res.Data) != 0 {
		t.Errorf("job query after archiving: %v %v", res, err)
	}
	if info, _, changed, err := v.e.WaitForChange(context.Background(), done.ID, []string{"status", "archived"}, nil, -1, time.Second); err != nil || !changed || jsonOf(t, info) != `["success",true]` {
		t.Errorf("wait on archived job: %v %v %v", info, changed, err)
	}
	// A job depending on an archived one.
	op := opOf(delay(0))
	op.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(done.ID, rapiv2.DependencyStatus_DEPENDENCY_STATUS_SUCCESS)}
	if j := v.wait(v.submit(op)); j.Status != "success" {
		t.Errorf("dependency on an archived job: %s %s", j.Status, jsonOf(t, j.OpResult))
	}
	// Ids keep increasing across restarts even with an empty queue.
	ctx := context.Background()
	v.e.Stop(ctx)
	e2, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: v.model, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Stop(ctx)
	id, err := e2.Submit(ctx, []*rapiv2.OpCode{opOf(delay(0))}, SubmitOptions{})
	if err != nil || id != 4 {
		t.Errorf("id after restart = %d %v", id, err)
	}
}

// TestQueryRows: the "job" and "lock" query resources.
func TestQueryRows(t *testing.T) {
	v := newEnv(t, 0, func(c *Config) { c.Workers = 1 })
	hold := delay(30)
	hold.NoLocks = proto.Bool(false)
	id := v.submit(opOf(hold))
	v.submit(tagsSet(kCluster, "", "a"))
	v.e.Start()
	waitStatus(t, v.e, id, "running")
	res, err := v.model.State().Query("job", []string{"id", "status", "summary", "received_ts", "archived", "ops", "priority"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 2 {
		t.Fatalf("job rows: %s", jsonOf(t, res.Data))
	}
	row := jsonOf(t, res.Data[0])
	if !strings.HasPrefix(row, `[[0,1],[0,"running"],[0,["TEST_DELAY(30.0)"]],[0,[`) || !strings.Contains(row, `"OP_ID":"OP_TEST_DELAY"`) {
		t.Errorf("job row = %s", row)
	}
	res, err = v.model.State().Query("job", []string{"id"}, []any{"=", "status", "queued"})
	if err != nil || jsonOf(t, res.Data) != `[[[0,2]]]` {
		t.Errorf("filtered job rows: %v %v", jsonOf(t, res.Data), err)
	}
	res, err = v.model.State().Query("lock", []string{"name", "mode", "owner", "pending"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	master, _ := v.model.State().Get("node", "node1.example.com", []string{"uuid"})
	want := `[[[0,"cluster/BGL"],[0,"shared"],[0,["1"]],[0,[]]],[[0,"node/` + master[0].Value.(string) + `"],[0,"exclusive"],[0,["1"]],[0,[]]]]`
	if got := jsonOf(t, res.Data); got != want {
		t.Errorf("lock rows = %s\nwant %s", got, want)
	}
}

// TestLockManager checks grants, fairness and release.
func TestLockManager(t *testing.T) {
	lm := newLockManager()
	x := func(level opexec.Level, name string) opexec.Lock {
		return opexec.Lock{Level: level, Name: name, Mode: opexec.Exclusive}
	}
	s := func(level opexec.Level, name string) opexec.Lock {
		return opexec.Lock{Level: level, Name: name, Mode: opexec.Shared}
	}
	bgl := s(opexec.LevelCluster, opexec.BGL)
	r1 := lm.newReq(1, 0, []opexec.Lock{x(opexec.LevelInstance, "a"), bgl})
	r2 := lm.newReq(2, 0, []opexec.Lock{x(opexec.LevelInstance, "b"), bgl})
	r3 := lm.newReq(3, 0, []opexec.Lock{x(opexec.LevelInstance, "a"), bgl})
	r4 := lm.newReq(4, 0, []opexec.Lock{s(opexec.LevelInstance, "a"), bgl})
	r5 := lm.newReq(5, -10, []opexec.Lock{s(opexec.LevelInstance, "c"), x(opexec.LevelCluster, opexec.BGL)})
	if !lm.acquire(r1) || !lm.acquire(r2) {
		t.Fatal("independent requests not granted")
	}
	if lm.acquire(r3) || lm.acquire(r4) {
		t.Fatal("conflicting requests granted")
	}
	if lm.acquire(r5) {
		t.Fatal("exclusive BGL granted while others hold it")
	}
	// r5 (higher priority) is first in line and wants the BGL exclusively.
	if g := lm.release(r1); len(g) != 0 {
		t.Fatalf("granted %v while r2 holds the BGL and r5 waits", g)
	}
	if g := lm.release(r2); len(g) != 1 || g[0] != r5 {
		t.Fatalf("release r2 granted %v", g)
	}
	if g := lm.release(r5); len(g) != 1 || g[0] != r3 {
		t.Fatalf("release r5 granted %v, want r3 only (r4 waits behind it)", g)
	}
	if g := lm.release(r3); len(g) != 1 || g[0] != r4 {
		t.Fatalf("release r3 granted %v", g)
	}
	lm.release(r4)
	if len(lm.locks) != 0 {
		t.Fatalf("left: %v", lm.locks)
	}
	got := normalizeLocks([]opexec.Lock{x(opexec.LevelNetwork, "n"), s(opexec.LevelNode, "b"), x(opexec.LevelNode, "b"), bgl, s(opexec.LevelInstance, "z")})
	want := []opexec.Lock{bgl, s(opexec.LevelInstance, "z"), x(opexec.LevelNode, "b"), x(opexec.LevelNetwork, "n")}
	if !slices.Equal(got, want) {
		t.Errorf("normalizeLocks = %v", got)
	}
}

// TestExecutorErrors: panics and plain errors become a generic OpExecError.
func TestExecutorErrors(t *testing.T) {
	v := newEnv(t, 0, func(c *Config) {
		c.Executors = map[string]opexec.Executor{"OP_TEST_DELAY": badExec{}, "OP_TAGS_SET": badExec{panic: true}}
	})
	v.e.Start()
	j := v.wait(v.submit(opOf(delay(0))))
	if jsonOf(t, j.OpResult) != `[["OpExecError",["Unexpected error while executing the opcode"]]]` {
		t.Errorf("plain error: %s", jsonOf(t, j.OpResult))
	}
	j = v.wait(v.submit(tagsSet(kCluster, "", "a")))
	if jsonOf(t, j.OpResult) != `[["OpExecError",["Unexpected error while executing the opcode"]]]` {
		t.Errorf("panic: %s", jsonOf(t, j.OpResult))
	}
}

type badExec struct{ panic bool }

func (badExec) Locks(proto.Message, *cluster.State) ([]opexec.Lock, error) { return nil, nil }

func (b badExec) Exec(*opexec.ExecContext, proto.Message) (any, error) {
	if b.panic {
		panic("boom")
	}
	return nil, errors.New("secret internal detail")
}

// TestLockManagerRandom checks the lock manager's invariants on random
// requests: holders never conflict, no waiting request could be granted,
// and every request is eventually granted.
func TestLockManagerRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lm := newLockManager()
	var held, waiting []*lockReq
	names := []string{"a", "b", "c", "d"}
	check := func() {
		t.Helper()
		for name, st := range lm.locks {
			if st.lock.Mode == opexec.Exclusive && len(st.owners) > 1 {
				t.Fatalf("%s held exclusively by %v", name, st.owners)
			}
		}
		for _, w := range waiting {
			if w.waiting && lm.blocker(w) == nil {
				t.Fatalf("request of %d could be granted", w.owner)
			}
		}
	}
	owner := int64(0)
	for step := 0; step < 5000; step++ {
		if rng.IntN(2) == 0 || len(held) == 0 {
			owner++
			var locks []opexec.Lock
			for _, n := range names {
				if rng.IntN(3) == 0 {
					locks = append(locks, opexec.Lock{Level: opexec.LevelInstance, Name: n, Mode: opexec.Mode(rng.IntN(2))})
				}
			}
			mode := opexec.Shared
			if rng.IntN(20) == 0 {
				mode = opexec.Exclusive
			}
			locks = append(locks, opexec.Lock{Level: opexec.LevelCluster, Name: opexec.BGL, Mode: mode})
			r := lm.newReq(owner, []int{-10, 0, 10}[rng.IntN(3)], locks)
			if lm.acquire(r) {
				held = append(held, r)
			} else {
				waiting = append(waiting, r)
			}
		} else {
			i := rng.IntN(len(held))
			r := held[i]
			held = slices.Delete(held, i, i+1)
			for _, g := range lm.release(r) {
				if !g.granted {
					t.Fatal("returned an ungranted request")
				}
				held = append(held, g)
				waiting = slices.DeleteFunc(waiting, func(w *lockReq) bool { return w == g })
			}
		}
		if rng.IntN(50) == 0 && len(waiting) > 0 { // a cancel
			i := rng.IntN(len(waiting))
			r := waiting[i]
			waiting = slices.Delete(waiting, i, i+1)
			for _, g := range lm.release(r) {
				held = append(held, g)
				waiting = slices.DeleteFunc(waiting, func(w *lockReq) bool { return w == g })
			}
		}
		check()
	}
	for len(held) > 0 {
		r := held[0]
		held = held[1:]
		for _, g := range lm.release(r) {
			held = append(held, g)
			waiting = slices.DeleteFunc(waiting, func(w *lockReq) bool { return w == g })
		}
		check()
	}
	if len(waiting) != 0 || len(lm.locks) != 0 {
		t.Fatalf("left: %d waiting, %d locks", len(waiting), len(lm.locks))
	}
}

// waitLocked waits until job owner waits for a lock (status "waiting"
// also covers waiting for dependencies, and is set before the request).
func waitLocked(t *testing.T, e *Engine, owner string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(jsonOf(t, e.Locks()), `["exclusive",["`+owner+`"]]`) {
		if time.Now().After(deadline) {
			t.Fatalf("job %s never waited for a lock: %s", owner, jsonOf(t, e.Locks()))
		}
		time.Sleep(time.Millisecond)
	}
}
