package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/test/bufconn"

	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// SamePort sends gRPC requests (HTTP/2 with an application/grpc content
// type) to the gRPC server and everything else to the legacy surface.
// External gRPC requests lose the metadata keys that only the gateway's
// in-process calls may carry (server.InternalMetadataPrefix).
func SamePort(grpcServer *grpc.Server, legacy http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			for k := range r.Header {
				if strings.HasPrefix(strings.ToLower(k), server.InternalMetadataPrefix) {
					delete(r.Header, k)
				}
			}
			grpcServer.ServeHTTP(w, r)
			return
		}
		legacy.ServeHTTP(w, r)
	})
}

// Timeouts of the HTTP server.
type Timeouts struct {
	ReadHeader time.Duration
	Idle       time.Duration
}

// NewHTTPServer serves h over TLS (HTTP/1.1 and HTTP/2) when tlsConfig is
// set, else over plain HTTP/1.1 and h2c (HTTP/2 with prior knowledge).
func NewHTTPServer(h http.Handler, tlsConfig *tls.Config, t Timeouts) *http.Server {
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: t.ReadHeader,
		IdleTimeout:       t.Idle,
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	if tlsConfig != nil {
		srv.Protocols.SetHTTP2(true)
	} else {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
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
