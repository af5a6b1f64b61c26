package cluster

// Node group query fields.

var groupTable = newTable("group", groupGetters(), nil,
	func(s *State) []*Group { return s.groups },
	func(s *State, name string) (*Group, error) { return s.group(name) })

// groupNDParams are the group's node parameters merged over the cluster's.
func (s *State) groupNDParams(g *Group) Params {
	return fillParams(s.cfg.Cluster.NDParams, g.NDParams)
}

// groupIPolicy is the group's instance policy merged over the cluster's.
func (s *State) groupIPolicy(g *Group) Params {
	return fillIPolicy(s.cfg.Cluster.IPolicy, g.IPolicy)
}

// groupDiskParams are the group's disk parameters merged over the
// cluster's, per disk template.
func (s *State) groupDiskParams(g *Group) map[string]any {
	out := make(map[string]any, len(s.cfg.Cluster.DiskParams))
	for dt, p := range s.cfg.Cluster.DiskParams {
		out[dt] = fillParams(p, g.DiskParams[dt])
	}
	return out
}

func groupGetters() map[string]getter[*Group] {
	g := map[string]getter[*Group]{
		"name":         func(_ *queryCtx, gr *Group) Cell { return normal(gr.Name) },
		"alloc_policy": func(_ *queryCtx, gr *Group) Cell { return normal(gr.AllocPolicy) },
		"ndparams":     func(c *queryCtx, gr *Group) Cell { return normal(c.s.groupNDParams(gr)) },
		"ipolicy":      func(c *queryCtx, gr *Group) Cell { return normal(c.s.groupIPolicy(gr)) },
		"diskparams":   func(c *queryCtx, gr *Group) Cell { return normal(c.s.groupDiskParams(gr)) },
		"custom_ndparams": func(c *queryCtx, gr *Group) Cell {
			return normal(c.params(gr.NDParams))
		},
		"custom_ipolicy": func(c *queryCtx, gr *Group) Cell {
			return normal(c.params(gr.IPolicy))
		},
		"custom_diskparams": func(c *queryCtx, gr *Group) Cell {
			out := make(map[string]any, len(gr.DiskParams))
			for dt, p := range gr.DiskParams {
				if c.shared {
					out[dt] = p
				} else {
					out[dt] = cloneParams(p)
				}
			}
			return normal(out)
		},
		"node_cnt":   func(c *queryCtx, gr *Group) Cell { return normal(int64(len(c.s.groupStats[gr.UUID].nodes))) },
		"node_list":  func(c *queryCtx, gr *Group) Cell { return normal(c.strs(c.s.groupStats[gr.UUID].nodes)) },
		"pinst_cnt":  func(c *queryCtx, gr *Group) Cell { return normal(int64(len(c.s.groupStats[gr.UUID].pinst))) },
		"pinst_list": func(c *queryCtx, gr *Group) Cell { return normal(c.strs(c.s.groupStats[gr.UUID].pinst)) },
	}
	ndpGetters(g, func(c *queryCtx, gr *Group) Params { return c.s.groupNDParams(gr) })
	commonGetters(g, func(gr *Group) (float64, float64, string, int64, []string) {
		return gr.CTime, gr.MTime, gr.UUID, gr.SerialNo, gr.Tags
	})
	return g
}
