package service

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

type tagService struct {
	rapiv2.UnimplementedTagServiceServer
	s *Services
}

func (t *tagService) tags(ctx context.Context, kind, name string) (*rapiv2.TagList, error) {
	tags, err := t.s.cfg.Backend.Tags(ctx, kind, name)
	if err != nil {
		return nil, err
	}
	return &rapiv2.TagList{Tags: tags}, nil
}

func (t *tagService) ListClusterTags(ctx context.Context, _ *rapiv2.ListClusterTagsRequest) (*rapiv2.TagList, error) {
	return t.tags(ctx, backend.TagCluster, "")
}

func (t *tagService) ListNodeTags(ctx context.Context, req *rapiv2.ListNodeTagsRequest) (*rapiv2.TagList, error) {
	return t.tags(ctx, backend.TagNode, req.GetNodeName())
}

func (t *tagService) ListGroupTags(ctx context.Context, req *rapiv2.ListGroupTagsRequest) (*rapiv2.TagList, error) {
	return t.tags(ctx, backend.TagNodeGroup, req.GetGroupName())
}

func (t *tagService) ListInstanceTags(ctx context.Context, req *rapiv2.ListInstanceTagsRequest) (*rapiv2.TagList, error) {
	return t.tags(ctx, backend.TagInstance, req.GetInstanceName())
}

func (t *tagService) ListNetworkTags(ctx context.Context, req *rapiv2.ListNetworkTagsRequest) (*rapiv2.TagList, error) {
	return t.tags(ctx, backend.TagNetwork, req.GetNetworkName())
}

// Tag writes ------------------------------------------------------------------

// tagChange is one tag write: the opcode's target and the request's
// common parameters.
type tagChange struct {
	del     bool
	kind    rapiv2.TagKind
	name    *string
	tags    []string
	dryRun  bool
	reason  string
	opts    *rapiv2.JobOptions
	handler string // Ganeti's RAPI handler class without "R_2_", for the reason trail
}

// submit builds OP_TAGS_SET or OP_TAGS_DEL as Ganeti's rlib2 does and
// queues it.
func (t *tagService) submit(ctx context.Context, c tagChange) (*rapiv2.JobSubmission, error) {
	eng := t.s.cfg.Backend
	now := time.Now().UnixNano()
	var reason []*rapiv2.ReasonEntry
	if c.reason != "" {
		reason = append(reason, &rapiv2.ReasonEntry{Source: "gnt:user", Reason: c.reason, TimestampNs: now})
	}
	reason = append(reason, &rapiv2.ReasonEntry{Source: "gnt:library:rlib2:" + c.handler, Reason: "", TimestampNs: now})
	tags := c.tags
	if tags == nil {
		tags = []string{}
	}
	kind, prio, dry := c.kind, rapiv2.OpPriority_OP_PRIORITY_NORMAL, c.dryRun
	depends := c.opts.GetDepends()
	op := &rapiv2.OpCode{}
	if c.del {
		op.Op = &rapiv2.OpCode_TagsDel{TagsDel: &rapiv2.OpTagsDel{
			Kind: &kind, Tags: tags, Name: c.name, DryRun: &dry, Priority: &prio, Depends: depends, Reason: reason,
		}}
	} else {
		op.Op = &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{
			Kind: &kind, Tags: tags, Name: c.name, DryRun: &dry, Priority: &prio, Depends: depends, Reason: reason,
		}}
	}
	if id := backend.OpID(op); !eng.Supports(id) {
		return nil, errs.NotImplemented("%s is not implemented yet", id)
	}
	id, err := eng.Submit(ctx, []*rapiv2.OpCode{op}, backend.SubmitOptions{Idempotency: backend.IdempotencyFrom(ctx)})
	if err != nil {
		return nil, err
	}
	return &rapiv2.JobSubmission{JobId: id}, nil
}

func (t *tagService) AddClusterTags(ctx context.Context, req *rapiv2.ChangeClusterTagsRequest) (*rapiv2.JobSubmission, error) {
	return t.submit(ctx, tagChange{kind: rapiv2.TagKind_TAG_KIND_CLUSTER, tags: req.GetTag(), dryRun: req.GetDryRun(),
		reason: req.GetReason(), opts: req.GetOptions(), handler: "tags"})
}

func (t *tagService) DeleteClusterTags(ctx context.Context, req *rapiv2.ChangeClusterTagsRequest) (*rapiv2.JobSubmission, error) {
	return t.submit(ctx, tagChange{del: true, kind: rapiv2.TagKind_TAG_KIND_CLUSTER, tags: req.GetTag(),
		dryRun: req.GetDryRun(), reason: req.GetReason(), opts: req.GetOptions(), handler: "tags"})
}

func (t *tagService) AddNodeTags(ctx context.Context, req *rapiv2.ChangeNodeTagsRequest) (*rapiv2.JobSubmission, error) {
	return t.submit(ctx, tagChange{kind: rapiv2.TagKind_TAG_KIND_NODE, name: proto.String(req.GetNodeName()),
		tags: req.GetTag(), dryRun: req.GetDryRun(), reason: req.GetReason(), opts: req.GetOptions(),
		handler: "nodes_name_tags"})
}

func (t *tagService) DeleteNodeTags(ctx context.Context, req *rapiv2.ChangeNodeTagsRequest) (*rapiv2.JobSubmission, error) {
	return t.submit(ctx, tagChange{del: true, kind: rapiv2.TagKind_TAG_KIND_NODE, name: proto.String(req.GetNodeName()),
		tags: req.GetTag(), dryRun: req.GetDryRun(), reason: req.GetReason(), opts: req.GetOptions(),
		handler: "nodes_name_tags"})
}

func (t *tagService) AddGroupTags(ctx context.Context, req *rapiv2.ChangeGroupTagsRequest) (*rapiv2.JobSubmission, error) {
	return t.submit(ctx, tagChange{kind: rapiv2.TagKind_TAG_KIND_NODEGROUP, name: proto.String(req.GetGroupName()),
		tags: req.GetTag(), dryRun: req.GetDryRun(), reason: req.GetReason(), opts: req.GetOptions(),
		handler: "groups_name_tags"})
}

func (t *tagService) DeleteGroupTags(ctx context.Context, req *rapiv2.ChangeGroupTagsRequest) (*rapiv2.JobSubmission, error) {
	return t.submit(ctx, tagChange{del: true, kind: rapiv2.TagKind_TAG_KIND_NODEGROUP, name: proto.String(req.GetGroupName()),
		tags: req.GetTag(), dryRun: req.GetDryRun(), reason: req.GetReason(), opts: req.GetOptions(),
		handler: "groups_name_tags"})
}

func (t *tagService) AddInstanceTags(ctx context.Context, req *rapiv2.ChangeInstanceTagsRequest) (*rapiv2.JobSubmission, error) {
	return t.submit(ctx, tagChange{kind: rapiv2.TagKind_TAG_KIND_INSTANCE, name: proto.String(req.GetInstanceName()),
		tags: req.GetTag(), dryRun: req.GetDryRun(), reason: req.GetReason(), opts: req.GetOptions(),
		handler: "instances_name_tags"})
}

func (t *tagService) DeleteInstanceTags(ctx context.Context, req *rapiv2.ChangeInstanceTagsRequest) (*rapiv2.JobSubmission, error) {
	return t.submit(ctx, tagChange{del: true, kind: rapiv2.TagKind_TAG_KIND_INSTANCE, name: proto.String(req.GetInstanceName()),
		tags: req.GetTag(), dryRun: req.GetDryRun(), reason: req.GetReason(), opts: req.GetOptions(),
		handler: "instances_name_tags"})
}

func (t *tagService) AddNetworkTags(ctx context.Context, req *rapiv2.ChangeNetworkTagsRequest) (*rapiv2.JobSubmission, error) {
	return t.submit(ctx, tagChange{kind: rapiv2.TagKind_TAG_KIND_NETWORK, name: proto.String(req.GetNetworkName()),
		tags: req.GetTag(), dryRun: req.GetDryRun(), reason: req.GetReason(), opts: req.GetOptions(),
		handler: "networks_name_tags"})
}

func (t *tagService) DeleteNetworkTags(ctx context.Context, req *rapiv2.ChangeNetworkTagsRequest) (*rapiv2.JobSubmission, error) {
	return t.submit(ctx, tagChange{del: true, kind: rapiv2.TagKind_TAG_KIND_NETWORK, name: proto.String(req.GetNetworkName()),
		tags: req.GetTag(), dryRun: req.GetDryRun(), reason: req.GetReason(), opts: req.GetOptions(),
		handler: "networks_name_tags"})
}
