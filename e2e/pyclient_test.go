package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// debianPython is Debian's interpreter, which has python3-ganeti-rapi.
const debianPython = "/usr/bin/python3"

// conformanceScript is the conformance suite: every public method of the
// official client's GanetiRapiClient, each checked by its effect.
var conformanceScript = filepath.Join("testdata", "conformance.py")

// conformanceTimeout bounds the whole suite (it takes well under a minute).
const conformanceTimeout = 4 * time.Minute

// minConformanceChecks is the least number of passing checks the suite
// must report: one per client method at least.
const minConformanceChecks = 81

// requireRapiClient skips (or fails under CI=true) when Debian's
// python3-ganeti-rapi is not installed.
func requireRapiClient(t *testing.T) {
	t.Helper()
	out, err := exec.Command(debianPython, "-c", "import ganeti.rapi.client, pycurl").CombinedOutput()
	if err == nil {
		return
	}
	msg := "Debian's python3-ganeti-rapi and python3-pycurl are needed (apt-get install python3-ganeti-rapi python3-pycurl): " + strings.TrimSpace(string(out))
	skipOrFailInCI(t, msg)
}

// clientMethods are the public methods of GanetiRapiClient, as the
// conformance script finds them by introspection.
func clientMethods(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command(debianPython, conformanceScript, "--list-methods").Output()
	if err != nil {
		t.Fatalf("%s --list-methods: %v\n%s", conformanceScript, err, out)
	}
	return strings.Fields(string(out))
}

// specClientMethods are the methods of the table of
// ../shared/spec/client_calls.md.
func specClientMethods(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "spec", "client_calls.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "\n## Methods\n")
	if !ok {
		t.Fatal("client_calls.md: no \"## Methods\" section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	var methods []string
	for _, m := range regexp.MustCompile(`(?m)^\| (\w+) \|`).FindAllStringSubmatch(table, -1) {
		if m[1] != "Client" { // the header row
			methods = append(methods, m[1])
		}
	}
	slices.Sort(methods)
	return methods
}

// TestOfficialClientMethodsMatchSpec: the client Debian installs has
// exactly the methods client_calls.md lists (81), so the conformance
// suite's coverage check, which introspects the client, covers the spec.
func TestOfficialClientMethodsMatchSpec(t *testing.T) {
	requireRapiClient(t)
	got, want := clientMethods(t), specClientMethods(t)
	if len(want) < minConformanceChecks {
		t.Fatalf("client_calls.md lists %d methods, want at least %d", len(want), minConformanceChecks)
	}
	if !slices.Equal(got, want) {
		t.Errorf("GanetiRapiClient's public methods (%d) differ from client_calls.md's (%d)\nnot in the spec: %v\nnot in the client: %v",
			len(got), len(want), minus(got, want), minus(want, got))
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestOfficialClientConformance runs the conformance suite
// (testdata/conformance.py) with Debian's official client against a server
// process on its own data dir, seeded from testdata/conformance-cluster.json
// (two groups of three drbd-capable nodes), over verified TLS, as a user
// with the read and write options. Every public method of the client must
// be called by a passing check that verifies its effect with a second
// read; the script fails on any failed check or uncovered method.
func TestOfficialClientConformance(t *testing.T) {
	requireRapiClient(t)
	methods := clientMethods(t)
	clusterFile := filepath.Join(testutil.RepoRoot(t), "testdata", "conformance-cluster.json")
	// The suite makes a few hundred writes in seconds: no write rate limit.
	p := startServer(t, "", "--cluster-file", clusterFile, "--write-rate", "off")
	_, port, _ := strings.Cut(p.Addr, ":")
	certFile := filepath.Join(p.DataDir, "tls.crt")

	// CancelJob needs a job that stays in the queue and WaitForJobChange
	// one that is still running: the RAPI has no route for OP_TEST_DELAY,
	// so an OP_TEST_DELAY job submitted over gRPC holds node3's node lock
	// while the script submits a job that needs it.
	// Through an upstream (TestUpstreamOfficialClientConformance), the
	// blocker goes to the simulated gateway behind it: RAPI cannot reach
	// OP_TEST_DELAY.
	blockerAddr, blockerCert := p.Addr, certFile
	if p.Back != nil {
		blockerAddr, blockerCert = p.Back.Addr, ""
	}
	blocker := submitBlocker(t, blockerAddr, blockerCert)

	ctx, cancel := context.WithTimeout(context.Background(), conformanceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython, conformanceScript)
	cmd.Env = append(os.Environ(),
		"RAPI_HOST=localhost", "RAPI_PORT="+port,
		"RAPI_CAFILE="+certFile,
		"RAPI_USER="+e2eUser, "RAPI_PASSWORD="+e2ePassword,
		"CLUSTER_FILE="+clusterFile,
		"BLOCKER_JOB="+strconv.FormatInt(blocker, 10))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	t.Logf("%s", out)
	t.Logf("conformance suite: %s", elapsed.Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("the conformance suite did not end within %s\nserver log:\n%s", conformanceTimeout, p.Logs())
	}

	summary := regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed\n*\z`).FindSubmatch(out)
	if summary == nil {
		t.Fatalf("no final summary line from the script (%v)\nserver log:\n%s", err, p.Logs())
	}
	passed, _ := strconv.Atoi(string(summary[1]))
	failed, _ := strconv.Atoi(string(summary[2]))
	minPassed, knownFailed := minConformanceChecks, 0
	if p.Back != nil {
		// Through the RAPI upstream: the checks of upstreamKnownFailures
		// fail, and only they.
		for _, m := range regexp.MustCompile(`(?m)^FAIL (.*)$`).FindAllSubmatch(out, -1) {
			if !knownUpstreamFailure(string(m[1])) {
				t.Errorf("through the upstream, check failed: %s", m[1])
			}
			knownFailed++
		}
		minPassed -= len(upstreamKnownFailures) - 1 // the coverage check is not a method's
	}
	if failed > knownFailed {
		t.Errorf("%d checks failed (see the script output above)", failed)
	}
	if passed < minPassed {
		t.Errorf("%d checks passed, want at least %d", passed, minPassed)
	}
	if p.Back != nil {
		return // the coverage below counts the known failures' methods
	}
	// The exit status must agree: non-zero exactly when a check failed.
	if (err != nil) != (failed > 0) {
		t.Errorf("script exit status %v with %d failed checks", err, failed)
	}

	// Coverage, read from the script's output: the methods each passing
	// check called.
	covered := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^ok   .* \[([\w, ]*)\]$`).FindAllSubmatch(out, -1) {
		for _, name := range strings.Split(string(m[1]), ", ") {
			if name != "" {
				covered[name] = true
			}
		}
	}
	var uncovered []string
	for _, name := range methods {
		if !covered[name] {
			uncovered = append(uncovered, name)
		}
	}
	if len(uncovered) > 0 {
		t.Errorf("client methods no passing check called: %v", uncovered)
	}
	want := "client methods: " + strconv.Itoa(len(methods)) + " public, " + strconv.Itoa(len(methods)) + " called by passing checks"
	if !strings.Contains(string(out), want+"\n") {
		t.Errorf("the script's coverage line is not %q", want)
	}
	if t.Failed() {
		t.Logf("server log:\n%s", p.Logs())
	}
}

// TestClientMismatchDecisions sends, as raw HTTP, the two requests of the
// stock client that the stock 3.0.2 server refuses (client_calls.md, "End-
// to-end check"), and checks what this server decided for them (README,
// Compatibility): each is accepted and its job has the effect asked for.
// The limits of each decision are rows of TestBadWrites.
func TestClientMismatchDecisions(t *testing.T) {
	base := inProcess(t, "testdata/conformance-cluster.json")
	const js = "application/json"
	get := func(t *testing.T, path string) map[string]any {
		t.Helper()
		status, _, body := do(t, "GET", base+path, "", "")
		var out map[string]any
		if status != 200 || json.Unmarshal(body, &out) != nil {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		return out
	}
	// userReasons are the gnt:user entries of each opcode's reason trail.
	userReasons := func(job map[string]any) []string {
		var out []string
		for _, op := range job["ops"].([]any) {
			found := "-"
			for _, r := range op.(map[string]any)["reason"].([]any) {
				if e := r.([]any); e[0] == "gnt:user" {
					found = e[1].(string)
				}
			}
			out = append(out, found)
		}
		return out
	}
	cases := []struct {
		name, method, path, body string
		check                    func(t *testing.T, job map[string]any)
	}{
		{"CreateNetwork without tags, as the client sends it", "POST", "/2/networks",
			`{"add_reserved_ips": null, "gateway": null, "gateway6": null, "mac_prefix": null, "network": "10.40.0.0/24", "network6": null, "network_name": "raw-net0", "tags": null}`,
			func(t *testing.T, _ map[string]any) {
				n := get(t, "/2/networks/raw-net0")
				if fmt.Sprintf("%v %v %v", n["tags"], n["network"], n["gateway"]) != "[] 10.40.0.0/24 <nil>" {
					t.Errorf("network %v", n)
				}
			}},
		{"CreateNetwork with tags", "POST", "/2/networks",
			`{"network": "10.41.0.0/24", "network_name": "raw-net1", "tags": ["a", "b"]}`,
			func(t *testing.T, _ map[string]any) {
				if n := get(t, "/2/networks/raw-net1"); fmt.Sprint(n["tags"]) != "[a b]" {
					t.Errorf("tags %v", n["tags"])
				}
			}},
		{"ReinstallInstance with a body and ?reason=, as the client sends it", "POST",
			"/2/instances/db1.example.com/reinstall?reason=raw-reinstall", `{"os": "noop", "start": false}`,
			func(t *testing.T, job map[string]any) {
				if got := userReasons(job); fmt.Sprint(got) != "[raw-reinstall raw-reinstall]" {
					t.Errorf("gnt:user reasons of the opcodes: %v", got)
				}
				if i := get(t, "/2/instances/db1.example.com"); i["os"] != "noop" || i["status"] != "ADMIN_down" {
					t.Errorf("instance os %v status %v", i["os"], i["status"])
				}
			}},
		{"ReinstallInstance with ?reason= only", "POST", "/2/instances/db1.example.com/reinstall?reason=raw-again", "",
			func(t *testing.T, job map[string]any) {
				if got := userReasons(job); fmt.Sprint(got) != "[raw-again raw-again raw-again]" {
					t.Errorf("gnt:user reasons of the opcodes: %v", got)
				}
				if i := get(t, "/2/instances/db1.example.com"); i["status"] != "running" {
					t.Errorf("instance status %v", i["status"])
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctype := ""
			if c.body != "" {
				ctype = js
			}
			status, _, body := do(t, c.method, base+c.path, ctype, c.body)
			var id int64
			if status != 200 || json.Unmarshal(body, &id) != nil {
				t.Fatalf("%s %s: %d %s", c.method, c.path, status, body)
			}
			job := waitJob(t, base, id)
			if job["status"] != "success" {
				t.Fatalf("job %d: %v %v", id, job["status"], job["opresult"])
			}
			c.check(t, job)
		})
	}
}

// blockerSeconds is how long the OP_TEST_DELAY job holds node3's lock.
const blockerSeconds = 6

// submitBlocker submits, over gRPC, an OP_TEST_DELAY job that holds the
// node lock of node3.example.com for blockerSeconds, and waits until it
// runs.
func submitBlocker(t *testing.T, addr, certFile string) int64 {
	t.Helper()
	_, port, _ := strings.Cut(addr, ":")
	var conn *grpc.ClientConn
	if certFile == "" { // a plain HTTP server
		conn = dialGRPC(t, "http://"+e2eUser+":"+e2ePassword+"@127.0.0.1:"+port)
	} else {
		pem, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			t.Fatal("no certificate in " + certFile)
		}
		conn = dialGRPC(t, "https://"+e2eUser+":"+e2ePassword+"@127.0.0.1:"+port,
			grpc.WithTransportCredentials(grpccreds.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"})))
	}
	jobs := rapiv2.NewJobServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := jobs.SubmitJob(ctx, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{{
		Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{
			Duration: proto.Float64(blockerSeconds),
			OnMaster: proto.Bool(false),
			OnNodes:  []string{"node3.example.com"},
			NoLocks:  proto.Bool(false),
		}},
	}}})
	if err != nil {
		t.Fatalf("submitting the OP_TEST_DELAY job: %v", err)
	}
	for {
		job, err := jobs.GetJob(ctx, &rapiv2.GetJobRequest{JobId: sub.GetJobId()})
		if err != nil {
			t.Fatal(err)
		}
		switch job.GetStatus() {
		case rapiv2.JobStatus_JOB_STATUS_RUNNING:
			return sub.GetJobId()
		case rapiv2.JobStatus_JOB_STATUS_QUEUED, rapiv2.JobStatus_JOB_STATUS_WAITING:
			time.Sleep(10 * time.Millisecond)
		default:
			t.Fatalf("OP_TEST_DELAY job %d: status %v, want running", sub.GetJobId(), job.GetStatus())
		}
	}
}
