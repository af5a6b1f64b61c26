package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
)

type groupService struct {
	rapiv2.UnimplementedGroupServiceServer
	s *Services
}

func newGroup() *rapiv2.Group { return &rapiv2.Group{} }

func (g *groupService) ListGroups(_ context.Context, req *rapiv2.ListGroupsRequest) (*rapiv2.ListGroupsResponse, error) {
	st := g.s.state()
	if !req.GetBulk() {
		return &rapiv2.ListGroupsResponse{Refs: namedRefs(st.Names(cluster.ResGroup), "/2/groups/")}, nil
	}
	groups, err := listObjects(st, cluster.ResGroup, newGroup)
	if err != nil {
		return nil, err
	}
	return &rapiv2.ListGroupsResponse{Groups: groups}, nil
}

func (g *groupService) GetGroup(_ context.Context, req *rapiv2.GetGroupRequest) (*rapiv2.Group, error) {
	if err := refuseSyncQuery(req.GetLock()); err != nil {
		return nil, err
	}
	group := newGroup()
	if err := getObject(g.s.state(), cluster.ResGroup, req.GetGroupName(), group); err != nil {
		return nil, err
	}
	return group, nil
}
