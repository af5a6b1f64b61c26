package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

// mirror is a follower's copy of the store: an in-memory store loaded
// from one etcd snapshot, then changed by every commit of the leader, in
// order, from one etcd watch (etcdstore.Follow); the cluster model and a
// follower job engine on it show each commit once it is applied whole.
type mirror struct {
	mem    *memstore.Store
	model  *cluster.Model
	engine *jobs.Engine
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	applied int64         // the store revision the copy holds
	notify  chan struct{} // closed and replaced when applied grows
	err     error         // the watch ended: the copy is stale
	stopped bool
}

var (
	errLeading       = errors.New("this replica leads")
	errMirrorStopped = errors.New("the copy stopped")
)

// unbounded are the limits of the copy: it takes whatever etcd took.
var unbounded = store.Limits{MaxOps: 1 << 40, MaxBytes: 1 << 50}

// startMirror loads the copy and follows the store. While etcd holds no
// cluster yet (the first leader has not seeded it) it waits for one, or
// returns errLeading once won is closed. onFail is called (once) when the
// watch ends.
func startMirror(ctx context.Context, st *etcdstore.Store, jc jobs.Config, won <-chan struct{}, onFail func(error)) (_ *mirror, err error) {
	snap, err := st.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	m := &mirror{mem: memstore.New(memstore.WithLimits(unbounded)), applied: snap.Rev, notify: make(chan struct{}), done: make(chan struct{})}
	if err := m.put(ctx, snap.Records); err != nil {
		return nil, err
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	commits, err := st.Follow(fctx, snap)
	if err != nil {
		cancel()
		return nil, err
	}
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	for {
		m.model, err = cluster.Open(m.mem, nil, nil)
		if !errors.Is(err, cluster.ErrNoCluster) {
			break
		}
		select {
		case c, ok := <-commits:
			if !ok {
				return nil, errors.New("the etcd watch ended")
			}
			if c.Err != nil {
				return nil, followFailure(c.Err)
			}
			if err := m.put(ctx, c.Changes); err != nil {
				return nil, err
			}
			m.applied = c.Rev
		case <-won:
			return nil, errLeading
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	jc.Model = m.model
	if m.engine, err = jobs.NewFollower(jc); err != nil {
		return nil, err
	}
	go m.follow(commits, onFail)
	return m, nil
}

// put applies changes to the copy in one transaction.
func (m *mirror) put(ctx context.Context, changes []store.Event) error {
	if len(changes) == 0 {
		return nil
	}
	return m.mem.Update(ctx, func(tx store.Tx) error {
		for _, ev := range changes {
			var err error
			if ev.Deleted {
				err = tx.Delete(ev.Bucket, ev.Key)
			} else {
				err = tx.Put(ev.Bucket, ev.Key, ev.Value)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// follow applies the commits until the watch ends.
func (m *mirror) follow(commits <-chan etcdstore.Commit, onFail func(error)) {
	defer close(m.done)
	ctx := context.Background()
	for c := range commits {
		err := c.Err
		if err == nil {
			err = m.apply(ctx, c)
		}
		if err != nil {
			m.mu.Lock()
			m.err = err
			stopped := m.stopped
			close(m.notify)
			m.notify = make(chan struct{})
			m.mu.Unlock()
			if !stopped {
				onFail(followFailure(err))
			}
			return
		}
	}
}

// followFailure is why the copy stopped following the leader's commits
// (the replica then stops serving; its restart loads a fresh copy).
func followFailure(err error) error {
	if errors.Is(err, store.ErrCompacted) {
		return fmt.Errorf("etcd: this replica's copy of the store fell behind the history etcd keeps: "+
			"the commits it had yet to apply were compacted away (it lagged more than --etcd-compaction-interval "+
			"behind, or more than etcd's --auto-compaction-retention); restart it to load a fresh copy: %w", err)
	}
	return fmt.Errorf("etcd: this replica's copy of the store stopped following the leader: %w", err)
}

// apply makes one commit visible: the copy, then the cluster, then the
// jobs (a job's waiters wake up with the cluster the job changed).
func (m *mirror) apply(ctx context.Context, c etcdstore.Commit) error {
	if err := m.put(ctx, c.Changes); err != nil {
		return err
	}
	if len(c.Changes) > 0 {
		if _, err := m.model.Reload(ctx); err != nil {
			return err
		}
		if err := m.engine.Apply(c.Changes); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.applied = c.Rev
	close(m.notify)
	m.notify = make(chan struct{})
	m.mu.Unlock()
	return nil
}

func (m *mirror) rev() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applied
}

// Err is why the copy stopped following (nil while it follows).
func (m *mirror) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// waitRev returns once the copy holds revision rev.
func (m *mirror) waitRev(ctx context.Context, rev int64) error {
	for {
		m.mu.Lock()
		applied, err, stopped, ch := m.applied, m.err, m.stopped, m.notify
		m.mu.Unlock()
		switch {
		case applied >= rev:
			return nil
		case stopped:
			return errMirrorStopped
		case err != nil:
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stop ends the watch and the follower engine (its job watches end).
func (m *mirror) stop() {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	m.stopped = true
	close(m.notify)
	m.notify = make(chan struct{})
	m.mu.Unlock()
	m.cancel()
	<-m.done
	_ = m.engine.Stop(cancelled())
	_ = m.mem.Close()
}
