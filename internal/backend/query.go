package backend

import "encoding/json"

// The query vocabulary: Ganeti's query resources, field definitions and
// rows of [status, value] cells (luxi Query and QueryFields).

// Statuses of a query cell (constants.json query_result_status).
const (
	CellNormal  = 0 // value is valid
	CellUnknown = 1 // unknown field
	CellNoData  = 2 // no data (e.g. RPC error)
	CellUnavail = 3 // value unavailable for this item
	CellOffline = 4 // the node is offline
)

// Query field kinds (constants.json query_field_kinds).
const (
	KindUnknown   = "unknown"
	KindText      = "text"
	KindBool      = "bool"
	KindNumber    = "number"
	KindUnit      = "unit"
	KindTimestamp = "timestamp"
	KindOther     = "other"
	KindFloat     = "float"
)

// Query resources (fields.json query_resources_via_rapi).
const (
	ResExport   = "export"
	ResFilter   = "filter"
	ResGroup    = "group"
	ResInstance = "instance"
	ResJob      = "job"
	ResLock     = "lock"
	ResNetwork  = "network"
	ResNode     = "node"
)

// QueryResources are the resources /2/query serves.
var QueryResources = []string{ResExport, ResFilter, ResGroup, ResInstance, ResJob, ResLock, ResNetwork, ResNode}

// FieldDef describes a query field as /2/query/[resource]/fields shows it.
type FieldDef struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Kind  string `json:"kind"`
	Doc   string `json:"doc"`
}

// Cell is one value of a query row; it marshals as Ganeti's [status, value].
type Cell struct {
	Status int
	Value  any
}

// MarshalJSON implements json.Marshaler.
func (c Cell) MarshalJSON() ([]byte, error) { return json.Marshal([2]any{c.Status, c.Value}) }

// QueryResult is the answer to a query: field definitions and rows.
type QueryResult struct {
	Fields []FieldDef `json:"fields"`
	Data   [][]Cell   `json:"data"`
}

// QueryLimits bound the result of a query before it is built.
type QueryLimits struct {
	// MaxBytes, when positive, is the largest result allowed, as the
	// estimated length of its JSON encoding (field definitions and rows): a
	// larger one is refused with errs.TooLarge before it is built.
	MaxBytes int64
	// Admit, when set, is called with that estimate before the result is
	// built (to reserve memory for it); its error aborts the query.
	Admit func(estimate int64) error
}

// Tag kinds (constants.json tag_kinds).
const (
	TagCluster   = "cluster"
	TagNode      = "node"
	TagNodeGroup = "nodegroup"
	TagInstance  = "instance"
	TagNetwork   = "network"
)
