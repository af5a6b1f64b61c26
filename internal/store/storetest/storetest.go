// Package storetest is the contract every store.Store implementation must
// meet. Implementations call Run from their tests, and run it once more
// through faultstore.Rerun (every update function run twice).
//
// Run expects stores whose watch buffer is at most WatchBufferMax events
// (the overflow check writes more than that), and reads their limits with
// store.LimitsOf (keep them small in tests: the check of the byte limit
// puts one value of MaxBytes+1 bytes).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// WatchBufferMax is the largest watch buffer Run handles.
const WatchBufferMax = 1000

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
		{"CanceledUpdateCommitsNothing", testCanceledUpdate},
		{"CanceledView", testCanceledView},
		{"RevisionPerCommit", testRevisionPerCommit},
		{"UpdateRunTwiceNoDoubleEffect", testPureUpdate},
		{"WatchInCommitOrder", testWatchOrder},
		{"WatchFromRevision", testWatchFrom},
		{"WatchSlowReaderEnds", testWatchOverflow},
		{"WatchEndsWithContextAndClose", testWatchEnds},
		{"TxTooManyOps", testTooManyOps},
		{"TxTooManyBytes", testTooManyBytes},
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
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func get(t *testing.T, s store.Store, bucket, key string) []byte {
	t.Helper()
	var out []byte
	err := s.View(t.Context(), func(tx store.Tx) error {
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
	err := s.View(t.Context(), func(tx store.Tx) error {
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
	err := s.View(t.Context(), func(tx store.Tx) error {
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
	err := s.Update(t.Context(), func(tx store.Tx) error {
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
		_ = s.Update(t.Context(), func(tx store.Tx) error {
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
	err := s.View(t.Context(), func(tx store.Tx) error {
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
	err := s.Update(t.Context(), func(tx store.Tx) error {
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
				err := s.Update(t.Context(), Increment("ctr", "n"))
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if err := s.View(t.Context(), func(tx store.Tx) error {
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
	if err := s.View(t.Context(), func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("View after Close = %v, want ErrClosed", err)
	}
	if err := s.Update(t.Context(), func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
}

// An error of fn is returned as it is: it never wraps store.ErrCommit,
// which is kept for commits that fail after fn succeeded.
func testFnErrorNotCommit(t *testing.T, s store.Store) {
	boom := errors.New("boom")
	err := s.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.Put("b", "k", []byte("v")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || errors.Is(err, store.ErrCommit) {
		t.Fatalf("Update = %v, want boom, not ErrCommit", err)
	}
	if err := s.Update(t.Context(), func(store.Tx) error { return nil }); err != nil {
		t.Fatalf("empty Update after a rolled back one: %v", err)
	}
}

func rev(t *testing.T, s store.Store) int64 {
	t.Helper()
	r, err := store.Rev(t.Context(), s)
	if err != nil {
		t.Fatalf("Rev: %v", err)
	}
	return r
}

// An Update whose context ends before it commits commits nothing, whether
// the context ended before it started or while fn ran.
func testCanceledUpdate(t *testing.T, s store.Store) {
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "k", []byte("old")) })
	before := rev(t, s)
	done, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	if err := s.Update(done, func(tx store.Tx) error { ran = true; return tx.Put("b", "k", []byte("new")) }); !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a done context = %v, want context.Canceled", err)
	}
	if ran {
		t.Errorf("Update with a done context ran fn")
	}
	ctx, cancel := context.WithCancel(t.Context())
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.Put("b", "k", []byte("new")); err != nil {
			return err
		}
		cancel() // the context ends after fn wrote, before the commit
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update whose context ended in fn = %v, want context.Canceled", err)
	}
	if v := get(t, s, "b", "k"); string(v) != "old" {
		t.Errorf("after canceled updates b/k = %q, want old", v)
	}
	if r := rev(t, s); r != before {
		t.Errorf("revision moved from %d to %d without a commit", before, r)
	}
}

func testCanceledView(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	if err := s.View(ctx, func(store.Tx) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("View with a done context = %v (fn ran: %v), want context.Canceled", err, ran)
	}
}

// Every committed Update increases the revision by one; a rolled-back one
// leaves it; UpdateRev returns the committed revision.
func testRevisionPerCommit(t *testing.T, s store.Store) {
	if r := rev(t, s); r != 0 {
		t.Fatalf("a new store is at revision %d, want 0", r)
	}
	for i := int64(1); i <= 3; i++ {
		got, err := store.UpdateRev(t.Context(), s, func(tx store.Tx) error { return tx.Put("b", "k", []byte(strconv.FormatInt(i, 10))) })
		if err != nil || got != i {
			t.Fatalf("UpdateRev #%d = %d, %v; want %d", i, got, err, i)
		}
	}
	mustUpdate(t, s, func(store.Tx) error { return nil }) // commits, writes nothing
	_ = s.Update(t.Context(), func(tx store.Tx) error {
		_ = tx.Put("b", "k", []byte("x"))
		return errors.New("roll back")
	})
	err := s.View(t.Context(), func(tx store.Tx) error {
		if tx.Revision() != 4 {
			return fmt.Errorf("Tx.Revision = %d, want 4", tx.Revision())
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	mustUpdate(t, s, func(tx store.Tx) error {
		if tx.Revision() != 4 {
			return fmt.Errorf("Tx.Revision in Update = %d, want 4 (the last commit)", tx.Revision())
		}
		return nil
	})
}

// An update function that is a pure function of the transaction (read a
// counter, write it plus one) has its effect once however many times the
// store runs it.
func testPureUpdate(t *testing.T, s store.Store) {
	for i := 0; i < 3; i++ {
		mustUpdate(t, s, Increment("ctr", "n"))
	}
	if v := get(t, s, "ctr", "n"); string(v) != "3" {
		t.Errorf("counter after 3 updates = %q, want 3", v)
	}
}

// collect reads n events from ch, failing on an error event or a timeout.
func collect(t *testing.T, ch <-chan store.Event, n int) []store.Event {
	t.Helper()
	var out []store.Event
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d events, want %d", len(out), n)
			}
			if ev.Err != nil {
				t.Fatalf("watch ended with %v after %d events", ev.Err, len(out))
			}
			out = append(out, ev)
		case <-timeout:
			t.Fatalf("got %d events, want %d", len(out), n)
		}
	}
	return out
}

func evString(ev store.Event) string {
	if ev.Deleted {
		return fmt.Sprintf("%d del %s/%s", ev.Rev, ev.Bucket, ev.Key)
	}
	return fmt.Sprintf("%d put %s/%s=%q", ev.Rev, ev.Bucket, ev.Key, ev.Value)
}

// Watch delivers every committed change in commit order (those of one
// transaction in the order fn made them), and nothing of a transaction
// that rolled back or wrote nothing.
func testWatchOrder(t *testing.T, s store.Store) {
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "before", []byte("x")) })
	ch, err := s.Watch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.Put("b", "z", []byte("1")); err != nil {
			return err
		}
		if err := tx.Put("a", "k", nil); err != nil {
			return err
		}
		return tx.Delete("b", "before")
	})
	_ = s.Update(t.Context(), func(tx store.Tx) error {
		_ = tx.Put("b", "rolled-back", []byte("x"))
		return errors.New("roll back")
	})
	mustUpdate(t, s, func(store.Tx) error { return nil })
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				_ = s.Update(t.Context(), Increment("ctr", "n"))
			}
		}()
	}
	wg.Wait()
	evs := collect(t, ch, 3+20)
	want := []string{`2 put b/z="1"`, `2 put a/k=""`, `2 del b/before`}
	for i, w := range want {
		if got := evString(evs[i]); got != w {
			t.Errorf("event %d = %s, want %s", i, got, w)
		}
	}
	if evs[1].Value == nil {
		t.Errorf("the put of an empty value has a nil Value")
	}
	// The rolled back transaction has no revision, the empty one has 3 and
	// no event. The counter's events: revisions 4..23 in order, each value
	// one more than the one before.
	for i, ev := range evs[3:] {
		if ev.Rev != int64(4+i) || string(ev.Value) != strconv.Itoa(i+1) {
			t.Errorf("counter event %d = %s, want revision %d value %d", i, evString(ev), 4+i, i+1)
		}
	}
	if r := rev(t, s); r != 23 {
		t.Errorf("revision = %d, want 23", r)
	}
	select {
	case ev := <-ch:
		t.Errorf("unexpected event %s", evString(ev))
	default:
	}
}

// A watch starts at the current revision or later; earlier is history the
// store does not keep.
func testWatchFrom(t *testing.T, s store.Store) {
	for i := 0; i < 3; i++ {
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "k", []byte(strconv.Itoa(i))) })
	}
	for _, from := range []int64{1, 3} {
		if _, err := s.Watch(t.Context(), from); !errors.Is(err, store.ErrCompacted) {
			t.Errorf("Watch(%d) at revision 3 = %v, want ErrCompacted", from, err)
		}
	}
	ch, err := s.Watch(t.Context(), 5) // a future revision: waits for it
	if err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 5; i++ {
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "k", []byte(strconv.Itoa(i))) })
	}
	if ev := collect(t, ch, 1)[0]; ev.Rev != 5 || string(ev.Value) != "4" {
		t.Errorf("Watch(5) first event = %s, want revision 5", evString(ev))
	}
}

// A watcher that does not read ends with ErrWatchOverflow after the
// events its buffer held, in order: writers never wait for it, and no
// event is dropped silently.
func testWatchOverflow(t *testing.T, s store.Store) {
	ch, err := s.Watch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	const per = 100
	txs := WatchBufferMax/per + 2
	if ops := store.LimitsOf(s).MaxOps; ops < per {
		t.Fatalf("the store's MaxOps %d is below %d", ops, per)
	}
	for i := 0; i < txs; i++ {
		mustUpdate(t, s, func(tx store.Tx) error {
			for k := 0; k < per; k++ {
				if err := tx.Put("b", fmt.Sprintf("%03d-%03d", i, k), nil); err != nil {
					return err
				}
			}
			return nil
		})
	}
	n := 0
	var last store.Event
	for ev := range ch {
		if ev.Err != nil {
			last = ev
			continue
		}
		if want := fmt.Sprintf("%03d-%03d", n/per, n%per); ev.Key != want || ev.Rev != int64(1+n/per) {
			t.Fatalf("event %d = %s, want key %s", n, evString(ev), want)
		}
		n++
	}
	if !errors.Is(last.Err, store.ErrWatchOverflow) {
		t.Errorf("a watcher that fell behind ended with %v, want ErrWatchOverflow", last.Err)
	}
	if n == 0 || n >= txs*per {
		t.Errorf("the slow watcher got %d of %d events before the overflow", n, txs*per)
	}
}

// A watch ends (its channel closed) when its context ends, and with an
// ErrClosed event when the store closes.
func testWatchEnds(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := s.Watch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Errorf("after its context ended, the watch delivered %s", evString(ev))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end with its context")
	}
	ch, err = s.Watch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ev, ok := <-ch
	if !ok || !errors.Is(ev.Err, store.ErrClosed) {
		t.Errorf("closing the store: watch got %v (open: %v), want an ErrClosed event", ev.Err, ok)
	}
	if _, ok := <-ch; ok {
		t.Errorf("the watch goes on after the store closed")
	}
	if _, err := s.Watch(t.Context(), 0); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Watch on a closed store = %v, want ErrClosed", err)
	}
}

// tooLarge checks that an Update making fn's writes is refused whole with
// ErrTxTooLarge, even when fn ignores the error of the write over the
// limit.
func tooLarge(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	before := rev(t, s)
	ch, err := s.Watch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.Put("b", "first", []byte("x")); err != nil {
			return err
		}
		_ = fn(tx) // ignores the refusal: the store must not commit anyway
		return nil
	})
	if !errors.Is(err, store.ErrTxTooLarge) || errors.Is(err, store.ErrCommit) {
		t.Fatalf("Update over the limits = %v, want ErrTxTooLarge", err)
	}
	if v := get(t, s, "b", "first"); v != nil {
		t.Errorf("a refused transaction committed b/first")
	}
	if r := rev(t, s); r != before {
		t.Errorf("a refused transaction moved the revision from %d to %d", before, r)
	}
	select {
	case ev := <-ch:
		t.Errorf("a refused transaction was watched: %s", evString(ev))
	default:
	}
	// The largest allowed transaction commits.
	mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", "after", []byte("x")) })
}

func testTooManyOps(t *testing.T, s store.Store) {
	lim := store.LimitsOf(s)
	tooLarge(t, s, func(tx store.Tx) error {
		for i := 1; i < lim.MaxOps; i++ { // with "first": MaxOps operations
			if err := tx.Delete("b", strconv.Itoa(i)); err != nil {
				return fmt.Errorf("operation %d of %d refused: %w", i+1, lim.MaxOps, err)
			}
		}
		if err := tx.Delete("b", "one-too-many"); !errors.Is(err, store.ErrTxTooLarge) {
			return fmt.Errorf("operation %d = %v, want ErrTxTooLarge", lim.MaxOps+1, err)
		}
		return nil
	})
	mustUpdate(t, s, func(tx store.Tx) error {
		for i := 0; i < lim.MaxOps; i++ {
			if err := tx.Delete("b", strconv.Itoa(i)); err != nil {
				return fmt.Errorf("operation %d of %d refused: %w", i+1, lim.MaxOps, err)
			}
		}
		return nil
	})
}

func testTooManyBytes(t *testing.T, s store.Store) {
	lim := store.LimitsOf(s)
	tooLarge(t, s, func(tx store.Tx) error {
		// Keys and values count: "first"+"x" and "k" leave MaxBytes-7
		// bytes for the value; one more is over.
		return tx.Put("b", "k", make([]byte, lim.MaxBytes-7+1))
	})
	mustUpdate(t, s, func(tx store.Tx) error {
		return tx.Put("b", "k", make([]byte, lim.MaxBytes-1))
	})
}

// Increment is an update function that reads a decimal counter at
// bucket/key (absent: 0) and writes it plus one: a pure function of the
// transaction, so its effect shows how many of its runs committed.
func Increment(bucket, key string) func(store.Tx) error {
	return func(tx store.Tx) error {
		v, err := tx.Get(bucket, key)
		if err != nil {
			return err
		}
		n := 0
		if v != nil {
			if n, err = strconv.Atoi(string(v)); err != nil {
				return err
			}
		}
		return tx.Put(bucket, key, []byte(strconv.Itoa(n+1)))
	}
}
