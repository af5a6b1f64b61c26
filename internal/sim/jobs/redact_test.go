package jobs

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// osParamsRecorder is an OP_TEST_OS_PARAMS executor that records the
// secret it was given.
type osParamsRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *osParamsRecorder) Locks(proto.Message, *cluster.State) ([]opexec.Lock, error) {
	return nil, nil
}

func (r *osParamsRecorder) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	pw := op.(*rapiv2.OpTestOsParams).GetOsparamsSecret().GetFields()["pw"].GetStringValue()
	x.AfterCommit(func() { // Exec may run more than once
		r.mu.Lock()
		r.seen = append(r.seen, pw)
		r.mu.Unlock()
	})
	return nil, nil
}

func (r *osParamsRecorder) secrets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func secretOp(t *testing.T, pw string) *rapiv2.OpCode {
	t.Helper()
	s, err := structpb.NewStruct(map[string]any{"pw": pw})
	if err != nil {
		t.Fatal(err)
	}
	return &rapiv2.OpCode{Op: &rapiv2.OpCode_TestOsParams{TestOsParams: &rapiv2.OpTestOsParams{OsparamsSecret: s}}}
}

// TestSnapshotsRedactSecrets: every read of a job (Get, List, Watch, the
// "ops" field of Info and WaitForChange, the job query rows, an archived
// job) shows "<redacted>" in place of a secret, while the executor runs
// with the real value, also when the job runs after a restart (the store
// keeps the real opcodes).
func TestSnapshotsRedactSecrets(t *testing.T) {
	const secret = "s3cret-pw"
	st := newTestStore(t)
	model := openModel(t, st, 0)
	rec := &osParamsRecorder{}
	execs := lu.DefaultExecutors()
	execs["OP_TEST_OS_PARAMS"] = rec
	e1, err := New(Config{IAllocator: testIAllocators{}, Model: model, Logger: quiet, Executors: execs})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := e1.Submit(ctx, []*rapiv2.OpCode{secretOp(t, secret)}, SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(where string, j *Job) {
		t.Helper()
		if j == nil || len(j.Ops) != 1 {
			t.Fatalf("%s: %+v", where, j)
		}
		if got := j.Ops[0].GetTestOsParams().GetOsparamsSecret().GetFields()["pw"].GetStringValue(); got != "<redacted>" {
			t.Errorf("%s: osparams_secret.pw = %q, want <redacted>", where, got)
		}
	}
	// Queued: nothing ran yet.
	j, _ := e1.Get(id)
	check("Get (queued)", j)
	// The engine is dropped without running the job; a new one runs it.
	e1.kill()
	model2, err := cluster.Open(st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	e2, err := New(Config{IAllocator: testIAllocators{}, Model: model2, Logger: quiet, Executors: execs, Clock: clock.Now, ArchiveAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Stop(ctx)
	ch, err := e2.Watch(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	e2.Start()
	n := 0
	for w := range ch {
		check("Watch", w)
		n++
	}
	if n == 0 {
		t.Fatal("Watch sent nothing")
	}
	if got := rec.secrets(); len(got) != 1 || got[0] != secret {
		t.Fatalf("the executor saw %q, want the real secret", got)
	}
	j = waitJob(t, e2, id)
	if j.Status != StatusSuccess {
		t.Fatalf("job: %s %v", j.Status, j.OpResult)
	}
	check("Get", j)
	for _, l := range e2.List() {
		check("List", l)
	}
	info, err := e2.Info(j, []string{"ops"})
	if err != nil {
		t.Fatal(err)
	}
	text := jsonOf(t, info)
	wait, _, _, err := e2.WaitForChange(ctx, id, []string{"ops"}, nil, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	text += jsonOf(t, wait)
	for _, row := range e2.jobRows() {
		text += jsonOf(t, row.Field("ops").Value)
	}
	if strings.Contains(text, secret) || strings.Count(text, `\u003credacted\u003e`) != 3 {
		t.Errorf("ops values: %s", text)
	}
	// The stored opcode keeps the secret (the executor needs it after a
	// restart); the engine's own opcode was not modified by the snapshots.
	e2.mu.Lock()
	stored := protojson.Format(e2.jobs[id].ops[0])
	e2.mu.Unlock()
	if !strings.Contains(stored, secret) {
		t.Errorf("the engine's opcode lost its secret: %s", stored)
	}
	// Archived.
	clock.Advance(2 * time.Hour)
	if n, err := e2.Archive(); err != nil || n != 1 {
		t.Fatalf("archive: %d %v", n, err)
	}
	a, ok := e2.Get(id)
	if !ok || !a.Archived {
		t.Fatalf("archived job: %+v", a)
	}
	check("Get (archived)", a)
}
