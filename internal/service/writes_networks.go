package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

func (n *networkService) CreateNetwork(ctx context.Context, req *rapiv2.CreateNetworkRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpNetworkAdd { return &rapiv2.OpNetworkAdd{} })
	return n.s.submit(ctx, one("networks", req.GetReason(), op, params{"dry_run": req.GetDryRun()}))
}

func (n *networkService) DeleteNetwork(ctx context.Context, req *rapiv2.DeleteNetworkRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpNetworkRemove { return &rapiv2.OpNetworkRemove{} })
	return n.s.submit(ctx, one("networks_name", req.GetReason(), op,
		params{"network_name": req.GetNetworkName(), "dry_run": req.GetDryRun()}))
}

func (n *networkService) ConnectNetwork(ctx context.Context, req *rapiv2.ConnectNetworkRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpNetworkConnect { return &rapiv2.OpNetworkConnect{} })
	return n.s.submit(ctx, one("networks_name_connect", req.GetReason(), op,
		params{"network_name": req.GetNetworkName(), "dry_run": req.GetDryRun()}))
}

func (n *networkService) DisconnectNetwork(ctx context.Context, req *rapiv2.DisconnectNetworkRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpNetworkDisconnect { return &rapiv2.OpNetworkDisconnect{} })
	return n.s.submit(ctx, one("networks_name_disconnect", req.GetReason(), op,
		params{"network_name": req.GetNetworkName(), "dry_run": req.GetDryRun()}))
}

func (n *networkService) ModifyNetwork(ctx context.Context, req *rapiv2.ModifyNetworkRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpNetworkSetParams { return &rapiv2.OpNetworkSetParams{} })
	return n.s.submit(ctx, one("networks_name_modify", req.GetReason(), op, params{"network_name": req.GetNetworkName()}))
}
