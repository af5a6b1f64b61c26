package cluster

import (
	"fmt"
	"sync"
)

// RowSource supplies the items of a query resource whose objects live
// outside the cluster model: the job engine registers one for "job" and one
// for "lock" (Model.SetRowSource). Without a source those resources have
// no rows.
type RowSource interface {
	// Rows returns the current items in output order (jobs by id).
	Rows() []Row
}

// Row is one item of a RowSource.
type Row interface {
	// Field returns the cell of one of the resource's fields (a name from
	// FieldDefs; the model never asks for unknown names). Timestamps such as
	// a job's received_ts are [seconds, microseconds] lists.
	Field(name string) Cell
}

// RowSourceFunc adapts a function to RowSource.
type RowSourceFunc func() []Row

// Rows implements RowSource.
func (f RowSourceFunc) Rows() []Row { return f() }

// registry holds the row sources; it is shared by every State of a Model.
type registry struct {
	mu      sync.RWMutex
	sources map[string]RowSource
}

func newRegistry() *registry { return &registry{sources: map[string]RowSource{}} }

func (r *registry) rows(resource string) []Row {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	src := r.sources[resource]
	r.mu.RUnlock()
	if src == nil {
		return nil
	}
	return src.Rows()
}

// rowResources are the resources a RowSource can serve.
var rowResources = []string{"job", "lock"}

func (r *registry) set(resource string, src RowSource) error {
	if !contains(rowResources, resource) {
		return fmt.Errorf("cluster: no row source can be registered for %q (only job and lock)", resource)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if src == nil {
		delete(r.sources, resource)
	} else {
		r.sources[resource] = src
	}
	return nil
}

func rowTable(resource string, qff map[string]qffMode) *table[Row] {
	getters := map[string]getter[Row]{}
	for _, d := range fieldDefTable[resource] {
		name := d.Name
		getters[name] = func(_ *queryCtx, r Row) Cell { return r.Field(name) }
	}
	return newTable(resource, getters, qff,
		func(s *State) []Row { return s.reg.rows(resource) }, nil)
}

var (
	jobTable = rowTable("job", map[string]qffMode{
		"received_ts": qffTimestamp, "start_ts": qffTimestamp, "end_ts": qffTimestamp,
	})
	lockTable = rowTable("lock", nil)
)
