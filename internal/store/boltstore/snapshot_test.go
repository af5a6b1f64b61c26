package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
)

// TestSnapshot: a snapshot holds what was committed when it began, not
// what is committed meanwhile (by another goroutine: a commit that grows
// the memory map waits for the snapshot); the copy verifies and opens;
// OpenSnapshot refuses a file an open store holds, and copies a closed
// one.
func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	s, err := boltstore.OpenDir(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	put := func(i int) {
		t.Helper()
		if err := s.Update(context.Background(), func(tx store.Tx) error { return tx.Put("jobs", fmt.Sprint(i), []byte(fmt.Sprint("job ", i))) }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		put(i)
	}
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	writes := make(chan error, 1)
	go func() {
		for i := 100; i < 200; i++ {
			if err := s.Update(context.Background(), func(tx store.Tx) error { return tx.Put("jobs", fmt.Sprint(i), []byte("later")) }); err != nil {
				writes <- err
				return
			}
		}
		writes <- nil
	}()
	copyPath := filepath.Join(dir, "backup.db")
	f, err := os.Create(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := sn.WriteTo(f)
	if err != nil || n != sn.Size() {
		t.Fatalf("WriteTo: %d bytes of %d, %v", n, sn.Size(), err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-writes; err != nil {
		t.Fatal(err)
	}
	rep, err := boltstore.Verify(copyPath)
	if err != nil || !rep.Checksums {
		t.Fatalf("the copy: %+v %v", rep, err)
	}
	path := s.Path()
	if _, err := boltstore.OpenSnapshot(path); !errors.Is(err, boltstore.ErrInUse) {
		t.Errorf("OpenSnapshot of a held store: %v, want ErrInUse", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	restored, err := boltstore.Open(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	if err := restored.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEach("jobs", func(string, []byte) error { count++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	_ = restored.Close()
	if count != 100 {
		t.Errorf("the copy holds %d records, want the 100 committed before the snapshot", count)
	}

	offline, err := boltstore.OpenSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	defer offline.Close()
	if offline.Size() <= 0 {
		t.Errorf("offline snapshot size %d", offline.Size())
	}
	if _, err := boltstore.OpenSnapshot(filepath.Join(dir, "nope.db")); err == nil {
		t.Error("OpenSnapshot of a missing file succeeded")
	}
}
