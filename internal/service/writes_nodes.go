package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

func (n *nodeService) EvacuateNode(ctx context.Context, req *rapiv2.EvacuateNodeRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpNodeEvacuate { return &rapiv2.OpNodeEvacuate{} })
	return n.s.submit(ctx, one("nodes_name_evacuate", req.GetReason(), op,
		params{"node_name": req.GetNodeName(), "dry_run": req.GetDryRun()}))
}

// MigrateNode takes the opcode parameters from the body, unless a legacy
// query argument is given: then only mode (from live or mode) is used.
func (n *nodeService) MigrateNode(ctx context.Context, req *rapiv2.MigrateNodeRequest) (*rapiv2.JobSubmission, error) {
	static := params{"node_name": req.GetNodeName()}
	op := opOf(req.GetOp(), func() *rapiv2.OpNodeMigrate { return &rapiv2.OpNodeMigrate{} })
	if req.Live != nil || req.Mode != nil || req.GetReason() != "" {
		if req.Live != nil && req.Mode != nil {
			return nil, errs.BadRequest("Only one of 'live' and 'mode' should be passed")
		}
		op = &rapiv2.OpNodeMigrate{}
		switch {
		case req.Live != nil && req.GetLive():
			static["mode"] = "live"
		case req.Live != nil:
			static["mode"] = "non-live"
		case req.Mode != nil:
			static["mode"] = optEnum(req.Mode)
		}
	}
	return n.s.submit(ctx, one("nodes_name_migrate", req.GetReason(), op, static))
}

func (n *nodeService) ModifyNode(ctx context.Context, req *rapiv2.ModifyNodeRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpNodeSetParams { return &rapiv2.OpNodeSetParams{} })
	return n.s.submit(ctx, one("nodes_name_modify", req.GetReason(), op, params{"node_name": req.GetNodeName()}))
}

func (n *nodeService) PowercycleNode(ctx context.Context, req *rapiv2.PowercycleNodeRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpNodePowercycle { return &rapiv2.OpNodePowercycle{} })
	return n.s.submit(ctx, one("nodes_name_powercycle", req.GetReason(), op,
		params{"node_name": req.GetNodeName(), "force": req.GetForce()}))
}

// nodeRoleFlags are the OP_NODE_SET_PARAMS flags of each settable role
// (master_candidate, drained, offline; nil leaves a flag alone).
var nodeRoleFlags = map[string][3]any{
	"regular":          {false, false, false},
	"master-candidate": {true, nil, nil},
	"drained":          {nil, true, nil},
	"offline":          {nil, nil, true},
}

func (n *nodeService) SetNodeRole(ctx context.Context, req *rapiv2.SetNodeRoleRequest) (*rapiv2.JobSubmission, error) {
	flags, ok := nodeRoleFlags[req.GetRole()]
	if !ok {
		return nil, errs.BadRequest("Can't set '%s' role", req.GetRole())
	}
	return n.s.submit(ctx, one("nodes_name_role", req.GetReason(), &rapiv2.OpNodeSetParams{}, params{
		"node_name": req.GetNodeName(), "master_candidate": flags[0], "drained": flags[1], "offline": flags[2],
		"force": req.GetForce(), "auto_promote": req.GetAutoPromote(),
	}))
}

func (n *nodeService) GetNodeStorage(ctx context.Context, req *rapiv2.GetNodeStorageRequest) (*rapiv2.JobSubmission, error) {
	fields := req.GetOutputFields()
	if len(fields) == 0 || (len(fields) == 1 && fields[0] == "") {
		return nil, errs.BadRequest("Missing the required 'output_fields' parameter")
	}
	return n.s.submit(ctx, oneDeps("nodes_name_storage", req.GetReason(), &rapiv2.OpNodeQueryStorage{}, params{
		"nodes": []any{req.GetNodeName()}, "storage_type": optEnum(req.StorageType), "output_fields": toAny(fields),
	}, req.GetOptions()))
}

func (n *nodeService) ModifyNodeStorage(ctx context.Context, req *rapiv2.ModifyNodeStorageRequest) (*rapiv2.JobSubmission, error) {
	if req.GetName() == "" {
		return nil, errs.BadRequest("Missing the required 'name' parameter")
	}
	changes := map[string]any{}
	if req.Allocatable != nil {
		changes["allocatable"] = req.GetAllocatable()
	}
	return n.s.submit(ctx, oneDeps("nodes_name_storage_modify", req.GetReason(), &rapiv2.OpNodeModifyStorage{}, params{
		"node_name": req.GetNodeName(), "storage_type": optEnum(req.StorageType), "name": req.GetName(), "changes": changes,
	}, req.GetOptions()))
}

func (n *nodeService) RepairNodeStorage(ctx context.Context, req *rapiv2.RepairNodeStorageRequest) (*rapiv2.JobSubmission, error) {
	if req.GetName() == "" {
		return nil, errs.BadRequest("Missing the required 'name' parameter")
	}
	return n.s.submit(ctx, oneDeps("nodes_name_storage_repair", req.GetReason(), &rapiv2.OpRepairNodeStorage{}, params{
		"node_name": req.GetNodeName(), "storage_type": optEnum(req.StorageType), "name": req.GetName(),
	}, req.GetOptions()))
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
