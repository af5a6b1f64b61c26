package store

import (
	"context"
	"fmt"
	"sync"
)

// ErrFenced is wrapped by the error of a commit refused because this
// replica is no longer the leader: the fence (a compare on the leader
// key's revision in the commit's own transaction) failed. It wraps
// ErrCommit, so the job engine stops (fail-stop) as for any refused commit.
var ErrFenced = fmt.Errorf("%w: fenced: this replica is no longer the leader", ErrCommit)

// Elector elects the one replica that runs the job engine. A store shared
// by several replicas (etcdstore) fences the commits of its leader: once
// Campaign won, every commit carries a compare on the leadership in the
// same transaction, so a deposed leader (paused, partitioned) can never
// commit.
type Elector interface {
	// Campaign blocks until this replica leads or ctx ends (ctx.Err()).
	// The returned context is done when the leadership is lost: the
	// lease expired, the leader key is gone, or Resign was called.
	Campaign(ctx context.Context) (context.Context, error)
	// Resign gives the leadership up (a no-op when not leading).
	Resign(ctx context.Context) error
}

// AlwaysLeader is the Elector of a store owned by one process (bbolt,
// memory): Campaign wins at once, and the leadership ends only with
// Resign or the campaign's context. The zero value is ready to use.
type AlwaysLeader struct {
	mu     sync.Mutex
	cancel context.CancelFunc
}

var _ Elector = (*AlwaysLeader)(nil)

// Campaign returns a context that ends with ctx or Resign.
func (a *AlwaysLeader) Campaign(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lead, cancel := context.WithCancel(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cancel != nil {
		a.cancel()
	}
	a.cancel = cancel
	return lead, nil
}

// Resign ends the leadership Campaign returned.
func (a *AlwaysLeader) Resign(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cancel != nil {
		a.cancel()
		a.cancel = nil
	}
	return nil
}
