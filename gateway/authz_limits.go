package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// slotPool bounds concurrent calls, in total and per user (<= 0: no
// bound). Job waits (WaitJobChange, GET /2/jobs/{id}/wait) and job watches
// (WatchJob) have a pool each, so read users watching jobs cannot take the
// places of write users waiting for theirs.
type slotPool struct {
	total, perUser int

	mu     sync.Mutex
	used   int
	byUser map[string]int
}

func newSlotPool(total, perUser int) *slotPool {
	return &slotPool{total: total, perUser: perUser, byUser: map[string]int{}}
}

// acquire takes a place for user; the reason says which bound refused it.
func (p *slotPool) acquire(user string) (ok bool, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total > 0 && p.used >= p.total {
		return false, "all"
	}
	if p.perUser > 0 && p.byUser[user] >= p.perUser {
		return false, "user"
	}
	p.used++
	p.byUser[user]++
	return true, ""
}

func (p *slotPool) release(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used--
	if p.byUser[user]--; p.byUser[user] <= 0 {
		delete(p.byUser, user)
	}
}

// longPoll admits a job wait or watch into its pool.
func (a *Authorizer) longPoll(ctx context.Context, r *request, user *auth.User) (release func(), err error) {
	name := ""
	if user != nil {
		name = user.Name
	}
	pool, what := a.waits, "job waits"
	if r.method.watch {
		pool, what = a.watches, "job watches"
	}
	if ok, reason := pool.acquire(name); !ok {
		if reason == "user" {
			a.denied(ctx, r, name, codes.ResourceExhausted, "too many concurrent "+what+" of the user")
			return nil, errs.TooManyRequests(time.Second, "Too many concurrent %s of this user, retry later", what)
		}
		a.denied(ctx, r, name, codes.ResourceExhausted, "too many concurrent "+what)
		return nil, errs.TooManyRequests(time.Second, "Too many concurrent %s, retry later", what)
	}
	a.metrics.longPollStart(ctx)
	return func() { a.metrics.longPollEnd(ctx); pool.release(name) }, nil
}

// peerLimiter bounds the concurrent requests (gRPC streams included) made
// without valid credentials: per client address (an IPv6 address counts
// by its /64 prefix) and in total (<= 0: no bound). Behind a trusted
// proxy the client address is the one the proxy named (LegacyCall.Proxy):
// counted by the proxy's address, one client could take the places of
// all.
type peerLimiter struct {
	perPeer, total int

	mu    sync.Mutex
	used  int
	peers map[string]*peerCount
}

type peerCount struct {
	n int
	// lastLog and suppressed sample the audit records of refusals: one per
	// peer every peerLogEvery, with the count of those not logged.
	lastLog    time.Time
	suppressed int
}

const peerLogEvery = 10 * time.Second

func newPeerLimiter(perPeer, total int) *peerLimiter {
	if perPeer <= 0 && total <= 0 {
		return nil
	}
	return &peerLimiter{perPeer: perPeer, total: total, peers: map[string]*peerCount{}}
}

// peerKey is the address a peer is counted by.
func peerKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// acquire counts a request of key; when refused, log says whether to
// write an audit record (and how many earlier refusals were not logged).
func (l *peerLimiter) acquire(key string, now time.Time) (ok, log bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pc := l.peers[key]
	if (l.total > 0 && l.used >= l.total) || (l.perPeer > 0 && pc != nil && pc.n >= l.perPeer) {
		if pc == nil {
			return false, true, 0 // refused by the total: an unknown peer
		}
		if now.Sub(pc.lastLog) < peerLogEvery {
			pc.suppressed++
			return false, false, 0
		}
		pc.lastLog, suppressed, pc.suppressed = now, pc.suppressed, 0
		return false, true, suppressed
	}
	if pc == nil {
		pc = &peerCount{}
		l.peers[key] = pc
	}
	pc.n++
	l.used++
	return true, false, 0
}

func (l *peerLimiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.used--
	if pc := l.peers[key]; pc != nil {
		if pc.n--; pc.n <= 0 {
			delete(l.peers, key)
		}
	}
}

// AdmitConnectionRequest counts a request the listener received (either
// surface, before anything else is done with it) against the limits on
// requests without valid credentials: a request with credentials that
// authenticate (a valid Authorization header, or a client certificate
// naming a user) is not counted. Beyond the limits it is refused with
// ResourceExhausted / 429; release must be called when the request ends.
func (a *Authorizer) AdmitConnectionRequest(ctx context.Context, call *LegacyCall) (release func(), err error) {
	if a.anon == nil || a.authenticates(call) {
		return func() {}, nil
	}
	key := peerKey(call.RemoteAddr)
	ok, log, suppressed := a.anon.acquire(key, time.Now())
	if !ok {
		if log {
			a.metrics.denied(ctx, codes.ResourceExhausted)
			attrs := []slog.Attr{
				slog.String("event", "denied"),
				slog.String("user", ""),
				slog.String("source", call.RemoteAddr),
				slog.String("peer", key),
				slog.String("code", codes.ResourceExhausted.String()),
				slog.String("reason", "too many concurrent requests without credentials from this address"),
				slog.Int("not_logged_since_last", suppressed),
			}
			if call.Proxy != "" {
				attrs = append(attrs, slog.String("proxy", call.Proxy))
			}
			a.log.LogAttrs(ctx, slog.LevelWarn, "audit", attrs...)
		}
		return nil, ToStatus(a.log, errs.TooManyRequests(time.Second, "Too many concurrent requests without credentials from this address, retry later"))
	}
	return func() { a.anon.release(key) }, nil
}

// authenticates reports whether call carries credentials that
// authenticate a user (whatever the user's options).
func (a *Authorizer) authenticates(call *LegacyCall) bool {
	table := a.cfg.Users.Table()
	if len(call.Authorization) > 0 {
		name, password, err := auth.ParseAuthorization(call.Authorization[0])
		if err != nil {
			return false
		}
		_, ok := table.Authenticate(name, password)
		return ok
	}
	if call.ClientCert {
		_, ok := table.Lookup(call.ClientCN)
		return ok
	}
	return false
}
