package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

// Two Models on one store stand for two replicas of the gateway: every
// update of either must be kept, and each sees the other's after its next
// update.

// addTag returns an update function adding tag to the cluster's tags (the
// one object every writer of these tests changes: a lost update shows).
func addTag(tag string) func(store.Tx, *Config) error {
	return func(_ store.Tx, cfg *Config) error {
		c := cfg.EditCluster()
		c.Tags = append(slices.Clip(c.Tags), tag)
		return nil
	}
}

func clusterTags(t *testing.T, s *State) []string {
	t.Helper()
	tags, err := s.Tags(TagCluster, "")
	if err != nil {
		t.Fatal(err)
	}
	out := append([]string(nil), tags...)
	slices.Sort(out)
	return out
}

// storedTags reads the cluster tags the store holds, through a new Model.
func storedTags(t *testing.T, db store.Store) []string {
	t.Helper()
	m, err := Open(db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return clusterTags(t, m.State())
}

func openTwo(t *testing.T, db store.Store) (*Model, *Model) {
	t.Helper()
	m1, err := Open(db, parse(t, testCluster), testClock)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Open(db, nil, testClock)
	if err != nil {
		t.Fatal(err)
	}
	return m1, m2
}

func TestTwoModelsKeepEveryUpdate(t *testing.T) {
	const perModel = 25
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			db := st.open(t)
			m1, m2 := openTwo(t, db)
			want := clusterTags(t, m1.State())
			var wg sync.WaitGroup
			errc := make(chan error, 2*perModel)
			for i, m := range []*Model{m1, m2} {
				for j := range perModel {
					want = append(want, fmt.Sprintf("m%d-%02d", i+1, j))
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range perModel {
						if err := m.Update(context.Background(), addTag(fmt.Sprintf("m%d-%02d", i+1, j))); err != nil {
							errc <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Errorf("Update: %v", err)
			}
			slices.Sort(want)
			if got := storedTags(t, db); !slices.Equal(got, want) {
				t.Errorf("the store holds %d tags, want all %d: %v", len(got), len(want), got)
			}
			// Each model sees the other's updates after its own next one.
			for i, m := range []*Model{m1, m2} {
				if err := m.Update(context.Background(), func(store.Tx, *Config) error { return nil }); err != nil {
					t.Fatal(err)
				}
				if got := clusterTags(t, m.State()); !slices.Equal(got, want) {
					t.Errorf("model %d sees %d tags, want %d", i+1, len(got), len(want))
				}
			}
		})
	}
}

// interferingStore lets another writer commit before each of its
// Updates: the model's State is stale when its transaction begins.
type interferingStore struct {
	store.Store
	updates atomic.Int64
	hook    func(call int64)
}

func (s *interferingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	n := s.updates.Add(1)
	if s.hook != nil {
		s.hook(n)
	}
	return s.Store.Update(ctx, fn)
}

// racingStore behaves as an optimistic (distributed) store under
// contention: after a run of fn, when interfere says another writer
// committed meanwhile, it discards the run, lets that writer commit, and
// runs fn again on a fresh transaction.
type racingStore struct {
	store.Store
	runs      int
	interfere func(run int) bool
	other     func(run int) // the other writer's commit
}

var errRace = errors.New("racing: another writer committed first")

func (s *racingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	for s.runs < 100 {
		s.runs++
		run := s.runs
		err := s.Store.Update(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			if s.interfere(run) {
				return errRace
			}
			return nil
		})
		if !errors.Is(err, errRace) {
			return err
		}
		s.other(run)
	}
	return errors.New("racing: the caller never gave up")
}

// race opens m1 on a racingStore and m2 straight on the same store; m2
// commits a tag other-<run> at each interference.
func race(t *testing.T, inner store.Store, interfere func(int) bool) (*racingStore, *Model) {
	t.Helper()
	db := &racingStore{Store: inner, interfere: func(int) bool { return false }, other: func(int) {}}
	m1, err := Open(db, parse(t, testCluster), testClock)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Open(inner, nil, testClock)
	if err != nil {
		t.Fatal(err)
	}
	db.runs = 0
	db.interfere = interfere
	db.other = func(run int) {
		if err := m2.Update(context.Background(), addTag(fmt.Sprintf("other-%03d", run))); err != nil {
			t.Error(err)
		}
	}
	return db, m1
}

func hasRecord(t *testing.T, db store.Store, bucket, key string) bool {
	t.Helper()
	var v []byte
	if err := db.View(context.Background(), func(tx store.Tx) error {
		var err error
		v, err = tx.Get(bucket, key)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v != nil
}

// An update whose State is stale when its transaction begins works on what
// the store holds, in that one transaction.
func TestUpdateAfterOtherWriter(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			inner := st.open(t)
			db := &interferingStore{Store: inner}
			m1, err := Open(db, parse(t, testCluster), testClock)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := Open(inner, nil, testClock)
			if err != nil {
				t.Fatal(err)
			}
			want := append(clusterTags(t, m1.State()), "mine", "other")
			slices.Sort(want)
			db.updates.Store(0)
			db.hook = func(call int64) {
				if call == 1 {
					if err := m2.Update(context.Background(), addTag("other")); err != nil {
						t.Error(err)
					}
				}
			}
			if err := m1.Update(context.Background(), addTag("mine")); err != nil {
				t.Fatal(err)
			}
			if got := clusterTags(t, m1.State()); !slices.Equal(got, want) {
				t.Errorf("model tags %v, want %v", got, want)
			}
			if got := storedTags(t, inner); !slices.Equal(got, want) {
				t.Errorf("stored tags %v, want %v", got, want)
			}
		})
	}
}

func TestUpdateRetriedAfterConflict(t *testing.T) {
	for _, st := range stores[:2] {
		t.Run(st.name, func(t *testing.T) {
			inner := st.open(t)
			db, m1 := race(t, inner, func(run int) bool { return run == 1 })
			want := append(clusterTags(t, m1.State()), "mine", "other-001")
			slices.Sort(want)
			var runs int
			err := m1.Update(context.Background(), func(tx store.Tx, cfg *Config) error {
				runs++
				return addTag("mine")(tx, cfg)
			})
			if err != nil {
				t.Fatal(err)
			}
			if runs != 2 || db.runs != 2 {
				t.Errorf("fn ran %d times in %d store runs, want 2", runs, db.runs)
			}
			if got := clusterTags(t, m1.State()); !slices.Equal(got, want) {
				t.Errorf("model tags %v, want %v", got, want)
			}
			if got := storedTags(t, inner); !slices.Equal(got, want) {
				t.Errorf("stored tags %v, want %v", got, want)
			}
		})
	}
}

func TestUpdateConflictForever(t *testing.T) {
	for _, st := range stores[:2] {
		t.Run(st.name, func(t *testing.T) {
			inner := st.open(t)
			db, m1 := race(t, inner, func(int) bool { return true })
			err := m1.Update(context.Background(), func(tx store.Tx, cfg *Config) error {
				if err := tx.Put("jobs", "1", []byte("{}")); err != nil {
					return err
				}
				return addTag("mine")(tx, cfg)
			})
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("Update = %v, want ErrConflict", err)
			}
			// The first run, MaxRereads runs on a fresh read, the one
			// that gives up.
			if want := MaxRereads + 2; db.runs != want {
				t.Errorf("%d store runs, want %d", db.runs, want)
			}
			if tags := storedTags(t, inner); slices.Contains(tags, "mine") || !slices.Contains(tags, "other-001") {
				t.Errorf("stored tags after the failed update: %v", tags)
			}
			if hasRecord(t, inner, "jobs", "1") {
				t.Error("the failed update wrote its record")
			}
			if slices.Contains(clusterTags(t, m1.State()), "mine") {
				t.Error("the failed update was published")
			}
		})
	}
}

func TestUpdateCanceledStopsRetrying(t *testing.T) {
	for _, st := range stores[:2] {
		t.Run(st.name, func(t *testing.T) {
			inner := st.open(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, m1 := race(t, inner, func(run int) bool {
				if run == 2 {
					cancel()
				}
				return true
			})
			var runs int
			err := m1.Update(ctx, func(tx store.Tx, cfg *Config) error {
				runs++
				return addTag("mine")(tx, cfg)
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Update = %v, want context.Canceled", err)
			}
			if runs != 2 {
				t.Errorf("fn ran %d times, want 2 (none after the cancellation)", runs)
			}
			if tags := storedTags(t, inner); slices.Contains(tags, "mine") {
				t.Errorf("the canceled update changed the configuration: %v", tags)
			}
		})
	}
}

// A single writer never rereads: its State stays the one it published
// (the unchanged objects are the very same), and an update that changes
// no object leaves the configuration's revision alone.
func TestSingleWriterFastPath(t *testing.T) {
	m, err := Open(memstore.New(), parse(t, testCluster), testClock)
	if err != nil {
		t.Fatal(err)
	}
	before := m.State()
	if err := m.Update(context.Background(), addTag("a")); err != nil {
		t.Fatal(err)
	}
	after := m.State()
	for uuid, n := range before.cfg.Nodes {
		if after.cfg.Nodes[uuid] != n {
			t.Fatalf("node %s was reread", uuid)
		}
	}
	if after.rev == before.rev {
		t.Errorf("a change kept the configuration's revision %d", after.rev)
	}
	if err := m.Update(context.Background(), func(tx store.Tx, _ *Config) error {
		return tx.Put("jobs", "1", []byte("{}"))
	}); err != nil {
		t.Fatal(err)
	}
	if m.State().rev != after.rev {
		t.Errorf("an update that changed no object moved the configuration's revision %d -> %d", after.rev, m.State().rev)
	}
}
