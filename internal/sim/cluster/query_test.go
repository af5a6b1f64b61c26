package cluster

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// testCluster exercises the cases the golden cluster lacks: several nodes
// and groups, an offline node, DRBD, networks, every admin state.
const testCluster = `{
  "cluster": {"name": "c.example.com", "master_node": "n1.example.com",
              "enabled_disk_templates": ["drbd", "plain", "file", "diskless"],
              "nicparams": {"mode": "bridged", "link": "br0"}, "tags": ["t1"]},
  "groups": [{"name": "default"}, {"name": "g2", "ndparams": {"exclusive_storage": true}, "tags": ["gt"]}],
  "nodes": [
    {"name": "n1.example.com", "pip": "192.0.2.1", "mtotal": 8192, "mnode": 512, "dtotal": 100000, "tags": ["rack1"]},
    {"name": "n2.example.com", "pip": "192.0.2.2", "mtotal": 8192, "mnode": 512, "dtotal": 100000},
    {"name": "n3.example.com", "pip": "192.0.2.3", "offline": true},
    {"name": "n10.example.com", "pip": "192.0.2.10", "group": "g2", "spindles": 6, "drained": true,
     "ndparams": {"oob_program": "/bin/oob"}}
  ],
  "oses": [{"name": "noop"}, {"name": "deb", "variants": ["min", "full"]}],
  "networks": [{"name": "net1", "network": "10.0.0.0/28", "gateway": "10.0.0.1", "reserved_ips": ["10.0.0.14"],
                "mac_prefix": "aa:11:22",
                "connections": [{"group": "default", "mode": "routed", "link": "rt1"}, {"group": "g2", "link": "br9"}]}],
  "instances": [
    {"name": "web.example.com", "os": "deb+min", "pnode": "n1.example.com", "snode": "n2.example.com",
     "disk_template": "drbd", "disks": [{"size": 1024, "name": "root", "spindles": 1}, {"size": 2048}],
     "nics": [{"network": "net1", "ip": "pool", "name": "eth0"}, {"mode": "openvswitch", "link": "ovs0", "vlan": "100"}],
     "beparams": {"maxmem": 1024, "minmem": 512, "vcpus": 2},
     "tags": ["b", "a"], "network_port": 11000},
    {"name": "db.example.com", "os": "noop", "pnode": "n2.example.com", "disk_template": "plain",
     "disks": [{"size": 4096}], "admin_state": "down"},
    {"name": "lost.example.com", "os": "noop", "pnode": "n3.example.com"},
    {"name": "off.example.com", "os": "noop", "pnode": "n1.example.com", "admin_state": "offline"},
    {"name": "g2inst.example.com", "os": "noop", "pnode": "n10.example.com", "disk_template": "file",
     "disks": [{"size": 100, "spindles": 2}], "nics": [{"network": "net1", "ip": "10.0.0.5"}]}
  ],
  "filters": [{"uuid": "00000000-0000-4000-8000-000000000002", "priority": 1, "action": ["RATE_LIMIT", 3],
               "predicates": [["opcode", ["=", "OP_ID", "OP_TAGS_SET"]]]},
              {"uuid": "00000000-0000-4000-8000-000000000001", "action": "REJECT"}],
  "exports": [{"node": "n2.example.com", "name": "old.example.com"}, {"node": "n1.example.com", "name": "b.example.com"},
              {"node": "n1.example.com", "name": "a.example.com"}]
}`

func testState(t testing.TB) *State {
	t.Helper()
	return stateFromJSON(t, testCluster)
}

func query(t *testing.T, s *State, res string, fields []string, filter any) [][]any {
	t.Helper()
	r, err := s.Query(res, fields, filter)
	if err != nil {
		t.Fatalf("Query(%s, %v, %v): %v", res, fields, filter, err)
	}
	out := make([][]any, len(r.Data))
	for i, row := range r.Data {
		for _, c := range row {
			out[i] = append(out[i], []any{c.Status, c.Value})
		}
	}
	return out
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestFieldTablesComplete(t *testing.T) {
	tables := map[string]interface {
		missingExtra() ([]string, []string)
	}{
		"node": nodeTable, "instance": instanceTable, "group": groupTable, "network": networkTable,
		"filter": filterTable, "export": exportTable, "job": jobTable, "lock": lockTable,
	}
	for res, tbl := range tables {
		missing, extra := tbl.missingExtra()
		if len(missing) > 0 {
			t.Errorf("%s: fields without a getter: %v", res, missing)
		}
		if len(extra) > 0 {
			t.Errorf("%s: getters without a field definition: %v", res, extra)
		}
	}
}

func (t *table[T]) missingExtra() ([]string, []string) { return t.missing, t.extra }

// TestValuesMatchKinds runs every field on every item and checks that each
// normal value has the Go type its kind promises.
func TestValuesMatchKinds(t *testing.T) {
	s := testState(t)
	for _, res := range []string{ResNode, ResInstance, ResGroup, ResNetwork, ResFilter, ResExport} {
		defs, _ := s.FieldDefs(res, nil)
		names := make([]string, len(defs))
		for i, d := range defs {
			names[i] = d.Name
		}
		r, err := s.Query(res, names, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) == 0 {
			t.Fatalf("%s: no rows", res)
		}
		for _, row := range r.Data {
			for i, c := range row {
				if c.Status != StatusNormal {
					if c.Value != nil {
						t.Errorf("%s %s: status %d with value %v", res, names[i], c.Status, c.Value)
					}
					continue
				}
				if err := checkKind(defs[i].Kind, c.Value); err != nil {
					t.Errorf("%s %s: %v", res, names[i], err)
				}
			}
		}
	}
}

func checkKind(kind string, v any) error {
	ok := true
	switch kind {
	case KindBool:
		_, ok = v.(bool)
	case KindNumber, KindUnit:
		_, ok = v.(int64)
	case KindFloat, KindTimestamp:
		_, ok = v.(float64)
	case KindText:
		_, ok = v.(string)
	}
	if !ok {
		return fmt.Errorf("kind %s but value %#v", kind, v)
	}
	// Every value must be JSON.
	_, err := json.Marshal(v)
	return err
}

func TestInstanceRuntime(t *testing.T) {
	s := testState(t)
	fields := []string{"name", "status", "oper_state", "oper_ram", "oper_vcpus", "admin_up", "console"}
	got := query(t, s, ResInstance, fields, nil)
	want := map[string]string{
		"db.example.com":     `[[0,"db.example.com"],[0,"ADMIN_down"],[0,false],[3,null],[3,null],[0,false],[0,{"instance":"db.example.com","kind":"msg","message":"Console not available for fake hypervisor"}]]`,
		"g2inst.example.com": `[[0,"g2inst.example.com"],[0,"running"],[0,true],[0,128],[0,1],[0,true],[0,{"instance":"g2inst.example.com","kind":"msg","message":"Console not available for fake hypervisor"}]]`,
		"lost.example.com":   `[[0,"lost.example.com"],[0,"ERROR_nodeoffline"],[2,null],[4,null],[4,null],[0,true],[4,null]]`,
		"off.example.com":    `[[0,"off.example.com"],[0,"ADMIN_offline"],[0,false],[3,null],[3,null],[0,false],[0,{"instance":"off.example.com","kind":"msg","message":"Console not available for fake hypervisor"}]]`,
		"web.example.com":    `[[0,"web.example.com"],[0,"running"],[0,true],[0,1024],[0,2],[0,true],[0,{"instance":"web.example.com","kind":"msg","message":"Console not available for fake hypervisor"}]]`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for _, row := range got {
		name := row[0].([]any)[1].(string)
		if g := mustJSON(row); g != want[name] {
			t.Errorf("%s:\n got %s\nwant %s", name, g, want[name])
		}
	}
	// Order: NiceSort by name.
	if names := s.Names(ResInstance); strings.Join(names, " ") != "db.example.com g2inst.example.com lost.example.com off.example.com web.example.com" {
		t.Errorf("instance order %v", names)
	}
	if _, err := s.Console("lost.example.com"); err == nil {
		t.Errorf("console of an instance on an offline node should be unavailable")
	}
}

func TestInstanceFields(t *testing.T) {
	s := testState(t)
	cells, err := s.Get(ResInstance, "web", []string{
		"name", "os", "snodes", "snodes.group", "pnode.group", "disk.sizes", "disk.names", "disk.spindles", "disk_usage",
		"disk.count", "disk.size/1", "disk.size/2", "disk.name/0", "disk.name/1", "sda_size", "sdb_size",
		"nic.count", "nic.ips", "nic.modes", "nic.links", "nic.bridges", "nic.vlans", "nic.networks.names", "nic.names",
		"nic.ip/0", "nic.ip/1", "nic.vlan/1", "nic.bridge/0", "nic.network.name/0", "mac", "ip",
		"hvparams", "custom_hvparams", "hv/acpi", "be/memory", "vcpus", "tags", "network_port", "osparams",
		"custom_nicparams",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := mustJSON(cells)
	mac := cells[29].Value.(string)
	if !strings.HasPrefix(mac, "aa:11:22:") {
		t.Errorf("a NIC in net1 should get net1's MAC prefix, got %s", mac)
	}
	want := `[[0,"web.example.com"],[0,"deb+min"],[0,["n2.example.com"]],[0,["default"]],[0,"default"],` +
		`[0,[1024,2048]],[0,["root",null]],[0,[1,null]],[0,3328],` +
		`[0,2],[0,2048],[3,null],[0,"root"],[3,null],[0,1024],[0,2048],` +
		`[0,2],[0,["10.0.0.2",null]],[0,["routed","openvswitch"]],[0,["rt1","ovs0"]],[0,[null,null]],[0,[null,"100"]],[0,["net1",null]],[0,["eth0",null]],` +
		`[0,"10.0.0.2"],[3,null],[0,"100"],[3,null],[0,"net1"],[0,"` + mac + `"],[0,"10.0.0.2"],` +
		`[0,{}],[0,{}],[3,null],[0,1024],[0,2],[0,["a","b"]],[0,11000],[0,{}],` +
		`[0,[{"link":"rt1","mode":"routed","vlan":""},{"link":"ovs0","mode":"openvswitch","vlan":"100"}]]]`
	if got != want {
		t.Errorf("web fields:\n got %s\nwant %s", got, want)
	}
}

func TestNodeFields(t *testing.T) {
	s := testState(t)
	fields := []string{"name", "role", "mfree", "dfree", "pinst_list", "sinst_list", "sptotal", "spfree",
		"powered", "group", "master", "bootid", "ndp/exclusive_storage"}
	rows := query(t, s, ResNode, fields, nil)
	// n1: runs web (1024) and off is offline (not running); drbd disks + meta.
	// n2: secondary of web; db (plain, 4096) is stopped but its disk counts.
	want := []string{
		`[[0,"n1.example.com"],[0,"M"],[0,6656],[0,96672],[0,["off.example.com","web.example.com"]],[0,[]],[2,null],[2,null],[3,null],[0,"default"],[0,true],`,
		`[[0,"n2.example.com"],[0,"C"],[0,7680],[0,92576],[0,["db.example.com"]],[0,["web.example.com"]],[2,null],[2,null],[3,null],[0,"default"],[0,false],`,
		`[[0,"n3.example.com"],[0,"O"],[4,null],[4,null],[0,["lost.example.com"]],[0,[]],[4,null],[4,null],[3,null],[0,"default"],[0,false],[4,null],`,
		`[[0,"n10.example.com"],[0,"D"],[0,15744],[0,102400],[0,["g2inst.example.com"]],[0,[]],[0,6],[0,4],[0,true],[0,"g2"],[0,false],`,
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for i, row := range rows {
		if g := mustJSON(row); !strings.HasPrefix(g, want[i]) {
			t.Errorf("row %d:\n got %s\nwant prefix %s", i, g, want[i])
		}
	}
}

func TestGroupAndNetworkFields(t *testing.T) {
	s := testState(t)
	got := mustJSON(query(t, s, ResGroup, []string{"name", "node_list", "pinst_list", "custom_ndparams", "ndp/exclusive_storage", "tags"}, nil))
	want := `[[[0,"default"],[0,["n1.example.com","n2.example.com","n3.example.com"]],[0,["lost.example.com","off.example.com","web.example.com","db.example.com"]],[0,{}],[0,false],[0,[]]],` +
		`[[0,"g2"],[0,["n10.example.com"]],[0,["g2inst.example.com"]],[0,{"exclusive_storage":true}],[0,true],[0,["gt"]]]]`
	// pinst_list is NiceSorted.
	want = strings.Replace(want, `"lost.example.com","off.example.com","web.example.com","db.example.com"`, `"db.example.com","lost.example.com","off.example.com","web.example.com"`, 1)
	if got != want {
		t.Errorf("groups:\n got %s\nwant %s", got, want)
	}
	got = mustJSON(query(t, s, ResNetwork, []string{"name", "map", "free_count", "reserved_count", "external_reservations",
		"inst_list", "group_list", "group_cnt", "mac_prefix", "network6"}, nil))
	want = `[[[0,"net1"],[0,"XXX..X........XX"],[0,10],[0,6],[0,"10.0.0.0, 10.0.0.1, 10.0.0.14, 10.0.0.15"],` +
		`[0,["g2inst.example.com","web.example.com"]],[0,[["default","routed","rt1",""],["g2","bridged","br9",""]]],[0,2],[0,"aa:11:22"],[3,null]]]`
	if got != want {
		t.Errorf("networks:\n got %s\nwant %s", got, want)
	}
}

func TestFilterAndExportRows(t *testing.T) {
	s := testState(t)
	if got := strings.Join(s.Names(ResFilter), " "); got != "00000000-0000-4000-8000-000000000001 00000000-0000-4000-8000-000000000002" {
		t.Errorf("filter uuids %s", got)
	}
	got := mustJSON(query(t, s, ResFilter, rlibFields(ResFilter), nil))
	want := `[[[0,0],[0,0],[0,[]],[0,"REJECT"],[0,[]],[0,"00000000-0000-4000-8000-000000000001"]],` +
		`[[0,0],[0,1],[0,[["opcode",["=","OP_ID","OP_TAGS_SET"]]]],[0,["RATE_LIMIT",3]],[0,[]],[0,"00000000-0000-4000-8000-000000000002"]]]`
	if got != want {
		t.Errorf("filters:\n got %s\nwant %s", got, want)
	}
	got = mustJSON(query(t, s, ResExport, []string{"node", "export"}, nil))
	want = `[[[0,"n1.example.com"],[0,"a.example.com"]],[[0,"n1.example.com"],[0,"b.example.com"]],` +
		`[[0,"n2.example.com"],[0,"old.example.com"]],[[0,"n3.example.com"],[4,null]]]`
	if got != want {
		t.Errorf("exports:\n got %s\nwant %s", got, want)
	}
}

func TestQueryFilters(t *testing.T) {
	s := testState(t)
	tests := []struct {
		res    string
		filter string
		want   string // names, space separated
	}{
		{ResInstance, `null`, "db g2inst lost off web"},
		{ResInstance, `["=", "name", "web.example.com"]`, "web"},
		{ResInstance, `["==", "name", "web"]`, "web"},
		{ResInstance, `["|", ["=", "name", "web"], ["=", "name", "db"]]`, "web db"},
		{ResInstance, `["!=", "name", "web"]`, "db g2inst lost off"},
		{ResInstance, `["=", "pnode", "n1"]`, "off web"},
		{ResInstance, `["=", "status", "running"]`, "g2inst web"},
		{ResInstance, `["?", "admin_up"]`, "g2inst lost web"},
		{ResInstance, `["!", ["?", "admin_up"]]`, "db off"},
		{ResInstance, `["?", "oper_state"]`, "g2inst lost web"}, // lost has no data: passes
		{ResInstance, `["&", ["?", "oper_state"], ["=", "disk_template", "drbd"]]`, "web"},
		{ResInstance, `["&"]`, "db g2inst lost off web"},
		{ResInstance, `["|"]`, ""},
		{ResInstance, `[">", "disk_usage", 1000]`, "db web"},
		{ResInstance, `["<=", "be/maxmem", 128]`, "db g2inst lost off"},
		{ResInstance, `[">=", "ctime", 1700000000]`, "db g2inst lost off web"},
		{ResInstance, `["<", "ctime", 1700000000]`, ""},
		{ResInstance, `["=~", "name", "^(db|web)\\."]`, "db web"},
		{ResInstance, `["=~", "os", "deb"]`, "web"},
		{ResInstance, `["=[]", "tags", "a"]`, "web"},
		{ResInstance, `["=[]", "disk.sizes", 4096]`, "db"},
		{ResInstance, `["=[]", "nic.ips", "10.0.0.5"]`, "g2inst"},
		{ResInstance, `["=", "oper_ram", 1024]`, "db lost off web"}, // cells without data pass
		{ResNode, `["=", "role", "C"]`, "n2"},
		{ResNode, `["?", "offline"]`, "n3"},
		{ResNode, `["=", "name", "n1"]`, "n1"},
		{ResNode, `["=", "group", "g2"]`, "n10"},
		{ResGroup, `["=", "alloc_policy", "preferred"]`, "default g2"},
		{ResNetwork, `[">", "free_count", 5]`, "net1"},
		{ResExport, `["=", "node", "n1"]`, "n1 n1"},
	}
	for _, tc := range tests {
		t.Run(tc.res+" "+tc.filter, func(t *testing.T) {
			var filter any
			if err := json.Unmarshal([]byte(tc.filter), &filter); err != nil {
				t.Fatal(err)
			}
			nameField := "name"
			if tc.res == ResExport {
				nameField = "node"
			}
			rows := query(t, s, tc.res, []string{nameField}, filter)
			var names []string
			for _, r := range rows {
				names = append(names, strings.SplitN(r[0].([]any)[1].(string), ".", 2)[0])
			}
			if got := strings.Join(names, " "); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestQueryFilterErrors(t *testing.T) {
	s := testState(t)
	tests := []struct{ filter, want string }{
		{`"name"`, "Cannot deserialise filter: expected array [string, args], got \"name\""},
		{`[]`, "Cannot deserialise filter"},
		{`[1, 2]`, "Cannot deserialise filter"},
		{`["~~", "name"]`, "Unknown filter operand '~~'"},
		{`["=", "name"]`, "Cannot deserialise field/value pair, expected [fieldname, value]"},
		{`["=", 1, "x"]`, "Cannot deserialise field/value pair"},
		{`["=", "name", true]`, "Cannot deserialise filter value, expecting string or integer, got true"},
		{`["=", "name", null]`, "Cannot deserialise filter value"},
		{`["=", "disk_usage", 1.5]`, "expecting integral but got a fractional value: 1.5"},
		{`["!"]`, "expected [filter]"},
		{`["!", ["=", "name", "x"], ["=", "name", "y"]]`, "expected [filter]"},
		{`["?"]`, "expected [fieldname]"},
		{`["?", "nosuchfield"]`, "Can't find field named 'nosuchfield'"},
		{`["&", ["=", "nosuch", 1]]`, "Can't find field named 'nosuch'"},
		{`["=~", "name", "("]`, "Invalid regular expression"},
		{`["=~", "name", 1]`, "Regular expression must be a string"},
		{`["?", "name"]`, "Unexpected value '\"db.example.com\"' in boolean context"},
		{`["=", "disk_usage", "big"]`, "Invalid types in comparison, trying to compare 4096 with '\"big\"'"},
		{`["<", "name", 3]`, "Invalid types in comparison"},
		{`["=~", "disk_usage", "1"]`, "Invalid field value used in regexp matching, expecting string"},
		{`["=[]", "name", "x"]`, "expecting a list"},
		{strings.Repeat(`["!", `, 100) + `null` + strings.Repeat(`]`, 100), "nested deeper than 64 levels"},
	}
	for _, tc := range tests {
		var filter any
		if err := json.Unmarshal([]byte(tc.filter), &filter); err != nil {
			t.Fatal(err)
		}
		_, err := s.Query(ResInstance, []string{"name"}, filter)
		e, ok := errs.As(err)
		if !ok || e.Code != errs.CodeInval || e.Class != errs.ClassQuery {
			t.Errorf("filter %s: error %v, want a wrong_input QueryFilterParseError", tc.filter, err)
			continue
		}
		if !strings.Contains(e.Msg, tc.want) {
			t.Errorf("filter %s:\n got %q\nwant it to contain %q", tc.filter, e.Msg, tc.want)
		}
	}
}

func TestQueryErrors(t *testing.T) {
	s := testState(t)
	check := func(what string, err error, code errs.Code, msg string) {
		t.Helper()
		e, ok := errs.As(err)
		if !ok || e.Code != code || e.Msg != msg {
			t.Errorf("%s: %v, want %s %q", what, err, code, msg)
		}
	}
	_, err := s.Query("nosuchresource", []string{"name"}, nil)
	check("unknown resource", err, errs.CodeInval, "Unknown query resource 'nosuchresource'")
	_, err = s.Query("os", []string{"name"}, nil)
	check("os", err, errs.CodeInval, "Resource 'os' is not available via RAPI")
	_, err = s.FieldDefs("cluster", nil)
	check("cluster fields", err, errs.CodeInval, "Resource 'cluster' is not available via RAPI")
	_, err = s.Query(ResInstance, []string{"name"}, []any{"=", "name", "nosuch"})
	check("names filter", err, errs.CodeNoEnt, "Instance 'nosuch' not known")
	for res, kind := range map[string]string{ResInstance: "Instance", ResNode: "Node", ResGroup: "Group", ResNetwork: "Network", ResFilter: "Filter"} {
		_, err = s.Get(res, "x", []string{"name"})
		check("Get "+res, err, errs.CodeNoEnt, kind+" 'x' not known")
		_, err = object(s, res, "x")
		check("Object "+res, err, errs.CodeNoEnt, kind+" 'x' not known")
	}
	_, err = s.Tags(TagInstance, "x")
	check("tags", err, errs.CodeNoEnt, "Instance 'x' not known")
	_, err = s.Tags("disk", "x")
	check("tag kind", err, errs.CodeInval, "Invalid tag kind 'disk'")
	_, err = s.NodeRole("x")
	check("role", err, errs.CodeNoEnt, "Node 'x' not known")
	_, err = s.Get(ResJob, "1", []string{"id"})
	if err == nil {
		t.Errorf("Get of a job should fail: jobs are the job engine's")
	}
}

func TestLookups(t *testing.T) {
	s := testState(t)
	n1 := s.nodeByName["n1.example.com"]
	for _, name := range []string{"n1.example.com", "n1", n1.UUID} {
		if role, err := s.NodeRole(name); err != nil || role != RoleMaster {
			t.Errorf("NodeRole(%q) = %q, %v", name, role, err)
		}
	}
	// "n1" must not match n10 and an ambiguous prefix matches nothing.
	if _, err := s.node("n"); err == nil {
		t.Errorf("lookup of a non-component prefix succeeded")
	}
	tags, err := s.Tags(TagNode, "n1")
	if err != nil || mustJSON(tags) != `["rack1"]` {
		t.Errorf("node tags %v %v", tags, err)
	}
	if tags, _ := s.Tags(TagCluster, ""); mustJSON(tags) != `["t1"]` {
		t.Errorf("cluster tags %v", tags)
	}
	if got := mustJSON(s.OSNames()); got != `["deb+min","deb+full","noop"]` {
		t.Errorf("OSNames = %s", got)
	}
	units, err := s.StorageUnits("n1", "lvm-vg")
	if err != nil || len(units) != 1 || units[0].Name != "xenvg" || units[0].Free != 96672 || units[0].Used != 3328 {
		t.Errorf("StorageUnits = %+v, %v", units, err)
	}
	if units, _ := s.StorageUnits("n1", "rados"); len(units) != 0 {
		t.Errorf("rados units = %+v", units)
	}
}

// TestValuesAreFresh makes sure callers cannot change the state through
// values they got.
func TestValuesAreFresh(t *testing.T) {
	s := testState(t)
	fields := []string{"beparams", "custom_beparams", "hvparams", "tags", "nic.macs", "custom_nicparams"}
	before := mustJSON(query(t, s, ResInstance, fields, nil))
	r, _ := s.Query(ResInstance, fields, nil)
	for _, row := range r.Data {
		row[0].Value.(map[string]any)["maxmem"] = int64(-1)
		row[1].Value.(map[string]any)["x"] = 1
		row[2].Value.(map[string]any)["y"] = 2
		if tags := row[3].Value.([]string); len(tags) > 0 {
			tags[0] = "changed"
		}
		row[4].Value.([]any)[0] = "changed"
		for _, p := range row[5].Value.([]any) {
			p.(map[string]any)["mode"] = "changed"
		}
	}
	info := s.Info()
	info["hvparams"].(map[string]any)["fake"].(map[string]any)["migration_mode"] = "changed"
	info["ipolicy"].(map[string]any)["std"].(map[string]any)["disk-size"] = int64(1)
	if after := mustJSON(query(t, s, ResInstance, fields, nil)); after != before {
		t.Errorf("query values were shared with the state")
	}
	if s.Info()["hvparams"].(map[string]any)["fake"].(map[string]any)["migration_mode"] != "live" ||
		s.Info()["ipolicy"].(map[string]any)["std"].(map[string]any)["disk-size"] != int64(1024) {
		t.Errorf("Info values were shared with the state")
	}
	o, _ := object(s, ResInstance, "web")
	if o["beparams"].(map[string]any)["memory"] != int64(1024) {
		t.Errorf("Object beparams lack the memory alias: %v", o["beparams"])
	}
	if q := query(t, s, ResInstance, []string{"beparams"}, []any{"=", "name", "web"}); mustJSON(q) != `[[[0,{"always_failover":false,"auto_balance":true,"maxmem":1024,"memory":1024,"minmem":512,"spindle_use":1,"vcpus":2}]]]` {
		t.Errorf("query beparams lack the rlib2 memory alias: %s", mustJSON(q))
	}
}

type testRow map[string]Cell

func (r testRow) Field(name string) Cell {
	if c, ok := r[name]; ok {
		return c
	}
	return Cell{Status: StatusUnavail}
}

func TestRowSources(t *testing.T) {
	m := modelFromJSON(t, testCluster)
	if rows := query(t, m.State(), ResJob, []string{"id"}, nil); len(rows) != 0 {
		t.Errorf("jobs without a source: %v", rows)
	}
	src := RowSourceFunc(func() []Row {
		return []Row{
			testRow{"id": normal(int64(1)), "status": normal("success"), "received_ts": normal([]any{int64(100), int64(5)})},
			testRow{"id": normal(int64(2)), "status": normal("error"), "received_ts": normal([]any{int64(200), int64(7)})},
		}
	})
	if err := m.SetRowSource(ResJob, src); err != nil {
		t.Fatal(err)
	}
	if err := m.SetRowSource(ResNode, src); err == nil {
		t.Errorf("a row source for nodes was accepted")
	}
	s := m.State()
	got := mustJSON(query(t, s, ResJob, []string{"id", "status", "received_ts", "nosuch"}, nil))
	if want := `[[[0,1],[0,"success"],[0,[100,5]],[1,null]],[[0,2],[0,"error"],[0,[200,7]],[1,null]]]`; got != want {
		t.Errorf("jobs:\n got %s\nwant %s", got, want)
	}
	got = mustJSON(query(t, s, ResJob, []string{"id"}, []any{">", "received_ts", float64(150)}))
	if got != `[[[0,2]]]` {
		t.Errorf("timestamp filter: %s", got)
	}
	got = mustJSON(query(t, s, ResJob, []string{"id"}, []any{"=", "status", "success"}))
	if got != `[[[0,1]]]` {
		t.Errorf("status filter: %s", got)
	}
	if err := m.SetRowSource(ResJob, nil); err != nil {
		t.Fatal(err)
	}
	if rows := query(t, s, ResJob, []string{"id"}, nil); len(rows) != 0 {
		t.Errorf("jobs after unregistering: %v", rows)
	}
}

func TestFieldDefs(t *testing.T) {
	s := testState(t)
	defs, err := s.FieldDefs(ResNode, []string{"name", "nosuch"})
	if err != nil {
		t.Fatal(err)
	}
	want := []FieldDef{
		{Name: "name", Title: "Node", Kind: "text", Doc: "Node name"},
		{Name: "nosuch", Title: "nosuch", Kind: "unknown", Doc: "Unknown field 'nosuch'"},
	}
	if !reflect.DeepEqual(defs, want) {
		t.Errorf("FieldDefs = %+v", defs)
	}
	all, _ := s.FieldDefs(ResInstance, nil)
	for i := 1; i < len(all); i++ {
		if !niceLess(all[i-1].Name, all[i].Name) {
			t.Errorf("field list not NiceSorted at %s, %s", all[i-1].Name, all[i].Name)
		}
	}
	// Rows of a query with no fields.
	r, err := s.Query(ResNode, nil, nil)
	if err != nil || len(r.Data) != 4 || len(r.Data[0]) != 0 {
		t.Errorf("no-field query: %+v %v", r, err)
	}
}

func TestNiceSort(t *testing.T) {
	in := []string{"node10", "node9", "node1", "a", "node01", "b2c10", "b2c9", "10", "9", "", "disk.size/10", "disk.size/2", "disk.sizes"}
	niceSort(in)
	want := "|9|10|a|b2c9|b2c10|disk.size/2|disk.size/10|disk.sizes|node1|node01|node9|node10"
	if got := strings.Join(in, "|"); got != want {
		t.Errorf("niceSort = %s\nwant      %s", got, want)
	}
}

func TestJSONDiff(t *testing.T) {
	got := map[string]any{"a": 1.0, "b": []any{"x"}, "c": true}
	want := map[string]any{"a": 2.0, "b": []any{"x", "y"}, "d": nil}
	diff := jsonDiff("$", got, want)
	if len(diff) != 4 {
		t.Errorf("jsonDiff found %d differences, want 4: %v", len(diff), diff)
	}
}
