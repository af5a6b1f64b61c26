package store

import "fmt"

// Limits bound one Update, as etcd bounds a transaction (--max-txn-ops,
// default 128, and --max-request-bytes, default 1.5 MiB). Ours are larger
// because one transaction seeds a whole cluster and the job engine's group
// commit writes every pending job record at once; they exist so that a
// store whose replicas must agree on each transaction (etcd, Raft) is
// never handed one it cannot take.
type Limits struct {
	// MaxOps is the most Puts and Deletes one Update may make.
	MaxOps int
	// MaxBytes is the most bytes (keys and values) its Puts may write.
	MaxBytes int64
}

// DefaultLimits are the limits of a store opened without others, chosen so
// that normal operation never meets them:
//   - seeding a cluster of 400 nodes and 10,000 instances is one
//     transaction of 10,404 operations and 7.8 MiB (measured by
//     internal/sim/cluster TestSeedLargeClusterFitsDefaultLimits, which fails
//     past half the limits);
//   - a group commit of the job engine writes, for each job of the queue
//     at most (Ganeti's limit, 5,000 jobs by default), its record (a few
//     KiB), its idempotency key, and for an archived job a put and a
//     delete: at most about 20,000 operations. The committer splits a
//     batch by operations (internal/sim/jobs commitParts), not by bytes:
//     records of megabytes could exceed MaxBytes and stop the engine
//     (fail-stop).
var DefaultLimits = Limits{MaxOps: 100_000, MaxBytes: 64 << 20}

// OrDefault returns l with its zero fields set from DefaultLimits.
func (l Limits) OrDefault() Limits {
	if l.MaxOps <= 0 {
		l.MaxOps = DefaultLimits.MaxOps
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	return l
}

// Budget counts the operations of one transaction against Limits. Stores
// call Add for every Put (bytes: key and value) and Delete (bytes 0); once
// it returned an error, Err keeps returning it, so that the Update is
// refused even when fn ignored the error.
type Budget struct {
	lim   Limits
	ops   int
	bytes int64
	err   error
}

// NewBudget returns an empty budget for l.
func NewBudget(l Limits) Budget { return Budget{lim: l.OrDefault()} }

// Add counts one operation writing n bytes.
func (b *Budget) Add(n int) error {
	if b.err != nil {
		return b.err
	}
	b.ops++
	b.bytes += int64(n)
	switch {
	case b.ops > b.lim.MaxOps:
		b.err = fmt.Errorf("%w: more than %d operations", ErrTxTooLarge, b.lim.MaxOps)
	case b.bytes > b.lim.MaxBytes:
		b.err = fmt.Errorf("%w: more than %d bytes of puts", ErrTxTooLarge, b.lim.MaxBytes)
	}
	return b.err
}

// Err is the error of the first operation over the limits.
func (b *Budget) Err() error { return b.err }

// LimitsOf returns the limits of s: those its Limits method reports, else
// DefaultLimits.
func LimitsOf(s Store) Limits {
	if l, ok := s.(interface{ Limits() Limits }); ok {
		return l.Limits()
	}
	return DefaultLimits
}
