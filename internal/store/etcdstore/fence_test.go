package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore/etcdtest"
)

func put(key string) func(store.Tx) error {
	return func(tx store.Tx) error { return tx.Put("jobs", key, []byte("x")) }
}

// TestFencing partitions the leader A from etcd (a fault proxy between
// them holds its traffic both ways), lets B win once A's lease expired,
// and releases A: the commit A sent during the partition arrives late and
// is refused (store.ErrFenced), and nothing of it is visible.
func TestFencing(t *testing.T) {
	const ttl = 2 // seconds
	endpoint := etcdtest.Start(t)
	px, through := etcdtest.Proxy(t, endpoint)

	const prefix = "/fence/"
	a := etcdtest.Store(t, etcdtest.Client(t, through), prefix)
	b := etcdtest.Store(t, etcdtest.Client(t, endpoint), prefix)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	leadA, err := etcdstore.NewElector(a, "a", ttl).Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(ctx, put("before")); err != nil {
		t.Fatalf("the leader's commit: %v", err)
	}
	bWon := make(chan error, 1)
	var leadB context.Context
	go func() {
		var err error
		leadB, err = etcdstore.NewElector(b, "b", ttl).Campaign(ctx)
		bWon <- err
	}()
	select {
	case err := <-bWon:
		t.Fatalf("B won while A leads (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}

	px.PauseTx()
	px.PauseRx()
	late := make(chan error, 1)
	go func() { late <- a.Update(ctx, put("late")) }()

	if err := <-bWon; err != nil {
		t.Fatalf("B's campaign: %v", err)
	}
	select {
	case <-leadA.Done():
	case <-time.After(3 * ttl * time.Second):
		t.Error("A did not see its leadership lost")
	}
	if err := b.Update(ctx, put("by-b")); err != nil {
		t.Fatalf("the new leader's commit: %v", err)
	}
	px.UnpauseTx()
	px.UnpauseRx()

	if err := <-late; !errors.Is(err, store.ErrFenced) || !errors.Is(err, store.ErrCommit) {
		t.Errorf("the deposed leader's late commit = %v, want ErrFenced (an ErrCommit)", err)
	}
	if err := a.Update(ctx, put("later")); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a commit of the deposed leader after the partition = %v, want ErrFenced", err)
	}
	if leadB.Err() != nil {
		t.Errorf("B lost the leadership: %v", leadB.Err())
	}
	err = b.View(ctx, func(tx store.Tx) error {
		for key, want := range map[string]bool{"before": true, "by-b": true, "late": false, "later": false} {
			v, err := tx.Get("jobs", key)
			if err != nil {
				return err
			}
			if (v != nil) != want {
				t.Errorf("jobs/%s present = %v, want %v", key, v != nil, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestElectionSurvivesCompaction: the watches of the election resume,
// after a lost connection, at revisions the compaction removed. The
// leader's watch on its key reads the key again and goes on (it still
// leads); a candidate waiting for the leader's key campaigns again with
// its own key (it still waits, and wins once the leader resigns).
func TestElectionSurvivesCompaction(t *testing.T) {
	endpoint := etcdtest.Start(t)
	px, through := etcdtest.Proxy(t, endpoint)
	const prefix = "/elect/"
	cliA := etcdtest.Client(t, through)
	a := etcdtest.Store(t, cliA, prefix)
	cliB := etcdtest.Client(t, through)
	b := etcdtest.Store(t, cliB, prefix)
	direct := etcdtest.Client(t, endpoint)
	d := etcdtest.Store(t, direct, prefix)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	elA := etcdstore.NewElector(a, "a", 30)
	leadA, err := elA.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bWon := make(chan error, 1)
	go func() {
		_, err := etcdstore.NewElector(b, "b", 30).Campaign(ctx)
		bWon <- err
	}()
	time.Sleep(300 * time.Millisecond) // B waits for A's key

	for i := range 5 {
		if err := d.Update(ctx, put(fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := direct.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	// Cut both replicas' connections (a new proxy in place of the old
	// one): the clients reconnect and resume their watches.
	_ = px.Close()
	etcdtest.ProxyAt(t, strings.TrimPrefix(through, "http://"), endpoint)
	// Cleanups run last first: the clients go before the proxy, whose
	// Close waits for their connections to end.
	t.Cleanup(func() {
		_, _, _, _ = a.Close(), b.Close(), cliA.Close(), cliB.Close()
	})
	if _, err := cliA.Get(ctx, "any"); err != nil { // reconnected
		t.Fatal(err)
	}
	select {
	case err := <-bWon:
		t.Fatalf("B's campaign ended while A leads: %v", err)
	case <-leadA.Done():
		t.Fatal("A lost the leadership after a reconnection")
	case <-time.After(3 * time.Second):
	}
	if err := elA.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bWon:
		if err != nil {
			t.Fatalf("B's campaign: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B did not win once A resigned")
	}
}

// TestLeaseValidUntil: ValidUntil moves on while etcd confirms the
// renewals, never lies beyond the lease etcd could have let expire (the
// last confirmed renewal was sent before the cut), and moves on again
// once etcd answers.
func TestLeaseValidUntil(t *testing.T) {
	endpoint := etcdtest.Start(t)
	px, through := etcdtest.Proxy(t, endpoint)
	s := etcdtest.Store(t, etcdtest.Client(t, through), "/valid-until/")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	lease, err := etcdstore.NewElector(s, "a", 1).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := lease.ValidUntil()
	if left := time.Until(first); left <= 0 || left > lease.TTL {
		t.Fatalf("ValidUntil %v from now, TTL %v", left, lease.TTL)
	}
	time.Sleep(lease.TTL / 2)
	if !lease.ValidUntil().After(first) {
		t.Fatal("ValidUntil did not move on with the renewals")
	}

	// A cut shorter than the etcd client's own deadline (two thirds of
	// the TTL at least), longer than a renewal's period (a quarter).
	px.PauseTx()
	px.PauseRx()
	cut := time.Now()
	atCut := lease.ValidUntil()
	time.Sleep(lease.TTL / 3)
	stalled := lease.ValidUntil()
	if stalled.After(cut.Add(lease.TTL)) {
		t.Errorf("ValidUntil %v after the cut, beyond the TTL %v", stalled.Sub(cut), lease.TTL)
	}
	if !stalled.Equal(atCut) {
		t.Errorf("ValidUntil moved on by %v while etcd could not answer", stalled.Sub(atCut))
	}
	px.UnpauseTx()
	px.UnpauseRx()
	back := time.Now()
	for !lease.ValidUntil().After(back) {
		if time.Since(back) > lease.TTL {
			t.Fatalf("ValidUntil did not move on %v after etcd answered again", lease.TTL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-lease.Done():
		t.Fatal("the session ended")
	default:
	}
}
