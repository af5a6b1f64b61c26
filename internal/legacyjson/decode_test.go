package legacyjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson/testdata/testpb"
)

func failsValidation(param string) string {
	return `Invalid body parameters: ("Parameter 'OP_TEST_RENAME.` + param + `' fails validation", 'wrong_input')`
}

// decodeBody runs a body through the gateway path (Marshaler.Unmarshal).
func decodeBody(msg proto.Message, body string) error {
	return Marshaler{}.Unmarshal([]byte(body), msg)
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
		return
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Errorf("error = %v (%T), want *DecodeError %q", err, err, want)
		return
	}
	if de.Msg != want {
		t.Errorf("error = %q\n          want %q", de.Msg, want)
	}
}

func TestOpcodeErrors(t *testing.T) {
	for _, tc := range []struct {
		body string
		want string // "" = accepted
	}{
		// Ganeti's captured examples.
		{`{"bogus": 1}`, `Invalid body parameters: Object OpTestRename doesn't support the parameter 'bogus'`},
		{`{"new_name": 5}`, failsValidation("new_name")},
		{`[]`, `Body contents: Type is 'list', but 'dict' is expected`},
		// Body types.
		{`"x"`, `Body contents: Type is 'str', but 'dict' is expected`},
		{`1`, `Body contents: Type is 'int', but 'dict' is expected`},
		{`1.5`, `Body contents: Type is 'float', but 'dict' is expected`},
		{`true`, `Body contents: Type is 'bool', but 'dict' is expected`},
		{`null`, ``},
		{`{}`, ``},
		// Unknown keys are reported in body order, before any value check.
		{`{"zzz": 1, "aaa": 2}`, `Invalid body parameters: Object OpTestRename doesn't support the parameter 'zzz'`},
		{`{"new_name": 5, "instanceName": "x"}`, `Invalid body parameters: Object OpTestRename doesn't support the parameter 'instanceName'`},
		{`{"dry-run": true}`, `Invalid body parameters: Object OpTestRename doesn't support the parameter 'dry-run'`},
		// Values are checked in field-number order.
		{`{"tags": [""], "new_name": ""}`, failsValidation("new_name")},
		// Strings, non_empty, nullable.
		{`{"new_name": "z", "instance_name": "x"}`, ``},
		{`{"new_name": ""}`, failsValidation("new_name")},
		{`{"new_name": null}`, failsValidation("new_name")},
		{`{"instance_uuid": null}`, ``},
		{`{"instance_uuid": ""}`, failsValidation("instance_uuid")},
		{`{"instance_name": ""}`, ``},
		{`{"comment": null}`, ``},
		{`{"comment": ["x"]}`, failsValidation("comment")},
		// Bools.
		{`{"name_check": false}`, ``},
		{`{"name_check": 1}`, failsValidation("name_check")},
		{`{"name_check": "true"}`, failsValidation("name_check")},
		{`{"name_check": null}`, failsValidation("name_check")},
		{`{"dry_run": null}`, ``},
		{`{"ignore-offline": true}`, ``},
		// Integers: Python ints only, bounds inclusive.
		{`{"debug_level": 0}`, ``},
		{`{"debug_level": null}`, ``},
		{`{"debug_level": -1}`, failsValidation("debug_level")},
		{`{"debug_level": 1.0}`, failsValidation("debug_level")},
		{`{"debug_level": 1e2}`, failsValidation("debug_level")},
		{`{"debug_level": true}`, failsValidation("debug_level")},
		{`{"debug_level": "1"}`, failsValidation("debug_level")},
		{`{"debug_level": 99999999999999999999}`, failsValidation("debug_level")},
		{`{"disk_index": 15}`, ``},
		{`{"disk_index": 16}`, failsValidation("disk_index")},
		{`{"count": 100}`, ``},
		{`{"count": 101}`, failsValidation("count")},
		{`{"count": -1}`, failsValidation("count")},
		{`{"indices": [0, 3]}`, ``},
		{`{"indices": [4]}`, failsValidation("indices")},
		{`{"timeout": 5}`, ``},
		{`{"timeout": null}`, ``},
		{`{"timeout": -1}`, failsValidation("timeout")},
		{`{"timeout": "5"}`, failsValidation("timeout")},
		// Floats: ints accepted.
		{`{"ratio": 1}`, ``},
		{`{"ratio": 0.5}`, ``},
		{`{"ratio": -0.5}`, failsValidation("ratio")},
		{`{"ratio": NaN}`, failsValidation("ratio")},
		{`{"ratio": true}`, failsValidation("ratio")},
		{`{"ratio": "1"}`, failsValidation("ratio")},
		// Enums: legacy values only, numbers compare like Python's ==.
		{`{"priority": -10}`, ``},
		{`{"priority": 0}`, ``},
		{`{"priority": -10.0}`, ``},
		{`{"priority": false}`, ``},
		{`{"priority": true}`, failsValidation("priority")},
		{`{"priority": 5}`, failsValidation("priority")},
		{`{"priority": "0"}`, failsValidation("priority")},
		{`{"priority": "PRIORITY_LOW"}`, failsValidation("priority")},
		{`{"disk_template": "drbd"}`, ``},
		{`{"disk_template": "DISK_TEMPLATE_DRBD"}`, failsValidation("disk_template")},
		{`{"disk_template": "DISK_TEMPLATE_UNSPECIFIED"}`, failsValidation("disk_template")},
		{`{"disk_template": null}`, failsValidation("disk_template")},
		{`{"disk_template": 1}`, failsValidation("disk_template")},
		{`{"maybe_template": null}`, ``},
		// Lists and tuples.
		{`{"tags": ["a", "b"]}`, ``},
		{`{"tags": []}`, ``},
		{`{"tags": [""]}`, failsValidation("tags")},
		{`{"tags": [1]}`, failsValidation("tags")},
		{`{"tags": null}`, failsValidation("tags")},
		{`{"tags": "a"}`, failsValidation("tags")},
		{`{"depends": null}`, ``},
		{`{"depends": [[1, ["success"]], [-2, []], ["3", ["error", "canceled"]]]}`, ``},
		{`{"depends": [[1]]}`, failsValidation("depends")},
		{`{"depends": [[1, ["bogus"]]]}`, failsValidation("depends")},
		{`{"depends": [[1, "success"]]}`, failsValidation("depends")},
		{`{"depends": {}}`, failsValidation("depends")},
		{`{"when": [1, 2]}`, ``},
		{`{"when": null}`, ``},
		{`{"when": [1]}`, failsValidation("when")},
		{`{"when": [1, 2, 3]}`, failsValidation("when")},
		{`{"when": [1, 2.5]}`, failsValidation("when")},
		{`{"when": {"seconds": 1}}`, failsValidation("when")},
		// Struct / ListValue / Value / maps.
		{`{"reason": null}`, ``},
		{`{"reason": [["gnt:user", "", 1795376099172802304]]}`, ``},
		{`{"reason": {}}`, failsValidation("reason")},
		{`{"osparams_private": {"a": [1, {"b": null}]}}`, ``},
		{`{"osparams_private": null}`, ``},
		{`{"osparams_private": []}`, failsValidation("osparams_private")},
		{`{"osparams": {"a": "b"}}`, ``},
		{`{"osparams": {"a": 1}}`, failsValidation("osparams")},
		{`{"osparams": {"a": null}}`, failsValidation("osparams")},
		{`{"target": "x"}`, ``},
		{`{"target": [1, "a"]}`, ``},
		{`{"target": null}`, ``},
		// Nested messages are strict inside opcodes.
		{`{"nic": {"mac": "aa:bb"}}`, ``},
		{`{"nic": null}`, ``},
		{`{"nic": {"bogus": 1}}`, failsValidation("nic")},
		{`{"nic": {"mac": 1}}`, failsValidation("nic")},
		{`{"nic": "eth0"}`, failsValidation("nic")},
		{`{"nics": [{}, {"ip": null}]}`, ``},
		{`{"nics": [null]}`, failsValidation("nics")},
		// Keys without (param) spec accept null.
		{`{"OP_ID": "OP_TEST_RENAME"}`, ``},
		{`{"OP_ID": null}`, ``},
		{`{"OP_ID": 1}`, failsValidation("OP_ID")},
		// A nested opcode reports its own errors.
		{`{"children": [{"name": "a"}]}`, ``},
		{`{"children": [{"name": ""}]}`, `Invalid body parameters: ("Parameter 'OP_TEST_CHILD.name' fails validation", 'wrong_input')`},
		{`{"children": [{"bogus": 1}]}`, `Invalid body parameters: Object OpTestChild doesn't support the parameter 'bogus'`},
		{`{"children": ["x"]}`, failsValidation("children")},
	} {
		t.Run(tc.body, func(t *testing.T) {
			checkErr(t, decodeBody(&testpb.OpTestRename{}, tc.body), tc.want)
		})
	}
}

func TestAddressFormats(t *testing.T) {
	for _, tc := range []struct {
		param, value string
		ok           bool
	}{
		{"ip", "192.0.2.1", true},
		{"ip", "0.0.0.0", true},
		{"ip", "255.255.255.255", true},
		{"ip", "192.0.2.01", false},
		{"ip", "256.1.1.1", false},
		{"ip", "1.2.3", false},
		{"ip", "1.2.3.4.5", false},
		{"ip", "1.2.3.4/32", false},
		{"ip", " 1.2.3.4", false},
		{"ip", "::1", false},
		{"ip", "", false},
		{"ip6", "::1", true},
		{"ip6", "2001:db8::1", true},
		{"ip6", "::ffff:1.2.3.4", true},
		{"ip6", "fe80::1%eth0", true},
		{"ip6", "1.2.3.4", false},
		{"ip6", ":::", false},
		{"ip6", "2001:db8::1/64", false},
		{"ip6", "12345::", false},
		{"network", "10.0.0.0/8", true},
		{"network", "10.0.0.0", true},
		{"network", "0.0.0.0/0", true},
		{"network", "10.0.0.1/32", true},
		{"network", "10.0.0.0/255.0.0.0", true},
		{"network", "10.0.0.0/0.255.255.255", true},
		{"network", "10.0.0.0/08", true},
		{"network", "10.0.0.1/8", false},
		{"network", "10.0.0.0/33", false},
		{"network", "10.0.0.0/", false},
		{"network", "10.0.0.0/8/8", false},
		{"network", "10.0.0.0/255.0.255.0", false},
		{"network", "10.0.0.0/-8", false},
		{"network", "10.0.0/8", false},
		{"network6", "2001:db8::/32", true},
		{"network6", "2001:db8::", true},
		{"network6", "::/0", true},
		{"network6", "2001:db8::1/32", false},
		{"network6", "2001:db8::/129", false},
		{"network6", "2001:db8::/ffff::", false},
		{"network6", "10.0.0.0/8", false},
	} {
		body, _ := json.Marshal(map[string]string{tc.param: tc.value})
		want := ""
		if !tc.ok {
			want = failsValidation(tc.param)
		}
		t.Run(tc.param+"="+tc.value, func(t *testing.T) {
			checkErr(t, decodeBody(&testpb.OpTestRename{}, string(body)), want)
		})
	}
}

func TestOpcodeDecodedValues(t *testing.T) {
	var op testpb.OpTestRename
	err := decodeBody(&op, `{"new_name": "z", "priority": false, "instance_uuid": null, "dry_run": true,
		"depends": [[-1, ["success"]]], "ratio": 2, "when": [3, 4], "tags": ["a"], "reason": [["a", "", 5]],
		"nic": {"mac": "m"}, "ip": "192.0.2.1", "timeout": 0, "OP_ID": "OP_TEST_RENAME", "secret": "pw"}`)
	if err != nil {
		t.Fatal(err)
	}
	reason, _ := structpb.NewList([]any{[]any{"a", "", 5}})
	want := &testpb.OpTestRename{
		NewName:  "z",
		Priority: testpb.Priority_PRIORITY_NORMAL,
		DryRun:   proto.Bool(true),
		Depends:  []*testpb.Dependency{{JobId: structpb.NewNumberValue(-1), Statuses: []testpb.JobStatus{testpb.JobStatus_JOB_STATUS_SUCCESS}}},
		Ratio:    proto.Float64(2),
		When:     &testpb.Timestamp{Seconds: 3, Microseconds: 4},
		Tags:     []string{"a"},
		Reason:   reason,
		Nic:      &testpb.Nic{Mac: proto.String("m")},
		Ip:       proto.String("192.0.2.1"),
		Timeout:  wrapperspb.Int64(0),
		OpId:     "OP_TEST_RENAME",
		Secret:   proto.String("pw"),
	}
	equalProto(t, &op, want)
}

func TestCheckRequired(t *testing.T) {
	op := &testpb.OpTestRename{}
	checkErr(t, CheckRequired(op), failsValidation("instance_name"))
	op.InstanceName = "x"
	checkErr(t, CheckRequired(op), failsValidation("new_name"))
	op.NewName = "y"
	checkErr(t, CheckRequired(op), failsValidation("disk_index"))
	op.DiskIndex = proto.Int64(0) // optional: zero is a value
	checkErr(t, CheckRequired(op), "")
	checkErr(t, CheckRequired(&testpb.OpTestChild{}), `Invalid body parameters: ("Parameter 'OP_TEST_CHILD.name' fails validation", 'wrong_input')`)
	checkErr(t, CheckRequired(&testpb.Everything{}), "")
	checkErr(t, CheckRequired(nil), "")
	checkErr(t, CheckRequired((*testpb.OpTestRename)(nil)), failsValidation("instance_name"))
	// Decoding does not check required parameters.
	checkErr(t, decodeBody(&testpb.OpTestRename{}, `{}`), "")
}

func TestPlainMessageErrors(t *testing.T) {
	for _, tc := range []struct {
		body string
		want string
	}{
		{`{"bogus": 1, "name": "x"}`, ``},
		{`{"name": 5}`, `'name' parameter: Type is 'int', but 'str' is expected`},
		{`{"name": null}`, ``},
		{`{"admin_state": "yes"}`, `'admin_state' parameter: Type is 'str', but 'bool' is expected`},
		{`{"disk_template": "bogus"}`, `Invalid value for the 'disk_template' parameter`},
		{`{"disk_template": "DISK_TEMPLATE_DRBD"}`, `Invalid value for the 'disk_template' parameter`},
		{`{"disk_template": "DISK_TEMPLATE_UNSPECIFIED"}`, ``},
		{`{"disk_template": 1}`, `'disk_template' parameter: Type is 'int', but 'str' is expected`},
		{`{"priority": "x"}`, `'priority' parameter: Type is 'str', but 'int' is expected`},
		{`{"priority": 3}`, `Invalid value for the 'priority' parameter`},
		{`{"color": "COLOR_RED"}`, ``},
		{`{"color": "red"}`, `Invalid value for the 'color' parameter`},
		{`{"ctime": [1]}`, `Invalid value for the 'ctime' parameter`},
		{`{"ctime": [1, "x"]}`, `'ctime' parameter: Type is 'str', but 'int' is expected`},
		{`{"ctime": {}}`, `'ctime' parameter: Type is 'dict', but 'list' is expected`},
		{`{"child": {"name": []}}`, `'name' parameter: Type is 'list', but 'str' is expected`},
		{`{"child": {"child": {"ctime": 1}}}`, `'ctime' parameter: Type is 'int', but 'list' is expected`},
		{`{"u32": -1}`, `Invalid value for the 'u32' parameter`},
		{`{"u64": 18446744073709551615}`, ``},
		{`{"u64": 18446744073709551616}`, `Invalid value for the 'u64' parameter`},
		{`{"small": 3000000000}`, `Invalid value for the 'small' parameter`},
		{`{"big": 1.0}`, ``},
		{`{"big": 1e3}`, ``},
		{`{"big": 1.5}`, `'big' parameter: Type is 'float', but 'int' is expected`},
		{`{"big": 1e300}`, `Invalid value for the 'big' parameter`},
		{`{"ratio": "x"}`, `'ratio' parameter: Type is 'str', but 'float' is expected`},
		{`{"tags": "x"}`, `'tags' parameter: Type is 'str', but 'list' is expected`},
		{`{"tags": null}`, ``},
		{`{"tags": [null]}`, `'tags' parameter: Type is 'NoneType', but 'str' is expected`},
		{`{"labels": []}`, `'labels' parameter: Type is 'list', but 'dict' is expected`},
		{`{"by_index": {"x": "a"}}`, `Invalid value for the 'by_index' parameter`},
		{`{"by_index": {"-3": "a"}}`, ``},
		{`{"hvparams": []}`, `'hvparams' parameter: Type is 'list', but 'dict' is expected`},
		{`{"items": {}}`, `'items' parameter: Type is 'dict', but 'list' is expected`},
		{`{"anything": {"a": [1, null, {"b": NaN}]}}`, ``},
		{`{"w_int": null}`, ``},
		{`{"w_int": "x"}`, `'w_int' parameter: Type is 'str', but 'int' is expected`},
		{`{"blob": "!!"}`, `Invalid value for the 'blob' parameter`},
		{`{"primary_nic": []}`, `'primary_nic' parameter: Type is 'list', but 'dict' is expected`},
		{`{"nics": [null]}`, `'nics' parameter: Type is 'NoneType', but 'dict' is expected`},
		{`{"values": [null, 1, "a"]}`, ``},
		{`{"prio_map": {"a": -10}}`, ``},
		{`{"prio_map": {"a": "x"}}`, `'prio_map' parameter: Type is 'str', but 'int' is expected`},
		{`[1]`, `Body contents: Type is 'list', but 'dict' is expected`},
	} {
		t.Run(tc.body, func(t *testing.T) {
			checkErr(t, decodeBody(&testpb.Everything{}, tc.body), tc.want)
		})
	}
}

func TestTopLevelKinds(t *testing.T) {
	checkErr(t, decodeBody(&testpb.Timestamp{}, `{}`), `Body contents: Type is 'dict', but 'list' is expected`)
	checkErr(t, decodeBody(&testpb.Timestamp{}, `[1]`), `Invalid body contents`)
	checkErr(t, decodeBody(&testpb.Timestamp{}, `[1, "x"]`), `Body contents: Type is 'str', but 'int' is expected`)
	ts := &testpb.Timestamp{}
	checkErr(t, decodeBody(ts, `[1, 2]`), "")
	equalProto(t, ts, &testpb.Timestamp{Seconds: 1, Microseconds: 2})

	sv := &wrapperspb.StringValue{}
	checkErr(t, decodeBody(sv, `"regular"`), "")
	equalProto(t, sv, wrapperspb.String("regular"))
	checkErr(t, decodeBody(&wrapperspb.StringValue{}, `5`), `Body contents: Type is 'int', but 'str' is expected`)
	checkErr(t, decodeBody(&structpb.Struct{}, `[]`), `Body contents: Type is 'list', but 'dict' is expected`)
	checkErr(t, decodeBody(&structpb.ListValue{}, `{}`), `Body contents: Type is 'dict', but 'list' is expected`)
	v := &structpb.Value{}
	checkErr(t, decodeBody(v, `{"a": [1.5, "x", true, null]}`), "")
	want, _ := structpb.NewValue(map[string]any{"a": []any{1.5, "x", true, nil}})
	equalProto(t, v, want)
}

// TestFromDomainValues feeds the Go types a domain layer produces.
func TestFromDomainValues(t *testing.T) {
	type myInt int16
	var nilStr *string
	in := map[string]any{
		"name":           "x",
		"uuid":           nilStr,
		"admin_state":    true,
		"small":          int32(3),
		"big":            int64(1) << 60,
		"u32":            uint(7),
		"u64":            json.Number("12"),
		"s64":            myInt(-4),
		"ratio":          2,
		"f32":            float32(0.5),
		"maybe_int":      7.0, // float64 from a decoder without UseNumber
		"maybe_bool":     new(bool),
		"priority":       -10,
		"maybe_template": named("plain"),
		"tags":           []string{"a", "b"},
		"disk.sizes":     []int64{1, 2},
		"templates":      []string{"drbd"},
		"labels":         map[string]string{"b": "2", "a": "1"},
		"counters":       map[string]int{"c": 3},
		"by_index":       map[int]string{1: "one"},
		"nic_map":        map[string]map[string]any{"eth0": {"mac": "m"}},
		"hvparams":       map[string]any{"x": []string{"y"}, "n": 1, "f": 0.5, "nested": map[string]any{"k": nil}},
		"anything":       []int{1, 2},
		"ctime":          []int64{1, 2},
		"times":          [][]int{{1, 2}},
		"primary_nic":    map[string]any{"mac": named("m")},
		"nics":           []map[string]any{{"ip": "192.0.2.1"}},
		"values":         []any{nil, 1, "s"},
		"depends":        []any{[]any{-1, []string{"success"}}},
		"w_string":       "w",
		"w_double":       1,
		"choice_int":     int64(9),
		"oplog":          []any{[]any{1, []int{2, 3}, "message", "text"}},
	}
	var m testpb.Everything
	if err := FromValue(&m, in); err != nil {
		t.Fatal(err)
	}
	got := mustMarshal(t, Marshaler{OmitUnset: true}, &m)
	want := `{"name":"x","admin_state":true,"small":3,"big":1152921504606846976,"u32":7,"u64":12,"s64":-4,"f64":0,` +
		`"ratio":2.0,"f32":0.5,"maybe_int":7,"maybe_bool":false,"disk_template":null,"maybe_template":"plain",` +
		`"priority":-10,"color":null,"tags":["a","b"],"disk.sizes":[1,2],"nic.bridges":[],"templates":["drbd"],` +
		`"labels":{"a":"1","b":"2"},"counters":{"c":3},"by_index":{"1":"one"},"nic_map":{"eth0":{"mac":"m"}},` +
		`"hvparams":{"f":0.5,"n":1,"nested":{"k":null},"x":["y"]},"anything":[1,2],"w_string":"w","w_double":1.0,` +
		`"ctime":[1,2],"times":[[1,2]],"primary_nic":{"mac":"m"},"nics":[{"ip":"192.0.2.1"}],"dry-run":false,` +
		`"OP_ID":"","blob":"","depends":[[-1,["success"]]],"choice_int":9,"oplog":[[1,[2,3],"message","text"]],` +
		`"values":[null,1,"s"],"prio_map":{}}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	orig := everything()
	v, err := ToValue(orig)
	if err != nil {
		t.Fatal(err)
	}
	var back testpb.Everything
	if err := FromValue(&back, v); err != nil {
		t.Fatal(err)
	}
	equalProto(t, &back, orig)

	// Bytes -> message -> bytes is the identity on Marshal's own output.
	var again testpb.Everything
	if err := decodeBody(&again, everythingJSON); err != nil {
		t.Fatal(err)
	}
	if got := mustMarshal(t, Marshaler{}, &again); got != everythingJSON {
		t.Errorf("re-marshal differs:\n%s", got)
	}

	// An opcode whose unset fields are all nullable survives the trip too.
	op := &testpb.OpTestRename{InstanceName: "a", NewName: "b", Network: proto.String("10.0.0.0/8"),
		DiskTemplate: testpb.DiskTemplate_DISK_TEMPLATE_PLAIN, Priority: testpb.Priority_PRIORITY_LOW,
		Count: proto.Uint32(1), Ratio: proto.Float64(0.5), DiskIndex: proto.Int64(3)}
	ov, err := ToValue(op)
	if err != nil {
		t.Fatal(err)
	}
	var opBack testpb.OpTestRename
	if err := FromValue(&opBack, ov); err != nil {
		t.Fatal(err)
	}
	equalProto(t, &opBack, op)
}

func TestFromValueResets(t *testing.T) {
	m := &testpb.Everything{Name: "old", Tags: []string{"old"}}
	if err := FromValue(m, map[string]any{"tags": []any{"new"}}); err != nil {
		t.Fatal(err)
	}
	equalProto(t, m, &testpb.Everything{Tags: []string{"new"}})
	if err := FromValue(nil, map[string]any{}); err == nil {
		t.Error("FromValue(nil) succeeded")
	}
	if err := FromValue((*testpb.Everything)(nil), map[string]any{}); err == nil {
		t.Error("FromValue(typed nil) succeeded")
	}
}

func TestNullValueAndOneofs(t *testing.T) {
	var m testpb.Everything
	checkErr(t, decodeBody(&m, `{"anything": null, "choice_str": "a", "choice_int": 4}`), "")
	if m.Anything != nil {
		t.Errorf("anything = %v, want unset (null)", m.GetAnything())
	}
	if m.GetChoiceInt() != 4 || m.GetChoiceStr() != "" {
		t.Errorf("oneof: last member wins, got %v", m.GetChoice())
	}
	got := mustMarshal(t, Marshaler{}, &m)
	if !strings.Contains(got, `"choice_int":4`) || strings.Contains(got, `"choice_str"`) {
		t.Errorf("oneof encoding: %s", got)
	}
}

// TestDynamicMessages checks messages that are not generated Go types.
func TestDynamicMessages(t *testing.T) {
	// A descriptor rebuilt from its proto form, as a proxy or registry
	// client would have it: distinct from the generated descriptors.
	fdp := protodesc.ToFileDescriptorProto(testpb.File_testpb_test_proto)
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	md := fd.Messages().ByName("Everything")
	dyn := dynamicpb.NewMessage(md)
	if err := decodeBody(dyn, everythingJSON); err != nil {
		t.Fatal(err)
	}
	if got := mustMarshal(t, Marshaler{}, dyn); got != everythingJSON {
		t.Errorf("dynamic re-marshal differs:\n%s", got)
	}
	b, err := proto.Marshal(dyn)
	if err != nil {
		t.Fatal(err)
	}
	var gen testpb.Everything
	if err := proto.Unmarshal(b, &gen); err != nil {
		t.Fatal(err)
	}
	equalProto(t, &gen, everything())
}
