package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/membudget"
)

// The listener's checks of SamePortWith, for gRPC calls that grpc-go's own
// transport serves (the gRPC connections of Split): the client address
// behind a trusted proxy, the per-peer admission, the memory budget's
// Hold of each call, the metadata only in-process calls may carry, and
// the per-method message size limit (checked on the received message: the
// server's MaxRecvMsgSize bounds what is received before). They run first
// in the server's chain; calls that SamePortWith served already (a gRPC
// request on an HTTP connection) and in-process calls pass through.
//
// The receive deadline (SamePortConfig.ReadTimeout) bounds the first
// message of these calls: NativeTapHandle gives each call a context that
// ends with DeadlineExceeded when its message has not arrived in time
// (grpc-go's transport then stops waiting for it), and the interceptors
// lift it once the message is in.

type samePortKey struct{}

type readDeadlineKey struct{}

// NativeTapHandle is the gRPC server's InTapHandle: the receive deadline of
// the first request message of each call on a gRPC connection (see
// above); in-process calls have none.
func NativeTapHandle(cfg SamePortConfig) tap.ServerInHandle {
	return func(ctx context.Context, _ *tap.Info) (context.Context, error) {
		if cfg.ReadTimeout <= 0 || IsInProcess(ctx) {
			return ctx, nil
		}
		rd := &readDeadline{}
		rd.Context, rd.cancel = context.WithCancel(ctx)
		rd.timer = time.AfterFunc(cfg.ReadTimeout, func() {
			rd.expired.Store(true)
			rd.cancel()
		})
		return context.WithValue(rd, readDeadlineKey{}, rd), nil
	}
}

// readDeadline is a call's context until its first message is in: when
// the timer fires first it ends, with DeadlineExceeded.
type readDeadline struct {
	context.Context
	cancel  context.CancelFunc
	timer   *time.Timer
	expired atomic.Bool
}

func (r *readDeadline) Err() error {
	if r.expired.Load() {
		return context.DeadlineExceeded
	}
	return r.Context.Err()
}

// messageIn lifts the receive deadline of ctx's call, if it has one.
func messageIn(ctx context.Context) {
	if rd, ok := ctx.Value(readDeadlineKey{}).(*readDeadline); ok {
		rd.timer.Stop()
	}
}

// NativeUnaryInterceptor applies cfg's checks to unary calls (see above).
func NativeUnaryInterceptor(cfg SamePortConfig) grpc.UnaryServerInterceptor {
	if cfg.Limits != nil {
		cfg.Limits.setDefaults()
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		messageIn(ctx)
		ctx, done, err := cfg.begin(ctx)
		if err != nil {
			return nil, err
		}
		if done == nil {
			return handler(ctx, req)
		}
		defer done()
		if m, ok := req.(proto.Message); ok {
			if err := cfg.checkMessage(ctx, info.FullMethod, m); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
}

// NativeStreamInterceptor applies cfg's checks to streams (see above).
func NativeStreamInterceptor(cfg SamePortConfig) grpc.StreamServerInterceptor {
	if cfg.Limits != nil {
		cfg.Limits.setDefaults()
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, done, err := cfg.begin(ss.Context())
		if err != nil {
			return err
		}
		if done == nil {
			return handler(srv, ss)
		}
		defer done()
		return handler(srv, &nativeStream{ServerStream: ss, ctx: ctx, cfg: &cfg, method: info.FullMethod})
	}
}

type nativeStream struct {
	grpc.ServerStream
	ctx    context.Context
	cfg    *SamePortConfig
	method string
}

func (s *nativeStream) Context() context.Context { return s.ctx }

func (s *nativeStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	messageIn(s.ctx)
	if pm, ok := m.(proto.Message); ok {
		return s.cfg.checkMessage(s.ctx, s.method, pm)
	}
	return nil
}

// begin applies the per-call checks; done (nil when the call passes
// through) ends the call's admission and holds.
func (cfg *SamePortConfig) begin(ctx context.Context) (_ context.Context, done func(), err error) {
	if ctx.Value(samePortKey{}) != nil || IsInProcess(ctx) {
		return ctx, nil, nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ctx, nil, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	md = md.Copy()
	for k := range md {
		if strings.HasPrefix(k, InternalMetadataPrefix) {
			delete(md, k)
		}
	}
	remote := p.Addr.String()
	h := http.Header{}
	for _, k := range []string{"Forwarded", "X-Forwarded-For"} {
		if v := md.Get(k); len(v) > 0 {
			h[k] = v
		}
	}
	client, proxy := cfg.TrustedProxies.ClientAddr(remote, h)
	if proxy != "" {
		ctx = WithProxy(ctx, proxy)
		np := *p
		np.Addr = clientAddr(client)
		ctx = peer.NewContext(ctx, &np)
	} else if !cfg.TrustedProxies.trusts(peerAddr(remote)) {
		delete(md, "forwarded")
		delete(md, "x-forwarded-for")
	}
	ctx = metadata.NewIncomingContext(ctx, md)
	var releases []func()
	done = func() {
		for i := len(releases) - 1; i >= 0; i-- {
			releases[i]()
		}
	}
	if cfg.Admit != nil {
		call := &LegacyCall{Authorization: md.Get("authorization"), RemoteAddr: client, Proxy: proxy}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			call.ClientCert, call.ClientCN = true, ti.State.VerifiedChains[0][0].Subject.CommonName
		}
		release, err := cfg.Admit(ctx, call)
		if err != nil {
			return nil, nil, err
		}
		releases = append(releases, release)
	}
	for _, b := range []*membudget.MemoryBudget{cfg.Budget, cfg.RequestBudget} {
		if hold := b.NewHold(); hold != nil {
			releases = append(releases, hold.Release)
			ctx = membudget.WithHold(ctx, hold)
		}
	}
	return ctx, done, nil
}

// checkMessage refuses a request message over its method's limit and
// reserves the request budget for a query message.
func (cfg *SamePortConfig) checkMessage(ctx context.Context, method string, m proto.Message) error {
	if cfg.Limits == nil {
		return nil
	}
	n := int64(proto.Size(m))
	if limit := cfg.Limits.MessageLimit(method); limit > 0 && n > limit {
		return ToStatus(nil, errs.TooLarge("The request message of %d bytes is larger than the %d bytes %s accepts", n, limit, method))
	}
	_, err := cfg.Limits.reserveRequest(ctx, cfg.RequestBudget, method, n) // kept by the Hold
	return err
}

// clientAddr is the address of a client behind a trusted proxy.
type clientAddr string

func (clientAddr) Network() string  { return "tcp" }
func (a clientAddr) String() string { return string(a) }

var _ net.Addr = clientAddr("")
