package jobs

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// gatedStore holds an update, once committed, until the gate opens: the
// window in which a commit is in the store (a follower may show it) but
// not yet published by the engine.
type gatedStore struct {
	store.Store
	closed atomic.Bool
	gate   chan struct{}
}

func (s *gatedStore) Limits() store.Limits { return store.LimitsOf(s.Store) }

func (s *gatedStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := s.Store.Update(ctx, fn)
	if s.closed.Load() {
		<-s.gate
	}
	return err
}

// TestBarrier: while a submission's commit is under way (committed, not
// yet published), Barrier waits; once the flush ends it returns, and the
// job is there.
func TestBarrier(t *testing.T) {
	st := &gatedStore{Store: newTestStore(t), gate: make(chan struct{})}
	model := openModel(t, st, 0)
	e, err := New(Config{Model: model, Clock: newFakeClock().Now, Logger: quiet, IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(cancelledCtx()) })
	if err := e.Barrier(t.Context()); err != nil {
		t.Fatalf("Barrier with nothing under way: %v", err)
	}
	st.closed.Store(true)
	submitted := make(chan int64, 1)
	go func() {
		id, err := e.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(rapiv2.TagKind_TAG_KIND_CLUSTER, "", "b")}, SubmitOptions{})
		if err != nil {
			t.Error(err)
		}
		submitted <- id
	}()
	// Wait until the commit is held.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		e.com.fmu.Lock()
		under := e.com.begun > e.com.settled
		e.com.fmu.Unlock()
		if under {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no flush under way")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	err = e.Barrier(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Barrier during a flush = %v, want it to wait", err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Barrier(t.Context()) }()
	st.closed.Store(false)
	close(st.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	id := <-submitted
	if _, ok, err := e.Lookup(t.Context(), id); err != nil || !ok {
		t.Errorf("job %d after the barrier: %v %v", id, ok, err)
	}
}

func cancelledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
