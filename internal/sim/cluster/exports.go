package cluster

// Export query fields: one row per export of every node; an offline node
// gives one row whose export cell has status offline (Ganeti cannot ask it).

type exportRow struct {
	node *Node
	name string
}

var exportTable = newTable("export", map[string]getter[exportRow]{
	"node": func(_ *queryCtx, r exportRow) Cell { return normal(r.node.Name) },
	"export": func(_ *queryCtx, r exportRow) Cell {
		if r.node.Offline {
			return offline
		}
		return normal(r.name)
	},
}, map[string]qffMode{"node": qffHostname}, exportRows, nil)

func exportRows(s *State) []exportRow {
	byNode := map[string][]string{}
	for _, e := range s.cfg.Exports {
		byNode[e.Node] = append(byNode[e.Node], e.Name)
	}
	var rows []exportRow
	for _, n := range s.nodes {
		if n.Offline {
			rows = append(rows, exportRow{node: n})
			continue
		}
		names := byNode[n.UUID]
		niceSort(names)
		for _, name := range names {
			rows = append(rows, exportRow{node: n, name: name})
		}
	}
	return rows
}
