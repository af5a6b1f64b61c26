package store

import (
	"context"
	"fmt"
	"sync"
)

// Event is one committed change delivered by Watch: a Put (Value set,
// possibly empty) or a Delete (Deleted) of Bucket/Key, committed at
// revision Rev. The changes of one transaction share its revision and
// arrive in the order fn made them (a Delete of an absent key included),
// after those of every earlier revision.
//
// A watch ends when its channel is closed. When it ends for a reason other
// than its context (the reader fell behind, the store closed, a commit
// failed with an unknown outcome), the last event before the close has Err
// set (ErrWatchOverflow, ErrClosed, an error wrapping ErrCommit) and no
// change: a watcher that sees the channel closed without such an event
// ended it itself. Events are never dropped silently.
type Event struct {
	Bucket, Key string
	Value       []byte
	Deleted     bool
	Rev         int64
	Err         error
}

// DefaultWatchBuffer is the number of events a watcher may fall behind
// the writers before its watch ends with ErrWatchOverflow.
const DefaultWatchBuffer = 4096

// Hub delivers the committed changes of a store to its watchers. Stores
// call Publish for each commit, in commit order (serialized by their
// writer), and implement Watch with Hub.Watch. The zero value is not
// usable; call NewHub.
type Hub struct {
	mu       sync.Mutex
	rev      int64 // last published revision
	buffer   int
	closed   bool
	watchers map[*watcher]struct{}
}

type watcher struct {
	ch   chan Event
	from int64
	stop func() bool // unregisters the context callback
}

// NewHub returns a hub at revision rev whose watchers may fall buffer
// events behind (<= 0: DefaultWatchBuffer).
func NewHub(rev int64, buffer int) *Hub {
	if buffer <= 0 {
		buffer = DefaultWatchBuffer
	}
	return &Hub{rev: rev, buffer: buffer, watchers: map[*watcher]struct{}{}}
}

// Watch starts a watch from revision fromRev (0: the next commit). A
// fromRev at or below the current revision is history, which the hub does
// not keep: ErrCompacted. A future fromRev waits for that revision.
func (h *Hub) Watch(ctx context.Context, fromRev int64) (<-chan Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if fromRev == 0 {
		fromRev = h.rev + 1
	}
	if fromRev <= h.rev {
		return nil, fmt.Errorf("%w: watch from revision %d, the store is at %d", ErrCompacted, fromRev, h.rev)
	}
	// One slot more than the buffer: room for the event that ends it.
	w := &watcher{ch: make(chan Event, h.buffer+1), from: fromRev}
	h.watchers[w] = struct{}{}
	w.stop = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.end(w, nil)
	})
	return w.ch, nil
}

// end closes w's channel, after an event carrying err when err is not nil
// (h.mu held).
func (h *Hub) end(w *watcher, err error) {
	if _, ok := h.watchers[w]; !ok {
		return
	}
	delete(h.watchers, w)
	if err != nil {
		w.ch <- Event{Rev: h.rev, Err: err} // the reserved slot
	}
	close(w.ch)
}

// Watching tells whether the hub has watchers. A store records the
// changes of a transaction only when it has: it must then start watches
// only between transactions (holding its writer), so that a watch never
// begins in the middle of one.
func (h *Hub) Watching() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers) > 0
}

// Publish delivers the changes of the commit at revision rev (rev must be
// the previous revision plus one). It never blocks: a watcher whose buffer
// is full is ended with ErrWatchOverflow.
func (h *Hub) Publish(rev int64, changes []Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = rev
	for w := range h.watchers {
		if rev < w.from {
			continue
		}
		for _, ev := range changes {
			if len(w.ch) >= h.buffer {
				w.stop()
				h.end(w, ErrWatchOverflow)
				break
			}
			ev.Rev = rev
			if ev.Value != nil {
				ev.Value = append(make([]byte, 0, len(ev.Value)), ev.Value...) // the watcher's own
			}
			w.ch <- ev
		}
	}
}

// Abort ends every watch with err (a store calls it after a commit whose
// outcome is unknown: its watchers cannot know whether its changes
// happened). Later watches start normally.
func (h *Hub) Abort(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.stop()
		h.end(w, err)
	}
}

// Close ends every watch with ErrClosed; later watches fail with it.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for w := range h.watchers {
		w.stop()
		h.end(w, ErrClosed)
	}
}
