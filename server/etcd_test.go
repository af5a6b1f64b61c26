package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore/etcdtest"
)

// TestEtcdFailover runs two replicas on one etcd: the first leads and runs
// the job queue, the second waits in New (it runs no job queue) until the
// first is gone and its lease expired; it then leads, with the first's
// jobs, and a new job gets a new id. The first, once it is closed, lost
// its leadership.
func TestEtcdFailover(t *testing.T) {
	endpoint := etcdtest.Start(t)
	cfg := func(name string) Config {
		return Config{DataDir: t.TempDir(), Insecure: true, Store: StoreEtcd, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Etcd: EtcdConfig{DialConfig: etcdstore.DialConfig{Endpoints: []string{endpoint}}, LeaseTTL: 1, Name: name}}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a, err := New(ctx, cfg("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	submit := func(app *App) int64 {
		t.Helper()
		id, err := app.jobs.Submit(ctx, []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{}}}}, jobs.SubmitOptions{})
		if err != nil {
			t.Fatalf("Submit: %v", err)
		}
		return id
	}
	first := submit(a)

	type result struct {
		app *App
		err error
	}
	bc := make(chan result, 1)
	go func() {
		b, err := New(ctx, cfg("b"))
		bc <- result{b, err}
	}()
	select {
	case r := <-bc:
		t.Fatalf("a second replica started while the first leads: %v", r.err)
	case <-time.After(2 * time.Second):
	}
	a.Close() // dies: its lease expires
	r := <-bc
	if r.err != nil {
		t.Fatalf("the second replica: %v", r.err)
	}
	b := r.app
	defer b.Close()
	if _, ok := b.jobs.Get(first); !ok {
		t.Errorf("the new leader does not have job %d", first)
	}
	if second := submit(b); second <= first {
		t.Errorf("the new leader gave id %d after %d", second, first)
	}
	select {
	case <-a.Lost():
	case <-time.After(10 * time.Second):
		t.Errorf("the closed replica did not report its leadership lost")
	}
}
