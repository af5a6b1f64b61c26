package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
)

type nodeService struct {
	rapiv2.UnimplementedNodeServiceServer
	s *Services
}

func newNode() *rapiv2.Node { return &rapiv2.Node{} }

func (n *nodeService) ListNodes(ctx context.Context, req *rapiv2.ListNodesRequest) (*rapiv2.ListNodesResponse, error) {
	if !req.GetBulk() {
		names, err := n.s.cfg.Backend.Names(ctx, backend.ResNode)
		if err != nil {
			return nil, err
		}
		return &rapiv2.ListNodesResponse{Refs: itemRefs(names, "/2/nodes/")}, nil
	}
	nodes, err := cachedList(ctx, n.s, backend.ResNode, newNode)
	if err != nil {
		return nil, err
	}
	return &rapiv2.ListNodesResponse{Nodes: nodes}, nil
}

func (n *nodeService) GetNode(ctx context.Context, req *rapiv2.GetNodeRequest) (*rapiv2.Node, error) {
	if err := refuseSyncQuery(req.GetLock()); err != nil {
		return nil, err
	}
	node := newNode()
	if err := getObject(ctx, n.s.cfg.Backend, backend.ResNode, req.GetNodeName(), node); err != nil {
		return nil, err
	}
	sip := node.GetSip()
	node.SecondaryIp = &sip // Ganeti adds this alias to the single-node answer only
	return node, nil
}

func (n *nodeService) GetNodeRole(ctx context.Context, req *rapiv2.GetNodeRoleRequest) (*rapiv2.NodeRole, error) {
	if err := refuseSyncQuery(req.GetLock()); err != nil {
		return nil, err
	}
	role, err := n.s.cfg.Backend.NodeRole(ctx, req.GetNodeName())
	if err != nil {
		return nil, err
	}
	return &rapiv2.NodeRole{Role: role}, nil
}

func itemRefs(names []string, prefix string) []*rapiv2.ItemRef {
	refs := make([]*rapiv2.ItemRef, len(names))
	for i, name := range names {
		refs[i] = &rapiv2.ItemRef{Id: name, Uri: prefix + name}
	}
	return refs
}

func namedRefs(names []string, prefix string) []*rapiv2.NamedRef {
	refs := make([]*rapiv2.NamedRef, len(names))
	for i, name := range names {
		refs[i] = &rapiv2.NamedRef{Name: name, Uri: prefix + name}
	}
	return refs
}
