package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// nodeClientDir holds the Node gRPC client (relative to the repository root).
const nodeClientDir = "e2e/testdata/node-client"

// requireNodeGRPC returns the node binary, skipping the test (failing under
// CI=true) without node or without the npm packages the client needs
// (@grpc/grpc-js and @grpc/proto-loader, from package-lock.json).
func requireNodeGRPC(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		skipOrFailInCI(t, "node is needed for the Node gRPC client test (Debian: apt-get install nodejs npm)")
		return ""
	}
	cmd := exec.Command(node, "-e", `for (const m of ['@grpc/grpc-js', '@grpc/proto-loader']) {
  try { require.resolve(m); } catch (e) { console.log('cannot find ' + m); process.exitCode = 1; }
}`)
	cmd.Dir = filepath.Join(testutil.RepoRoot(t), nodeClientDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		skipOrFailInCI(t, "the npm packages @grpc/grpc-js and @grpc/proto-loader are needed (run `npm ci` in the repository root): "+
			strings.Join(strings.Fields(string(out)), " "))
	}
	return node
}

// TestNodeGRPCClient runs a gRPC client written in JavaScript
// (e2e/testdata/node-client/client.js: @grpc/grpc-js, with
// @grpc/proto-loader reading proto/ as it is) against a server process over
// verified TLS. The client reads the cluster with Basic credentials in
// metadata (and is refused without them), submits a typed job
// (OP_TEST_DELAY, asked for with TEST_DELAY, then OP_TAGS_SET) as a user
// with the admin option (a write user's is refused: OP_TEST_DELAY is not a
// RAPI opcode), follows it with
// WatchJob to success and reads the tag back; the test then checks the job
// and the tag itself over Go gRPC.
func TestNodeGRPCClient(t *testing.T) { nodeGRPCClient(t, "0.2") }

// TestUpstreamNodeGRPCClient runs the Node client against a gateway in
// front of the simulated one. Its job is OP_TAGS_SET alone: no RAPI route
// takes a job of two opcodes (the typed SubmitJob of one fails with
// FAILED_PRECONDITION through a RAPI upstream).
func TestUpstreamNodeGRPCClient(t *testing.T) {
	viaUpstream(t, func(t *testing.T) { nodeGRPCClient(t, "") })
}

// nodeGRPCClient runs the Node client; with delay, its job is an
// OP_TEST_DELAY of delay seconds, then the tag.
func nodeGRPCClient(t *testing.T, delay string) {
	node := requireNodeGRPC(t)
	demoInst := firstDemoInstance(t)
	p := startServer(t, "")
	certFile := filepath.Join(p.DataDir, "tls.crt")
	const tag = "from-node-grpc-js"

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(testutil.RepoRoot(t), nodeClientDir, "client.js"))
	cmd.Env = append(os.Environ(),
		"GRPC_TARGET="+p.Addr, "GRPC_CA_FILE="+certFile, "GRPC_SERVER_NAME=localhost",
		"RAPI_USER="+e2eUser, "RAPI_PASSWORD="+e2ePassword, "WRITER_USER=writer", "WRITER_PASSWORD=writepass", "TAG="+tag,
		"TEST_DELAY="+delay, "INSTANCE="+demoInst.Name)
	out, err := cmd.CombinedOutput()
	t.Logf("node client:\n%s", out)
	if err != nil {
		t.Fatalf("node client failed: %v\nserver log:\n%s", err, p.Logs())
	}
	var res struct {
		Cluster, Master, Anonymous  string
		WriterTestDelay             string `json:"writer_test_delay"`
		JobID                       string `json:"job_id"`
		Updates                     int
		Statuses, Opstatus, Summary []string
		Tags                        []string
		Typed                       *struct {
			Maxmem         string
			MaxmemType     string   `json:"maxmem_type"`
			CustomMaxmem   string   `json:"custom_maxmem"`
			BeparamsKeys   []string `json:"beparams_keys"`
			Hypervisor     string
			HvparamsMember string `json:"hvparams_member"`
			ClusterVcpus   string `json:"cluster_vcpus"`
		}
	}
	found := false
	for _, l := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(l, "RESULT "); ok {
			if err := json.Unmarshal([]byte(j), &res); err != nil {
				t.Fatalf("RESULT line: %v", err)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("no RESULT line from the node client")
	}
	want := demoExpectations(t)
	if res.Cluster != want.Cluster || res.Master != want.Master {
		t.Errorf("GetInfo from node: cluster %q master %q, want %q %q", res.Cluster, res.Master, want.Cluster, want.Master)
	}
	if res.Anonymous != "UNAUTHENTICATED" {
		t.Errorf("GetInfo without credentials: %s, want UNAUTHENTICATED", res.Anonymous)
	}
	summary, opstatus, writerDelay := "TAGS_SET", []string{"JOB_STATUS_SUCCESS"}, "not tried"
	if delay != "" {
		summary, writerDelay = "TEST_DELAY("+delay+"),TAGS_SET", "PERMISSION_DENIED"
		opstatus = append(opstatus, "JOB_STATUS_SUCCESS")
	}
	if res.WriterTestDelay != writerDelay {
		t.Errorf("SubmitJob of OP_TEST_DELAY by a write user: %s, want %s", res.WriterTestDelay, writerDelay)
	}
	if len(res.Statuses) == 0 || res.Statuses[len(res.Statuses)-1] != "JOB_STATUS_SUCCESS" ||
		!slices.Equal(res.Opstatus, opstatus) {
		t.Errorf("WatchJob from node: statuses %v, opstatus %v", res.Statuses, res.Opstatus)
	}
	// The job the client rebuilt from the stream's first message and deltas.
	if strings.Join(res.Summary, ",") != summary {
		t.Errorf("WatchJob from node: summary %v", res.Summary)
	}
	if !slices.Contains(res.Tags, tag) {
		t.Errorf("tags read by node: %v", res.Tags)
	}
	// Typed parameters: beparams.maxmem is an int64 field (proto-loader's
	// longs: String gives its decimal text), not a google.protobuf.Struct
	// value, and the hvparams oneof member is the instance's hypervisor.
	maxmem := strconv.FormatInt(demoInst.Beparams.Maxmem, 10)
	switch ty := res.Typed; {
	case ty == nil:
		t.Error("no typed parameters from the node client")
	case ty.Maxmem != maxmem || ty.MaxmemType != "string" || ty.CustomMaxmem != maxmem:
		t.Errorf("instance %s from node: beparams.maxmem %q (%s), custom %q, want %q",
			demoInst.Name, ty.Maxmem, ty.MaxmemType, ty.CustomMaxmem, maxmem)
	case !slices.Equal(ty.BeparamsKeys, []string{"always_failover", "auto_balance", "maxmem", "memory", "minmem", "spindle_use", "vcpus"}):
		t.Errorf("instance %s from node: beparams fields %v", demoInst.Name, ty.BeparamsKeys)
	case ty.Hypervisor != "fake" || ty.HvparamsMember != "fake":
		t.Errorf("instance %s from node: hypervisor %q, hvparams member %q, want fake", demoInst.Name, ty.Hypervisor, ty.HvparamsMember)
	case ty.ClusterVcpus == "":
		t.Errorf("cluster beparams[default].vcpus from node: empty")
	}

	// The same job and tag, read over Go gRPC.
	id, err := strconv.ParseInt(res.JobID, 10, 64)
	if err != nil {
		t.Fatalf("job id %q", res.JobID)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in " + certFile)
	}
	conn := dialGRPC(t, "https://"+e2eUser+":"+e2ePassword+"@"+p.Addr,
		grpc.WithTransportCredentials(grpccreds.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"})))
	job, err := rapiv2.NewJobServiceClient(conn).GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	if job.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS || strings.Join(job.GetSummary(), ",") != summary {
		t.Errorf("job %d: %v %v", id, job.GetStatus(), job.GetSummary())
	}
	tags, err := rapiv2.NewTagServiceClient(conn).ListClusterTags(ctx, &rapiv2.ListClusterTagsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tags.GetTags(), tag) {
		t.Errorf("cluster tags %v, want %q among them", tags.GetTags(), tag)
	}
}

// demoInstance is what the Node client test reads of an instance of
// deploy/demo-cluster.json.
type demoInstance struct {
	Name     string `json:"name"`
	Beparams struct {
		Maxmem int64 `json:"maxmem"`
	} `json:"beparams"`
}

// firstDemoInstance is the first instance of deploy/demo-cluster.json.
func firstDemoInstance(t *testing.T) demoInstance {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "deploy", "demo-cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var demo struct {
		Instances []demoInstance `json:"instances"`
	}
	if err := json.Unmarshal(data, &demo); err != nil {
		t.Fatal(err)
	}
	if len(demo.Instances) == 0 || demo.Instances[0].Beparams.Maxmem == 0 {
		t.Fatal("deploy/demo-cluster.json: no first instance with beparams.maxmem")
	}
	return demo.Instances[0]
}
