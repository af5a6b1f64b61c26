package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Watch delivers the changes committed from revision fromRev on (0: from
// the next commit), from one etcd watch on the store's prefix. As the
// other stores, it keeps no history: a fromRev at or below the current
// revision is store.ErrCompacted. A watch whose etcd watch fails (etcd
// compacted the revisions it needed, lost its leader) ends with an event
// whose Err wraps store.ErrCompacted or store.ErrCommit.
func (s *Store) Watch(ctx context.Context, fromRev int64) (<-chan store.Event, error) {
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
	t, err := s.begin(ctx)
	if err != nil {
		s.watches.Done()
		return nil, err
	}
	if fromRev == 0 {
		fromRev = t.rev + 1
	}
	if fromRev <= t.rev {
		s.watches.Done()
		return nil, fmt.Errorf("%w: watch from revision %d, the store is at %d", store.ErrCompacted, fromRev, t.rev)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(t.etcdRev+1))
	out := make(chan store.Event, s.buffer+1) // one slot for the event that ends it
	go func() {
		defer s.watches.Done()
		defer close(out)
		defer cancel()
		cur := t.rev
		dataPrefix := s.prefix + "data/"
		end := func(err error) { out <- store.Event{Rev: cur, Err: err} }
		for {
			resp, stop, err := s.nextWatch(ctx, wch)
			if err != nil {
				end(err)
			}
			if stop {
				return
			}
			for _, e := range resp.Events {
				k := string(e.Kv.Key)
				if k == s.metaKey {
					if e.Type == mvccpb.PUT {
						if cur, err = strconv.ParseInt(string(e.Kv.Value), 10, 64); err != nil {
							end(store.Corrupt("meta", "rev", err))
							return
						}
					}
					continue
				}
				rest, isData := strings.CutPrefix(k, dataPrefix)
				if !isData || cur < fromRev {
					continue
				}
				bucket, key, _ := strings.Cut(rest, "/")
				ev := store.Event{Bucket: bucket, Key: key, Rev: cur}
				if e.Type == mvccpb.DELETE {
					ev.Deleted = true
				} else {
					ev.Value = value(e.Kv.Value)
				}
				if len(out) >= s.buffer {
					end(store.ErrWatchOverflow)
					return
				}
				out <- ev
			}
		}
	}()
	return out, nil
}

// nextWatch receives the next response of the etcd watch wch. stop is true
// when the watch is over: ctx ended (err nil), the store closed, the
// channel closed or etcd answered an error (err says which, as the store's
// errors).
func (s *Store) nextWatch(ctx context.Context, wch clientv3.WatchChan) (resp clientv3.WatchResponse, stop bool, err error) {
	var ok bool
	select {
	case <-ctx.Done():
		return resp, true, nil
	case <-s.done:
		return resp, true, store.ErrClosed
	case resp, ok = <-wch:
	}
	switch {
	case !ok:
		if ctx.Err() != nil {
			return resp, true, nil
		}
		return resp, true, fmt.Errorf("%w: etcd watch ended", store.ErrCommit)
	case resp.Err() == nil:
		return resp, false, nil
	case errors.Is(resp.Err(), rpctypes.ErrCompacted):
		return resp, true, fmt.Errorf("%w: %v", store.ErrCompacted, resp.Err())
	default:
		return resp, true, fmt.Errorf("%w: etcd watch: %v", store.ErrCommit, resp.Err())
	}
}
