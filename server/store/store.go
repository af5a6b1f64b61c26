// Package store is the storage seam of ganeti-gateway: ordered key/value
// buckets with serializable transactions.
//
// The cluster model (server/cluster) persists its objects as JSON documents
// in buckets, and the job engine puts job records in the same store, so that
// "apply an opcode's effect and mark its job successful" is one Update that
// commits atomically. Implementations: boltstore (embedded, the default),
// memstore (in memory, for tests); an etcd implementation must fit the same
// interface.
//
// Semantics every implementation provides (server/store/storetest checks
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
//   - A value that the store finds damaged when it reads it (boltstore keeps
//     a checksum with every value) is an error wrapping ErrCorrupt, never
//     returned as data. Users of the store that fail to decode a record
//     they read report it with Corrupt as well, so that one errors.Is test
//     tells damaged data from other failures.
package store

import (
	"errors"
	"fmt"
)

// Store is a transactional key/value store made of named buckets.
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction that commits when fn
	// returns nil; an error from fn (or from the commit) is returned and
	// the transaction's writes are discarded.
	Update(fn func(Tx) error) error
	// Close releases the store. Pending transactions must have ended.
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
