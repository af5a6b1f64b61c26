package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/upstream/luxi"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// The LUXI upstream against a real Ganeti 3.0.2 (../shared/ganeti-real):
// the tests need only luxid's socket, GANETI_LUXI_SOCKET (default
// /var/run/ganeti/socket/ganeti-query); without it they skip, or fail
// under CI=true.

func luxiSocket(t *testing.T) string {
	t.Helper()
	path := os.Getenv("GANETI_LUXI_SOCKET")
	if path == "" {
		path = "/var/run/ganeti/socket/ganeti-query"
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		skipOrFailInCI(t, fmt.Sprintf("a real Ganeti's luxi socket is needed (../shared/ganeti-real/setup.sh; GANETI_LUXI_SOCKET): %v", err))
	}
	c.Close()
	return path
}

// luxiGateway is an in-process gateway fronting the real cluster.
func luxiGateway(t *testing.T) (base string, direct *luxi.Client) {
	socket := luxiSocket(t)
	base = inProcessWith(t, "", func(c *server.Config) { c.Upstream.URLs = []string{"unix://" + socket} })
	direct = luxi.NewClient(luxi.ClientConfig{Socket: socket})
	t.Cleanup(func() { direct.Close() })
	return base, direct
}

func directCall(t *testing.T, c *luxi.Client, method string, out any, args ...any) {
	t.Helper()
	var raw json.RawMessage
	if err := c.Call(context.Background(), method, args, 0, &raw); err != nil {
		t.Fatalf("direct %s: %v", method, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}

func luxiGetJSON(t *testing.T, url string, out any) {
	t.Helper()
	code, _, body := do(t, "GET", url, "", "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestLuxiRealReads(t *testing.T) {
	base, direct := luxiGateway(t)

	// GET /2/info equals QueryClusterInfo, key by key.
	var info, want map[string]any
	luxiGetJSON(t, base+"/2/info", &info)
	directCall(t, direct, luxi.MethodQueryClusterInfo, &want)
	compared := 0
	for k, v := range want {
		got, ok := info[k]
		if !ok {
			continue
		}
		compared++
		if !reflect.DeepEqual(got, v) {
			t.Errorf("/2/info %s: gateway %v, cluster %v", k, got, v)
		}
	}
	if compared < len(want)*3/4 || info["name"] != "cluster.example.com" && info["name"] != want["name"] {
		t.Errorf("/2/info has %d of the cluster's %d keys", compared, len(want))
	}

	// Names, bulk reads and a node's role.
	for _, tc := range []struct{ path, resource string }{
		{"/2/nodes", "node"}, {"/2/instances", "instance"}, {"/2/groups", "group"}, {"/2/networks", "network"},
	} {
		var refs []map[string]any
		luxiGetJSON(t, base+tc.path, &refs)
		var got []string
		for _, r := range refs {
			name, ok := r["id"]
			if !ok {
				name = r["name"] // groups and networks
			}
			got = append(got, fmt.Sprint(name))
		}
		var q struct {
			Data [][][2]any `json:"data"`
		}
		directCall(t, direct, luxi.MethodQuery, &q, tc.resource, []string{"name"}, nil)
		var names []string
		for _, row := range q.Data {
			names = append(names, fmt.Sprint(row[0][1]))
		}
		sort.Strings(got)
		sort.Strings(names)
		if !slices.Equal(got, names) {
			t.Errorf("%s: gateway %v, cluster %v", tc.path, got, names)
		}
	}
	master, _ := want["master"].(string)
	var role string
	luxiGetJSON(t, base+"/2/nodes/"+master+"/role", &role)
	if role != "master" {
		t.Errorf("role of %s: %q", master, role)
	}
	var nodes []map[string]any
	luxiGetJSON(t, base+"/2/nodes?bulk=1", &nodes)
	var q struct {
		Data [][][2]any `json:"data"`
	}
	directCall(t, direct, luxi.MethodQuery, &q, "node", []string{"name", "master_candidate", "group.uuid", "ctotal"}, nil)
	if len(nodes) != len(q.Data) {
		t.Fatalf("bulk nodes: %d, cluster %d", len(nodes), len(q.Data))
	}
	for i, row := range q.Data {
		n := nodes[i]
		if n["name"] != row[0][1] || n["master_candidate"] != row[1][1] || n["group.uuid"] != row[2][1] || n["ctotal"] != row[3][1] {
			t.Errorf("bulk node %d: %v, cluster %v", i, n, row)
		}
	}
	// Tags and the query resource.
	var tags, wantTags []string
	luxiGetJSON(t, base+"/2/tags", &tags)
	directCall(t, direct, luxi.MethodQueryTags, &wantTags, "cluster", "")
	sort.Strings(wantTags)
	if !slices.Equal(tags, wantTags) && !(len(tags) == 0 && len(wantTags) == 0) {
		t.Errorf("tags: gateway %v, cluster %v", tags, wantTags)
	}
	var qr, wantQR map[string]any
	luxiGetJSON(t, base+"/2/query/node?fields=name,role,group", &qr)
	directCall(t, direct, luxi.MethodQuery, &wantQR, "node", []string{"name", "role", "group"}, nil)
	if !reflect.DeepEqual(qr, wantQR) {
		t.Errorf("/2/query/node: gateway %v, cluster %v", qr, wantQR)
	}
}

// TestLuxiRealJobs: a tag job through the gateway is the cluster's job
// (same id) with the gateway user in its reason trail; WatchJob streams
// the job's statuses in order; a 2-opcode job works.
func TestLuxiRealJobs(t *testing.T) {
	base, direct := luxiGateway(t)
	tag := fmt.Sprintf("luxi-e2e-%d", time.Now().UnixNano())
	code, _, body := do(t, "PUT", base+"/2/tags?tag="+tag, "", "")
	var id int64
	if code != 200 || json.Unmarshal(body, &id) != nil {
		t.Fatalf("PUT /2/tags: %d %s", code, body)
	}
	conn := dialGRPC(t, base)
	js := rapiv2.NewJobServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	statuses := watchStatuses(ctx, t, js, id)
	if statuses[len(statuses)-1] != rapiv2.JobStatus_JOB_STATUS_SUCCESS {
		t.Fatalf("job %d: statuses %v", id, statuses)
	}
	// The cluster's job of that id, with the gateway user.
	var rows [][]json.RawMessage
	directCall(t, direct, luxi.MethodQueryJobs, &rows, []int64{id}, []string{"ops"})
	if len(rows) != 1 || !strings.Contains(string(rows[0][0]), tag) ||
		!strings.Contains(string(rows[0][0]), `"user=`+e2eUser+` route=PUT /2/tags`) {
		t.Fatalf("cluster job %d: %s", id, rows)
	}
	if path, err := exec.LookPath("gnt-ns"); err == nil {
		out, err := exec.CommandContext(ctx, path, "gnt-job", "info", fmt.Sprint(id)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "user="+e2eUser) {
			t.Errorf("gnt-job info %d: %v\n%s", id, err, out)
		}
	}

	// A 2-opcode job over gRPC, watched to its end.
	kind := rapiv2.TagKind_TAG_KIND_CLUSTER
	sub, err := js.SubmitJob(ctx, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{
		{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Kind: &kind, Tags: []string{tag + "-2"}}}},
		{Op: &rapiv2.OpCode_TagsDel{TagsDel: &rapiv2.OpTagsDel{Kind: &kind, Tags: []string{tag, tag + "-2"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	statuses = watchStatuses(ctx, t, js, sub.GetJobId())
	if !jobLifecycle(statuses) {
		t.Fatalf("2-opcode job %d: %v, want queued [-> waiting] [-> running] -> success", sub.GetJobId(), statuses)
	}
	var tags []string
	directCall(t, direct, luxi.MethodQueryTags, &tags, "cluster", "")
	if slices.Contains(tags, tag) || slices.Contains(tags, tag+"-2") {
		t.Fatalf("tags after the 2-opcode job: %v", tags)
	}
	j, err := js.GetJob(ctx, &rapiv2.GetJobRequest{JobId: sub.GetJobId()})
	if err != nil || len(j.GetOps()) != 2 || len(j.GetOpstatus()) != 2 {
		t.Fatalf("GetJob %d: %v %v", sub.GetJobId(), j, err)
	}
}

// watchStatuses watches a job to its end and returns the statuses
// WatchJob streamed (each change once). No status follows a final one.
// (Between opcodes a job may go back: Ganeti's job status is its first
// unfinished opcode's, so running is followed by waiting, or queued, while
// the next opcode waits for its locks.)
func watchStatuses(ctx context.Context, t *testing.T, js rapiv2.JobServiceClient, id int64) []rapiv2.JobStatus {
	t.Helper()
	stream, err := js.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	var seen []rapiv2.JobStatus
	for {
		j, err := stream.Recv()
		if err != nil {
			break
		}
		if j.Status == nil {
			continue // a delta without a status change
		}
		s := j.GetStatus()
		if len(seen) > 0 && backend.Finalized(legacyenum.StringOf(seen[len(seen)-1])) {
			t.Fatalf("job %d changed after its end: %v then %v", id, seen, s)
		}
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
	}
	t.Logf("job %d: %v", id, seen)
	if len(seen) == 0 {
		t.Fatalf("no status for job %d", id)
	}
	return seen
}

// TestLuxiRealSubmitMany: luxi SubmitManyJobs of two jobs, each run.
func TestLuxiRealSubmitMany(t *testing.T) {
	socket := luxiSocket(t)
	b, err := luxi.New(luxi.Config{Socket: socket})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := backend.WithOrigin(context.Background(), backend.Origin{User: "many"})
	kind := rapiv2.TagKind_TAG_KIND_CLUSTER
	tag := fmt.Sprintf("luxi-many-%d", time.Now().UnixNano())
	ids, jobErrs, err := b.SubmitMany(ctx, [][]*rapiv2.OpCode{
		{{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Kind: &kind, Tags: []string{tag}}}}},
		{{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Kind: &kind, Tags: []string{tag + "-b"}}}}},
	}, backend.SubmitOptions{})
	if err != nil || len(ids) != 2 || jobErrs[0] != nil || jobErrs[1] != nil || ids[1] != ids[0]+1 {
		t.Fatalf("SubmitMany: %v %v %v", ids, jobErrs, err)
	}
	for _, id := range ids {
		ch, err := b.Watch(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var last *backend.Job
		for j := range ch {
			last = j
		}
		if last == nil || last.Status != backend.StatusSuccess {
			t.Fatalf("job %d: %+v", id, last)
		}
	}
	// Clean up the tags.
	del, err := b.Submit(ctx, []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TagsDel{TagsDel: &rapiv2.OpTagsDel{Kind: &kind, Tags: []string{tag, tag + "-b"}}}}}, backend.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := b.Watch(ctx, del)
	for range ch {
	}
}

// TestLuxiRealReadsEqualRAPI: the legacy reads of a gateway over luxi equal
// the real cluster's own RAPI answers (status and parsed body), volatile
// fields (free memory and disk) and set orders excepted. The real RAPI is
// GANETI_RAPI_URL (default https://198.51.100.10:5080, its self-signed
// certificate not verified) with the read user GANETI_RAPI_USER /
// GANETI_RAPI_PASSWORD (default reader / readpass, ../shared/ganeti-real).
func TestLuxiRealReadsEqualRAPI(t *testing.T) {
	base, _ := luxiGateway(t)
	rapi := envOr("GANETI_RAPI_URL", "https://198.51.100.10:5080")
	user, password := envOr("GANETI_RAPI_USER", "reader"), envOr("GANETI_RAPI_PASSWORD", "readpass")
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // Ganeti's self-signed rapi.pem
	}}
	real := func(path string) (int, any) {
		req, err := http.NewRequest("GET", rapi+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, password)
		resp, err := client.Do(req)
		if err != nil {
			skipOrFailInCI(t, fmt.Sprintf("the real cluster's RAPI (%s) is needed: %v", rapi, err))
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var v any
		_ = json.Unmarshal(body, &v)
		return resp.StatusCode, v
	}
	var info map[string]any
	luxiGetJSON(t, base+"/2/info", &info)
	master, _ := info["master"].(string)
	for _, path := range []string{
		"/version", "/2/info", "/2/features", "/2/os", "/2/tags",
		"/2/nodes", "/2/nodes?bulk=1", "/2/nodes/" + master, "/2/nodes/" + master + "/role", "/2/nodes/" + master + "/tags",
		"/2/instances", "/2/instances?bulk=1", "/2/instances/no-such-instance",
		"/2/groups", "/2/groups?bulk=1", "/2/groups/default", "/2/networks?bulk=1", "/2/filters?bulk=1",
		"/2/jobs", "/2/jobs/1", "/2/jobs/999999",
		"/2/query/node?fields=name,role,group,master_candidate", "/2/query/instance/fields", "/2/query/job?fields=id,status",
	} {
		code, _, body := do(t, "GET", base+path, "", "")
		var got any
		_ = json.Unmarshal(body, &got)
		wantCode, want := real(path)
		got, want = stable(got), stable(want)
		if code != wantCode || !reflect.DeepEqual(got, want) {
			t.Errorf("GET %s: gateway %d %.300v\ncluster %d %.300v", path, code, got, wantCode, want)
		}
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// volatileFields change between two reads of an idle cluster.
var volatileFields = map[string]bool{"dfree": true, "mfree": true, "mnode": true, "spfree": true}

// stable drops volatile fields and sorts lists of strings (sets such as
// /2/features, whose order Ganeti does not keep).
func stable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if volatileFields[k] {
				delete(x, k)
				continue
			}
			x[k] = stable(e)
		}
	case []any:
		strs := true
		for i, e := range x {
			x[i] = stable(e)
			_, ok := e.(string)
			strs = strs && ok
		}
		if strs {
			sort.Slice(x, func(i, j int) bool { return x[i].(string) < x[j].(string) })
		}
	}
	return v
}

// jobLifecycle reports whether statuses, as WatchJob streamed them, are a
// job's life: unfinished ones (queued, waiting, running: a job of several
// opcodes goes back between them, see watchStatuses), then success.
// luxid coalesces the changes it reports, so a short job may skip waiting
// or running.
func jobLifecycle(statuses []rapiv2.JobStatus) bool {
	if len(statuses) < 2 || statuses[len(statuses)-1] != rapiv2.JobStatus_JOB_STATUS_SUCCESS {
		return false
	}
	for _, s := range statuses[:len(statuses)-1] {
		switch s {
		case rapiv2.JobStatus_JOB_STATUS_QUEUED, rapiv2.JobStatus_JOB_STATUS_WAITING, rapiv2.JobStatus_JOB_STATUS_RUNNING:
		default:
			return false
		}
	}
	return true
}
