package etcdstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// A follower replica keeps a copy of the store in memory: Snapshot reads
// every record at one etcd revision, Follow then delivers every commit
// after it, whole, from one etcd watch. It is the store's Watch grouped by
// commit (a follower must know when a commit is complete to tell that a
// revision is visible) and started at the snapshot's etcd revision (the
// store's Watch cannot start in the past).

// Snapshot is every record of the store at one revision.
type Snapshot struct {
	// Rev is the store's revision.
	Rev int64
	// Records are Put events (Bucket, Key, Value; Rev is Rev).
	Records []store.Event
	etcdRev int64
}

// Commit is one commit of the store: its revision and its changes (none
// for an Update that wrote nothing). Err, when set, ends the stream (the
// etcd watch failed or was compacted, the store closed): the follower is
// no longer up to date.
type Commit struct {
	Rev     int64
	Changes []store.Event
	Err     error
}

// Snapshot reads the whole store at one etcd revision.
func (s *Store) Snapshot(ctx context.Context) (*Snapshot, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	t, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	dataPrefix := s.prefix + "data/"
	resp, err := s.cli.Get(ctx, dataPrefix, clientv3.WithPrefix(), clientv3.WithRev(t.etcdRev))
	if err != nil {
		return nil, t.readErr(err)
	}
	snap := &Snapshot{Rev: t.rev, etcdRev: t.etcdRev, Records: make([]store.Event, 0, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		bucket, key, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), dataPrefix), "/")
		snap.Records = append(snap.Records, store.Event{Bucket: bucket, Key: key, Value: value(kv.Value), Rev: t.rev})
	}
	return snap, nil
}

// Follow delivers every commit after snap, in order, each whole, until
// ctx ends (the channel is then closed) or the watch fails (a last Commit
// with Err, then the channel is closed). A reader that does not keep up
// holds the etcd watch back; nothing is dropped.
func (s *Store) Follow(ctx context.Context, snap *Snapshot) (<-chan Commit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.watches.Add(1)
	}
	s.mu.Unlock()
	if closed {
		return nil, store.ErrClosed
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(snap.etcdRev+1))
	out := make(chan Commit, 64)
	go func() {
		defer s.watches.Done()
		defer close(out)
		defer cancel()
		cur := snap.Rev
		dataPrefix := s.prefix + "data/"
		send := func(c Commit) bool {
			select {
			case out <- c:
				return true
			case <-ctx.Done():
				return false
			case <-s.done:
				return false
			}
		}
		end := func(err error) {
			select {
			case out <- Commit{Rev: cur, Err: err}:
			case <-ctx.Done():
			}
		}
		for {
			resp, stop, err := s.nextWatch(ctx, wch)
			if err != nil {
				end(err)
			}
			if stop {
				return
			}
			// A response holds whole etcd revisions; a commit's meta/rev
			// put comes first, then its writes.
			var pending *Commit
			for _, e := range resp.Events {
				k := string(e.Kv.Key)
				if k == s.metaKey {
					if e.Type != mvccpb.PUT {
						continue
					}
					rev, err := strconv.ParseInt(string(e.Kv.Value), 10, 64)
					if err != nil {
						end(store.Corrupt("meta", "rev", err))
						return
					}
					if pending != nil && !send(*pending) {
						return
					}
					cur = rev
					pending = &Commit{Rev: rev}
					continue
				}
				rest, isData := strings.CutPrefix(k, dataPrefix)
				if !isData || pending == nil {
					continue
				}
				bucket, key, _ := strings.Cut(rest, "/")
				ev := store.Event{Bucket: bucket, Key: key, Rev: cur}
				if e.Type == mvccpb.DELETE {
					ev.Deleted = true
				} else {
					ev.Value = value(e.Kv.Value)
				}
				pending.Changes = append(pending.Changes, ev)
			}
			if pending != nil && !send(*pending) {
				return
			}
		}
	}()
	return out, nil
}

// SharedSecret returns the secret the replicas of this store share
// (<prefix>meta/replica-secret), creating it (random, 32 bytes) when
// absent: replicas authenticate to each other with it. Whoever can read
// the store's keys can use it, and can change the store anyway.
func (s *Store) SharedSecret(ctx context.Context) ([]byte, error) {
	key := s.prefix + "meta/replica-secret"
	fresh := rand.Text() + rand.Text()
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, fresh)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcdstore: replica secret: %w", err)
	}
	if resp.Succeeded {
		return []byte(fresh), nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) != 1 || len(kvs[0].Value) < 32 {
		return nil, store.Corrupt("meta", "replica-secret", errors.New("missing or too short"))
	}
	return value(kvs[0].Value), nil
}
