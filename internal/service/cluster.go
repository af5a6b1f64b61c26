package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

type clusterService struct {
	rapiv2.UnimplementedClusterServiceServer
	s *Services
}

func (c *clusterService) GetInfo(ctx context.Context, _ *rapiv2.GetInfoRequest) (*rapiv2.ClusterInfo, error) {
	shared, err := c.s.cfg.Backend.ClusterInfo(ctx)
	if err != nil {
		return nil, err
	}
	info := &rapiv2.ClusterInfo{}
	if err := fill(info, shared); err != nil { // fill copies what it keeps
		return nil, err
	}
	return info, nil
}
