// Package boltstore is the embedded store.Store, backed by a bbolt file
// (<data dir>/state.db, mode 0600). Every Update is one bbolt read-write
// transaction, fsynced on commit (bbolt's default). Buckets are created on
// first write.
//
// bbolt keeps no checksum of its data pages, and trusts them: a damaged
// page can make it panic or fault, and a changed byte in a value is served
// as it is. So this package
//   - verifies an existing file before bbolt maps it (Verify: every page
//     reachable, in range and used once, the freelist, the bucket layout),
//     and refuses a damaged one with a *DamageError naming the page or the
//     record;
//   - stores every value with a CRC-32C of its bucket, key and bytes, checks
//     it on every read (a mismatch is a store.CorruptError, never data) and
//     at open. The reserved bucket "_boltstore" holds the format record
//     saying so; a store written before checksums existed is given them
//     once, in one transaction, when opened.
//
// The store's revision (store.Store) is the record "revision" of the
// reserved bucket (8 bytes, big-endian, with its checksum), written by
// every Update in its own transaction: it survives a restart exactly as
// the data does. A store without it is at revision 0.
package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// FileName is the name of the database file inside the data directory.
const FileName = "state.db"

// The reserved bucket and its format record.
const (
	metaBucket      = "_boltstore"
	keyFormat       = "format"
	keyRevision     = "revision"
	formatChecksums = "crc32c-1" // every value ends with its CRC-32C
	sumLen          = 4
)

// ErrInUse is returned by Open when another process holds the file.
var ErrInUse = errors.New("in use by another process")

// Store is a store.Store on a bbolt database.
type Store struct {
	db     *bolt.DB
	closed atomic.Bool
	info   OpenInfo
	writer chan struct{} // a one-slot semaphore: serializes Update and its Publish
	rev    int64         // the last committed revision (writer held; bbolt's file lock keeps other processes out)
	limits store.Limits
	buffer int // watch buffer
	hub    *store.Hub
}

// Option configures Open.
type Option func(*Store)

// WithLimits sets the store's transaction limits (default
// store.DefaultLimits).
func WithLimits(l store.Limits) Option { return func(s *Store) { s.limits = l.OrDefault() } }

// WithWatchBuffer sets how many events a watcher may fall behind (default
// store.DefaultWatchBuffer).
func WithWatchBuffer(n int) Option { return func(s *Store) { s.buffer = n } }

var _ store.Store = (*Store)(nil)

// OpenInfo tells what Open found and did.
type OpenInfo struct {
	// Verify is the check of the existing file (zero for a new file).
	Verify Report
	// Created: the file was absent or empty and was initialized.
	Created bool
	// Upgraded is the number of values given a checksum (a store written
	// before checksums existed).
	Upgraded int
}

// Open opens (creating if absent or empty) the bbolt database file at
// path with mode 0600. An existing file is verified first: a damaged one
// is refused with a *DamageError (wrapping store.ErrCorrupt). It fails with
// ErrInUse after one second if another process holds the file.
func Open(path string, opts ...Option) (*Store, error) {
	var info OpenInfo
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		info.Created = true
	case err != nil:
		return nil, fmt.Errorf("boltstore: %w", err)
	case !fi.Mode().IsRegular():
		return nil, &DamageError{Path: path, Page: -1, Reason: "not a regular file"}
	case fi.Size() == 0:
		info.Created = true
	default:
		if info.Verify, err = verifyLocked(path); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, false)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, info: info, writer: make(chan struct{}, 1), limits: store.DefaultLimits}
	for _, o := range opts {
		o(s)
	}
	if err := s.prepare(); err != nil {
		_ = db.Close()
		return nil, err
	}
	var rev int64
	if err := db.View(func(btx *bolt.Tx) error {
		var err error
		rev, err = readRevision(btx)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.rev, s.hub = rev, store.NewHub(rev, s.buffer)
	return s, nil
}

// openBolt opens the file with bbolt, turning a panic into an error.
func openBolt(path string, readOnly bool) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, &DamageError{Path: path, Page: -1, Reason: fmt.Sprintf("bbolt failed to open it: %v", p)}
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: readOnly})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("boltstore: %s: %w", path, ErrInUse)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, &DamageError{Path: path, Page: -1, Reason: err.Error()}
	}
	return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
}

// verifyLocked verifies path while holding bbolt's shared lock, so that
// no other process writes it meanwhile.
func verifyLocked(path string) (Report, error) {
	db, err := openBolt(path, true)
	if err != nil {
		if errors.Is(err, ErrInUse) {
			return Report{}, err
		}
		// bbolt could not read it: Verify says precisely why.
		if rep, verr := Verify(path); verr != nil {
			return rep, verr
		}
		return Report{}, err
	}
	defer db.Close()
	return Verify(path)
}

// prepare writes the format record into a new store, or gives the values
// of a store written before checksums existed their checksums.
func (s *Store) prepare() error {
	var has bool
	var buckets [][]byte
	err := s.db.View(func(btx *bolt.Tx) error {
		return btx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if string(name) == metaBucket {
				has = true
			} else {
				buckets = append(buckets, append([]byte(nil), name...))
			}
			return nil
		})
	})
	if err != nil || has {
		return err
	}
	return s.db.Update(func(btx *bolt.Tx) error {
		for _, name := range buckets {
			b := btx.Bucket(name)
			type kv struct{ k, v []byte }
			var all []kv
			if err := b.ForEach(func(k, v []byte) error {
				if _, err := unseal(string(name), k, v); err == nil {
					// Never seal twice: the format record must have
					// been lost.
					return &DamageError{Path: s.db.Path(), Page: -1, Bucket: metaBucket,
						Reason: fmt.Sprintf("the format record is missing, but values carry checksums (%s/%s)", name, printable(k))}
				}
				all = append(all, kv{append([]byte(nil), k...), seal(string(name), k, v)})
				return nil
			}); err != nil {
				return err
			}
			for _, e := range all {
				if err := b.Put(e.k, e.v); err != nil {
					return err
				}
			}
			s.info.Upgraded += len(all)
		}
		mb, err := btx.CreateBucket([]byte(metaBucket))
		if err != nil {
			return err
		}
		return mb.Put([]byte(keyFormat), seal(metaBucket, []byte(keyFormat), []byte(formatChecksums)))
	})
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the CRC-32C of a value's bucket, key and bytes (the names
// length-prefixed).
func checksum(bucket string, key, val []byte) uint32 {
	var n [2 * binary.MaxVarintLen64]byte
	c := crc32.Update(0, castagnoli, n[:binary.PutUvarint(n[:], uint64(len(bucket)))])
	c = crc32.Update(c, castagnoli, []byte(bucket))
	c = crc32.Update(c, castagnoli, n[:binary.PutUvarint(n[:], uint64(len(key)))])
	c = crc32.Update(c, castagnoli, key)
	return crc32.Update(c, castagnoli, val)
}

// seal returns val followed by its checksum.
func seal(bucket string, key, val []byte) []byte {
	out := make([]byte, len(val)+sumLen)
	copy(out, val)
	binary.BigEndian.PutUint32(out[len(val):], checksum(bucket, key, val))
	return out
}

// unseal checks a stored value's checksum and returns its bytes (a slice of
// v).
func unseal(bucket string, key, v []byte) ([]byte, error) {
	if len(v) < sumLen {
		return nil, errors.New("value shorter than its checksum")
	}
	val := v[:len(v)-sumLen]
	if binary.BigEndian.Uint32(v[len(val):]) != checksum(bucket, key, val) {
		return nil, errors.New("checksum mismatch")
	}
	return val, nil
}

// OpenDir creates dir (mode 0700) if needed and opens dir/state.db.
func OpenDir(dir string, opts ...Option) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	return Open(filepath.Join(dir, FileName), opts...)
}

// readRevision returns the revision recorded in btx (0 if none).
func readRevision(btx *bolt.Tx) (int64, error) {
	mb := btx.Bucket([]byte(metaBucket))
	if mb == nil {
		return 0, nil
	}
	v := mb.Get([]byte(keyRevision))
	if v == nil {
		return 0, nil
	}
	val, err := unseal(metaBucket, []byte(keyRevision), v)
	if err == nil && len(val) != 8 {
		err = errors.New("not 8 bytes")
	}
	if err != nil {
		return 0, store.Corrupt(metaBucket, keyRevision, err)
	}
	return int64(binary.BigEndian.Uint64(val)), nil
}

// writeRevision records rev in btx.
func writeRevision(btx *bolt.Tx, rev int64) error {
	mb, err := btx.CreateBucketIfNotExists([]byte(metaBucket))
	if err != nil {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(rev))
	return mb.Put([]byte(keyRevision), seal(metaBucket, []byte(keyRevision), b[:]))
}

// Info tells what Open found and did.
func (s *Store) Info() OpenInfo { return s.info }

// Buckets returns the names of the buckets that hold data (in byte order).
func (s *Store) Buckets() ([]string, error) {
	var out []string
	err := s.View(context.Background(), func(store.Tx) error { return nil }) // closed check
	if err != nil {
		return nil, err
	}
	err = s.db.View(func(btx *bolt.Tx) error {
		return btx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if string(name) != metaBucket {
				out = append(out, string(name))
			}
			return nil
		})
	})
	return out, err
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.db.Path() }

// View runs fn in a read-only bbolt transaction.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	return s.db.View(func(btx *bolt.Tx) error { return fn(&tx{btx: btx, rev: -1}) })
}

// Limits returns the store's transaction limits.
func (s *Store) Limits() store.Limits { return s.limits }

// Watch delivers the changes committed from revision fromRev on (see
// store.Store). The store keeps no history.
func (s *Store) Watch(ctx context.Context, fromRev int64) (<-chan store.Event, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	// Between transactions (see store.Hub.Watching).
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.writer }()
	return s.hub.Watch(ctx, fromRev)
}

// Update runs fn in a read-write bbolt transaction. A failure of the
// commit (writing the pages, growing the file, fsync) wraps
// store.ErrCommit.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writer }()
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var t *tx
	fnDone, record := false, s.hub.Watching()
	rev := s.rev
	err := s.db.Update(func(btx *bolt.Tx) error {
		if rev < 0 { // after a failed commit, whose outcome is unknown
			var err error
			if rev, err = readRevision(btx); err != nil {
				return err
			}
		}
		t = &tx{btx: btx, rev: rev, budget: store.NewBudget(s.limits), record: record}
		if err := fn(t); err != nil {
			return err
		}
		if err := t.budget.Err(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeRevision(btx, rev+1); err != nil {
			return err
		}
		fnDone = true
		return nil
	})
	switch {
	case err != nil && fnDone:
		s.rev = -1 // read it again: the commit may have happened
		err = fmt.Errorf("%w: %w", store.ErrCommit, err)
		s.hub.Abort(err)
		return err
	case err != nil:
		return err
	}
	s.rev = rev + 1
	s.hub.Publish(s.rev, t.changes)
	return nil
}

// Close closes the database file and ends the watches.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.hub.Close()
	return s.db.Close()
}

type tx struct {
	btx     *bolt.Tx
	rev     int64
	changes []store.Event // what Watch delivers if it commits
	record  bool          // fill changes: the store has watchers
	budget  store.Budget
}

// Revision reads the revision of the transaction's snapshot once, when
// first asked (a View rarely asks: no cost for the others). A damaged
// revision record reads as -1; Update and Open refuse it.
func (t *tx) Revision() int64 {
	if t.rev < 0 {
		rev, err := readRevision(t.btx)
		if err != nil {
			return -1
		}
		t.rev = rev
	}
	return t.rev
}

func checkNames(bucket, key string) error {
	if err := store.CheckNames(bucket, key); err != nil {
		return err
	}
	if bucket == metaBucket {
		return fmt.Errorf("boltstore: the bucket name %q is reserved", bucket)
	}
	return nil
}

func (t *tx) Get(bucket, key string) ([]byte, error) {
	if err := checkNames(bucket, key); err != nil {
		return nil, err
	}
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	val, err := unseal(bucket, []byte(key), v)
	if err != nil {
		return nil, store.Corrupt(bucket, key, err)
	}
	return append(make([]byte, 0, len(val)), val...), nil
}

func (t *tx) Put(bucket, key string, val []byte) error {
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	if !t.btx.Writable() {
		return store.ErrReadOnly
	}
	if err := t.budget.Add(len(key) + len(val)); err != nil {
		return err
	}
	b, err := t.btx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("boltstore: bucket %q: %w", bucket, err)
	}
	sealed := seal(bucket, []byte(key), val)
	if err := b.Put([]byte(key), sealed); err != nil {
		return err
	}
	if t.record {
		// The event shares the sealed copy (never changed): no second copy.
		t.changes = append(t.changes, store.Event{Bucket: bucket, Key: key, Value: sealed[: len(sealed)-sumLen : len(sealed)-sumLen]})
	}
	return nil
}

func (t *tx) Delete(bucket, key string) error {
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	if !t.btx.Writable() {
		return store.ErrReadOnly
	}
	if err := t.budget.Add(0); err != nil {
		return err
	}
	if t.record {
		t.changes = append(t.changes, store.Event{Bucket: bucket, Key: key, Deleted: true})
	}
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.Delete([]byte(key))
}

func (t *tx) ForEach(bucket string, fn func(key string, val []byte) error) error {
	if err := checkNames(bucket, "-"); err != nil {
		return err
	}
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		val, err := unseal(bucket, k, v)
		if err != nil {
			return store.Corrupt(bucket, string(k), err)
		}
		return fn(string(k), append(make([]byte, 0, len(val)), val...))
	})
}

// Snapshot is a consistent copy of the database: one read transaction.
// Writers go on, except a commit that must grow bbolt's memory map (the
// file outgrows it; the map doubles each time), which waits for the
// snapshot to end: keep snapshots short.
type Snapshot struct {
	tx *bolt.Tx
	db *bolt.DB // closed by Close when the snapshot opened it
}

// Snapshot begins a snapshot of the open store; Close ends it.
func (s *Store) Snapshot() (*Snapshot, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return &Snapshot{tx: tx}, nil
}

// OpenSnapshot opens the database file at path read-only (for a store no
// server holds: ErrInUse otherwise) and begins a snapshot of it; Close
// ends it and closes the file.
func OpenSnapshot(path string) (*Snapshot, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	db, err := openBolt(path, true)
	if err != nil {
		return nil, err
	}
	tx, err := db.Begin(false)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Snapshot{tx: tx, db: db}, nil
}

// Size is the number of bytes WriteTo writes.
func (sn *Snapshot) Size() int64 { return sn.tx.Size() }

// WriteTo writes the snapshot as a database file.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) { return sn.tx.WriteTo(w) }

// Close ends the snapshot.
func (sn *Snapshot) Close() error {
	err := sn.tx.Rollback()
	if sn.db != nil {
		if cerr := sn.db.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
