package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
)

type groupService struct {
	rapiv2.UnimplementedGroupServiceServer
	s *Services
}

func newGroup() *rapiv2.Group { return &rapiv2.Group{} }

func (g *groupService) ListGroups(ctx context.Context, req *rapiv2.ListGroupsRequest) (*rapiv2.ListGroupsResponse, error) {
	if !req.GetBulk() {
		names, err := g.s.cfg.Backend.Names(ctx, backend.ResGroup)
		if err != nil {
			return nil, err
		}
		return &rapiv2.ListGroupsResponse{Refs: namedRefs(names, "/2/groups/")}, nil
	}
	groups, err := cachedList(ctx, g.s, backend.ResGroup, newGroup)
	if err != nil {
		return nil, err
	}
	return &rapiv2.ListGroupsResponse{Groups: groups}, nil
}

func (g *groupService) GetGroup(ctx context.Context, req *rapiv2.GetGroupRequest) (*rapiv2.Group, error) {
	if err := refuseSyncQuery(req.GetLock()); err != nil {
		return nil, err
	}
	group := newGroup()
	if err := getObject(ctx, g.s.cfg.Backend, backend.ResGroup, req.GetGroupName(), group); err != nil {
		return nil, err
	}
	return group, nil
}
