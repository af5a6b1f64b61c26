package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

type osService struct {
	rapiv2.UnimplementedOsServiceServer
	s *Services
}

func (o *osService) ListOperatingSystems(ctx context.Context, _ *rapiv2.ListOperatingSystemsRequest) (*rapiv2.OperatingSystems, error) {
	names, err := o.s.cfg.Backend.OSNames(ctx)
	if err != nil {
		return nil, err
	}
	return &rapiv2.OperatingSystems{Names: names}, nil
}
