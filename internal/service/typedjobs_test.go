package service_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

func delayOp(d *rapiv2.OpTestDelay) *rapiv2.OpCode {
	return &rapiv2.OpCode{Op: &rapiv2.OpCode_TestDelay{TestDelay: d}}
}

func clusterTag(tag string) *rapiv2.OpCode {
	return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{
		Kind: rapiv2.TagKind_TAG_KIND_CLUSTER.Enum(), Tags: []string{tag}}}}
}

// TestSubmitJobAccess: an opcode no legacy route submits (OP_TEST_DELAY,
// OP_CLUSTER_VERIFY) needs a user with the admin option; a write user, or
// no user, is refused with PERMISSION_DENIED before any job is created,
// also when the job mixes it with allowed opcodes; the admin's job is
// queued, and opcodes the legacy routes submit are the write user's too.
func TestSubmitJobAccess(t *testing.T) {
	conn, eng, _ := newJobConn(t, false)
	js := rapiv2.NewJobServiceClient(conn)
	ctx := context.Background()
	delay := delayOp(&rapiv2.OpTestDelay{Duration: proto.Float64(0.01)})
	verify := &rapiv2.OpCode{Op: &rapiv2.OpCode_ClusterVerify{ClusterVerify: &rapiv2.OpClusterVerify{}}}
	for _, c := range []struct {
		name string
		ctx  context.Context
		ops  []*rapiv2.OpCode
	}{
		{"writer, OP_TEST_DELAY", asUser(ctx, "writer"), []*rapiv2.OpCode{delay}},
		{"writer, OP_TAGS_SET then OP_TEST_DELAY", asUser(ctx, "writer"), []*rapiv2.OpCode{clusterTag("a"), delay}},
		{"writer, OP_CLUSTER_VERIFY", asUser(ctx, "writer"), []*rapiv2.OpCode{verify}},
		{"no user, OP_TEST_DELAY", ctx, []*rapiv2.OpCode{delay}},
	} {
		_, err := js.SubmitJob(c.ctx, &rapiv2.SubmitJobRequest{Ops: c.ops})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), `needs a user with the "admin" option`) {
			t.Errorf("%s: %v, want PERMISSION_DENIED", c.name, err)
		}
	}
	if ids := eng.IDs(); len(ids) != 0 {
		t.Errorf("refused submissions created jobs %v", ids)
	}
	if _, err := js.SubmitJob(asUser(ctx, "writer"), &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{clusterTag("a")}}); err != nil {
		t.Errorf("writer, OP_TAGS_SET: %v", err)
	}
	if _, err := js.SubmitJob(asUser(ctx, "admin"), &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{clusterTag("b"), delay}}); err != nil {
		t.Errorf("admin, OP_TAGS_SET and OP_TEST_DELAY: %v", err)
	}
	if ids := eng.IDs(); len(ids) != 2 {
		t.Errorf("jobs %v, want the two allowed submissions", ids)
	}
}

// TestSubmitJobTestDelayBounds: even for an administrator, OP_TEST_DELAY
// sleeps at most 60 s in all (the default --max-test-delay), repeats at
// most 1000 times, and takes only a finite duration.
func TestSubmitJobTestDelayBounds(t *testing.T) {
	conn, eng, _ := newJobConn(t, false)
	js := rapiv2.NewJobServiceClient(conn)
	admin := asUser(context.Background(), "admin")
	for _, c := range []struct {
		name string
		op   *rapiv2.OpTestDelay
		ok   bool
	}{
		{"duration 1e9", &rapiv2.OpTestDelay{Duration: proto.Float64(1e9)}, false},
		{"repeat 1e9", &rapiv2.OpTestDelay{Duration: proto.Float64(0), Repeat: proto.Int64(1e9)}, false},
		{"30 s x 3", &rapiv2.OpTestDelay{Duration: proto.Float64(30), Repeat: proto.Int64(3)}, false},
		{"40 s on the master and the nodes", &rapiv2.OpTestDelay{Duration: proto.Float64(40), OnNodes: []string{"node1.example.com"}}, false},
		{"NaN", &rapiv2.OpTestDelay{Duration: proto.Float64(math.NaN())}, false},
		{"+Inf", &rapiv2.OpTestDelay{Duration: proto.Float64(math.Inf(1))}, false},
		{"negative repeat", &rapiv2.OpTestDelay{Duration: proto.Float64(1), Repeat: proto.Int64(-1)}, false},
		{"60 s", &rapiv2.OpTestDelay{Duration: proto.Float64(60)}, true},
		{"20 s x 3", &rapiv2.OpTestDelay{Duration: proto.Float64(20), Repeat: proto.Int64(3)}, true},
		{"40 s on the nodes only", &rapiv2.OpTestDelay{Duration: proto.Float64(40), OnMaster: proto.Bool(false), OnNodes: []string{"node1.example.com"}}, true},
		{"negative (fails when run, sleeps nothing)", &rapiv2.OpTestDelay{Duration: proto.Float64(-5), Repeat: proto.Int64(1000)}, true},
	} {
		before := len(eng.IDs())
		_, err := js.SubmitJob(admin, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{delayOp(c.op)}})
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.ok && status.Code(err) != codes.InvalidArgument:
			t.Errorf("%s: %v, want INVALID_ARGUMENT", c.name, err)
		case !c.ok && len(eng.IDs()) != before:
			t.Errorf("%s: a job was created", c.name)
		}
	}
}

// TestSubmitJobRouteRules: an allowed opcode gets the rules of the legacy
// route that submits it, with the same errors as that route's typed
// method: a forbidden parameter is a 403, a value the handler fixes cannot
// be overwritten, a parameter the route does not take (startup's hvparams)
// is a 403, an opcode cannot bring a reason trail; the handler's fixed
// values and its reason trail are applied.
func TestSubmitJobRouteRules(t *testing.T) {
	conn, _, _ := newJobConn(t, false)
	js := rapiv2.NewJobServiceClient(conn)
	writer := asUser(context.Background(), "writer")
	submit := func(op *rapiv2.OpCode) error {
		_, err := js.SubmitJob(writer, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{op}, Reason: "why"})
		return err
	}
	same := func(name string, typed, legacy error, code codes.Code, msg string) {
		t.Helper()
		if status.Code(typed) != code || status.Convert(typed).Message() != msg {
			t.Errorf("%s: SubmitJob %v, want %v %q", name, typed, code, msg)
		}
		if legacy != nil && (status.Code(legacy) != status.Code(typed) || status.Convert(legacy).Message() != status.Convert(typed).Message()) {
			t.Errorf("%s: SubmitJob %v, the route's method %v", name, typed, legacy)
		}
	}

	// A forbidden parameter (PUT /2/modify's compression_tools).
	cluster := &rapiv2.OpClusterSetParams{CompressionTools: []string{"gzip"}}
	_, legacy := rapiv2.NewClusterServiceClient(conn).ModifyCluster(writer, &rapiv2.ModifyClusterRequest{Op: cluster})
	same("compression_tools", submit(&rapiv2.OpCode{Op: &rapiv2.OpCode_ClusterSetParams{ClusterSetParams: cluster}}), legacy,
		codes.PermissionDenied, "The parameter compression_tools cannot be set via RAPI")

	// A value the handler fixes (DELETE /2/instances/{name}: ignore_failures false).
	remove := &rapiv2.OpInstanceRemove{InstanceName: proto.String("inst1.example.com"), IgnoreFailures: proto.Bool(true)}
	// (The route's method has the name in its path.)
	pathOnly := func(m proto.Message) proto.Message {
		c := proto.Clone(m)
		c.ProtoReflect().Clear(c.ProtoReflect().Descriptor().Fields().ByName("instance_name"))
		return c
	}
	_, legacy = rapiv2.NewInstanceServiceClient(conn).DeleteInstance(writer, &rapiv2.DeleteInstanceRequest{InstanceName: "inst1.example.com",
		Op: pathOnly(remove).(*rapiv2.OpInstanceRemove)})
	same("ignore_failures", submit(&rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceRemove{InstanceRemove: remove}}), legacy,
		codes.InvalidArgument, "Can't overwrite static parameters {'ignore_failures'}")

	// The reason trail is the server's.
	shutdown := &rapiv2.OpInstanceShutdown{InstanceName: proto.String("inst1.example.com"),
		Reason: []*rapiv2.ReasonEntry{{Source: "gnt:user", Reason: "forged"}}}
	_, legacy = rapiv2.NewInstanceServiceClient(conn).ShutdownInstance(writer, &rapiv2.ShutdownInstanceRequest{InstanceName: "inst1.example.com",
		Op: pathOnly(shutdown).(*rapiv2.OpInstanceShutdown)})
	same("reason", submit(&rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceShutdown{InstanceShutdown: shutdown}}), legacy,
		codes.InvalidArgument, "Can't overwrite static parameters {'reason'}")

	// A parameter no route that submits the opcode takes.
	hv, _ := structpb.NewStruct(map[string]any{"kernel_path": "/evil"})
	same("startup hvparams", submit(&rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceStartup{InstanceStartup: &rapiv2.OpInstanceStartup{
		InstanceName: proto.String("inst1.example.com"), Hvparams: hv}}}), nil,
		codes.PermissionDenied, "The parameter hvparams cannot be set via RAPI")

	// Cluster tags have no name (the /2/tags handler fixes it to null).
	same("cluster tag with a name", submit(&rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{
		Kind: rapiv2.TagKind_TAG_KIND_CLUSTER.Enum(), Name: proto.String("x"), Tags: []string{"t"}}}}), nil,
		codes.InvalidArgument, "Can't overwrite static parameters {'name'}")

	// The multi-allocation handler's own check.
	_, legacy = rapiv2.NewInstanceServiceClient(conn).MultiAllocateInstances(writer, &rapiv2.MultiAllocateInstancesRequest{Op: &rapiv2.OpInstanceMultiAlloc{}})
	same("multi-alloc without instances", submit(&rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceMultiAlloc{InstanceMultiAlloc: &rapiv2.OpInstanceMultiAlloc{}}}), legacy,
		codes.InvalidArgument, "Request is missing required 'instances' field in body")

	// Accepted: the route's fixed values and reason trail are applied.
	sub, err := js.SubmitJob(writer, &rapiv2.SubmitJobRequest{Reason: "why", Ops: []*rapiv2.OpCode{
		{Op: &rapiv2.OpCode_InstanceRemove{InstanceRemove: &rapiv2.OpInstanceRemove{InstanceName: proto.String("inst1.example.com")}}},
		{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Kind: rapiv2.TagKind_TAG_KIND_INSTANCE.Enum(), Name: proto.String("inst1.example.com"), Tags: []string{"t"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	job, err := js.GetJob(writer, &rapiv2.GetJobRequest{JobId: sub.GetJobId()})
	if err != nil || len(job.GetOps()) != 2 {
		t.Fatalf("job: %v %v", job, err)
	}
	rm := job.GetOps()[0].GetInstanceRemove()
	if rm.IgnoreFailures == nil || rm.GetIgnoreFailures() {
		t.Errorf("ignore_failures %v, want the handler's false", rm.IgnoreFailures)
	}
	for i, want := range []string{"instances_name", "instances_name_tags"} {
		var reason []*rapiv2.ReasonEntry
		switch i {
		case 0:
			reason = rm.GetReason()
		case 1:
			reason = job.GetOps()[1].GetTagsSet().GetReason()
		}
		var sources []string
		for _, r := range reason {
			sources = append(sources, r.GetSource()+"="+r.GetReason())
		}
		if len(sources) != 3 || sources[0] != "gnt:user=why" || sources[1] != "gnt:library:rlib2:"+want+"=" ||
			!strings.HasPrefix(sources[2], "gnt:opcode:") {
			t.Errorf("opcode %d: reason trail %v", i, sources)
		}
	}
}
