package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Idempotent submissions. A submission that carries an idempotency key
// (SubmitOptions.Idempotency) is recorded under that key in
// BucketIdempotency, in the same transaction as the job's first record, so
// that the store never holds a job without its key nor a key without its
// job. A later submission with the same scope and key gets the first job's
// id back and creates nothing when its fingerprint is the same, and a
// conflict error when it differs. Keys live for Config.IdempotencyTTL after
// their job's submission; expired ones are removed when the engine opens
// and then periodically. Submissions with the same key are serialized
// while one of them is being committed: the others wait for its outcome.

// BucketIdempotency holds the idempotency keys of submissions.
const BucketIdempotency = "idempotency"

// DefaultIdempotencyTTL is Config.IdempotencyTTL's default.
const DefaultIdempotencyTTL = 24 * time.Hour

// idemRecord is the stored value of a key.
type idemRecord struct {
	Job         int64  `json:"job"`
	Fingerprint string `json:"fingerprint"`
	// Expires is when the key may be forgotten (Unix nanoseconds).
	Expires int64 `json:"expires_ns"`
}

// pendingKey is the key record a job's first commit writes.
type pendingKey struct {
	key string
	val []byte
}

// idemKey is the store key of a scope's key: both parts, length-prefixed
// so that no two (scope, key) pairs share one.
func idemKey(scope, key string) string {
	return strconv.Itoa(len(scope)) + "/" + scope + "/" + key
}

func decodeIdem(key string, b []byte) (*idemRecord, error) {
	var r idemRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, store.Corrupt(BucketIdempotency, key, err)
	}
	if r.Job < 1 || r.Fingerprint == "" {
		return nil, store.Corrupt(BucketIdempotency, key, errors.New("incomplete idempotency record"))
	}
	return &r, nil
}

// keyLocks serializes the submissions of one key while they are decided.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	sem  chan struct{} // holds one token while a submission owns the key
	refs int
}

// lock waits until no other submission owns key (or ctx ends) and returns
// the function that releases it.
func (l *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*keyLock{}
	}
	kl := l.m[key]
	if kl == nil {
		kl = &keyLock{sem: make(chan struct{}, 1)}
		l.m[key] = kl
	}
	kl.refs++
	l.mu.Unlock()
	unref := func() {
		l.mu.Lock()
		if kl.refs--; kl.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	select {
	case kl.sem <- struct{}{}:
		return func() { <-kl.sem; unref() }, nil
	case <-ctx.Done():
		unref()
		return nil, ctx.Err()
	}
}

// submitKeyed is submit for a submission with an idempotency key: the job
// of an earlier submission with the same key and fingerprint (replayed
// true), a conflict for the same key with another fingerprint, else a new
// job recorded under the key.
func (e *Engine) submitKeyed(ctx context.Context, ops []*rapiv2.OpCode, opt SubmitOptions) (id int64, ids []string, replayed bool, err error) {
	k := opt.Idempotency
	if k.Key == "" || k.Fingerprint == "" {
		return 0, nil, false, errors.New("jobs: an idempotency key needs a key and a fingerprint")
	}
	key := idemKey(k.Scope, k.Key)
	release, err := e.keys.lock(ctx, key)
	if err != nil {
		return 0, nil, false, err
	}
	defer release()
	// After a refused commit the store may hold a key whose job this
	// engine does not show: answer as every submission does then.
	if e.Err() != nil {
		return 0, nil, false, errQueueFailed()
	}
	now := e.cfg.Clock()
	prev, err := e.lookupKey(ctx, key, now)
	if err != nil {
		return 0, nil, false, err
	}
	if prev != nil {
		if prev.Fingerprint != k.Fingerprint {
			return 0, nil, false, errs.Conflict(
				"Idempotency key already used for a different request (job %d); use a new key for a new request", prev.Job)
		}
		return prev.Job, nil, true, nil
	}
	expires := now.Add(e.cfg.IdempotencyTTL).UnixNano()
	id, ids, err = e.submit(ctx, ops, opt, func(id int64) (*pendingKey, error) {
		b, err := json.Marshal(idemRecord{Job: id, Fingerprint: k.Fingerprint, Expires: expires})
		if err != nil {
			return nil, err
		}
		return &pendingKey{key: key, val: b}, nil
	})
	return id, ids, false, err
}

// lookupKey reads a key's record; an expired one is nil.
func (e *Engine) lookupKey(ctx context.Context, key string, now time.Time) (*idemRecord, error) {
	var r *idemRecord
	err := e.st.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(BucketIdempotency, key)
		if err != nil || b == nil {
			return err
		}
		r, err = decodeIdem(key, b)
		return err
	})
	if err != nil {
		e.log.Error("reading an idempotency key failed", "err", err)
		return nil, fmt.Errorf("jobs: idempotency key: %w", err)
	}
	if r != nil && r.Expires <= now.UnixNano() {
		return nil, nil
	}
	return r, nil
}

// ExpireKeys removes the idempotency keys that have expired and returns
// how many it removed. The engine does it when it opens and periodically.
// A damaged key record is removed too (and logged): it cannot be honored.
// Each key is checked again in the transaction that removes it, where a
// submission may have reused it meanwhile.
func (e *Engine) ExpireKeys() (int, error) {
	now := e.cfg.Clock().UnixNano()
	expired := func(key string, val []byte) bool {
		r, err := decodeIdem(key, val)
		return err != nil || r.Expires <= now
	}
	// The engine's housekeeping has no caller's context.
	return e.sweep(e.runCtx, BucketIdempotency, func(key string, val []byte) verdict {
		if !expired(key, val) {
			return keep
		}
		if _, err := decodeIdem(key, val); err != nil {
			e.log.Error("removing a damaged idempotency key", "err", err)
		}
		return remove
	}, expired)
}

// expireKeys removes expired keys (periodically, while the engine runs).
func (e *Engine) expireKeys() {
	if e.Err() != nil {
		return
	}
	n, err := e.ExpireKeys()
	e.swept("idempotency keys", slog.LevelDebug, n, err)
}
