package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Retention: the engine removes what it no longer needs to keep, in the
// background, on the leader only (a follower's engine writes nothing):
// idempotency keys past their TTL (idempotency.go) and archived jobs past
// Config.ArchiveRetention. Both are sweeps of one bucket: a read
// transaction finds the keys to remove, write transactions that fit the
// store's limits (on etcd 127 operations) remove them, each one commit
// (fenced, on etcd, as every commit of the leader).

// DefaultArchiveRetention is Config.ArchiveRetention's default: 21 days,
// what Ganeti keeps. Its ganeti-cleaner, run daily by cron on the master
// (daemons/ganeti-cleaner.in, REMOVE_AFTER=21), removes the archived job
// files last written (when their job ended) more than 21 days ago.
const DefaultArchiveRetention = 21 * 24 * time.Hour

// sweepLimit bounds the keys one round of a sweep collects in its read
// transaction (and keeps in memory); a variable for the tests.
var sweepLimit = 10000

// verdict is what a sweep does with one key.
type verdict int

const (
	keep verdict = iota
	remove
	// stop keeps the key and ends the scan: no later key is removed.
	stop
)

// sweep removes the keys of bucket that judge marks and returns how many
// it removed. Each round scans the bucket in key order in a read
// transaction, collecting up to sweepLimit keys, then removes them in
// transactions of at most the store's MaxOps deletes; the next round
// starts after the last key judged. recheck, when set, is asked again in
// the write transaction with each key's current value (a key written
// again meanwhile may have to stay; absent keys are skipped). A write
// transaction refused with an error wrapping store.ErrCommit is returned
// as is: the caller stops the engine (fail-stop).
func (e *Engine) sweep(ctx context.Context, bucket string, judge func(key string, val []byte) verdict,
	recheck func(key string, val []byte) bool) (int, error) {
	batch := max(1, store.LimitsOf(e.st).MaxOps)
	total := 0
	after := ""
	for {
		var keys []string
		var last string
		var more bool
		errFull := errors.New("sweep: round full")
		err := e.st.View(ctx, func(tx store.Tx) error {
			keys, last, more = nil, "", false
			return tx.ForEach(bucket, func(key string, val []byte) error {
				if key <= after && after != "" {
					return nil
				}
				last = key
				switch judge(key, val) {
				case stop:
					return errStopScan
				case remove:
					keys = append(keys, key)
					if len(keys) == sweepLimit {
						more = true
						return errFull
					}
				}
				return nil
			})
		})
		if err != nil && err != errFull && err != errStopScan {
			return total, err
		}
		for len(keys) > 0 {
			part := keys[:min(batch, len(keys))]
			keys = keys[len(part):]
			n, err := e.removeKeys(ctx, bucket, part, recheck)
			total += n
			if err != nil {
				return total, err
			}
		}
		if !more {
			return total, nil
		}
		after = last
	}
}

// errStopScan ends a sweep's scan early.
var errStopScan = errors.New("sweep: scan stopped")

// removeKeys deletes keys of bucket in one transaction (those recheck
// still wants removed, when set) and returns how many it deleted.
func (e *Engine) removeKeys(ctx context.Context, bucket string, keys []string, recheck func(key string, val []byte) bool) (int, error) {
	var n int
	err := e.st.Update(ctx, func(tx store.Tx) error {
		n = 0 // fn may run more than once
		for _, k := range keys {
			if recheck != nil {
				val, err := tx.Get(bucket, k)
				if err != nil {
					return err
				}
				if val == nil || !recheck(k, val) {
					continue
				}
			}
			if err := tx.Delete(bucket, k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// archivedTimes are the fields of an archived record a retention sweep
// reads (decoding them alone skips building the opcodes and results).
type archivedTimes struct {
	Received *Timestamp `json:"received_ts"`
	End      *Timestamp `json:"end_ts"`
}

// RemoveArchived removes the archived jobs that ended more than
// Config.ArchiveRetention ago and returns how many it removed. A removed
// job is unknown, as in Ganeti once its cleaner removed the file: Lookup
// does not find it (the RAPI answers as for any unknown id), and a job
// depending on it fails with "Dependency error: Job N not found" (the
// JobLost of Ganeti's _JobDependencyManager.CheckAndRegister). The
// leader's engine does it when it starts and then periodically; a
// follower's refuses.
//
// The archive is scanned in id order, which is the order of submission:
// the scan stops at the first job received after the cutoff, since every
// later job ended after it too (a job received out of order, by another
// leader's clock, is removed by a later sweep). A record that cannot be
// read is kept (reading it is an error, see Lookup) and logged.
func (e *Engine) RemoveArchived() (int, error) {
	if e.follower {
		return 0, errFollower()
	}
	if e.cfg.ArchiveRetention < 0 {
		return 0, nil
	}
	cutoff := e.cfg.Clock().Add(-e.cfg.ArchiveRetention)
	var damaged int
	var firstDamaged string
	n, err := e.sweep(e.runCtx, BucketArchive, func(key string, val []byte) verdict {
		var t archivedTimes
		if err := json.Unmarshal(val, &t); err != nil || t.End == nil {
			if damaged++; damaged == 1 {
				firstDamaged = key
			}
			return keep
		}
		switch {
		case t.End.Time().Before(cutoff):
			return remove
		case t.Received != nil && !t.Received.Time().Before(cutoff):
			return stop
		}
		return keep
	}, nil)
	if damaged > 0 {
		e.log.Warn("archived job records that cannot be read are kept (their end time is unknown)",
			"records", damaged, "first", BucketArchive+"/"+firstDamaged)
	}
	return n, err
}

// removeOldArchived is RemoveArchived in the background.
func (e *Engine) removeOldArchived() {
	if e.Err() != nil {
		return
	}
	n, err := e.RemoveArchived()
	e.swept("archived jobs", slog.LevelInfo, n, err)
}

// swept logs the outcome of a background sweep (removals at level); a
// refused commit stops the engine (fail-stop), as for every commit.
func (e *Engine) swept(what string, level slog.Level, n int, err error) {
	switch {
	case errors.Is(err, store.ErrCommit):
		e.failStop(err)
	case err != nil:
		e.log.Error("removing expired "+what+" failed", "removed", n, "err", err)
	case n > 0:
		e.log.Log(context.Background(), level, "removed expired "+what, "removed", n)
	}
}

// sweepEvery is how often a sweep for things kept for d runs: every tenth
// of d, between a second and an hour.
func sweepEvery(d time.Duration) time.Duration { return min(max(d/10, time.Second), time.Hour) }
