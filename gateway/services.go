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
	legacy func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error
}

// apiServices is the one table of the RAPI's services: it drives both
// registrations (TestServiceTableIsTheProto checks it against the proto).
var apiServices = []apiService{
	{&rapiv2.VersionService_ServiceDesc, legacyVia(rapiv2.RegisterVersionServiceHandlerClient, rapiv2.NewVersionServiceClient)},
	{&rapiv2.ClusterService_ServiceDesc, legacyVia(rapiv2.RegisterClusterServiceHandlerClient, rapiv2.NewClusterServiceClient)},
	{&rapiv2.NodeService_ServiceDesc, legacyVia(rapiv2.RegisterNodeServiceHandlerClient, rapiv2.NewNodeServiceClient)},
	{&rapiv2.GroupService_ServiceDesc, legacyVia(rapiv2.RegisterGroupServiceHandlerClient, rapiv2.NewGroupServiceClient)},
	{&rapiv2.InstanceService_ServiceDesc, legacyVia(rapiv2.RegisterInstanceServiceHandlerClient, rapiv2.NewInstanceServiceClient)},
	{&rapiv2.NetworkService_ServiceDesc, legacyVia(rapiv2.RegisterNetworkServiceHandlerClient, rapiv2.NewNetworkServiceClient)},
	{&rapiv2.JobService_ServiceDesc, legacyVia(rapiv2.RegisterJobServiceHandlerClient, rapiv2.NewJobServiceClient)},
	{&rapiv2.FilterService_ServiceDesc, legacyVia(rapiv2.RegisterFilterServiceHandlerClient, rapiv2.NewFilterServiceClient)},
	{&rapiv2.OsService_ServiceDesc, legacyVia(rapiv2.RegisterOsServiceHandlerClient, rapiv2.NewOsServiceClient)},
	{&rapiv2.TagService_ServiceDesc, legacyVia(rapiv2.RegisterTagServiceHandlerClient, rapiv2.NewTagServiceClient)},
	{&rapiv2.QueryService_ServiceDesc, legacyVia(rapiv2.RegisterQueryServiceHandlerClient, rapiv2.NewQueryServiceClient)},
}

// legacyVia is a service's grpc-gateway registration over any client
// connection (the in-process Direct one among them).
func legacyVia[C any](register func(context.Context, *runtime.ServeMux, C) error, newClient func(grpc.ClientConnInterface) C) func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error {
	return func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
		return register(ctx, mux, newClient(conn))
	}
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

// registerLegacy registers the legacy surface of every RAPI service, each
// on a mux of its own (from newMux), and returns the muxes by service name.
func registerLegacy(ctx context.Context, newMux func() *runtime.ServeMux, conn grpc.ClientConnInterface) (map[string]*runtime.ServeMux, error) {
	muxes := map[string]*runtime.ServeMux{}
	for _, svc := range apiServices {
		mux := newMux()
		if err := svc.legacy(ctx, mux, conn); err != nil {
			return nil, err
		}
		muxes[svc.desc.ServiceName] = mux
	}
	return muxes, nil
}
