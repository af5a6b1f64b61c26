package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// authUsers is the users file of the authentication tests.
func authUsers() string {
	return "# authentication tests\n" +
		"clear {cleartext}clear-secret read\n" +
		"plain plain-secret read\n" +
		"hashed {HA1}" + auth.HA1("hashed", "hashed-secret") + " read,write\n" +
		"reader reader-secret read\n" +
		"writer writer-secret write\n" +
		"noopts noopts-secret\n"
}

// authServer serves the golden cluster (plain HTTP + h2c) with the given
// users file; it returns the base URL (no credentials), the users file and
// the JSON log.
func authServer(t *testing.T, users string, configure func(*server.Config)) (base, usersFile string, logs *syncBuffer) {
	t.Helper()
	logs = &syncBuffer{}
	base = anonymous(inProcessWith(t, "testdata/golden-cluster.json", func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		usersFile = filepath.Join(c.DataDir, "rapi", "users")
		if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
			t.Fatal(err)
		}
		if configure != nil {
			configure(c)
		}
	}))
	return base, usersFile, logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// credentials of one row of the matrix: an Authorization value (empty:
// none).
type credentials string

func creds(user, password string) credentials {
	return credentials(auth.BasicAuthorization(user, password))
}

// surfaceCall is one method reached over both surfaces.
type surfaceCall struct {
	name         string
	method, path string
	grpc         func(ctx context.Context, conn *grpc.ClientConn) error
}

var (
	callVersion = surfaceCall{"GET /version (no option needed)", "GET", "/version", func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := rapiv2.NewVersionServiceClient(c).GetVersion(ctx, &rapiv2.GetVersionRequest{})
		return err
	}}
	callQuery = surfaceCall{"GET /2/query (read or write)", "GET", "/2/query/node?fields=name", func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := rapiv2.NewQueryServiceClient(c).Query(ctx, &rapiv2.QueryRequest{Resource: "node", Fields: []string{"name"}})
		return err
	}}
	callWrite = surfaceCall{"PUT /2/tags (write)", "PUT", "/2/tags?tag=authtest", func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := rapiv2.NewTagServiceClient(c).AddClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{"authtest"}})
		return err
	}}
)

// allowed is the pseudo-status of a request that got past authentication
// and authorization: 200, or 501 while writes wait for the job engine.
const allowed = 0

// checkLegacy sends the request and checks the status, the
// WWW-Authenticate header (on 401 only) and the Ganeti error body.
func checkLegacy(t *testing.T, base string, call surfaceCall, c credentials, want int) {
	t.Helper()
	h := map[string]string{}
	if c != "" {
		h["Authorization"] = string(c)
	}
	status, hdr, body := doHeaders(t, call.method, base+call.path, h, "")
	if want == allowed {
		if status != http.StatusOK && status != http.StatusNotImplemented {
			t.Errorf("legacy %s: %d, want 200 or 501 (past authentication)\n%s", call.name, status, body)
		}
		return
	}
	if status != want {
		t.Errorf("legacy %s: %d, want %d\n%s", call.name, status, want, body)
		return
	}
	wantAuth := ""
	if want == http.StatusUnauthorized {
		wantAuth = `Basic realm="Ganeti Remote API"`
	}
	if got := hdr.Get("WWW-Authenticate"); got != wantAuth {
		t.Errorf("legacy %s: WWW-Authenticate %q, want %q", call.name, got, wantAuth)
	}
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Explain string `json:"explain"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("legacy %s: body %s", call.name, body)
	}
	wantMsg := map[int]string{400: "Basic authentication requires credentials", 401: "Unauthorized", 403: "Forbidden"}[want]
	wantExplain := map[int]string{
		400: "Bad request syntax or unsupported method",
		401: "No permission -- see authorization schemes",
		403: "Request forbidden -- authorization will not help",
	}[want]
	if e.Code != want || e.Message != wantMsg || e.Explain != wantExplain {
		t.Errorf("legacy %s: body %s, want code %d message %q explain %q", call.name, body, want, wantMsg, wantExplain)
	}
}

// checkGRPC makes the typed call and checks the code and message.
func checkGRPC(t *testing.T, conn *grpc.ClientConn, call surfaceCall, c credentials, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", string(c))
	}
	err := call.grpc(ctx, conn)
	st := status.Convert(err)
	if want == allowed {
		if st.Code() != codes.OK && st.Code() != codes.Unimplemented {
			t.Errorf("gRPC %s: %v, want OK or Unimplemented (past authentication)", call.name, err)
		}
		return
	}
	wantCode := map[int]codes.Code{400: codes.InvalidArgument, 401: codes.Unauthenticated, 403: codes.PermissionDenied}[want]
	wantMsg := map[int]string{400: "Basic authentication requires credentials", 401: "Unauthorized", 403: "Forbidden"}[want]
	if st.Code() != wantCode || st.Message() != wantMsg {
		t.Errorf("gRPC %s: %v, want %v %q", call.name, err, wantCode, wantMsg)
	}
}

// TestAuthMatrix checks Ganeti's authentication and access rules on both
// surfaces, for a method that needs no option, one that needs read (or
// write) and a write, with authentication required (the default) and with
// AllowAnonymousReads (upstream's default).
func TestAuthMatrix(t *testing.T) {
	strict, _, _ := authServer(t, authUsers(), nil)
	lenient, _, _ := authServer(t, authUsers(), func(c *server.Config) { c.AllowAnonymousReads = true })
	rows := []struct {
		name            string
		creds           credentials
		strict, lenient [3]int // version, query, write
	}{
		{"anonymous", "", [3]int{401, 401, 401}, [3]int{allowed, 401, 401}},
		{"bad password", creds("reader", "wrong"), [3]int{401, 401, 401}, [3]int{401, 401, 401}},
		{"unknown user", creds("nobody", "x"), [3]int{401, 401, 401}, [3]int{401, 401, 401}},
		{"{cleartext} user", creds("clear", "clear-secret"), [3]int{allowed, allowed, 403}, [3]int{allowed, allowed, 403}},
		{"{cleartext} user, scheme as password", creds("clear", "{cleartext}clear-secret"), [3]int{401, 401, 401}, [3]int{401, 401, 401}},
		{"plain cleartext user", creds("plain", "plain-secret"), [3]int{allowed, allowed, 403}, [3]int{allowed, allowed, 403}},
		{"{HA1} user", creds("hashed", "hashed-secret"), [3]int{allowed, allowed, allowed}, [3]int{allowed, allowed, allowed}},
		{"{HA1} user, hash as password", creds("hashed", auth.HA1("hashed", "hashed-secret")), [3]int{401, 401, 401}, [3]int{401, 401, 401}},
		{"read-only user", creds("reader", "reader-secret"), [3]int{allowed, allowed, 403}, [3]int{allowed, allowed, 403}},
		{"write user", creds("writer", "writer-secret"), [3]int{allowed, allowed, allowed}, [3]int{allowed, allowed, allowed}},
		{"user without options", creds("noopts", "noopts-secret"), [3]int{allowed, 403, 403}, [3]int{allowed, 403, 403}},
		{"Basic without credentials", "Basic", [3]int{400, 400, 400}, [3]int{400, 400, 400}},
		{"Digest", "Digest username=reader", [3]int{401, 401, 401}, [3]int{401, 401, 401}},
		{"not base64", "Basic !!!notbase64", [3]int{401, 401, 401}, [3]int{401, 401, 401}},
		{"lower-case scheme", credentials("basic " + string(creds("reader", "reader-secret"))[6:]), [3]int{allowed, allowed, 403}, [3]int{allowed, allowed, 403}},
	}
	servers := []struct {
		name string
		base string
		conn *grpc.ClientConn
	}{
		{"required", strict, dialGRPC(t, strict)},
		{"anonymous-reads", lenient, dialGRPC(t, lenient)},
	}
	for _, row := range rows {
		for si, srv := range servers {
			want := row.strict
			if si == 1 {
				want = row.lenient
			}
			t.Run(row.name+"/"+srv.name, func(t *testing.T) {
				for i, call := range []surfaceCall{callVersion, callQuery, callWrite} {
					checkLegacy(t, srv.base, call, row.creds, want[i])
					checkGRPC(t, srv.conn, call, row.creds, want[i])
				}
			})
		}
	}
}

// waitAuth polls callQuery until it answers want (200 or 401) on both
// surfaces, failing after 2 s.
func waitAuth(t *testing.T, base string, conn *grpc.ClientConn, c credentials, want int) {
	t.Helper()
	wantCode := map[int]codes.Code{200: codes.OK, 401: codes.Unauthenticated}[want]
	deadline := time.Now().Add(2 * time.Second)
	for {
		legacy, _, _ := doHeaders(t, "GET", base+callQuery.path, map[string]string{"Authorization": string(c)}, "")
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", string(c))
		typed := status.Code(callQuery.grpc(ctx, conn))
		if legacy == want && typed == wantCode {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q: legacy %d, gRPC %v; want %d / %v within 2 s", c, legacy, typed, want, wantCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUsersFileReloads edits the users file of a running server: an added
// user, a changed password and a removed user take effect on both
// surfaces within 2 s.
func TestUsersFileReloads(t *testing.T) {
	base, path, _ := authServer(t, "reader reader-secret read\n", nil)
	conn := dialGRPC(t, base)
	newbie, reader := creds("newbie", "newbie-secret"), creds("reader", "reader-secret")
	checkLegacy(t, base, callQuery, newbie, 401)
	checkGRPC(t, conn, callQuery, newbie, 401)

	if err := os.WriteFile(path, []byte("reader reader-secret read\nnewbie newbie-secret read\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitAuth(t, base, conn, newbie, 200)

	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte("newbie newbie-secret read\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitAuth(t, base, conn, reader, 401)
	checkLegacy(t, base, callQuery, reader, 401)
	checkGRPC(t, conn, callQuery, reader, 401)
	checkLegacy(t, base, callQuery, newbie, allowed)
}

// TestMalformedUsersFile: bad lines are skipped (and logged without their
// content), good lines work, the server starts.
func TestMalformedUsersFile(t *testing.T) {
	users := "onefield\n" +
		"good good-secret read\n" +
		"broken {}broken-secret read\n" +
		"weird {SHA}weird-secret read\n" +
		"   \t  \n" +
		"also-good {HA1}" + auth.HA1("also-good", "also-secret") + " read , write\n" +
		"badhash {HA1}notahash-secret write\n"
	base, _, logs := authServer(t, users, nil)
	conn := dialGRPC(t, base)
	for _, c := range []struct {
		creds credentials
		call  surfaceCall
		want  int
	}{
		{creds("good", "good-secret"), callQuery, allowed},
		{creds("good", "good-secret"), callWrite, 403},
		{creds("also-good", "also-secret"), callWrite, allowed},
		{creds("onefield", ""), callVersion, 401},
		{creds("broken", "broken-secret"), callVersion, 401},
		{creds("broken", "{}broken-secret"), callVersion, 401},
		{creds("weird", "weird-secret"), callVersion, 401},
		{creds("badhash", "notahash-secret"), callVersion, 401},
	} {
		checkLegacy(t, base, c.call, c.creds, c.want)
		checkGRPC(t, conn, c.call, c.creds, c.want)
	}
	log := logs.String()
	for _, line := range []string{`"line":1`, `"line":3`, `"line":4`, `"line":7`} {
		if !strings.Contains(log, line) {
			t.Errorf("no warning with %s in the log", line)
		}
	}
	for _, pw := range []string{"good-secret", "broken-secret", "weird-secret", "also-secret", "notahash-secret", auth.HA1("also-good", "also-secret")} {
		if strings.Contains(log, pw) {
			t.Errorf("the log shows a line's password %q:\n%s", pw, log)
		}
	}
}

// TestWriteRateLimit: each user's writes go through a token bucket (here
// burst 3, 2/s); past it, legacy gets 429 with Retry-After and gRPC
// ResourceExhausted with RetryInfo, before the handler runs (writes still
// answer 501 until the job engine); another user is not affected; after
// Retry-After the user may write again. Reads are not limited.
func TestWriteRateLimit(t *testing.T) {
	base, _, _ := authServer(t, authUsers(), func(c *server.Config) { c.WriteRate, c.WriteBurst = 2, 3 })
	conn := dialGRPC(t, base)
	writer, hashed := creds("writer", "writer-secret"), creds("hashed", "hashed-secret")
	for i := 0; i < 3; i++ {
		checkLegacy(t, base, callWrite, writer, allowed)
	}
	code, hdr, body := doHeaders(t, "PUT", base+callWrite.path, map[string]string{"Authorization": string(writer)}, "")
	retry, _ := strconv.Atoi(hdr.Get("Retry-After"))
	var e struct {
		Code    int
		Message string
	}
	if code != http.StatusTooManyRequests || retry < 1 || retry > 2 || json.Unmarshal(body, &e) != nil || e.Code != 429 || e.Message == "" {
		t.Fatalf("4th write: %d Retry-After %q %s", code, hdr.Get("Retry-After"), body)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", string(writer))
	err := callWrite.grpc(ctx, conn)
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || retryInfo(st) <= 0 {
		t.Fatalf("typed write over the limit: %v (RetryInfo %v)", err, retryInfo(status.Convert(err)))
	}
	checkLegacy(t, base, callWrite, hashed, allowed) // another user's bucket
	for i := 0; i < 5; i++ {
		checkLegacy(t, base, callQuery, writer, allowed) // reads are not limited
	}
	time.Sleep(time.Duration(retry) * time.Second)
	checkLegacy(t, base, callWrite, writer, allowed)
}

func retryInfo(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// TestAuditLog: writes and refused requests are logged as structured
// records (user, source address, RPC, legacy method and route, outcome),
// and no password or Authorization value ever reaches the log.
func TestAuditLog(t *testing.T) {
	base, _, logs := authServer(t, authUsers()+"victim hunter2-secret read\n", nil)
	conn := dialGRPC(t, base)
	checkLegacy(t, base, callWrite, creds("writer", "writer-secret"), allowed)
	checkGRPC(t, conn, callWrite, creds("hashed", "hashed-secret"), allowed)
	checkLegacy(t, base, callQuery, creds("victim", "hunter2-wrong"), 401)
	checkGRPC(t, conn, callWrite, creds("reader", "reader-secret"), 403)
	checkLegacy(t, base, callVersion, "", 401)

	var records []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if r["msg"] == "audit" {
			records = append(records, r)
		}
	}
	find := func(want map[string]any) {
		t.Helper()
	next:
		for _, r := range records {
			for k, v := range want {
				if fmt.Sprint(r[k]) != fmt.Sprint(v) {
					continue next
				}
			}
			if src, _ := r["source"].(string); !strings.HasPrefix(src, "127.0.0.1:") {
				t.Errorf("record %v: source %q", r, src)
			}
			return
		}
		t.Errorf("no audit record with %v in\n%v", want, records)
	}
	find(map[string]any{"event": "write", "user": "writer", "rpc": "/ganeti.rapi.v2.TagService/AddClusterTags",
		"http_method": "PUT", "http_route": "/2/tags", "http_path": "/2/tags"})
	find(map[string]any{"event": "write", "user": "hashed", "rpc": "/ganeti.rapi.v2.TagService/AddClusterTags"})
	find(map[string]any{"event": "denied", "user": "victim", "code": "Unauthenticated", "reason": "wrong password",
		"http_method": "GET", "http_route": "/2/query/{resource}", "http_path": "/2/query/node"})
	find(map[string]any{"event": "denied", "user": "reader", "code": "PermissionDenied"})
	find(map[string]any{"event": "denied", "user": "", "code": "Unauthenticated", "reason": "no credentials", "http_path": "/version"})
	log := logs.String()
	for _, secret := range []string{"hunter2", "writer-secret", "hashed-secret", "reader-secret",
		string(creds("writer", "writer-secret"))[6:], string(creds("victim", "hunter2-wrong"))[6:], "Basic "} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains %q:\n%s", secret, log)
		}
	}
}

// TestLegacyAuthorizationBytes: Ganeti reads headers as Latin-1, so a
// no-break space or NEL separates the scheme from the credentials and
// non-ASCII text after the credentials is ignored; such values, which gRPC
// metadata cannot carry, still reach the services correctly.
func TestLegacyAuthorizationBytes(t *testing.T) {
	base, _, _ := authServer(t, authUsers(), nil)
	b64 := string(creds("reader", "reader-secret"))[len("Basic "):]
	for _, c := range []struct {
		header string
		want   int
	}{
		{"Basic\xa0" + b64, allowed},
		{"Basic " + b64 + " \xe9t\xe9", allowed},
		{"Basic\x85", 400},
		{"Basic " + b64 + "\xe9", 401}, // not ASCII before decoding
		{"Digest\xa0" + b64, 401},
	} {
		checkLegacy(t, base, callQuery, credentials(c.header), c.want)
	}
}

// TestTypedOnlyAccess: SubmitJob needs write, WatchJob read or write;
// health checking and reflection need no credentials, even with
// authentication required.
func TestTypedOnlyAccess(t *testing.T) {
	base, _, _ := authServer(t, authUsers(), nil)
	conn := dialGRPC(t, base)
	jobs := rapiv2.NewJobServiceClient(conn)
	submit := func(ctx context.Context) error {
		_, err := jobs.SubmitJob(ctx, &rapiv2.SubmitJobRequest{})
		return err
	}
	watch := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		stream, err := jobs.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: 1})
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	}
	for _, c := range []struct {
		name   string
		call   func(context.Context) error
		creds  credentials
		denied codes.Code // OK: got past authentication
	}{
		{"SubmitJob anonymous", submit, "", codes.Unauthenticated},
		{"SubmitJob reader", submit, creds("reader", "reader-secret"), codes.PermissionDenied},
		{"SubmitJob writer", submit, creds("writer", "writer-secret"), codes.OK},
		{"WatchJob anonymous", watch, "", codes.Unauthenticated},
		{"WatchJob without options", watch, creds("noopts", "noopts-secret"), codes.PermissionDenied},
		{"WatchJob reader", watch, creds("reader", "reader-secret"), codes.OK},
		{"WatchJob writer", watch, creds("writer", "writer-secret"), codes.OK},
	} {
		ctx := context.Background()
		if c.creds != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", string(c.creds))
		}
		code := status.Code(c.call(ctx))
		if c.denied == codes.OK {
			if code == codes.Unauthenticated || code == codes.PermissionDenied {
				t.Errorf("%s: %v, want past authentication", c.name, code)
			}
		} else if code != c.denied {
			t.Errorf("%s: %v, want %v", c.name, code, c.denied)
		}
	}

	anon := dialGRPC(t, anonymous(base))
	if h, err := healthpb.NewHealthClient(anon).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("anonymous health check: %v %v", h, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(anon).ServerReflectionInfo(context.Background())
	if err == nil {
		err = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	}
	if err == nil {
		_, err = stream.Recv()
	}
	if err != nil {
		t.Errorf("anonymous reflection: %v", err)
	}
}
