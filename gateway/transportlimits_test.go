package gateway_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
)

// limitHarness serves the fake job and version services and gRPC health
// checking with the production interceptors behind SamePortWith (the
// listener's limits) on one loopback port (plain HTTP and h2c).
type limitHarness struct {
	addr string
	jobs *fakeJobs
	logs *lockedBuffer
}

func newLimitHarness(t *testing.T, cfg gateway.AuthConfig, sp gateway.SamePortConfig, to gateway.Timeouts) *limitHarness {
	t.Helper()
	authz, logs, log := harnessAuthorizer(t, cfg)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(gateway.ErrorUnaryInterceptor(log), authz.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(gateway.ErrorStreamInterceptor(log), authz.StreamInterceptor()),
	)
	jobs := &fakeJobs{release: make(chan struct{})}
	rapiv2.RegisterJobServiceServer(srv, jobs)
	rapiv2.RegisterVersionServiceServer(srv, fakeVersion{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	sp.Admit = authz.AdmitConnectionRequest
	addr := serveSamePort(t, srv, gateway.Config{Authorize: authz.Preflight, Logger: log}, &sp, to)
	return &limitHarness{addr: addr, jobs: jobs, logs: logs}
}

// dial opens a gRPC connection of its own.
func (h *limitHarness) dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	return dialTest(t, h.addr)
}

// h2c is an HTTP/2 (prior knowledge) client for hand-made gRPC requests.
func h2c() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// grpcFrame is a gRPC message prefix announcing n bytes, and body.
func grpcFrame(n uint32, body []byte) []byte {
	b := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(b[1:], n)
	return append(b, body...)
}

// rawCall sends a hand-made gRPC request whose body the caller writes, and
// returns the gRPC status of the answer (from its headers or trailers) and
// how long it took.
func rawCall(t *testing.T, addr, method string, writeBody func(w *io.PipeWriter)) (codes.Code, string, time.Duration) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+method, pr)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	go writeBody(pw)
	start := time.Now()
	resp, err := h2c().Do(req)
	if err != nil {
		return codes.Unknown, err.Error(), time.Since(start)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	s := resp.Header.Get("Grpc-Status")
	msg := resp.Header.Get("Grpc-Message")
	if s == "" {
		s, msg = resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	}
	if s == "" {
		return codes.Unknown, "no grpc-status", time.Since(start)
	}
	var c codes.Code
	if err := c.UnmarshalJSON([]byte(s)); err != nil {
		t.Fatalf("grpc-status %q", s)
	}
	return c, msg, time.Since(start)
}

// TestGRPCReceiveDeadline: a gRPC request whose message never completes
// is cut after the read timeout (it used to be held forever, with a buffer
// of the announced size), as is one whose message never begins; a call
// whose message arrived in time may last longer than the timeout (a long
// poll), and a server stream stays open after its request.
func TestGRPCReceiveDeadline(t *testing.T) {
	h := newLimitHarness(t, gateway.AuthConfig{AllowAnonymousReads: true}, gateway.SamePortConfig{Limits: &gateway.Limits{}, ReadTimeout: 300 * time.Millisecond}, gateway.Timeouts{})
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
	code, msg, took := rawCall(t, h.addr, method, stall(grpcFrame(1000, []byte("only a part"))))
	if code == codes.OK || !strings.Contains(msg, "did not arrive") || took > 3*time.Second {
		t.Errorf("incomplete message: %v %q after %v", code, msg, took)
	}
	code, msg, took = rawCall(t, h.addr, method, stall(nil))
	if code != codes.DeadlineExceeded || took > 3*time.Second || strings.Contains(msg, "i/o") {
		t.Errorf("missing message: %v %q after %v", code, msg, took)
	}
	code, msg, _ = rawCall(t, h.addr, method, func(w *io.PipeWriter) {
		_, _ = w.Write(grpcFrame(0, nil))
		_ = w.Close()
	})
	if code != codes.OK {
		t.Errorf("complete message: %v %q", code, msg)
	}

	// A typed job wait (the fake blocks until released) outlasts the
	// timeout, and so does a health watch.
	conn := h.dial(t)
	go func() {
		time.Sleep(time.Second)
		close(h.jobs.release)
	}()
	watch, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("health watch: %v", err)
	}
	start := time.Now()
	if _, err := rapiv2.NewJobServiceClient(conn).WaitJobChange(basic("writer", "wpass-secret"), &rapiv2.WaitJobChangeRequest{JobId: 1}); err != nil {
		t.Errorf("long wait: %v after %v", err, time.Since(start))
	}
	stillOpen := make(chan error, 1)
	go func() { _, err := watch.Recv(); stillOpen <- err }()
	select {
	case err := <-stillOpen:
		t.Errorf("the health watch ended: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}

// withUnknown is GetVersionRequest padded to n bytes with an unknown
// field.
func withUnknown(n int) *rapiv2.GetVersionRequest {
	req := &rapiv2.GetVersionRequest{}
	var b []byte
	b = protowire.AppendTag(b, 1000, protowire.BytesType)
	b = protowire.AppendBytes(b, make([]byte, n))
	req.ProtoReflect().SetUnknown(b)
	return req
}

// TestGRPCMessageLimit: a gRPC request message over its method's limit
// (reads: ReadMessageBytes; writes: BodyBytes; queries: QueryBodyBytes) is
// refused with ResourceExhausted from its length prefix, before it is
// received or decoded; it used to be read and decoded up to gRPC's 4 MiB.
func TestGRPCMessageLimit(t *testing.T) {
	h := newLimitHarness(t, gateway.AuthConfig{AllowAnonymousReads: true}, gateway.SamePortConfig{
		Limits: &gateway.Limits{ReadMessageBytes: 1 << 10, BodyBytes: 64 << 10, QueryBodyBytes: 8 << 10},
	}, gateway.Timeouts{})
	conn := h.dial(t)
	version := rapiv2.NewVersionServiceClient(conn)
	if _, err := version.GetVersion(context.Background(), withUnknown(100)); err != nil {
		t.Errorf("small read: %v", err)
	}
	_, err := version.GetVersion(context.Background(), withUnknown(2<<10))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "larger than the 1024 bytes") {
		t.Errorf("large read: %v", err)
	}
	// A write accepts more than a read.
	ops := []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Tags: []string{strings.Repeat("t", 4<<10)}}}}}
	if _, err := rapiv2.NewJobServiceClient(conn).SubmitJob(basic("writer", "wpass-secret"), &rapiv2.SubmitJobRequest{Ops: ops}); err != nil {
		t.Errorf("4 KiB write: %v", err)
	}
	// The prefix alone decides: the announced 10 MB are never sent.
	code, msg, took := rawCall(t, h.addr, "/ganeti.rapi.v2.QueryService/Query", func(w *io.PipeWriter) {
		_, _ = w.Write(grpcFrame(10<<20, nil))
	})
	if code != codes.ResourceExhausted || took > 3*time.Second {
		t.Errorf("announced 10 MB query: %v %q after %v", code, msg, took)
	}
}

// TestAnonymousStreamsPerPeer: requests without valid credentials are
// counted per client address: beyond MaxAnonymousPerPeer the next one
// (here a health watch) is refused with ResourceExhausted, whatever the
// connection; a request with valid credentials is not counted; a place
// freed is taken again. The refusals are audited once, not once each.
func TestAnonymousStreamsPerPeer(t *testing.T) {
	h := newLimitHarness(t, gateway.AuthConfig{MaxAnonymousPerPeer: 3}, gateway.SamePortConfig{}, gateway.Timeouts{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var streams []context.CancelFunc
	for i := 0; i < 3; i++ {
		sctx, scancel := context.WithCancel(ctx)
		streams = append(streams, scancel)
		w, err := healthpb.NewHealthClient(h.dial(t)).Watch(sctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			t.Fatalf("anonymous watch %d: %v", i, err)
		}
	}
	for i := 0; i < 5; i++ {
		w, err := healthpb.NewHealthClient(h.dial(t)).Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("anonymous watch beyond the cap: %v", err)
		}
	}
	// Legacy requests count too (this one would otherwise get 401).
	resp, err := http.Get("http://" + h.addr + "/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("anonymous legacy request beyond the cap: %d", resp.StatusCode)
	}
	// Invalid credentials are no credentials.
	bad := basic("reader", "wrong")
	if _, err := healthpb.NewHealthClient(h.dial(t)).Check(bad, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("check with a wrong password: %v", err)
	}
	if _, err := healthpb.NewHealthClient(h.dial(t)).Check(basic("reader", "rpass-secret"), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("check with credentials: %v", err)
	}
	streams[0]()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := healthpb.NewHealthClient(h.dial(t)).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a freed place was not taken again: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(h.logs.String(), "too many concurrent requests without credentials"); n != 1 {
		t.Errorf("%d audit records of the refusals, want 1 (sampled):\n%s", n, h.logs.String())
	}
	for _, c := range streams {
		c()
	}
}

// TestAnonymousPerClientBehindProxy: behind a trusted proxy the anonymous
// requests are counted per client the proxy names, not per proxy: one
// client's requests do not take another's places, and the refusal is
// audited with the client as source and the proxy.
func TestAnonymousPerClientBehindProxy(t *testing.T) {
	trusted, err := gateway.ParseTrustedProxies("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	h := newLimitHarness(t, gateway.AuthConfig{MaxAnonymousPerPeer: 1}, gateway.SamePortConfig{TrustedProxies: trusted}, gateway.Timeouts{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := func(client string) error {
		wctx := metadata.AppendToOutgoingContext(ctx, "x-forwarded-for", client)
		w, err := healthpb.NewHealthClient(h.dial(t)).Watch(wctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		return err
	}
	for _, c := range []struct {
		client string
		want   codes.Code
	}{
		{"203.0.113.1", codes.OK},
		{"203.0.113.2", codes.OK}, // another client: its own place
		{"203.0.113.1", codes.ResourceExhausted},
	} {
		if err := watch(c.client); status.Code(err) != c.want {
			t.Errorf("anonymous watch of %s: %v, want %v", c.client, err, c.want)
		}
	}
	var rec map[string]any
	for _, line := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == "audit" {
			rec = r
		}
	}
	if rec == nil || rec["source"] != "203.0.113.1" || !strings.HasPrefix(fmt.Sprint(rec["proxy"]), "127.0.0.1:") || rec["code"] != "ResourceExhausted" {
		t.Errorf("audit record of the refusal: %v", rec)
	}
}

// TestStreamsPerConnection: the HTTP/2 connection allows
// MaxConcurrentStreams calls at once; the client queues the next.
func TestStreamsPerConnection(t *testing.T) {
	h := newLimitHarness(t, gateway.AuthConfig{}, gateway.SamePortConfig{}, gateway.Timeouts{MaxConcurrentStreams: 2})
	conn := h.dial(t)
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 2; i++ {
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	short, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	if _, err := hc.Check(short, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("third call on a connection of two streams: %v", err)
	}
	if _, err := healthpb.NewHealthClient(h.dial(t)).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("call on another connection: %v", err)
	}
}

// TestKeepalivePing: the server pings a silent HTTP/2 connection and
// closes it when the ping is not answered (it used to keep it until the
// idle timeout).
func TestKeepalivePing(t *testing.T) {
	h := newLimitHarness(t, gateway.AuthConfig{}, gateway.SamePortConfig{},
		gateway.Timeouts{ReadHeader: time.Second, Idle: time.Minute, Keepalive: 200 * time.Millisecond, PingTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The client preface and an empty SETTINGS frame; then silence.
	if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	pinged := false
	var hdr [9]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			break // closed by the server (or the deadline: see below)
		}
		if hdr[3] == 0x6 { // PING
			pinged = true
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			break
		}
	}
	if took := time.Since(start); !pinged || took > 5*time.Second {
		t.Errorf("pinged %v, closed after %v", pinged, took)
	}
}

// harnessAuthorizer is the authorizer of the limit harnesses, on the
// harness users, with the JSON log it writes to logs.
func harnessAuthorizer(t *testing.T, cfg gateway.AuthConfig) (*gateway.Authorizer, *lockedBuffer, *slog.Logger) {
	t.Helper()
	tab, _, err := auth.ParseUsers([]byte(harnessUsers))
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	cfg.Users = staticUsers{tab}
	cfg.InProcess = gateway.IsInProcess
	cfg.Logger = log
	authz, err := gateway.NewAuthorizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return authz, logs, log
}
