package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
)

type instanceService struct {
	rapiv2.UnimplementedInstanceServiceServer
	s *Services
}

func newInstance() *rapiv2.Instance { return &rapiv2.Instance{} }

func (i *instanceService) ListInstances(_ context.Context, req *rapiv2.ListInstancesRequest) (*rapiv2.ListInstancesResponse, error) {
	if err := refuseSyncQuery(req.GetLock()); err != nil {
		return nil, err
	}
	st := i.s.state()
	if !req.GetBulk() {
		return &rapiv2.ListInstancesResponse{Refs: itemRefs(st.Names(cluster.ResInstance), "/2/instances/")}, nil
	}
	insts, err := listObjects(st, cluster.ResInstance, newInstance)
	if err != nil {
		return nil, err
	}
	return &rapiv2.ListInstancesResponse{Instances: insts}, nil
}

func (i *instanceService) GetInstance(_ context.Context, req *rapiv2.GetInstanceRequest) (*rapiv2.Instance, error) {
	if err := refuseSyncQuery(req.GetLock()); err != nil {
		return nil, err
	}
	inst := newInstance()
	if err := getObject(i.s.state(), cluster.ResInstance, req.GetInstanceName(), inst); err != nil {
		return nil, err
	}
	return inst, nil
}

func (i *instanceService) GetInstanceConsole(_ context.Context, req *rapiv2.GetInstanceConsoleRequest) (*rapiv2.InstanceConsole, error) {
	info, err := i.s.state().Console(req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	console := &rapiv2.InstanceConsole{}
	if err := fill(console, info); err != nil {
		return nil, err
	}
	return console, nil
}
