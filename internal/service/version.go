package service

import (
	"context"

	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// RAPIVersion is the remote API version this server speaks.
const RAPIVersion = 2

// Features are the RAPI feature strings of Ganeti 3.0.2.
var Features = []string{"instance-create-reqv1", "instance-reinstall-reqv1", "node-evac-res1", "node-migrate-reqv1"}

type versionService struct {
	rapiv2.UnimplementedVersionServiceServer
}

func (*versionService) GetRoot(context.Context, *rapiv2.GetRootRequest) (*structpb.Value, error) {
	return structpb.NewNullValue(), nil
}

func (*versionService) GetRootV2(context.Context, *rapiv2.GetRootRequest) (*structpb.Value, error) {
	return structpb.NewNullValue(), nil
}

func (*versionService) GetVersion(context.Context, *rapiv2.GetVersionRequest) (*rapiv2.Version, error) {
	return &rapiv2.Version{Version: RAPIVersion}, nil
}

func (*versionService) GetFeatures(context.Context, *rapiv2.GetFeaturesRequest) (*rapiv2.Features, error) {
	return &rapiv2.Features{Features: append([]string(nil), Features...)}, nil
}
