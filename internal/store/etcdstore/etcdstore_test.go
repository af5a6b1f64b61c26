package etcdstore_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore/etcdtest"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/storetest"
)

// One etcd member for the contract; each store has its own prefix, so
// each starts empty at revision 0.
func TestContract(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	var n atomic.Int64
	open := func(t *testing.T) store.Store {
		return etcdtest.Store(t, cli, fmt.Sprintf("/test/%d/", n.Add(1)))
	}
	t.Run("Plain", func(t *testing.T) { storetest.Run(t, open) })
	// ForEach reading two keys at a time: the pages and the
	// transaction's own writes merged across them.
	t.Run("Paged", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			s := etcdtest.Store(t, cli, fmt.Sprintf("/test/%d/", n.Add(1)))
			etcdstore.SetForEachPage(s, 2)
			return s
		})
	})
	t.Run("Rerun", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			s := faultstore.New(open(t))
			s.Rerun(true)
			return s
		})
	})
}

// TestTwoWriters: two stores on one prefix take turns incrementing one
// counter. Each starts its next transaction from where its own last commit
// left the store (not from a read); a commit of the other in between
// makes it read again and rerun, so no increment is lost.
func TestTwoWriters(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	a := etcdtest.Store(t, cli, "/two/")
	b := etcdtest.Store(t, cli, "/two/")
	incr := storetest.Increment("jobs", "n")
	const rounds = 10
	for range rounds {
		for _, s := range []store.Store{a, a, b} {
			if err := s.Update(t.Context(), incr); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range []store.Store{a, b} {
		err := s.View(t.Context(), func(tx store.Tx) error {
			v, err := tx.Get("jobs", "n")
			if err != nil {
				return err
			}
			if string(v) != strconv.Itoa(3*rounds) {
				t.Errorf("counter = %s, want %d", v, 3*rounds)
			}
			if tx.Revision() != 3*rounds {
				t.Errorf("revision = %d, want %d", tx.Revision(), 3*rounds)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestUpdateAfterCompaction: a store commits, then etcd's revision moves
// on (keys outside the store) and its history is compacted past that
// commit. The store's next update, which starts from its last commit,
// finds that revision compacted and starts again from a read: it
// succeeds, on the data as it is.
func TestUpdateAfterCompaction(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := etcdtest.Store(t, cli, "/compacted/")
	ctx := t.Context()
	incr := storetest.Increment("jobs", "n")
	if err := s.Update(ctx, incr); err != nil {
		t.Fatal(err)
	}
	var rev int64
	for i := range 3 {
		resp, err := cli.Put(ctx, "/elsewhere", strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	if _, err := cli.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, incr); err != nil {
		t.Fatalf("the update after the compaction: %v", err)
	}
	err := s.View(ctx, func(tx store.Tx) error {
		v, err := tx.Get("jobs", "n")
		if err == nil && string(v) != "2" {
			t.Errorf("counter = %s, want 2", v)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
