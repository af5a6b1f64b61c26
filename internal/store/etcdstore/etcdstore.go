// Package etcdstore is a store.Store on etcd, shared by several replicas.
//
// Layout, under a versioned prefix (default /ganeti-gateway/v1/):
//
//	<prefix>data/<bucket>/<key>  one etcd key per object
//	<prefix>meta/rev             the store's revision (decimal)
//	<prefix>leader/...           the election (Elector)
//
// Every Update is one etcd transaction: it puts meta/rev (the store's
// revision plus one) and its writes, guarded by a compare on the mod
// revision of meta/rev as the transaction read it. A concurrent commit
// makes the compare fail and fn runs again on a fresh snapshot (the store
// contract allows it), so Updates are serializable. Reads of a
// transaction are at the etcd revision where it read meta/rev: one
// consistent snapshot.
//
// The store's revision is a counter of its own and not the etcd revision,
// which other keys (leases, the election) also move: the contract wants
// exactly one per commit.
//
// Once an Elector of this store won, every commit also carries the fence:
// a compare on the create revision of its leader key, in the same
// transaction, so a deposed leader's commit is refused (store.ErrFenced).
//
// A commit whose outcome etcd leaves unknown (no answer in time, the
// member it went to died or lost its leader) is resolved rather than
// reported: a second transaction, under the same guards, puts meta/rev
// and meta/resolved at once. Exactly one of the two can succeed, as both
// compare the mod revision of meta/rev; the one that did is known from
// meta/resolved's mod revision. The first succeeded: the Update returns
// nil. The resolution did (an empty commit): the first can never apply,
// and fn runs again. Only when etcd answers neither within the request
// timeout is the commit reported as failed (store.ErrCommit).
//
// Differences from the single-process stores: a watch does not report the
// Delete of an absent key (etcd has no such event), and a key written
// more than once by one transaction is reported once, with its last
// value (etcd refuses a transaction that writes a key twice).
package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// DefaultPrefix is the prefix of the store's keys; v1 is the layout's
// version.
const DefaultPrefix = "/ganeti-gateway/v1/"

// DefaultLimits fit etcd's default bounds of one transaction
// (--max-txn-ops 128, one of which is meta/rev; --max-request-bytes
// 1.5 MiB, of which 1 MiB for keys and values leaves room for the
// prefixes and the request's framing).
var DefaultLimits = store.Limits{MaxOps: 127, MaxBytes: 1 << 20}

// Config configures New.
type Config struct {
	// Client is the etcd client; the store does not close it.
	Client *clientv3.Client
	// Prefix of every key (default DefaultPrefix); it must end with "/".
	Prefix string
	// Limits of one Update (default DefaultLimits): MaxOps must be below
	// the server's --max-txn-ops, MaxBytes well below --max-request-bytes.
	Limits store.Limits
	// WatchBuffer is how many events a watcher may fall behind (default
	// store.DefaultWatchBuffer).
	WatchBuffer int
	// RequestTimeout bounds a transaction (View, Update) whose context
	// has no deadline (default DefaultRequestTimeout): without one, the
	// etcd client waits for a member to answer, forever while none can.
	RequestTimeout time.Duration
}

// forEachPage is how many keys ForEach reads from etcd at a time: a
// bucket of any size is scanned in bounded memory, and a scan that stops
// early reads no more than it needs.
const forEachPage = 500

// DefaultRequestTimeout is the default Config.RequestTimeout: about
// etcd's own request timeout (5 s and two election timeouts), after which
// a commit's outcome is unknown anyway.
const DefaultRequestTimeout = 5 * time.Second

// Store is a store.Store on etcd.
type Store struct {
	cli     *clientv3.Client
	prefix  string
	metaKey string
	// resolvedKey is put with meta/rev by the resolution of a commit
	// whose outcome is unknown.
	resolvedKey string
	// page is how many keys ForEach reads at a time (forEachPage).
	page    int
	limits  store.Limits
	buffer  int
	timeout time.Duration
	fence   atomic.Pointer[clientv3.Cmp]
	// head is where this store's last commit left the store: the next
	// Update starts from it without reading meta/rev first (one round
	// trip less per commit of the one writer). Its compare on meta/rev
	// still refuses a commit when another came in between.
	head atomic.Pointer[head]
	// fault, for tests, makes the outcome of the next commits unknown
	// (faults.go).
	fault atomic.Pointer[func() CommitFault]

	mu      sync.Mutex // guards closed and watches
	closed  bool
	done    chan struct{} // closed by Close: ends the watches
	watches sync.WaitGroup
}

var _ store.Store = (*Store)(nil)

// New returns the store on cfg.Client.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("etcdstore: no client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("etcdstore: prefix %q does not end with /", cfg.Prefix)
	}
	if cfg.Limits == (store.Limits{}) {
		cfg.Limits = DefaultLimits
	}
	if cfg.WatchBuffer <= 0 {
		cfg.WatchBuffer = store.DefaultWatchBuffer
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	return &Store{
		cli: cfg.Client, prefix: cfg.Prefix, metaKey: cfg.Prefix + "meta/rev", resolvedKey: cfg.Prefix + "meta/resolved", page: forEachPage,
		limits: cfg.Limits.OrDefault(), buffer: cfg.WatchBuffer, timeout: cfg.RequestTimeout, done: make(chan struct{}),
	}, nil
}

// Limits returns the store's transaction limits.
func (s *Store) Limits() store.Limits { return s.limits }

// Client returns the store's etcd client.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Prefix returns the prefix of the store's keys.
func (s *Store) Prefix() string { return s.prefix }

// setFence makes every later commit conditional on cmp (the leadership
// of an Elector). It is never cleared: a deposed leader keeps a fence that
// fails.
func (s *Store) setFence(cmp clientv3.Cmp) { s.fence.Store(&cmp) }

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Store) dataPrefix(bucket string) string { return s.prefix + "data/" + bucket + "/" }

func checkBucket(bucket string) error {
	if bucket == "" {
		return store.ErrEmptyName
	}
	if strings.Contains(bucket, "/") {
		return fmt.Errorf("etcdstore: bucket name %q contains /", bucket)
	}
	return nil
}

// begin reads meta/rev: the store's revision, the mod revision of
// meta/rev (0 when absent) and the etcd revision of the snapshot.
func (s *Store) begin(ctx context.Context) (*tx, error) {
	resp, err := s.cli.Get(ctx, s.metaKey)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("etcdstore: read: %w", err)
	}
	t := &tx{s: s, ctx: ctx, etcdRev: resp.Header.Revision}
	if len(resp.Kvs) == 1 {
		kv := resp.Kvs[0]
		t.metaMod = kv.ModRevision
		if t.rev, err = strconv.ParseInt(string(kv.Value), 10, 64); err != nil {
			return nil, store.Corrupt("meta", "rev", err)
		}
	}
	return t, nil
}

// head is a store revision, the mod revision of meta/rev, and the etcd
// revision it was read at (tx); written holds what this store's commits
// up to it wrote, so that a transaction started from it reads those keys
// without asking etcd (the commit's compare refuses it when another
// writer came in between, and it runs again from a read).
type head struct {
	rev, metaMod, etcdRev int64
	written               *layer
}

// layer is the writes of one commit (full key -> value, nil: deleted) on
// top of the earlier ones; immutable once in a head.
type layer struct {
	writes map[string][]byte
	below  *layer
	depth  int
}

// maxLayers bounds the commits a head remembers (a read walks them).
const maxLayers = 64

// lookup returns the value the last commit that wrote key left, and
// whether one did.
func (l *layer) lookup(key string) ([]byte, bool) {
	for ; l != nil; l = l.below {
		if v, ok := l.writes[key]; ok {
			return v, true
		}
	}
	return nil, false
}

// on puts writes on top of l (a new chain once maxLayers are reached).
func (l *layer) on(writes map[string][]byte) *layer {
	if l == nil || l.depth >= maxLayers {
		return &layer{writes: writes, depth: 1}
	}
	return &layer{writes: writes, below: l, depth: l.depth + 1}
}

// beginUpdate starts a write transaction from the last commit's head,
// else from a read (begin).
func (s *Store) beginUpdate(ctx context.Context) (*tx, error) {
	if h := s.head.Load(); h != nil {
		return &tx{s: s, ctx: ctx, rev: h.rev, metaMod: h.metaMod, etcdRev: h.etcdRev, head: h}, nil
	}
	return s.begin(ctx)
}

// bound gives ctx the request timeout when it has no deadline.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// View runs fn on the snapshot of the store's latest revision.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.isClosed() {
		return store.ErrClosed
	}
	t, err := s.begin(ctx)
	if err != nil {
		return err
	}
	return fn(t)
}

// Update runs fn and commits its writes in one etcd transaction, running
// fn again when another commit came first.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	for {
		if s.isClosed() {
			return store.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		t, err := s.beginUpdate(ctx)
		if err != nil {
			return err
		}
		t.writable = true
		t.pending = map[string][]byte{}
		t.budget = store.NewBudget(s.limits)
		if err := fn(t); err != nil {
			if t.head != nil && t.compacted {
				// The head's revision was compacted away (no commit for
				// a compaction interval): start again from a read.
				s.head.Store(nil)
				continue
			}
			return err
		}
		if err := t.budget.Err(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.isClosed() {
			return store.ErrClosed
		}
		etcdRev, err := s.commit(ctx, t)
		if err != nil && outcomeUnknown(err) {
			etcdRev, err = s.resolve(t, err)
		}
		if err != nil || etcdRev == 0 {
			s.head.Store(nil)
		} else {
			var below *layer
			if t.head != nil {
				below = t.head.written
			}
			s.head.Store(&head{rev: t.rev + 1, metaMod: etcdRev, etcdRev: etcdRev, written: below.on(t.pending)})
		}
		if err != nil {
			return err
		}
		if etcdRev != 0 {
			return nil
		}
		// Another commit came first: run fn again.
	}
}

// commitAttemptTime bounds how long a commit waits for etcd's answer
// before it is resolved (resolve): a member whose etcd leader died holds
// the proposals it forwarded until its own request timeout (5 s and two
// election timeouts).
const commitAttemptTime = 2 * time.Second

// commit sends t's writes and returns the etcd revision of the commit;
// 0: the compare on meta/rev failed.
func (s *Store) commit(ctx context.Context, t *tx) (int64, error) {
	ops := make([]clientv3.Op, 0, len(t.order)+1)
	ops = append(ops, clientv3.OpPut(s.metaKey, strconv.FormatInt(t.rev+1, 10)))
	for _, k := range t.order {
		if v := t.pending[k]; v == nil {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			ops = append(ops, clientv3.OpPut(k, string(v)))
		}
	}
	f := s.faultNow()
	if f == FaultBefore {
		return 0, errFault
	}
	actx, cancel := context.WithTimeout(ctx, commitAttemptTime)
	defer cancel()
	rev, _, err := s.guardedTxn(actx, t.metaMod, ops, nil)
	if f == FaultAfter && err == nil {
		return 0, errFault
	}
	switch {
	case errors.Is(err, rpctypes.ErrTooManyOps), errors.Is(err, rpctypes.ErrRequestTooLarge):
		return 0, fmt.Errorf("%w: etcd: %v", store.ErrTxTooLarge, err)
	case err != nil:
		return 0, err
	}
	return rev, nil
}

// guardedTxn runs ops (else: elseOps) when meta/rev's mod revision is
// metaMod, under the fence if one is set. It returns the commit's etcd
// revision, 0 when the compare on meta/rev failed (with the answers of
// elseOps), store.ErrFenced when the fence's did.
func (s *Store) guardedTxn(ctx context.Context, metaMod int64, ops, elseOps []clientv3.Op) (int64, []*etcdserverpb.ResponseOp, error) {
	guard := clientv3.Compare(clientv3.ModRevision(s.metaKey), "=", metaMod)
	fence := s.fence.Load()
	if fence == nil {
		resp, err := s.cli.Txn(ctx).If(guard).Then(ops...).Else(elseOps...).Commit()
		switch {
		case err != nil:
			return 0, nil, err
		case !resp.Succeeded:
			return 0, resp.Responses, nil
		}
		return resp.Header.Revision, nil, nil
	}
	resp, err := s.cli.Txn(ctx).If(*fence).Then(clientv3.OpTxn([]clientv3.Cmp{guard}, ops, elseOps)).Commit()
	switch {
	case err != nil:
		return 0, nil, err
	case !resp.Succeeded:
		return 0, nil, store.ErrFenced
	case !resp.Responses[0].GetResponseTxn().Succeeded:
		return 0, resp.Responses[0].GetResponseTxn().Responses, nil
	}
	return resp.Header.Revision, nil, nil
}

// outcomeUnknown tells whether a commit that failed with err may have
// been applied: etcd did not answer, not that it refused.
func outcomeUnknown(err error) bool {
	if errors.Is(err, store.ErrFenced) || errors.Is(err, store.ErrTxTooLarge) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, errFault) {
		return true
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	} else {
		return true
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal, codes.Aborted:
		return true
	}
	return false
}

// resolve finds out whether t's commit, whose outcome is unknown (cause),
// was applied (its etcd revision), or never will be (0: run fn again),
// within the request timeout and while the store is open; else it
// reports the commit as failed.
func (s *Store) resolve(t *tx, cause error) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	mark := strconv.FormatInt(t.rev+1, 10)
	ops := []clientv3.Op{clientv3.OpPut(s.metaKey, mark), clientv3.OpPut(s.resolvedKey, mark)}
	read := []clientv3.Op{clientv3.OpGet(s.metaKey), clientv3.OpGet(s.resolvedKey)}
	pause := 50 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, commitAttemptTime)
		rev, got, err := s.guardedTxn(actx, t.metaMod, ops, read)
		acancel()
		switch {
		case errors.Is(err, store.ErrFenced):
			return 0, err
		case err == nil && rev != 0:
			return 0, nil // resolved: the commit can no longer apply
		case err == nil:
			return s.resolved(got, mark, cause)
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%w: etcd: %v (unresolved: %v)", store.ErrCommit, cause, err)
		}
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
		case <-timer.C:
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// resolved reads the outcome from meta/rev and meta/resolved after the
// resolution's compare failed: meta/rev moved, by the commit (its etcd
// revision) or by an earlier attempt of the resolution (0).
func (s *Store) resolved(got []*etcdserverpb.ResponseOp, mark string, cause error) (int64, error) {
	var meta, res *mvccpb.KeyValue
	if len(got) == 2 {
		if kvs := got[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
			meta = kvs[0]
		}
		if kvs := got[1].GetResponseRange().GetKvs(); len(kvs) == 1 {
			res = kvs[0]
		}
	}
	switch {
	case meta == nil || string(meta.Value) != mark:
		// Another writer committed (no fence): the outcome stays unknown.
		return 0, fmt.Errorf("%w: etcd: %v (another commit came in between)", store.ErrCommit, cause)
	case res != nil && res.ModRevision == meta.ModRevision:
		return 0, nil
	}
	return meta.ModRevision, nil
}

// Close ends the watches (with store.ErrClosed) and makes later calls fail
// with store.ErrClosed. It does not close the etcd client.
func (s *Store) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.watches.Wait()
	return nil
}

// tx is a transaction: reads at etcdRev, writes buffered until commit.
type tx struct {
	s        *Store
	ctx      context.Context
	rev      int64 // the store's revision
	metaMod  int64 // mod revision of meta/rev, 0 when absent
	etcdRev  int64 // the snapshot read
	writable bool
	pending  map[string][]byte // full key -> value (nil: deleted)
	order    []string          // keys of pending, in first-write order
	budget   store.Budget
	// head: the snapshot is the store's last commit (beginUpdate);
	// compacted: a read found it compacted away.
	head      *head
	compacted bool
}

func (t *tx) Revision() int64 { return t.rev }

func (t *tx) Get(bucket, key string) ([]byte, error) {
	if err := store.CheckNames(bucket, key); err != nil {
		return nil, err
	}
	if err := checkBucket(bucket); err != nil {
		return nil, err
	}
	k := t.s.dataPrefix(bucket) + key
	if v, ok := t.pending[k]; ok {
		if v == nil {
			return nil, nil
		}
		return append([]byte{}, v...), nil
	}
	if t.head != nil {
		if v, ok := t.head.written.lookup(k); ok {
			if v == nil {
				return nil, nil
			}
			return value(v), nil
		}
	}
	resp, err := t.s.cli.Get(t.ctx, k, clientv3.WithRev(t.etcdRev))
	if err != nil {
		return nil, t.readErr(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return value(resp.Kvs[0].Value), nil
}

func (t *tx) readErr(err error) error {
	if t.ctx.Err() != nil {
		return t.ctx.Err()
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		t.compacted = true
	}
	return fmt.Errorf("etcdstore: read: %w", err)
}

// value returns v as a non-nil slice the caller owns.
func value(v []byte) []byte { return append(make([]byte, 0, len(v)), v...) }

func (t *tx) write(bucket, key string, val []byte, size int) error {
	if err := store.CheckNames(bucket, key); err != nil {
		return err
	}
	if err := checkBucket(bucket); err != nil {
		return err
	}
	if !t.writable {
		return store.ErrReadOnly
	}
	if err := t.budget.Add(size); err != nil {
		return err
	}
	k := t.s.dataPrefix(bucket) + key
	if _, ok := t.pending[k]; !ok {
		t.order = append(t.order, k)
	}
	t.pending[k] = val
	return nil
}

func (t *tx) Put(bucket, key string, val []byte) error {
	return t.write(bucket, key, value(val), len(key)+len(val))
}

func (t *tx) Delete(bucket, key string) error { return t.write(bucket, key, nil, 0) }

func (t *tx) ForEach(bucket string, fn func(key string, val []byte) error) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	p := t.s.dataPrefix(bucket)
	// The transaction's own writes in the bucket, in key order, merged
	// into each page.
	var pending []string
	for _, k := range t.order {
		if strings.HasPrefix(k, p) {
			pending = append(pending, k)
		}
	}
	slices.Sort(pending)
	emit := func(k string, v []byte) error { return fn(strings.TrimPrefix(k, p), value(v)) }
	end := clientv3.GetPrefixRangeEnd(p)
	from := p
	for {
		resp, err := t.s.cli.Get(t.ctx, from, clientv3.WithRange(end), clientv3.WithRev(t.etcdRev),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(int64(t.s.page)))
		if err != nil {
			return t.readErr(err)
		}
		// This page covers the keys from from up to upTo (excluded).
		upTo := end
		if resp.More && len(resp.Kvs) > 0 {
			upTo = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
		var mine []string
		for len(pending) > 0 && pending[0] < upTo {
			mine, pending = append(mine, pending[0]), pending[1:]
		}
		for _, kv := range resp.Kvs {
			k := string(kv.Key)
			for len(mine) > 0 && mine[0] <= k {
				m := mine[0]
				mine = mine[1:]
				if v := t.pending[m]; v != nil && m != k {
					if err := emit(m, v); err != nil {
						return err
					}
				}
			}
			v := kv.Value
			if pv, ok := t.pending[k]; ok {
				if pv == nil {
					continue
				}
				v = pv
			}
			if err := emit(k, v); err != nil {
				return err
			}
		}
		for _, m := range mine {
			if v := t.pending[m]; v != nil {
				if err := emit(m, v); err != nil {
					return err
				}
			}
		}
		if !resp.More {
			return nil
		}
		from = upTo
	}
}
