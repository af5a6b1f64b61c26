package cluster

// Job filter rule query fields (GET /2/filters).

var filterTable = newTable("filter", filterGetters(), nil,
	func(s *State) []*FilterRule { return s.filters },
	func(s *State, uuid string) (*FilterRule, error) { return s.filter(uuid) })

func filterGetters() map[string]getter[*FilterRule] {
	return map[string]getter[*FilterRule]{
		"uuid":         func(_ *queryCtx, f *FilterRule) Cell { return normal(f.UUID) },
		"watermark":    func(_ *queryCtx, f *FilterRule) Cell { return normal(f.Watermark) },
		"priority":     func(_ *queryCtx, f *FilterRule) Cell { return normal(f.Priority) },
		"predicates":   func(c *queryCtx, f *FilterRule) Cell { return normal(c.value(nonNilAny(f.Predicates))) },
		"action":       func(c *queryCtx, f *FilterRule) Cell { return normal(c.value(f.Action)) },
		"reason_trail": func(c *queryCtx, f *FilterRule) Cell { return normal(c.value(nonNilAny(f.ReasonTrail))) },
	}
}
