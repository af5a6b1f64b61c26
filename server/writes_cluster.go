package server

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/server/errs"
)

// forbiddenClusterParams cannot be set through PUT /2/modify (Ganeti's
// rlib2 _R_2_modify forbidden params).
var forbiddenClusterParams = []string{"compression_tools"}

func (c *clusterService) ModifyCluster(ctx context.Context, req *rapiv2.ModifyClusterRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpClusterSetParams { return &rapiv2.OpClusterSetParams{} })
	fields := op.ProtoReflect().Descriptor().Fields()
	for _, p := range forbiddenClusterParams {
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
