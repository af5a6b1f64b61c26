package rapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

const testPassword = "s3cret-upstream-password"

// fakeRAPI is a minimal Ganeti RAPI on loopback: /2/info, tag reads and
// writes (each write is a job that succeeds at once), job reads, with an
// optional delay and a count of requests and of requests in flight.
type fakeRAPI struct {
	delay                       time.Duration
	mu                          sync.Mutex
	tags                        []string
	jobs                        int64
	requests, inflight, maxSeen atomic.Int64
	submissions                 atomic.Int64
	readOnly                    bool // the service user may not wait
	reasons                     []string
}

func (f *fakeRAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for m := f.maxSeen.Load(); n > m && !f.maxSeen.CompareAndSwap(m, n); m = f.maxSeen.Load() {
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "svc" || p != testPassword {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/2/info":
		_ = json.NewEncoder(w).Encode(map[string]any{"name": "cluster.example.com", "master": "127.0.0.1"})
	case r.URL.Path == "/2/tags" && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(append([]string{}, f.tags...))
	case r.URL.Path == "/2/tags" && r.Method == http.MethodPut:
		f.submissions.Add(1)
		f.tags = append(f.tags, r.URL.Query()["tag"]...)
		f.reasons = append(f.reasons, r.URL.Query().Get("reason"))
		f.jobs++
		_ = json.NewEncoder(w).Encode(f.jobs)
	case strings.HasSuffix(r.URL.Path, "/wait") && f.readOnly:
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"code": 403, "message": "Forbidden", "explain": ""}`)
	case r.URL.Path == "/2/query/job":
		_, _ = io.WriteString(w, `{"fields": [], "data": [[[0, "success"], [0, [[[1, [1, 0], "message", "done"]]]], [0, "success"]]]}`)
	case strings.HasPrefix(r.URL.Path, "/2/jobs/"):
		_ = json.NewEncoder(w).Encode(map[string]any{"id": 1, "status": "success", "ops": []any{}, "opstatus": []any{}})
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"code": 404, "message": "Not Found", "explain": ""}`)
	}
}

// faultProxy forwards TCP connections on loopback to a target; in
// blackhole mode it accepts and reads but never answers; in refuse mode
// it closes every connection at once. It counts the connections it got.
type faultProxy struct {
	lis      net.Listener
	target   string
	mode     atomic.Value // "pass", "blackhole", "refuse"
	accepted atomic.Int64
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{lis: lis, target: target}
	p.mode.Store("pass")
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			go p.handle(c)
		}
	}()
	return p
}

func (p *faultProxy) handle(c net.Conn) {
	defer c.Close()
	switch p.mode.Load() {
	case "refuse":
		return
	case "blackhole":
		_, _ = io.Copy(io.Discard, c)
		return
	}
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { _, _ = io.Copy(u, c) }()
	_, _ = io.Copy(c, u)
}

func (p *faultProxy) url() string { return "http://" + p.lis.Addr().String() }

func passwordFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newTest starts a fake RAPI behind a fault proxy and a backend in front.
func newTest(t *testing.T, f *fakeRAPI, change func(*Config)) (*Backend, *faultProxy) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	p := newFaultProxy(t, srv.Listener.Addr().String())
	cfg := Config{URLs: []string{p.url()}, User: "svc", PasswordFile: passwordFile(t),
		Timeout: 300 * time.Millisecond, BreakerOpen: 200 * time.Millisecond}
	if change != nil {
		change(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, p
}

func tagOp(t *testing.T, tag string) []*rapiv2.OpCode {
	op := &rapiv2.OpCode{}
	if err := legacyjson.FromValue(op, map[string]any{"OP_ID": "OP_TAGS_SET", "kind": "cluster", "tags": []any{tag}}); err != nil {
		t.Fatal(err)
	}
	return []*rapiv2.OpCode{op}
}

func errClass(err error) string {
	if e, ok := errs.As(err); ok {
		return e.Class
	}
	return fmt.Sprintf("not a domain error: %v", err)
}

func TestReadsFailFastWhenUpstreamFails(t *testing.T) {
	for _, mode := range []string{"blackhole", "refuse"} {
		t.Run(mode, func(t *testing.T) {
			b, p := newTest(t, &fakeRAPI{}, nil)
			p.mode.Store(mode)
			start := time.Now()
			_, err := b.ClusterInfo(context.Background())
			if got := errClass(err); got != errs.ClassBadGateway {
				t.Fatalf("error class %q, want %s (502 / UNAVAILABLE)", got, errs.ClassBadGateway)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %s, want within the 300ms timeout", d)
			}
		})
	}
}

func TestWritesAreNotRetried(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			f := &fakeRAPI{}
			b, p := newTest(t, f, nil)
			p.mode.Store("blackhole")
			opt := backend.SubmitOptions{}
			if keyed {
				opt.Idempotency = &backend.Idempotency{Scope: "u", Key: "k", Fingerprint: "f"}
			}
			if _, err := b.Submit(context.Background(), tagOp(t, "a"), opt); errClass(err) != errs.ClassBadGateway {
				t.Fatalf("error %v, want a 502", err)
			}
			// A request that reached the upstream side and got no answer
			// may have created a job: it is never sent again.
			if n := p.accepted.Load(); n != 1 {
				t.Errorf("%d connections for one blackholed write, want 1 (no retry)", n)
			}
		})
	}
}

func TestKeyedWriteRetriedWhenNotSent(t *testing.T) {
	f := &fakeRAPI{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	// A port nothing listens on, for the first attempts: the connection is
	// refused, the request never left.
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	_ = lis.Close()
	b, err := New(Config{URLs: []string{"http://" + addr}, User: "svc", PasswordFile: passwordFile(t), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	opt := backend.SubmitOptions{Idempotency: &backend.Idempotency{Scope: "u", Key: "k", Fingerprint: "f"}}
	_, err = b.Submit(context.Background(), tagOp(t, "a"), opt)
	if errClass(err) != errs.ClassBadGateway {
		t.Fatalf("error %v, want a 502", err)
	}
	if calls, _ := b.Stats(); calls != 3 {
		t.Errorf("%d attempts of a keyed write that could not connect, want 3", calls)
	}
	b2, err := New(Config{URLs: []string{"http://" + addr}, User: "svc", PasswordFile: passwordFile(t), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	_, _ = b2.Submit(context.Background(), tagOp(t, "a"), backend.SubmitOptions{})
	if calls, _ := b2.Stats(); calls != 1 {
		t.Errorf("%d attempts of a write without a key, want 1", calls)
	}
}

func TestIdempotencyKeyGivesOneJob(t *testing.T) {
	f := &fakeRAPI{delay: 20 * time.Millisecond}
	b, _ := newTest(t, f, func(c *Config) { c.Timeout = 5 * time.Second })
	opt := backend.SubmitOptions{Idempotency: &backend.Idempotency{Scope: "alice", Key: "key-1", Fingerprint: "fp"}}
	ids := make([]int64, 100)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := b.Submit(context.Background(), tagOp(t, "a"), opt)
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	for i := range 100 { // and again, one after the other
		id, err := b.Submit(context.Background(), tagOp(t, "a"), opt)
		if err != nil || id != ids[0] {
			t.Fatalf("repeat %d: job %d, %v; want job %d", i, id, err, ids[0])
		}
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids %v: want one job", ids)
		}
	}
	if n := f.submissions.Load(); n != 1 {
		t.Errorf("%d upstream submissions for one key, want 1", n)
	}
	other := *opt.Idempotency
	other.Fingerprint = "another"
	if _, err := b.Submit(context.Background(), tagOp(t, "b"), backend.SubmitOptions{Idempotency: &other}); errClass(err) != errs.ClassConflict {
		t.Errorf("same key, other request: %v, want a conflict", err)
	}
}

func TestInFlightCallsNeverExceedCap(t *testing.T) {
	f := &fakeRAPI{delay: 30 * time.Millisecond}
	b, _ := newTest(t, f, func(c *Config) { c.MaxConcurrent = 4; c.Timeout = 5 * time.Second })
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Distinct reads: singleflight does not merge them.
			_, _ = b.Tags(context.Background(), backend.TagNode, fmt.Sprint("node", i))
		}()
	}
	wg.Wait()
	if m := f.maxSeen.Load(); m > 4 || m < 2 {
		t.Errorf("the upstream saw %d requests at once, want at most the cap 4 (and some concurrency)", m)
	}
	if _, m := b.Stats(); m > 4 {
		t.Errorf("%d calls in flight at once, cap 4", m)
	}
}

func TestIdenticalReadsShareOneCall(t *testing.T) {
	f := &fakeRAPI{delay: 100 * time.Millisecond}
	b, _ := newTest(t, f, func(c *Config) { c.Timeout = 5 * time.Second })
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Tags(context.Background(), backend.TagCluster, ""); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.requests.Load(); n > 2 {
		t.Errorf("%d upstream requests for 20 identical concurrent reads, want 1 (2 at worst)", n)
	}
}

func TestBreakerOpensAndCloses(t *testing.T) {
	f := &fakeRAPI{}
	b, p := newTest(t, f, nil)
	p.mode.Store("refuse")
	for range BreakerFailures {
		_, _ = b.ClusterInfo(context.Background())
	}
	before := p.accepted.Load()
	_, err := b.ClusterInfo(context.Background())
	if e, _ := errs.As(err); e == nil || !strings.Contains(e.Msg, "circuit breaker open") {
		t.Fatalf("after %d failures: %v, want the breaker open", BreakerFailures, err)
	}
	if p.accepted.Load() != before {
		t.Error("an open breaker still called the upstream")
	}
	p.mode.Store("pass")
	time.Sleep(250 * time.Millisecond) // BreakerOpen is 200ms
	if _, err := b.ClusterInfo(context.Background()); err != nil {
		t.Fatalf("after the open interval, with the upstream back: %v", err)
	}
}

func TestUnreachableJobsMakeNoCall(t *testing.T) {
	f := &fakeRAPI{}
	b, p := newTest(t, f, nil)
	delay := &rapiv2.OpCode{}
	if err := legacyjson.FromValue(delay, map[string]any{"OP_ID": "OP_TEST_DELAY", "duration": 1}); err != nil {
		t.Fatal(err)
	}
	for name, ops := range map[string][]*rapiv2.OpCode{
		"opcode no route submits": {delay},
		"two opcodes":             append(tagOp(t, "a"), tagOp(t, "b")...),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := b.Submit(context.Background(), ops, backend.SubmitOptions{})
			e, _ := errs.As(err)
			if e == nil || e.Code != errs.CodeState || !strings.Contains(e.Msg, "RAPI") {
				t.Fatalf("error %v, want FAILED_PRECONDITION naming the transport", err)
			}
		})
	}
	if b.Supports("OP_TEST_DELAY") || !b.Supports("OP_TAGS_SET") {
		t.Error("Supports does not follow the route table")
	}
	if p.accepted.Load() != 0 {
		t.Errorf("%d upstream connections, want none", p.accepted.Load())
	}
}

func TestReasonTrailNamesTheCaller(t *testing.T) {
	f := &fakeRAPI{}
	b, _ := newTest(t, f, nil)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	ctx = backend.WithOrigin(ctx, backend.Origin{User: "alice"})
	if _, err := b.Submit(ctx, tagOp(t, "a"), backend.SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "ganeti-gateway user=alice trace=4bf92f3577b34da6a3ce929d0e0e4736"
	if len(f.reasons) != 1 || f.reasons[0] != want {
		t.Errorf("reasons %q, want [%q]", f.reasons, want)
	}
}

func TestCacheDroppedWhenJobEnds(t *testing.T) {
	f := &fakeRAPI{}
	b, _ := newTest(t, f, func(c *Config) { c.CacheTTL = time.Hour })
	tags := func() []string {
		got, err := b.Tags(context.Background(), backend.TagCluster, "")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if len(tags()) != 0 {
		t.Fatal("tags at start")
	}
	f.mu.Lock()
	f.tags = []string{"changed-behind-our-back"}
	f.mu.Unlock()
	if len(tags()) != 0 {
		t.Fatal("the cache did not answer the second read")
	}
	if _, err := b.Submit(context.Background(), tagOp(t, "x"), backend.SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(tags()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("tags %v: the cache was not dropped when the job ended", tags())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCredentialsNeverInURLsOrErrors(t *testing.T) {
	if _, err := New(Config{URLs: []string{"https://svc:" + testPassword + "@127.0.0.1:1"}}); err == nil ||
		strings.Contains(err.Error(), testPassword) {
		t.Errorf("a URL with credentials: %v", err)
	}
	b, p := newTest(t, &fakeRAPI{}, nil)
	p.mode.Store("refuse")
	_, err := b.ClusterInfo(context.Background())
	if err == nil || strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), p.lis.Addr().String()) {
		t.Errorf("error %v: must name neither the password nor the address", err)
	}
}

func TestWaitPollsForReadOnlyServiceUser(t *testing.T) {
	f := &fakeRAPI{readOnly: true}
	b, _ := newTest(t, f, nil)
	info, logs, changed, err := b.WaitForChange(context.Background(), 1, []string{"status"}, []any{"running"}, -1, 2*time.Second)
	if err != nil || !changed {
		t.Fatalf("WaitForChange: changed %v, %v", changed, err)
	}
	if len(info) != 1 || info[0] != "success" || len(logs) != 1 {
		t.Errorf("info %v logs %v, want [success] and one log entry", info, logs)
	}
	if !b.waitForbidden {
		t.Error("the refused wait was not remembered: every wait would try it again")
	}
}
