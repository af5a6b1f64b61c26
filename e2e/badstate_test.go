package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// Issue 10, items 9-11: bad input that changes state. Where Ganeti checks
// a value when the job runs (LU CheckArguments / CheckPrereq: host names,
// tags, ForceDictType's sizes), the request is accepted and its job fails
// with Ganeti's error; either way, nothing in the cluster changes.

// stateSnapshot is writeSnapshot without the job list (a failed job is a
// job).
func stateSnapshot(t *testing.T, base string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	for _, p := range writeSnapshotPaths {
		if p == "/2/jobs" {
			continue
		}
		status, _, body := do(t, "GET", base+p, "", "")
		if status != 200 {
			t.Fatalf("GET %s: %d %s", p, status, body)
		}
		snap[p] = string(body)
	}
	return snap
}

func sameState(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, b := range before {
		if after[p] != b {
			a := after[p]
			if len(a) > 400 {
				a = a[:400] + "..."
			}
			t.Errorf("GET %s changed to %s", p, a)
		}
	}
}

// submitJob sends a write that must answer a job id and waits for the job.
func submitJob(t *testing.T, base, method, path, body string) map[string]any {
	t.Helper()
	ctype := ""
	if body != "" {
		ctype = "application/json"
	}
	status, _, resp := do(t, method, base+path, ctype, body)
	if status != 200 {
		t.Fatalf("%s %s: %d %s", method, path, status, resp)
	}
	var id int64
	if err := json.Unmarshal(resp, &id); err != nil || id <= 0 {
		t.Fatalf("%s %s: not a job id: %s", method, path, resp)
	}
	return waitJob(t, base, id)
}

func TestBadWritesFailJobs(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	inst := `"__version__": 1, "mode": "create", "disk_template": "diskless", "disks": [], "nics": [{}], "pnode": "node1.example.com", "os_type": "noop", "name_check": false, "ip_check": false`
	file := strings.Replace(inst, `"disk_template": "diskless", "disks": []`, `"disk_template": "file"`, 1)
	huge := strings.Repeat("x", 1_000_000)
	many := make([]string, 4097) // Ganeti's MAX_TAGS_PER_OBJ is 4096
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	manyJSON, _ := json.Marshal(many)
	prereq := func(msg string) string {
		b, _ := json.Marshal([]any{"OpPrereqError", []any{msg, "wrong_input"}})
		return string(b)
	}
	typeErr := func(msg string) string {
		b, _ := json.Marshal([]any{"TypeEnforcementError", []any{msg}})
		return string(b)
	}
	tagErr := func(msg string) string {
		b, _ := json.Marshal([]any{"TagError", []any{msg}})
		return string(b)
	}
	cases := []struct {
		name, method, path, body string
		result                   string
	}{
		// Hostname.GetNormalizedName (LUInstanceCreate.CheckArguments).
		{"create with an empty name", "POST", "/2/instances", `{` + inst + `, "instance_name": ""}`, prereq("Invalid hostname ''")},
		{"create with a space", "POST", "/2/instances", `{` + inst + `, "instance_name": "a b"}`, prereq("Invalid hostname 'a b'")},
		{"create with a slash", "POST", "/2/instances", `{` + inst + `, "instance_name": "a/b"}`, prereq("Invalid hostname 'a/b'")},
		{"create dot dot", "POST", "/2/instances", `{` + inst + `, "instance_name": ".."}`, prereq("Invalid hostname '..'")},
		{"create 1,000,000 characters", "POST", "/2/instances", `{` + inst + `, "instance_name": "` + huge + `"}`, prereq("Invalid hostname '" + huge + "'")},
		// ForceDictType: ParseUnit(str(value)); ignore_ipolicy changes nothing.
		{"memory 1e30", "POST", "/2/instances", `{` + inst + `, "instance_name": "i1.example.com", "ignore_ipolicy": true, "beparams": {"memory": 1e30}}`,
			typeErr("'minmem' (value 1e+30) is not a valid size. error: Invalid format")},
		{"memory -512", "POST", "/2/instances", `{` + inst + `, "instance_name": "i1.example.com", "ignore_ipolicy": true, "beparams": {"maxmem": -512}}`,
			typeErr("'maxmem' (value -512) is not a valid size. error: Invalid format")},
		{"disk size -1", "POST", "/2/instances", `{` + file + `, "disks": [{"size": -1}], "instance_name": "i1.example.com", "ignore_ipolicy": true}`,
			typeErr("'size' (value -1) is not a valid size. error: Invalid format")},
		// TaggableObject.ValidateTag / AddTag.
		{"tag with spaces", "PUT", "/2/tags?tag=bad%20tag", "", tagErr("Tag contains invalid characters")},
		{"tag of 129 characters", "PUT", "/2/tags?tag=" + url.QueryEscape(strings.Repeat("ä", 129)), "", tagErr("Tag too long (>128 characters)")},
		{"instance with a bad tag", "POST", "/2/instances", `{` + inst + `, "instance_name": "i1.example.com", "tags": ["ok", "not ok"]}`,
			tagErr("Tag contains invalid characters")},
		{"instance with 4097 tags", "POST", "/2/instances", `{` + inst + `, "instance_name": "i1.example.com", "tags": ` + string(manyJSON) + `}`,
			tagErr("Too many tags")},
		{"network with 4097 tags", "POST", "/2/networks", `{"network_name": "n1", "network": "10.0.0.0/24", "tags": ` + string(manyJSON) + `}`,
			tagErr("Too many tags")},
	}
	before := stateSnapshot(t, base)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := submitJob(t, base, c.method, c.path, c.body)
			if job["status"] != "error" {
				t.Fatalf("job %v: %v", job["status"], job["opresult"])
			}
			res, _ := json.Marshal(job["opresult"].([]any)[0])
			if string(res) != c.result {
				got := string(res)
				if len(got) > 300 {
					got = got[:300] + "..."
				}
				t.Errorf("opresult %s\n          want %s", got, c.result)
			}
			sameState(t, before, stateSnapshot(t, base))
		})
	}
	// The rename of an existing instance, after its creation.
	if job := submitJob(t, base, "POST", "/2/instances", `{`+inst+`, "instance_name": "i1.example.com", "start": false}`); job["status"] != "success" {
		t.Fatalf("create i1: %v", job["opresult"])
	}
	before = stateSnapshot(t, base)
	for _, c := range []struct{ body, result string }{
		{`{"new_name": "I2.example.com", "name_check": true, "ip_check": false}`,
			prereq("Resolved hostname 'i2.example.com' does not look the same as given hostname 'I2.example.com'")},
		{`{"new_name": "x/y", "name_check": false, "ip_check": false}`, prereq("Invalid hostname 'x/y'")},
		{`{"new_name": "a b"}`, prereq("Invalid hostname 'a b'")},
	} {
		job := submitJob(t, base, "PUT", "/2/instances/i1.example.com/rename", c.body)
		res, _ := json.Marshal(job["opresult"].([]any)[0])
		if job["status"] != "error" || string(res) != c.result {
			t.Errorf("rename %s: %v %s, want %s", c.body, job["status"], res, c.result)
		}
	}
	sameState(t, before, stateSnapshot(t, base))
}

// TestNamesNormalized: an instance created or renamed with upper case and
// a trailing dot gets Ganeti's normalized name, under which it can be
// read, renamed and removed over RAPI.
func TestNamesNormalized(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	inst := `"__version__": 1, "mode": "create", "disk_template": "diskless", "disks": [], "nics": [{}], "pnode": "node1.example.com", "os_type": "noop", "start": false`
	job := submitJob(t, base, "POST", "/2/instances", `{`+inst+`, "instance_name": "Web1.Example.COM."}`)
	if job["status"] != "success" {
		t.Fatalf("create: %v", job["opresult"])
	}
	status, _, body := do(t, "GET", base+"/2/instances/web1.example.com", "", "")
	if status != 200 || !strings.Contains(string(body), `"name":"web1.example.com"`) {
		t.Fatalf("GET the normalized name: %d %s", status, body)
	}
	job = submitJob(t, base, "PUT", "/2/instances/web1.example.com/rename", `{"new_name": "Web2.Example.COM", "name_check": false, "ip_check": false}`)
	if r, _ := json.Marshal(job["opresult"]); job["status"] != "success" || string(r) != `["web2.example.com"]` {
		t.Fatalf("rename: %v %s", job["status"], r)
	}
	if job := submitJob(t, base, "DELETE", "/2/instances/web2.example.com", ""); job["status"] != "success" {
		t.Fatalf("remove: %v", job["opresult"])
	}
	_, _, body = do(t, "GET", base+"/2/instances", "", "")
	if strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("instances after the removal: %s", body)
	}
}

// TestUnicodeTags: Ganeti's tag rule is Python 3's Unicode \w; such tags
// are set and read back over both surfaces.
func TestUnicodeTags(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	job := submitJob(t, base, "PUT", "/2/tags?tag="+url.QueryEscape("tägé")+"&tag="+url.QueryEscape(strings.Repeat("ä", 128)), "")
	if job["status"] != "success" {
		t.Fatalf("PUT /2/tags: %v", job["opresult"])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := dialGRPC(t, base)
	tags := rapiv2.NewTagServiceClient(conn)
	sub, err := tags.AddNodeTags(ctx, &rapiv2.ChangeNodeTagsRequest{NodeName: "node1.example.com", Tag: []string{"日本語", "ταυ"}})
	if err != nil {
		t.Fatal(err)
	}
	if j := watchToEnd(ctx, t, rapiv2.NewJobServiceClient(conn), sub.GetJobId()); j.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS {
		t.Fatalf("AddNodeTags job: %v %v", j.GetStatus(), j.GetOpresult())
	}
	// Legacy reads of both.
	var cl, nd []string
	_, _, body := do(t, "GET", base+"/2/tags", "", "")
	if err := json.Unmarshal(body, &cl); err != nil || !slices.Contains(cl, "tägé") || !slices.Contains(cl, strings.Repeat("ä", 128)) {
		t.Errorf("GET /2/tags: %s", body)
	}
	_, _, body = do(t, "GET", base+"/2/nodes/node1.example.com/tags", "", "")
	if err := json.Unmarshal(body, &nd); err != nil || !slices.Contains(nd, "日本語") || !slices.Contains(nd, "ταυ") {
		t.Errorf("GET node tags: %s", body)
	}
	// gRPC reads of both.
	got, err := tags.ListClusterTags(ctx, &rapiv2.ListClusterTagsRequest{})
	if err != nil || !slices.Contains(got.GetTags(), "tägé") {
		t.Errorf("ListClusterTags: %v %v", got.GetTags(), err)
	}
	got, err = tags.ListNodeTags(ctx, &rapiv2.ListNodeTagsRequest{NodeName: "node1.example.com"})
	if err != nil || !slices.Contains(got.GetTags(), "ταυ") {
		t.Errorf("ListNodeTags: %v %v", got.GetTags(), err)
	}
	// And removed by their Unicode name.
	if job := submitJob(t, base, "DELETE", "/2/tags?tag="+url.QueryEscape("tägé"), ""); job["status"] != "success" {
		t.Errorf("DELETE /2/tags: %v", job["opresult"])
	}
}

// TestTypedBadInput: a gRPC client's opcode goes through the same
// parameter checks as a legacy body (INVALID_ARGUMENT, no job), and a
// value Ganeti checks in the job fails the job, as over RAPI.
func TestTypedBadInput(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := dialGRPC(t, base)
	groups := rapiv2.NewGroupServiceClient(conn)
	instances := rapiv2.NewInstanceServiceClient(conn)
	jobs := rapiv2.NewJobServiceClient(conn)
	disk := func(size any) []*structpb.Struct {
		s, err := structpb.NewStruct(map[string]any{"size": size})
		if err != nil {
			t.Fatal(err)
		}
		return []*structpb.Struct{s}
	}
	newInst := func(name string, disks []*structpb.Struct, be map[string]any) *rapiv2.OpInstanceCreate {
		bep, err := structpb.NewStruct(be)
		if err != nil {
			t.Fatal(err)
		}
		return &rapiv2.OpInstanceCreate{InstanceName: proto.String(name), Mode: rapiv2.InstanceCreateMode_INSTANCE_CREATE_MODE_CREATE.Enum(),
			DiskTemplate: rapiv2.DiskTemplate_DISK_TEMPLATE_FILE.Enum(), OsType: proto.String("noop"), Pnode: proto.String("node1.example.com"),
			Disks: disks, Nics: []*rapiv2.NicParams{{}}, Beparams: bep, NameCheck: proto.Bool(false), IpCheck: proto.Bool(false),
			IgnoreIpolicy: proto.Bool(true), Start: proto.Bool(false)}
	}
	before := writeSnapshot(t, base)
	for _, c := range []struct {
		name string
		call func() error
		msg  string
	}{
		{"group with a space", func() error {
			_, err := groups.CreateGroup(ctx, &rapiv2.CreateGroupRequest{Op: &rapiv2.OpGroupAdd{GroupName: proto.String("a b")}})
			return err
		}, `Invalid body parameters: ("Parameter 'OP_GROUP_ADD.group_name' fails validation", 'wrong_input')`},
		{"grow by -1", func() error {
			_, err := instances.GrowInstanceDisk(ctx, &rapiv2.GrowInstanceDiskRequest{InstanceName: "i1.example.com",
				Op: &rapiv2.OpInstanceGrowDisk{Amount: proto.Int64(-1)}})
			return err
		}, `Invalid body parameters: ("Parameter 'OP_INSTANCE_GROW_DISK.amount' fails validation", 'wrong_input')`},
		{"disk of 1.5 MiB", func() error {
			_, err := instances.CreateInstance(ctx, &rapiv2.CreateInstanceRequest{Body: &rapiv2.CreateInstanceBody{Version: 1, Op: newInst("i1.example.com", disk(1.5), nil)}})
			return err
		}, `Invalid body parameters: ("Parameter 'OP_INSTANCE_CREATE.disks' fails validation", 'wrong_input')`},
		{"disk of 1e30 MiB over SubmitJob", func() error {
			_, err := jobs.SubmitJob(ctx, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{
				{Op: &rapiv2.OpCode_InstanceCreate{InstanceCreate: newInst("i1.example.com", disk(1e30), nil)}}}})
			return err
		}, `Invalid body parameters: ("Parameter 'OP_INSTANCE_CREATE.disks' fails validation", 'wrong_input')`},
	} {
		err := c.call()
		if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || st.Message() != c.msg {
			t.Errorf("%s: %v, want InvalidArgument %q", c.name, err, c.msg)
		}
	}
	sameState(t, before, writeSnapshot(t, base))

	// memory 1e30 with ignore_ipolicy: accepted, the job fails (Ganeti's
	// ForceDictType), nothing is created.
	before = stateSnapshot(t, base)
	sub, err := instances.CreateInstance(ctx, &rapiv2.CreateInstanceRequest{Body: &rapiv2.CreateInstanceBody{Version: 1, Op: newInst("i1.example.com", disk(1024), map[string]any{"memory": 1e30})}})
	if err != nil {
		t.Fatal(err)
	}
	j := watchToEnd(ctx, t, jobs, sub.GetJobId())
	if e := j.GetOpresult()[0].GetError(); j.GetStatus() != rapiv2.JobStatus_JOB_STATUS_ERROR ||
		e.GetArgs().GetMessage() != "'minmem' (value 1e+30) is not a valid size. error: Invalid format" {
		t.Errorf("create with memory 1e30: %v %v", j.GetStatus(), j.GetOpresult())
	}
	sameState(t, before, stateSnapshot(t, base))
}
