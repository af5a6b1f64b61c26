package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore/etcdtest"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/storetest"
)

// TestCommitResolution: a commit whose outcome is unknown is resolved,
// not reported. Lost on its way, it is not applied and fn runs again
// (after the resolution's empty commit); applied with its answer lost,
// the Update succeeds as it is. Either way the increment counts once,
// and a watcher sees it once. With and without a fence (an elected
// leader).
func TestCommitResolution(t *testing.T) {
	endpoint := etcdtest.Start(t)
	cli := etcdtest.Client(t, endpoint)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for i, tc := range []struct {
		name    string
		fault   etcdstore.CommitFault
		fenced  bool
		wantRev int64
	}{
		{"lost on its way", etcdstore.FaultBefore, false, 3},
		{"answer lost", etcdstore.FaultAfter, false, 2},
		{"lost on its way, fenced", etcdstore.FaultBefore, true, 3},
		{"answer lost, fenced", etcdstore.FaultAfter, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := etcdtest.Store(t, cli, fmt.Sprintf("/resolve/%d/", i))
			if tc.fenced {
				if _, err := etcdstore.NewElector(s, "a", 2).Campaign(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Update(ctx, storetest.Increment("b", "n")); err != nil { // revision 1
				t.Fatal(err)
			}
			events, err := s.Watch(ctx, 2)
			if err != nil {
				t.Fatal(err)
			}
			var runs, faults atomic.Int32
			s.InjectCommitFaults(func() etcdstore.CommitFault {
				if faults.Add(1) == 1 {
					return tc.fault
				}
				return etcdstore.FaultNone
			})
			inc := storetest.Increment("b", "n")
			if err := s.Update(ctx, func(tx store.Tx) error { runs.Add(1); return inc(tx) }); err != nil {
				t.Fatalf("Update with an unknown outcome: %v", err)
			}
			s.InjectCommitFaults(nil)
			var got []byte
			var rev int64
			if err := s.View(ctx, func(tx store.Tx) error {
				rev = tx.Revision()
				got, err = tx.Get("b", "n")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if string(got) != "2" || rev != tc.wantRev {
				t.Errorf("after the update: n=%s at revision %d, want n=2 at %d (fn ran %d times)", got, rev, tc.wantRev, runs.Load())
			}
			select {
			case ev := <-events:
				if string(ev.Value) != "2" || ev.Rev != tc.wantRev {
					t.Errorf("watch: %+v", ev)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the watch saw nothing")
			}
			if err := s.Update(ctx, storetest.Increment("b", "n")); err != nil {
				t.Fatal(err)
			}
			select {
			case ev := <-events:
				if string(ev.Value) != "3" || ev.Rev != tc.wantRev+1 {
					t.Errorf("watch, next commit: %+v", ev)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the watch saw nothing of the next commit")
			}
		})
	}
}

// TestCommitUnresolved: when etcd answers neither the commit nor its
// resolution within the request timeout, the commit is reported failed
// (store.ErrCommit), as its outcome stays unknown; a deposed leader's
// resolution is refused by the fence (store.ErrFenced).
func TestCommitUnresolved(t *testing.T) {
	endpoint := etcdtest.Start(t)
	px, through := etcdtest.Proxy(t, endpoint)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := etcdstore.New(etcdstore.Config{Client: etcdtest.Client(t, through), Prefix: "/unresolved/", RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(ctx, storetest.Increment("b", "n")); err != nil {
		t.Fatal(err)
	}
	s.InjectCommitFaults(func() etcdstore.CommitFault { return etcdstore.FaultAfter })
	px.PauseTx()
	px.PauseRx()
	start := time.Now()
	err = s.Update(context.Background(), storetest.Increment("b", "n"))
	px.UnpauseTx()
	px.UnpauseRx()
	if !errors.Is(err, store.ErrCommit) {
		t.Fatalf("Update cut off from etcd: %v, want ErrCommit", err)
	}
	t.Logf("reported after %v", time.Since(start))

	// A deposed leader: its fence fails, the resolution says so.
	s.InjectCommitFaults(nil)
	f := etcdtest.Store(t, etcdtest.Client(t, endpoint), "/deposed/")
	el := etcdstore.NewElector(f, "a", 2)
	if _, err := el.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := el.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	f.InjectCommitFaults(func() etcdstore.CommitFault { return etcdstore.FaultBefore })
	if err := f.Update(ctx, storetest.Increment("b", "n")); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("a deposed leader's unknown commit: %v, want ErrFenced", err)
	}
}
