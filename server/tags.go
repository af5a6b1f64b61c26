package server

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/server/cluster"
)

type tagService struct {
	rapiv2.UnimplementedTagServiceServer
	s *Services
}

func (t *tagService) tags(kind, name string) (*rapiv2.TagList, error) {
	tags, err := t.s.state().Tags(kind, name)
	if err != nil {
		return nil, err
	}
	return &rapiv2.TagList{Tags: tags}, nil
}

func (t *tagService) ListClusterTags(context.Context, *rapiv2.ListClusterTagsRequest) (*rapiv2.TagList, error) {
	return t.tags(cluster.TagCluster, "")
}

func (t *tagService) ListNodeTags(_ context.Context, req *rapiv2.ListNodeTagsRequest) (*rapiv2.TagList, error) {
	return t.tags(cluster.TagNode, req.GetNodeName())
}

func (t *tagService) ListGroupTags(_ context.Context, req *rapiv2.ListGroupTagsRequest) (*rapiv2.TagList, error) {
	return t.tags(cluster.TagNodeGroup, req.GetGroupName())
}

func (t *tagService) ListInstanceTags(_ context.Context, req *rapiv2.ListInstanceTagsRequest) (*rapiv2.TagList, error) {
	return t.tags(cluster.TagInstance, req.GetInstanceName())
}

func (t *tagService) ListNetworkTags(_ context.Context, req *rapiv2.ListNetworkTagsRequest) (*rapiv2.TagList, error) {
	return t.tags(cluster.TagNetwork, req.GetNetworkName())
}
