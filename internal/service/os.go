package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

type osService struct {
	rapiv2.UnimplementedOsServiceServer
	s *Services
}

func (o *osService) ListOperatingSystems(context.Context, *rapiv2.ListOperatingSystemsRequest) (*rapiv2.OperatingSystems, error) {
	return &rapiv2.OperatingSystems{Names: o.s.state().OSNames()}, nil
}
