package service_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newConn serves the services, with the production interceptors, on an
// in-memory listener over the golden cluster file and an in-memory store.
func newConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "testdata", "golden-cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := cluster.ParseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	model, err := cluster.Open(memstore.New(), seed, func() time.Time { return time.Unix(1795376092, 0) })
	if err != nil {
		t.Fatal(err)
	}
	eng, err := jobs.New(jobs.Config{Model: model, Logger: quiet, EncodeOp: service.LegacyOpValue, Executors: lu.DefaultExecutors()})
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := service.New(service.Config{Backend: sim.New(model, eng), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(gateway.ErrorUnaryInterceptor(quiet)))
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

// TestReadErrors is a table of reads that fail, with the gRPC code and the
// Ganeti classification each carries in its ErrorInfo.
func TestReadErrors(t *testing.T) {
	conn := newConn(t)
	ctx := context.Background()
	nodes := rapiv2.NewNodeServiceClient(conn)
	insts := rapiv2.NewInstanceServiceClient(conn)
	query := rapiv2.NewQueryServiceClient(conn)
	tags := rapiv2.NewTagServiceClient(conn)
	cases := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"unknown node", func() error { _, err := nodes.GetNode(ctx, &rapiv2.GetNodeRequest{NodeName: "x"}); return err }, codes.NotFound, "UNKNOWN_ENTITY"},
		{"role of unknown node", func() error {
			_, err := nodes.GetNodeRole(ctx, &rapiv2.GetNodeRoleRequest{NodeName: "x"})
			return err
		}, codes.NotFound, "UNKNOWN_ENTITY"},
		{"unknown instance", func() error {
			_, err := insts.GetInstance(ctx, &rapiv2.GetInstanceRequest{InstanceName: "x"})
			return err
		}, codes.NotFound, "UNKNOWN_ENTITY"},
		{"tags of unknown instance", func() error {
			_, err := tags.ListInstanceTags(ctx, &rapiv2.ListInstanceTagsRequest{InstanceName: "x"})
			return err
		}, codes.NotFound, "UNKNOWN_ENTITY"},
		{"query without fields", func() error { _, err := query.Query(ctx, &rapiv2.QueryRequest{Resource: "node"}); return err }, codes.InvalidArgument, "WRONG_INPUT"},
		{"query of unknown resource", func() error {
			_, err := query.Query(ctx, &rapiv2.QueryRequest{Resource: "bogus", Fields: []string{"name"}})
			return err
		}, codes.InvalidArgument, "WRONG_INPUT"},
		{"malformed filter", func() error {
			_, err := query.QueryWithFilter(ctx, &rapiv2.QueryWithFilterRequest{Resource: "node", Body: &rapiv2.QueryBody{Fields: []string{"name"}, Qfilter: mustValue(t, []any{"~~", "name"})}})
			return err
		}, codes.InvalidArgument, "WRONG_INPUT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			st := status.Convert(err)
			if st.Code() != c.code {
				t.Fatalf("code %v (%v), want %v", st.Code(), err, c.code)
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
			}
			if info == nil || info.GetReason() != c.reason || info.GetDomain() != errs.Domain || info.GetMetadata()[errs.MetaErrorClass] == "" {
				t.Errorf("ErrorInfo %v, want reason %s", info, c.reason)
			}
		})
	}
}

// TestToStatus covers the mapping table, including errors that must not
// leak their text.
func TestToStatus(t *testing.T) {
	cases := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{errs.NotFound("Instance", "x"), codes.NotFound, "Instance 'x' not known"},
		{errs.Prereq(errs.CodeExists, "dup"), codes.AlreadyExists, "dup"},
		{errs.Prereq(errs.CodeState, "down"), codes.FailedPrecondition, "down"},
		{errs.Prereq(errs.CodeNoRes, "full"), codes.ResourceExhausted, "full"},
		{errs.BadRequest("bad"), codes.InvalidArgument, "bad"},
		{errs.Unavailable("Instance console unavailable"), codes.Unavailable, "Instance console unavailable"},
		{errs.NotImplemented("later"), codes.Unimplemented, "later"},
		{errors.New("open /var/lib/x: permission denied"), codes.Internal, "internal error"},
		{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline exceeded"},
		{status.Error(codes.PermissionDenied, "Forbidden"), codes.PermissionDenied, "Forbidden"},
	}
	for _, c := range cases {
		st := status.Convert(gateway.ToStatus(quiet, c.err))
		if st.Code() != c.code || st.Message() != c.msg {
			t.Errorf("%v: %v %q, want %v %q", c.err, st.Code(), st.Message(), c.code, c.msg)
		}
	}
	if gateway.ToStatus(quiet, nil) != nil {
		t.Error("nil error mapped to a status")
	}
}

// TestReads checks a few typed reads against the golden cluster file.
func TestReads(t *testing.T) {
	conn := newConn(t)
	ctx := context.Background()
	node, err := rapiv2.NewNodeServiceClient(conn).GetNode(ctx, &rapiv2.GetNodeRequest{NodeName: "node1.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if node.GetSecondaryIp() != "198.51.100.10" || node.GetRole() != "M" || node.GetMfree() != 23588 || !node.GetMasterCandidate() {
		t.Errorf("node %v", node)
	}
	groups, err := rapiv2.NewGroupServiceClient(conn).ListGroups(ctx, &rapiv2.ListGroupsRequest{Bulk: true})
	if err != nil || len(groups.GetGroups()) != 1 || groups.GetGroups()[0].GetNodeList()[0] != "node1.example.com" {
		t.Errorf("groups %v %v", groups, err)
	}
	oses, err := rapiv2.NewOsServiceClient(conn).ListOperatingSystems(ctx, &rapiv2.ListOperatingSystemsRequest{})
	if err != nil || len(oses.GetNames()) != 1 || oses.GetNames()[0] != "noop" {
		t.Errorf("os %v %v", oses, err)
	}
	fields, err := rapiv2.NewQueryServiceClient(conn).QueryFields(ctx, &rapiv2.QueryFieldsRequest{Resource: "node", Fields: []string{"name", "mtotal"}})
	if err != nil || len(fields.GetFields()) != 2 || fields.GetFields()[1].GetKind() != rapiv2.QueryFieldKind_QUERY_FIELD_KIND_UNIT || fields.GetFields()[1].GetDoc() == "" {
		t.Errorf("fields %v %v", fields, err)
	}
	job, err := rapiv2.NewJobServiceClient(conn).GetJob(ctx, &rapiv2.GetJobRequest{JobId: 7})
	if err != nil || job.GetId() != 7 || job.Status != nil {
		t.Errorf("unknown job %v %v", job, err)
	}
}

func mustValue(t *testing.T, v any) *structpb.Value {
	t.Helper()
	pv, err := structpb.NewValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return pv
}
