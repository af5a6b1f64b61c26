package service

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
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

// filterReasonSource is the source of the reason trail entry appended to
// every added or replaced rule. Ganeti 3.0.2's luxid appends
// ["luxid", "", <now in ns>] (captures 246 and 247).
const filterReasonSource = "luxid"

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// AddFilter is POST /2/filters: luxi ReplaceFilter(None, ...).
func (f *filterService) AddFilter(ctx context.Context, req *rapiv2.AddFilterRequest) (*rapiv2.FilterUuid, error) {
	rule, err := f.buildRule(req.GetRule())
	if err != nil {
		return nil, err
	}
	rule.UUID = cluster.NewUUID()
	return f.put(ctx, rule)
}

// ReplaceFilter is PUT /2/filters/{uuid}: replaces the rule, or creates
// it with that UUID.
func (f *filterService) ReplaceFilter(ctx context.Context, req *rapiv2.ReplaceFilterRequest) (*rapiv2.FilterUuid, error) {
	uuid := req.GetFilterUuid()
	if !uuidPattern.MatchString(uuid) {
		return nil, errs.BadRequest("Invalid filter rule UUID '%s'", uuid)
	}
	rule, err := f.buildRule(req.GetRule())
	if err != nil {
		return nil, err
	}
	rule.UUID = strings.ToLower(uuid)
	return f.put(ctx, rule)
}

// DeleteFilter is DELETE /2/filters/{uuid}; it answers null.
func (f *filterService) DeleteFilter(ctx context.Context, req *rapiv2.DeleteFilterRequest) (*structpb.Value, error) {
	eng, err := f.engine()
	if err != nil {
		return nil, err
	}
	if err := eng.DeleteFilter(ctx, req.GetFilterUuid()); err != nil {
		return nil, err
	}
	return structpb.NewNullValue(), nil
}

// put commits rule (new or replacing the one with its UUID); the job
// engine applies the new rules to the queued jobs.
func (f *filterService) put(ctx context.Context, rule *cluster.FilterRule) (*rapiv2.FilterUuid, error) {
	eng, err := f.engine()
	if err != nil {
		return nil, err
	}
	if err := eng.PutFilter(ctx, rule); err != nil {
		return nil, err
	}
	return &rapiv2.FilterUuid{Uuid: rule.UUID}, nil
}

func (f *filterService) engine() (*jobs.Engine, error) {
	if eng := f.s.cfg.Jobs; eng != nil {
		return eng, nil
	}
	return nil, errs.NotImplemented("The job queue is not available")
}

// buildRule validates a rule body (what luxid checks when it parses the
// rule; Ganeti answers 502 to a malformed one, we answer 400) and fills in
// Ganeti's defaults: priority 0, no predicates, action CONTINUE, and the
// reason trail with luxid's entry appended.
func (f *filterService) buildRule(spec *rapiv2.FilterRuleSpec) (*cluster.FilterRule, error) {
	rule := &cluster.FilterRule{Priority: spec.GetPriority()}
	if rule.Priority < 0 {
		return nil, errs.BadRequest("Invalid filter rule: priority must be a non-negative integer, got %d", rule.Priority)
	}
	preds, _ := cluster.NormalizeJSON(nonNil(spec.GetPredicates().AsSlice())).([]any)
	preds, err := cluster.NormalizeFilterPredicates(preds)
	if err != nil {
		return nil, errs.BadRequest("Invalid filter rule: %s", err.Error())
	}
	rule.Predicates = preds
	rule.Action = cluster.FilterContinue
	if a := spec.GetAction(); a != nil {
		rule.Action = cluster.NormalizeJSON(a.AsInterface())
	}
	if err := cluster.CheckFilterAction(rule.Action); err != nil {
		return nil, errs.BadRequest("Invalid filter rule: %s, got %s", err.Error(), jsonString(rule.Action))
	}
	trail, _ := cluster.NormalizeJSON(nonNil(spec.GetReason().AsSlice())).([]any)
	for i, r := range trail {
		if !reasonEntry(r) {
			return nil, errs.BadRequest("Invalid filter rule: reason[%d] must be [source, reason, timestamp], got %s", i, jsonString(r))
		}
	}
	rule.ReasonTrail = append(trail, []any{filterReasonSource, "", time.Now().UnixMicro() * 1000})
	return rule, nil
}

// reasonEntry reports whether r is [string, string, integer].
func reasonEntry(r any) bool {
	l, ok := r.([]any)
	if !ok || len(l) != 3 {
		return false
	}
	_, s1 := l[0].(string)
	_, s2 := l[1].(string)
	_, n := l[2].(int64)
	return s1 && s2 && n
}

func nonNil(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
