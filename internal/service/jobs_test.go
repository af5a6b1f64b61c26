package service_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
)

// newJobConn serves the services with a job engine (started unless
// stopped is set) over the golden cluster.
func newJobConn(t *testing.T, start bool) (*grpc.ClientConn, *jobs.Engine, *cluster.Model) {
	t.Helper()
	model, eng := goldenEngine(t, nil)
	if start {
		eng.Start()
	}
	svcs, err := service.New(service.Config{Backend: sim.New(model, eng), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(gateway.ErrorUnaryInterceptor(quiet), testUserInterceptor(t)),
		grpc.ChainStreamInterceptor(gateway.ErrorStreamInterceptor(quiet)))
	if err := gateway.RegisterServices(srv, svcs.Implementation); err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, eng, model
}

// testUsers are the users asUser names (the authorizer's tests check the
// authentication itself).
const testUsers = "admin x read,write,admin\nwriter x write\n"

// testUserInterceptor makes the user named by the x-test-user metadata
// (see asUser) the call's authenticated user.
func testUserInterceptor(t *testing.T) grpc.UnaryServerInterceptor {
	tab, _, err := auth.ParseUsers([]byte(testUsers))
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if names := md.Get("x-test-user"); len(names) > 0 {
			if u, ok := tab.Lookup(names[0]); ok {
				ctx = auth.NewContext(ctx, u)
			}
		}
		return handler(ctx, req)
	}
}

// asUser returns ctx for calls as one of testUsers.
func asUser(ctx context.Context, name string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-test-user", name)
}

// waitJob long-polls a job's status until it has ended, as RAPI clients do.
func waitJob(t *testing.T, js rapiv2.JobServiceClient, id int64) *rapiv2.Job {
	t.Helper()
	ctx := context.Background()
	var prev *structpb.ListValue
	for i := 0; i < 100; i++ {
		resp, err := js.WaitJobChange(ctx, &rapiv2.WaitJobChangeRequest{JobId: id, Fields: []string{"status"}, PreviousJobInfo: prev, TimeoutSeconds: 5})
		if err != nil {
			t.Fatal(err)
		}
		if c := resp.GetChange(); c != nil {
			prev = c.GetJobInfo()
			if s := prev.GetValues()[0].GetStringValue(); s == "success" || s == "error" || s == "canceled" {
				job, err := js.GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
				if err != nil {
					t.Fatal(err)
				}
				return job
			}
		}
	}
	t.Fatalf("job %d did not end", id)
	return nil
}

func legacy(t *testing.T, m proto.Message) map[string]any {
	t.Helper()
	b, err := legacyjson.Marshaler{}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return out
}

func compact(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTagWrites submits tag jobs through the tag RPCs and reads the jobs
// back in Ganeti's shapes (captures seq 46-59).
func TestTagWrites(t *testing.T) {
	conn, _, model := newJobConn(t, true)
	ctx := context.Background()
	tags := rapiv2.NewTagServiceClient(conn)
	js := rapiv2.NewJobServiceClient(conn)

	sub, err := tags.AddClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{"anchor-tag1"}})
	if err != nil {
		t.Fatal(err)
	}
	job := waitJob(t, js, sub.GetJobId())
	obj := legacy(t, job)
	b, _ := legacyjson.Marshaler{}.Marshal(job)
	for _, k := range []string{"id", "ops", "status", "summary", "opstatus", "received_ts", "start_ts", "end_ts", "oplog", "opresult"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("key %s missing in %s", k, b)
		}
	}
	if compact(t, obj["status"]) != `"success"` || compact(t, obj["summary"]) != `["TAGS_SET"]` ||
		compact(t, obj["opstatus"]) != `["success"]` || compact(t, obj["oplog"]) != `[[]]` || compact(t, obj["opresult"]) != `[null]` {
		t.Errorf("job = %s", b)
	}
	op := obj["ops"].([]any)[0].(map[string]any)
	reason := op["reason"].([]any)
	if op["OP_ID"] != "OP_TAGS_SET" || op["kind"] != "cluster" || compact(t, op["tags"]) != `["anchor-tag1"]` ||
		op["dry_run"] != false || len(reason) != 2 || reason[0].([]any)[0] != "gnt:library:rlib2:tags" ||
		reason[1].([]any)[0] != "gnt:opcode:tags_set" || reason[1].([]any)[1] != "job=1;index=0" {
		t.Errorf("op = %s", compact(t, op))
	}
	if _, ok := op["name"]; ok && op["name"] != nil {
		t.Errorf("cluster tag op has a name: %v", op["name"])
	}
	if got, _ := model.State().Tags("cluster", ""); !slices.Contains(got, "anchor-tag1") {
		t.Errorf("cluster tags = %v", got)
	}

	// Failures: Ganeti's TagError (no code), OpPrereqError with a code.
	sub, _ = tags.AddClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{"bad tag with spaces"}})
	if got := compact(t, legacy(t, waitJob(t, js, sub.GetJobId()))["opresult"]); got != `[["TagError",["Tag contains invalid characters"]]]` {
		t.Errorf("invalid tag: %s", got)
	}
	sub, _ = tags.DeleteClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{"does-not-exist"}})
	job = waitJob(t, js, sub.GetJobId())
	if got := compact(t, legacy(t, job)["opresult"]); got != `[["OpPrereqError",["Tag(s) 'does-not-exist' not found","unknown_entity"]]]` {
		t.Errorf("missing tag: %s", got)
	}
	if e := job.GetOpresult()[0].GetError(); e.GetErrorClass() != "OpPrereqError" || e.GetArgs().GetCode() != rapiv2.ErrorCode_ERROR_CODE_UNKNOWN_ENTITY {
		t.Errorf("typed error = %v", e)
	}

	// Dry run with a reason, on a node, with a short name.
	sub, err = tags.AddNodeTags(ctx, &rapiv2.ChangeNodeTagsRequest{NodeName: "node1", Tag: []string{"rack9"}, DryRun: true, Reason: "because"})
	if err != nil {
		t.Fatal(err)
	}
	obj = legacy(t, waitJob(t, js, sub.GetJobId()))
	op = obj["ops"].([]any)[0].(map[string]any)
	if obj["status"] != "success" || op["dry_run"] != true || op["name"] != "node1" ||
		!strings.HasPrefix(compact(t, op["reason"]), `[["gnt:user","because",`) ||
		!strings.Contains(compact(t, obj["oplog"]), `"message"," - INFO: dry-run mode requested, not actually executing the operation"]`) {
		t.Errorf("dry run job = %s", compact(t, obj))
	}
	if got, _ := model.State().Tags("node", "node1.example.com"); slices.Contains(got, "rack9") {
		t.Error("dry run changed the node")
	}
	sub, _ = tags.AddGroupTags(ctx, &rapiv2.ChangeGroupTagsRequest{GroupName: "default", Tag: []string{"g1"}})
	if gj := waitJob(t, js, sub.GetJobId()); gj.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS {
		t.Errorf("group tag job: %v", gj)
	}
	if got, _ := model.State().Tags("nodegroup", "default"); !slices.Contains(got, "g1") {
		t.Errorf("group tags = %v", got)
	}
	sub, _ = tags.DeleteInstanceTags(ctx, &rapiv2.ChangeInstanceTagsRequest{InstanceName: "nosuch", Tag: []string{"x"}})
	if got := compact(t, legacy(t, waitJob(t, js, sub.GetJobId()))["opresult"]); got != `[["OpPrereqError",["Instance 'nosuch' not known","unknown_entity"]]]` {
		t.Errorf("unknown instance: %s", got)
	}
	sub, _ = tags.AddNetworkTags(ctx, &rapiv2.ChangeNetworkTagsRequest{NetworkName: "nosuch", Tag: []string{"x"}})
	if got := compact(t, legacy(t, waitJob(t, js, sub.GetJobId()))["opresult"]); got != `[["OpPrereqError",["Network 'nosuch' not found","unknown_entity"]]]` {
		t.Errorf("unknown network: %s", got)
	}

	// Lists.
	list, err := js.ListJobs(ctx, &rapiv2.ListJobsRequest{})
	if err != nil || len(list.GetRefs()) != 7 || list.GetRefs()[6].GetUri() != "/2/jobs/7" {
		t.Errorf("ListJobs = %v %v", list, err)
	}
	bulk, err := js.ListJobs(ctx, &rapiv2.ListJobsRequest{Bulk: true})
	if err != nil || len(bulk.GetJobs()) != 7 || bulk.GetJobs()[1].GetStatus() != rapiv2.JobStatus_JOB_STATUS_ERROR {
		t.Errorf("ListJobs bulk = %v %v", bulk, err)
	}
	res, err := rapiv2.NewQueryServiceClient(conn).Query(ctx, &rapiv2.QueryRequest{Resource: "job", Fields: []string{"id", "status", "ops"}})
	if err != nil || len(res.GetData()) != 7 {
		t.Fatalf("job query = %v %v", res, err)
	}
	qop := res.GetData()[0].GetCells()[2].GetValue().GetListValue().GetValues()[0].GetStructValue().GetFields()
	if qop["OP_ID"].GetStringValue() != "OP_TAGS_SET" || qop["kind"].GetStringValue() != "cluster" {
		t.Errorf("job query ops = %v", qop)
	}
}

// TestJobRPCs covers cancel, wait, submit and watch.
func TestJobRPCs(t *testing.T) {
	conn, eng, _ := newJobConn(t, false)
	ctx := context.Background()
	js := rapiv2.NewJobServiceClient(conn)
	tags := rapiv2.NewTagServiceClient(conn)

	sub, err := tags.AddClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{"paused-tag"}})
	if err != nil {
		t.Fatal(err)
	}
	id := sub.GetJobId()
	w, err := js.WaitJobChange(ctx, &rapiv2.WaitJobChangeRequest{JobId: id, Fields: []string{"status"}})
	if err != nil || compact(t, w.GetChange().GetJobInfo().AsSlice()) != `["queued"]` || len(w.GetChange().GetLogEntries()) != 0 {
		t.Errorf("first wait = %v %v", w, err)
	}
	prev, _ := structpb.NewList([]any{"queued"})
	start := time.Now()
	w, err = js.WaitJobChange(ctx, &rapiv2.WaitJobChangeRequest{JobId: id, Fields: []string{"status"}, PreviousJobInfo: prev, TimeoutSeconds: 1})
	if err != nil || w.GetChange() != nil || time.Since(start) < time.Second {
		t.Errorf("wait without change = %v %v after %v", w, err, time.Since(start))
	}
	queued, _ := js.GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
	if obj := legacy(t, queued); obj["start_ts"] != nil || compact(t, obj["opresult"]) != `[null]` || obj["status"] != "queued" {
		t.Errorf("queued job = %s", compact(t, obj))
	}
	c, err := js.CancelJob(ctx, &rapiv2.CancelJobRequest{JobId: id})
	if err != nil || !c.GetSuccess() || c.GetMessage() != "Dequeued job 1" {
		t.Errorf("cancel = %v %v", c, err)
	}
	c, _ = js.CancelJob(ctx, &rapiv2.CancelJobRequest{JobId: id})
	if c.GetSuccess() || c.GetMessage() != "Job 1 not found in queue" {
		t.Errorf("cancel again = %v", c)
	}
	job, _ := js.GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
	if obj := legacy(t, job); obj["status"] != "canceled" || obj["end_ts"] == nil || compact(t, obj["opstatus"]) != `["canceled"]` {
		t.Errorf("canceled job = %s", compact(t, obj))
	}
	unknown, _ := js.GetJob(ctx, &rapiv2.GetJobRequest{JobId: 999999})
	if got := compact(t, legacy(t, unknown)); got != `{"end_ts":null,"id":999999,"oplog":null,"opresult":null,"ops":null,"opstatus":null,"received_ts":null,"start_ts":null,"status":null,"summary":null}` {
		t.Errorf("unknown job = %s", got)
	}
	_, err = js.WaitJobChange(ctx, &rapiv2.WaitJobChangeRequest{JobId: 999999, Fields: []string{"status"}})
	if status.Code(err) != codes.NotFound {
		t.Errorf("wait on unknown job: %v", err)
	}

	// Typed submission and watch.
	delay := &rapiv2.OpCode{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{Duration: proto.Float64(0.01), Repeat: proto.Int64(2)}}}
	admin := asUser(ctx, "admin")
	s, err := js.SubmitJob(admin, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{delay}})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: s.GetJobId()})
	if err != nil {
		t.Fatal(err)
	}
	eng.Start()
	// The first message is the whole job, the others what changed.
	var first, last *rapiv2.Job
	n, entries := 0, 0
	for {
		j, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if first == nil {
			first = j
		}
		last = j
		entries += len(j.GetOplog()[0].GetEntries())
	}
	if last.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS || entries != 2 || n < 2 ||
		first.GetSummary()[0] != "TEST_DELAY(0.01)" || last.LogSerialAfter == nil {
		t.Errorf("watched %d messages with %d log entries, first %v, last %v", n, entries, first, last)
	}
	w, err = js.WaitJobChange(ctx, &rapiv2.WaitJobChangeRequest{JobId: s.GetJobId(), Fields: []string{"status"}, PreviousLogSerial: proto.Int64(1)})
	if err != nil || len(w.GetChange().GetLogEntries()) != 1 || w.GetChange().GetLogEntries()[0].GetSerial() != 2 ||
		w.GetChange().GetLogEntries()[0].GetMessage().GetStringValue() != " - INFO: Test delay iteration 1/1" {
		t.Errorf("log entries = %v %v", w, err)
	}
	_, err = js.SubmitJob(admin, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{}}}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("missing duration: %v", err)
	}
	_, err = js.SubmitJob(admin, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{{Op: &rapiv2.OpCode_ClusterVerify{ClusterVerify: &rapiv2.OpClusterVerify{}}}}})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("unimplemented opcode: %v", err)
	}
	_, err = js.SubmitJob(admin, &rapiv2.SubmitJobRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty job: %v", err)
	}
	ws, _ := js.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: 999})
	if _, err := ws.Recv(); status.Code(err) != codes.NotFound {
		t.Errorf("watch unknown: %v", err)
	}
}
