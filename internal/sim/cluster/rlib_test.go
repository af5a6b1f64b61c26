package cluster

import (
	"slices"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// rlibMessages are the read messages of the API whose fields are rlib2's
// field lists (I_FIELDS, N_FIELDS, ...): what the bulk lists and
// single-object GETs return, key by key.
var rlibMessages = map[string]proto.Message{
	ResInstance: &rapiv2.Instance{},
	ResNode:     &rapiv2.Node{},
	ResGroup:    &rapiv2.Group{},
	ResNetwork:  &rapiv2.Network{},
	ResFilter:   &rapiv2.FilterRule{},
}

// rlibFields returns the rlib2 field list of resource, from the proto
// (see legacyjson.Keys), or nil.
func rlibFields(resource string) []string {
	m := rlibMessages[resource]
	if m == nil {
		return nil
	}
	return slices.Clone(legacyjson.Keys(m))
}

// bulkList returns what GET /2/<resource>?bulk=1 returns for resource
// instance, node, group, network or filter: one object per item with the
// rlib2 fields (a cell without data shows as null); instance beparams carry
// the "memory" alias of maxmem.
func bulkList(s *State, resource string) ([]map[string]any, error) {
	fields := rlibFields(resource)
	if fields == nil {
		return nil, errs.Prereq(errs.CodeInval, "Resource '%s' has no bulk list here", resource)
	}
	res, err := s.Query(resource, fields, nil)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(res.Data))
	for i, row := range res.Data {
		out[i] = rlibObject(resource, fields, row, false)
	}
	return out, nil
}

// object returns what GET /2/<resource>/<name> returns for resource
// instance, node, group, network (by name) or filter (by UUID): the rlib2
// fields plus the response extras (node secondary_ip; instance beparams
// carry the "memory" alias). An unknown object is errs.NotFound.
func object(s *State, resource, name string) (map[string]any, error) {
	fields := rlibFields(resource)
	if fields == nil {
		return nil, errs.Prereq(errs.CodeInval, "Resource '%s' has no objects here", resource)
	}
	row, err := s.Get(resource, name, fields)
	if err != nil {
		return nil, err
	}
	return rlibObject(resource, fields, row, true), nil
}

func rlibObject(resource string, fields []string, row []Cell, single bool) map[string]any {
	obj := make(map[string]any, len(fields)+1)
	for i, f := range fields {
		obj[f] = row[i].Value
	}
	// The instance beparams "memory" alias comes with the field itself
	// (see withMemoryAlias).
	if resource == "node" && single {
		obj["secondary_ip"] = obj["sip"]
	}
	return obj
}
