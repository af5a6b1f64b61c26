// Package memstore is an in-memory store.Store for tests. It has the same
// transactional semantics as the persistent stores: Update's writes become
// visible only when fn returns nil and are discarded otherwise.
package memstore

import (
	"sort"
	"sync"

	"github.com/ganeti-gateway/ganeti-gateway/server/store"
)

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	writer sync.Mutex   // serializes Update
	mu     sync.RWMutex // guards data and closed
	data   map[string]map[string][]byte
	closed bool
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{data: map[string]map[string][]byte{}}
}

// View runs fn on a consistent snapshot. Do not call View or Update on the
// same store from inside fn.
func (s *Store) View(fn func(store.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return fn(&tx{s: s})
}

// Update runs fn in a read-write transaction. Do not call Update on the same
// store from inside fn.
func (s *Store) Update(fn func(store.Tx) error) error {
	s.writer.Lock()
	defer s.writer.Unlock()
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return store.ErrClosed
	}
	t := &tx{s: s, writable: true, pending: map[string]map[string][]byte{}}
	if err := fn(t); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	for b, kv := range t.pending {
		bucket := s.data[b]
		if bucket == nil {
			bucket = map[string][]byte{}
			s.data[b] = bucket
		}
		for k, v := range kv {
			if v == nil {
				delete(bucket, k)
			} else {
				bucket[k] = v
			}
		}
	}
	return nil
}

// Close marks the store closed; later transactions fail with store.ErrClosed.
func (s *Store) Close() error {
	s.writer.Lock()
	defer s.writer.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// tx reads the committed data (the caller holds the appropriate lock) and,
// when writable, buffers its writes in pending (nil value = deleted).
type tx struct {
	s        *Store
	writable bool
	pending  map[string]map[string][]byte
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func (t *tx) committed(bucket, key string) ([]byte, bool) {
	if t.writable {
		// Update does not hold s.mu while fn runs; committed data only
		// changes under the writer lock, which this transaction holds, so a
		// read lock is enough to satisfy the race detector.
		t.s.mu.RLock()
		defer t.s.mu.RUnlock()
	}
	v, ok := t.s.data[bucket][key]
	return v, ok
}

func (t *tx) Get(bucket, key string) ([]byte, error) {
	if err := store.CheckNames(bucket, key); err != nil {
		return nil, err
	}
	if kv, ok := t.pending[bucket]; ok {
		if v, ok := kv[key]; ok {
			return clone(v), nil
		}
	}
	v, _ := t.committed(bucket, key)
	return clone(v), nil
}

func (t *tx) Put(bucket, key string, val []byte) error {
	if err := store.CheckNames(bucket, key); err != nil {
		return err
	}
	if !t.writable {
		return store.ErrReadOnly
	}
	kv := t.pending[bucket]
	if kv == nil {
		kv = map[string][]byte{}
		t.pending[bucket] = kv
	}
	v := clone(val)
	if v == nil {
		v = []byte{} // nil marks a deletion
	}
	kv[key] = v
	return nil
}

func (t *tx) Delete(bucket, key string) error {
	if err := store.CheckNames(bucket, key); err != nil {
		return err
	}
	if !t.writable {
		return store.ErrReadOnly
	}
	kv := t.pending[bucket]
	if kv == nil {
		kv = map[string][]byte{}
		t.pending[bucket] = kv
	}
	kv[key] = nil
	return nil
}

func (t *tx) ForEach(bucket string, fn func(key string, val []byte) error) error {
	if bucket == "" {
		return store.ErrEmptyName
	}
	// Snapshot the merged view first so that fn sees a stable sequence.
	merged := map[string][]byte{}
	func() {
		if t.writable {
			t.s.mu.RLock()
			defer t.s.mu.RUnlock()
		}
		for k, v := range t.s.data[bucket] {
			merged[k] = v
		}
	}()
	for k, v := range t.pending[bucket] {
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = v
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(k, clone(merged[k])); err != nil {
			return err
		}
	}
	return nil
}
