package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

func (g *groupService) CreateGroup(ctx context.Context, req *rapiv2.CreateGroupRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpGroupAdd { return &rapiv2.OpGroupAdd{} })
	return g.s.submit(ctx, one("groups", req.GetReason(), op, params{"dry_run": req.GetDryRun()}))
}

func (g *groupService) DeleteGroup(ctx context.Context, req *rapiv2.DeleteGroupRequest) (*rapiv2.JobSubmission, error) {
	return g.s.submit(ctx, oneDeps("groups_name", req.GetReason(), &rapiv2.OpGroupRemove{},
		params{"group_name": req.GetGroupName(), "dry_run": req.GetDryRun()}, req.GetOptions()))
}

func (g *groupService) AssignGroupNodes(ctx context.Context, req *rapiv2.AssignGroupNodesRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpGroupAssignNodes { return &rapiv2.OpGroupAssignNodes{} })
	return g.s.submit(ctx, one("groups_name_assign_nodes", req.GetReason(), op,
		params{"group_name": req.GetGroupName(), "dry_run": req.GetDryRun(), "force": req.GetForce()}))
}

func (g *groupService) ModifyGroup(ctx context.Context, req *rapiv2.ModifyGroupRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpGroupSetParams { return &rapiv2.OpGroupSetParams{} })
	return g.s.submit(ctx, one("groups_name_modify", req.GetReason(), op, params{"group_name": req.GetGroupName()}))
}

func (g *groupService) RenameGroup(ctx context.Context, req *rapiv2.RenameGroupRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpGroupRename { return &rapiv2.OpGroupRename{} })
	return g.s.submit(ctx, one("groups_name_rename", req.GetReason(), op,
		params{"group_name": req.GetGroupName(), "dry_run": req.GetDryRun()}))
}
