package etcdstore

import "context"

// CompactStep is one turn of a compactor of s (Compactor.step), for the
// test of the compactors' coordination.
func CompactStep(ctx context.Context, s *Store, expect, rev int64) (version, cur, compacted int64, err error) {
	c := &Compactor{s: s, key: s.compactKey()}
	return c.step(ctx, expect, rev)
}

// InjectCommitFaults makes next decide the fault of each later commit
// (nil: none). For tests.
func (s *Store) InjectCommitFaults(next func() CommitFault) {
	if next == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&next)
}

// SetForEachPage sets how many keys ForEach of s reads at a time.
func SetForEachPage(s *Store, n int) { s.page = n }
