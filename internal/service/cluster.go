package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

type clusterService struct {
	rapiv2.UnimplementedClusterServiceServer
	s *Services
}

func (c *clusterService) GetInfo(context.Context, *rapiv2.GetInfoRequest) (*rapiv2.ClusterInfo, error) {
	info := &rapiv2.ClusterInfo{}
	if err := fill(info, c.s.state().InfoShared()); err != nil { // fill copies what it keeps
		return nil, err
	}
	return info, nil
}
