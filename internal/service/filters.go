package service

import (
	"context"

	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
)

type filterService struct {
	rapiv2.UnimplementedFilterServiceServer
	s *Services
}

func newFilterRule() *rapiv2.FilterRule { return &rapiv2.FilterRule{} }

func (f *filterService) ListFilters(ctx context.Context, req *rapiv2.ListFiltersRequest) (*rapiv2.ListFiltersResponse, error) {
	if !req.GetBulk() {
		uuids, err := f.s.cfg.Backend.Names(ctx, backend.ResFilter)
		if err != nil {
			return nil, err
		}
		refs := make([]*rapiv2.FilterRef, len(uuids))
		for i, u := range uuids {
			refs[i] = &rapiv2.FilterRef{Uuid: u, Uri: "/2/filters/" + u}
		}
		return &rapiv2.ListFiltersResponse{Refs: refs}, nil
	}
	rules, err := cachedList(ctx, f.s, backend.ResFilter, newFilterRule)
	if err != nil {
		return nil, err
	}
	return &rapiv2.ListFiltersResponse{Filters: rules}, nil
}

func (f *filterService) GetFilter(ctx context.Context, req *rapiv2.GetFilterRequest) (*rapiv2.FilterRule, error) {
	rule := newFilterRule()
	if err := getObject(ctx, f.s.cfg.Backend, backend.ResFilter, req.GetFilterUuid(), rule); err != nil {
		return nil, err
	}
	return rule, nil
}

// AddFilter is POST /2/filters: luxi ReplaceFilter(None, ...).
func (f *filterService) AddFilter(ctx context.Context, req *rapiv2.AddFilterRequest) (*rapiv2.FilterUuid, error) {
	return f.replace(ctx, "", req.GetRule())
}

// ReplaceFilter is PUT /2/filters/{uuid}: replaces the rule, or creates
// it with that UUID.
func (f *filterService) ReplaceFilter(ctx context.Context, req *rapiv2.ReplaceFilterRequest) (*rapiv2.FilterUuid, error) {
	return f.replace(ctx, req.GetFilterUuid(), req.GetRule())
}

// DeleteFilter is DELETE /2/filters/{uuid}; it answers null.
func (f *filterService) DeleteFilter(ctx context.Context, req *rapiv2.DeleteFilterRequest) (*structpb.Value, error) {
	if err := f.s.cfg.Backend.DeleteFilter(ctx, req.GetFilterUuid()); err != nil {
		return nil, err
	}
	return structpb.NewNullValue(), nil
}

// replace hands the rule to the backend, which validates it as luxid does
// (Ganeti answers 502 to a malformed rule, we answer 400).
func (f *filterService) replace(ctx context.Context, uuid string, spec *rapiv2.FilterRuleSpec) (*rapiv2.FilterUuid, error) {
	rule := backend.FilterRuleSpec{
		Priority:   spec.GetPriority(),
		Predicates: spec.GetPredicates().AsSlice(),
		Reason:     spec.GetReason().AsSlice(),
	}
	if a := spec.GetAction(); a != nil {
		rule.Action = a.AsInterface()
	}
	uuid, err := f.s.cfg.Backend.ReplaceFilter(ctx, uuid, rule)
	if err != nil {
		return nil, err
	}
	return &rapiv2.FilterUuid{Uuid: uuid}, nil
}
