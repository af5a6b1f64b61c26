package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

// TestRemoveArchived: archived jobs are removed once they ended more than
// the retention ago, never before, and never with a negative retention;
// a removed job is unknown (Lookup, Get, WaitForChange, Watch), and a job
// depending on one fails as in Ganeti (JobLost: "Dependency error: Job N
// not found").
func TestRemoveArchived(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retention time.Duration // Config.ArchiveRetention
		keptFor   time.Duration // how long the archive keeps a job
	}{
		{"default (Ganeti's 21 days)", 0, DefaultArchiveRetention},
		{"two days", 48 * time.Hour, 48 * time.Hour},
		{"forever", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newEnv(t, 0, func(c *Config) { c.ArchiveAfter = time.Hour; c.ArchiveRetention = tc.retention })
			v.e.Start()
			ctx := context.Background()
			old := v.wait(v.submit(tagsSet(kCluster, "", "a")))
			v.clock.Advance(24 * time.Hour)
			young := v.wait(v.submit(tagsSet(kCluster, "", "b")))
			v.clock.Advance(2 * time.Hour)
			if n, err := v.e.Archive(); err != nil || n != 2 {
				t.Fatalf("Archive = %d, %v; want 2", n, err)
			}
			if tc.retention < 0 {
				v.clock.Advance(10 * 365 * 24 * time.Hour)
				if n, err := v.e.RemoveArchived(); n != 0 || err != nil {
					t.Fatalf("RemoveArchived with no retention = %d, %v; want 0", n, err)
				}
				for _, id := range []int64{old.ID, young.ID} {
					if j, ok := v.e.Get(id); !ok || !j.Archived {
						t.Errorf("job %d kept forever: %v %+v", id, ok, j)
					}
				}
				return
			}
			// Just before the old job's retention ends: nothing goes.
			v.clock.Advance(old.EndTS.Time().Add(tc.keptFor - time.Minute).Sub(v.clock.Now()))
			if n, err := v.e.RemoveArchived(); err != nil || n != 0 {
				t.Fatalf("RemoveArchived before the retention = %d, %v; want 0", n, err)
			}
			v.clock.Advance(2 * time.Minute)
			if n, err := v.e.RemoveArchived(); err != nil || n != 1 {
				t.Fatalf("RemoveArchived after the old job's retention = %d, %v; want 1", n, err)
			}
			if j, ok, err := v.e.Lookup(ctx, old.ID); ok || err != nil || j != nil {
				t.Errorf("Lookup(%d) of a removed job = %+v, %v, %v; want not found", old.ID, j, ok, err)
			}
			if j, ok := v.e.Get(young.ID); !ok || !j.Archived {
				t.Errorf("the younger job %d: %v %+v", young.ID, ok, j)
			}
			notFound := NotFound(old.ID).Error()
			if _, _, _, err := v.e.WaitForChange(ctx, old.ID, []string{"status"}, nil, -1, time.Second); err == nil || err.Error() != notFound {
				t.Errorf("WaitForChange on a removed job: %v; want %s", err, notFound)
			}
			if _, err := v.e.Watch(ctx, old.ID); err == nil || err.Error() != notFound {
				t.Errorf("Watch on a removed job: %v; want %s", err, notFound)
			}
			op := opOf(delay(0))
			op.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(old.ID)}
			want := fmt.Sprintf(`[["OpExecError",["Dependency error: Job %d not found"]]]`, old.ID)
			if j := v.wait(v.submit(op)); j.Status != StatusError || jsonOf(t, j.OpResult) != want {
				t.Errorf("a job depending on a removed one: %s %s, want error %s", j.Status, jsonOf(t, j.OpResult), want)
			}
			v.clock.Advance(24 * time.Hour)
			if n, err := v.e.RemoveArchived(); n != 1 || err != nil {
				t.Errorf("RemoveArchived after the younger job's retention = %d, %v; want 1", n, err)
			}
			// Ids never go back, with the archive empty.
			if next := v.submit(opOf(delay(0))); next <= young.ID+1 {
				t.Errorf("a new job got id %d after %d", next, young.ID+1)
			}
		})
	}
}

// archiveStore is a store of archived jobs for the retention sweeps: a
// memstore within lim, counting its transactions, with a model and n
// archived copies of one finished job (ids 1..n), received and ended at
// times(id).
func archiveStore(t *testing.T, lim store.Limits, n int, times func(id int64) (received, end time.Time)) (*countingStore, Config) {
	t.Helper()
	st := &countingStore{Store: memstore.New(memstore.WithLimits(lim))}
	cfg := fillArchive(t, st, n, times)
	st.updates.Store(0)
	return st, cfg
}

// fillArchive opens a model on st and writes n archived jobs in it (see
// archiveStore), in transactions within st's limits.
func fillArchive(t *testing.T, st store.Store, n int, times func(id int64) (received, end time.Time)) Config {
	t.Helper()
	v := newEnv(t, 0, nil)
	v.e.Start()
	rec := recordOf(v.e, v.wait(v.submit(tagsSet(kCluster, "", "a"))).ID)
	model := openModel(t, st, 0)
	per := int64(store.LimitsOf(st).MaxOps)
	for first := int64(1); first <= int64(n); first += per {
		if err := st.Update(context.Background(), func(tx store.Tx) error {
			for id := first; id < first+per && id <= int64(n); id++ {
				r := rec.clone()
				r.ID = id
				rt, et := times(id)
				received, end := TimestampOf(rt), TimestampOf(et)
				r.Received, r.End = &received, &end
				b, err := encodeRecord(r)
				if err != nil {
					return err
				}
				if err := tx.Put(BucketArchive, jobKey(id), b); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Logger: quiet}
}

// archivedIDs lists the ids of the archive.
func archivedIDs(t *testing.T, st store.Store) []int64 {
	t.Helper()
	var ids []int64
	if err := st.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEach(BucketArchive, func(key string, _ []byte) error {
			id, err := strconv.ParseInt(key, 10, 64)
			ids = append(ids, id)
			return err
		})
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestRemoveArchivedBatches: the removal is split into transactions of the
// store's limits (here 9 operations, as etcd takes 127), and into rounds
// of at most sweepLimit keys; a long-running job that ended after the
// cutoff stays, and the scan stops at the first job received after the
// cutoff (a later job received before it, by another clock, stays until a
// later sweep).
func TestRemoveArchivedBatches(t *testing.T) {
	defer func(n int) { sweepLimit = n }(sweepLimit)
	sweepLimit = 20
	base := time.Unix(1795376095, 0)
	young := base.Add(50 * 24 * time.Hour)
	times := func(id int64) (time.Time, time.Time) {
		at := base.Add(time.Duration(id) * time.Minute)
		switch {
		case id == 7: // long-running
			return at, base.Add(60 * 24 * time.Hour)
		case id == 50: // out of order
			return at, at
		case id > 40:
			return young, young
		}
		return at, at
	}
	st, cfg := archiveStore(t, store.Limits{MaxOps: 9}, 50, times)
	now := base.Add(40*24*time.Hour + time.Hour)
	cfg.Clock = func() time.Time { return now }
	cfg.ArchiveRetention = 30 * 24 * time.Hour
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	n, err := e.RemoveArchived()
	if err != nil || n != 39 {
		t.Fatalf("RemoveArchived = %d, %v; want 39", n, err)
	}
	// 39 keys: rounds of 20 and 19, transactions of 9, 9, 2 and 9, 9, 1.
	if got := st.updates.Load(); got != 6 {
		t.Errorf("%d transactions, want 6", got)
	}
	want := []int64{7}
	for id := int64(41); id <= 50; id++ {
		want = append(want, id)
	}
	if got := archivedIDs(t, st); !slices.Equal(got, want) {
		t.Errorf("archive after the sweep: %v, want %v", got, want)
	}
	// Nothing more to remove: no write.
	st.updates.Store(0)
	if n, err := e.RemoveArchived(); n != 0 || err != nil || st.updates.Load() != 0 {
		t.Errorf("a second sweep: %d, %v, %d transactions", n, err, st.updates.Load())
	}
}

// TestRemoveArchivedOnStart: the leader's engine sweeps the archive when it
// starts (a leader may not lead for a whole period), with no call.
func TestRemoveArchivedOnStart(t *testing.T) {
	base := time.Unix(1795376095, 0)
	st, cfg := archiveStore(t, store.Limits{MaxOps: 100}, 3, func(int64) (time.Time, time.Time) { return base, base })
	cfg.Clock = func() time.Time { return base.Add(DefaultArchiveRetention + time.Second) }
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	e.Start()
	deadline := time.Now().Add(10 * time.Second)
	for len(archivedIDs(t, st)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("archive still %v", archivedIDs(t, st))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFollowerRemovesNothing: a follower's engine never removes archived
// jobs, however old: RemoveArchived is refused and Start starts no sweep.
func TestFollowerRemovesNothing(t *testing.T) {
	base := time.Unix(1795376095, 0)
	st, cfg := archiveStore(t, store.Limits{MaxOps: 100}, 3, func(int64) (time.Time, time.Time) { return base, base })
	cfg.Clock = func() time.Time { return base.Add(10 * DefaultArchiveRetention) }
	cfg.ArchiveRetention = time.Millisecond
	e, err := NewFollower(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	e.Start()
	var de *errs.Error
	if n, err := e.RemoveArchived(); n != 0 || !errors.As(err, &de) || de.Class != errs.ClassUnavailable {
		t.Errorf("RemoveArchived on a follower = %d, %v; want refused", n, err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := archivedIDs(t, st); len(got) != 3 || st.updates.Load() != 0 {
		t.Errorf("a follower wrote: archive %v, %d transactions", got, st.updates.Load())
	}
	if j, ok := e.Get(1); !ok || !j.Archived {
		t.Errorf("job 1 on the follower: %v %+v", ok, j)
	}
}

// TestRemoveArchivedRefused: a removal whose commit the store refuses
// stops the engine (fail-stop), as every refused commit does; on etcd a
// deposed leader's fenced commit is one.
func TestRemoveArchivedRefused(t *testing.T) {
	base := time.Unix(1795376095, 0)
	fs := faultstore.New(memstore.New())
	cfg := fillArchive(t, fs, 3, func(int64) (time.Time, time.Time) { return base, base })
	cfg.Clock = func() time.Time { return base.Add(DefaultArchiveRetention + time.Second) }
	failed := make(chan error, 1)
	cfg.OnFailure = func(err error) { failed <- err }
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	fs.Fail(faultstore.Refuse, 0, -1)
	e.removeOldArchived()
	if err := e.Err(); !errors.Is(err, ErrStoreFailed) {
		t.Errorf("Err after a refused removal = %v; want ErrStoreFailed", err)
	}
	select {
	case <-failed:
	case <-time.After(5 * time.Second):
		t.Error("OnFailure not called")
	}
	if got := archivedIDs(t, fs); len(got) != 3 {
		t.Errorf("archive after a refused removal: %v", got)
	}
}

// TestExpireKeysBatches: the idempotency keys' expiry is the same sweep,
// within the store's limits: more expired keys than one transaction takes
// (etcd takes 127) are removed in several, where one would be refused.
func TestExpireKeysBatches(t *testing.T) {
	base := time.Unix(1795376095, 0)
	st, cfg := archiveStore(t, store.Limits{MaxOps: 9}, 0, nil)
	for first := 0; first < 25; first += 9 {
		if err := st.Update(context.Background(), func(tx store.Tx) error {
			for i := first; i < min(first+9, 25); i++ {
				b, err := json.Marshal(idemRecord{Job: int64(i + 1), Fingerprint: "fp", Expires: base.UnixNano()})
				if err != nil {
					return err
				}
				if err := tx.Put(BucketIdempotency, idemKey("alice", strconv.Itoa(i)), b); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	st.updates.Store(0)
	cfg.Clock = func() time.Time { return base.Add(time.Second) }
	e, err := New(cfg) // expires the keys
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	if got := st.updates.Load(); got != 3 {
		t.Errorf("%d transactions, want 3", got)
	}
	if n := storedKeys(t, st); n != 0 {
		t.Errorf("%d keys left", n)
	}
}
