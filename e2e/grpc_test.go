package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
)

// dialGRPC connects to a server started by inProcess over h2c; the calls
// carry the base URL's credentials (if any) as authorization metadata.
func dialGRPC(t testing.TB, base string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	if u.User != nil {
		password, _ := u.User.Password()
		opts = append(opts, grpc.WithPerRPCCredentials(basicCreds{auth.BasicAuthorization(u.User.Username(), password)}))
	}
	conn, err := grpc.NewClient(u.Host, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// basicCreds sends an authorization value on every call, also over h2c
// (test servers only).
type basicCreds struct{ value string }

func (c basicCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": c.value}, nil
}

func (basicCreds) RequireTransportSecurity() bool { return false }

// TestGRPCReads reads over typed gRPC on the same port as the legacy JSON
// and checks that both surfaces tell the same.
func TestGRPCReads(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	conn := dialGRPC(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	info, err := rapiv2.NewClusterServiceClient(conn).GetInfo(ctx, &rapiv2.GetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != "cluster.example.com" || info.GetMaster() != "node1.example.com" {
		t.Errorf("info: name %q master %q", info.GetName(), info.GetMaster())
	}
	_, _, legacy := do(t, "GET", base+"/2/info", "", "")
	var legacyInfo map[string]any
	if err := json.Unmarshal(legacy, &legacyInfo); err != nil {
		t.Fatal(err)
	}
	if legacyInfo["uuid"] != info.GetUuid() || legacyInfo["candidate_pool_size"] != float64(info.GetCandidatePoolSize()) {
		t.Errorf("legacy and gRPC disagree: %v/%v vs %v/%v", legacyInfo["uuid"], legacyInfo["candidate_pool_size"], info.GetUuid(), info.GetCandidatePoolSize())
	}

	nodes := rapiv2.NewNodeServiceClient(conn)
	list, err := nodes.ListNodes(ctx, &rapiv2.ListNodesRequest{Bulk: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetNodes()) != 1 || list.GetNodes()[0].GetMtotal() != 24105 || list.GetNodes()[0].GetRole() != "M" {
		t.Errorf("ListNodes: %v", list)
	}
	refs, err := nodes.ListNodes(ctx, &rapiv2.ListNodesRequest{})
	if err != nil || len(refs.GetRefs()) != 1 || refs.GetRefs()[0].GetUri() != "/2/nodes/node1.example.com" {
		t.Errorf("ListNodes refs: %v %v", refs, err)
	}
	role, err := nodes.GetNodeRole(ctx, &rapiv2.GetNodeRoleRequest{NodeName: "node1.example.com"})
	if err != nil || role.GetRole() != "master" {
		t.Errorf("GetNodeRole: %v %v", role, err)
	}

	q, err := rapiv2.NewQueryServiceClient(conn).Query(ctx, &rapiv2.QueryRequest{Resource: "node", Fields: []string{"name", "mtotal"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.GetData()) != 1 || q.GetData()[0].GetCells()[1].GetValue().GetNumberValue() != 24105 ||
		q.GetData()[0].GetCells()[0].GetStatus() != rapiv2.QueryResultStatus_QUERY_RESULT_STATUS_NORMAL ||
		q.GetFields()[1].GetKind() != rapiv2.QueryFieldKind_QUERY_FIELD_KIND_UNIT {
		t.Errorf("Query: %v", q)
	}

	_, err = rapiv2.NewInstanceServiceClient(conn).GetInstance(ctx, &rapiv2.GetInstanceRequest{InstanceName: "nosuch"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetInstance(unknown): %v, want NotFound", err)
	}

	v, err := rapiv2.NewVersionServiceClient(conn).GetVersion(ctx, &rapiv2.GetVersionRequest{})
	if err != nil || v.GetVersion() != 2 {
		t.Errorf("GetVersion: %v %v", v, err)
	}

	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v %v", h, err)
	}

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	joined := strings.Join(names, ",")
	for _, want := range []string{"ganeti.rapi.v2.InstanceService", "ganeti.rapi.v2.JobService", "grpc.health.v1.Health"} {
		if !strings.Contains(joined, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}
