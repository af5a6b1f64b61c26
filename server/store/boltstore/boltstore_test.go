package boltstore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/server/store"
	"github.com/ganeti-gateway/ganeti-gateway/server/store/boltstore"
	"github.com/ganeti-gateway/ganeti-gateway/server/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := boltstore.OpenDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
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
	if err := s.Update(func(tx store.Tx) error { return tx.Put("cluster", "config", []byte(`{"name":"c"}`)) }); err != nil {
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
	if err := s.View(func(tx store.Tx) error {
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
