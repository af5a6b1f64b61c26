package membudget

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// MemoryBudget bounds the memory that the large answers being built and
// sent at once (query results) may take, as estimated before they are
// built. A request reserves its estimate and keeps it until it has been
// answered: the listener opens a Hold for every request (WithHold), the
// legacy gateway passes its Hold to the in-process call by ticket
// (LegacyCall.Hold), and the Hold gives everything back when the request
// ends. A request that does not fit waits, in arrival order, up to MaxWait,
// and is then refused with ResourceExhausted (429 + Retry-After).
type MemoryBudget struct {
	total   int64
	maxWait time.Duration

	mu      sync.Mutex
	used    int64
	waiters []*budgetWaiter
	holds   map[uint64]*Hold
	nextID  uint64
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

// DefaultBudgetWait is how long a request waits for room in the budget.
const DefaultBudgetWait = 30 * time.Second

// NewMemoryBudget returns a budget of total bytes (<= 0: unlimited, nil is
// returned) whose requests wait at most maxWait (<= 0: DefaultBudgetWait).
func NewMemoryBudget(total int64, maxWait time.Duration) *MemoryBudget {
	if total <= 0 {
		return nil
	}
	if maxWait <= 0 {
		maxWait = DefaultBudgetWait
	}
	return &MemoryBudget{total: total, maxWait: maxWait, holds: map[uint64]*Hold{}}
}

// Total is the size of the budget.
func (b *MemoryBudget) Total() int64 { return b.total }

// Used is what is reserved now.
func (b *MemoryBudget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// acquire takes n bytes (at most the whole budget: a request larger than
// the budget runs alone), waiting in arrival order.
func (b *MemoryBudget) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 0), b.total)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.total {
		b.used += n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	timer := time.NewTimer(b.maxWait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
	case <-timer.C:
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile
		return n, nil
	default:
	}
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			break
		}
	}
	b.grantLocked() // the next ones may fit now
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return 0, errs.TooManyRequests(time.Second, "The server is busy answering other large requests, retry later")
}

func (b *MemoryBudget) release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

func (b *MemoryBudget) grantLocked() {
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		if b.used+w.n > b.total {
			return
		}
		b.used += w.n
		b.waiters = b.waiters[1:]
		close(w.ready)
	}
}

// Hold keeps the reservations of one request until Release.
type Hold struct {
	b      *MemoryBudget
	mu     sync.Mutex
	held   int64
	id     uint64 // registered for a ticket; 0: not registered
	closed bool
}

// NewHold opens the Hold of a request. A nil budget gives a nil Hold,
// whose methods do nothing.
func (b *MemoryBudget) NewHold() *Hold {
	if b == nil {
		return nil
	}
	return &Hold{b: b}
}

// Ticket names the Hold for a call on another connection (the legacy
// gateway's in-process call): Lookup finds it until Release.
func (h *Hold) Ticket() string {
	if h == nil {
		return ""
	}
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	if h.id == 0 {
		h.b.nextID++
		h.id = h.b.nextID
		h.b.holds[h.id] = h
	}
	return strconv.FormatUint(h.id, 10)
}

// Lookup returns the Hold a ticket names (nil when it is unknown or
// released).
func (b *MemoryBudget) Lookup(ticket string) *Hold {
	if b == nil || ticket == "" {
		return nil
	}
	id, err := strconv.ParseUint(ticket, 10, 64)
	if err != nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.holds[id]
}

// Release gives back everything the request reserved.
func (h *Hold) Release() {
	if h == nil {
		return
	}
	h.mu.Lock()
	n := h.held
	h.held, h.closed = 0, true
	h.mu.Unlock()
	h.b.mu.Lock()
	if h.id != 0 {
		delete(h.b.holds, h.id)
	}
	h.b.mu.Unlock()
	h.b.release(n)
}

// holdKey is the context key of a request's Hold in budget b (a request
// may hold in several budgets).
type holdKey struct{ b *MemoryBudget }

// WithHold returns ctx carrying the Hold of its request.
func WithHold(ctx context.Context, h *Hold) context.Context {
	if h == nil {
		return ctx
	}
	return context.WithValue(ctx, holdKey{h.b}, h)
}

func (b *MemoryBudget) holdFrom(ctx context.Context) *Hold {
	h, _ := ctx.Value(holdKey{b}).(*Hold)
	return h
}

// Reserve reserves n bytes of the budget for the request of ctx. With a
// Hold in ctx the reservation lasts until the Hold is released and the
// returned function does nothing; otherwise the returned function gives it
// back. A nil budget reserves nothing.
func (b *MemoryBudget) Reserve(ctx context.Context, n int64) (release func(), err error) {
	if b == nil || n <= 0 {
		return func() {}, nil
	}
	got, err := b.acquire(ctx, n)
	if err != nil {
		return nil, err
	}
	if h := b.holdFrom(ctx); h != nil {
		h.mu.Lock()
		if !h.closed {
			h.held += got
			h.mu.Unlock()
			return func() {}, nil
		}
		h.mu.Unlock()
	}
	var once sync.Once
	return func() { once.Do(func() { b.release(got) }) }, nil
}

// TicketOf is the ticket of the request's Hold in ctx ("" without one).
func (b *MemoryBudget) TicketOf(ctx context.Context) string {
	if b == nil {
		return ""
	}
	return b.holdFrom(ctx).Ticket()
}
