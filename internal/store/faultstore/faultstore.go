// Package faultstore is a store.Store decorator that makes commits fail on
// demand: the fault injector of the durability tests. A failing commit
// behaves as a real store's does when its disk is full or its fsync fails:
// Update returns an error wrapping store.ErrCommit, and the transaction is
// either discarded (Refuse) or durable after all (Unknown).
//
// Rerun makes it check the other side of the store contract: every Update
// runs its fn twice, the first attempt rolled back, as a distributed store
// does when it retries a transaction after a conflict. A caller whose fn
// has effects outside the transaction shows them twice.
package faultstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Mode is how an injected commit failure behaves.
type Mode int

const (
	// Healthy: commits succeed.
	Healthy Mode = iota
	// Refuse discards the transaction and reports a failed commit (a full
	// disk: nothing was written).
	Refuse
	// Unknown commits the transaction and reports a failed commit (an
	// fsync error after the write reached the disk: the caller cannot tell).
	Unknown
)

// ErrInjected is the cause of every injected failure.
var ErrInjected = errors.New("faultstore: injected commit failure")

// Store wraps a store.Store. The zero fault setting is Healthy.
type Store struct {
	inner store.Store

	mu       sync.Mutex
	rerun    bool
	mode     Mode
	skip     int // commits that still succeed before failures start
	count    int // failures left; negative: until Heal
	commits  int
	failures int
}

var _ store.Store = (*Store)(nil)

// New wraps inner.
func New(inner store.Store) *Store { return &Store{inner: inner} }

// Fail makes the commits of Update fail with mode: the next skip commits
// still succeed, then count fail (count < 0: every one until Heal).
// Transactions whose fn returns an error are not counted.
func (s *Store) Fail(mode Mode, skip, count int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode, s.skip, s.count = mode, skip, count
}

// Rerun(true) makes every Update run fn twice: first in a transaction
// that is rolled back whatever fn returns, then in the one that counts.
func (s *Store) Rerun(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rerun = on
}

// errDiscard rolls back the first attempt of a rerun Update.
var errDiscard = errors.New("faultstore: first attempt discarded")

// Heal makes commits succeed again.
func (s *Store) Heal() { s.Fail(Healthy, 0, 0) }

// Failures is the number of commits that failed by injection.
func (s *Store) Failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures
}

// Commits is the number of transactions that committed (Unknown failures
// included).
func (s *Store) Commits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

// next decides the fate of a commit whose fn succeeded.
func (s *Store) next() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == Healthy || s.count == 0 {
		return Healthy
	}
	if s.skip > 0 {
		s.skip--
		return Healthy
	}
	if s.count > 0 {
		s.count--
	}
	s.failures++
	return s.mode
}

func (s *Store) committed() {
	s.mu.Lock()
	s.commits++
	s.mu.Unlock()
}

// View runs fn on the wrapped store.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.inner.View(ctx, fn)
}

// Limits returns the wrapped store's limits (store.DefaultLimits when it
// does not say).
func (s *Store) Limits() store.Limits { return store.LimitsOf(s.inner) }

// Watch watches the wrapped store.
func (s *Store) Watch(ctx context.Context, fromRev int64) (<-chan store.Event, error) {
	return s.inner.Watch(ctx, fromRev)
}

// Update runs fn on the wrapped store, failing its commit as set by Fail
// and running fn twice as set by Rerun.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	s.mu.Lock()
	rerun := s.rerun
	s.mu.Unlock()
	if rerun {
		err := s.inner.Update(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errDiscard
		})
		if !errors.Is(err, errDiscard) {
			return err // fn failed: a second attempt would fail alike
		}
	}
	var fate Mode
	err := s.inner.Update(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if fate = s.next(); fate == Refuse {
			return ErrInjected
		}
		return nil
	})
	switch {
	case fate == Refuse && errors.Is(err, ErrInjected):
		return fmt.Errorf("%w: %w", store.ErrCommit, ErrInjected)
	case err != nil:
		return err
	}
	s.committed()
	if fate == Unknown {
		return fmt.Errorf("%w: %w", store.ErrCommit, ErrInjected)
	}
	return nil
}

// Close closes the wrapped store.
func (s *Store) Close() error { return s.inner.Close() }
