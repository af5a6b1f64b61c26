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
package boltstore

import (
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

	"github.com/ganeti-gateway/ganeti-gateway/server/store"
)

// FileName is the name of the database file inside the data directory.
const FileName = "state.db"

// The reserved bucket and its format record.
const (
	metaBucket      = "_boltstore"
	keyFormat       = "format"
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
}

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
func Open(path string) (*Store, error) {
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
	s := &Store{db: db, info: info}
	if err := s.prepare(); err != nil {
		_ = db.Close()
		return nil, err
	}
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
func OpenDir(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	return Open(filepath.Join(dir, FileName))
}

// Info tells what Open found and did.
func (s *Store) Info() OpenInfo { return s.info }

// Buckets returns the names of the buckets that hold data (in byte order).
func (s *Store) Buckets() ([]string, error) {
	var out []string
	err := s.View(func(store.Tx) error { return nil }) // closed check
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
func (s *Store) View(fn func(store.Tx) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return s.db.View(func(btx *bolt.Tx) error { return fn(tx{btx}) })
}

// Update runs fn in a read-write bbolt transaction. A failure of the
// commit (writing the pages, growing the file, fsync) wraps
// store.ErrCommit.
func (s *Store) Update(fn func(store.Tx) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	fnDone := false
	err := s.db.Update(func(btx *bolt.Tx) error {
		if err := fn(tx{btx}); err != nil {
			return err
		}
		fnDone = true
		return nil
	})
	if err != nil && fnDone {
		return fmt.Errorf("%w: %w", store.ErrCommit, err)
	}
	return err
}

// Close closes the database file.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.db.Close()
}

type tx struct{ btx *bolt.Tx }

func checkNames(bucket, key string) error {
	if err := store.CheckNames(bucket, key); err != nil {
		return err
	}
	if bucket == metaBucket {
		return fmt.Errorf("boltstore: the bucket name %q is reserved", bucket)
	}
	return nil
}

func (t tx) Get(bucket, key string) ([]byte, error) {
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

func (t tx) Put(bucket, key string, val []byte) error {
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	if !t.btx.Writable() {
		return store.ErrReadOnly
	}
	b, err := t.btx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("boltstore: bucket %q: %w", bucket, err)
	}
	return b.Put([]byte(key), seal(bucket, []byte(key), val))
}

func (t tx) Delete(bucket, key string) error {
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	if !t.btx.Writable() {
		return store.ErrReadOnly
	}
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.Delete([]byte(key))
}

func (t tx) ForEach(bucket string, fn func(key string, val []byte) error) error {
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
