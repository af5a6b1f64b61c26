package jobs

import (
	"container/heap"
	"slices"
	"strconv"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// lockManager grants the locks of opcodes. Its methods are called with the
// engine's mutex held; it never blocks: a request that cannot be granted
// waits in the queues of its locks, and the calls that free locks return
// the requests they made grantable (already granted).
//
// An opcode's locks are granted together or not at all, so no job holds a
// lock while it waits for another: no deadlock is possible. Each lock
// serves its requests in (priority, arrival) order: a request is granted
// when, for every lock it names, the holders allow its mode and no request
// before it in that lock's queue conflicts with it (so exclusive requests
// are not starved by a stream of shared ones).
//
// A waiting request is parked on the first lock that blocks it and only
// looked at again when that lock changes (a holder leaves, or an earlier
// waiter is granted or withdrawn): the cost of a release is proportional
// to the requests it may concern, not to the length of the queue.
type lockManager struct {
	locks map[string]*lockState // held or waited for, by full name
	seq   uint64
}

type lockState struct {
	lock      opexec.Lock // Mode: the mode the lock is held in
	owners    []int64
	waiters   []*lockReq            // waiting requests naming this lock, in order
	exWaiters []*lockReq            // those wanting it exclusively, in order
	blocked   map[*lockReq]struct{} // waiting requests parked on this lock
}

// lockReq is one opcode's request for its locks.
type lockReq struct {
	owner     int64
	prio      int
	seq       uint64
	locks     []opexec.Lock // normalized: sorted by (level, name), no duplicates
	names     []string      // the locks' full names
	granted   bool
	waiting   bool
	blockedOn *lockState
	candIdx   int // index in a reschedule heap, -1 outside
}

func newLockManager() *lockManager { return &lockManager{locks: map[string]*lockState{}} }

// normalizeLocks sorts locks in the acquisition order (level, then name)
// and merges duplicates (exclusive wins).
func normalizeLocks(locks []opexec.Lock) []opexec.Lock {
	out := slices.Clone(locks)
	slices.SortFunc(out, func(a, b opexec.Lock) int {
		if a.Level != b.Level {
			return int(a.Level) - int(b.Level)
		}
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return int(b.Mode) - int(a.Mode) // exclusive first
	})
	return slices.CompactFunc(out, func(a, b opexec.Lock) bool { return a.Level == b.Level && a.Name == b.Name })
}

func (lm *lockManager) newReq(owner int64, prio int, locks []opexec.Lock) *lockReq {
	lm.seq++
	r := &lockReq{owner: owner, prio: prio, seq: lm.seq, locks: normalizeLocks(locks), candIdx: -1}
	r.names = make([]string, len(r.locks))
	for i, l := range r.locks {
		r.names[i] = l.FullName()
	}
	return r
}

// before orders requests: priority, then arrival.
func before(a, b *lockReq) bool {
	if a.prio != b.prio {
		return a.prio < b.prio
	}
	return a.seq < b.seq
}

func conflict(a, b opexec.Mode) bool { return a == opexec.Exclusive || b == opexec.Exclusive }

func (lm *lockManager) state(i int, r *lockReq) *lockState {
	st := lm.locks[r.names[i]]
	if st == nil {
		st = &lockState{lock: r.locks[i], blocked: map[*lockReq]struct{}{}}
		lm.locks[r.names[i]] = st
	}
	return st
}

func (lm *lockManager) gc(st *lockState) {
	if len(st.owners) == 0 && len(st.waiters) == 0 {
		delete(lm.locks, st.lock.FullName())
	}
}

// blocker returns the first lock that keeps r from being granted (nil
// when r can be granted now).
func (lm *lockManager) blocker(r *lockReq) *lockState {
	for i, l := range r.locks {
		st := lm.locks[r.names[i]]
		if st == nil {
			continue
		}
		if len(st.owners) > 0 && conflict(st.lock.Mode, l.Mode) {
			return st
		}
		if l.Mode == opexec.Exclusive {
			if len(st.waiters) > 0 && before(st.waiters[0], r) {
				return st
			}
		} else if len(st.exWaiters) > 0 && before(st.exWaiters[0], r) {
			return st
		}
	}
	return nil
}

func insertOrdered(list []*lockReq, r *lockReq) []*lockReq {
	i, _ := slices.BinarySearchFunc(list, r, func(p, t *lockReq) int {
		if before(p, t) {
			return -1
		}
		return 1
	})
	return slices.Insert(list, i, r)
}

func removeReq(list []*lockReq, r *lockReq) []*lockReq {
	if i := slices.Index(list, r); i >= 0 {
		return slices.Delete(list, i, i+1)
	}
	return list
}

func (lm *lockManager) park(r *lockReq, st *lockState) {
	if r.blockedOn == st {
		return
	}
	if r.blockedOn != nil {
		delete(r.blockedOn.blocked, r)
	}
	r.blockedOn = st
	st.blocked[r] = struct{}{}
}

// acquire grants r now (true) or queues it (false).
func (lm *lockManager) acquire(r *lockReq) bool {
	if lm.blocker(r) == nil {
		lm.grant(r)
		return true
	}
	for i, l := range r.locks {
		st := lm.state(i, r)
		st.waiters = insertOrdered(st.waiters, r)
		if l.Mode == opexec.Exclusive {
			st.exWaiters = insertOrdered(st.exWaiters, r)
		}
	}
	r.waiting = true
	lm.park(r, lm.blocker(r))
	return false
}

// grant gives r its locks; a waiting r leaves the queues, which may
// unblock others: their locks are returned.
func (lm *lockManager) grant(r *lockReq) []*lockState {
	var touched []*lockState
	if r.waiting {
		touched = lm.dequeue(r)
	}
	for i, l := range r.locks {
		st := lm.state(i, r)
		if len(st.owners) == 0 {
			st.lock.Mode = l.Mode
		}
		st.owners = append(st.owners, r.owner)
	}
	r.granted = true
	return touched
}

// dequeue removes a waiting r from the queues of its locks.
func (lm *lockManager) dequeue(r *lockReq) []*lockState {
	touched := make([]*lockState, 0, len(r.locks))
	for i := range r.locks {
		st := lm.locks[r.names[i]]
		if st == nil {
			continue
		}
		st.waiters = removeReq(st.waiters, r)
		st.exWaiters = removeReq(st.exWaiters, r)
		touched = append(touched, st)
	}
	if r.blockedOn != nil {
		delete(r.blockedOn.blocked, r)
		r.blockedOn = nil
	}
	r.waiting = false
	return touched
}

// release gives back r's locks (or withdraws r if it is still waiting)
// and returns the requests that this made grantable, now granted.
func (lm *lockManager) release(r *lockReq) []*lockReq {
	if r == nil {
		return nil
	}
	var touched []*lockState
	switch {
	case r.waiting:
		touched = lm.dequeue(r)
	case r.granted:
		r.granted = false
		for _, name := range r.names {
			st := lm.locks[name]
			if st == nil {
				continue
			}
			if i := slices.Index(st.owners, r.owner); i >= 0 {
				st.owners = slices.Delete(st.owners, i, i+1)
			}
			touched = append(touched, st)
		}
	default:
		return nil
	}
	return lm.reschedule(touched)
}

// reschedule looks again at the requests parked on the touched locks, in
// (priority, arrival) order, and grants those it can; a grant touches the
// granted request's locks in turn.
func (lm *lockManager) reschedule(touched []*lockState) []*lockReq {
	var cand reqHeap
	add := func(sts []*lockState) {
		for _, st := range sts {
			for r := range st.blocked {
				if r.candIdx < 0 {
					heap.Push(&cand, r)
				}
			}
		}
	}
	add(touched)
	var granted []*lockReq
	for cand.Len() > 0 {
		r := heap.Pop(&cand).(*lockReq)
		if !r.waiting {
			continue
		}
		if st := lm.blocker(r); st != nil {
			lm.park(r, st)
			continue
		}
		add(lm.grant(r))
		granted = append(granted, r)
	}
	for _, st := range touched {
		lm.gc(st)
	}
	return granted
}

type reqHeap []*lockReq

func (h reqHeap) Len() int           { return len(h) }
func (h reqHeap) Less(a, b int) bool { return before(h[a], h[b]) }
func (h reqHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].candIdx, h[b].candIdx = a, b
}
func (h *reqHeap) Push(x any) {
	r := x.(*lockReq)
	r.candIdx = len(*h)
	*h = append(*h, r)
}
func (h *reqHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.candIdx = -1
	return r
}

// ownerName is how Ganeti's lock query shows a job owning a lock: the JSON
// encoding of its id (src/Ganeti/Query/Locks.hs).
func ownerName(id int64) string { return strconv.FormatInt(id, 10) }

// lockRow is one row of the "lock" query resource.
type lockRow struct {
	name    string
	mode    any // "shared", "exclusive" or nil
	owner   []any
	pending []any // [[mode, [owner]], ...] in queue order
}

func (r *lockRow) value(field string) any {
	switch field {
	case "name":
		return r.name
	case "mode":
		return r.mode
	case "owner":
		return r.owner
	case "pending":
		return r.pending
	}
	return nil
}

// rows lists the locks that are held or waited for, in lock order.
func (lm *lockManager) rows() []*lockRow {
	keys := make([]opexec.Lock, 0, len(lm.locks))
	for _, st := range lm.locks {
		keys = append(keys, st.lock)
	}
	keys = normalizeLocks(keys)
	out := make([]*lockRow, 0, len(keys))
	for _, k := range keys {
		name := k.FullName()
		st := lm.locks[name]
		r := &lockRow{name: name, owner: []any{}, pending: []any{}}
		if len(st.owners) > 0 {
			r.mode = st.lock.Mode.String()
			owners := slices.Clone(st.owners)
			slices.Sort(owners)
			for _, o := range owners {
				r.owner = append(r.owner, ownerName(o))
			}
		}
		for _, w := range st.waiters {
			mode := opexec.Shared
			for i, n := range w.names {
				if n == name {
					mode = w.locks[i].Mode
				}
			}
			r.pending = append(r.pending, []any{mode.String(), []any{ownerName(w.owner)}})
		}
		out = append(out, r)
	}
	return out
}
