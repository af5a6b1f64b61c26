package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
)

type instanceService struct {
	rapiv2.UnimplementedInstanceServiceServer
	s *Services
}

func newInstance() *rapiv2.Instance { return &rapiv2.Instance{} }

func (i *instanceService) ListInstances(ctx context.Context, req *rapiv2.ListInstancesRequest) (*rapiv2.ListInstancesResponse, error) {
	if err := refuseSyncQuery(req.GetLock()); err != nil {
		return nil, err
	}
	if !req.GetBulk() {
		names, err := i.s.cfg.Backend.Names(ctx, backend.ResInstance)
		if err != nil {
			return nil, err
		}
		return &rapiv2.ListInstancesResponse{Refs: itemRefs(names, "/2/instances/")}, nil
	}
	insts, err := cachedList(ctx, i.s, backend.ResInstance, newInstance)
	if err != nil {
		return nil, err
	}
	return &rapiv2.ListInstancesResponse{Instances: insts}, nil
}

func (i *instanceService) GetInstance(ctx context.Context, req *rapiv2.GetInstanceRequest) (*rapiv2.Instance, error) {
	if err := refuseSyncQuery(req.GetLock()); err != nil {
		return nil, err
	}
	inst := newInstance()
	if err := getObject(ctx, i.s.cfg.Backend, backend.ResInstance, req.GetInstanceName(), inst); err != nil {
		return nil, err
	}
	return inst, nil
}

func (i *instanceService) GetInstanceConsole(ctx context.Context, req *rapiv2.GetInstanceConsoleRequest) (*rapiv2.InstanceConsole, error) {
	info, err := i.s.cfg.Backend.InstanceConsole(ctx, req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	console := &rapiv2.InstanceConsole{}
	if err := fill(console, info); err != nil {
		return nil, err
	}
	return console, nil
}
