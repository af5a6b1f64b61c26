package jobs

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// A follower engine is the job queue of a replica that does not lead
// (Store "etcd"): it runs nothing and commits nothing. It shows the job
// records of its store (a copy the replica keeps from the leader's
// commits) to reads, queries, WaitForChange and Watch, exactly as the
// leader's engine shows its committed state; Apply publishes the records
// each commit of the leader changed. Submit and Cancel are refused: the
// replica forwards them to the leader.

// errFollower is what a follower engine answers a write.
func errFollower() error {
	return errs.Unavailable("This replica does not run the job queue (it follows the leader)")
}

// NewFollower opens the job records of cfg.Model's store read-only: no
// job is queued, run or changed (the leader recovers interrupted jobs), and
// Start is not needed. It registers the "job" and "lock" query resources.
func NewFollower(cfg Config) (*Engine, error) {
	e, err := newEngine(cfg, true)
	if err != nil {
		return nil, err
	}
	_, recs, err := loadAll(context.Background(), e.st)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		j, err := newJobFromRecord(r)
		if err != nil {
			return nil, err
		}
		e.jobs[r.ID] = j
	}
	e.com = newCommitter(e)
	if err := e.model.SetRowSource("job", cluster.RowSourceFunc(e.jobRows)); err != nil {
		e.com.stop()
		return nil, err
	}
	if err := e.model.SetRowSource("lock", cluster.RowSourceFunc(e.lockRows)); err != nil {
		e.com.stop()
		return nil, err
	}
	return e, nil
}

// Apply publishes the job records changed by one commit of the leader
// (the changes of every bucket; those of the job engine's are used), once
// the follower's store holds that commit: readers see the new records,
// waiters and watchers wake up, archived jobs leave the queue (and are read
// from the archive, where the leader's removals of expired ones have
// already reached the store). Only a follower engine takes changes.
func (e *Engine) Apply(changes []store.Event) error {
	if !e.follower {
		return errs.Unavailable("jobs: Apply on the leader's engine")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range changes {
		if ev.Bucket != BucketJobs {
			continue
		}
		id, err := strconv.ParseInt(ev.Key, 10, 64)
		if err != nil || jobKey(id) != ev.Key {
			return store.Corrupt(BucketJobs, ev.Key, fmt.Errorf("not a job id"))
		}
		old := e.jobs[id]
		if ev.Deleted { // archived (or removed)
			if old != nil {
				delete(e.jobs, id)
				e.wake(old)
			}
			continue
		}
		r, err := decodeStored(BucketJobs, ev.Key, ev.Value)
		if err != nil {
			return err
		}
		j, err := newJobFromRecord(r)
		if err != nil {
			return err
		}
		if old == nil {
			e.jobs[id] = j
			continue
		}
		old.rec, old.ops, old.msgs, old.ids, old.dry = j.rec, j.ops, j.msgs, j.ids, j.dry
		e.publish(old, r, old.ops)
	}
	return nil
}
