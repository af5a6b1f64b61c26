package jobs

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
)

func keyed(scope, key, fp string) SubmitOptions {
	return SubmitOptions{Idempotency: &Idempotency{Scope: scope, Key: key, Fingerprint: fp}}
}

// storedKeys is the number of idempotency keys in st.
func storedKeys(t *testing.T, st store.Store) int {
	t.Helper()
	n := 0
	if err := st.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEach(BucketIdempotency, func(string, []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func isConflict(err error) bool {
	de, ok := errs.As(err)
	return ok && de.Class == errs.ClassConflict
}

// TestIdempotentSubmit: a key seen before with the same fingerprint gives
// the first job and creates nothing; with another fingerprint it is a
// conflict; keys are scoped.
func TestIdempotentSubmit(t *testing.T) {
	v := newEnv(t, 0, nil)
	ctx := context.Background()
	first, err := v.e.Submit(ctx, []*rapiv2.OpCode{tagsSet(kCluster, "", "a")}, keyed("alice", "k1", "fp1"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name               string
		scope, key, fp     string
		wantSame, conflict bool
	}{
		{name: "same key and request", scope: "alice", key: "k1", fp: "fp1", wantSame: true},
		{name: "same key, another request", scope: "alice", key: "k1", fp: "fp2", conflict: true},
		{name: "same key, another user", scope: "bob", key: "k1", fp: "fp1"},
		{name: "another key", scope: "alice", key: "k2", fp: "fp1"},
		// The scope and the key cannot run into each other.
		{name: "key prefix moved into the scope", scope: "alice/k", key: "1", fp: "fp1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(v.e.List())
			id, err := v.e.Submit(ctx, []*rapiv2.OpCode{tagsSet(kCluster, "", "b")}, keyed(c.scope, c.key, c.fp))
			after := len(v.e.List())
			switch {
			case c.conflict:
				if !isConflict(err) || after != before {
					t.Errorf("err = %v, jobs %d -> %d; want a conflict and no job", err, before, after)
				}
			case c.wantSame:
				if err != nil || id != first || after != before {
					t.Errorf("id, err = %d, %v, jobs %d -> %d; want job %d and no new job", id, err, before, after, first)
				}
			default:
				if err != nil || id == first || after != before+1 {
					t.Errorf("id, err = %d, %v, jobs %d -> %d; want a new job", id, err, before, after)
				}
			}
		})
	}
}

// TestIdempotencyFailedFirstTry: a keyed submission that fails without
// creating a job leaves the key free.
func TestIdempotencyFailedFirstTry(t *testing.T) {
	v := newEnv(t, 0, nil)
	ctx := context.Background()
	if _, err := v.e.Submit(ctx, nil, keyed("alice", "k", "fp")); err == nil {
		t.Fatal("an empty job was accepted")
	}
	if n := storedKeys(t, v.st); n != 0 {
		t.Errorf("%d keys stored after a refused submission", n)
	}
	if _, err := v.e.Submit(ctx, []*rapiv2.OpCode{tagsSet(kCluster, "", "a")}, keyed("alice", "k", "fp")); err != nil {
		t.Errorf("retry: %v", err)
	}
}

// TestIdempotencyExpiry: a key is forgotten after the TTL (reused freely),
// removed from the store by ExpireKeys and when the engine opens.
func TestIdempotencyExpiry(t *testing.T) {
	v := newEnv(t, 0, func(c *Config) { c.IdempotencyTTL = time.Hour })
	ctx := context.Background()
	op := []*rapiv2.OpCode{tagsSet(kCluster, "", "a")}
	first, err := v.e.Submit(ctx, op, keyed("alice", "old", "fp"))
	if err != nil {
		t.Fatal(err)
	}
	v.clock.Advance(59 * time.Minute)
	if id, err := v.e.Submit(ctx, op, keyed("alice", "old", "fp")); id != first || err != nil {
		t.Fatalf("before expiry: %d, %v; want job %d", id, err, first)
	}
	if _, err := v.e.Submit(ctx, op, keyed("alice", "young", "fp")); err != nil {
		t.Fatal(err)
	}
	v.clock.Advance(2 * time.Minute) // "old" expired, "young" not
	id, err := v.e.Submit(ctx, op, keyed("alice", "old", "another request"))
	if err != nil || id == first {
		t.Fatalf("after expiry: %d, %v; want a new job", id, err)
	}
	// "old" was rewritten by the new job: nothing to expire yet.
	if n, err := v.e.ExpireKeys(); n != 0 || err != nil {
		t.Errorf("ExpireKeys = %d, %v; want 0", n, err)
	}
	v.clock.Advance(59*time.Minute + 30*time.Second) // "young" expired
	if n, err := v.e.ExpireKeys(); n != 1 || err != nil {
		t.Errorf("ExpireKeys = %d, %v; want 1", n, err)
	}
	if n := storedKeys(t, v.st); n != 1 {
		t.Errorf("%d keys stored, want 1", n)
	}
	// On open.
	v.clock.Advance(time.Hour)
	ctxStop, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := v.e.Stop(ctxStop); err != nil {
		t.Fatal(err)
	}
	e2, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: v.model, Clock: v.clock.Now, Logger: quiet, IdempotencyTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Stop(ctx)
	if n := storedKeys(t, v.st); n != 0 {
		t.Errorf("%d keys stored after opening past their expiry, want 0", n)
	}
}

// TestIdempotencyRestart: keys survive a restart on bbolt.
func TestIdempotencyRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx := context.Background()
	open := func(first bool) (*boltstore.Store, *Engine) {
		st, err := boltstore.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var model *cluster.Model
		if first {
			model = openModel(t, st, 0)
		} else if model, err = cluster.Open(st, nil, nil); err != nil {
			t.Fatal(err)
		}
		e, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return st, e
	}
	st, e := open(true)
	first, err := e.Submit(ctx, []*rapiv2.OpCode{tagsSet(kCluster, "", "a")}, keyed("alice", "k", "fp"))
	if err != nil {
		t.Fatal(err)
	}
	e.kill() // nothing more is written
	st.Close()

	st, e = open(false)
	defer st.Close()
	defer e.Stop(ctx)
	if id, err := e.Submit(ctx, []*rapiv2.OpCode{tagsSet(kCluster, "", "a")}, keyed("alice", "k", "fp")); id != first || err != nil {
		t.Errorf("after a restart: %d, %v; want job %d", id, err, first)
	}
	if _, err := e.Submit(ctx, []*rapiv2.OpCode{tagsSet(kCluster, "", "a")}, keyed("alice", "k", "other")); !isConflict(err) {
		t.Errorf("another request after a restart: %v; want a conflict", err)
	}
	if ids := e.IDs(); len(ids) != 1 {
		t.Errorf("jobs %v, want one", ids)
	}
}

// TestIdempotencyConcurrent: concurrent submissions of one key give one
// job.
func TestIdempotencyConcurrent(t *testing.T) {
	v := newEnv(t, 0, nil)
	v.e.Start()
	const n = 100
	ids := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i], errs[i] = v.e.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "a")}, keyed("alice", "k", "fp"))
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("submission %d: %d, %v; want job %d", i, ids[i], errs[i], ids[0])
		}
	}
	if got := v.e.IDs(); len(got) != 1 {
		t.Errorf("jobs %v, want one", got)
	}
}

// TestIdempotencyCrashAtomicity: a submission whose commit fails leaves
// the store with both its job and its key, or neither: after a restart, a
// retry gets the job the store holds, or creates the only one.
func TestIdempotencyCrashAtomicity(t *testing.T) {
	for _, c := range []struct {
		name    string
		mode    faultstore.Mode
		durable bool // the failed commit reached the store
	}{{"refused", faultstore.Refuse, false}, {"unknown outcome", faultstore.Unknown, true}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			inner, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer inner.Close()
			fs := faultstore.New(inner)
			e, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: openModel(t, fs, 0), Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			fs.Fail(c.mode, 0, -1)
			op := []*rapiv2.OpCode{tagsSet(kCluster, "", "a")}
			if _, err := e.Submit(ctx, op, keyed("alice", "k", "fp")); err == nil {
				t.Fatal("the submission succeeded with a failing store")
			}
			// Another try while the engine is stopped fails too, even when
			// the store holds the key.
			if id, err := e.Submit(ctx, op, keyed("alice", "k", "fp")); err == nil {
				t.Fatalf("a retry after the failure got job %d", id)
			}
			e.kill()

			model, err := cluster.Open(inner, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			e2, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer e2.Stop(ctx)
			jobs, keys := len(e2.IDs()), storedKeys(t, inner)
			want := 0
			if c.durable {
				want = 1
			}
			if jobs != want || keys != want {
				t.Fatalf("store holds %d jobs and %d keys, want %d of each", jobs, keys, want)
			}
			id, err := e2.Submit(ctx, op, keyed("alice", "k", "fp"))
			if err != nil {
				t.Fatal(err)
			}
			if c.durable && id != e2.IDs()[0] {
				t.Errorf("retry got job %d, want the stored job %d", id, e2.IDs()[0])
			}
			if n := len(e2.IDs()); n != 1 {
				t.Errorf("%d jobs after the retry, want 1", n)
			}
		})
	}
}

// TestIdempotencyTelemetry: a replay is marked on its submission span and
// not counted as a submitted job.
func TestIdempotencyTelemetry(t *testing.T) {
	tr := newTraced()
	v := newEnv(t, 0, tr.configure)
	for range 3 {
		if _, err := v.e.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "a")}, keyed("alice", "k", "fp")); err != nil {
			t.Fatal(err)
		}
	}
	replays := 0
	for _, s := range tr.spans("job.submit") {
		if hasAttr(s, telemetry.AttrReplayed.Bool(true)) {
			replays++
		}
	}
	if replays != 2 {
		t.Errorf("%d submission spans marked as replays, want 2", replays)
	}
	var n int64
	for _, dp := range sumPoints(t, collect(t, tr.reader), "ganeti.jobs.submitted") {
		n += dp.Value
	}
	if n != 1 {
		t.Errorf("ganeti.jobs.submitted = %d, want 1", n)
	}
}

// TestIdempotencyExpiryInBackground: a started engine removes expired keys
// by itself (every TTL/10, at least every second and at most every minute).
func TestIdempotencyExpiryInBackground(t *testing.T) {
	v := newEnv(t, 0, func(c *Config) { c.IdempotencyTTL = 5 * time.Second })
	if _, err := v.e.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "a")}, keyed("alice", "k", "fp")); err != nil {
		t.Fatal(err)
	}
	v.clock.Advance(10 * time.Second)
	v.e.Start()
	deadline := time.Now().Add(5 * time.Second)
	for storedKeys(t, v.st) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the expired key is still stored after 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
