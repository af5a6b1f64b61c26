package etcdstore

import "errors"

// CommitFault makes the outcome of a commit unknown, for the tests of its
// resolution (export_test.go sets Store.fault).
type CommitFault int

const (
	// FaultNone: the commit goes as it would.
	FaultNone CommitFault = iota
	// FaultBefore: the commit is lost on its way; etcd never sees it.
	FaultBefore
	// FaultAfter: etcd applies the commit; its answer is lost.
	FaultAfter
)

// errFault is the error of a commit a fault made unknown.
var errFault = errors.New("etcdstore: commit answer lost (test fault)")

func (s *Store) faultNow() CommitFault {
	if f := s.fault.Load(); f != nil {
		return (*f)()
	}
	return FaultNone
}
