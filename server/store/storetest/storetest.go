// Package storetest is the contract every store.Store implementation must
// meet. Implementations call Run from their tests.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/server/store"
)

// Opener returns a new, empty store; Run closes it when the subtest ends.
type Opener func(t *testing.T) store.Store

type kv struct{ k, v string }

// Run checks the store.Store contract against stores made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetAbsent", testGetAbsent},
		{"PutGet", testPutGet},
		{"EmptyValue", testEmptyValue},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"ForEachOrder", testForEachOrder},
		{"ForEachStops", testForEachStops},
		{"BucketsAreSeparate", testBucketsSeparate},
		{"ReadYourWrites", testReadYourWrites},
		{"RollbackOnError", testRollbackOnError},
		{"FnErrorIsNotACommitError", testFnErrorNotCommit},
		{"RollbackOnPanic", testRollbackOnPanic},
		{"ViewIsReadOnly", testViewReadOnly},
		{"EmptyNames", testEmptyNames},
		{"CallerOwnsSlices", testCallerOwnsSlices},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
}

func mustUpdate(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func get(t *testing.T, s store.Store, bucket, key string) []byte {
	t.Helper()
	var out []byte
	err := s.View(func(tx store.Tx) error {
		v, err := tx.Get(bucket, key)
		out = v
		return err
	})
	if err != nil {
		t.Fatalf("View/Get(%q,%q): %v", bucket, key, err)
	}
	return out
}

func dump(t *testing.T, s store.Store, bucket string) []kv {
	t.Helper()
	var out []kv
	err := s.View(func(tx store.Tx) error {
		return tx.ForEach(bucket, func(k string, v []byte) error {
			out = append(out, kv{k, string(v)})
			return nil
		})
	})
	if err != nil {
		t.Fatalf("ForEach(%q): %v", bucket, err)
	}
	return out
}

func testGetAbsent(t *testing.T, s store.Store) {
	if v := get(t, s, "never", "k"); v != nil {
		t.Errorf("Get in a missing bucket = %q, want nil", v)
	}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "x", []byte("1")) })
	if v := get(t, s, "b", "y"); v != nil {
		t.Errorf("Get of a missing key = %q, want nil", v)
	}
	if got := dump(t, s, "never"); len(got) != 0 {
		t.Errorf("ForEach of a missing bucket = %v, want nothing", got)
	}
}

func testPutGet(t *testing.T, s store.Store) {
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "k", []byte(`{"a":1}`)) })
	if v := get(t, s, "b", "k"); string(v) != `{"a":1}` {
		t.Errorf("Get = %q, want %q", v, `{"a":1}`)
	}
}

func testEmptyValue(t *testing.T, s store.Store) {
	mustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.Put("b", "empty", []byte{}); err != nil {
			return err
		}
		return tx.Put("b", "nil", nil)
	})
	for _, k := range []string{"empty", "nil"} {
		v := get(t, s, "b", k)
		if v == nil || len(v) != 0 {
			t.Errorf("Get(%q) = %#v, want a non-nil empty slice", k, v)
		}
	}
}

func testOverwrite(t *testing.T, s store.Store) {
	for _, v := range []string{"one", "two", "three"} {
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "k", []byte(v)) })
	}
	if v := get(t, s, "b", "k"); string(v) != "three" {
		t.Errorf("Get = %q, want three", v)
	}
}

func testDelete(t *testing.T, s store.Store) {
	mustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.Put("b", "k1", []byte("1")); err != nil {
			return err
		}
		return tx.Put("b", "k2", []byte("2"))
	})
	mustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.Delete("b", "k1"); err != nil {
			return err
		}
		if err := tx.Delete("b", "absent"); err != nil {
			return fmt.Errorf("delete absent key: %w", err)
		}
		if err := tx.Delete("missing-bucket", "k"); err != nil {
			return fmt.Errorf("delete in missing bucket: %w", err)
		}
		return nil
	})
	if v := get(t, s, "b", "k1"); v != nil {
		t.Errorf("deleted key still has %q", v)
	}
	if got := dump(t, s, "b"); len(got) != 1 || got[0] != (kv{"k2", "2"}) {
		t.Errorf("after delete ForEach = %v", got)
	}
}

func testForEachOrder(t *testing.T, s store.Store) {
	keys := []string{"b", "a", "aa", "B", "a0", "z", "é", "10", "9", "job/000000000010", "job/000000000002"}
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, k := range keys {
			if err := tx.Put("b", k, []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	want := []string{"10", "9", "B", "a", "a0", "aa", "b", "job/000000000002", "job/000000000010", "z", "é"}
	got := dump(t, s, "b")
	if len(got) != len(want) {
		t.Fatalf("ForEach visited %d keys, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].k != w || got[i].v != "v"+w {
			t.Errorf("ForEach[%d] = %v, want key %q", i, got[i], w)
		}
	}
}

func testForEachStops(t *testing.T, s store.Store) {
	mustUpdate(t, s, func(tx store.Tx) error {
		for i := 0; i < 5; i++ {
			if err := tx.Put("b", strconv.Itoa(i), []byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	stop := errors.New("stop")
	n := 0
	err := s.View(func(tx store.Tx) error {
		return tx.ForEach("b", func(string, []byte) error {
			n++
			if n == 2 {
				return stop
			}
			return nil
		})
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("ForEach returned %v after %d calls, want stop after 2", err, n)
	}
}

func testBucketsSeparate(t *testing.T, s store.Store) {
	mustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.Put("one", "k", []byte("1")); err != nil {
			return err
		}
		return tx.Put("two", "k", []byte("2"))
	})
	if a, b := get(t, s, "one", "k"), get(t, s, "two", "k"); string(a) != "1" || string(b) != "2" {
		t.Errorf("buckets share keys: one=%q two=%q", a, b)
	}
}

func testReadYourWrites(t *testing.T, s store.Store) {
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, k := range []string{"a", "b", "c"} {
			if err := tx.Put("b", k, []byte("old")); err != nil {
				return err
			}
		}
		return nil
	})
	mustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.Put("b", "b", []byte("new")); err != nil {
			return err
		}
		if err := tx.Delete("b", "c"); err != nil {
			return err
		}
		if err := tx.Put("b", "d", []byte("added")); err != nil {
			return err
		}
		if v, _ := tx.Get("b", "b"); string(v) != "new" {
			return fmt.Errorf("after Put, Get = %q", v)
		}
		if v, _ := tx.Get("b", "c"); v != nil {
			return fmt.Errorf("after Delete, Get = %q", v)
		}
		var seen []kv
		if err := tx.ForEach("b", func(k string, v []byte) error {
			seen = append(seen, kv{k, string(v)})
			return nil
		}); err != nil {
			return err
		}
		want := []kv{{"a", "old"}, {"b", "new"}, {"d", "added"}}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			return fmt.Errorf("ForEach inside Update = %v, want %v", seen, want)
		}
		return nil
	})
}

func testRollbackOnError(t *testing.T, s store.Store) {
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "keep", []byte("1")) })
	boom := errors.New("boom")
	err := s.Update(func(tx store.Tx) error {
		if err := tx.Put("b", "new", []byte("x")); err != nil {
			return err
		}
		if err := tx.Put("b", "keep", []byte("changed")); err != nil {
			return err
		}
		if err := tx.Delete("b", "keep"); err != nil {
			return err
		}
		if err := tx.Put("other", "k", []byte("x")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want boom", err)
	}
	if got := dump(t, s, "b"); len(got) != 1 || got[0] != (kv{"keep", "1"}) {
		t.Errorf("after rollback bucket b = %v, want only keep=1", got)
	}
	if got := dump(t, s, "other"); len(got) != 0 {
		t.Errorf("after rollback bucket other = %v, want empty", got)
	}
}

func testRollbackOnPanic(t *testing.T, s store.Store) {
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("panic inside Update was swallowed")
			}
		}()
		_ = s.Update(func(tx store.Tx) error {
			if err := tx.Put("b", "k", []byte("x")); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if v := get(t, s, "b", "k"); v != nil {
		t.Errorf("write of a panicking Update survived: %q", v)
	}
	// The store must still be usable.
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "k", []byte("ok")) })
	if v := get(t, s, "b", "k"); string(v) != "ok" {
		t.Errorf("store unusable after a panic: %q", v)
	}
}

func testViewReadOnly(t *testing.T, s store.Store) {
	err := s.View(func(tx store.Tx) error {
		if err := tx.Put("b", "k", []byte("x")); !errors.Is(err, store.ErrReadOnly) {
			return fmt.Errorf("in View, Put = %v, want ErrReadOnly", err)
		}
		if err := tx.Delete("b", "k"); !errors.Is(err, store.ErrReadOnly) {
			return fmt.Errorf("in View, Delete = %v, want ErrReadOnly", err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func testEmptyNames(t *testing.T, s store.Store) {
	err := s.Update(func(tx store.Tx) error {
		checks := []struct {
			what string
			err  error
		}{
			{"Put empty bucket", tx.Put("", "k", []byte("x"))},
			{"Put empty key", tx.Put("b", "", []byte("x"))},
			{"Delete empty key", tx.Delete("b", "")},
			{"ForEach empty bucket", tx.ForEach("", func(string, []byte) error { return nil })},
		}
		_, getErr := tx.Get("", "k")
		checks = append(checks, struct {
			what string
			err  error
		}{"Get empty bucket", getErr})
		for _, c := range checks {
			if !errors.Is(c.err, store.ErrEmptyName) {
				return fmt.Errorf("%s = %v, want ErrEmptyName", c.what, c.err)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func testCallerOwnsSlices(t *testing.T, s store.Store) {
	in := []byte("original")
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "k", in) })
	copy(in, "XXXXXXXX")
	v := get(t, s, "b", "k")
	if string(v) != "original" {
		t.Fatalf("store kept the caller's Put slice: %q", v)
	}
	copy(v, "YYYYYYYY")
	if again := get(t, s, "b", "k"); !bytes.Equal(again, []byte("original")) {
		t.Errorf("store handed out its own memory: %q", again)
	}
}

func testConcurrentUpdates(t *testing.T, s store.Store) {
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*2)
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				err := s.Update(func(tx store.Tx) error {
					v, err := tx.Get("ctr", "n")
					if err != nil {
						return err
					}
					n := 0
					if v != nil {
						if n, err = strconv.Atoi(string(v)); err != nil {
							return err
						}
					}
					return tx.Put("ctr", "n", []byte(strconv.Itoa(n+1)))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if err := s.View(func(tx store.Tx) error {
					_, err := tx.Get("ctr", "n")
					return err
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v := get(t, s, "ctr", "n"); string(v) != strconv.Itoa(workers*rounds) {
		t.Errorf("counter = %q, want %d (lost updates)", v, workers*rounds)
	}
}

func testClosed(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.View(func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("View after Close = %v, want ErrClosed", err)
	}
	if err := s.Update(func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
}

// An error of fn is returned as it is: it never wraps store.ErrCommit,
// which is kept for commits that fail after fn succeeded.
func testFnErrorNotCommit(t *testing.T, s store.Store) {
	boom := errors.New("boom")
	err := s.Update(func(tx store.Tx) error {
		if err := tx.Put("b", "k", []byte("v")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || errors.Is(err, store.ErrCommit) {
		t.Fatalf("Update = %v, want boom, not ErrCommit", err)
	}
	if err := s.Update(func(store.Tx) error { return nil }); err != nil {
		t.Fatalf("empty Update after a rolled back one: %v", err)
	}
}
