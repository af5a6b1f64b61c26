package legacyjson

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson/testdata/testpb"
)

// encodeCase is one Marshal expectation.
type encodeCase struct {
	name string
	in   proto.Message
	want string
}

func runEncodeCases(t *testing.T, cases []encodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustMarshal(t, Marshaler{}, tc.in); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// decodeCase decodes body into a new message of the type of want; want is
// the expected message, or err the expected DecodeError text.
type decodeCase struct {
	name string
	body string
	want proto.Message
	err  string
}

func runDecodeCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.want.ProtoReflect().New().Interface()
			err := decodeBody(got, tc.body)
			checkErr(t, err, tc.err)
			if tc.err == "" && err == nil {
				equalProto(t, got, tc.want)
			}
		})
	}
}

func ts(s, us int64) *testpb.Timestamp { return &testpb.Timestamp{Seconds: s, Microseconds: us} }

func TestUnwrapEncode(t *testing.T) {
	runEncodeCases(t, []encodeCase{
		{"empty: first field", &testpb.RefList{}, `[]`},
		{"first form", &testpb.RefList{Refs: []*testpb.Nic{{Mac: proto.String("m")}}}, `[{"mac":"m","ip":null,"mode":null,"link":null}]`},
		{"second form", &testpb.RefList{Times: []*testpb.Timestamp{ts(1, 2)}}, `[[1,2]]`},
		{"first non-empty wins", &testpb.RefList{Refs: []*testpb.Nic{{}}, Times: []*testpb.Timestamp{ts(1, 2)}}, `[{"mac":null,"ip":null,"mode":null,"link":null}]`},
		{"message first field unset", &testpb.UnwrapNic{}, `null`},
		{"message first field set", &testpb.UnwrapNic{Nic: &testpb.Nic{}}, `{"mac":null,"ip":null,"mode":null,"link":null}`},
		{"non-zero scalar", &testpb.UnwrapNic{Count: 3}, `3`},
		{"oneof unset", &testpb.UnwrapChoice{}, `null`},
		{"oneof value", &testpb.UnwrapChoice{Result: &testpb.UnwrapChoice_Value{Value: structpb.NewNumberValue(5)}}, `5`},
		{"oneof null value", &testpb.UnwrapChoice{Result: &testpb.UnwrapChoice_Value{Value: structpb.NewNullValue()}}, `null`},
		{"oneof tuple", &testpb.UnwrapChoice{Result: &testpb.UnwrapChoice_When{When: ts(3, 4)}}, `[3,4]`},
		{"oneof empty string", &testpb.UnwrapChoice{Result: &testpb.UnwrapChoice_Text{}}, `""`},
	})
	// Nested: elements of a repeated field.
	got := mustMarshal(t, Marshaler{}, &testpb.JobLike{Lists: []*testpb.RefList{{}, {Times: []*testpb.Timestamp{ts(1, 0)}}},
		Results: []*testpb.UnwrapChoice{{}, {Result: &testpb.UnwrapChoice_Text{Text: "t"}}}})
	want := `{"id":0,"ops":null,"status":null,"results":[null,"t"],"lists":[[],[[1,0]]],"name":"","mac":null,"ip":null,"mode":null,"link":null,"after":""}`
	if got != want {
		t.Errorf("nested: got  %s\nwant %s", got, want)
	}
	// ToValue gives the bare value too.
	v, err := ToValue(&testpb.RefList{Times: []*testpb.Timestamp{ts(1, 2)}})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := v.([]any); !ok || len(l) != 1 {
		t.Errorf("ToValue = %#v", v)
	}
}

func TestUnwrapDecode(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{name: "empty list", body: `[]`, want: &testpb.RefList{}},
		{name: "null", body: `null`, want: &testpb.RefList{}},
		{name: "first field", body: `[{"mac": "m"}, {}]`, want: &testpb.RefList{Refs: []*testpb.Nic{{Mac: proto.String("m")}, {}}}},
		{name: "not a list", body: `{}`, want: &testpb.RefList{}, err: `Body contents: Type is 'dict', but 'list' is expected`},
		{name: "bad element", body: `[{"mac": 1}]`, want: &testpb.RefList{}, err: `'mac' parameter: Type is 'int', but 'str' is expected`},
		{name: "message first field", body: `{"ip": "x"}`, want: &testpb.UnwrapNic{Nic: &testpb.Nic{Ip: proto.String("x")}}},
		{name: "message first field, wrong type", body: `3`, want: &testpb.UnwrapNic{}, err: `Body contents: Type is 'int', but 'dict' is expected`},
		{name: "oneof: tuple before Value", body: `[1, 2]`, want: &testpb.UnwrapChoice{Result: &testpb.UnwrapChoice_When{When: ts(1, 2)}}},
		{name: "oneof: string before Value", body: `"x"`, want: &testpb.UnwrapChoice{Result: &testpb.UnwrapChoice_Text{Text: "x"}}},
		{name: "oneof: Value takes the rest", body: `[1, 2, 3]`, want: &testpb.UnwrapChoice{Result: &testpb.UnwrapChoice_Value{Value: structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1), structpb.NewNumberValue(2), structpb.NewNumberValue(3)}})}}},
		{name: "oneof: Value object", body: `{"a": true}`, want: &testpb.UnwrapChoice{Result: &testpb.UnwrapChoice_Value{Value: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewBoolValue(true)}})}}},
		{name: "oneof: null is unset", body: `null`, want: &testpb.UnwrapChoice{}},
		{name: "nested elements", body: `{"results": [null, "t", [5, 6]], "lists": [[{}], []]}`, want: &testpb.JobLike{
			Results: []*testpb.UnwrapChoice{{}, {Result: &testpb.UnwrapChoice_Text{Text: "t"}}, {Result: &testpb.UnwrapChoice_When{When: ts(5, 6)}}},
			Lists:   []*testpb.RefList{{Refs: []*testpb.Nic{{}}}, {}},
			Body:    &testpb.InlineNicBody{Nic: &testpb.Nic{}},
		}},
	})
}

func TestEmptyPolicies(t *testing.T) {
	runEncodeCases(t, []encodeCase{
		{"all empty", &testpb.EmptyPolicies{}, `{"null_list":null,"null_map":null,"null_msg":null,"plain":0,"list":[]}`},
		{"all set", &testpb.EmptyPolicies{
			NullList: []string{"a"}, OmitList: []string{"b"}, OmitMsg: &testpb.Nic{}, OmitInt: proto.Int64(0),
			NullMap: map[string]string{"k": "v"}, NullMsg: &testpb.Nic{Mode: proto.String("m")}, Plain: 0,
			OmitTimes: []*testpb.Timestamp{ts(1, 2)}, List: []string{"c"},
		}, `{"null_list":["a"],"omit_list":["b"],"omit_msg":{"mac":null,"ip":null,"mode":null,"link":null},"omit_int":0,` +
			`"null_map":{"k":"v"},"null_msg":{"mac":null,"ip":null,"mode":"m","link":null},"plain":0,"omit_times":[[1,2]],"list":["c"]}`},
	})
	// Python style keeps the separators right when members are left out.
	got := mustMarshal(t, Marshaler{PythonStyle: true}, &testpb.EmptyPolicies{OmitInt: proto.Int64(1)})
	if want := `{"null_list": null, "omit_int": 1, "null_map": null, "null_msg": null, "plain": 0, "list": []}`; got != want {
		t.Errorf("python style: got %s, want %s", got, want)
	}
	// What is written decodes back.
	runDecodeCases(t, []decodeCase{
		{name: "nulls", body: `{"null_list": null, "null_map": null, "null_msg": null, "plain": 0, "list": []}`, want: &testpb.EmptyPolicies{}},
		{name: "values", body: `{"omit_int": 0, "omit_list": ["x"]}`, want: &testpb.EmptyPolicies{OmitInt: proto.Int64(0), OmitList: []string{"x"}}},
	})
}

func TestInline(t *testing.T) {
	runEncodeCases(t, []encodeCase{
		{"inline unset is empty", &testpb.InlineNicBody{Name: "n", After: "a"}, `{"name":"n","mac":null,"ip":null,"mode":null,"link":null,"after":"a"}`},
		{"inline in place", &testpb.InlineNicBody{Name: "n", Nic: &testpb.Nic{Mac: proto.String("m")}, After: "a"},
			`{"name":"n","mac":"m","ip":null,"mode":null,"link":null,"after":"a"}`},
		{"inline first", &testpb.JobLike{Id: 1, Body: &testpb.InlineNicBody{Name: "x"}},
			`{"id":1,"ops":null,"status":null,"name":"x","mac":null,"ip":null,"mode":null,"link":null,"after":""}`},
	})
	got := mustMarshal(t, Marshaler{PythonStyle: true}, &testpb.InlineNicBody{Nic: &testpb.Nic{}})
	if want := `{"name": "", "mac": null, "ip": null, "mode": null, "link": null, "after": ""}`; got != want {
		t.Errorf("python style: got %s, want %s", got, want)
	}

	runDecodeCases(t, []decodeCase{
		{name: "unknown keys go inline", body: `{"mac": "m", "name": "n", "bogus": 1, "after": "a"}`,
			want: &testpb.InlineNicBody{Name: "n", After: "a", Nic: &testpb.Nic{Mac: proto.String("m")}}},
		{name: "inline always set", body: `{}`, want: &testpb.InlineNicBody{Nic: &testpb.Nic{}}},
		{name: "inline field has no key", body: `{"nic": {"mac": "m"}}`, want: &testpb.InlineNicBody{Nic: &testpb.Nic{}}},
		{name: "inline error names the key", body: `{"ip": 5}`, want: &testpb.InlineNicBody{},
			err: `'ip' parameter: Type is 'int', but 'str' is expected`},
		{name: "nested inline", body: `{"id": 2, "name": "n", "link": "br0"}`,
			want: &testpb.JobLike{Id: 2, Body: &testpb.InlineNicBody{Name: "n", Nic: &testpb.Nic{Link: proto.String("br0")}}}},
		// An inline opcode keeps its strictness.
		{name: "inline opcode", body: `{"__version__": 1, "new_name": "b", "instance_name": "a"}`,
			want: &testpb.InlineOpBody{Version: 1, Op: &testpb.OpTestRename{InstanceName: "a", NewName: "b"}}},
		{name: "inline opcode: unknown key", body: `{"__version__": 1, "new_name": "b", "bogus": 1}`, want: &testpb.InlineOpBody{},
			err: `Invalid body parameters: Object OpTestRename doesn't support the parameter 'bogus'`},
		{name: "inline opcode: own key unknown", body: `{"op": {}}`, want: &testpb.InlineOpBody{},
			err: `Invalid body parameters: Object OpTestRename doesn't support the parameter 'op'`},
		{name: "inline opcode: validation", body: `{"__version__": 1, "new_name": ""}`, want: &testpb.InlineOpBody{},
			err: failsValidation("new_name")},
		{name: "inline opcode: parent key checked", body: `{"__version__": "1"}`, want: &testpb.InlineOpBody{},
			err: `'__version__' parameter: Type is 'str', but 'int' is expected`},
	})

	// CheckRequired looks into the inline message.
	var body testpb.InlineOpBody
	checkErr(t, decodeBody(&body, `{"__version__": 1, "new_name": "b"}`), "")
	checkErr(t, CheckRequired(&body), failsValidation("instance_name"))
	checkErr(t, CheckRequired(&testpb.InlineOpBody{}), "")

	// Round trip through the encoder.
	orig := &testpb.InlineOpBody{Version: 1, Op: &testpb.OpTestRename{InstanceName: "a", NewName: "b", Network: proto.String("10.0.0.0/8"),
		DiskTemplate: testpb.DiskTemplate_DISK_TEMPLATE_PLAIN, Priority: testpb.Priority_PRIORITY_LOW,
		Count: proto.Uint32(1), Ratio: proto.Float64(0.5), DiskIndex: proto.Int64(3)}}
	v, err := ToValue(orig)
	if err != nil {
		t.Fatal(err)
	}
	if obj := v.(Object); obj[0].Key != "__version__" || obj[1].Key != "instance_name" {
		t.Errorf("inline keys: %v, %v", obj[0].Key, obj[1].Key)
	}
	var back testpb.InlineOpBody
	if err := FromValue(&back, v); err != nil {
		t.Fatal(err)
	}
	equalProto(t, &back, orig)
}

func TestStrictObject(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{name: "known keys", body: `{"priority": 1, "action": "ACCEPT"}`,
			want: &testpb.StrictSpec{Priority: proto.Int64(1), Action: structpb.NewStringValue("ACCEPT")}},
		{name: "unknown key", body: `{"priority": 1, "uuid": "x"}`, want: &testpb.StrictSpec{},
			err: `Invalid body parameters: test rule doesn't support the parameter 'uuid'`},
		// Keys are checked in body order, before values.
		{name: "first unknown key, before values", body: `{"priority": "x", "zz": 1, "aa": 2}`, want: &testpb.StrictSpec{},
			err: `Invalid body parameters: test rule doesn't support the parameter 'zz'`},
		{name: "value error", body: `{"priority": "x"}`, want: &testpb.StrictSpec{},
			err: `'priority' parameter: Type is 'str', but 'int' is expected`},
		// Strictness does not reach nested plain messages.
		{name: "nested message lax", body: `{"nic": {"bogus": 1}}`, want: &testpb.StrictSpec{Nic: &testpb.Nic{}}},
	})
}

func TestTupleTrailing(t *testing.T) {
	code := testpb.DiskTemplate_DISK_TEMPLATE_DRBD.Enum()
	runEncodeCases(t, []encodeCase{
		{"args with code", &testpb.ErrArgs{Message: "m", Code: code}, `["m","drbd"]`},
		{"args without code", &testpb.ErrArgs{Message: "m"}, `["m"]`},
		{"args with a null code", &testpb.ErrArgs{Message: "m", Code: testpb.DiskTemplate_DISK_TEMPLATE_UNSPECIFIED.Enum()}, `["m"]`},
		{"error", &testpb.ErrTuple{ErrorClass: "OpPrereqError", Args: &testpb.ErrArgs{Message: "m", Code: code}}, `["OpPrereqError",["m","drbd"]]`},
		{"error without args", &testpb.ErrTuple{ErrorClass: "E"}, `["E"]`},
		{"middle unset kept", &testpb.ErrTuple{ErrorClass: "E", Extra: wrapperspb.Int64(5)}, `["E",null,5]`},
		{"empty", &testpb.ErrTuple{}, `[""]`},
		// Value positions are never left out: their null is a value.
		{"Value kept", &testpb.LogEntry{}, `[0,null,"",null]`},
	})
	runDecodeCases(t, []decodeCase{
		{name: "full", body: `["OpPrereqError", ["m", "drbd"], 7]`,
			want: &testpb.ErrTuple{ErrorClass: "OpPrereqError", Args: &testpb.ErrArgs{Message: "m", Code: code}, Extra: wrapperspb.Int64(7)}},
		{name: "short", body: `["E", ["m"]]`, want: &testpb.ErrTuple{ErrorClass: "E", Args: &testpb.ErrArgs{Message: "m"}}},
		{name: "shortest", body: `["E"]`, want: &testpb.ErrTuple{ErrorClass: "E"}},
		{name: "nulls", body: `["E", null, null]`, want: &testpb.ErrTuple{ErrorClass: "E"}},
		{name: "too short", body: `[]`, want: &testpb.ErrTuple{}, err: `Invalid body contents`},
		{name: "too long", body: `["E", null, null, null]`, want: &testpb.ErrTuple{}, err: `Invalid body contents`},
		{name: "positions without presence stay required", body: `[1]`, want: &testpb.Timestamp{}, err: `Invalid body contents`},
		{name: "Value position required", body: `[1, [2, 3], "message"]`, want: &testpb.LogEntry{}, err: `Invalid body contents`},
	})
	// Inside an opcode, too.
	checkErr(t, decodeBody(&testpb.OpTestRename{}, `{"when": [1]}`), failsValidation("when"))
}

func TestOpSwitch(t *testing.T) {
	if infoFor((&testpb.AnyOp{}).ProtoReflect().Descriptor()).opSwitch == nil {
		t.Fatal("AnyOp not detected as an opcode switch")
	}
	for _, m := range []proto.Message{&testpb.NotAnyOp{}, &testpb.Everything{}, &testpb.OpTestRename{}, &structpb.Value{}} {
		if infoFor(m.ProtoReflect().Descriptor()).opSwitch != nil {
			t.Errorf("%T detected as an opcode switch", m)
		}
	}
	runEncodeCases(t, []encodeCase{
		{"unset", &testpb.AnyOp{}, `null`},
		{"child", &testpb.AnyOp{Op: &testpb.AnyOp_Child{Child: &testpb.OpTestChild{Name: "c"}}}, `{"OP_ID":"OP_TEST_CHILD","name":"c"}`},
		{"flag", &testpb.SimpleOp{Op: &testpb.SimpleOp_Flag{Flag: &testpb.OpTestFlag{Flag: proto.Bool(true)}}},
			`{"OP_ID":"OP_TEST_FLAG","flag":true,"ids":[]}`},
	})
	// The opcode's own OP_ID field is not written twice.
	got := mustMarshal(t, Marshaler{PythonStyle: true}, &testpb.AnyOp{Op: &testpb.AnyOp_Rename{Rename: &testpb.OpTestRename{OpId: "ignored"}}})
	// (As a job record: the unset instance_uuid is left out.)
	if want := `{"OP_ID": "OP_TEST_RENAME", "instance_name": "", "new_name": ""`; !strings.HasPrefix(got, want) ||
		strings.Count(got, "OP_ID") != 1 || strings.Contains(got, "ignored") {
		t.Errorf("rename: %s", got)
	}

	runDecodeCases(t, []decodeCase{
		{name: "child", body: `{"OP_ID": "OP_TEST_CHILD", "name": "c"}`, want: &testpb.AnyOp{Op: &testpb.AnyOp_Child{Child: &testpb.OpTestChild{Name: "c"}}}},
		{name: "OP_ID anywhere", body: `{"name": "c", "OP_ID": "OP_TEST_CHILD"}`, want: &testpb.AnyOp{Op: &testpb.AnyOp_Child{Child: &testpb.OpTestChild{Name: "c"}}}},
		// An opcode with an OP_ID field of its own gets it.
		{name: "own OP_ID field", body: `{"OP_ID": "OP_TEST_RENAME", "new_name": "n"}`,
			want: &testpb.AnyOp{Op: &testpb.AnyOp_Rename{Rename: &testpb.OpTestRename{NewName: "n", OpId: "OP_TEST_RENAME"}}}},
		{name: "null", body: `null`, want: &testpb.AnyOp{}},
		{name: "unknown", body: `{"OP_ID": "OP_NOPE"}`, want: &testpb.AnyOp{}, err: `Invalid body parameters: unknown opcode 'OP_NOPE'`},
		{name: "not a string", body: `{"OP_ID": 5}`, want: &testpb.AnyOp{}, err: `Invalid body parameters: unknown opcode '5'`},
		{name: "missing", body: `{"name": "c"}`, want: &testpb.AnyOp{}, err: `Invalid body parameters: missing OP_ID`},
		{name: "null OP_ID", body: `{"OP_ID": null}`, want: &testpb.AnyOp{}, err: `Invalid body parameters: missing OP_ID`},
		{name: "not an object", body: `[]`, want: &testpb.AnyOp{}, err: `Body contents: Type is 'list', but 'dict' is expected`},
		{name: "opcode strictness", body: `{"OP_ID": "OP_TEST_CHILD", "bogus": 1}`, want: &testpb.AnyOp{},
			err: `Invalid body parameters: Object OpTestChild doesn't support the parameter 'bogus'`},
		{name: "opcode validation", body: `{"OP_ID": "OP_TEST_CHILD", "name": ""}`, want: &testpb.AnyOp{},
			err: `Invalid body parameters: ("Parameter 'OP_TEST_CHILD.name' fails validation", 'wrong_input')`},
		{name: "nested in a list", body: `{"ops": [{"OP_ID": "OP_TEST_NOTE", "note": "x"}, {"OP_ID": "OP_TEST_FLAG"}]}`, want: &testpb.JobLike{
			Ops: []*testpb.SimpleOp{
				{Op: &testpb.SimpleOp_Note{Note: &testpb.OpTestNote{Note: proto.String("x")}}},
				{Op: &testpb.SimpleOp_Flag{Flag: &testpb.OpTestFlag{}}},
			},
			Body: &testpb.InlineNicBody{Nic: &testpb.Nic{}},
		}},
		{name: "nested error", body: `{"ops": [{"OP_ID": "OP_X"}]}`, want: &testpb.JobLike{}, err: `Invalid body parameters: unknown opcode 'OP_X'`},
		{name: "NotAnyOp is a plain message", body: `{"OP_ID": "x", "name": "n"}`, want: &testpb.NotAnyOp{Op: &testpb.NotAnyOp_Name{Name: "n"}}},
	})

	// CheckRequired checks the chosen opcode.
	checkErr(t, CheckRequired(&testpb.AnyOp{Op: &testpb.AnyOp_Child{Child: &testpb.OpTestChild{}}}),
		`Invalid body parameters: ("Parameter 'OP_TEST_CHILD.name' fails validation", 'wrong_input')`)
	checkErr(t, CheckRequired(&testpb.AnyOp{}), "")
}
