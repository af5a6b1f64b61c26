package membudget_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	"github.com/ganeti-gateway/ganeti-gateway/internal/membudget"
)

// TestMemoryBudget: reservations wait in arrival order for room, a request
// larger than the budget runs alone, a wait that lasts too long is refused
// with ResourceExhausted and a retry delay, and a reservation made under a
// request's Hold (or found by its ticket) lasts until the Hold is
// released, not until the handler returns.
func TestMemoryBudget(t *testing.T) {
	b := membudget.NewMemoryBudget(100, 200*time.Millisecond)
	ctx := context.Background()

	r1, err := b.Reserve(ctx, 60)
	if err != nil || b.Used() != 60 {
		t.Fatalf("first reservation: %v, used %d", err, b.Used())
	}
	// 50 does not fit: it waits until r1 is given back.
	got := make(chan error, 1)
	go func() {
		r2, err := b.Reserve(ctx, 50)
		if err == nil {
			defer r2()
		}
		got <- err
		time.Sleep(50 * time.Millisecond)
	}()
	select {
	case err := <-got:
		t.Fatalf("a reservation over the budget did not wait: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	r1()
	if err := <-got; err != nil {
		t.Fatalf("waiting reservation: %v", err)
	}

	// Too long a wait: refused, with a retry delay.
	hold, err := b.Reserve(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Reserve(ctx, 1)
	if st := status.Convert(gateway.ToStatus(nil, err)); st.Code() != codes.ResourceExhausted || retryDelay(st.Err()) <= 0 {
		t.Errorf("wait beyond MaxWait: %v", err)
	}
	hold()

	// Larger than the budget: the whole budget, alone.
	big, err := b.Reserve(ctx, 1000)
	if err != nil || b.Used() != 100 {
		t.Fatalf("reservation over the total: %v, used %d", err, b.Used())
	}
	big()
	big() // a second call gives nothing back twice
	if b.Used() != 0 {
		t.Fatalf("used %d after every release", b.Used())
	}

	// Under a Hold, found in the context or by its ticket.
	h := b.NewHold()
	hctx := membudget.WithHold(ctx, h)
	release, err := b.Reserve(hctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	release()
	ticket := b.TicketOf(hctx)
	if ticket == "" || b.Lookup(ticket) != h {
		t.Fatalf("ticket %q does not find the Hold", ticket)
	}
	release, err = b.Reserve(membudget.WithHold(ctx, b.Lookup(ticket)), 20)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if b.Used() != 50 {
		t.Errorf("used %d with a Hold of 30+20, want 50", b.Used())
	}
	h.Release()
	if b.Used() != 0 || b.Lookup(ticket) != nil {
		t.Errorf("after the Hold's release: used %d, ticket still known %v", b.Used(), b.Lookup(ticket) != nil)
	}
	// A nil budget reserves nothing and never waits.
	var none *membudget.MemoryBudget
	if r, err := none.Reserve(ctx, 1<<40); err != nil {
		t.Errorf("nil budget: %v", err)
	} else {
		r()
	}
}

func retryDelay(err error) time.Duration {
	d, _ := gateway.RetryDelayOf(status.Convert(err))
	return d
}
