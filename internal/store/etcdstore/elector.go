package etcdstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// DefaultLeaseTTL is the lease of a leader, in seconds: a leader cut off
// from etcd loses the leadership (and another replica may win) after it.
const DefaultLeaseTTL = 10

// Elector elects the leader among the replicas sharing a Store, with an
// etcd lease and concurrency.Election under <prefix>leader/. Winning sets
// the store's fence: every later commit of that store compares the create
// revision of this replica's leader key, in its own transaction.
type Elector struct {
	s   *Store
	id  string
	ttl int

	mu       sync.Mutex
	sess     *Lease
	election *concurrency.Election
	cancel   context.CancelFunc
	// pending is the lease of a campaign not won yet (Session).
	pending *Lease
}

// Lease is a replica's etcd session. Its Done is closed when the lease
// could not be renewed within its TTL (the etcd client checks once a
// second, so up to a second after it expired), or the session ended.
// ValidUntil tells earlier, and exactly, until when etcd holds it.
type Lease struct {
	*concurrency.Session
	// TTL is the lease's time to live as etcd granted it (etcd raises
	// one below its minimum, about 1.5 election timeouts).
	TTL time.Duration
	// until is ValidUntil, in Unix nanoseconds.
	until atomic.Int64
}

// ValidUntil is a time before which etcd holds the lease for certain:
// when the last renewal that etcd confirmed was sent, plus the TTL. (The
// etcd client's own deadline counts from the answer's arrival, with
// several renewals in flight, and it checks it once a second.) It may
// pass while etcd still holds the lease (renewals lost, or etcd electing
// its leader, which extends the leases): a later renewal moves it on.
func (l *Lease) ValidUntil() time.Time { return time.Unix(0, l.until.Load()) }

// confirm renews the lease every quarter of its TTL, one renewal at a
// time on a stream of its own, ka (the session renews it too, every
// third, without telling when it sent what), and records in until what
// etcd confirmed, until the session ends. A renewal without an answer
// within the quarter closes the stream; the next one opens another
// (within the TTL: with etcd auth, a stream costs an authentication).
func (l *Lease) confirm(ka *keepAlive) {
	every := max(l.TTL/4, 100*time.Millisecond)
	defer func() { ka.close() }()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.Done():
			return
		case <-t.C:
		}
		if ka == nil {
			ka = openKeepAlive(l.Ctx(), l.Client(), l.TTL)
			if ka == nil {
				continue
			}
		}
		sent := time.Now()
		ttl, err := ka.renew(clientv3.LeaseID(l.Lease()), every)
		if err != nil {
			ka.close()
			ka = nil
			continue
		}
		if ttl > 0 {
			l.extend(sent.Add(ttl))
		}
	}
}

// extend moves until to t, if later.
func (l *Lease) extend(t time.Time) {
	for {
		old := l.until.Load()
		if t.UnixNano() <= old || l.until.CompareAndSwap(old, t.UnixNano()) {
			return
		}
	}
}

// keepAlive is a lease keep-alive stream with one request at a time.
type keepAlive struct {
	stream pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc
}

// openKeepAlive opens a stream on cli's connection (nil: not within
// timeout).
func openKeepAlive(ctx context.Context, cli *clientv3.Client, timeout time.Duration) *keepAlive {
	ctx, cancel := context.WithCancel(ctx)
	late := time.AfterFunc(timeout, cancel)
	stream, err := pb.NewLeaseClient(cli.ActiveConnection()).LeaseKeepAlive(ctx)
	if !late.Stop() || err != nil {
		cancel()
		return nil
	}
	return &keepAlive{stream: stream, cancel: cancel}
}

// renew renews lease once and returns the TTL etcd answered (0: the
// lease is gone); an error when there is no answer within timeout.
func (k *keepAlive) renew(lease clientv3.LeaseID, timeout time.Duration) (time.Duration, error) {
	late := time.AfterFunc(timeout, k.cancel)
	defer late.Stop()
	if err := k.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(lease)}); err != nil {
		return 0, err
	}
	resp, err := k.stream.Recv()
	if err != nil {
		return 0, err
	}
	if resp.ID != int64(lease) {
		return 0, errors.New("etcd: a keep-alive answer for another lease")
	}
	return time.Duration(max(resp.TTL, 0)) * time.Second, nil
}

func (k *keepAlive) close() {
	if k != nil {
		k.cancel()
	}
}

// Session returns the lease of this replica's campaign, created on first
// use: its Done channel is closed when the lease could not be renewed
// within its TTL (this replica is cut off from etcd), leader or not.
func (e *Elector) Session(ctx context.Context) (*Lease, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending != nil {
		select {
		case <-e.pending.Done():
		default:
			return e.pending, nil
		}
	}
	sctx := context.WithoutCancel(ctx)
	// The stream of confirm, opened first: opening it may take long (an
	// authentication, with etcd auth).
	ka := openKeepAlive(sctx, e.s.cli, time.Duration(e.ttl)*time.Second)
	granting := time.Now()
	sess, err := concurrency.NewSession(e.s.cli, concurrency.WithTTL(e.ttl), concurrency.WithContext(sctx))
	if err != nil {
		ka.close()
		return nil, err
	}
	// The TTL etcd granted (it may raise a short one).
	granted, err := e.s.cli.TimeToLive(ctx, sess.Lease())
	if err != nil {
		ka.close()
		_ = sess.Close()
		return nil, err
	}
	l := &Lease{Session: sess, TTL: time.Duration(granted.GrantedTTL) * time.Second}
	l.extend(granting.Add(l.TTL))
	go l.confirm(ka)
	e.pending = l
	return l, nil
}

// Leader returns the value (the id given to NewElector) of the current
// leader; ErrNoLeader when there is none.
func (e *Elector) Leader(ctx context.Context) (string, error) {
	v, _, err := e.LeaderLease(ctx)
	return v, err
}

// LeaderLease returns the value of the current leader and its lease;
// ErrNoLeader when there is none.
func (e *Elector) LeaderLease(ctx context.Context) (string, int64, error) {
	resp, err := e.s.cli.Get(ctx, e.s.prefix+"leader/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", 0, err
	}
	if len(resp.Kvs) == 0 {
		return "", 0, ErrNoLeader
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].Lease, nil
}

// Depose ends the leadership held under lease, at once rather than when
// the lease expires: it revokes the lease, which deletes the leader's key
// (the next candidate wins; the deposed leader's commits are refused by
// the fence). For a leader known to be gone; a lease already gone is not
// an error.
func (e *Elector) Depose(ctx context.Context, lease int64) error {
	_, err := e.s.cli.Revoke(ctx, clientv3.LeaseID(lease))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}

// ErrNoLeader is Leader's answer when no replica leads.
var ErrNoLeader = errors.New("etcd: no replica leads")

var _ store.Elector = (*Elector)(nil)

// NewElector returns the elector of s; id names this replica (the leader
// key's value), ttl is the lease in seconds (<= 0: DefaultLeaseTTL).
func NewElector(s *Store, id string, ttl int) *Elector {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	return &Elector{s: s, id: id, ttl: ttl}
}

// Campaign blocks until this replica leads. The context it returns ends
// when the lease is lost (not renewed within its TTL), the leader key is
// deleted, or Resign is called.
func (e *Elector) Campaign(ctx context.Context) (context.Context, error) {
	sess, err := e.Session(ctx)
	if err != nil {
		return nil, err
	}
	el := concurrency.NewElection(sess.Session, e.s.prefix+"leader/")
	err = el.Campaign(ctx, e.id)
	for errors.Is(err, rpctypes.ErrCompacted) && ctx.Err() == nil {
		// The watch on the candidate before this one resumed (after a
		// lost connection) at a revision the compaction removed
		// (Compactor): campaign again, with the same key.
		err = el.Campaign(ctx, e.id)
	}
	if err != nil {
		e.mu.Lock()
		if e.pending == sess {
			e.pending = nil
		}
		e.mu.Unlock()
		_ = sess.Close()
		return nil, err
	}
	e.s.setFence(clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev()))
	lead, cancel := context.WithCancel(ctx)
	e.mu.Lock()
	if e.cancel != nil {
		e.cancel()
	}
	e.sess, e.election, e.cancel = sess, el, cancel
	if e.pending == sess {
		e.pending = nil
	}
	e.mu.Unlock()
	go func() {
		defer cancel()
		wch := e.s.cli.Watch(lead, el.Key(), clientv3.WithRev(el.Rev()+1))
		for {
			select {
			case <-lead.Done():
				return
			case <-sess.Done():
				return
			case resp, ok := <-wch:
				if ok && errors.Is(resp.Err(), rpctypes.ErrCompacted) {
					// The watch resumed (after a lost connection) at a
					// revision the compaction removed: the key, read
					// now, tells whether this replica still leads.
					if wch = e.rewatch(lead, el); wch != nil {
						continue
					}
					return
				}
				if !ok || resp.Err() != nil {
					return
				}
				for _, ev := range resp.Events {
					if ev.Type == clientv3.EventTypeDelete {
						return
					}
				}
			}
		}
	}()
	return lead, nil
}

// Proclaim changes the value of this replica's key while it leads (a
// no-op when it does not); the commit is fenced like every other.
func (e *Elector) Proclaim(ctx context.Context, value string) error {
	e.mu.Lock()
	el := e.election
	e.mu.Unlock()
	if el == nil {
		return nil
	}
	return el.Proclaim(ctx, value)
}

// rewatch watches the leader key of el from now on, if it is still the
// key el won with (nil: it is not, or etcd could not be read within the
// lease).
func (e *Elector) rewatch(ctx context.Context, el *concurrency.Election) clientv3.WatchChan {
	rctx, cancel := context.WithTimeout(ctx, time.Duration(e.ttl)*time.Second)
	defer cancel()
	resp, err := e.s.cli.Get(rctx, el.Key())
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != el.Rev() {
		return nil
	}
	return e.s.cli.Watch(ctx, el.Key(), clientv3.WithRev(resp.Header.Revision+1))
}

// Resign deletes the leader key and revokes the lease.
func (e *Elector) Resign(ctx context.Context) error {
	e.mu.Lock()
	sess, el, cancel := e.sess, e.election, e.cancel
	e.sess, e.election, e.cancel = nil, nil, nil
	e.mu.Unlock()
	if sess == nil {
		e.mu.Lock()
		pending := e.pending
		e.pending = nil
		e.mu.Unlock()
		if pending != nil {
			return pending.end(ctx)
		}
		return nil
	}
	cancel()
	return errors.Join(el.Resign(ctx), sess.end(ctx))
}

// end stops renewing the lease and revokes it, within ctx (Session.Close
// gives the revocation the whole TTL).
func (l *Lease) end(ctx context.Context) error {
	l.Orphan()
	_, err := l.Client().Revoke(ctx, l.Lease())
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}
