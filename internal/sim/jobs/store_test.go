package jobs

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore/etcdtest"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

// The engine's tests run on a memstore, or on etcd (an embedded member
// shared by the package's tests, each test under its own prefix) when
// GANETI_GATEWAY_TEST_STORE=etcd:
//
//	GANETI_GATEWAY_TEST_STORE=etcd go test ./internal/sim/jobs
//
// The etcd member takes transactions of up to 20,000 operations, so that
// the tests' clusters seed in one (etcd's default is 128; the committer's
// splitting to its limits is TestCommitSplitsToStoreLimits).
var testEtcd *clientv3.Client

var testPrefixes atomic.Int64

func TestMain(m *testing.M) {
	if os.Getenv("GANETI_GATEWAY_TEST_STORE") != "etcd" {
		os.Exit(m.Run())
	}
	os.Exit(withEtcd(m))
}

func withEtcd(m *testing.M) int {
	dir, err := os.MkdirTemp("", "jobs-etcd-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	endpoint, stop, err := etcdtest.Launch(dir, etcdtest.Options{MaxTxnOps: 20_000, MaxRequestBytes: 32 << 20})
	if err != nil {
		panic(err)
	}
	defer stop()
	testEtcd, err = clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second,
		MaxCallSendMsgSize: 40 << 20})
	if err != nil {
		panic(err)
	}
	defer testEtcd.Close()
	return m.Run()
}

// newTestStore returns an empty store for a test (see TestMain), run
// through faultstore.Rerun (every update function runs twice, the first
// run discarded) when GANETI_TEST_STORE_RERUN=1, to check that no update
// of the engine has its effect twice.
func newTestStore(t testing.TB) store.Store {
	var s store.Store = memstore.New()
	if testEtcd != nil {
		es, err := etcdstore.New(etcdstore.Config{Client: testEtcd, Prefix: fmt.Sprintf("/jobs-test/%d/", testPrefixes.Add(1)),
			Limits: store.Limits{MaxOps: 19_999, MaxBytes: 16 << 20}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = es.Close() })
		s = es
	}
	if os.Getenv("GANETI_TEST_STORE_RERUN") == "1" {
		fs := faultstore.New(s)
		fs.Rerun(true)
		return fs
	}
	return s
}

// TestCommitSplitsToStoreLimits submits a burst of jobs on a store that
// takes at most 9 operations per transaction (as etcd takes 128): the
// committer splits its group commits, and every job succeeds, where one
// transaction for the whole batch would be refused and stop the engine.
func TestCommitSplitsToStoreLimits(t *testing.T) {
	st := &heldStore{Store: memstore.New(memstore.WithLimits(store.Limits{MaxOps: 9}))}
	model := openModel(t, st, 0)
	failed := make(chan error, 1)
	e, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Logger: quiet, OnFailure: func(err error) { failed <- err }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	// The first submission's commit waits until the others are queued:
	// the next group commit takes them all.
	const n = 200
	st.hold = make(chan struct{})
	ids := make(chan int64, n)
	var wg sync.WaitGroup
	for i := range n {
		if i == 1 {
			time.AfterFunc(300*time.Millisecond, func() { close(st.hold) })
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := e.Submit(context.Background(), []*rapiv2.OpCode{opOf(delay(0))}, SubmitOptions{})
			if err != nil {
				t.Errorf("Submit %d: %v", i, err)
				return
			}
			ids <- id
		}()
	}
	wg.Wait()
	close(ids)
	e.Start()
	for id := range ids {
		if j := waitJob(t, e, id); j.Status != "success" {
			t.Errorf("job %d ended %s", id, j.Status)
		}
	}
	select {
	case err := <-failed:
		t.Errorf("the engine stopped: %v", err)
	default:
	}
}

// heldStore is a store whose Updates wait for hold to close, once it is
// set.
type heldStore struct {
	*memstore.Store
	hold chan struct{}
}

func (s *heldStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.hold != nil {
		<-s.hold
	}
	return s.Store.Update(ctx, fn)
}
