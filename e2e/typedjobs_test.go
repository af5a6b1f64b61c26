package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// TestTypedMultiOpcodeJob submits a job of several opcodes with the typed
// SubmitJob RPC and follows it with WatchJob until it ends: a tag on the
// cluster, an instance creation, and a tag on the new instance. A second
// job whose middle opcode fails shows Ganeti's "Preceding opcode failed".
func TestTypedMultiOpcodeJob(t *testing.T) {
	base := inProcess(t, "deploy/demo-cluster.json")
	jobs := rapiv2.NewJobServiceClient(dialGRPC(t, base))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	disks, err := structpb.NewValue([]any{map[string]any{"size": 1024}})
	if err != nil {
		t.Fatal(err)
	}
	tagSet := func(kind rapiv2.TagKind, name *string, tag string) *rapiv2.OpCode {
		return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Kind: kind.Enum(), Name: name, Tags: []string{tag}}}}
	}
	create := &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceCreate{InstanceCreate: &rapiv2.OpInstanceCreate{
		InstanceName: proto.String("typed1.example.com"),
		Mode:         rapiv2.InstanceCreateMode_INSTANCE_CREATE_MODE_CREATE.Enum(),
		DiskTemplate: rapiv2.DiskTemplate_DISK_TEMPLATE_PLAIN.Enum(),
		OsType:       proto.String("noop"),
		Pnode:        proto.String("node3.example.com"),
		Disks:        []*structpb.Struct{disks.GetListValue().GetValues()[0].GetStructValue()},
		Nics:         []*rapiv2.NicParams{{}},
		NameCheck:    proto.Bool(false),
		IpCheck:      proto.Bool(false),
	}}}
	sub, err := jobs.SubmitJob(ctx, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{
		tagSet(rapiv2.TagKind_TAG_KIND_CLUSTER, nil, "typed-api"),
		create,
		tagSet(rapiv2.TagKind_TAG_KIND_INSTANCE, proto.String("typed1.example.com"), "typed"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	final := watchToEnd(ctx, t, jobs, sub.GetJobId())
	if final.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS || len(final.GetOpstatus()) != 3 {
		t.Fatalf("job ended %v, opstatus %v, results %v", final.GetStatus(), final.GetOpstatus(), final.GetOpresult())
	}
	if got := final.GetSummary(); strings.Join(got, ",") != "TAGS_SET,INSTANCE_CREATE(typed1.example.com),TAGS_SET" {
		t.Errorf("summary %v", got)
	}
	// The effects: the instance exists on node3 with its tag.
	_, _, body := do(t, "GET", base+"/2/instances/typed1.example.com", "", "")
	var inst map[string]any
	if err := json.Unmarshal(body, &inst); err != nil {
		t.Fatalf("%s", body)
	}
	if inst["pnode"] != "node3.example.com" || inst["status"] != "running" || !strings.Contains(string(body), `"tags":["typed"]`) {
		t.Errorf("instance after the job: %s", body)
	}

	// A failing middle opcode: the later ones fail with "Preceding opcode failed".
	sub, err = jobs.SubmitJob(ctx, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{
		tagSet(rapiv2.TagKind_TAG_KIND_CLUSTER, nil, "first"),
		tagSet(rapiv2.TagKind_TAG_KIND_INSTANCE, proto.String("nosuch.example.com"), "x"),
		tagSet(rapiv2.TagKind_TAG_KIND_CLUSTER, nil, "third"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	final = watchToEnd(ctx, t, jobs, sub.GetJobId())
	res := final.GetOpresult()
	if final.GetStatus() != rapiv2.JobStatus_JOB_STATUS_ERROR || len(res) != 3 ||
		res[1].GetError().GetArgs().GetCode() != rapiv2.ErrorCode_ERROR_CODE_UNKNOWN_ENTITY ||
		res[2].GetError().GetArgs().GetMessage() != "Preceding opcode failed" {
		t.Errorf("failing job: %v %v", final.GetStatus(), res)
	}
}

// watchToEnd follows a job with WatchJob, checking that no opcode's
// status moves backwards (a job's own status may: Ganeti derives it from
// its opcodes, so it reads "queued" again between two opcodes), and returns
// its last state, rebuilt from the stream: the whole job first, then what
// changed (see Job.log_serial_after).
func watchToEnd(ctx context.Context, t *testing.T, jobs rapiv2.JobServiceClient, id int64) *rapiv2.Job {
	t.Helper()
	stream, err := jobs.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	var last *rapiv2.Job
	updates := 0
	for {
		j, err := stream.Recv()
		if err != nil {
			break
		}
		if last != nil {
			for i, st := range j.GetOpstatus() {
				if prev := last.GetOpstatus(); i < len(prev) && opRank(st) < opRank(prev[i]) {
					t.Errorf("opcode %d went from %v back to %v", i, prev[i], st)
				}
			}
		}
		last, updates = mergeWatched(last, j), updates+1
	}
	if last == nil {
		t.Fatalf("WatchJob(%d) sent nothing", id)
	}
	switch last.GetStatus() {
	case rapiv2.JobStatus_JOB_STATUS_SUCCESS, rapiv2.JobStatus_JOB_STATUS_ERROR, rapiv2.JobStatus_JOB_STATUS_CANCELED:
	default:
		t.Fatalf("stream ended before the job did: %v after %d updates", last.GetStatus(), updates)
	}
	return last
}

// opRank orders opcode statuses: pending, then running, then final.
func opRank(s rapiv2.JobStatus) int {
	switch s {
	case rapiv2.JobStatus_JOB_STATUS_QUEUED, rapiv2.JobStatus_JOB_STATUS_WAITING:
		return 0
	case rapiv2.JobStatus_JOB_STATUS_RUNNING, rapiv2.JobStatus_JOB_STATUS_CANCELING:
		return 1
	}
	return 2
}

// TestTypedAdminOpcodes drives SubmitJob through the whole server (the
// users file, the authorizer): OP_TEST_DELAY is refused to a write user
// with PERMISSION_DENIED, and the refusal is in the audit log; a user with
// the admin option submits it within --max-test-delay (here 2 s) and is
// refused beyond it.
func TestTypedAdminOpcodes(t *testing.T) {
	logs := &syncBuffer{}
	base := inProcessWith(t, "deploy/demo-cluster.json", func(c *server.Config) {
		c.MaxTestDelay = 2 * time.Second
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	delay := func(seconds float64) *rapiv2.SubmitJobRequest {
		return &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{Duration: proto.Float64(seconds)}}}}}
	}
	u, _ := url.Parse(base)
	u.User = url.UserPassword("writer", "writepass")
	writer := rapiv2.NewJobServiceClient(dialGRPC(t, u.String()))
	if _, err := writer.SubmitJob(ctx, delay(0.1)); status.Code(err) != codes.PermissionDenied {
		t.Errorf("write user, OP_TEST_DELAY: %v, want PERMISSION_DENIED", err)
	}
	if !strings.Contains(logs.String(), `"msg":"audit"`) || !strings.Contains(logs.String(), `"code":"PermissionDenied"`) {
		t.Errorf("no audit record of the refusal:\n%s", logs.String())
	}
	admin := rapiv2.NewJobServiceClient(dialGRPC(t, base))
	if _, err := admin.SubmitJob(ctx, delay(3)); status.Code(err) != codes.InvalidArgument {
		t.Errorf("admin, 3 s with --max-test-delay 2s: %v, want INVALID_ARGUMENT", err)
	}
	sub, err := admin.SubmitJob(ctx, delay(0.1))
	if err != nil {
		t.Fatalf("admin, 0.1 s: %v", err)
	}
	if final := watchToEnd(ctx, t, admin, sub.GetJobId()); final.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS {
		t.Errorf("admin's OP_TEST_DELAY ended %v", final.GetStatus())
	}
}

// mergeWatched applies a WatchJob message to the job rebuilt so far.
func mergeWatched(job, msg *rapiv2.Job) *rapiv2.Job {
	if job == nil || msg.LogSerialAfter == nil {
		return msg
	}
	out := proto.Clone(job).(*rapiv2.Job)
	out.Status, out.Opstatus = msg.Status, msg.Opstatus
	out.ReceivedTs, out.StartTs, out.EndTs = msg.ReceivedTs, msg.StartTs, msg.EndTs
	for i, l := range msg.GetOplog() {
		if i < len(out.Oplog) {
			out.Oplog[i].Entries = append(out.Oplog[i].Entries, l.GetEntries()...)
		}
	}
	if len(msg.GetOpresult()) > 0 {
		out.Opresult = msg.Opresult
	}
	if len(msg.GetOps()) > 0 {
		out.Ops = msg.Ops
	}
	return out
}
