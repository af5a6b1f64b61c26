package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend/backendtest"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
)

// The handler tests run every RPC of every service (enumerated from the
// proto registry) against backendtest.Fake: which backend methods it
// calls, with which arguments and with the request's context; how it
// converts the answer; and that a backend error of every class reaches the
// client with its gRPC code and message.

// rpcCase is one call of an RPC.
type rpcCase struct {
	method string // full method, e.g. /ganeti.rapi.v2.NodeService/GetNode
	name   string // tells cases of one method apart
	req    proto.Message
	setup  func(f *backendtest.Fake)
	// calls are the backend methods the RPC calls, in order (Supports
	// left out).
	calls []string
	check func(t *testing.T, calls []backendtest.Call, resp []proto.Message)
}

const filterUUID = "0fa4e000-0000-4000-8000-000000000001"

func withFilter(f *backendtest.Fake) {
	f.SetObject(backend.ResFilter, map[string]any{"uuid": filterUUID, "priority": int64(3), "predicates": []any{},
		"action": "PAUSE", "reason_trail": []any{}, "watermark": int64(0)})
}

// withJobs adds job 1 (ended) and job 2 (queued).
func withJobs(f *backendtest.Fake) {
	ts := &backend.Timestamp{Sec: 1795376092, Usec: 5}
	op := clusterTag("a")
	f.SetJob(&backend.Job{ID: 1, Ops: []*rapiv2.OpCode{op}, Status: backend.StatusSuccess, Summary: []string{"TAGS_SET(cluster)"},
		OpStatus: []string{backend.StatusSuccess}, OpResult: []any{nil}, ReceivedTS: ts, StartTS: ts, EndTS: ts,
		OpLog: [][]backend.LogEntry{{{Serial: 1, Time: *ts, Type: "message", Message: "done"}}}})
	f.SetJob(&backend.Job{ID: 2, Ops: []*rapiv2.OpCode{op}, Status: backend.StatusQueued, Summary: []string{"TAGS_SET(cluster)"},
		OpStatus: []string{backend.StatusQueued}, OpResult: []any{nil}, ReceivedTS: ts, OpLog: [][]backend.LogEntry{{}}})
}

// args checks the arguments of the call i.
func args(t *testing.T, calls []backendtest.Call, i int, want ...any) {
	t.Helper()
	if i >= len(calls) {
		t.Fatalf("no call %d", i)
	}
	got := calls[i].Args
	if len(got) < len(want) {
		t.Fatalf("%s args %v, want %v", calls[i].Method, got, want)
	}
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("%s arg %d = %v, want %v", calls[i].Method, k, got[k], w)
		}
	}
}

func one[T proto.Message](t *testing.T, resp []proto.Message) T {
	t.Helper()
	if len(resp) != 1 {
		t.Fatalf("%d answers, want 1", len(resp))
	}
	return resp[0].(T)
}

const svc = "/ganeti.rapi.v2."

// readCases are the RPCs that submit no job.
var readCases = []rpcCase{
	{method: svc + "VersionService/GetRoot", check: func(t *testing.T, _ []backendtest.Call, r []proto.Message) {
		if v := one[*structpb.Value](t, r); v.GetNullValue() != structpb.NullValue_NULL_VALUE {
			t.Errorf("GetRoot = %v, want null", v)
		}
	}},
	{method: svc + "VersionService/GetRootV2", check: func(t *testing.T, _ []backendtest.Call, r []proto.Message) {
		one[*structpb.Value](t, r)
	}},
	{method: svc + "VersionService/GetVersion", check: func(t *testing.T, _ []backendtest.Call, r []proto.Message) {
		if v := one[*rapiv2.Version](t, r); v.GetVersion() != 2 {
			t.Errorf("version %v", v)
		}
	}},
	{method: svc + "VersionService/GetFeatures", check: func(t *testing.T, _ []backendtest.Call, r []proto.Message) {
		if len(one[*rapiv2.Features](t, r).GetFeatures()) == 0 {
			t.Error("no features")
		}
	}},
	{method: svc + "ClusterService/GetInfo", calls: []string{"ClusterInfo"}, check: func(t *testing.T, _ []backendtest.Call, r []proto.Message) {
		if info := one[*rapiv2.ClusterInfo](t, r); info.GetName() != "fake.example.com" || info.GetMaster() != "node1.example.com" {
			t.Errorf("info %v", info)
		}
	}},
	// Filters.
	{method: svc + "FilterService/ListFilters", setup: withFilter, calls: []string{"Names"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, backend.ResFilter)
			refs := one[*rapiv2.ListFiltersResponse](t, r).GetRefs()
			if len(refs) != 1 || refs[0].GetUuid() != filterUUID || refs[0].GetUri() != "/2/filters/"+filterUUID {
				t.Errorf("refs %v", refs)
			}
		}},
	{method: svc + "FilterService/ListFilters", name: "bulk", req: &rapiv2.ListFiltersRequest{Bulk: true}, setup: withFilter,
		calls: []string{"Query"}, check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, backend.ResFilter)
			rules := one[*rapiv2.ListFiltersResponse](t, r).GetFilters()
			if len(rules) != 1 || rules[0].GetUuid() != filterUUID || rules[0].GetPriority() != 3 {
				t.Errorf("rules %v", rules)
			}
		}},
	{method: svc + "FilterService/GetFilter", req: &rapiv2.GetFilterRequest{FilterUuid: filterUUID}, setup: withFilter,
		calls: []string{"Get"}, check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, backend.ResFilter, filterUUID)
			if rule := one[*rapiv2.FilterRule](t, r); rule.GetUuid() != filterUUID || rule.GetPriority() != 3 || rule.GetAction().GetStringValue() != "PAUSE" {
				t.Errorf("rule %v", rule)
			}
		}},
	{method: svc + "FilterService/AddFilter", req: &rapiv2.AddFilterRequest{Rule: &rapiv2.FilterRuleSpec{Priority: proto.Int64(4),
		Action: structpb.NewStringValue("PAUSE")}}, calls: []string{"ReplaceFilter"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, "")
			spec := c[0].Args[1].(backend.FilterRuleSpec)
			if spec.Priority != 4 || spec.Action != "PAUSE" {
				t.Errorf("spec %+v", spec)
			}
			if u := one[*rapiv2.FilterUuid](t, r).GetUuid(); u == "" {
				t.Error("no UUID")
			}
		}},
	{method: svc + "FilterService/ReplaceFilter", req: &rapiv2.ReplaceFilterRequest{FilterUuid: filterUUID,
		Rule: &rapiv2.FilterRuleSpec{Priority: proto.Int64(5)}}, setup: withFilter, calls: []string{"ReplaceFilter"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, filterUUID)
			if spec := c[0].Args[1].(backend.FilterRuleSpec); spec.Priority != 5 || spec.Action != nil {
				t.Errorf("spec %+v", spec)
			}
			if u := one[*rapiv2.FilterUuid](t, r).GetUuid(); u != filterUUID {
				t.Errorf("UUID %s", u)
			}
		}},
	{method: svc + "FilterService/DeleteFilter", req: &rapiv2.DeleteFilterRequest{FilterUuid: filterUUID}, setup: withFilter,
		calls: []string{"DeleteFilter"}, check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, filterUUID)
			if v := one[*structpb.Value](t, r); v.GetNullValue() != structpb.NullValue_NULL_VALUE {
				t.Errorf("answer %v, want null", v)
			}
		}},
	// Groups, instances, networks, nodes: lists, bulk lists, objects.
	listCase("GroupService/ListGroups", &rapiv2.ListGroupsRequest{}, backend.ResGroup, func(m proto.Message) []string {
		var out []string
		for _, r := range m.(*rapiv2.ListGroupsResponse).GetRefs() {
			out = append(out, r.GetName()+" "+r.GetUri())
		}
		return out
	}, "default /2/groups/default"),
	bulkCase("GroupService/ListGroups", &rapiv2.ListGroupsRequest{Bulk: true}, backend.ResGroup, func(m proto.Message) []string {
		var out []string
		for _, g := range m.(*rapiv2.ListGroupsResponse).GetGroups() {
			out = append(out, g.GetName()+" "+g.GetAllocPolicy())
		}
		return out
	}, "default preferred"),
	{method: svc + "GroupService/GetGroup", req: &rapiv2.GetGroupRequest{GroupName: "default"}, calls: []string{"Get"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, backend.ResGroup, "default")
			if g := one[*rapiv2.Group](t, r); g.GetName() != "default" || g.GetNodeCnt() != 2 {
				t.Errorf("group %v", g)
			}
		}},
	listCase("InstanceService/ListInstances", &rapiv2.ListInstancesRequest{}, backend.ResInstance, func(m proto.Message) []string {
		var out []string
		for _, r := range m.(*rapiv2.ListInstancesResponse).GetRefs() {
			out = append(out, r.GetId()+" "+r.GetUri())
		}
		return out
	}, "build1.example.com /2/instances/build1.example.com", "web1.example.com /2/instances/web1.example.com"),
	bulkCase("InstanceService/ListInstances", &rapiv2.ListInstancesRequest{Bulk: true}, backend.ResInstance, func(m proto.Message) []string {
		var out []string
		for _, i := range m.(*rapiv2.ListInstancesResponse).GetInstances() {
			out = append(out, i.GetName()+" "+i.GetStatus()+" "+i.GetPnode())
		}
		return out
	}, "build1.example.com ADMIN_down node2.example.com", "web1.example.com running node1.example.com"),
	{method: svc + "InstanceService/GetInstance", req: &rapiv2.GetInstanceRequest{InstanceName: "web1.example.com"}, calls: []string{"Get"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, backend.ResInstance, "web1.example.com")
			if i := one[*rapiv2.Instance](t, r); i.GetName() != "web1.example.com" || !i.GetOperState() || !slices.Equal(i.GetTags(), []string{"web"}) {
				t.Errorf("instance %v", i)
			}
		}},
	{method: svc + "InstanceService/GetInstanceConsole", req: &rapiv2.GetInstanceConsoleRequest{InstanceName: "web1.example.com"},
		calls: []string{"InstanceConsole"}, check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, "web1.example.com")
			if con := one[*rapiv2.InstanceConsole](t, r); con.GetInstance() != "web1.example.com" || con.GetKind() != "msg" {
				t.Errorf("console %v", con)
			}
		}},
	listCase("NetworkService/ListNetworks", &rapiv2.ListNetworksRequest{}, backend.ResNetwork, func(m proto.Message) []string {
		var out []string
		for _, r := range m.(*rapiv2.ListNetworksResponse).GetRefs() {
			out = append(out, r.GetName()+" "+r.GetUri())
		}
		return out
	}, "net1 /2/networks/net1"),
	bulkCase("NetworkService/ListNetworks", &rapiv2.ListNetworksRequest{Bulk: true}, backend.ResNetwork, func(m proto.Message) []string {
		var out []string
		for _, n := range m.(*rapiv2.ListNetworksResponse).GetNetworks() {
			out = append(out, n.GetName()+" "+n.GetNetwork())
		}
		return out
	}, "net1 192.0.2.0/24"),
	{method: svc + "NetworkService/GetNetwork", req: &rapiv2.GetNetworkRequest{NetworkName: "net1"}, calls: []string{"Get"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, backend.ResNetwork, "net1")
			if n := one[*rapiv2.Network](t, r); n.GetName() != "net1" || n.GetNetwork() != "192.0.2.0/24" {
				t.Errorf("network %v", n)
			}
		}},
	listCase("NodeService/ListNodes", &rapiv2.ListNodesRequest{}, backend.ResNode, func(m proto.Message) []string {
		var out []string
		for _, r := range m.(*rapiv2.ListNodesResponse).GetRefs() {
			out = append(out, r.GetId()+" "+r.GetUri())
		}
		return out
	}, "node1.example.com /2/nodes/node1.example.com", "node2.example.com /2/nodes/node2.example.com"),
	bulkCase("NodeService/ListNodes", &rapiv2.ListNodesRequest{Bulk: true}, backend.ResNode, func(m proto.Message) []string {
		var out []string
		for _, n := range m.(*rapiv2.ListNodesResponse).GetNodes() {
			out = append(out, fmt.Sprint(n.GetName(), " ", n.GetRole(), " ", n.GetMfree()))
		}
		return out
	}, "node1.example.com M 16384", "node2.example.com C 30000"),
	{method: svc + "NodeService/GetNode", req: &rapiv2.GetNodeRequest{NodeName: "node2.example.com"}, calls: []string{"Get"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, backend.ResNode, "node2.example.com")
			if n := one[*rapiv2.Node](t, r); n.GetName() != "node2.example.com" || n.GetRole() != "C" || n.GetMtotal() != 32768 {
				t.Errorf("node %v", n)
			}
		}},
	{method: svc + "NodeService/GetNodeRole", req: &rapiv2.GetNodeRoleRequest{NodeName: "node2.example.com"}, calls: []string{"NodeRole"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, "node2.example.com")
			if role := one[*rapiv2.NodeRole](t, r).GetRole(); role != "master-candidate" {
				t.Errorf("role %q", role)
			}
		}},
	// Jobs.
	{method: svc + "JobService/ListJobs", setup: withJobs, calls: []string{"JobIDs"},
		check: func(t *testing.T, _ []backendtest.Call, r []proto.Message) {
			refs := one[*rapiv2.ListJobsResponse](t, r).GetRefs()
			if len(refs) != 2 || refs[1].GetId() != 2 || refs[1].GetUri() != "/2/jobs/2" {
				t.Errorf("refs %v", refs)
			}
		}},
	{method: svc + "JobService/ListJobs", name: "bulk", req: &rapiv2.ListJobsRequest{Bulk: true}, setup: withJobs, calls: []string{"Jobs"},
		check: func(t *testing.T, _ []backendtest.Call, r []proto.Message) {
			jobs := one[*rapiv2.ListJobsResponse](t, r).GetJobs()
			if len(jobs) != 2 || jobs[0].GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS || jobs[1].GetStatus() != rapiv2.JobStatus_JOB_STATUS_QUEUED ||
				jobs[0].GetSummary()[0] != "TAGS_SET(cluster)" || jobs[0].GetReceivedTs().GetMicroseconds() != 5 {
				t.Errorf("jobs %v", jobs)
			}
		}},
	{method: svc + "JobService/GetJob", req: &rapiv2.GetJobRequest{JobId: 1}, setup: withJobs, calls: []string{"Job"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, int64(1))
			j := one[*rapiv2.Job](t, r)
			if j.GetId() != 1 || j.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS || len(j.GetOplog()) != 1 ||
				j.GetOplog()[0].GetEntries()[0].GetMessage().GetStringValue() != "done" || len(j.GetOps()) != 1 {
				t.Errorf("job %v", j)
			}
		}},
	{method: svc + "JobService/GetJob", name: "unknown", req: &rapiv2.GetJobRequest{JobId: 9}, calls: []string{"Job"},
		check: func(t *testing.T, _ []backendtest.Call, r []proto.Message) {
			if j := one[*rapiv2.Job](t, r); j.GetId() != 9 || j.Status != nil {
				t.Errorf("unknown job %v, want only its id", j)
			}
		}},
	{method: svc + "JobService/CancelJob", req: &rapiv2.CancelJobRequest{JobId: 2}, setup: withJobs, calls: []string{"Cancel"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, int64(2))
			if a := one[*rapiv2.CancelJobResponse](t, r); !a.GetSuccess() || a.GetMessage() != "Dequeued job 2" {
				t.Errorf("cancel %v", a)
			}
		}},
	{method: svc + "JobService/WaitJobChange", req: &rapiv2.WaitJobChangeRequest{JobId: 1, Fields: []string{"id", "status"}},
		setup: withJobs, calls: []string{"WaitForChange"}, check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, int64(1), []string{"id", "status"}, []any(nil), int64(-1), 10*time.Second)
			ch := one[*rapiv2.WaitJobChangeResponse](t, r).GetChange()
			if got := ch.GetJobInfo().AsSlice(); len(got) != 2 || got[0] != 1.0 || got[1] != "success" ||
				len(ch.GetLogEntries()) != 1 || ch.GetLogEntries()[0].GetSerial() != 1 {
				t.Errorf("change %v", ch)
			}
		}},
	{method: svc + "JobService/WaitJobChange", name: "timeout", req: &rapiv2.WaitJobChangeRequest{JobId: 2, Fields: []string{"status"},
		PreviousJobInfo: mustList([]any{"queued"}), PreviousLogSerial: proto.Int64(0), TimeoutSeconds: 1}, setup: withJobs,
		calls: []string{"WaitForChange"}, check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, int64(2), []string{"status"}, []any{"queued"}, int64(0), time.Second)
			if ch := one[*rapiv2.WaitJobChangeResponse](t, r); ch.Change != nil {
				t.Errorf("change %v, want none", ch)
			}
		}},
	{method: svc + "JobService/SubmitJob", req: &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{clusterTag("x")}},
		calls: []string{"Submit"}, check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			ops := c[0].Args[0].([]*rapiv2.OpCode)
			if len(ops) != 1 || backend.OpID(ops[0]) != "OP_TAGS_SET" || ops[0].GetTagsSet().GetTags()[0] != "x" {
				t.Errorf("ops %v", ops)
			}
			if id := one[*rapiv2.JobSubmission](t, r).GetJobId(); id != 1 {
				t.Errorf("job id %d", id)
			}
		}},
	{method: svc + "JobService/WatchJob", req: &rapiv2.WatchJobRequest{JobId: 1}, setup: withJobs, calls: []string{"Watch"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, int64(1))
			j := one[*rapiv2.Job](t, r)
			if j.GetId() != 1 || j.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS || len(j.GetOplog()) != 1 || j.Version == nil {
				t.Errorf("watched %v", j)
			}
		}},
	// Queries.
	{method: svc + "QueryService/Query", req: &rapiv2.QueryRequest{Resource: "node", Fields: []string{"name", "mfree"}},
		calls: []string{"Query"}, check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, "node", []string{"name", "mfree"}, nil)
			q := one[*rapiv2.QueryResponse](t, r)
			if len(q.GetFields()) != 2 || q.GetFields()[1].GetKind() != rapiv2.QueryFieldKind_QUERY_FIELD_KIND_NUMBER ||
				len(q.GetData()) != 2 || q.GetData()[1].GetCells()[1].GetValue().GetNumberValue() != 30000 {
				t.Errorf("query %v", q)
			}
		}},
	{method: svc + "QueryService/QueryWithFilter", req: &rapiv2.QueryWithFilterRequest{Resource: "node", Body: &rapiv2.QueryBody{
		Fields: []string{"name"}, Qfilter: mustValueOf([]any{"=", "name", "node2.example.com"})}},
		calls: []string{"Query"}, check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, "node", []string{"name"}, []any{"=", "name", "node2.example.com"})
			q := one[*rapiv2.QueryResponse](t, r)
			if len(q.GetData()) != 1 || q.GetData()[0].GetCells()[0].GetValue().GetStringValue() != "node2.example.com" {
				t.Errorf("query %v", q)
			}
		}},
	{method: svc + "QueryService/QueryFields", req: &rapiv2.QueryFieldsRequest{Resource: "instance", Fields: []string{"oper_state", "bogus"}},
		calls: []string{"QueryFields"}, check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, "instance", []string{"oper_state", "bogus"})
			fs := one[*rapiv2.QueryFieldsResponse](t, r).GetFields()
			if len(fs) != 2 || fs[0].GetKind() != rapiv2.QueryFieldKind_QUERY_FIELD_KIND_BOOL || fs[1].GetKind() != rapiv2.QueryFieldKind_QUERY_FIELD_KIND_UNKNOWN {
				t.Errorf("fields %v", fs)
			}
		}},
	// GET /2/os: Ganeti's handler submits OP_OS_DIAGNOSE and waits for
	// it; the backend answers OSNames.
	{method: svc + "OsService/ListOperatingSystems", calls: []string{"OSNames"},
		check: func(t *testing.T, _ []backendtest.Call, r []proto.Message) {
			if got := one[*rapiv2.OperatingSystems](t, r).GetNames(); !slices.Equal(got, []string{"noop"}) {
				t.Errorf("names %q", got)
			}
		}},
	// Tags.
	tagCase("ListClusterTags", &rapiv2.ListClusterTagsRequest{}, backend.TagCluster, ""),
	tagCase("ListNodeTags", &rapiv2.ListNodeTagsRequest{NodeName: "node2.example.com"}, backend.TagNode, "node2.example.com", "rack:b"),
	tagCase("ListGroupTags", &rapiv2.ListGroupTagsRequest{GroupName: "default"}, backend.TagNodeGroup, "default"),
	tagCase("ListInstanceTags", &rapiv2.ListInstanceTagsRequest{InstanceName: "web1.example.com"}, backend.TagInstance, "web1.example.com", "web"),
	tagCase("ListNetworkTags", &rapiv2.ListNetworkTagsRequest{NetworkName: "net1"}, backend.TagNetwork, "net1"),
}

func listCase(method string, req proto.Message, res string, refs func(proto.Message) []string, want ...string) rpcCase {
	return rpcCase{method: svc + method, req: req, calls: []string{"Names"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, res)
			if got := refs(one[proto.Message](t, r)); !slices.Equal(got, want) {
				t.Errorf("refs %q, want %q", got, want)
			}
		}}
}

func bulkCase(method string, req proto.Message, res string, objs func(proto.Message) []string, want ...string) rpcCase {
	return rpcCase{method: svc + method, name: "bulk", req: req, calls: []string{"Query"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, res)
			if c[0].Args[2] != nil {
				t.Errorf("bulk list with filter %v", c[0].Args[2])
			}
			if got := objs(one[proto.Message](t, r)); !slices.Equal(got, want) {
				t.Errorf("objects %q, want %q", got, want)
			}
		}}
}

func tagCase(method string, req proto.Message, kind, name string, want ...string) rpcCase {
	return rpcCase{method: svc + "TagService/" + method, req: req, calls: []string{"Tags"},
		check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
			args(t, c, 0, kind, name)
			if got := one[*rapiv2.TagList](t, r).GetTags(); !slices.Equal(got, want) && len(got)+len(want) > 0 {
				t.Errorf("tags %q, want %q", got, want)
			}
		}}
}

func mustValueOf(v any) *structpb.Value {
	pv, err := structpb.NewValue(v)
	if err != nil {
		panic(err)
	}
	return pv
}

func mustList(v []any) *structpb.ListValue {
	l, err := structpb.NewList(v)
	if err != nil {
		panic(err)
	}
	return l
}

// writeReqs are the requests of the RPCs that submit a job and need more
// than an empty request; the others get one with their path parameters.
var writeReqs = map[string]proto.Message{
	svc + "GroupService/CreateGroup": &rapiv2.CreateGroupRequest{Op: &rapiv2.OpGroupAdd{GroupName: proto.String("g2")}},
	svc + "GroupService/RenameGroup": &rapiv2.RenameGroupRequest{GroupName: "default", Op: &rapiv2.OpGroupRename{NewName: proto.String("g2")}},
	svc + "InstanceService/CreateInstance": &rapiv2.CreateInstanceRequest{Body: &rapiv2.CreateInstanceBody{Version: 1,
		Op: &rapiv2.OpInstanceCreate{InstanceName: proto.String("i1.example.com"), Mode: rapiv2.InstanceCreateMode_INSTANCE_CREATE_MODE_CREATE.Enum(),
			DiskTemplate: rapiv2.DiskTemplate_DISK_TEMPLATE_DISKLESS.Enum(), OsType: proto.String("noop"), Disks: []*structpb.Struct{},
			Nics: []*rapiv2.NicParams{}}}},
	svc + "InstanceService/MultiAllocateInstances": &rapiv2.MultiAllocateInstancesRequest{Op: &rapiv2.OpInstanceMultiAlloc{
		Instances: []*structpb.Value{mustValueOf(map[string]any{"instance_name": "i1.example.com", "mode": "create",
			"disk_template": "diskless", "os_type": "noop", "disks": []any{}, "nics": []any{}})}}},
	svc + "InstanceService/GrowInstanceDisk": &rapiv2.GrowInstanceDiskRequest{InstanceName: "x", Op: &rapiv2.OpInstanceGrowDisk{Amount: proto.Int64(1024)}},
	svc + "InstanceService/ExportInstance": &rapiv2.ExportInstanceRequest{InstanceName: "x", Op: &rapiv2.OpBackupExport{
		TargetNode: structpb.NewStringValue("node2.example.com"), Mode: rapiv2.ExportMode_EXPORT_MODE_LOCAL.Enum()}},
	svc + "InstanceService/ModifyInstance":        &rapiv2.ModifyInstanceRequest{InstanceName: "x", Op: &rapiv2.OpInstanceSetParams{}},
	svc + "InstanceService/PrepareInstanceExport": &rapiv2.PrepareInstanceExportRequest{InstanceName: "x", Mode: rapiv2.ExportMode_EXPORT_MODE_REMOTE.Enum()},
	svc + "InstanceService/RenameInstance":        &rapiv2.RenameInstanceRequest{InstanceName: "x", Op: &rapiv2.OpInstanceRename{NewName: proto.String("y")}},
	svc + "InstanceService/ReplaceInstanceDisks": &rapiv2.ReplaceInstanceDisksRequest{InstanceName: "x",
		Mode: rapiv2.ReplaceDisksMode_REPLACE_DISKS_MODE_REPLACE_AUTO.Enum()},
	svc + "NetworkService/CreateNetwork": &rapiv2.CreateNetworkRequest{Op: &rapiv2.OpNetworkAdd{NetworkName: proto.String("net2"), Network: proto.String("198.51.100.0/24")}},
	svc + "NetworkService/ConnectNetwork": &rapiv2.ConnectNetworkRequest{NetworkName: "net1", Op: &rapiv2.OpNetworkConnect{GroupName: proto.String("default"),
		NetworkMode: rapiv2.NetworkMode_NETWORK_MODE_BRIDGED.Enum(), NetworkLink: proto.String("br0")}},
	svc + "NetworkService/DisconnectNetwork": &rapiv2.DisconnectNetworkRequest{NetworkName: "net1", Op: &rapiv2.OpNetworkDisconnect{GroupName: proto.String("default")}},
	svc + "NodeService/EvacuateNode":         &rapiv2.EvacuateNodeRequest{NodeName: "x", Op: &rapiv2.OpNodeEvacuate{Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_ALL.Enum()}},
	svc + "NodeService/SetNodeRole":          &rapiv2.SetNodeRoleRequest{NodeName: "x", Role: "drained"},
	svc + "NodeService/GetNodeStorage": &rapiv2.GetNodeStorageRequest{NodeName: "x", StorageType: rapiv2.StorageType_STORAGE_TYPE_LVM_VG.Enum(),
		OutputFields: []string{"name"}},
	svc + "NodeService/ModifyNodeStorage": &rapiv2.ModifyNodeStorageRequest{NodeName: "x", StorageType: rapiv2.StorageType_STORAGE_TYPE_LVM_PV.Enum(),
		Name: "/dev/sda", Allocatable: proto.Bool(false)},
	svc + "NodeService/RepairNodeStorage": &rapiv2.RepairNodeStorageRequest{NodeName: "x", StorageType: rapiv2.StorageType_STORAGE_TYPE_LVM_VG.Enum(), Name: "xenvg"},
}

// rpcMethods are every method of every RAPI service, from the registry.
func rpcMethods(t *testing.T) []protoreflect.MethodDescriptor {
	var out []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("ganeti.rapi.v2", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			for k := 0; k < s.Methods().Len(); k++ {
				out = append(out, s.Methods().Get(k))
			}
		}
		return true
	})
	if len(out) == 0 {
		t.Fatal("no RAPI service in the registry")
	}
	return out
}

func fullMethod(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

func legacyJob(md protoreflect.MethodDescriptor) *rapiv2.LegacyJob {
	job, _ := proto.GetExtension(md.Options(), rapiv2.E_LegacyJob).(*rapiv2.LegacyJob)
	return job
}

// allCases are the read cases and a case per RPC that submits a job (one
// with a legacy_job option), derived from that option: it calls Submit
// with the option's opcodes, each with the handler's reason trail entry,
// and answers the job id.
func allCases(t *testing.T) []rpcCase {
	cases := slices.Clone(readCases)
	for _, md := range rpcMethods(t) {
		job := legacyJob(md)
		if job == nil || slices.ContainsFunc(readCases, func(c rpcCase) bool { return c.method == fullMethod(md) }) {
			continue
		}
		var want []string
		for _, op := range job.GetOps() {
			want = append(want, op.GetOpcode())
		}
		req := writeReqs[fullMethod(md)]
		if req == nil {
			req = pathRequest(md.Input())
		}
		handler := job.GetHandler()
		cases = append(cases, rpcCase{method: fullMethod(md), req: req, calls: []string{"Submit"},
			check: func(t *testing.T, c []backendtest.Call, r []proto.Message) {
				ops := c[0].Args[0].([]*rapiv2.OpCode)
				var got []string
				for _, op := range ops {
					got = append(got, backend.OpID(op))
				}
				if !slices.Equal(got, want) {
					t.Errorf("submitted %q, want %q", got, want)
				}
				if opt := c[0].Args[1].(backend.SubmitOptions); opt.Priority != nil || opt.Idempotency != nil {
					t.Errorf("submit options %+v", opt)
				}
				if !slices.ContainsFunc(ops, func(op *rapiv2.OpCode) bool { return hasReason(op, "gnt:library:rlib2:"+handler) }) &&
					md.Name() != "ReinstallInstance" { // rlib2 builds the reinstall's opcodes itself
					t.Errorf("no opcode has the reason gnt:library:rlib2:%s", handler)
				}
				if id := one[*rapiv2.JobSubmission](t, r).GetJobId(); id != 1 {
					t.Errorf("job id %d, want 1", id)
				}
			}})
	}
	return cases
}

// pathRequest is an empty request but for its string fields that name an
// object (a path parameter), set to "x".
func pathRequest(md protoreflect.MessageDescriptor) proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		panic(err)
	}
	m := mt.New()
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if fd.Kind() == protoreflect.StringKind && !fd.IsList() && strings.HasSuffix(string(fd.Name()), "_name") {
			m.Set(fd, protoreflect.ValueOfString("x"))
		}
	}
	return m.Interface()
}

// hasReason reports whether op's reason trail has an entry from source.
func hasReason(op *rapiv2.OpCode, source string) bool {
	m := backend.OpMember(op).ProtoReflect()
	fd := m.Descriptor().Fields().ByName("reason")
	if fd == nil {
		return false
	}
	trail := m.Get(fd).List()
	for i := 0; i < trail.Len(); i++ {
		if e, ok := trail.Get(i).Message().Interface().(*rapiv2.ReasonEntry); ok && e.GetSource() == source {
			return true
		}
	}
	return false
}

// originUnary and originStream put the called method in the context as
// the call's origin, so that a test sees which context reached the
// backend.
func originUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(backend.WithOrigin(ctx, backend.Origin{RPC: info.FullMethod}), req)
}

type originStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s originStream) Context() context.Context { return s.ctx }

func originStreamer(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, originStream{ss, backend.WithOrigin(ss.Context(), backend.Origin{RPC: info.FullMethod})})
}

// fakeConn serves the services over f with the production error mapping.
func fakeConn(t *testing.T, f *backendtest.Fake) *grpc.ClientConn {
	t.Helper()
	svcs, err := service.New(service.Config{Backend: f, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(gateway.ErrorUnaryInterceptor(quiet), testUserInterceptor(t), originUnary),
		grpc.ChainStreamInterceptor(gateway.ErrorStreamInterceptor(quiet), originStreamer))
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
	return conn
}

// invoke calls an RPC, unary or server-streaming, and returns its answers.
func invoke(t *testing.T, conn *grpc.ClientConn, md protoreflect.MethodDescriptor, req proto.Message) ([]proto.Message, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(asUser(context.Background(), "admin"), 10*time.Second)
	defer cancel()
	if req == nil {
		req = pathRequest(md.Input())
	}
	if req.ProtoReflect().Descriptor() != md.Input() {
		t.Fatalf("request %s, want %s", req.ProtoReflect().Descriptor().FullName(), md.Input().FullName())
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		t.Fatal(err)
	}
	if !md.IsStreamingServer() {
		resp := mt.New().Interface()
		if err := conn.Invoke(ctx, fullMethod(md), req, resp); err != nil {
			return nil, err
		}
		return []proto.Message{resp}, nil
	}
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, fullMethod(md))
	if err != nil {
		return nil, err
	}
	if err := st.SendMsg(req); err != nil {
		return nil, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	var out []proto.Message
	for {
		resp := mt.New().Interface()
		if err := st.RecvMsg(resp); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return out, err
		}
		out = append(out, resp)
	}
}

// backendCalls are the calls but Supports (which takes no context).
func backendCalls(f *backendtest.Fake) []backendtest.Call {
	return slices.DeleteFunc(f.Calls(), func(c backendtest.Call) bool { return c.Method == "Supports" })
}

func methodNames(calls []backendtest.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Method)
	}
	return out
}

func methodsByName(t *testing.T) map[string]protoreflect.MethodDescriptor {
	out := map[string]protoreflect.MethodDescriptor{}
	for _, md := range rpcMethods(t) {
		out[fullMethod(md)] = md
	}
	return out
}

// TestEveryRPCHasACase fails for an RPC of the proto without a case here,
// and for a case of an RPC that is gone.
func TestEveryRPCHasACase(t *testing.T) {
	cases := allCases(t)
	methods := methodsByName(t)
	for name := range methods {
		if !slices.ContainsFunc(cases, func(c rpcCase) bool { return c.method == name }) {
			t.Errorf("RPC %s has no case in readCases (fake_test.go)", name)
		}
	}
	for _, c := range cases {
		if methods[c.method] == nil {
			t.Errorf("case of an unknown RPC %s", c.method)
		}
	}
}

// TestRPCMapping runs every case: the backend calls, their arguments
// and context, and the answer.
func TestRPCMapping(t *testing.T) {
	methods := methodsByName(t)
	for _, c := range allCases(t) {
		md := methods[c.method]
		if md == nil {
			continue // TestEveryRPCHasACase
		}
		t.Run(strings.TrimPrefix(c.method, svc)+"/"+c.name, func(t *testing.T) {
			f := backendtest.NewFake()
			if c.setup != nil {
				c.setup(f)
			}
			before := len(f.Calls())
			conn := fakeConn(t, f)
			resp, err := invoke(t, conn, md, c.req)
			if err != nil {
				t.Fatalf("%v", err)
			}
			calls := backendCalls(f)[before:]
			names := methodNames(calls)
			for _, call := range calls {
				if got := backend.OriginFrom(call.Ctx).RPC; got != c.method {
					t.Errorf("%s got a context of %q, not the request's", call.Method, got)
				}
			}
			if !slices.Equal(names, c.calls) {
				t.Fatalf("backend calls %q, want %q", names, c.calls)
			}
			if c.check != nil {
				c.check(t, calls, resp)
			}
		})
	}
}

// backendErrors are errors of every class a backend returns, and what the
// client gets.
var backendErrors = []struct {
	err  error
	code codes.Code
	msg  string
}{
	{errs.NotFound("Node", "x"), codes.NotFound, "Node 'x' not known"},
	{errs.BadRequest("bad input"), codes.InvalidArgument, "bad input"},
	{errs.QueryFilter("bad filter"), codes.InvalidArgument, "bad filter"},
	{errs.Prereq(errs.CodeState, "wrong state"), codes.FailedPrecondition, "wrong state"},
	{errs.Prereq(errs.CodeExists, "exists"), codes.AlreadyExists, "exists"},
	{errs.Prereq(errs.CodeNoRes, "full"), codes.ResourceExhausted, "full"},
	{errs.TooLarge("too large"), codes.ResourceExhausted, "too large"},
	{errs.Conflict("another request"), codes.AlreadyExists, "another request"},
	{errs.Exec("failed"), codes.Aborted, "failed"},
	{errs.Unavailable("unavailable"), codes.Unavailable, "unavailable"},
	{errs.NotImplemented("later"), codes.Unimplemented, "later"},
	{fmt.Errorf("open /var/lib/ganeti/config.data: %w", errors.ErrUnsupported), codes.Internal, "internal error"},
	{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline exceeded"},
}

// TestRPCErrors: a backend error of every class reaches the client of
// every RPC that calls the backend with its code and message (and an
// internal error with neither its text nor its detail).
func TestRPCErrors(t *testing.T) {
	methods := methodsByName(t)
	for _, c := range allCases(t) {
		md := methods[c.method]
		if md == nil || len(c.calls) == 0 {
			continue
		}
		t.Run(strings.TrimPrefix(c.method, svc)+"/"+c.name, func(t *testing.T) {
			f := backendtest.NewFake()
			if c.setup != nil {
				c.setup(f)
			}
			conn := fakeConn(t, f)
			for _, e := range backendErrors {
				for _, m := range c.calls {
					f.SetErr(m, e.err)
				}
				_, err := invoke(t, conn, md, c.req)
				if st := status.Convert(err); st.Code() != e.code || st.Message() != e.msg {
					t.Errorf("backend error %v: %v %q, want %v %q", e.err, st.Code(), st.Message(), e.code, e.msg)
				}
			}
		})
	}
}

// TestUnsupportedOpcode: an RPC whose opcode the backend does not run is
// refused with UNIMPLEMENTED and submits nothing.
func TestUnsupportedOpcode(t *testing.T) {
	for _, md := range rpcMethods(t) {
		job := legacyJob(md)
		if job == nil || slices.ContainsFunc(readCases, func(c rpcCase) bool { return c.method == fullMethod(md) }) {
			continue // no job, or answered without one (ListOperatingSystems)
		}
		t.Run(string(md.Name()), func(t *testing.T) {
			f := backendtest.NewFake()
			f.SetUnsupported(job.GetOps()[0].GetOpcode())
			req := writeReqs[fullMethod(md)]
			_, err := invoke(t, fakeConn(t, f), md, req)
			if st := status.Convert(err); st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), job.GetOps()[0].GetOpcode()) {
				t.Errorf("%v, want UNIMPLEMENTED naming %s", err, job.GetOps()[0].GetOpcode())
			}
			if calls := backendCalls(f); len(calls) != 0 {
				t.Errorf("backend calls %v, want none", methodNames(calls))
			}
		})
	}
}
