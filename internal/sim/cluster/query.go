package cluster

import (
	"fmt"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// This file is the query engine behind /2/query/[resource], the bulk lists
// and the single-object GETs: field definitions, rows of [status, value]
// cells, filters.

func normal(v any) Cell { return Cell{Status: StatusNormal, Value: v} }

var (
	unavail  = Cell{Status: StatusUnavail}
	noData   = Cell{Status: StatusNoData}
	offline  = Cell{Status: StatusOffline}
	unknownC = Cell{Status: StatusUnknown}
)

// qffMode says how a field's value is used in filters (Ganeti's QffMode).
type qffMode int

const (
	qffNormal    qffMode = iota
	qffHostname          // equality also matches the short host name
	qffTimestamp         // [seconds, microseconds]: compare the seconds
)

// queryCtx is what getters see besides the item.
type queryCtx struct {
	s *State
	// shared lets getters return values shared with the State (and with
	// other callers) instead of fresh copies: see State.QueryShared.
	shared bool
}

type getter[T any] func(ctx *queryCtx, item T) Cell

type field[T any] struct {
	def FieldDef
	get getter[T]
	qff qffMode
}

// table is a query resource: its fields and how to list and look up items.
type table[T any] struct {
	resource string
	defs     []FieldDef // every field, in Ganeti's listing order
	fields   map[string]*field[T]
	items    func(s *State) []T
	// lookup finds one item by name; nil for resources without names.
	lookup func(s *State, name string) (T, error)
	// missing lists defined fields without a getter (tests keep it empty).
	missing []string
	// extra lists getters without a field definition (tests keep it empty).
	extra []string
}

func newTable[T any](resource string, getters map[string]getter[T], qff map[string]qffMode,
	items func(*State) []T, lookup func(*State, string) (T, error)) *table[T] {
	t := &table[T]{
		resource: resource,
		defs:     fieldDefTable[resource],
		fields:   make(map[string]*field[T], len(fieldDefTable[resource])),
		items:    items,
		lookup:   lookup,
	}
	for _, d := range t.defs {
		g, ok := getters[d.Name]
		if !ok {
			t.missing = append(t.missing, d.Name)
			g = func(*queryCtx, T) Cell { return unavail }
		}
		t.fields[d.Name] = &field[T]{def: d, get: g, qff: qff[d.Name]}
	}
	for name := range getters {
		if _, ok := t.fields[name]; !ok {
			t.extra = append(t.extra, name)
		}
	}
	return t
}

// fieldDefs returns the definitions of the named fields (all when names
// is empty); unknown names get a definition of kind "unknown".
func (t *table[T]) fieldDefs(names []string) []FieldDef {
	if len(names) == 0 {
		return append([]FieldDef(nil), t.defs...)
	}
	out := make([]FieldDef, len(names))
	for i, n := range names {
		if f, ok := t.fields[n]; ok {
			out[i] = f.def
		} else {
			out[i] = unknownFieldDef(n)
		}
	}
	return out
}

func unknownFieldDef(name string) FieldDef {
	return FieldDef{Name: name, Title: name, Kind: KindUnknown, Doc: fmt.Sprintf("Unknown field '%s'", name)}
}

// resolve maps field names to fields; nil marks an unknown name.
func (t *table[T]) resolve(names []string) []*field[T] {
	out := make([]*field[T], len(names))
	for i, n := range names {
		out[i] = t.fields[n]
	}
	return out
}

func row[T any](ctx *queryCtx, item T, fields []*field[T], into []Cell) {
	for i, f := range fields {
		if f != nil {
			into[i] = f.get(ctx, item)
		} else {
			into[i] = unknownC
		}
	}
}

// query runs a query on the table. With limits, the matching items are
// measured (their cells computed and sized, not kept) before the result is
// built.
func (t *table[T]) query(s *State, names []string, filter any, shared bool, lim *QueryLimits) (*QueryResult, error) {
	root, err := parseFilter(filter)
	if err != nil {
		return nil, err
	}
	cf, err := compileFilter(root, t)
	if err != nil {
		return nil, err
	}
	var items []T
	if wanted, ok := requestedNames(root, "name"); ok && len(wanted) > 0 && t.lookup != nil {
		// Like Ganeti: a filter that only names items looks them up (so an
		// unknown name is an error), in the order given.
		for _, name := range wanted {
			it, err := t.lookup(s, name)
			if err != nil {
				return nil, err
			}
			items = append(items, it)
		}
	} else {
		items = t.items(s)
	}
	ctx := &queryCtx{s: s, shared: shared}
	if root != nil {
		matched := make([]T, 0, len(items))
		for _, it := range items {
			ok, err := cf.match(ctx, it)
			if err != nil {
				return nil, err
			}
			if ok {
				matched = append(matched, it)
			}
		}
		items = matched
	}
	defs := t.fieldDefs(names)
	fields := t.resolve(names)
	if lim != nil && (lim.MaxBytes > 0 || lim.Admit != nil) {
		est, err := t.estimate(ctx, items, defs, fields, lim.MaxBytes)
		if err != nil {
			return nil, err
		}
		if lim.Admit != nil {
			if err := lim.Admit(est); err != nil {
				return nil, err
			}
		}
	}
	res := &QueryResult{Fields: defs, Data: make([][]Cell, 0, len(items))}
	cells := make([]Cell, len(items)*len(names))
	for _, it := range items {
		r := cells[:len(names):len(names)]
		cells = cells[len(names):]
		row(ctx, it, fields, r)
		res.Data = append(res.Data, r)
	}
	return res, nil
}

// estimate is the estimated length of the JSON encoding of the result
// {"fields": defs, "data": rows}; it stops with errs.TooLarge as soon as
// it passes max (when positive).
func (t *table[T]) estimate(ctx *queryCtx, items []T, defs []FieldDef, fields []*field[T], max int64) (int64, error) {
	est := int64(len(`{"fields":[],"data":[]}`))
	for _, d := range defs {
		est += int64(len(d.Name)+len(d.Title)+len(d.Kind)+len(d.Doc)) + int64(len(`{"name":"","title":"","kind":"","doc":""},`))
	}
	tooLarge := func() error {
		return errs.TooLarge("The result of this query would be larger than %d bytes; request fewer fields or filter the objects", max)
	}
	if max > 0 && est > max {
		return 0, tooLarge()
	}
	// Every cell is at least [0,null] and a comma.
	minRow := int64(len(fields))*int64(len(`[0,null],`)) + int64(len(`[],`))
	for _, it := range items {
		if max > 0 && est+minRow > max {
			return 0, tooLarge()
		}
		est += int64(len(`[],`))
		for _, f := range fields {
			if f == nil {
				est += int64(len(`[1,null],`))
				continue
			}
			est += jsonSize(f.get(ctx, it)) + 1
		}
		if max > 0 && est > max {
			return 0, tooLarge()
		}
	}
	return est, nil
}

func (t *table[T]) get(s *State, name string, names []string, shared bool) ([]Cell, error) {
	if t.lookup == nil {
		return nil, errs.Prereq(errs.CodeInval, "Resource '%s' has no single-object lookup", t.resource)
	}
	it, err := t.lookup(s, name)
	if err != nil {
		return nil, err
	}
	r := make([]Cell, len(names))
	row(&queryCtx{s: s, shared: shared}, it, t.resolve(names), r)
	return r, nil
}

// queryTable is the type-erased view of a table.
type queryTable interface {
	query(s *State, names []string, filter any, shared bool, lim *QueryLimits) (*QueryResult, error)
	get(s *State, name string, names []string, shared bool) ([]Cell, error)
	fieldDefs(names []string) []FieldDef
}

// notViaRAPI are Ganeti query resources that RAPI does not offer.
var notViaRAPI = []string{"cluster", "extstorage", "os"}

func lookupTable(resource string) (queryTable, error) {
	switch resource {
	case "node":
		return nodeTable, nil
	case "instance":
		return instanceTable, nil
	case "group":
		return groupTable, nil
	case "network":
		return networkTable, nil
	case "filter":
		return filterTable, nil
	case "export":
		return exportTable, nil
	case "job":
		return jobTable, nil
	case "lock":
		return lockTable, nil
	}
	if contains(notViaRAPI, resource) {
		return nil, errs.Prereq(errs.CodeInval, "Resource '%s' is not available via RAPI", resource)
	}
	return nil, errs.Prereq(errs.CodeInval, "Unknown query resource '%s'", resource)
}

// Query runs a query: the values of fields for every item of resource that
// passes filter (a decoded JSON qfilter, nil for none). Unknown field names
// give a field of kind "unknown" and cells of status 1. Errors: an unknown
// resource or a malformed filter (wrong_input), an unknown name in a
// names-only filter (unknown_entity).
func (s *State) Query(resource string, fields []string, filter any) (*QueryResult, error) {
	t, err := lookupTable(resource)
	if err != nil {
		return nil, err
	}
	return t.query(s, fields, filter, false, nil)
}

// QueryShared is Query for callers that only read the result: the cell
// values may be shared with the State and with other callers, so they must
// not be modified (they stay valid for as long as the caller keeps them).
// It saves the copies Query makes for every list and dictionary.
func (s *State) QueryShared(resource string, fields []string, filter any) (*QueryResult, error) {
	t, err := lookupTable(resource)
	if err != nil {
		return nil, err
	}
	return t.query(s, fields, filter, true, nil)
}

// QueryLimited is QueryShared within limits: the result's size is
// estimated before it is built, refused beyond lim.MaxBytes and announced
// to lim.Admit.
func (s *State) QueryLimited(resource string, fields []string, filter any, lim QueryLimits) (*QueryResult, error) {
	t, err := lookupTable(resource)
	if err != nil {
		return nil, err
	}
	return t.query(s, fields, filter, true, &lim)
}

// FieldDefs returns the definitions of fields of resource, or of all its
// fields (sorted by name, numbers as numbers) when fields is empty.
func (s *State) FieldDefs(resource string, fields []string) ([]FieldDef, error) {
	t, err := lookupTable(resource)
	if err != nil {
		return nil, err
	}
	return t.fieldDefs(fields), nil
}

// Get returns the cells of fields for one object: resource node, instance,
// group or network by name (or UUID, or unique short name), filter by
// UUID. An unknown object is errs.NotFound ("Instance 'x' not known").
func (s *State) Get(resource, name string, fields []string) ([]Cell, error) {
	t, err := lookupTable(resource)
	if err != nil {
		return nil, err
	}
	return t.get(s, name, fields, false)
}

// GetShared is Get for callers that only read the cells (see QueryShared).
func (s *State) GetShared(resource, name string, fields []string) ([]Cell, error) {
	t, err := lookupTable(resource)
	if err != nil {
		return nil, err
	}
	return t.get(s, name, fields, true)
}

// Shared getters --------------------------------------------------------------

func strList(s []string) []string { return nonNil(cloneStrings(s)) }

// strs is a list of names of the State: the list itself for a shared
// query, a copy otherwise (never nil).
func (c *queryCtx) strs(s []string) []string {
	if c.shared {
		return nonNil(s)
	}
	return strList(s)
}

// params is a parameter dictionary of the State (never nil): itself for a
// shared query, a deep copy otherwise.
func (c *queryCtx) params(p Params) Params {
	if c.shared {
		return nonNilParams(p)
	}
	return cloneParams(nonNilParams(p))
}

// value is a JSON-like value of the State: itself for a shared query, a
// deep copy otherwise.
func (c *queryCtx) value(v any) any {
	if c.shared {
		return v
	}
	return deepCopy(v)
}

func optString(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func optCell(p *string) Cell {
	if p == nil {
		return unavail
	}
	return normal(*p)
}

// commonGetters are the ctime/mtime/uuid/serial_no/tags fields.
func commonGetters[T any](getters map[string]getter[T], meta func(T) (ctime, mtime float64, uuid string, serial int64, tags []string)) {
	getters["ctime"] = func(_ *queryCtx, it T) Cell { c, _, _, _, _ := meta(it); return normal(c) }
	getters["mtime"] = func(_ *queryCtx, it T) Cell { _, m, _, _, _ := meta(it); return normal(m) }
	getters["uuid"] = func(_ *queryCtx, it T) Cell { _, _, u, _, _ := meta(it); return normal(u) }
	getters["serial_no"] = func(_ *queryCtx, it T) Cell { _, _, _, sn, _ := meta(it); return normal(sn) }
	getters["tags"] = func(c *queryCtx, it T) Cell {
		_, _, _, _, t := meta(it)
		return normal(c.strs(t))
	}
}
