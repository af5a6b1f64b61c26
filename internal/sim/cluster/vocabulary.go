package cluster

import "github.com/ganeti-gateway/ganeti-gateway/internal/backend"

// The query vocabulary is the backend's (internal/backend); the simulated
// cluster uses it under its own names.
type (
	Cell        = backend.Cell
	FieldDef    = backend.FieldDef
	QueryResult = backend.QueryResult
	QueryLimits = backend.QueryLimits
	FilterRule  = backend.FilterRule
)

// Cell statuses, field kinds, resources, tag kinds and filter actions.
const (
	StatusNormal  = backend.CellNormal
	StatusUnknown = backend.CellUnknown
	StatusNoData  = backend.CellNoData
	StatusUnavail = backend.CellUnavail
	StatusOffline = backend.CellOffline

	KindUnknown   = backend.KindUnknown
	KindText      = backend.KindText
	KindBool      = backend.KindBool
	KindNumber    = backend.KindNumber
	KindUnit      = backend.KindUnit
	KindTimestamp = backend.KindTimestamp
	KindOther     = backend.KindOther
	KindFloat     = backend.KindFloat

	ResExport   = backend.ResExport
	ResFilter   = backend.ResFilter
	ResGroup    = backend.ResGroup
	ResInstance = backend.ResInstance
	ResJob      = backend.ResJob
	ResLock     = backend.ResLock
	ResNetwork  = backend.ResNetwork
	ResNode     = backend.ResNode

	TagCluster   = backend.TagCluster
	TagNode      = backend.TagNode
	TagNodeGroup = backend.TagNodeGroup
	TagInstance  = backend.TagInstance
	TagNetwork   = backend.TagNetwork

	FilterAccept    = backend.FilterAccept
	FilterContinue  = backend.FilterContinue
	FilterPause     = backend.FilterPause
	FilterReject    = backend.FilterReject
	FilterRateLimit = backend.FilterRateLimit
)

// QueryResources are the resources /2/query serves.
var QueryResources = backend.QueryResources
