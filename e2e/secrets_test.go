package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// The secrets of TestSecretParamsRedacted: none may be shown anywhere.
var testSecrets = []string{"hunter2-secret", "private-key-77", "multi-secret-99"}

func noSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range testSecrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows the secret %q: %s", where, s, text)
		}
	}
}

// TestSecretParamsRedacted submits an instance creation with
// osparams_secret and osparams_private, and a multi-allocation whose
// instance carries an osparams_secret, and reads the jobs back on every
// path that shows a job's opcodes: the legacy GET /2/jobs/{id},
// /2/jobs?bulk=1, GET and PUT /2/query/job with the "ops" field and the
// /2/jobs/{id}/wait body; gRPC GetJob, ListJobs (bulk), WatchJob,
// WaitJobChange and QueryService.Query. The legacy surface shows the keys
// with null values (Ganeti's PrivateDict), gRPC "<redacted>"; no secret
// appears anywhere, and the jobs still succeed (the executors get the real
// values).
func TestSecretParamsRedacted(t *testing.T) {
	base := inProcess(t, "deploy/demo-cluster.json")
	create := `{"__version__": 1, "mode": "create", "instance_name": "secret1.example.com", "disk_template": "diskless",
	  "os_type": "noop", "pnode": "node1.example.com", "nics": [{}], "disks": [], "name_check": false, "ip_check": false,
	  "osparams_secret": {"root_password": "hunter2-secret"}, "osparams_private": {"api_key": "private-key-77"}}`
	code, _, body := do(t, "POST", base+"/2/instances", "application/json", create)
	if code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	var createID int64
	if err := json.Unmarshal(body, &createID); err != nil {
		t.Fatalf("create: %s", body)
	}
	multi := `{"instances": [{"instance_name": "secret2.example.com", "disk_template": "diskless", "os_type": "noop",
	  "pnode": "node2.example.com", "nics": [{}], "disks": [], "name_check": false, "ip_check": false, "mode": "create",
	  "osparams_secret": {"pw": "multi-secret-99"}}]}`
	code, _, body = do(t, "POST", base+"/2/instances-multi-alloc", "application/json", multi)
	if code != 200 {
		t.Fatalf("multi-alloc: %d %s", code, body)
	}
	var multiID int64
	if err := json.Unmarshal(body, &multiID); err != nil {
		t.Fatalf("multi-alloc: %s", body)
	}
	for _, id := range []int64{createID, multiID} {
		if job := waitJob(t, base, id); job["status"] != "success" {
			t.Fatalf("job %d: %v", id, job)
		}
	}

	// The legacy surface: keys kept, values null.
	checkLegacyOps := func(where string, ops any) {
		t.Helper()
		list, _ := ops.([]any)
		if len(list) != 1 {
			t.Errorf("%s: ops %v", where, ops)
			return
		}
		op, _ := list[0].(map[string]any)
		switch op["OP_ID"] {
		case "OP_INSTANCE_CREATE":
			if got := compactJSON(t, op["osparams_secret"]); got != `{"root_password":null}` {
				t.Errorf("%s: osparams_secret %s", where, got)
			}
			if got := compactJSON(t, op["osparams_private"]); got != `{"api_key":null}` {
				t.Errorf("%s: osparams_private %s", where, got)
			}
		case "OP_INSTANCE_MULTI_ALLOC":
			insts, _ := op["instances"].([]any)
			if len(insts) != 1 {
				t.Errorf("%s: instances %v", where, op["instances"])
				return
			}
			if got := compactJSON(t, insts[0].(map[string]any)["osparams_secret"]); got != `{"pw":null}` {
				t.Errorf("%s: instance osparams_secret %s", where, got)
			}
		default:
			t.Errorf("%s: opcode %v", where, op["OP_ID"])
		}
	}
	for _, id := range []int64{createID, multiID} {
		path := fmt.Sprintf("/2/jobs/%d", id)
		_, _, body = do(t, "GET", base+path, "", "")
		noSecret(t, "GET "+path, string(body))
		var job map[string]any
		if err := json.Unmarshal(body, &job); err != nil {
			t.Fatal(err)
		}
		checkLegacyOps("GET "+path, job["ops"])

		wait := `{"fields": ["ops", "status"], "previous_job_info": null, "previous_log_serial": null}`
		code, _, body = do(t, "GET", base+path+"/wait", "application/json", wait)
		noSecret(t, "GET "+path+"/wait", string(body))
		var change struct {
			JobInfo []any `json:"job_info"`
		}
		if code != 200 || json.Unmarshal(body, &change) != nil || len(change.JobInfo) != 2 {
			t.Fatalf("wait: %d %s", code, body)
		}
		checkLegacyOps("GET "+path+"/wait", change.JobInfo[0])
	}
	_, _, body = do(t, "GET", base+"/2/jobs?bulk=1", "", "")
	noSecret(t, "GET /2/jobs?bulk=1", string(body))
	if !strings.Contains(string(body), `"root_password":null`) && !strings.Contains(string(body), `"root_password": null`) {
		t.Errorf("GET /2/jobs?bulk=1 lacks the redacted key: %s", body)
	}
	queryRows := func(where string, body []byte) {
		t.Helper()
		noSecret(t, where, string(body))
		var res struct {
			Data [][][]any `json:"data"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatalf("%s: %s", where, body)
		}
		seen := 0
		for _, row := range res.Data {
			if len(row) == 2 && len(row[1]) == 2 {
				if id, _ := row[0][1].(float64); int64(id) == createID || int64(id) == multiID {
					checkLegacyOps(where, row[1][1])
					seen++
				}
			}
		}
		if seen != 2 {
			t.Errorf("%s: %d of the 2 jobs: %s", where, seen, body)
		}
	}
	_, _, body = do(t, "GET", base+"/2/query/job?fields=id,ops", "", "")
	queryRows("GET /2/query/job", body)
	_, _, body = do(t, "PUT", base+"/2/query/job", "application/json", `{"fields": ["id", "ops"]}`)
	queryRows("PUT /2/query/job", body)

	// gRPC: "<redacted>".
	conn := dialGRPC(t, base)
	jobs := rapiv2.NewJobServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	checkTyped := func(where string, ops []*rapiv2.OpCode) {
		t.Helper()
		for _, op := range ops {
			noSecret(t, where, protojson.Format(op))
			if c := op.GetInstanceCreate(); c != nil {
				if got := c.GetOsparamsSecret().GetFields()["root_password"].GetStringValue(); got != "<redacted>" {
					t.Errorf("%s: osparams_secret.root_password %q", where, got)
				}
				if got := c.GetOsparamsPrivate().GetFields()["api_key"].GetStringValue(); got != "<redacted>" {
					t.Errorf("%s: osparams_private.api_key %q", where, got)
				}
			}
			if m := op.GetInstanceMultiAlloc(); m != nil {
				v := m.GetInstances()[0].GetStructValue().GetFields()["osparams_secret"].GetStructValue().GetFields()["pw"]
				if v.GetStringValue() != "<redacted>" {
					t.Errorf("%s: multi-alloc instance secret %v", where, v)
				}
			}
		}
	}
	for _, id := range []int64{createID, multiID} {
		job, err := jobs.GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
		if err != nil {
			t.Fatal(err)
		}
		if len(job.GetOps()) != 1 {
			t.Fatalf("GetJob(%d): %v", id, job)
		}
		checkTyped(fmt.Sprintf("GetJob(%d)", id), job.GetOps())

		stream, err := jobs.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: id})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			j, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			checkTyped(fmt.Sprintf("WatchJob(%d)", id), j.GetOps())
		}
		if n == 0 {
			t.Errorf("WatchJob(%d) sent nothing", id)
		}

		w, err := jobs.WaitJobChange(ctx, &rapiv2.WaitJobChangeRequest{JobId: id, Fields: []string{"ops"}})
		if err != nil {
			t.Fatal(err)
		}
		// The wait's job info is legacy JSON values (google.protobuf.Value).
		b, _ := protojson.Marshal(w.GetChange().GetJobInfo())
		noSecret(t, "WaitJobChange", string(b))
		var info []any
		if err := json.Unmarshal(b, &info); err != nil || len(info) != 1 {
			t.Fatalf("WaitJobChange: %s", b)
		}
		checkLegacyOps("WaitJobChange", info[0])
	}
	list, err := jobs.ListJobs(ctx, &rapiv2.ListJobsRequest{Bulk: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, j := range list.GetJobs() {
		if j.GetId() == createID || j.GetId() == multiID {
			seen++
			checkTyped(fmt.Sprintf("ListJobs job %d", j.GetId()), j.GetOps())
		}
	}
	if seen != 2 {
		t.Errorf("ListJobs(bulk) has %d of the 2 jobs", seen)
	}
	q, err := rapiv2.NewQueryServiceClient(conn).Query(ctx, &rapiv2.QueryRequest{Resource: "job", Fields: []string{"id", "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := protojson.Marshal(q)
	noSecret(t, "QueryService.Query(job)", string(b))
	if !strings.Contains(string(b), "root_password") {
		t.Errorf("QueryService.Query(job) lacks the redacted key: %s", b)
	}
}

func compactJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
