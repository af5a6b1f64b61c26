package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

func listValue(t *testing.T, v ...any) *structpb.ListValue {
	t.Helper()
	l, err := structpb.NewList(v)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestFilterWrites(t *testing.T) {
	conn, eng, _ := newJobConn(t, false)
	fs := rapiv2.NewFilterServiceClient(conn)
	ctx := context.Background()
	// A job before the rule: the watermark is the highest job id.
	ts := rapiv2.NewTagServiceClient(conn)
	if _, err := ts.AddClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	added, err := fs.AddFilter(ctx, &rapiv2.AddFilterRequest{Rule: &rapiv2.FilterRuleSpec{
		Priority:   proto.Int64(5),
		Action:     structpb.NewStringValue("PAUSE"),
		Predicates: listValue(t, []any{"opcode", []any{"=", "OP_ID", "OP_TAGS_SET"}}),
		Reason:     listValue(t, []any{"anchor", "why", 1700000000000000000}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	rule, err := fs.GetFilter(ctx, &rapiv2.GetFilterRequest{FilterUuid: added.GetUuid()})
	if err != nil {
		t.Fatal(err)
	}
	got := legacy(t, rule)
	trail := got["reason_trail"].([]any)
	if got["watermark"] != float64(eng.LastJobID()) || got["priority"] != float64(5) || got["action"] != "PAUSE" ||
		compact(t, got["predicates"]) != `[["opcode",["==","OP_ID","OP_TAGS_SET"]]]` || len(trail) != 2 ||
		compact(t, trail[0]) != `["anchor","why",1700000000000000000]` ||
		trail[1].([]any)[0] != "luxid" || trail[1].([]any)[1] != "" {
		t.Fatalf("rule = %s", compact(t, got))
	}
	if eng.LastJobID() != 1 {
		t.Errorf("LastJobID = %d", eng.LastJobID())
	}

	// PUT creates a rule with the given UUID (lower case), with defaults.
	const u = "0000AAAA-0000-4000-8000-000000000001"
	put, err := fs.ReplaceFilter(ctx, &rapiv2.ReplaceFilterRequest{FilterUuid: u, Rule: &rapiv2.FilterRuleSpec{}})
	if err != nil || put.GetUuid() != strings.ToLower(u) {
		t.Fatalf("ReplaceFilter = %v, %v", put, err)
	}
	rule, err = fs.GetFilter(ctx, &rapiv2.GetFilterRequest{FilterUuid: u})
	if err != nil {
		t.Fatal(err)
	}
	if got := legacy(t, rule); got["action"] != "CONTINUE" || got["priority"] != float64(0) || compact(t, got["predicates"]) != `[]` {
		t.Fatalf("defaults: %s", compact(t, got))
	}
	// PUT replaces.
	_, err = fs.ReplaceFilter(ctx, &rapiv2.ReplaceFilterRequest{FilterUuid: u, Rule: &rapiv2.FilterRuleSpec{
		Action: structpb.NewListValue(listValue(t, "RATE_LIMIT", 3))}})
	if err != nil {
		t.Fatal(err)
	}
	rule, _ = fs.GetFilter(ctx, &rapiv2.GetFilterRequest{FilterUuid: u})
	if got := legacy(t, rule); compact(t, got["action"]) != `["RATE_LIMIT",3]` {
		t.Fatalf("replaced: %s", compact(t, got))
	}
	list, err := fs.ListFilters(ctx, &rapiv2.ListFiltersRequest{})
	if err != nil || len(list.GetRefs()) != 2 {
		t.Fatalf("ListFilters = %v, %v", list, err)
	}

	// DELETE, then the rule is gone; an unknown one is NotFound.
	if v, err := fs.DeleteFilter(ctx, &rapiv2.DeleteFilterRequest{FilterUuid: u}); err != nil || v.GetNullValue() != structpb.NullValue_NULL_VALUE {
		t.Fatalf("DeleteFilter = %v, %v", v, err)
	}
	if _, err := fs.GetFilter(ctx, &rapiv2.GetFilterRequest{FilterUuid: u}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetFilter after delete: %v", err)
	}
	_, err = fs.DeleteFilter(ctx, &rapiv2.DeleteFilterRequest{FilterUuid: u})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "Filter rule with UUID "+u+" does not exist") {
		t.Fatalf("DeleteFilter unknown: %v", err)
	}
}

func TestFilterWriteValidation(t *testing.T) {
	conn, _, model := newJobConn(t, false)
	fs := rapiv2.NewFilterServiceClient(conn)
	ctx := context.Background()
	str := structpb.NewStringValue
	cases := []struct {
		name string
		spec *rapiv2.FilterRuleSpec
		msg  string
	}{
		{"negative priority", &rapiv2.FilterRuleSpec{Priority: proto.Int64(-1)}, "priority must be a non-negative integer"},
		{"unknown action", &rapiv2.FilterRuleSpec{Action: str("BOGUS")}, `got "BOGUS"`},
		{"rate limit 0", &rapiv2.FilterRuleSpec{Action: structpb.NewListValue(listValue(t, "RATE_LIMIT", 0))}, "RATE_LIMIT"},
		{"rate limit fraction", &rapiv2.FilterRuleSpec{Action: structpb.NewListValue(listValue(t, "RATE_LIMIT", 1.5))}, "RATE_LIMIT"},
		{"predicate kind", &rapiv2.FilterRuleSpec{Predicates: listValue(t, []any{"owner", []any{"==", "x", "y"}})}, "kind must be jobid, opcode or reason"},
		{"predicate shape", &rapiv2.FilterRuleSpec{Predicates: listValue(t, "opcode")}, "expected [kind, filter]"},
		{"predicate filter", &rapiv2.FilterRuleSpec{Predicates: listValue(t, []any{"opcode", []any{"~~", "OP_ID", "x"}})}, "Unknown filter operand '~~'"},
		{"reason entry", &rapiv2.FilterRuleSpec{Reason: listValue(t, []any{"a", "b"})}, "reason[0] must be [source, reason, timestamp]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := fs.AddFilter(ctx, &rapiv2.AddFilterRequest{Rule: c.spec})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.msg) {
				t.Fatalf("AddFilter: %v, want InvalidArgument with %q", err, c.msg)
			}
			_, err = fs.ReplaceFilter(ctx, &rapiv2.ReplaceFilterRequest{FilterUuid: "00000000-0000-4000-8000-000000000001", Rule: c.spec})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("ReplaceFilter: %v", err)
			}
		})
	}
	_, err := fs.ReplaceFilter(ctx, &rapiv2.ReplaceFilterRequest{FilterUuid: "not-a-uuid", Rule: &rapiv2.FilterRuleSpec{}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ReplaceFilter with a bad UUID: %v", err)
	}
	if n := len(model.State().FilterRules()); n != 0 {
		t.Fatalf("%d rules after refused writes", n)
	}
}

// A rule added over the API acts on the queued jobs; deleting it lets
// them run.
func TestFilterWritesActOnJobs(t *testing.T) {
	conn, _, _ := newJobConn(t, true)
	fs := rapiv2.NewFilterServiceClient(conn)
	js := rapiv2.NewJobServiceClient(conn)
	ts := rapiv2.NewTagServiceClient(conn)
	ctx := context.Background()
	added, err := fs.AddFilter(ctx, &rapiv2.AddFilterRequest{Rule: &rapiv2.FilterRuleSpec{Action: structpb.NewStringValue("PAUSE")}})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := ts.AddClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{"later"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // time to run, were it not paused
	job, err := js.GetJob(ctx, &rapiv2.GetJobRequest{JobId: sub.GetJobId()})
	if err != nil || job.GetStatus() != rapiv2.JobStatus_JOB_STATUS_QUEUED {
		t.Fatalf("paused job: %v, %v", job.GetStatus(), err)
	}
	if _, err := fs.DeleteFilter(ctx, &rapiv2.DeleteFilterRequest{FilterUuid: added.GetUuid()}); err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, js, sub.GetJobId()); j.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS {
		t.Fatalf("after the deletion: %s", j.GetStatus())
	}
}
