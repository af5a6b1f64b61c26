package cluster

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Job filter rules: validation of new rules (POST/PUT /2/filters) and the
// evaluation of their predicates against a job, as Ganeti's
// Ganeti.JQScheduler.Filtering does. The job engine decides what the
// applying rule's action means.

// CheckFilterAction checks a rule's action: one of ACCEPT, CONTINUE,
// PAUSE, REJECT, or ["RATE_LIMIT", n] with n > 0 (JSON-like, numbers as
// int64).
func CheckFilterAction(a any) error { return checkFilterAction(a) }

// NormalizeFilterPredicates checks a rule's predicates and returns them in
// the form Ganeti stores (and shows): each predicate is [kind, filter] with
// kind jobid, opcode or reason and filter a query filter, whose legacy
// operators are rewritten ("=" becomes "==", ["!=", f, v] becomes
// ["!", ["==", f, v]]). Numbers must be int64 (see NormalizeJSON).
func NormalizeFilterPredicates(preds []any) ([]any, error) {
	out := make([]any, 0, len(preds))
	for i, p := range preds {
		l, ok := p.([]any)
		if !ok || len(l) != 2 {
			return nil, fmt.Errorf("predicates[%d]: expected [kind, filter], got %s", i, jsonText(p))
		}
		kind, _ := l[0].(string)
		if kind != "jobid" && kind != "opcode" && kind != "reason" {
			return nil, fmt.Errorf("predicates[%d]: kind must be jobid, opcode or reason, got %s", i, jsonText(l[0]))
		}
		if _, err := parseFilter(l[1]); err != nil {
			msg := err.Error()
			if de, ok := errs.As(err); ok {
				msg = de.Msg
			}
			return nil, fmt.Errorf("predicates[%d]: %s", i, msg)
		}
		out = append(out, []any{kind, canonicalFilter(l[1])})
	}
	return out, nil
}

// canonicalFilter rewrites a parsed-valid query filter with Ganeti's
// canonical operators (luxid re-serialises the filter it parsed).
func canonicalFilter(v any) any {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return v
	}
	op, _ := l[0].(string)
	switch op {
	case "&", "|", "!":
		out := []any{op}
		for _, k := range l[1:] {
			out = append(out, canonicalFilter(k))
		}
		return out
	case "=":
		return append([]any{"=="}, l[1:]...)
	case "!=":
		return []any{"!", append([]any{"=="}, l[1:]...)}
	}
	return append([]any(nil), l...)
}

// NormalizeJSON turns the numbers of a decoded JSON-like value into int64
// where they are integral (float64 otherwise), in place.
func NormalizeJSON(v any) any {
	switch x := v.(type) {
	case float64:
		if i, ok := asInt(x); ok {
			return i
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = NormalizeJSON(e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = NormalizeJSON(e)
		}
		return x
	}
	return normalizeJSON(v)
}

// FilterRules returns the job filter rules in the order the scheduler
// considers them: by priority (lower first), then by UUID. The rules are
// shared: callers must not modify them.
func (s *State) FilterRules() []*FilterRule {
	out := append([]*FilterRule(nil), s.filters...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority < out[j].Priority })
	return out
}

// FilterJob is what the predicates of a filter rule see of a job.
type FilterJob struct {
	ID int64
	// Ops are the job's opcodes as legacy JSON objects (OP_ID and the
	// opcode's own parameters).
	Ops []map[string]any
	// Reasons are the reason trail entries of all opcodes:
	// [source, reason, timestamp].
	Reasons [][]any
}

// RuleMatches reports whether all predicates of f are true for job (lazily
// computed by view, at most once).
func RuleMatches(f *FilterRule, view func() *FilterJob) bool {
	var job *FilterJob
	get := func() *FilterJob {
		if job == nil {
			job = view()
		}
		return job
	}
	for _, p := range f.Predicates {
		if !matchPredicate(p, f.Watermark, get) {
			return false
		}
	}
	return true
}

// errNoMatch makes a whole predicate false (an invalid comparison, an
// unknown field, an operator the predicate kind does not allow).
var errNoMatch = errors.New("no match")

func matchPredicate(p any, watermark int64, job func() *FilterJob) bool {
	l, ok := p.([]any)
	if !ok || len(l) != 2 {
		return false
	}
	root, err := parseFilter(l[1])
	if err != nil {
		return false
	}
	kind, _ := l[0].(string)
	switch kind {
	case "jobid":
		id := job().ID
		ok, err := evalJobFilter(root, func(n *filterNode) (bool, error) {
			if n.field != "id" || !isComparison(n.op) {
				return false, errNoMatch
			}
			switch v := n.value.(type) {
			case int64:
				return compareOp(n.op, cmpOrdered(id, v)), nil
			case string:
				if v == "watermark" {
					return compareOp(n.op, cmpOrdered(id, watermark)), nil
				}
			}
			return false, errNoMatch
		})
		return err == nil && ok
	case "opcode":
		for _, op := range job().Ops {
			ok, err := evalJobFilter(root, func(n *filterNode) (bool, error) { return opcodeLeaf(n, op) })
			if err == nil && ok {
				return true
			}
		}
	case "reason":
		for _, r := range job().Reasons {
			ok, err := evalJobFilter(root, func(n *filterNode) (bool, error) {
				if !isComparison(n.op) {
					return false, errNoMatch
				}
				var have any
				switch n.field {
				case "source":
					have = r[0]
				case "reason":
					have = r[1]
				case "timestamp":
					have = r[2]
				default:
					return false, errNoMatch
				}
				c, err := compareValues(n.value, have)
				if err != nil {
					return false, errNoMatch
				}
				return compareOp(n.op, c), nil
			})
			if err == nil && ok {
				return true
			}
		}
	}
	return false
}

// opcodeLeaf evaluates a leaf of an opcode predicate: its field is a
// dotted path into the opcode's JSON object.
func opcodeLeaf(n *filterNode, op map[string]any) (bool, error) {
	var have any = op
	for _, k := range strings.Split(n.field, ".") {
		m, ok := have.(map[string]any)
		if !ok {
			return false, errNoMatch
		}
		if have, ok = m[k]; !ok {
			return false, errNoMatch
		}
	}
	switch n.op {
	case opTrue:
		b, ok := have.(bool)
		if !ok {
			return false, errNoMatch
		}
		return b, nil
	case opRegexp:
		s, ok := have.(string)
		if !ok {
			return false, errNoMatch
		}
		return n.re.MatchString(s), nil
	case opContains:
		ok, err := containsValue(n.value, have)
		if err != nil {
			return false, errNoMatch
		}
		return ok, nil
	}
	c, err := compareValues(n.value, have)
	if err != nil {
		return false, errNoMatch
	}
	return compareOp(n.op, c), nil
}

func isComparison(op filterOp) bool {
	return op == opEQ || op == opLT || op == opGT || op == opLE || op == opGE
}

// compareOp applies a comparison to c, the comparison of the field value
// with the filter value.
func compareOp(op filterOp, c int) bool {
	switch op {
	case opEQ:
		return c == 0
	case opLT:
		return c < 0
	case opGT:
		return c > 0
	case opLE:
		return c <= 0
	case opGE:
		return c >= 0
	}
	return false
}

// evalJobFilter evaluates the boolean structure of a filter with leaf for
// its leaves; an error of a leaf makes the whole filter fail.
func evalJobFilter(n *filterNode, leaf func(*filterNode) (bool, error)) (bool, error) {
	if n == nil {
		return true, nil
	}
	switch n.op {
	case opAnd, opOr:
		for _, k := range n.kids {
			ok, err := evalJobFilter(k, leaf)
			if err != nil {
				return false, err
			}
			if n.op == opOr && ok {
				return true, nil
			}
			if n.op == opAnd && !ok {
				return false, nil
			}
		}
		return n.op == opAnd, nil
	case opNot:
		ok, err := evalJobFilter(n.kids[0], leaf)
		return !ok, err
	}
	return leaf(n)
}
