package cluster

import (
	"fmt"
	"strings"
)

// Seeding: job filter rules and exports.

var filterActions = []string{"ACCEPT", "CONTINUE", "PAUSE", "REJECT"}

func (b *builder) buildFilters() error {
	for i, ff := range b.f.Filters {
		what := fmt.Sprintf("filters[%d]", i)
		uuid, err := b.uuid(what, ff.UUID)
		if err != nil {
			return err
		}
		if ff.Watermark < 0 {
			return fmt.Errorf("%s: watermark must not be negative", what)
		}
		if ff.Priority < 0 || ff.Priority > maxFilterPrio {
			return fmt.Errorf("%s: priority must be between 0 and %d", what, maxFilterPrio)
		}
		rule := &FilterRule{UUID: uuid, Watermark: ff.Watermark, Priority: ff.Priority}
		rule.Predicates, _ = normalizeJSON(nonNilAny(ff.Predicates)).([]any)
		for j, p := range rule.Predicates {
			l, ok := p.([]any)
			if !ok || len(l) == 0 {
				return fmt.Errorf("%s: predicates[%d] must be a list [kind, ...]", what, j)
			}
			if kind, _ := l[0].(string); kind != "jobid" && kind != "opcode" && kind != "reason" {
				return fmt.Errorf("%s: predicates[%d]: kind must be jobid, opcode or reason", what, j)
			}
		}
		rule.Action = normalizeJSON(ff.Action)
		if rule.Action == nil {
			rule.Action = "CONTINUE"
		}
		if err := checkFilterAction(rule.Action); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		rule.ReasonTrail, _ = normalizeJSON(nonNilAny(ff.ReasonTrail)).([]any)
		b.cfg.Filters[uuid] = rule
	}
	return nil
}

func nonNilAny(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func checkFilterAction(a any) error {
	switch x := a.(type) {
	case string:
		if contains(filterActions, x) {
			return nil
		}
	case []any:
		if len(x) == 2 && x[0] == "RATE_LIMIT" {
			if n, ok := x[1].(int64); ok && n > 0 {
				return nil
			}
		}
	}
	return fmt.Errorf("action must be one of %s, or [\"RATE_LIMIT\", n] with n > 0", strings.Join(filterActions, ", "))
}

func (b *builder) buildExports() error {
	seen := map[Export]bool{}
	for i, fe := range b.f.Exports {
		n, ok := b.nodes[fe.Node]
		if !ok {
			return fmt.Errorf("exports[%d]: unknown node %q", i, fe.Node)
		}
		if err := checkName(fmt.Sprintf("exports[%d]", i), fe.Name); err != nil {
			return err
		}
		e := Export{Node: n.UUID, Name: fe.Name}
		if seen[e] {
			return fmt.Errorf("exports[%d]: %s on %s is declared twice", i, fe.Name, fe.Node)
		}
		seen[e] = true
		b.cfg.Exports = append(b.cfg.Exports, e)
	}
	return nil
}
