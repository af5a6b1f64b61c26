package boltstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/storetest"
)

// open opens a new store with small limits and watch buffer, which keep
// the contract's checks of them quick.
func open(t *testing.T, dir string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.OpenDir(dir, boltstore.WithLimits(store.Limits{MaxOps: 500, MaxBytes: 256 << 10}), boltstore.WithWatchBuffer(256))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, t.TempDir()) })
}

// TestContractRerun runs the contract with every update function run
// twice, the first attempt rolled back.
func TestContractRerun(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := faultstore.New(open(t, t.TempDir()))
		s.Rerun(true)
		return s
	})
}

// The revision is durable: a reopened store goes on from it, and watches
// start there.
func TestRevisionSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	for i := 0; i < 3; i++ {
		if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Put("b", "k", []byte{byte(i)}) }); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Update(t.Context(), func(tx store.Tx) error { return errors.New("roll back") })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if r, err := store.Rev(t.Context(), s); r != 3 || err != nil {
		t.Fatalf("revision after reopen = %d, %v; want 3", r, err)
	}
	if _, err := s.Watch(t.Context(), 3); !errors.Is(err, store.ErrCompacted) {
		t.Errorf("Watch(3) after reopen = %v, want ErrCompacted", err)
	}
	ch, err := s.Watch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := store.UpdateRev(t.Context(), s, func(tx store.Tx) error { return tx.Delete("b", "k") }); r != 4 || err != nil {
		t.Fatalf("UpdateRev after reopen = %d, %v; want 4", r, err)
	}
	if ev := <-ch; ev.Rev != 4 || !ev.Deleted || ev.Key != "k" {
		t.Errorf("watched %+v, want the delete of b/k at revision 4", ev)
	}
}

func TestFileModeAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := boltstore.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, boltstore.FileName); s.Path() != want {
		t.Errorf("Path = %q, want %q", s.Path(), want)
	}
	if err := s.Update(context.Background(), func(tx store.Tx) error { return tx.Put("cluster", "config", []byte(`{"name":"c"}`)) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, boltstore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("state.db mode = %o, want 600", mode)
	}

	s, err = boltstore.Open(filepath.Join(dir, boltstore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []byte
	if err := s.View(context.Background(), func(tx store.Tx) error {
		v, err := tx.Get("cluster", "config")
		got = v
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"name":"c"}` {
		t.Errorf("after reopen Get = %q", got)
	}
}
