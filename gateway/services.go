package gateway

import (
	"context"
	"fmt"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// apiService is one service of the RAPI: its gRPC description, for the
// gRPC registration, and its grpc-gateway registration, for the legacy
// surface.
type apiService struct {
	desc   *grpc.ServiceDesc
	legacy func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
}

// apiServices is the one table of the RAPI's services: it drives both
// registrations (TestServiceTableIsTheProto checks it against the proto).
var apiServices = []apiService{
	{&rapiv2.VersionService_ServiceDesc, rapiv2.RegisterVersionServiceHandler},
	{&rapiv2.ClusterService_ServiceDesc, rapiv2.RegisterClusterServiceHandler},
	{&rapiv2.NodeService_ServiceDesc, rapiv2.RegisterNodeServiceHandler},
	{&rapiv2.GroupService_ServiceDesc, rapiv2.RegisterGroupServiceHandler},
	{&rapiv2.InstanceService_ServiceDesc, rapiv2.RegisterInstanceServiceHandler},
	{&rapiv2.NetworkService_ServiceDesc, rapiv2.RegisterNetworkServiceHandler},
	{&rapiv2.JobService_ServiceDesc, rapiv2.RegisterJobServiceHandler},
	{&rapiv2.FilterService_ServiceDesc, rapiv2.RegisterFilterServiceHandler},
	{&rapiv2.OsService_ServiceDesc, rapiv2.RegisterOsServiceHandler},
	{&rapiv2.TagService_ServiceDesc, rapiv2.RegisterTagServiceHandler},
	{&rapiv2.QueryService_ServiceDesc, rapiv2.RegisterQueryServiceHandler},
}

// Implementations gives the implementation of a RAPI service by its full
// name (e.g. "ganeti.rapi.v2.ClusterService"), nil when it has none.
type Implementations func(serviceName string) any

// RegisterServices registers the implementation of every RAPI service on
// s; a service without one is an error.
func RegisterServices(s grpc.ServiceRegistrar, impl Implementations) error {
	for _, svc := range apiServices {
		i := impl(svc.desc.ServiceName)
		if i == nil {
			return fmt.Errorf("gateway: no implementation of %s", svc.desc.ServiceName)
		}
		s.RegisterService(svc.desc, i)
	}
	return nil
}

// registerLegacy registers the legacy surface of every RAPI service on mux.
func registerLegacy(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
	for _, svc := range apiServices {
		if err := svc.legacy(ctx, mux, conn); err != nil {
			return err
		}
	}
	return nil
}
