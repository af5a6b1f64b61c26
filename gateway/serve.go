package gateway

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/felixge/httpsnoop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/test/bufconn"

	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
)

// SamePort sends gRPC requests (HTTP/2 with an application/grpc content
// type) to the gRPC server and everything else to the legacy surface.
// External gRPC requests lose the metadata keys that only the gateway's
// in-process calls may carry (InternalMetadataPrefix). It applies
// no limits: see SamePortWith.
func SamePort(grpcServer *grpc.Server, legacy http.Handler) http.Handler {
	return SamePortWith(grpcServer, legacy, SamePortConfig{})
}

// Timeouts are the timeouts and connection limits of the HTTP server
// (zero values: net/http's defaults).
type Timeouts struct {
	ReadHeader time.Duration
	Idle       time.Duration
	// MaxHeaderBytes bounds request headers, request line included.
	MaxHeaderBytes int
	// MaxConcurrentStreams bounds the concurrent requests (gRPC calls) of
	// one HTTP/2 connection; the client waits for a free one.
	MaxConcurrentStreams int
	// Keepalive is how long an HTTP/2 connection may be silent before the
	// server pings it; a connection that does not answer within
	// PingTimeout is closed (with its streams).
	Keepalive, PingTimeout time.Duration
}

// DefaultPingTimeout is how long the server waits for a ping's answer.
const DefaultPingTimeout = 20 * time.Second

// NewHTTPServer serves h over TLS (HTTP/1.1 and HTTP/2) when tlsConfig is
// set, else over plain HTTP/1.1 and h2c (HTTP/2 with prior knowledge).
func NewHTTPServer(h http.Handler, tlsConfig *tls.Config, t Timeouts) *http.Server {
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: t.ReadHeader,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    t.MaxHeaderBytes,
		Protocols:         new(http.Protocols),
		ConnContext:       ConnContext,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: t.MaxConcurrentStreams,
			// The smallest frames HTTP/2 allows: a connection's read
			// buffer is one frame.
			MaxReadFrameSize: 16 << 10,
			SendPingTimeout:  t.Keepalive,
			PingTimeout:      t.PingTimeout,
		},
	}
	if srv.HTTP2.PingTimeout <= 0 && t.Keepalive > 0 {
		srv.HTTP2.PingTimeout = DefaultPingTimeout
	}
	srv.Protocols.SetHTTP1(true)
	if tlsConfig != nil {
		srv.Protocols.SetHTTP2(true)
	}
	// Without TLS: h2c. With TLS, Split hands the HTTP/2 connections on
	// decrypted, as prior-knowledge HTTP/2 (with their TLS state).
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}

// InProcess connects to grpcServer through an in-memory listener: calls
// made on the returned connection run the server's whole interceptor chain
// and stats handlers, without a socket. The server must not be stopped
// before the connection is closed.
func InProcess(grpcServer *grpc.Server, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	lis := bufconn.Listen(1 << 20)
	go func() { _ = grpcServer.Serve(inProcessListener{lis}) }()
	opts = append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256 << 20)),
	}, opts...)
	return grpc.NewClient("passthrough:///in-process", opts...)
}

// inProcessAddr is the peer address of calls made on an InProcess
// connection; no network connection can have it.
type inProcessAddr struct{}

func (inProcessAddr) Network() string { return "in-process" }
func (inProcessAddr) String() string  { return "in-process" }

type inProcessListener struct{ *bufconn.Listener }

func (l inProcessListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return inProcessConn{c}, nil
}

type inProcessConn struct{ net.Conn }

func (inProcessConn) RemoteAddr() net.Addr { return inProcessAddr{} }

// IsInProcess reports whether a gRPC server call came over an InProcess
// connection (from the legacy gateway).
func IsInProcess(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	_, ok = p.Addr.(inProcessAddr)
	return ok
}

// attrRoute is the span attribute of the legacy route ("PUT
// /2/instances/{instance_name}/startup").
var attrRoute = telemetry.AttrRoute

// Handler is the legacy surface with its access log: one line per request
// (method, route, path, status, duration, bytes, user, client address;
// the trace and span ids when the logger adds them). Tracing and metrics
// wrap it (internal/telemetry).
func (l *Legacy) Handler() http.Handler {
	log := l.cfg.Logger
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !log.Enabled(r.Context(), slog.LevelInfo) {
			l.ServeHTTP(w, r)
			return
		}
		ctx, info := WithAccessInfo(r.Context())
		r2 := r.WithContext(ctx)
		m := httpsnoop.CaptureMetrics(l, w, r2)
		// The route ServeHTTP matched, for the HTTP span and metrics.
		r.Pattern = r2.Pattern
		route := ""
		if _, tmpl, ok := strings.Cut(r2.Pattern, " "); ok {
			route = tmpl
		}
		attrs := []slog.Attr{
			slog.String("http_method", r.Method),
			slog.String("http_route", route),
			slog.String("http_path", r.URL.EscapedPath()),
			slog.Int("status", m.Code),
			slog.Float64("duration_ms", float64(m.Duration.Microseconds())/1000),
			slog.Int64("bytes", m.Written),
			slog.String("user", info.User),
			slog.String("source", r.RemoteAddr),
		}
		if proxy := ProxyFromContext(r.Context()); proxy != "" {
			attrs = append(attrs, slog.String("proxy", proxy))
		}
		log.LogAttrs(ctx, slog.LevelInfo, "access", attrs...)
	})
}
