package etcdstore

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcd keeps every revision of every key (MVCC) until it is compacted:
// without compaction its history, and its database, grow with every
// commit. The leader compacts it as the Kubernetes apiserver does
// (k8s.io/apiserver/pkg/storage/etcd3/compact.go): every interval, it
// compacts to the revision it recorded at the previous interval, so that
// etcd keeps one to two intervals of history, enough for a follower's
// watch that lags behind (a watch that falls further behind is compacted
// away: the follower stops and its restart loads a fresh copy).
//
// Several compactors (a leader and a deposed one still stopping, or the
// gateways of other prefixes on the same etcd) coordinate with a
// compare-and-swap on the version of <prefix>meta/compact-rev: only the
// one whose compare succeeds compacts, the others learn the key's version
// and try again an interval later. A compaction is global to etcd; its
// revision is always at least an interval old, whoever made it.

// DefaultCompactionInterval is the interval of the compaction, the
// Kubernetes apiserver's default (--etcd-compaction-interval 5m).
const DefaultCompactionInterval = 5 * time.Minute

// Compactor compacts etcd's history periodically (StartCompactor).
type Compactor struct {
	s        *Store
	key      string
	interval time.Duration
	log      *slog.Logger
	cancel   context.CancelFunc
	done     chan struct{}

	mu        sync.Mutex
	compacted int64 // the last revision this compactor compacted to
}

// StartCompactor compacts etcd's history every interval (> 0) until ctx
// ends or Stop is called; the first compaction comes after two intervals
// (the first one records the revision to compact to). Failures are
// logged and tried again an interval later.
func (s *Store) StartCompactor(ctx context.Context, interval time.Duration, log *slog.Logger) *Compactor {
	ctx, cancel := context.WithCancel(ctx)
	c := &Compactor{s: s, key: s.compactKey(), interval: interval, log: log, cancel: cancel, done: make(chan struct{})}
	go c.run(ctx)
	return c
}

// compactKey is the key the compactors of s coordinate on.
func (s *Store) compactKey() string { return s.prefix + "meta/compact-rev" }

// Stop ends the compactor and waits for it.
func (c *Compactor) Stop() {
	c.cancel()
	<-c.done
}

// Compacted is the revision this compactor last compacted etcd to (0:
// none yet).
func (c *Compactor) Compacted() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.compacted
}

func (c *Compactor) run(ctx context.Context) {
	defer close(c.done)
	// version is the version of the key as this compactor last saw it,
	// rev the etcd revision to compact to at the next turn.
	var version, rev int64
	t := time.NewTimer(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, cur, compacted, err := c.step(ctx, version, rev)
		version, rev = next, cur
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			c.log.Warn("etcd: compacting the history failed; trying again at the next interval "+
				"(the etcd user needs the root role to compact; else turn this off with --etcd-compaction-interval 0 "+
				"and run etcd with --auto-compaction-retention)", "err", err)
		case compacted > 0:
			c.mu.Lock()
			c.compacted = compacted
			c.mu.Unlock()
			c.log.Debug("etcd: compacted the history", "revision", compacted)
		}
		t.Reset(c.interval)
	}
}

// step is one turn: when the key's version is still expect, it bumps it,
// recording the current revision, and compacts to rev (the revision
// recorded at the previous turn; 0: none); otherwise another compactor
// made this turn, and step returns the key's version. It returns the
// version to expect next, the etcd revision to compact to at the next
// turn, and the revision it compacted to (0: none). The key's value is
// informative only.
func (c *Compactor) step(ctx context.Context, expect, rev int64) (version, cur, compacted int64, err error) {
	resp, err := c.s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(c.key), "=", expect)).
		Then(clientv3.OpPut(c.key, strconv.FormatInt(rev, 10))).
		Else(clientv3.OpGet(c.key)).Commit()
	if err != nil {
		return expect, rev, 0, err
	}
	cur = resp.Header.Revision
	if !resp.Succeeded {
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
			version = kvs[0].Version
		}
		return version, cur, 0, nil
	}
	if rev == 0 {
		return expect + 1, cur, 0, nil
	}
	if _, err := c.s.cli.Compact(ctx, rev); err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			// etcd was compacted past rev already (its own
			// --auto-compaction-retention, or another compactor).
			return expect + 1, cur, 0, nil
		}
		return expect + 1, cur, 0, err
	}
	return expect + 1, cur, rev, nil
}
