package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
)

const idemUsers = "alice apass write,admin\nbob bpass write\n"

// newIdemServer serves the real services and job engine with the
// production interceptor chain and the legacy gateway on one loopback
// port; it returns the base URL, a gRPC connection to it and the engine.
func newIdemServer(t *testing.T) (string, *grpc.ClientConn, *jobs.Engine) {
	t.Helper()
	model, eng := goldenEngine(t, nil)
	svcs, err := service.New(service.Config{Backend: sim.New(model, eng), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	tab, _, err := auth.ParseUsers([]byte(idemUsers))
	if err != nil {
		t.Fatal(err)
	}
	authz, err := gateway.NewAuthorizer(gateway.AuthConfig{Users: staticUsers{tab}, AllowAnonymousReads: true,
		InProcess: gateway.IsInProcess, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(gateway.ErrorUnaryInterceptor(quiet), authz.UnaryInterceptor(),
		gateway.IdempotencyUnaryInterceptor()))
	if err := gateway.RegisterServices(srv, svcs.Implementation); err != nil {
		t.Fatal(err)
	}
	addr := serveSamePort(t, srv, gateway.Config{Authorize: authz.Preflight, Logger: quiet}, nil, gateway.Timeouts{})
	return "http://" + addr, dialTest(t, addr), eng
}

// TestIdempotencyLegacy: a keyed legacy write answers the first job again
// (200, same body) and creates nothing; the same key with another request
// is 409; keys are per user; a bad key is 400 on a write, ignored on a
// read.
func TestIdempotencyLegacy(t *testing.T) {
	base, _, eng := newIdemServer(t)
	do := func(method, path, user string, keys ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.SetBasicAuth(user, map[string]string{"alice": "apass", "bob": "bpass"}[user])
		for _, k := range keys {
			req.Header.Add("Idempotency-Key", k)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	code, first := do("PUT", "/2/tags?tag=x", "alice", "key-1")
	if code != 200 {
		t.Fatalf("first write: %d %s", code, first)
	}
	jobsBefore := len(eng.IDs())
	cases := []struct {
		name, method, path, user string
		keys                     []string
		wantCode                 int
		wantBody                 string // "" : any
		newJob                   bool
	}{
		{name: "retry", method: "PUT", path: "/2/tags?tag=x", user: "alice", keys: []string{"key-1"}, wantCode: 200, wantBody: first},
		{name: "retry with the key quoted", method: "PUT", path: "/2/tags?tag=x", user: "alice", keys: []string{`"key-1"`}, wantCode: 200, wantBody: first},
		{name: "same key, another request", method: "PUT", path: "/2/tags?tag=y", user: "alice", keys: []string{"key-1"}, wantCode: 409,
			wantBody: `{"code":409,"message":"Idempotency key already used for a different request (job ` + first +
				`); use a new key for a new request","explain":"Request conflict"}`},
		{name: "same key, another route", method: "PUT", path: "/2/nodes/node1.example.com/tags?tag=x", user: "alice", keys: []string{"key-1"}, wantCode: 409},
		{name: "same key, another user", method: "PUT", path: "/2/tags?tag=x", user: "bob", keys: []string{"key-1"}, wantCode: 200, newJob: true},
		{name: "no key", method: "PUT", path: "/2/tags?tag=x", user: "alice", wantCode: 200, newJob: true},
		{name: "empty key", method: "PUT", path: "/2/tags?tag=x", user: "alice", keys: []string{""}, wantCode: 400},
		{name: "key too long", method: "PUT", path: "/2/tags?tag=x", user: "alice", keys: []string{strings.Repeat("k", 256)}, wantCode: 400},
		{name: "longest key", method: "PUT", path: "/2/tags?tag=x", user: "alice", keys: []string{strings.Repeat("k", 255)}, wantCode: 200, newJob: true},
		{name: "non-ASCII key", method: "PUT", path: "/2/tags?tag=x", user: "alice", keys: []string{"clé"}, wantCode: 400},
		{name: "two keys", method: "PUT", path: "/2/tags?tag=x", user: "alice", keys: []string{"a", "b"}, wantCode: 400},
		{name: "bad quoting", method: "PUT", path: "/2/tags?tag=x", user: "alice", keys: []string{`"a"b"`}, wantCode: 400},
		{name: "read ignores a bad key", method: "GET", path: "/2/info", user: "alice", keys: []string{"clé"}, wantCode: 200},
		{name: "non-job write ignores a bad key", method: "DELETE", path: "/2/jobs/1", user: "alice", keys: []string{"clé"}, wantCode: 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(eng.IDs())
			code, body := do(c.method, c.path, c.user, c.keys...)
			if code != c.wantCode || (c.wantBody != "" && body != c.wantBody) {
				t.Errorf("%s %s: %d %s; want %d %s", c.method, c.path, code, body, c.wantCode, c.wantBody)
			}
			if code == 400 && !strings.Contains(body, "Idempotency-Key") {
				t.Errorf("400 body does not name the header: %s", body)
			}
			want := before
			if c.newJob {
				want++
			}
			if n := len(eng.IDs()); n != want {
				t.Errorf("%d jobs, want %d", n, want)
			}
		})
	}
	if len(eng.IDs()) != jobsBefore+3 {
		t.Errorf("%d jobs, want %d", len(eng.IDs()), jobsBefore+3)
	}
}

// TestIdempotencyGRPC: the idempotency-key metadata on job-creating RPCs.
func TestIdempotencyGRPC(t *testing.T) {
	_, conn, eng := newIdemServer(t)
	tags := rapiv2.NewTagServiceClient(conn)
	js := rapiv2.NewJobServiceClient(conn)
	as := func(user, key string) context.Context {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization",
			auth.BasicAuthorization(user, map[string]string{"alice": "apass", "bob": "bpass"}[user]))
		if key != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "idempotency-key", key)
		}
		return ctx
	}
	first, err := tags.AddClusterTags(as("alice", "g1"), &rapiv2.ChangeClusterTagsRequest{Tag: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	delay := &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{Duration: proto.Float64(0)}}}}}
	typed, err := js.SubmitJob(as("alice", "g2"), delay)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		call   func() (*rapiv2.JobSubmission, error)
		want   codes.Code
		sameAs int64 // the job a replay answers (0: a new job)
	}{
		{"retry", func() (*rapiv2.JobSubmission, error) {
			return tags.AddClusterTags(as("alice", "g1"), &rapiv2.ChangeClusterTagsRequest{Tag: []string{"x"}})
		}, codes.OK, first.GetJobId()},
		{"another request", func() (*rapiv2.JobSubmission, error) {
			return tags.AddClusterTags(as("alice", "g1"), &rapiv2.ChangeClusterTagsRequest{Tag: []string{"y"}})
		}, codes.AlreadyExists, 0},
		{"another method", func() (*rapiv2.JobSubmission, error) {
			return tags.DeleteClusterTags(as("alice", "g1"), &rapiv2.ChangeClusterTagsRequest{Tag: []string{"x"}})
		}, codes.AlreadyExists, 0},
		{"another user", func() (*rapiv2.JobSubmission, error) {
			return tags.AddClusterTags(as("bob", "g1"), &rapiv2.ChangeClusterTagsRequest{Tag: []string{"x"}})
		}, codes.OK, 0},
		{"SubmitJob retry", func() (*rapiv2.JobSubmission, error) { return js.SubmitJob(as("alice", "g2"), delay) },
			codes.OK, typed.GetJobId()},
		{"SubmitJob, another job", func() (*rapiv2.JobSubmission, error) {
			return js.SubmitJob(as("alice", "g2"), &rapiv2.SubmitJobRequest{Ops: delay.Ops, Reason: "other"})
		}, codes.AlreadyExists, 0},
		{"bad key", func() (*rapiv2.JobSubmission, error) {
			return tags.AddClusterTags(as("alice", strings.Repeat("k", 256)), &rapiv2.ChangeClusterTagsRequest{Tag: []string{"x"}})
		}, codes.InvalidArgument, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(eng.IDs())
			resp, err := c.call()
			if status.Code(err) != c.want {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, c.want)
			}
			want := before
			switch {
			case err != nil:
			case c.sameAs != 0:
				if resp.GetJobId() != c.sameAs {
					t.Errorf("job %d, want the first job %d", resp.GetJobId(), c.sameAs)
				}
			default:
				want++
			}
			if n := len(eng.IDs()); n != want {
				t.Errorf("%d jobs, want %d", n, want)
			}
		})
	}
}

// TestIdempotencyAcrossSurfaces: the same write over the legacy surface
// and gRPC is the same request.
func TestIdempotencyAcrossSurfaces(t *testing.T) {
	base, conn, _ := newIdemServer(t)
	req, _ := http.NewRequest("PUT", base+"/2/tags?tag=x", nil)
	req.SetBasicAuth("alice", "apass")
	req.Header.Set("Idempotency-Key", "both")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	err = json.NewDecoder(resp.Body).Decode(&id)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("legacy: %d %v", resp.StatusCode, err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", auth.BasicAuthorization("alice", "apass"),
		"idempotency-key", "both")
	got, err := rapiv2.NewTagServiceClient(conn).AddClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{"x"}})
	if err != nil || got.GetJobId() != id {
		t.Errorf("gRPC: %v, %v; want job %d", got, err, id)
	}
}

func TestParseIdempotencyKey(t *testing.T) {
	cases := []struct {
		values  []string
		want    string
		wantErr bool
	}{
		{values: nil, want: ""},
		{values: []string{"8e03978e-40d5-43e8-bc93-6894a57f9324"}, want: "8e03978e-40d5-43e8-bc93-6894a57f9324"},
		{values: []string{`"8e03978e"`}, want: "8e03978e"},
		{values: []string{`"a\"b\\c"`}, want: `a"b\c`},
		{values: []string{`a"b`}, want: `a"b`}, // not quoted: taken as it is
		{values: []string{"with space"}, want: "with space"},
		{values: []string{`""`}, wantErr: true},
		{values: []string{`"a\b"`}, wantErr: true},
		{values: []string{`"a\"`}, wantErr: true},
		{values: []string{"tab\there"}, wantErr: true},
		{values: []string{"x", "x"}, wantErr: true},
	}
	for _, c := range cases {
		got, err := gateway.ParseIdempotencyKey(c.values)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("ParseIdempotencyKey(%q) = %q, %v; want %q (error %v)", c.values, got, err, c.want, c.wantErr)
		}
	}
}
