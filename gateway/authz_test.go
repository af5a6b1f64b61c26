package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// fakeJobs blocks WaitJobChange and WatchJob until release is closed, and
// records who called.
type fakeJobs struct {
	rapiv2.UnimplementedJobServiceServer
	release chan struct{}
	mu      sync.Mutex
	users   []string
}

func (f *fakeJobs) record(ctx context.Context) {
	name := "<anonymous>"
	if u, ok := auth.FromContext(ctx); ok {
		name = u.Name
	}
	f.mu.Lock()
	f.users = append(f.users, name)
	f.mu.Unlock()
}

func (f *fakeJobs) WaitJobChange(ctx context.Context, req *rapiv2.WaitJobChangeRequest) (*rapiv2.WaitJobChangeResponse, error) {
	f.record(ctx)
	select {
	case <-f.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &rapiv2.WaitJobChangeResponse{Change: &rapiv2.JobChange{JobInfo: &structpb.ListValue{}}}, nil
}

func (f *fakeJobs) WatchJob(req *rapiv2.WatchJobRequest, stream grpc.ServerStreamingServer[rapiv2.Job]) error {
	f.record(stream.Context())
	select {
	case <-f.release:
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
	return stream.Send(&rapiv2.Job{Id: req.GetJobId()})
}

func (f *fakeJobs) SubmitJob(ctx context.Context, _ *rapiv2.SubmitJobRequest) (*rapiv2.JobSubmission, error) {
	f.record(ctx)
	return &rapiv2.JobSubmission{JobId: 42}, nil
}

type fakeVersion struct {
	rapiv2.UnimplementedVersionServiceServer
}

func (fakeVersion) GetVersion(context.Context, *rapiv2.GetVersionRequest) (*rapiv2.Version, error) {
	return &rapiv2.Version{Version: 2}, nil
}

type staticUsers struct{ t *auth.Table }

func (s staticUsers) Table() *auth.Table { return s.t }

type harness struct {
	url  string // http://host:port
	conn *grpc.ClientConn
	jobs *fakeJobs
	logs *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const harnessUsers = "reader rpass-secret read\nwriter wpass-secret write\n"

// newHarness serves fake job and version services with the production
// interceptors and the legacy gateway on one loopback port (plain HTTP and
// h2c).
func newHarness(t *testing.T, cfg gateway.AuthConfig, readTimeout time.Duration) *harness {
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
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(gateway.ErrorUnaryInterceptor(log), authz.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(gateway.ErrorStreamInterceptor(log), authz.StreamInterceptor()),
	)
	jobs := &fakeJobs{release: make(chan struct{})}
	rapiv2.RegisterJobServiceServer(srv, jobs)
	rapiv2.RegisterVersionServiceServer(srv, fakeVersion{})
	addr := serveSamePort(t, srv, gateway.Config{Authorize: authz.Preflight, ReadTimeout: readTimeout, Logger: log}, nil, gateway.Timeouts{})
	return &harness{url: "http://" + addr, conn: dialTest(t, addr), jobs: jobs, logs: logs}
}

func basic(user, password string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", auth.BasicAuthorization(user, password))
}

func legacyWait(t *testing.T, url, user, password string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/2/jobs/1/wait", strings.NewReader(`{"fields": ["status"]}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// waitStarted waits until the fake job service has seen n calls.
func (f *fakeJobs) waitStarted(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		got := len(f.users)
		f.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls started, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchFirst opens a WatchJob stream and returns the error of its first
// message (nil once the fake service releases it).
func watchFirst(jobs rapiv2.JobServiceClient, ctx context.Context) error {
	stream, err := jobs.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: 7})
	if err == nil {
		_, err = stream.Recv()
	}
	return err
}

// TestLongPollLimit: job waits (legacy GET /2/jobs/{id}/wait, typed
// WaitJobChange) and job watches (WatchJob) have budgets of their own. With
// MaxWaiters 2 and MaxWatchers 1, a third concurrent wait is refused with
// 429 + Retry-After / ResourceExhausted + RetryInfo while a read user's
// watch is still admitted (it used to take one of the waits' places, so
// read users could block write users' waits), a second watch is refused,
// and everything is admitted again once the others end. The handlers see
// the authenticated user.
func TestLongPollLimit(t *testing.T) {
	h := newHarness(t, gateway.AuthConfig{MaxWaiters: 2, MaxWatchers: 1}, 0)
	jobs := rapiv2.NewJobServiceClient(h.conn)
	var wg sync.WaitGroup
	wg.Add(3)
	for i := 0; i < 2; i++ {
		go func() {
			defer wg.Done()
			if code, _, body := legacyWait(t, h.url, "writer", "wpass-secret"); code != 200 {
				t.Errorf("legacy wait: %d %s", code, body)
			}
		}()
	}
	h.jobs.waitStarted(t, 2)
	go func() {
		defer wg.Done()
		if err := watchFirst(jobs, basic("reader", "rpass-secret")); err != nil {
			t.Errorf("WatchJob while the waits are full: %v", err)
		}
	}()
	h.jobs.waitStarted(t, 3)

	code, hdr, body := legacyWait(t, h.url, "writer", "wpass-secret")
	var e struct{ Code int }
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "1" || json.Unmarshal([]byte(body), &e) != nil || e.Code != 429 {
		t.Errorf("third legacy wait: %d Retry-After %q %s", code, hdr.Get("Retry-After"), body)
	}
	_, err := jobs.WaitJobChange(basic("writer", "wpass-secret"), &rapiv2.WaitJobChangeRequest{JobId: 1})
	if status.Code(err) != codes.ResourceExhausted || retryDelay(err) <= 0 {
		t.Errorf("third typed wait: %v (retry %v)", err, retryDelay(err))
	}
	if err := watchFirst(jobs, basic("writer", "wpass-secret")); status.Code(err) != codes.ResourceExhausted || retryDelay(err) <= 0 {
		t.Errorf("second WatchJob: %v", err)
	}
	// Authentication comes first: a read-only user gets 403, not 429.
	if code, _, _ := legacyWait(t, h.url, "reader", "rpass-secret"); code != http.StatusForbidden {
		t.Errorf("reader wait: %d, want 403", code)
	}

	close(h.jobs.release)
	wg.Wait()
	if code, _, body := legacyWait(t, h.url, "writer", "wpass-secret"); code != 200 {
		t.Errorf("wait after release: %d %s", code, body)
	}
	// The server frees a watch's slot when its handler returns, which may
	// come a moment after the client has its first message and cancels.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := watchFirst(jobs, basic("reader", "rpass-secret"))
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Errorf("watch after release: %v", err)
			break
		}
	}
	h.jobs.mu.Lock()
	defer h.jobs.mu.Unlock()
	seen := strings.Join(h.jobs.users, ",")
	if !strings.Contains(seen, "writer") || !strings.Contains(seen, "reader") || strings.Contains(seen, "anonymous") {
		t.Errorf("handlers saw users %s", seen)
	}
	for _, reason := range []string{"too many concurrent job waits", "too many concurrent job watches"} {
		if !strings.Contains(h.logs.String(), `"reason":"`+reason+`"`) {
			t.Errorf("no audit record %q:\n%s", reason, h.logs.String())
		}
	}
}

// TestWatchersPerUser: with MaxWatchersPerUser 1 a user's second
// concurrent watch is refused while another user's is admitted.
func TestWatchersPerUser(t *testing.T) {
	h := newHarness(t, gateway.AuthConfig{MaxWatchers: 10, MaxWatchersPerUser: 1}, 0)
	jobs := rapiv2.NewJobServiceClient(h.conn)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := watchFirst(jobs, basic("reader", "rpass-secret")); err != nil {
			t.Errorf("first reader watch: %v", err)
		}
	}()
	h.jobs.waitStarted(t, 1)
	err := watchFirst(jobs, basic("reader", "rpass-secret"))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "of this user") {
		t.Errorf("second reader watch: %v", err)
	}
	go func() {
		defer wg.Done()
		if err := watchFirst(jobs, basic("writer", "wpass-secret")); err != nil {
			t.Errorf("writer watch: %v", err)
		}
	}()
	h.jobs.waitStarted(t, 2)
	close(h.jobs.release)
	wg.Wait()
}

func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// TestReadTimeout: a legacy body that trickles in slower than ReadTimeout
// is cut, while a long poll that outlasts ReadTimeout is not.
func TestReadTimeout(t *testing.T) {
	h := newHarness(t, gateway.AuthConfig{}, 300*time.Millisecond)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, _ = io.WriteString(conn, "GET /2/jobs/1/wait HTTP/1.1\r\nHost: x\r\nAuthorization: "+auth.BasicAuthorization("writer", "wpass-secret")+
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"fie")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, _ := io.ReadAll(conn)
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("a stalled body held the connection for %v", elapsed)
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 400 ") || !strings.Contains(string(resp), "Connection: close") {
		t.Errorf("stalled body: %q", resp)
	}

	go func() {
		time.Sleep(800 * time.Millisecond)
		close(h.jobs.release)
	}()
	if code, _, body := legacyWait(t, h.url, "writer", "wpass-secret"); code != 200 {
		t.Errorf("a long poll longer than the read timeout: %d %s", code, body)
	}
}

// TestInternalMetadataNotTrusted: an external gRPC client cannot pass as
// the legacy gateway: its x-ganeti-gateway-* metadata neither
// authenticates (a forged client certificate name) nor changes the audited
// source address (nor does x-forwarded-for or forwarded metadata, from a
// peer that is not a trusted proxy).
func TestInternalMetadataNotTrusted(t *testing.T) {
	h := newHarness(t, gateway.AuthConfig{}, 0)
	jobs := rapiv2.NewJobServiceClient(h.conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"x-ganeti-gateway-client-cn-bin", "writer",
		"x-ganeti-gateway-peer", "203.0.113.9:1")
	_, err := jobs.SubmitJob(ctx, &rapiv2.SubmitJobRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("forged client certificate: %v, want Unauthenticated", err)
	}
	ctx = metadata.AppendToOutgoingContext(basic("writer", "wpass-secret"), "x-ganeti-gateway-peer", "203.0.113.9:1",
		"x-ganeti-gateway-proxy", "203.0.113.9:2", "x-forwarded-for", "203.0.113.9", "forwarded", "for=203.0.113.9")
	if sub, err := jobs.SubmitJob(ctx, &rapiv2.SubmitJobRequest{}); err != nil || sub.GetJobId() != 42 {
		t.Fatalf("SubmitJob: %v %v", sub, err)
	}
	logs := h.logs.String()
	if strings.Contains(logs, "203.0.113.9") {
		t.Errorf("a forged source address reached the audit log:\n%s", logs)
	}
	var rec map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == "audit" && r["event"] == "write" {
			rec = r
		}
	}
	if rec == nil || rec["user"] != "writer" || rec["job_id"] != float64(42) || !strings.HasPrefix(rec["source"].(string), "127.0.0.1:") ||
		rec["proxy"] != nil || rec["rpc"] != "/ganeti.rapi.v2.JobService/SubmitJob" || rec["code"] != "OK" {
		t.Errorf("audit record of the write: %v\n%s", rec, logs)
	}
	for _, secret := range []string{"wpass-secret", auth.BasicAuthorization("writer", "wpass-secret")[6:]} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows credentials:\n%s", logs)
		}
	}
}

// TestAuthErrorStatuses: the authentication errors go through the one
// error table like every domain error.
func TestAuthErrorStatuses(t *testing.T) {
	cases := []struct {
		err   error
		code  codes.Code
		msg   string
		retry time.Duration
	}{
		{errs.Unauthorized(), codes.Unauthenticated, "Unauthorized", 0},
		{errs.Forbidden(), codes.PermissionDenied, "Forbidden", 0},
		{errs.BadRequest("Basic authentication requires credentials"), codes.InvalidArgument, "Basic authentication requires credentials", 0},
		{errs.TooManyRequests(1500*time.Millisecond, "slow down"), codes.ResourceExhausted, "slow down", 1500 * time.Millisecond},
	}
	for _, c := range cases {
		st := status.Convert(gateway.ToStatus(nil, c.err))
		d, hasRetry := gateway.RetryDelayOf(st)
		class, _ := gateway.ErrorOf(st)
		if st.Code() != c.code || st.Message() != c.msg || d != c.retry || hasRetry != (c.retry > 0) || class == "" {
			t.Errorf("%v: %v %q retry %v (%v) class %q", c.err, st.Code(), st.Message(), d, hasRetry, class)
		}
	}
}
