// Package boltstore is the embedded store.Store, backed by a bbolt file
// (<data dir>/state.db, mode 0600). Every Update is one bbolt read-write
// transaction, fsynced on commit (bbolt's default). Buckets are created on
// first write.
package boltstore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ganeti-gateway/ganeti-gateway/server/store"
)

// FileName is the name of the database file inside the data directory.
const FileName = "state.db"

// Store is a store.Store on a bbolt database.
type Store struct {
	db     *bolt.DB
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the bbolt database file at path with mode
// 0600. It fails after one second if another process holds the file.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// OpenDir creates dir (mode 0700) if needed and opens dir/state.db.
func OpenDir(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	return Open(filepath.Join(dir, FileName))
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

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func (t tx) Get(bucket, key string) ([]byte, error) {
	if err := store.CheckNames(bucket, key); err != nil {
		return nil, err
	}
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil, nil
	}
	return clone(b.Get([]byte(key))), nil
}

func (t tx) Put(bucket, key string, val []byte) error {
	if err := store.CheckNames(bucket, key); err != nil {
		return err
	}
	if !t.btx.Writable() {
		return store.ErrReadOnly
	}
	b, err := t.btx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("boltstore: bucket %q: %w", bucket, err)
	}
	if val == nil {
		val = []byte{}
	}
	return b.Put([]byte(key), val)
}

func (t tx) Delete(bucket, key string) error {
	if err := store.CheckNames(bucket, key); err != nil {
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
	if bucket == "" {
		return store.ErrEmptyName
	}
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error { return fn(string(k), clone(v)) })
}
