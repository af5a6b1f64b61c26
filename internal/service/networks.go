package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
)

type networkService struct {
	rapiv2.UnimplementedNetworkServiceServer
	s *Services
}

func newNetwork() *rapiv2.Network { return &rapiv2.Network{} }

func (n *networkService) ListNetworks(_ context.Context, req *rapiv2.ListNetworksRequest) (*rapiv2.ListNetworksResponse, error) {
	st := n.s.state()
	if !req.GetBulk() {
		return &rapiv2.ListNetworksResponse{Refs: namedRefs(st.Names(cluster.ResNetwork), "/2/networks/")}, nil
	}
	nets, err := listObjects(st, cluster.ResNetwork, newNetwork)
	if err != nil {
		return nil, err
	}
	return &rapiv2.ListNetworksResponse{Networks: nets}, nil
}

func (n *networkService) GetNetwork(_ context.Context, req *rapiv2.GetNetworkRequest) (*rapiv2.Network, error) {
	if err := refuseSyncQuery(req.GetLock()); err != nil {
		return nil, err
	}
	net := newNetwork()
	if err := getObject(n.s.state(), cluster.ResNetwork, req.GetNetworkName(), net); err != nil {
		return nil, err
	}
	return net, nil
}
