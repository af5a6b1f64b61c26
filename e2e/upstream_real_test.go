package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// The real Ganeti 3.0.2 cluster of ../shared/ganeti-real (setup.sh; .ci/run
// brings it up): its RAPI, CA and users.
const (
	realRAPI      = "https://node1.example.com:5080"
	realCA        = "/var/lib/ganeti/rapi.pem"
	realWriter    = "writer"
	realWriterPwd = "writepass"
	gntNS         = "/usr/local/sbin/gnt-ns"
)

// realClient reads the real cluster directly (its self-signed certificate
// is not checked here: the gateway's own check is what the test covers).
var realClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test's direct reads
}}

func realDo(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, realRAPI+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(realWriter, realWriterPwd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := realClient.Do(req)
	if err != nil {
		t.Fatalf("real cluster: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// requireRealGaneti skips (fails under CI=true) when the real cluster does
// not answer.
func requireRealGaneti(t *testing.T) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, realRAPI+"/2/info", nil)
	req.SetBasicAuth(realWriter, realWriterPwd)
	resp, err := realClient.Do(req)
	if err != nil {
		skipOrFailInCI(t, "the real Ganeti cluster does not answer (bring it up with ../shared/ganeti-real/setup.sh): "+err.Error())
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		skipOrFailInCI(t, fmt.Sprintf("the real Ganeti cluster answers %d to /2/info as %s", resp.StatusCode, realWriter))
	}
	if _, err := os.Stat(realCA); err != nil {
		skipOrFailInCI(t, "the real cluster's certificate is not readable: "+err.Error())
	}
}

// realFront starts an in-process gateway in front of the real cluster (as
// its writer user, the certificate verified against rapi.pem) and returns
// its base URL with the e2e user's credentials.
func realFront(t *testing.T) string {
	t.Helper()
	dataDir := t.TempDir()
	writeTestUsers(t, dataDir)
	pw := filepath.Join(t.TempDir(), "upstream-password")
	if err := os.WriteFile(pw, []byte(realWriterPwd+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, addr, _ := serveApp(t, server.Config{
		DataDir: dataDir, Insecure: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Upstream: server.UpstreamConfig{URLs: []string{realRAPI}, User: realWriter, PasswordFile: pw, CAFile: realCA},
	})
	return withCreds(addr)
}

// volatileKeys change between two reads of an idle cluster (memory and
// disk free, the node's live figures) or with other tests' jobs.
var volatileKeys = map[string]bool{"mfree": true, "dfree": true, "mnode": true, "ctotal": true, "cnodes": true,
	"csockets": true, "spfree": true, "sptotal": true, "mtotal": true, "dtotal": true, "tags": true,
	"serial_no": true, "mtime": true, "oper_ram": true, "oper_vcpus": true, "oper_state": true}

func dropVolatile(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if !volatileKeys[k] {
				out[k] = dropVolatile(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = dropVolatile(e)
		}
		return out
	}
	return v
}

func TestUpstreamRealGaneti(t *testing.T) {
	requireRealGaneti(t)
	base := realFront(t)

	t.Run("reads", func(t *testing.T) {
		for _, path := range []string{"/2/info", "/version", "/2/os", "/2/nodes", "/2/nodes?bulk=1",
			"/2/instances?bulk=1", "/2/groups?bulk=1", "/2/networks?bulk=1", "/2/nodes/node1.example.com/role",
			"/2/query/node/fields", "/2/query/instance?fields=name,status"} {
			st, want := realDo(t, http.MethodGet, path, "")
			gst, _, got := do(t, http.MethodGet, base+path, "", "")
			if st != gst {
				t.Errorf("%s: status %d through the gateway, %d direct\n%s", path, gst, st, got)
				continue
			}
			var w, g any
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatalf("%s: direct answer: %v", path, err)
			}
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("%s: gateway answer: %v", path, err)
			}
			if path == "/2/info" {
				// Python sets: their order is not stable.
				for _, m := range []map[string]any{w.(map[string]any), g.(map[string]any)} {
					delete(m, "enabled_user_shutdown")
				}
			}
			if !reflect.DeepEqual(dropVolatile(w), dropVolatile(g)) {
				wb, _ := json.Marshal(dropVolatile(w))
				gb, _ := json.Marshal(dropVolatile(g))
				t.Errorf("%s differs\ndirect:  %.2000s\ngateway: %.2000s", path, wb, gb)
			}
		}
	})

	tag := "gw-e2e-" + strings.ToLower(rand.Text()[:8])
	var jobID int64
	t.Run("tag job", func(t *testing.T) {
		st, _, body := do(t, http.MethodPut, anonymous(base)+"/2/tags?tag="+tag+"&reason=e2e", "", "")
		_ = body
		if st != http.StatusUnauthorized {
			t.Fatalf("anonymous write: %d, want 401", st)
		}
		st, _, body = do(t, http.MethodPut, base+"/2/tags?tag="+tag, "", "")
		if st != http.StatusOK {
			t.Fatalf("PUT /2/tags: %d %s", st, body)
		}
		if err := json.Unmarshal(body, &jobID); err != nil || jobID <= 0 {
			t.Fatalf("job id %s", body)
		}
		deadline := time.Now().Add(30 * time.Second)
		var job map[string]any
		for {
			_, b := realDo(t, http.MethodGet, fmt.Sprintf("/2/jobs/%d", jobID), "")
			job = nil
			_ = json.Unmarshal(b, &job)
			if s, _ := job["status"].(string); s == "success" || s == "error" || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if job["status"] != "success" {
			t.Fatalf("job %d upstream: %v", jobID, job)
		}
		ops, _ := job["ops"].([]any)
		op, _ := ops[0].(map[string]any)
		trail, _ := json.Marshal(op["reason"])
		if !strings.Contains(string(trail), "ganeti-gateway user="+e2eUser) {
			t.Errorf("job %d's reason trail %s does not name the gateway's user", jobID, trail)
		}
		tagsList, _ := json.Marshal(op["tags"])
		if !strings.Contains(string(tagsList), tag) {
			t.Errorf("job %d is not ours: tags %s", jobID, tagsList)
		}
		// The same job through the gateway.
		_, _, got := do(t, http.MethodGet, fmt.Sprintf("%s/2/jobs/%d", base, jobID), "", "")
		var gj map[string]any
		_ = json.Unmarshal(got, &gj)
		if gj["status"] != "success" {
			t.Errorf("GET /2/jobs/%d through the gateway: %s", jobID, got)
		}
		_, _ = realDo(t, http.MethodDelete, "/2/tags?tag="+tag, "")
	})

	t.Run("wait", func(t *testing.T) {
		if jobID == 0 {
			t.Skip("no job")
		}
		for _, body := range []string{
			`{"fields": ["status"], "previous_job_info": null, "previous_log_serial": null}`,
			`{"fields": ["status", "opstatus"], "previous_job_info": ["queued", null], "previous_log_serial": null}`,
			`{"fields": ["status"], "previous_job_info": ["success"], "previous_log_serial": 0}`,
		} {
			path := fmt.Sprintf("/2/jobs/%d/wait", jobID)
			st, want := realDo(t, http.MethodGet, path, body)
			gst, _, got := do(t, http.MethodGet, base+path, "application/json", body)
			var w, g any
			_ = json.Unmarshal(want, &w)
			_ = json.Unmarshal(got, &g)
			if st != gst || !reflect.DeepEqual(w, g) {
				t.Errorf("wait %s: gateway %d %s, direct %d %s", body, gst, got, st, want)
			}
		}
	})

	t.Run("unreachable opcode", func(t *testing.T) {
		before := realJobCount(t)
		conn := dialGRPC(t, base)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := rapiv2.NewJobServiceClient(conn).SubmitJob(ctx, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{
			{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{Duration: proto.Float64(0.1)}}},
		}})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "RAPI") {
			t.Errorf("SubmitJob(OP_TEST_DELAY): %v, want FAILED_PRECONDITION naming RAPI", err)
		}
		if after := realJobCount(t); after != before {
			t.Errorf("the cluster's queue went from %d to %d jobs", before, after)
		}
	})

	t.Run("watch", func(t *testing.T) {
		if _, err := os.Stat(gntNS); err != nil {
			skipOrFailInCI(t, "gnt-ns (../shared/ganeti-real/setup.sh) is needed to submit a job from the master")
			return
		}
		// A PAUSE filter holds the job queued while the stream starts; a
		// 2 s OP_TEST_DELAY from the master then runs.
		st, _, body := do(t, http.MethodPost, base+"/2/filters", "application/json",
			`{"priority": 0, "predicates": [["opcode", ["=", "OP_ID", "OP_TEST_DELAY"]]], "action": "PAUSE"}`)
		if st != http.StatusOK {
			t.Fatalf("POST /2/filters: %d %s", st, body)
		}
		var uuid string
		_ = json.Unmarshal(body, &uuid)
		defer do(t, http.MethodDelete, base+"/2/filters/"+uuid, "", "")
		out, err := exec.Command(gntNS, "gnt-debug", "delay", "--submit", "2").CombinedOutput()
		if err != nil {
			t.Fatalf("gnt-debug delay --submit: %v %s", err, out)
		}
		var id int64
		if _, err := fmt.Sscan(lastField(string(out)), &id); err != nil {
			t.Fatalf("job id from %q", out)
		}
		conn := dialGRPC(t, base)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		stream, err := rapiv2.NewJobServiceClient(conn).WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: id})
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		released := false
		for {
			j, err := stream.Recv()
			if err != nil {
				break
			}
			s := strings.TrimPrefix(strings.ToLower(j.GetStatus().String()), "job_status_")
			if s != "" && s != "unspecified" && (len(seen) == 0 || seen[len(seen)-1] != s) {
				seen = append(seen, s)
			}
			if !released && s == "queued" {
				released = true
				do(t, http.MethodDelete, base+"/2/filters/"+uuid, "", "")
			}
		}
		if got := strings.Join(seen, " -> "); !strings.HasPrefix(got, "queued") || !strings.Contains(got, "running") || !strings.HasSuffix(got, "success") {
			t.Errorf("WatchJob streamed %s, want queued -> running -> success", got)
		}
	})
}

func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func realJobCount(t *testing.T) int {
	_, b := realDo(t, http.MethodGet, "/2/jobs", "")
	var l []any
	_ = json.Unmarshal(b, &l)
	return len(l)
}
