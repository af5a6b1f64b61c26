package faultstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/storetest"
)

// A healthy fault store meets the store contract.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := faultstore.New(memstore.New(memstore.WithLimits(store.Limits{MaxOps: 500, MaxBytes: 256 << 10}), memstore.WithWatchBuffer(256)))
		s.Fail(faultstore.Refuse, 0, 2)
		s.Heal()
		return s
	})
}

// Rerun runs each update function twice, and only the second run commits.
func TestRerun(t *testing.T) {
	for _, on := range []bool{false, true} {
		s := faultstore.New(memstore.New())
		s.Rerun(on)
		runs := 0
		err := s.Update(t.Context(), func(tx store.Tx) error {
			runs++
			v, _ := tx.Get("b", "k")
			return tx.Put("b", "k", append(v, 'x'))
		})
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if on {
			want = 2
		}
		if runs != want {
			t.Errorf("Rerun(%v): fn ran %d times, want %d", on, runs, want)
		}
		if r, _ := store.Rev(t.Context(), s); r != 1 {
			t.Errorf("Rerun(%v): revision %d, want 1 (the discarded run commits nothing)", on, r)
		}
		var v []byte
		_ = s.View(t.Context(), func(tx store.Tx) error { v, _ = tx.Get("b", "k"); return nil })
		if string(v) != "x" {
			t.Errorf("Rerun(%v): b/k = %q, want x", on, v)
		}
	}
}

func put(s store.Store, v string) error {
	return s.Update(context.Background(), func(tx store.Tx) error { return tx.Put("b", "k", []byte(v)) })
}

func value(t *testing.T, s store.Store) string {
	t.Helper()
	var v []byte
	if err := s.View(context.Background(), func(tx store.Tx) error {
		var err error
		v, err = tx.Get("b", "k")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func TestModes(t *testing.T) {
	tests := []struct {
		name      string
		mode      faultstore.Mode
		wantValue string // after writing "new" over "old"
	}{
		{"refuse discards the transaction", faultstore.Refuse, "old"},
		{"unknown commits it", faultstore.Unknown, "new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := faultstore.New(memstore.New())
			if err := put(s, "old"); err != nil {
				t.Fatal(err)
			}
			s.Fail(tc.mode, 1, 1) // one more commit succeeds, the next fails
			if err := put(s, "old"); err != nil {
				t.Fatalf("skipped commit: %v", err)
			}
			err := put(s, "new")
			if !errors.Is(err, store.ErrCommit) || !errors.Is(err, faultstore.ErrInjected) {
				t.Fatalf("Update = %v, want ErrCommit", err)
			}
			if got := value(t, s); got != tc.wantValue {
				t.Fatalf("value = %q, want %q", got, tc.wantValue)
			}
			if err := put(s, "later"); err != nil { // count was 1
				t.Fatalf("after the failure: %v", err)
			}
			if s.Failures() != 1 {
				t.Fatalf("Failures = %d, want 1", s.Failures())
			}
		})
	}
}

func TestFailUntilHeal(t *testing.T) {
	s := faultstore.New(memstore.New())
	s.Fail(faultstore.Refuse, 0, -1)
	for i := 0; i < 3; i++ {
		if err := put(s, "x"); !errors.Is(err, store.ErrCommit) {
			t.Fatalf("Update %d = %v, want ErrCommit", i, err)
		}
	}
	// An fn error is not a commit: it is returned as is and not counted.
	boom := errors.New("boom")
	if err := s.Update(context.Background(), func(store.Tx) error { return boom }); !errors.Is(err, boom) || errors.Is(err, store.ErrCommit) {
		t.Fatalf("fn error = %v", err)
	}
	s.Heal()
	if err := put(s, "y"); err != nil {
		t.Fatal(err)
	}
	if got := value(t, s); got != "y" || s.Failures() != 3 {
		t.Fatalf("value %q failures %d", got, s.Failures())
	}
}
