package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/gateway/v1"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// The user of the clusters tests whose write option is scoped to cluster a.
const (
	scopedUser     = "scoped"
	scopedPassword = "scoped-password"
)

// clustersFront is an in-process gateway in front of several clusters.
type clustersFront struct {
	Base  string // http://e2e:...@127.0.0.1:port
	Addr  string
	Admin string // the admin listener's address
}

// startClustersFront starts an in-process gateway with the clusters file
// (the YAML text), the test users and scopedUser, and an admin listener.
func startClustersFront(t *testing.T, file string, configure func(*server.Config)) *clustersFront {
	t.Helper()
	dataDir := t.TempDir()
	users := writeTestUsers(t, dataDir)
	f, err := os.OpenFile(users, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s %s read,write@a\n", scopedUser, scopedPassword)
	f.Close()
	path := filepath.Join(t.TempDir(), "clusters.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		DataDir:      dataDir,
		Insecure:     true,
		ClustersFile: path,
		AdminListen:  "127.0.0.1:0",
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Upstream:     server.UpstreamConfig{MaxConcurrent: 64, HealthInterval: 200 * time.Millisecond, Timeout: 8 * time.Second},
	}
	if configure != nil {
		configure(&cfg)
	}
	_, addr, admin := serveApp(t, cfg)
	return &clustersFront{Base: withCreds(addr), Addr: addr, Admin: admin}
}

// twoUpstreams starts two simulated gateways and returns the clusters file
// of a gateway in front of them as clusters a and b (hosts a.example.com
// and b.example.com), plus extra lines for b's entry.
func twoUpstreams(t *testing.T, bExtra string) string {
	t.Helper()
	pw := upstreamPasswordFile(t)
	entry := func(name, back string) string {
		return fmt.Sprintf("- name: %s\n  upstream: %s\n  user: %s\n  password_file: %s\n  hosts: [%s.example.com]\n",
			name, anonymous(back), e2eUser, pw, name)
	}
	return "clusters:\n" + entry("a", inProcess(t, "")) + entry("b", inProcess(t, "")) + bExtra
}

// hostDo sends a legacy request with a Host header ("" keeps the URL's).
func hostDo(t *testing.T, method, url, host, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, []byte(strings.TrimSpace(string(data)))
}

// waitJobByHost waits until job id of the cluster host reaches has ended
// and returns its status.
func waitJobByHost(t *testing.T, base, host string, id int64) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := hostDo(t, "GET", fmt.Sprintf("%s/2/jobs/%d", base, id), host, "")
		if code != http.StatusOK {
			t.Fatalf("GET /2/jobs/%d via %s: %d %s", id, host, code, body)
		}
		var job struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(body, &job); err != nil {
			t.Fatal(err)
		}
		switch job.Status {
		case "success", "error", "canceled":
			return job.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d via %s still %s", id, host, job.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantLegacyError(t *testing.T, what string, code int, body []byte, wantCode int) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%s: status %d, want %d (%s)", what, code, wantCode, body)
		return
	}
	var e struct {
		Code    *int    `json:"code"`
		Message *string `json:"message"`
		Explain *string `json:"explain"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code == nil || *e.Code != wantCode || e.Message == nil || e.Explain == nil {
		t.Errorf("%s: body %s, want the legacy {code, message, explain}", what, body)
	}
}

func clusterCtx(name string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "ganeti-cluster", name)
}

// TestClustersRouting: two upstream clusters that both have a job 1;
// Host a and b (legacy) and ganeti-cluster: a|b (gRPC) reach the right
// one; an unknown cluster is 404 / NOT_FOUND, and so is a request naming
// none without a default cluster.
func TestClustersRouting(t *testing.T) {
	front := startClustersFront(t, twoUpstreams(t, ""), nil)
	base := front.Base
	for _, c := range []string{"a", "b"} {
		host := c + ".example.com:5080" // the port is ignored
		code, body := hostDo(t, "PUT", base+"/2/tags?tag=from-"+c, host, "")
		if code != http.StatusOK || strings.TrimSpace(string(body)) != "1" {
			t.Fatalf("PUT /2/tags via %s: %d %s, want job 1 (each cluster its own queue)", host, code, body)
		}
		if st := waitJobByHost(t, base, host, 1); st != "success" {
			t.Fatalf("job 1 of %s: %s", c, st)
		}
	}
	for _, c := range []string{"a", "b"} {
		// By Host (in any case, with a trailing dot) and by name.
		for _, host := range []string{c + ".example.com", strings.ToUpper(c) + ".EXAMPLE.com.", c} {
			code, body := hostDo(t, "GET", base+"/2/tags", host, "")
			if code != http.StatusOK || string(body) != `["demo","from-`+c+`"]` {
				t.Errorf("GET /2/tags via Host %s: %d %s, want [\"demo\",\"from-%s\"]", host, code, body, c)
			}
		}
		code, body := hostDo(t, "GET", base+"/2/jobs/1", c+".example.com", "")
		if code != http.StatusOK || !strings.Contains(string(body), `"from-`+c+`"`) {
			t.Errorf("GET /2/jobs/1 via %s: %d %s", c, code, body)
		}
	}

	conn := dialGRPC(t, base)
	tags := rapiv2.NewTagServiceClient(conn)
	jobs := rapiv2.NewJobServiceClient(conn)
	for _, c := range []string{"a", "b"} {
		got, err := tags.ListClusterTags(clusterCtx(c), &rapiv2.ListClusterTagsRequest{})
		if err != nil || len(got.GetTags()) != 2 || got.GetTags()[1] != "from-"+c {
			t.Errorf("gRPC ListClusterTags on %s: %v %v", c, got, err)
		}
		job, err := jobs.GetJob(clusterCtx(c), &rapiv2.GetJobRequest{JobId: 1})
		if err != nil || job.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS {
			t.Errorf("gRPC GetJob 1 on %s: %v %v", c, job, err)
		}
		// A gRPC write goes to the named cluster only.
		sub, err := tags.AddClusterTags(clusterCtx(c), &rapiv2.ChangeClusterTagsRequest{Tag: []string{"grpc-" + c}})
		if err != nil || sub.GetJobId() != 2 {
			t.Fatalf("gRPC AddClusterTags on %s: %v %v, want job 2", c, sub, err)
		}
		waitJobByHost(t, base, c, 2)
		code, body := hostDo(t, "GET", base+"/2/tags", c, "")
		if code != http.StatusOK || string(body) != `["demo","from-`+c+`","grpc-`+c+`"]` {
			t.Errorf("after the gRPC write, GET /2/tags of %s: %s", c, body)
		}
	}

	// Unknown clusters, and none named without a default.
	code, body := hostDo(t, "GET", base+"/2/tags", "c.example.com", "")
	wantLegacyError(t, "Host c.example.com", code, body, http.StatusNotFound)
	code, body = hostDo(t, "GET", base+"/2/info", "", "")
	wantLegacyError(t, "no Host of a cluster, no default", code, body, http.StatusNotFound)
	code, body = hostDo(t, "PUT", base+"/2/tags?tag=x", "c.example.com", "")
	wantLegacyError(t, "a write to an unknown cluster", code, body, http.StatusNotFound)
	for _, ctx := range []context.Context{clusterCtx("c"), clusterCtx("a.example.com"), context.Background()} {
		_, err := tags.ListClusterTags(ctx, &rapiv2.ListClusterTagsRequest{})
		if status.Code(err) != codes.NotFound {
			md, _ := metadata.FromOutgoingContext(ctx)
			t.Errorf("gRPC with %v: %v, want NOT_FOUND", md.Get("ganeti-cluster"), err)
		}
	}
	// The route check comes first: an unknown path is the usual 404.
	code, _ = hostDo(t, "GET", base+"/2/nope", "a", "")
	if code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
}

// TestClustersScopedOptions: a user whose write option is scoped to a
// (write@a) writes on a, gets 403 / PERMISSION_DENIED on b, and reads both.
func TestClustersScopedOptions(t *testing.T) {
	logs := &syncBuffer{}
	front := startClustersFront(t, twoUpstreams(t, ""), func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	scoped := "http://" + scopedUser + ":" + scopedPassword + "@" + front.Addr
	code, body := hostDo(t, "PUT", scoped+"/2/tags?tag=mine", "a.example.com", "")
	if code != http.StatusOK {
		t.Errorf("write@a writing on a: %d %s", code, body)
	}
	code, body = hostDo(t, "PUT", scoped+"/2/tags?tag=mine", "b.example.com", "")
	wantLegacyError(t, "write@a writing on b", code, body, http.StatusForbidden)
	for _, c := range []string{"a", "b"} {
		if code, body := hostDo(t, "GET", scoped+"/2/tags", c, ""); code != http.StatusOK {
			t.Errorf("read on %s: %d %s", c, code, body)
		}
	}
	tags := rapiv2.NewTagServiceClient(dialGRPC(t, scoped))
	if _, err := tags.AddClusterTags(clusterCtx("b"), &rapiv2.ChangeClusterTagsRequest{Tag: []string{"x"}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gRPC write@a writing on b: %v, want PERMISSION_DENIED", err)
	}
	if _, err := tags.AddClusterTags(clusterCtx("a"), &rapiv2.ChangeClusterTagsRequest{Tag: []string{"x"}}); err != nil {
		t.Errorf("gRPC write@a writing on a: %v", err)
	}
	// Nothing reached b.
	if _, body := hostDo(t, "GET", front.Base+"/2/tags", "b", ""); string(body) != `["demo"]` {
		t.Errorf("b's tags: %s, want none", body)
	}
	// The refusals are audited with the cluster.
	denied := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["event"] == "denied" && rec["user"] == scopedUser {
			denied++
			if rec["cluster"] != "b" {
				t.Errorf("denied record without cluster b: %s", l)
			}
		}
	}
	if denied != 2 {
		t.Errorf("%d denied records of %s, want 2 (legacy, gRPC)", denied, scopedUser)
	}
}

// TestClustersDefault: requests that name no cluster (no Host of a
// cluster, no ganeti-cluster metadata) go to the default cluster; the
// directory and the health checks list every cluster.
func TestClustersDefault(t *testing.T) {
	front := startClustersFront(t, twoUpstreams(t, "  default: true\n"), nil)
	base := front.Base
	if code, body := hostDo(t, "PUT", base+"/2/tags?tag=dflt", "b", ""); code != http.StatusOK {
		t.Fatalf("PUT via b: %d %s", code, body)
	}
	waitJobByHost(t, base, "b", 1)
	code, body := hostDo(t, "GET", base+"/2/tags", "", "") // Host 127.0.0.1:port
	if code != http.StatusOK || string(body) != `["demo","dflt"]` {
		t.Errorf("without a cluster's Host: %d %s, want the default cluster b's tags", code, body)
	}
	if _, body := hostDo(t, "GET", base+"/2/tags", "a", ""); string(body) != `["demo"]` {
		t.Errorf("a's tags: %s", body)
	}
	conn := dialGRPC(t, base)
	got, err := rapiv2.NewTagServiceClient(conn).ListClusterTags(context.Background(), &rapiv2.ListClusterTagsRequest{})
	if err != nil || len(got.GetTags()) != 2 || got.GetTags()[1] != "dflt" {
		t.Errorf("gRPC without ganeti-cluster: %v %v", got, err)
	}
	if _, err := rapiv2.NewTagServiceClient(conn).ListClusterTags(clusterCtx("zz"), &rapiv2.ListClusterTagsRequest{}); status.Code(err) != codes.NotFound {
		t.Errorf("an unknown cluster with a default: %v, want NOT_FOUND", err)
	}
	if code, body := hostDo(t, "GET", base+"/2/tags", "zz.example.com", ""); code != http.StatusOK || string(body) != `["demo","dflt"]` {
		t.Errorf("an unknown Host with a default: %d %s", code, body)
	}

	// The directory and the health.
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range []string{"a", "b"} {
		for {
			resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "cluster/" + c})
			if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("health of cluster/%s: %v %v", c, resp, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "cluster/zz"}); status.Code(err) != codes.NotFound {
		t.Errorf("health of an unknown cluster: %v", err)
	}
	dir, err := gatewayv1.NewClusterDirectoryServiceClient(conn).ListClusters(context.Background(), &gatewayv1.ListClustersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(dir.GetClusters()); n != 2 {
		t.Fatalf("ListClusters: %d clusters", n)
	}
	for i, c := range dir.GetClusters() {
		want := []string{"a", "b"}[i]
		if c.GetName() != want || c.GetTransport() != gatewayv1.Transport_TRANSPORT_RAPI || c.GetIsDefault() != (want == "b") ||
			c.GetHealth() != gatewayv1.Health_HEALTH_SERVING || len(c.GetHosts()) != 1 || c.GetHosts()[0] != want+".example.com" {
			t.Errorf("ListClusters[%d] = %v", i, c)
		}
	}
	// ListClusters needs a user.
	if _, err := gatewayv1.NewClusterDirectoryServiceClient(dialGRPC(t, anonymous(base))).ListClusters(context.Background(),
		&gatewayv1.ListClustersRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("anonymous ListClusters: %v", err)
	}
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/healthz", 200, "ok\ncluster a: ok\ncluster b: ok\n"},
		{"/healthz/cluster/a", 200, "ok\n"},
		{"/healthz/cluster/zz", 404, "unknown cluster\n"},
	} {
		code, _, body := do(t, "GET", "http://"+front.Admin+tc.path, "", "")
		if code != tc.code || string(body) != tc.body {
			t.Errorf("admin %s: %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
		}
	}
}

// TestClustersUnhealthyCluster: a cluster whose upstream does not answer
// is NOT_SERVING (gRPC health, directory, admin /healthz/cluster/<name>)
// and its requests fail, while the other cluster serves.
func TestClustersUnhealthyCluster(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there
	file := "clusters:\n- name: good\n  upstream: sim\n  default: true\n- name: gone\n  upstream: http://" + deadAddr + "\n"
	front := startClustersFront(t, file, nil)
	conn := dialGRPC(t, front.Base)
	hc := healthpb.NewHealthClient(conn)
	for c, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{"good": healthpb.HealthCheckResponse_SERVING, "gone": healthpb.HealthCheckResponse_NOT_SERVING} {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "cluster/" + c})
		if err != nil || resp.GetStatus() != want {
			t.Errorf("cluster/%s: %v %v, want %v", c, resp, err, want)
		}
	}
	dir, err := gatewayv1.NewClusterDirectoryServiceClient(conn).ListClusters(context.Background(), &gatewayv1.ListClustersRequest{})
	if err != nil || len(dir.GetClusters()) != 2 {
		t.Fatal(dir, err)
	}
	if g := dir.GetClusters()[0]; g.GetTransport() != gatewayv1.Transport_TRANSPORT_SIM || g.GetHealth() != gatewayv1.Health_HEALTH_SERVING {
		t.Errorf("good: %v", g)
	}
	if g := dir.GetClusters()[1]; g.GetHealth() != gatewayv1.Health_HEALTH_NOT_SERVING || g.GetHealthMessage() == "" ||
		strings.Contains(g.GetHealthMessage(), deadAddr) {
		t.Errorf("gone: %v", g)
	}
	code, _, body := do(t, "GET", "http://"+front.Admin+"/healthz", "", "")
	if code != 200 || string(body) != "ok\ncluster good: ok\ncluster gone: unavailable\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _, _ := do(t, "GET", "http://"+front.Admin+"/healthz/cluster/gone", "", ""); code != 503 {
		t.Errorf("/healthz/cluster/gone: %d", code)
	}
	if code, body := hostDo(t, "GET", front.Base+"/2/info", "gone", ""); code != http.StatusBadGateway || strings.Contains(string(body), deadAddr) {
		t.Errorf("a read of the gone cluster: %d %s, want 502 without the address", code, body)
	}
	if code, body := hostDo(t, "GET", front.Base+"/2/info", "good", ""); code != http.StatusOK {
		t.Errorf("a read of the good cluster: %d %s", code, body)
	}
}

// TestClustersFlags: --clusters is checked at startup and excludes
// --upstream.
func TestClustersFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clusters.yaml")
	if err := os.WriteFile(path, []byte("clusters:\n- name: a\n  upstream: sim\n  default: true\n- name: b\n  upstream: sim\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{DataDir: t.TempDir(), ClustersFile: path, Insecure: true}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "at most one cluster can be the simulated one") {
		t.Errorf("two sims: %v", err)
	}
	cfg = server.Config{DataDir: t.TempDir(), ClustersFile: path, Insecure: true, Upstream: server.UpstreamConfig{URLs: []string{"https://x:5080"}}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--clusters and --upstream exclude each other") {
		t.Errorf("with --upstream: %v", err)
	}
}

// TestClustersOfficialClientConformance runs the official Python client's
// conformance suite through one gateway process in front of two clusters,
// each selected by the Host the client connects to: "localhost" is a (the
// gateway's own simulated cluster, the default), "127.0.0.1" is b (a
// simulated gateway behind it as a RAPI upstream). Both clusters are
// seeded from the same cluster file: each run finds its objects as the
// suite expects, so a request that reached the other cluster would fail.
func TestClustersOfficialClientConformance(t *testing.T) {
	requireRapiClient(t)
	clusterFile := filepath.Join(repoRoot(t), "testdata", "conformance-cluster.json")
	backDir := t.TempDir()
	writeTestUsers(t, backDir)
	back := startServerRaw(t, backDir, "--cluster-file", clusterFile, "--write-rate", "off", "--insecure")
	file := fmt.Sprintf("clusters:\n- name: a\n  upstream: sim\n  hosts: [localhost]\n  default: true\n"+
		"- name: b\n  upstream: http://%s\n  user: %s\n  password_file: %s\n  hosts: [127.0.0.1]\n",
		back.Addr, e2eUser, upstreamPasswordFile(t))
	path := filepath.Join(t.TempDir(), "clusters.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	writeTestUsers(t, dataDir)
	front := startServerRaw(t, dataDir, "--clusters", path, "--cluster-file", clusterFile, "--write-rate", "off",
		"--upstream-max-concurrent", "64")
	_, port, _ := strings.Cut(front.Addr, ":")
	certFile := filepath.Join(dataDir, "tls.crt")

	for _, run := range []struct {
		host, cluster string
		blockerAddr   string
		blockerCert   string
		viaRAPI       bool
	}{
		{"localhost", "a", front.Addr, certFile, false},
		{"127.0.0.1", "b", back.Addr, "", true},
	} {
		t.Run(run.cluster, func(t *testing.T) {
			// The blocker job (OP_TEST_DELAY, over gRPC): on a through the
			// front (a is the default cluster), on b at the back (RAPI
			// cannot reach OP_TEST_DELAY).
			blocker := submitBlocker(t, run.blockerAddr, run.blockerCert)
			ctx, cancel := context.WithTimeout(context.Background(), conformanceTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, debianPython, conformanceScript)
			cmd.Env = append(os.Environ(),
				"RAPI_HOST="+run.host, "RAPI_PORT="+port, "RAPI_CAFILE="+certFile,
				"RAPI_USER="+e2eUser, "RAPI_PASSWORD="+e2ePassword,
				"CLUSTER_FILE="+clusterFile, "BLOCKER_JOB="+strconv.FormatInt(blocker, 10))
			out, err := cmd.CombinedOutput()
			t.Logf("%s", out)
			if ctx.Err() != nil {
				t.Fatalf("the conformance suite did not end within %s\nserver log:\n%s", conformanceTimeout, front.Logs())
			}
			summary := regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed\n*\z`).FindSubmatch(out)
			if summary == nil {
				t.Fatalf("no final summary line from the script (%v)\nserver log:\n%s", err, front.Logs())
			}
			passed, _ := strconv.Atoi(string(summary[1]))
			failed, _ := strconv.Atoi(string(summary[2]))
			minPassed, knownFailed := minConformanceChecks, 0
			if run.viaRAPI {
				for _, m := range regexp.MustCompile(`(?m)^FAIL (.*)$`).FindAllSubmatch(out, -1) {
					if !knownUpstreamFailure(string(m[1])) {
						t.Errorf("through the RAPI upstream, check failed: %s", m[1])
					}
					knownFailed++
				}
				minPassed -= len(upstreamKnownFailures) - 1
			}
			if failed > knownFailed {
				t.Errorf("%d checks failed (see the script output above)", failed)
			}
			if passed < minPassed {
				t.Errorf("%d checks passed, want at least %d", passed, minPassed)
			}
			if t.Failed() {
				t.Logf("server log:\n%s", front.Logs())
			}
		})
	}
	// Each run's writes reached its own cluster only: b's jobs are the
	// back's, a's the front's simulated cluster's.
	ca, _ := hostDoTLS(t, front.Addr, certFile, "localhost", "/2/jobs")
	cb, _ := hostDoTLS(t, front.Addr, certFile, "127.0.0.1", "/2/jobs")
	if ca != http.StatusOK || cb != http.StatusOK {
		t.Errorf("GET /2/jobs: %d (a), %d (b)", ca, cb)
	}
}

// hostDoTLS sends GET path to a TLS gateway as the e2e user, with the
// given server name (SNI) and Host.
func hostDoTLS(t *testing.T, addr, certFile, host, path string) (int, []byte) {
	t.Helper()
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host}}}
	req, err := http.NewRequest("GET", "https://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.SetBasicAuth(e2eUser, e2ePassword)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// TestClustersTelemetry: ganeti.cluster is an attribute of the request
// spans and of the request metrics, legacy (by Host) and gRPC (by
// metadata); a cluster name a client makes up labels nothing.
func TestClustersTelemetry(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	mp := telemetry.NewMeterProvider(sdkmetric.WithReader(reader))
	front := startClustersFront(t, twoUpstreams(t, ""), func(c *server.Config) {
		c.Telemetry = &telemetry.Providers{TracerProvider: tp, MeterProvider: mp}
	})
	if code, body := hostDo(t, "GET", front.Base+"/2/tags", "a", ""); code != http.StatusOK {
		t.Fatalf("GET via a: %d %s", code, body)
	}
	tags := rapiv2.NewTagServiceClient(dialGRPC(t, front.Base))
	if _, err := tags.ListClusterTags(clusterCtx("b"), &rapiv2.ListClusterTagsRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tags.ListClusterTags(clusterCtx("made-up"), &rapiv2.ListClusterTagsRequest{}); status.Code(err) != codes.NotFound {
		t.Fatal(err)
	}
	for _, c := range []string{"a", "b"} {
		found := false
		for deadline := time.Now().Add(5 * time.Second); !found && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			for _, s := range sr.Ended() {
				if s.SpanKind() == trace.SpanKindServer && hasAttrs(s, telemetry.AttrCluster.String(c)) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("no server span with ganeti.cluster=%s", c)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	labels := map[string]map[string]bool{} // metric -> ganeti.cluster values
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				continue
			}
			for _, dp := range h.DataPoints {
				if v, ok := dp.Attributes.Value(telemetry.AttrCluster); ok {
					if labels[m.Name] == nil {
						labels[m.Name] = map[string]bool{}
					}
					labels[m.Name][v.AsString()] = true
				}
			}
		}
	}
	if !labels["http.server.request.duration"]["a"] {
		t.Errorf("http.server.request.duration has no ganeti.cluster=a point: %v", labels)
	}
	rpcB := false
	for name, vals := range labels {
		if strings.HasPrefix(name, "rpc.server.") && vals["b"] {
			rpcB = true
		}
		if vals["made-up"] {
			t.Errorf("%s is labeled with a made-up cluster", name)
		}
	}
	if !rpcB {
		t.Errorf("no rpc.server metric with ganeti.cluster=b: %v", labels)
	}
}

// TestClustersHtools points Debian's hscan, hspace and hbal at one gateway
// process in front of two clusters, by Host: "localhost" is a (the
// gateway's own simulated cluster, on the balanced multi-group htools
// cluster), "127.0.0.1" is b (a simulated gateway behind it as a RAPI
// upstream, on the unbalanced cluster). Each tool must report the figures
// of its cluster's file, and hbal must find a balanced and b not.
func TestClustersHtools(t *testing.T) {
	hscan, hspace, hbal := requireHtool(t, "hscan"), requireHtool(t, "hspace"), requireHtool(t, "hbal")
	fileA := filepath.Join(repoRoot(t), "testdata", "htools-cluster.json")
	fileB := filepath.Join(repoRoot(t), "testdata", "unbalanced-cluster.json")
	backDir := t.TempDir()
	writeTestUsers(t, backDir)
	back := startServerRaw(t, backDir, "--cluster-file", fileB, "--insecure")
	file := fmt.Sprintf("clusters:\n- name: a\n  upstream: sim\n  hosts: [localhost]\n"+
		"- name: b\n  upstream: http://%s\n  user: %s\n  password_file: %s\n  hosts: [127.0.0.1]\n",
		back.Addr, e2eUser, upstreamPasswordFile(t))
	path := filepath.Join(t.TempDir(), "clusters.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	writeTestUsers(t, dataDir)
	front := startServerRaw(t, dataDir, "--clusters", path, "--cluster-file", fileA, "--allow-anonymous-reads")
	_, port, _ := strings.Cut(front.Addr, ":")

	for _, c := range []struct {
		name, host, file string
		balanced         bool
	}{{"a", "localhost", "testdata/htools-cluster.json", true}, {"b", "127.0.0.1", "testdata/unbalanced-cluster.json", false}} {
		t.Run(c.name, func(t *testing.T) {
			want := htoolsExpect(t, c.file)
			url := "https://" + c.host + ":" + port
			dir := t.TempDir()
			runHtool(t, front, hscan, "-d", dir, url)
			files, _ := filepath.Glob(filepath.Join(dir, "*.data"))
			if len(files) != 1 {
				t.Fatalf("hscan wrote %v", files)
			}
			data, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			checkHscanData(t, string(data), want)

			out := runHtool(t, front, hspace, "-m", url, "--machine-readable", "-l", "1")
			got := hspaceFigures(out)
			for k, w := range map[string]int64{
				"HTS_CLUSTER_NODES": int64(len(want.nodes)), "HTS_INI_INST_CNT": int64(len(want.instances)),
				"HTS_CLUSTER_MEM": want.tMem, "HTS_CLUSTER_DSK": want.tDsk, "HTS_INI_MEM_FREE": want.fMem,
			} {
				if got[k] != strconv.FormatInt(w, 10) {
					t.Errorf("hspace via %s: %s=%s, want %d", c.host, k, got[k], w)
				}
			}
			moves := 0
			for g := range want.groups {
				args := []string{"-m", url, "-C"}
				if len(want.groups) > 1 {
					args = append(args, "-G", g)
				}
				moves += parseHbal(t, runHtool(t, front, hbal, args...)).length
			}
			if c.balanced != (moves == 0) {
				t.Errorf("hbal via %s proposes %d moves; balanced: %v", c.host, moves, c.balanced)
			}
		})
	}
}

// TestClustersSNI: over TLS, a legacy request whose Host names no cluster
// (an address) goes to the cluster its TLS server name names.
func TestClustersSNI(t *testing.T) {
	front := startClustersFront(t, twoUpstreams(t, ""), func(c *server.Config) { c.Insecure = false })
	get := func(method, sni, path string) (int, string) {
		t.Helper()
		//nolint:gosec // the test server's self-signed certificate names no cluster host
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: sni}}}
		defer c.CloseIdleConnections()
		req, err := http.NewRequest(method, "https://"+front.Addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(e2eUser, e2ePassword)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(data))
	}
	if code, body := get("PUT", "a.example.com", "/2/tags?tag=sni-a"); code != http.StatusOK || body != "1" {
		t.Fatalf("PUT via SNI a: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := get("GET", "a.example.com", "/2/tags")
		if body == `["demo","sni-a"]` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tags of a via SNI: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get("GET", "b.example.com", "/2/tags"); code != http.StatusOK || body != `["demo"]` {
		t.Errorf("tags of b via SNI: %d %s", code, body)
	}
	if code, _ := get("GET", "", "/2/tags"); code != http.StatusNotFound {
		t.Errorf("no SNI, no Host of a cluster, no default: %d, want 404", code)
	}
}

// TestClustersSimAndUpstreamAnswers: the services' caches of converted
// answers (cluster info, bulk lists) never mix clusters: requests that
// alternate between the simulated cluster and an upstream on another
// cluster file each get their own cluster's answers.
func TestClustersSimAndUpstreamAnswers(t *testing.T) {
	back := inProcess(t, "testdata/htools-cluster.json")
	file := fmt.Sprintf("clusters:\n- name: s\n  upstream: sim\n- name: u\n  upstream: %s\n  user: %s\n  password_file: %s\n",
		anonymous(back), e2eUser, upstreamPasswordFile(t))
	front := startClustersFront(t, file, nil)
	want := map[string][2]string{} // cluster -> (GET /2/info, GET /2/instances?bulk=1) directly
	_, _, infoS := do(t, "GET", inProcess(t, "")+"/2/info", "", "")
	_, _, instS := do(t, "GET", inProcess(t, "")+"/2/instances?bulk=1", "", "")
	_, _, infoU := do(t, "GET", back+"/2/info", "", "")
	_, _, instU := do(t, "GET", back+"/2/instances?bulk=1", "", "")
	want["s"] = [2]string{clusterName(t, infoS), instanceNames(t, instS)}
	want["u"] = [2]string{clusterName(t, infoU), instanceNames(t, instU)}
	if want["s"] == want["u"] {
		t.Fatalf("the two cluster files look alike: %v", want)
	}
	for i := 0; i < 6; i++ {
		c := []string{"s", "u"}[i%2]
		_, info := hostDo(t, "GET", front.Base+"/2/info", c, "")
		_, inst := hostDo(t, "GET", front.Base+"/2/instances?bulk=1", c, "")
		if got := [2]string{clusterName(t, info), instanceNames(t, inst)}; got != want[c] {
			t.Errorf("round %d, cluster %s: %v, want %v", i, c, got, want[c])
		}
	}
}

func clusterName(t *testing.T, info []byte) string {
	t.Helper()
	var v struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(info, &v); err != nil || v.Name == "" {
		t.Fatalf("GET /2/info: %s", info)
	}
	return v.Name
}

func instanceNames(t *testing.T, bulk []byte) string {
	t.Helper()
	var v []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(bulk, &v); err != nil {
		t.Fatalf("GET /2/instances?bulk=1: %.200s", bulk)
	}
	names := make([]string, 0, len(v))
	for _, i := range v {
		names = append(names, i.Name)
	}
	return strings.Join(names, ",")
}

// TestClustersNodeGRPCClient runs the Node gRPC client (grpc-js, see
// TestNodeGRPCClient) through one gateway in front of two clusters, each
// named by its ganeti-cluster metadata: a (the gateway's simulated demo
// cluster: a typed job with OP_TEST_DELAY, followed with WatchJob) and b
// (a simulated gateway on the htools cluster behind it as a RAPI upstream:
// a tag job). Each gets its own job 1, and its tag only.
func TestClustersNodeGRPCClient(t *testing.T) {
	node := requireNodeGRPC(t)
	demoInst := firstDemoInstance(t)
	back := inProcess(t, "testdata/htools-cluster.json")
	file := fmt.Sprintf("clusters:\n- name: a\n  upstream: sim\n  default: true\n"+
		"- name: b\n  upstream: %s\n  user: %s\n  password_file: %s\n", anonymous(back), e2eUser, upstreamPasswordFile(t))
	front := startClustersFront(t, file, nil)
	_, _, infoB := do(t, "GET", back+"/2/info", "", "")
	wantB := clusterName(t, infoB)
	conn := dialGRPC(t, front.Base)

	for _, c := range []struct {
		name, cluster string
		env           []string
		summary       string
	}{
		{"a", demoExpectations(t).Cluster, []string{"TEST_DELAY=0.2", "WRITER_USER=writer", "WRITER_PASSWORD=writepass", "INSTANCE=" + demoInst.Name}, "TEST_DELAY(0.2),TAGS_SET"},
		{"b", wantB, nil, "TAGS_SET"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, filepath.Join(repoRoot(t), nodeClientDir, "client.js"))
			cmd.Env = append(append(os.Environ(),
				"GRPC_TARGET="+front.Addr, "GRPC_CA_FILE=-", "GANETI_CLUSTER="+c.name,
				"RAPI_USER="+e2eUser, "RAPI_PASSWORD="+e2ePassword, "TAG=node-"+c.name), c.env...)
			out, err := cmd.CombinedOutput()
			t.Logf("node client:\n%s", out)
			if err != nil {
				t.Fatalf("node client failed: %v", err)
			}
			var res struct {
				Cluster, Anonymous string
				WriterTestDelay    string `json:"writer_test_delay"`
				JobID              string `json:"job_id"`
				Statuses, Summary  []string
				Tags               []string
			}
			for _, l := range strings.Split(string(out), "\n") {
				if j, ok := strings.CutPrefix(l, "RESULT "); ok {
					if err := json.Unmarshal([]byte(j), &res); err != nil {
						t.Fatal(err)
					}
				}
			}
			if res.Cluster != c.cluster || res.JobID != "1" || strings.Join(res.Summary, ",") != c.summary ||
				len(res.Statuses) == 0 || res.Statuses[len(res.Statuses)-1] != "JOB_STATUS_SUCCESS" ||
				!slices.Contains(res.Tags, "node-"+c.name) || res.Anonymous != "UNAUTHENTICATED" {
				t.Errorf("cluster %s: %+v", c.name, res)
			}
			if c.name == "a" && res.WriterTestDelay != "PERMISSION_DENIED" {
				t.Errorf("OP_TEST_DELAY by a write user: %s", res.WriterTestDelay)
			}
		})
	}
	for c, other := range map[string]string{"a": "b", "b": "a"} {
		tags, err := rapiv2.NewTagServiceClient(conn).ListClusterTags(clusterCtx(c), &rapiv2.ListClusterTagsRequest{})
		if err != nil || !slices.Contains(tags.GetTags(), "node-"+c) || slices.Contains(tags.GetTags(), "node-"+other) {
			t.Errorf("tags of %s: %v %v", c, tags.GetTags(), err)
		}
	}
}

// TestClustersDirectoryOneCluster: a gateway without --clusters lists its
// one cluster as "default", and ignores the ganeti-cluster metadata.
func TestClustersDirectoryOneCluster(t *testing.T) {
	base := inProcess(t, "")
	conn := dialGRPC(t, base)
	dir, err := gatewayv1.NewClusterDirectoryServiceClient(conn).ListClusters(context.Background(), &gatewayv1.ListClustersRequest{})
	if err != nil || len(dir.GetClusters()) != 1 {
		t.Fatalf("ListClusters: %v %v", dir, err)
	}
	if c := dir.GetClusters()[0]; c.GetName() != "default" || !c.GetIsDefault() || c.GetTransport() != gatewayv1.Transport_TRANSPORT_SIM ||
		c.GetHealth() != gatewayv1.Health_HEALTH_SERVING {
		t.Errorf("the one cluster: %v", c)
	}
	if _, err := rapiv2.NewTagServiceClient(conn).ListClusterTags(clusterCtx("whatever"), &rapiv2.ListClusterTagsRequest{}); err != nil {
		t.Errorf("ganeti-cluster on a one-cluster gateway: %v", err)
	}
	if code, body := hostDo(t, "GET", base+"/2/tags", "whatever.example.com", ""); code != http.StatusOK {
		t.Errorf("any Host on a one-cluster gateway: %d %s", code, body)
	}
}
