package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
)

type networkService struct {
	rapiv2.UnimplementedNetworkServiceServer
	s *Services
}

func newNetwork() *rapiv2.Network { return &rapiv2.Network{} }

func (n *networkService) ListNetworks(ctx context.Context, req *rapiv2.ListNetworksRequest) (*rapiv2.ListNetworksResponse, error) {
	if !req.GetBulk() {
		names, err := n.s.cfg.Backend.Names(ctx, backend.ResNetwork)
		if err != nil {
			return nil, err
		}
		return &rapiv2.ListNetworksResponse{Refs: namedRefs(names, "/2/networks/")}, nil
	}
	nets, err := cachedList(ctx, n.s, backend.ResNetwork, newNetwork)
	if err != nil {
		return nil, err
	}
	return &rapiv2.ListNetworksResponse{Networks: nets}, nil
}

func (n *networkService) GetNetwork(ctx context.Context, req *rapiv2.GetNetworkRequest) (*rapiv2.Network, error) {
	if err := refuseSyncQuery(req.GetLock()); err != nil {
		return nil, err
	}
	net := newNetwork()
	if err := getObject(ctx, n.s.cfg.Backend, backend.ResNetwork, req.GetNetworkName(), net); err != nil {
		return nil, err
	}
	return net, nil
}
