package gateway_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// newNativeHarness is newLimitHarness as the server composes it: one port
// split (gateway.Split) between grpc-go's transport, with the native
// interceptors and tap handle, and the HTTP server behind SamePortWith.
func newNativeHarness(t *testing.T, cfg gateway.AuthConfig, sp gateway.SamePortConfig) *limitHarness {
	t.Helper()
	authz, logs, log := harnessAuthorizer(t, cfg)
	sp.Admit = authz.AdmitConnectionRequest
	srv := grpc.NewServer(
		grpc.Creds(gateway.SplitCredentials()),
		grpc.InTapHandle(gateway.NativeTapHandle(sp)),
		grpc.ChainUnaryInterceptor(gateway.NativeUnaryInterceptor(sp), gateway.ErrorUnaryInterceptor(log), authz.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(gateway.NativeStreamInterceptor(sp), gateway.ErrorStreamInterceptor(log), authz.StreamInterceptor()),
	)
	jobs := &fakeJobs{release: make(chan struct{})}
	rapiv2.RegisterJobServiceServer(srv, jobs)
	rapiv2.RegisterVersionServiceServer(srv, fakeVersion{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	inproc, err := gateway.InProcess(srv)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := gateway.NewLegacy(context.Background(), gateway.Config{Conn: inproc, Authorize: authz.Preflight, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := gateway.NewHTTPServer(gateway.SamePortWith(srv, legacy, sp), nil, gateway.Timeouts{ReadHeader: time.Second, Idle: time.Minute})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, hl := gateway.Split(lis, nil, time.Second)
	go func() { _ = srv.Serve(gl) }()
	go func() { _ = hs.Serve(hl) }()
	t.Cleanup(func() {
		hs.Close()
		inproc.Close()
		srv.Stop()
	})
	return &limitHarness{addr: lis.Addr().String(), jobs: jobs, logs: logs}
}

// The listener's limits hold for the calls grpc-go's own transport serves:
// the receive deadline of a request message (a long poll outlasts it), the
// per-method message limit, the anonymous calls per peer; legacy requests
// on the same port still pass SamePortWith.
func TestNativeListenerLimits(t *testing.T) {
	h := newNativeHarness(t, gateway.AuthConfig{AllowAnonymousReads: true}, gateway.SamePortConfig{
		Limits:      &gateway.Limits{ReadMessageBytes: 1 << 10, BodyBytes: 64 << 10, QueryBodyBytes: 8 << 10},
		ReadTimeout: 300 * time.Millisecond,
	})
	const method = "/ganeti.rapi.v2.VersionService/GetVersion"
	done := make(chan struct{})
	defer close(done)
	stall := func(first []byte) func(w *io.PipeWriter) {
		return func(w *io.PipeWriter) {
			_, _ = w.Write(first)
			<-done
			_ = w.Close()
		}
	}
	if code, msg, _ := rawCall(t, h.addr, method, stall(grpcFrame(1000, []byte("only a part")))); code != codes.DeadlineExceeded {
		t.Errorf("incomplete message: %v %q", code, msg)
	}
	// (grpc-go's transport answers, with the context's error: not
	// SamePortWith's text, which would mean the call took the HTTP server.)
	if code, msg, _ := rawCall(t, h.addr, method, stall(nil)); code != codes.DeadlineExceeded || strings.Contains(msg, "did not arrive") {
		t.Errorf("missing message: %v %q", code, msg)
	}
	if code, msg, _ := rawCall(t, h.addr, method, func(w *io.PipeWriter) {
		_, _ = w.Write(grpcFrame(0, nil))
		_ = w.Close()
	}); code != codes.OK {
		t.Errorf("complete message: %v %q", code, msg)
	}

	conn := h.dial(t)
	version := rapiv2.NewVersionServiceClient(conn)
	if _, err := version.GetVersion(context.Background(), withUnknown(100)); err != nil {
		t.Errorf("small read: %v", err)
	}
	_, err := version.GetVersion(context.Background(), withUnknown(2<<10))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "larger than the 1024 bytes") {
		t.Errorf("large read: %v", err)
	}
	ops := []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Tags: []string{strings.Repeat("t", 4<<10)}}}}}
	if _, err := rapiv2.NewJobServiceClient(conn).SubmitJob(basic("writer", "wpass-secret"), &rapiv2.SubmitJobRequest{Ops: ops}); err != nil {
		t.Errorf("4 KiB write: %v", err)
	}
	// A long wait (released after it has begun) is not cut by the receive
	// deadline.
	waited := make(chan error, 1)
	go func() {
		_, err := rapiv2.NewJobServiceClient(conn).WaitJobChange(basic("writer", "wpass-secret"), &rapiv2.WaitJobChangeRequest{JobId: 1})
		waited <- err
	}()
	time.Sleep(time.Second)
	close(h.jobs.release)
	if err := <-waited; err != nil {
		t.Errorf("long wait: %v", err)
	}
	// The legacy surface on the same port.
	resp, err := http.Get("http://" + h.addr + "/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("legacy /version: %d", resp.StatusCode)
	}
}

// Anonymous calls on gRPC connections are admitted per peer.
func TestNativeAnonymousPerPeer(t *testing.T) {
	h := newNativeHarness(t, gateway.AuthConfig{MaxAnonymousPerPeer: 2}, gateway.SamePortConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 2; i++ {
		w, err := healthpb.NewHealthClient(h.dial(t)).Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			t.Fatalf("anonymous watch %d: %v", i, err)
		}
	}
	w, err := healthpb.NewHealthClient(h.dial(t)).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("anonymous watch beyond the cap: %v", err)
	}
	if _, err := healthpb.NewHealthClient(h.dial(t)).Check(basic("reader", "rpass-secret"), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("check with credentials: %v", err)
	}
}
