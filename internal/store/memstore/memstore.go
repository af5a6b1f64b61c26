// Package memstore is an in-memory store.Store for tests. It has the same
// transactional semantics as the persistent stores: Update's writes become
// visible only when fn returns nil and are discarded otherwise.
package memstore

import (
	"context"
	"sort"
	"sync"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	writer chan struct{} // a one-slot semaphore: serializes Update
	limits store.Limits
	hub    *store.Hub
	mu     sync.RWMutex // guards data, rev and closed
	data   map[string]map[string][]byte
	rev    int64
	closed bool
}

var _ store.Store = (*Store)(nil)

// Option configures New.
type Option func(*Store)

// WithLimits sets the store's transaction limits (default
// store.DefaultLimits).
func WithLimits(l store.Limits) Option { return func(s *Store) { s.limits = l.OrDefault() } }

// WithWatchBuffer sets how many events a watcher may fall behind (default
// store.DefaultWatchBuffer).
func WithWatchBuffer(n int) Option { return func(s *Store) { s.hub = store.NewHub(0, n) } }

// New returns an empty store at revision 0.
func New(opts ...Option) *Store {
	s := &Store{
		writer: make(chan struct{}, 1),
		limits: store.DefaultLimits,
		hub:    store.NewHub(0, 0),
		data:   map[string]map[string][]byte{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// View runs fn on a consistent snapshot. Do not call View or Update on the
// same store from inside fn.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return fn(&tx{s: s, rev: s.rev})
}

// Limits returns the store's transaction limits.
func (s *Store) Limits() store.Limits { return s.limits }

// Watch delivers the changes committed from revision fromRev on (see
// store.Store). The store keeps no history.
func (s *Store) Watch(ctx context.Context, fromRev int64) (<-chan store.Event, error) {
	// Between transactions (see store.Hub.Watching).
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.writer }()
	return s.hub.Watch(ctx, fromRev)
}

// Update runs fn in a read-write transaction. Do not call Update on the same
// store from inside fn.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writer }()
	s.mu.RLock()
	closed, rev := s.closed, s.rev
	s.mu.RUnlock()
	if closed {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t := &tx{s: s, rev: rev, writable: true, pending: map[string]map[string][]byte{}, budget: store.NewBudget(s.limits),
		record: s.hub.Watching()}
	if err := fn(t); err != nil {
		return err
	}
	if err := t.budget.Err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.rev++
	s.hub.Publish(s.rev, t.changes)
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
	s.writer <- struct{}{}
	defer func() { <-s.writer }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.hub.Close()
	}
	return nil
}

// tx reads the committed data (the caller holds the appropriate lock) and,
// when writable, buffers its writes in pending (nil value = deleted).
type tx struct {
	s        *Store
	rev      int64
	writable bool
	pending  map[string]map[string][]byte
	changes  []store.Event // what Watch delivers if it commits
	record   bool          // fill changes: the store has watchers
	budget   store.Budget
}

func (t *tx) Revision() int64 { return t.rev }

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
	if err := t.budget.Add(len(key) + len(val)); err != nil {
		return err
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
	if t.record {
		t.changes = append(t.changes, store.Event{Bucket: bucket, Key: key, Value: v})
	}
	return nil
}

func (t *tx) Delete(bucket, key string) error {
	if err := store.CheckNames(bucket, key); err != nil {
		return err
	}
	if !t.writable {
		return store.ErrReadOnly
	}
	if err := t.budget.Add(0); err != nil {
		return err
	}
	kv := t.pending[bucket]
	if kv == nil {
		kv = map[string][]byte{}
		t.pending[bucket] = kv
	}
	kv[key] = nil
	if t.record {
		t.changes = append(t.changes, store.Event{Bucket: bucket, Key: key, Deleted: true})
	}
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
