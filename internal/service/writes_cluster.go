package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

func (c *clusterService) ModifyCluster(ctx context.Context, req *rapiv2.ModifyClusterRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpClusterSetParams { return &rapiv2.OpClusterSetParams{} })
	fields := op.ProtoReflect().Descriptor().Fields()
	// The forbidden parameters apply to typed clients too.
	for _, p := range bodyRule(rapiv2.ClusterService_ModifyCluster_FullMethodName).forbidden {
		if fd := fields.ByJSONName(p); fd != nil && has(op.ProtoReflect(), fd) {
			return nil, forbiddenParam(p)
		}
	}
	return c.s.submit(ctx, one("cluster_modify", req.GetReason(), op, nil))
}

func (c *clusterService) RedistributeConfig(ctx context.Context, req *rapiv2.RedistributeConfigRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpClusterRedistConf { return &rapiv2.OpClusterRedistConf{} })
	return c.s.submit(ctx, one("redist_config", req.GetReason(), op, nil))
}

// forbiddenParam is Ganeti's 403 for a parameter RAPI may not set.
func forbiddenParam(p string) error {
	return &errs.Error{Class: errs.ClassForbidden, Msg: "The parameter " + p + " cannot be set via RAPI"}
}
