package cluster

import "github.com/ganeti-gateway/ganeti-gateway/server/errs"

// The field lists of Ganeti's rlib2 (fields.json rlib2_field_lists): what
// the bulk lists (GET /2/<resource>?bulk=1) and single-object GETs return,
// key by key, in this order.
var (
	IFields = []string{"name", "admin_state", "os", "pnode", "snodes", "disk_template", "nic.ips",
		"nic.macs", "nic.modes", "nic.uuids", "nic.names", "nic.links", "nic.networks",
		"nic.networks.names", "nic.bridges", "network_port", "disk.sizes", "disk.spindles",
		"disk_usage", "disk.uuids", "disk.names", "beparams", "hvparams", "oper_state", "oper_ram",
		"oper_vcpus", "status", "custom_hvparams", "custom_beparams", "custom_nicparams", "ctime",
		"mtime", "uuid", "serial_no", "tags"}
	NFields = []string{"name", "offline", "master_candidate", "drained", "dtotal", "dfree", "sptotal",
		"spfree", "mtotal", "mnode", "mfree", "pinst_cnt", "sinst_cnt", "ctotal", "cnos", "cnodes",
		"csockets", "pip", "sip", "role", "pinst_list", "sinst_list", "master_capable", "vm_capable",
		"ndparams", "group.uuid", "ctime", "mtime", "uuid", "serial_no", "tags"}
	GFields = []string{"alloc_policy", "name", "node_cnt", "node_list", "ipolicy", "custom_ipolicy",
		"diskparams", "custom_diskparams", "ndparams", "custom_ndparams", "ctime", "mtime", "uuid",
		"serial_no", "tags"}
	NetFields = []string{"name", "network", "gateway", "network6", "gateway6", "mac_prefix",
		"free_count", "reserved_count", "map", "group_list", "inst_list", "external_reservations",
		"ctime", "mtime", "uuid", "serial_no", "tags"}
	FilterRuleFields = []string{"watermark", "priority", "predicates", "action", "reason_trail", "uuid"}
	JFieldsBulk      = []string{"id", "ops", "status", "summary", "opstatus", "received_ts", "start_ts", "end_ts"}
	JFields          = []string{"id", "ops", "status", "summary", "opstatus", "received_ts", "start_ts", "end_ts", "oplog", "opresult"}
)

// RlibFields returns a copy of the rlib2 field list of resource (instance,
// node, group, network, filter; job gives J_FIELDS_BULK), or nil.
func RlibFields(resource string) []string {
	var l []string
	switch resource {
	case "instance":
		l = IFields
	case "node":
		l = NFields
	case "group":
		l = GFields
	case "network":
		l = NetFields
	case "filter":
		l = FilterRuleFields
	case "job":
		l = JFieldsBulk
	default:
		return nil
	}
	return cloneStrings(l)
}

// BulkList returns what GET /2/<resource>?bulk=1 returns for resource
// instance, node, group, network or filter: one object per item with the
// rlib2 fields (a cell without data shows as null); instance beparams carry
// the "memory" alias of maxmem.
func (s *State) BulkList(resource string) ([]map[string]any, error) {
	fields := RlibFields(resource)
	if fields == nil || resource == "job" {
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

// Object returns what GET /2/<resource>/<name> returns for resource
// instance, node, group, network (by name) or filter (by UUID): the rlib2
// fields plus the response extras (node secondary_ip; instance beparams
// carry the "memory" alias). An unknown object is errs.NotFound.
func (s *State) Object(resource, name string) (map[string]any, error) {
	fields := RlibFields(resource)
	if fields == nil || resource == "job" {
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
