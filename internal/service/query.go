package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

type queryService struct {
	rapiv2.UnimplementedQueryServiceServer
	s *Services
}

func (q *queryService) Query(ctx context.Context, req *rapiv2.QueryRequest) (*rapiv2.QueryResponse, error) {
	if len(req.GetFields()) == 0 {
		return nil, badRequest("Missing 'fields' query argument")
	}
	res, release, err := q.s.query(ctx, req.GetResource(), req.GetFields(), nil)
	if err != nil {
		return nil, err
	}
	defer release()
	return queryResponse(res)
}

func (q *queryService) QueryWithFilter(ctx context.Context, req *rapiv2.QueryWithFilterRequest) (*rapiv2.QueryResponse, error) {
	body := req.GetBody()
	fields := body.GetFields()
	if len(fields) == 0 {
		fields = req.GetFields()
	}
	if len(fields) == 0 {
		return nil, badRequest("Missing 'fields' query argument")
	}
	filter := body.GetQfilter()
	if filter == nil {
		filter = body.GetFilter() // the legacy key
	}
	var qfilter any
	if filter != nil {
		qfilter = filter.AsInterface()
	}
	res, release, err := q.s.query(ctx, req.GetResource(), fields, qfilter)
	if err != nil {
		return nil, err
	}
	defer release()
	return queryResponse(res)
}

func (q *queryService) QueryFields(ctx context.Context, req *rapiv2.QueryFieldsRequest) (*rapiv2.QueryFieldsResponse, error) {
	if err := q.s.cfg.Limits.checkFields(req.GetFields()); err != nil {
		return nil, err
	}
	defs, err := q.s.cfg.Backend.QueryFields(ctx, req.GetResource(), req.GetFields())
	if err != nil {
		return nil, err
	}
	return &rapiv2.QueryFieldsResponse{Fields: fieldDefinitions(defs)}, nil
}
