package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

func (c *clusterService) ModifyCluster(ctx context.Context, req *rapiv2.ModifyClusterRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpClusterSetParams { return &rapiv2.OpClusterSetParams{} })
	fields := op.ProtoReflect().Descriptor().Fields()
	// The forbidden parameters apply to typed clients too.
	for _, p := range legacyjson.BodyRuleOf(rapiv2.ClusterService_ModifyCluster_FullMethodName).Forbidden {
		if fd := fields.ByJSONName(p); fd != nil && has(op.ProtoReflect(), fd) {
			return nil, errs.ForbiddenParam(p)
		}
	}
	return c.s.submit(ctx, one("cluster_modify", req.GetReason(), op, nil))
}

func (c *clusterService) RedistributeConfig(ctx context.Context, req *rapiv2.RedistributeConfigRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpClusterRedistConf { return &rapiv2.OpClusterRedistConf{} })
	return c.s.submit(ctx, one("redist_config", req.GetReason(), op, nil))
}
