// Package store is the storage seam of ganeti-gateway: ordered key/value
// buckets with serializable transactions.
//
// The cluster model (internal/sim/cluster) persists its objects as JSON documents
// in buckets, and the job engine puts job records in the same store, so that
// "apply an opcode's effect and mark its job successful" is one Update that
// commits atomically. Implementations: boltstore (embedded, the default),
// memstore (in memory, for tests); an etcd implementation must fit the same
// interface.
//
// Semantics every implementation provides (internal/store/storetest checks
// them):
//   - Update runs fn in a read-write transaction; writers are serialized. The
//     transaction commits when fn returns nil and is rolled back (all its
//     writes discarded) when fn returns an error or panics.
//   - View runs fn in a read-only transaction on a consistent snapshot; Put
//     and Delete inside View fail with ErrReadOnly.
//   - Buckets exist implicitly: Get and ForEach on a bucket that was never
//     written see it empty, Put creates it.
//   - Get returns (nil, nil) for an absent key. Returned byte slices belong to
//     the caller (they stay valid after the transaction ends).
//   - ForEach visits keys in ascending byte order; fn must not modify the
//     bucket it iterates.
//   - A Tx must not be used after its fn returns.
//   - When fn returned nil but the commit itself failed (a full disk, an
//     I/O error), Update returns an error wrapping ErrCommit. The outcome of
//     such a transaction is unknown (it may or may not be durable): a caller
//     must not act as if it had committed, nor as if it had not; the job
//     engine stops (fail-stop) and a restart reads what the store holds.
//   - Every method takes a context. An Update whose context is done before
//     it commits (while it waits for the writer, or when fn returns)
//     commits nothing and returns ctx.Err(); a View whose context is done
//     before it starts returns ctx.Err().
//   - fn MAY RUN MORE THAN ONCE (the contract of Kubernetes'
//     GuaranteedUpdate): a store may discard an attempt and run fn again on
//     a fresh transaction (a distributed store retries on a conflict). fn
//     must therefore be a function of what it reads through tx and of
//     values fixed before Update was called: no appending to slices
//     declared outside, no counters, no sends on channels, no publishing.
//     Such effects belong after Update returned nil. Results fn assigns to
//     variables outside are fine when every attempt assigns them afresh.
//     faultstore.Rerun runs every fn twice to check callers.
//   - Revisions: the store has one revision, an int64 that every committed
//     Update increases by exactly one (an Update that wrote nothing
//     included: it delivers no Event, so watchers may see gaps). A new
//     store is at revision 0. Tx.Revision returns the revision the
//     transaction reads; the commit of an Update gets Tx.Revision()+1
//     (UpdateRev returns it). The revision is durable where the data is
//     (boltstore keeps it in its reserved bucket, written in the same
//     transaction).
//   - Watch delivers every committed change, in commit order, from the
//     store's current revision onward; see Watch and Event. A store keeps
//     no history: a watch cannot start before the current revision
//     (ErrCompacted).
//   - Transactions are bounded (Limits): an Update with more operations or
//     more bytes of puts than its store's limits is refused whole with an
//     error wrapping ErrTxTooLarge, as etcd refuses a transaction over
//     --max-txn-ops or --max-request-bytes.
//   - A value that the store finds damaged when it reads it (boltstore keeps
//     a checksum with every value) is an error wrapping ErrCorrupt, never
//     returned as data. Users of the store that fail to decode a record
//     they read report it with Corrupt as well, so that one errors.Is test
//     tells damaged data from other failures.
package store

import (
	"context"
	"errors"
	"fmt"
)

// Store is a transactional key/value store made of named buckets.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction that commits when fn
	// returns nil; an error from fn (or from the commit) is returned and
	// the transaction's writes are discarded. fn may run more than once
	// (see the package documentation): it must be a pure function of the
	// transaction's contents.
	Update(ctx context.Context, fn func(Tx) error) error
	// Watch returns the changes committed from revision fromRev on (0:
	// from the next commit on). See Event for how a watch ends.
	Watch(ctx context.Context, fromRev int64) (<-chan Event, error)
	// Close releases the store and ends its watches (with ErrClosed).
	// Pending transactions must have ended.
	Close() error
}

// Tx is a transaction handed to View or Update.
type Tx interface {
	// Get returns the value of key in bucket, or nil, nil when absent.
	Get(bucket, key string) ([]byte, error)
	// Put sets key in bucket to val, creating the bucket if needed.
	Put(bucket, key string, val []byte) error
	// Delete removes key from bucket; deleting an absent key is not an error.
	Delete(bucket, key string) error
	// ForEach calls fn for each key of bucket in ascending key order and
	// stops at the first error fn returns, which ForEach returns.
	ForEach(bucket string, fn func(key string, val []byte) error) error
	// Revision is the store's revision as this transaction reads it: the
	// revision of the last commit before it began.
	Revision() int64
}

// Rev returns the store's current revision.
func Rev(ctx context.Context, s Store) (int64, error) {
	var rev int64
	err := s.View(ctx, func(tx Tx) error {
		rev = tx.Revision()
		return nil
	})
	return rev, err
}

// UpdateRev is Update that also returns the revision it committed.
func UpdateRev(ctx context.Context, s Store, fn func(Tx) error) (int64, error) {
	var rev int64
	err := s.Update(ctx, func(tx Tx) error {
		rev = tx.Revision() + 1 // every attempt sets it afresh
		return fn(tx)
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// Errors shared by the implementations.
var (
	// ErrReadOnly is returned by Put and Delete inside View.
	ErrReadOnly = errors.New("store: write in a read-only transaction")
	// ErrEmptyName is returned for an empty bucket name or key.
	ErrEmptyName = errors.New("store: empty bucket name or key")
	// ErrClosed is returned when the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrCommit wraps the error of a commit that failed after fn returned
	// nil: the transaction's outcome is unknown.
	ErrCommit = errors.New("store: commit failed")
	// ErrCorrupt is wrapped by every error about damaged stored data.
	ErrCorrupt = errors.New("damaged")
	// ErrTxTooLarge is wrapped by the error of an Update refused for
	// exceeding its store's Limits; nothing of it was committed.
	ErrTxTooLarge = errors.New("store: transaction too large")
	// ErrCompacted is returned by Watch for a start revision older than
	// the store can replay (it keeps no history).
	ErrCompacted = errors.New("store: revision no longer available")
	// ErrWatchOverflow ends a watch whose reader fell more than its buffer
	// behind the writers.
	ErrWatchOverflow = errors.New("store: watcher too slow, watch ended")
)

// CorruptError is a record of the store that is damaged: its value fails
// its checksum or does not decode.
type CorruptError struct {
	Bucket, Key string
	Err         error // what is wrong
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("record %s/%s is damaged: %v", e.Bucket, e.Key, e.Err)
}

// Unwrap returns ErrCorrupt and the cause.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// Corrupt returns the error for the damaged record bucket/key.
func Corrupt(bucket, key string, err error) error {
	return &CorruptError{Bucket: bucket, Key: key, Err: err}
}

// CheckNames validates a bucket name and key for implementations.
func CheckNames(bucket, key string) error {
	if bucket == "" || key == "" {
		return ErrEmptyName
	}
	return nil
}
