package jobs

import (
	"context"
	"encoding/json"
	"strings"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Job filtering (Ganeti's design "Job filtering", doc/design-optables.rst,
// and Ganeti.JQScheduler.Filtering): before a queued job starts, the
// filter rules of the cluster configuration are considered in order of
// priority (lower first), then UUID; the first rule whose predicates all
// match and whose action is not CONTINUE applies:
//
//   - ACCEPT (or no applying rule): the job runs;
//   - PAUSE: the job stays queued, not run, until the rules change;
//   - REJECT: the job is canceled;
//   - ["RATE_LIMIT", n]: the job runs only while fewer than n started,
//     unfinished jobs have this rule as their applying rule; otherwise it
//     stays queued until one of them ends or the rules change.
//
// Rules act on every queued job, not only on the jobs submitted after
// them: a rule's watermark (the highest job id when it was added or
// replaced) only matters to predicates that name it, e.g.
// ["jobid", [">", "id", "watermark"]]. Jobs that have started are not
// affected.

// filterState holds the jobs the filter rules keep queued (mu held).
type filterState struct {
	parked map[int64]*parkedJob
}

type parkedJob struct {
	j *job
	// rate: held back by a RATE_LIMIT rule (released when a started job
	// ends), otherwise by a PAUSE rule (released when the rules change).
	rate bool
}

// opMetaParams are the parameters every opcode has; Ganeti's opcode
// predicates see the opcode without them.
var opMetaParams = []string{"comment", "debug_level", "depends", "dry_run", "priority", "reason"}

// FiltersChanged makes the engine consider the jobs held back by filter
// rules again; the server calls it once a change of the rules has been
// committed.
func (e *Engine) FiltersChanged() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.releaseParked(false)
}

// LastJobID is the highest job id handed out so far (0 when none): the
// watermark of a filter rule added now.
func (e *Engine) LastJobID() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nextID - 1
}

// admit applies the filter rules to j, a job about to start (mu held). It
// reports whether j may start; otherwise j has been parked or canceled.
func (e *Engine) admit(j *job) bool {
	rules := e.model.State().FilterRules()
	if len(rules) == 0 {
		return true
	}
	rule := e.applyingRule(rules, j)
	if rule == nil {
		return true
	}
	switch rule.ActionName() {
	case cluster.FilterPause:
		e.park(j, false)
		return false
	case cluster.FilterReject:
		j.rec.finishUnfinished(StatusCanceled, nil, e.now())
		e.ended(j)
		e.changed(j)
		e.persist(j)
		return false
	case cluster.FilterRateLimit:
		n, _ := rule.RateLimit()
		if e.rateLimited(rules, rule.UUID) >= n {
			e.park(j, true)
			return false
		}
	}
	return true
}

// applyingRule is the first rule (rules are in order) whose action is not
// CONTINUE and whose predicates all match j; nil when none (mu held).
func (e *Engine) applyingRule(rules []*cluster.FilterRule, j *job) *cluster.FilterRule {
	var view *cluster.FilterJob
	get := func() *cluster.FilterJob {
		if view == nil {
			view = e.filterView(j)
		}
		return view
	}
	for _, r := range rules {
		if r.ActionName() == cluster.FilterContinue {
			continue
		}
		if cluster.RuleMatches(r, get) {
			return r
		}
	}
	return nil
}

// rateLimited counts the started, unfinished jobs whose applying rule is
// the rule uuid (mu held).
func (e *Engine) rateLimited(rules []*cluster.FilterRule, uuid string) int64 {
	var n int64
	for _, o := range e.jobs {
		if o.pending || o.rec.Start == nil || Finalized(o.rec.status()) {
			continue
		}
		if r := e.applyingRule(rules, o); r != nil && r.UUID == uuid {
			n++
		}
	}
	return n
}

// filterView is what the predicates see of j: its id, its opcodes (legacy
// JSON without the common parameters) and their reason trails.
func (e *Engine) filterView(j *job) *cluster.FilterJob {
	v := &cluster.FilterJob{ID: j.rec.ID}
	for i, op := range j.ops {
		if m, fd := field(j.msgs[i], paramReason); fd != nil && fd.IsList() && fd.Message() != nil {
			list := m.Get(fd).List()
			for k := range list.Len() {
				if r, ok := list.Get(k).Message().Interface().(*rapiv2.ReasonEntry); ok {
					v.Reasons = append(v.Reasons, []any{r.GetSource(), r.GetReason(), r.GetTimestampNs()})
				}
			}
		}
		m, ok := e.opObject(op)
		if !ok {
			v.Ops = append(v.Ops, map[string]any{"OP_ID": OpID(op)})
			continue
		}
		for _, k := range opMetaParams {
			delete(m, k)
		}
		v.Ops = append(v.Ops, m)
	}
	return v
}

// opObject is the legacy JSON object of op as plain Go values (maps,
// int64 and float64 numbers), whatever form Config.EncodeOp gives.
func (e *Engine) opObject(op *rapiv2.OpCode) (map[string]any, bool) {
	enc, err := e.cfg.EncodeOp(op)
	if err != nil {
		return nil, false
	}
	b, err := json.Marshal(enc)
	if err != nil {
		return nil, false
	}
	v, err := decodeValue(b)
	if err != nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// park keeps j queued until the rules change or, for a rate limit, until
// a started job ends (mu held).
func (e *Engine) park(j *job, rate bool) {
	if e.flt.parked == nil {
		e.flt.parked = map[int64]*parkedJob{}
	}
	e.flt.parked[j.rec.ID] = &parkedJob{j: j, rate: rate}
}

// releaseParked queues the parked jobs again (only the rate-limited ones
// with onlyRate), so that the rules are applied to them anew (mu held).
func (e *Engine) releaseParked(onlyRate bool) {
	for id, p := range e.flt.parked {
		if onlyRate && !p.rate {
			continue
		}
		delete(e.flt.parked, id)
		j := p.j
		if e.jobs[id] == j && !j.pending && !Finalized(j.rec.status()) && j.heapIdx < 0 && j.req == nil {
			e.enqueue(j)
		}
	}
}

// filtersJobEnded updates the parked jobs when j has reached a final
// status (mu held): j is no longer parked, and a started job frees a rate
// limit slot.
func (e *Engine) filtersJobEnded(j *job) {
	if len(e.flt.parked) == 0 {
		return
	}
	delete(e.flt.parked, j.rec.ID)
	if j.rec.Start != nil {
		e.releaseParked(true)
	}
}

// PutFilter commits rule, new or replacing the rule with its UUID, with
// the last job id handed out as its watermark (the rule applies to the
// jobs submitted after it), then applies the rules to the held-back jobs.
func (e *Engine) PutFilter(ctx context.Context, rule *cluster.FilterRule) error {
	return e.updateFilters(ctx, "put", rule.UUID, func(cfg *cluster.Config) error {
		rule.Watermark = e.LastJobID()
		cfg.Filters[rule.UUID] = rule
		return nil
	})
}

// DeleteFilter removes the rule uuid (in any case: rules are keyed by the
// lower-case form; the error names it as given), then applies the
// remaining rules to the held-back jobs.
func (e *Engine) DeleteFilter(ctx context.Context, uuid string) error {
	key := strings.ToLower(uuid)
	return e.updateFilters(ctx, "delete", key, func(cfg *cluster.Config) error {
		if _, ok := cfg.Filters[key]; !ok {
			return errs.Prereq(errs.CodeNoEnt, "Filter rule with UUID %s does not exist", uuid)
		}
		delete(cfg.Filters, key)
		return nil
	})
}

// updateFilters commits a change of the filter rules in one store
// transaction (a "store.commit" span in the caller's trace).
func (e *Engine) updateFilters(ctx context.Context, op, uuid string, change func(cfg *cluster.Config) error) error {
	if e.follower {
		return errFollower()
	}
	span := e.startFilterCommit(ctx, op, uuid)
	err := e.model.Update(ctx, func(_ store.Tx, cfg *cluster.Config) error { return change(cfg) })
	endFilterCommit(span, err)
	if err != nil {
		return err
	}
	e.FiltersChanged()
	return nil
}
