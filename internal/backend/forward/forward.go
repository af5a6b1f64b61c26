// Package forward is the backend of a replica among several sharing one
// store (Store "etcd"): a decorator of backend.Backend that answers reads
// from this replica's own state and, while another replica leads, sends
// the writes (job submissions, cancellations, filter rule changes) to the
// leader over gRPC (the Replica service of this package, on the leader's
// one listener), then waits until the leader's commit is visible here
// before it answers, so that a client reads its own writes on any
// replica. The services are unaware of it.
//
// The replica-to-replica call carries the caller's origin (user, route,
// method) and idempotency key, and is authenticated with a secret the
// replicas share (Handler.Secret, Client.Secret).
package forward

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Remote sends the writes to the leader.
type Remote interface {
	Submit(ctx context.Context, ops []*rapiv2.OpCode, opt backend.SubmitOptions) (int64, error)
	Cancel(ctx context.Context, id int64) (bool, string, error)
	ReplaceFilter(ctx context.Context, uuid string, rule backend.FilterRuleSpec) (string, error)
	DeleteFilter(ctx context.Context, uuid string) error
}

// Config configures New.
type Config struct {
	// Remote reaches the leader (required).
	Remote Remote
	// Sync returns once every commit the store had when it was called is
	// visible in the local backend (required): a follower waits for it
	// before a read and after a forwarded write.
	Sync func(ctx context.Context) error
	// LeaderSync is Sync on the leader (optional): it returns once the
	// commits under way when it was called are visible locally, as they
	// may already be visible to the followers.
	LeaderSync func(ctx context.Context) error
	// Logger receives the causes of the failures that clients see as
	// Unavailable (default slog.Default()).
	Logger *slog.Logger
}

func (b *Backend) logger() *slog.Logger {
	if b.cfg.Logger != nil {
		return b.cfg.Logger
	}
	return slog.Default()
}

type role struct {
	local  backend.Backend
	leader bool
}

// Backend is the decorator. Its zero role (before Set) answers every call
// with Unavailable.
type Backend struct {
	cfg Config
	cur atomic.Pointer[role]
}

var (
	_ backend.Backend              = (*Backend)(nil)
	_ backend.Versioned            = (*Backend)(nil)
	_ backend.UnsupportedExplainer = (*Backend)(nil)
)

// New returns the decorator; Set gives it its local backend.
func New(cfg Config) *Backend { return &Backend{cfg: cfg} }

// Set makes local the backend of reads, and of writes too when leader.
func (b *Backend) Set(local backend.Backend, leader bool) {
	b.cur.Store(&role{local: local, leader: leader})
}

// Leader returns the local backend when this replica leads (the backend
// of the Replica service: a write forwarded to a replica that no longer
// leads is refused, never forwarded again).
func (b *Backend) Leader() (backend.Backend, bool) {
	r := b.cur.Load()
	if r == nil || !r.leader {
		return nil, false
	}
	return r.local, true
}

// IsLeader reports whether writes run here.
func (b *Backend) IsLeader() bool {
	r := b.cur.Load()
	return r != nil && r.leader
}

var errNotReady = errs.Unavailable("This replica is starting")

func (b *Backend) role() (*role, error) {
	r := b.cur.Load()
	if r == nil {
		return nil, errNotReady
	}
	return r, nil
}

// Reads: the local state. On a follower a read first waits until the
// copy holds every commit etcd held when the read began (Sync): reads are
// linearizable on every replica, and a write through one follower is
// seen by a read on another right after it returned.

func (b *Backend) read(ctx context.Context) (*role, error) {
	r, err := b.role()
	if err != nil {
		return r, err
	}
	if r.leader {
		if b.cfg.LeaderSync != nil {
			if err := b.cfg.LeaderSync(ctx); err != nil {
				return nil, err
			}
		}
		return r, nil
	}
	if err := b.sync(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (b *Backend) ClusterInfo(ctx context.Context) (map[string]any, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return r.local.ClusterInfo(ctx)
}

func (b *Backend) Names(ctx context.Context, resource string) ([]string, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return r.local.Names(ctx, resource)
}

func (b *Backend) Get(ctx context.Context, resource, name string, fields []string) ([]backend.Cell, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return r.local.Get(ctx, resource, name, fields)
}

func (b *Backend) Query(ctx context.Context, resource string, fields []string, filter any, lim backend.QueryLimits) (*backend.QueryResult, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return r.local.Query(ctx, resource, fields, filter, lim)
}

func (b *Backend) QueryFields(ctx context.Context, resource string, fields []string) ([]backend.FieldDef, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return r.local.QueryFields(ctx, resource, fields)
}

func (b *Backend) Tags(ctx context.Context, kind, name string) ([]string, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return r.local.Tags(ctx, kind, name)
}

func (b *Backend) NodeRole(ctx context.Context, name string) (string, error) {
	r, err := b.read(ctx)
	if err != nil {
		return "", err
	}
	return r.local.NodeRole(ctx, name)
}

func (b *Backend) InstanceConsole(ctx context.Context, name string) (map[string]any, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return r.local.InstanceConsole(ctx, name)
}

func (b *Backend) OSNames(ctx context.Context) ([]string, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return r.local.OSNames(ctx)
}

// StateVersion is the local backend's (backend.Versioned); a fresh value
// (nothing is reused) when it has none.
func (b *Backend) StateVersion(ctx context.Context) any {
	if r := b.cur.Load(); r != nil {
		if v, ok := r.local.(backend.Versioned); ok {
			return v.StateVersion(ctx)
		}
	}
	return new(byte)
}

func (b *Backend) Supports(opID string) bool {
	r := b.cur.Load()
	return r != nil && r.local.Supports(opID)
}

// Unsupported is the local backend's explanation (backend.UnsupportedExplainer).
func (b *Backend) Unsupported(opID string) error {
	if r := b.cur.Load(); r != nil {
		if x, ok := r.local.(backend.UnsupportedExplainer); ok {
			return x.Unsupported(opID)
		}
	}
	return errs.NotImplemented("Opcode %s is not implemented", opID)
}

func (b *Backend) Job(ctx context.Context, id int64) (*backend.Job, bool, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, false, err
	}
	return r.local.Job(ctx, id)
}

func (b *Backend) JobIDs(ctx context.Context) ([]int64, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return r.local.JobIDs(ctx)
}

func (b *Backend) Jobs(ctx context.Context) ([]*backend.Job, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return r.local.Jobs(ctx)
}

func (b *Backend) WaitForChange(ctx context.Context, id int64, fields []string, prevInfo []any, prevSerial int64,
	timeout time.Duration) ([]any, [][]any, bool, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	return r.local.WaitForChange(ctx, id, fields, prevInfo, prevSerial, timeout)
}

// Watch survives a change of role: when this replica takes the lead, its
// copy's watches end before the job did; the stream then goes on from
// the new local backend, without the snapshots the client already has.
func (b *Backend) Watch(ctx context.Context, id int64) (<-chan *backend.Job, error) {
	r, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	in, err := r.local.Watch(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make(chan *backend.Job)
	go b.relay(ctx, id, r, in, out)
	return out, nil
}

// relay copies the snapshots of in to out, then those of the next local
// backend's watch while the role changed under the previous one.
func (b *Backend) relay(ctx context.Context, id int64, r *role, in <-chan *backend.Job, out chan<- *backend.Job) {
	defer close(out)
	var last int64 = -1
	for {
		for j := range in {
			if j.Version <= last {
				continue // the new backend's first snapshot, already sent
			}
			select {
			case out <- j:
				last = j.Version
			case <-ctx.Done():
				return
			}
			if j.Finalized() {
				return
			}
		}
		// The watch ended before the job: the context ended, the queue
		// stopped (a failure: this replica stops serving), or the role
		// changed, which Set makes visible before the old backend stops.
		next := b.cur.Load()
		if ctx.Err() != nil || next == r {
			return
		}
		r = next
		if !r.leader && b.sync(ctx) != nil {
			return
		}
		var err error
		if in, err = r.local.Watch(ctx, id); err != nil {
			return
		}
	}
}

// Writes: local on the leader, else forwarded, then synced.

func (b *Backend) Submit(ctx context.Context, ops []*rapiv2.OpCode, opt backend.SubmitOptions) (int64, error) {
	r, err := b.role()
	if err != nil {
		return 0, err
	}
	if r.leader {
		return r.local.Submit(ctx, ops, opt)
	}
	if opt.Idempotency == nil {
		// The forwarded call may be retried (the leader changed, the
		// connection broke): a key of the replica's own makes a retry
		// return the job the first attempt created.
		opt.Idempotency = &backend.Idempotency{Scope: backend.OriginFrom(ctx).User, Key: autoKey(), Fingerprint: autoFingerprint}
	}
	id, err := b.cfg.Remote.Submit(ctx, ops, opt)
	if err != nil {
		return 0, err
	}
	return id, b.sync(ctx)
}

func (b *Backend) Cancel(ctx context.Context, id int64) (bool, string, error) {
	r, err := b.role()
	if err != nil {
		return false, "", err
	}
	if r.leader {
		return r.local.Cancel(ctx, id)
	}
	ok, msg, err := b.cfg.Remote.Cancel(ctx, id)
	if err != nil {
		return false, "", err
	}
	return ok, msg, b.sync(ctx)
}

func (b *Backend) ReplaceFilter(ctx context.Context, uuid string, rule backend.FilterRuleSpec) (string, error) {
	r, err := b.role()
	if err != nil {
		return "", err
	}
	if r.leader {
		return r.local.ReplaceFilter(ctx, uuid, rule)
	}
	if uuid == "" {
		uuid = newUUID() // a retry replaces the rule its first attempt added
	}
	out, err := b.cfg.Remote.ReplaceFilter(ctx, uuid, rule)
	if err != nil {
		return "", err
	}
	return out, b.sync(ctx)
}

func (b *Backend) DeleteFilter(ctx context.Context, uuid string) error {
	r, err := b.role()
	if err != nil {
		return err
	}
	if r.leader {
		return r.local.DeleteFilter(ctx, uuid)
	}
	if err := b.cfg.Remote.DeleteFilter(ctx, uuid); err != nil {
		return err
	}
	return b.sync(ctx)
}

// sync waits until the store's commits (a write just made included) are
// visible here; a failure is Unavailable.
func (b *Backend) sync(ctx context.Context) error {
	if err := b.cfg.Sync(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if e, ok := errors.AsType[*errs.Error](err); ok {
			return e
		}
		b.logger().Warn("replica: catching up with the store failed", "err", err)
		return errs.Unavailable("This replica could not catch up with the store")
	}
	return nil
}
