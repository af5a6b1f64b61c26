package server

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/server/cluster"
)

type filterService struct {
	rapiv2.UnimplementedFilterServiceServer
	s *Services
}

func newFilterRule() *rapiv2.FilterRule { return &rapiv2.FilterRule{} }

func (f *filterService) ListFilters(_ context.Context, req *rapiv2.ListFiltersRequest) (*rapiv2.ListFiltersResponse, error) {
	st := f.s.state()
	if !req.GetBulk() {
		uuids := st.Names(cluster.ResFilter)
		refs := make([]*rapiv2.FilterRef, len(uuids))
		for i, u := range uuids {
			refs[i] = &rapiv2.FilterRef{Uuid: u, Uri: "/2/filters/" + u}
		}
		return &rapiv2.ListFiltersResponse{Refs: refs}, nil
	}
	rules, err := listObjects(st, cluster.ResFilter, newFilterRule)
	if err != nil {
		return nil, err
	}
	return &rapiv2.ListFiltersResponse{Filters: rules}, nil
}

func (f *filterService) GetFilter(_ context.Context, req *rapiv2.GetFilterRequest) (*rapiv2.FilterRule, error) {
	rule := newFilterRule()
	if err := getObject(f.s.state(), cluster.ResFilter, req.GetFilterUuid(), rule); err != nil {
		return nil, err
	}
	return rule, nil
}
