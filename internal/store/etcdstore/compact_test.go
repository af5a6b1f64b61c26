package etcdstore_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore/etcdtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// etcdRev is etcd's current revision.
func etcdRev(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(t.Context(), "any")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func commit(t *testing.T, s *etcdstore.Store, key, val string) {
	t.Helper()
	if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Put("jobs", key, []byte(val)) }); err != nil {
		t.Fatal(err)
	}
}

// TestCompactor: the compactor compacts etcd's history to the revision of
// the previous interval: an older revision is gone (ErrCompacted), the
// current data stays, and a follower's watch goes on.
func TestCompactor(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := etcdtest.Store(t, cli, "/compact/")
	commit(t, s, "a", "1")
	snap, err := s.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	commits, err := s.Follow(t.Context(), snap)
	if err != nil {
		t.Fatal(err)
	}
	commit(t, s, "a", "2")
	old := etcdRev(t, cli)
	commit(t, s, "a", "3")

	c := s.StartCompactor(t.Context(), 50*time.Millisecond, quiet)
	defer c.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for c.Compacted() <= old {
		if time.Now().After(deadline) {
			t.Fatalf("compacted to %d, not past %d", c.Compacted(), old)
		}
		commit(t, s, "b", time.Now().String()) // history keeps growing
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := cli.Get(t.Context(), s.Prefix()+"data/jobs/a", clientv3.WithRev(old)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("a read at revision %d after the compaction: %v, want ErrCompacted", old, err)
	}
	if err := s.View(t.Context(), func(tx store.Tx) error {
		v, err := tx.Get("jobs", "a")
		if err == nil && string(v) != "3" {
			err = fmt.Errorf("jobs/a = %q, want 3", v)
		}
		return err
	}); err != nil {
		t.Error(err)
	}
	// The follower's watch saw every commit, and sees the next.
	commit(t, s, "a", "4")
	for {
		select {
		case c := <-commits:
			if c.Err != nil {
				t.Fatalf("the follower's watch ended: %v", c.Err)
			}
			if len(c.Changes) == 1 && c.Changes[0].Key == "a" && string(c.Changes[0].Value) == "4" {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the follower's watch did not deliver the last commit")
		}
	}
}

// TestCompactorsCoordinate: compactors sharing a prefix take turns by a
// compare-and-swap on the version of meta/compact-rev: in a turn where one
// bumped it, another's compare fails and it compacts nothing (it learns
// the version, and compacts at its next turn if no one else did).
func TestCompactorsCoordinate(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := etcdtest.Store(t, cli, "/coordinate/")
	ctx := t.Context()
	// Two compactors: what each knows of the key is what it passes.
	c1, c2 := s, etcdtest.Store(t, cli, "/coordinate/")
	step := func(c *etcdstore.Store, expect, rev int64) (int64, int64, int64) {
		t.Helper()
		v, cur, compacted, err := etcdstore.CompactStep(ctx, c, expect, rev)
		if err != nil {
			t.Fatal(err)
		}
		return v, cur, compacted
	}
	// First turns: c1 records a revision, c2 finds the key bumped.
	v1, r1, compacted := step(c1, 0, 0)
	if v1 != 1 || compacted != 0 {
		t.Fatalf("c1's first turn: version %d, compacted %d; want 1, 0", v1, compacted)
	}
	v2, r2, compacted := step(c2, 0, 0)
	if v2 != 1 || compacted != 0 {
		t.Fatalf("c2's first turn: version %d, compacted %d; want 1 (learnt), 0", v2, compacted)
	}
	commit(t, s, "x", "1")
	// c2 turns first this time: it compacts to what it recorded.
	v2, _, compacted = step(c2, v2, r2)
	if v2 != 2 || compacted != r2 {
		t.Fatalf("c2's second turn: version %d, compacted %d; want 2, %d", v2, compacted, r2)
	}
	// c1's turn in the same interval: its compare fails, nothing more.
	v1, _, compacted = step(c1, v1, r1)
	if v1 != 2 || compacted != 0 {
		t.Fatalf("c1's second turn: version %d, compacted %d; want 2 (learnt), 0", v1, compacted)
	}
}

// TestFollowCompacted: a follower whose watch starts at a revision etcd
// compacted (it lagged more than the compaction keeps) gets a last Commit
// whose Err wraps store.ErrCompacted, then the channel closes.
func TestFollowCompacted(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := etcdtest.Store(t, cli, "/lagging/")
	commit(t, s, "a", "1")
	snap, err := s.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The follower pauses; meanwhile the leader commits and compacts.
	commit(t, s, "a", "2")
	commit(t, s, "a", "3")
	if _, err := cli.Compact(t.Context(), etcdRev(t, cli)); err != nil {
		t.Fatal(err)
	}
	commits, err := s.Follow(t.Context(), snap)
	if err != nil {
		t.Fatal(err)
	}
	var last etcdstore.Commit
	for c := range commits {
		last = c
	}
	if !errors.Is(last.Err, store.ErrCompacted) {
		t.Errorf("the last commit of a compacted follow: %+v, want an Err wrapping store.ErrCompacted", last)
	}
}
