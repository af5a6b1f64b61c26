// Package sim is the simulated backend: a Ganeti cluster (the fake
// hypervisor) simulated by the cluster model (sim/cluster) and run by the
// job engine (sim/jobs), behind the backend interface.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
)

// Backend is the simulated cluster behind backend.Backend.
type Backend struct {
	model *cluster.Model
	jobs  *jobs.Engine
}

var (
	_ backend.Backend   = (*Backend)(nil)
	_ backend.Versioned = (*Backend)(nil)
)

// New returns the backend of a cluster model and the job engine that runs
// its jobs (both required).
func New(model *cluster.Model, engine *jobs.Engine) *Backend {
	return &Backend{model: model, jobs: engine}
}

// Reads are answered from the model's current state: each call sees one
// committed state.

func (b *Backend) ClusterInfo(context.Context) (map[string]any, error) {
	return b.model.State().InfoShared(), nil
}

// StateVersion is the current state snapshot (backend.Versioned): every
// change commits a new one.
func (b *Backend) StateVersion(context.Context) any { return b.model.State() }

func (b *Backend) Names(_ context.Context, resource string) ([]string, error) {
	return b.model.State().Names(resource), nil
}

func (b *Backend) Get(_ context.Context, resource, name string, fields []string) ([]backend.Cell, error) {
	return b.model.State().GetShared(resource, name, fields)
}

func (b *Backend) Query(_ context.Context, resource string, fields []string, filter any, lim backend.QueryLimits) (*backend.QueryResult, error) {
	return b.model.State().QueryLimited(resource, fields, filter, lim)
}

func (b *Backend) QueryFields(_ context.Context, resource string, fields []string) ([]backend.FieldDef, error) {
	return b.model.State().FieldDefs(resource, fields)
}

func (b *Backend) Tags(_ context.Context, kind, name string) ([]string, error) {
	return b.model.State().Tags(kind, name)
}

func (b *Backend) NodeRole(_ context.Context, name string) (string, error) {
	return b.model.State().NodeRole(name)
}

func (b *Backend) InstanceConsole(_ context.Context, name string) (map[string]any, error) {
	return b.model.State().Console(name)
}

func (b *Backend) OSNames(context.Context) ([]string, error) {
	return b.model.State().OSNames(), nil
}

// The job queue is the engine's.

func (b *Backend) Supports(opID string) bool { return b.jobs.Implements(opID) }

func (b *Backend) Submit(ctx context.Context, ops []*rapiv2.OpCode, opt backend.SubmitOptions) (int64, error) {
	return b.jobs.Submit(ctx, ops, opt)
}

func (b *Backend) Job(ctx context.Context, id int64) (*backend.Job, bool, error) {
	return b.jobs.Lookup(ctx, id)
}

func (b *Backend) JobIDs(context.Context) ([]int64, error) { return b.jobs.IDs(), nil }

func (b *Backend) Jobs(context.Context) ([]*backend.Job, error) { return b.jobs.List(), nil }

func (b *Backend) Cancel(_ context.Context, id int64) (bool, string, error) {
	ok, msg := b.jobs.Cancel(id)
	return ok, msg, nil
}

func (b *Backend) WaitForChange(ctx context.Context, id int64, fields []string, prevInfo []any, prevSerial int64,
	timeout time.Duration) ([]any, [][]any, bool, error) {
	return b.jobs.WaitForChange(ctx, id, fields, prevInfo, prevSerial, timeout)
}

func (b *Backend) Watch(ctx context.Context, id int64) (<-chan *backend.Job, error) {
	return b.jobs.Watch(ctx, id)
}

// Filter rules: validated as luxid validates them, committed by the
// engine, which applies them to the queued jobs.

// filterReasonSource is the source of the reason trail entry appended to
// every added or replaced rule. Ganeti 3.0.2's luxid appends
// ["luxid", "", <now in ns>] (captures 246 and 247).
const filterReasonSource = "luxid"

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (b *Backend) ReplaceFilter(ctx context.Context, uuid string, spec backend.FilterRuleSpec) (string, error) {
	if uuid == "" {
		uuid = cluster.NewUUID()
	} else if !uuidPattern.MatchString(uuid) {
		return "", errs.BadRequest("Invalid filter rule UUID '%s'", uuid)
	}
	rule, err := buildRule(spec)
	if err != nil {
		return "", err
	}
	rule.UUID = strings.ToLower(uuid)
	if err := b.jobs.PutFilter(ctx, rule); err != nil {
		return "", err
	}
	return rule.UUID, nil
}

func (b *Backend) DeleteFilter(ctx context.Context, uuid string) error {
	return b.jobs.DeleteFilter(ctx, uuid)
}

// buildRule validates a rule (what luxid checks when it parses the rule;
// Ganeti answers 502 to a malformed one, we answer 400) and fills in
// Ganeti's defaults: no predicates, action CONTINUE, and the reason trail
// with luxid's entry appended.
func buildRule(spec backend.FilterRuleSpec) (*backend.FilterRule, error) {
	rule := &backend.FilterRule{Priority: spec.Priority}
	if rule.Priority < 0 {
		return nil, errs.BadRequest("Invalid filter rule: priority must be a non-negative integer, got %d", rule.Priority)
	}
	preds, _ := cluster.NormalizeJSON(nonNil(spec.Predicates)).([]any)
	preds, err := cluster.NormalizeFilterPredicates(preds)
	if err != nil {
		return nil, errs.BadRequest("Invalid filter rule: %s", err.Error())
	}
	rule.Predicates = preds
	rule.Action = cluster.FilterContinue
	if spec.Action != nil {
		rule.Action = cluster.NormalizeJSON(spec.Action)
	}
	if err := cluster.CheckFilterAction(rule.Action); err != nil {
		return nil, errs.BadRequest("Invalid filter rule: %s, got %s", err.Error(), jsonString(rule.Action))
	}
	trail, _ := cluster.NormalizeJSON(nonNil(spec.Reason)).([]any)
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
