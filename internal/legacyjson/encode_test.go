package legacyjson

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson/testdata/testpb"
)

func everything() *testpb.Everything {
	hv, _ := structpb.NewStruct(map[string]any{"migration_port": 8102, "kernel_args": "ro", "acpi": true, "ratio": 0.5})
	items, _ := structpb.NewList([]any{"a", 1, nil})
	return &testpb.Everything{
		Name:          "inst1.example.com",
		Uuid:          proto.String("b471a9ea"),
		AdminUp:       true,
		Small:         -3,
		Big:           1795376099172802304,
		U32:           7,
		U64:           math.MaxUint64,
		S64:           -9,
		F64:           10,
		Ratio:         1,
		F32:           0.1,
		MaybeInt:      proto.Int64(0),
		DiskTemplate:  testpb.DiskTemplate_DISK_TEMPLATE_DRBD,
		MaybeTemplate: testpb.DiskTemplate_DISK_TEMPLATE_PLAIN.Enum(),
		Priority:      testpb.Priority_PRIORITY_NORMAL,
		Color:         testpb.Color_COLOR_GREEN,
		Tags:          []string{"b", "a"},
		Sizes:         []int64{1024, 2048},
		Bridges:       []string{"br0"},
		Templates:     []testpb.DiskTemplate{testpb.DiskTemplate_DISK_TEMPLATE_DISKLESS, testpb.DiskTemplate_DISK_TEMPLATE_DRBD},
		Labels:        map[string]string{"z": "1", "a": "2"},
		Counters:      map[string]int64{"x": -1},
		ByIndex:       map[int32]string{10: "ten", 2: "two", -1: "minus"},
		NicMap:        map[string]*testpb.Nic{"eth0": {Mac: proto.String("aa:00")}},
		Hvparams:      hv,
		Anything:      structpb.NewListValue(items),
		Items:         items,
		WString:       wrapperspb.String("w"),
		WInt:          wrapperspb.Int64(-5),
		WBool:         wrapperspb.Bool(false),
		Ctime:         &testpb.Timestamp{Seconds: 1795376099, Microseconds: 180409},
		Times:         []*testpb.Timestamp{{Seconds: 1}, {Seconds: 2, Microseconds: 3}},
		PrimaryNic:    &testpb.Nic{Ip: proto.String("192.0.2.1")},
		Nics:          []*testpb.Nic{{}, {Mode: proto.String("bridged")}},
		DryRun:        true,
		OpId:          "OP_X",
		Blob:          []byte("hi"),
		Depends: []*testpb.Dependency{
			{JobId: structpb.NewNumberValue(-1), Statuses: []testpb.JobStatus{testpb.JobStatus_JOB_STATUS_SUCCESS, testpb.JobStatus_JOB_STATUS_ERROR}},
			{JobId: structpb.NewStringValue("12")},
		},
		Choice: &testpb.Everything_ChoiceStr{ChoiceStr: "c"},
		Child:  &testpb.Everything{Name: "child", Priority: testpb.Priority_PRIORITY_HIGH},
		Oplog: []*testpb.LogEntry{{Serial: 1, Timestamp: &testpb.Timestamp{Seconds: 5, Microseconds: 6},
			LogType: "message", Message: structpb.NewStringValue(" - INFO: x")}},
		Values:  []*structpb.Value{structpb.NewNullValue(), structpb.NewBoolValue(true), structpb.NewNumberValue(2.5)},
		PrioMap: map[string]testpb.Priority{"lo": testpb.Priority_PRIORITY_LOW},
	}
}

const everythingJSON = `{"name":"inst1.example.com","uuid":"b471a9ea","admin_state":true,"small":-3,` +
	`"big":1795376099172802304,"u32":7,"u64":18446744073709551615,"s64":-9,"f64":10,"ratio":1.0,"f32":0.1,` +
	`"maybe_int":0,"maybe_double":null,"maybe_bool":null,"disk_template":"drbd","maybe_template":"plain",` +
	`"priority":0,"color":"COLOR_GREEN","tags":["b","a"],"disk.sizes":[1024,2048],"nic.bridges":["br0"],` +
	`"templates":["diskless","drbd"],"labels":{"a":"2","z":"1"},"counters":{"x":-1},` +
	`"by_index":{"-1":"minus","2":"two","10":"ten"},` +
	`"nic_map":{"eth0":{"mac":"aa:00","ip":null,"mode":null,"link":null}},` +
	`"hvparams":{"acpi":true,"kernel_args":"ro","migration_port":8102,"ratio":0.5},` +
	`"anything":["a",1,null],"items":["a",1,null],"w_string":"w","w_int":-5,"w_bool":false,"w_double":null,` +
	`"ctime":[1795376099,180409],"times":[[1,0],[2,3]],` +
	`"primary_nic":{"mac":null,"ip":"192.0.2.1","mode":null,"link":null},` +
	`"nics":[{"mac":null,"ip":null,"mode":null,"link":null},{"mac":null,"ip":null,"mode":"bridged","link":null}],` +
	`"dry-run":true,"OP_ID":"OP_X","blob":"aGk=","depends":[[-1,["success","error"]],["12",[]]],` +
	`"choice_str":"c",` +
	`"child":{"name":"child","uuid":null,"admin_state":false,"small":0,"big":0,"u32":0,"u64":0,"s64":0,"f64":0,` +
	`"ratio":0.0,"f32":0.0,"maybe_int":null,"maybe_double":null,"maybe_bool":null,"disk_template":null,` +
	`"maybe_template":null,"priority":-10,"color":null,"tags":[],"disk.sizes":[],"nic.bridges":[],"templates":[],` +
	`"labels":{},"counters":{},"by_index":{},"nic_map":{},"hvparams":null,"anything":null,"items":null,` +
	`"w_string":null,"w_int":null,"w_bool":null,"w_double":null,"ctime":null,"times":[],"primary_nic":null,` +
	`"nics":[],"dry-run":false,"OP_ID":"","blob":"","depends":[],"child":null,"oplog":[],"values":[],"prio_map":{}},` +
	`"oplog":[[1,[5,6],"message"," - INFO: x"]],"values":[null,true,2.5],"prio_map":{"lo":10}}`

func TestMarshalEverything(t *testing.T) {
	got := mustMarshal(t, Marshaler{}, everything())
	if got != everythingJSON {
		t.Errorf("Marshal mismatch\n got: %s\nwant: %s", got, everythingJSON)
	}
	if !json.Valid([]byte(got)) {
		t.Errorf("output is not valid JSON")
	}
}

func TestMarshalPythonStyle(t *testing.T) {
	m := &testpb.Nic{Mac: proto.String("é\x7f😀</a>&"), Ip: proto.String("x")}
	got := mustMarshal(t, Marshaler{PythonStyle: true}, m)
	want := `{"mac": "\u00e9\u007f\ud83d\ude00</a>&", "ip": "x", "mode": null, "link": null}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	got = mustMarshal(t, Marshaler{}, m)
	want = `{"mac":"é` + "\x7f" + `😀</a>&","ip":"x","mode":null,"link":null}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Ganeti's captured job timestamps, as simplejson writes them.
	got = mustMarshal(t, Marshaler{PythonStyle: true}, []any{&testpb.Timestamp{Seconds: 1795376099, Microseconds: 180409}, nil, Object{{"a", []any{}}}})
	if want := `[[1795376099, 180409], null, {"a": []}]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestMarshalOmitUnset(t *testing.T) {
	m := &testpb.OpTestRename{NewName: "x", Nics: []*testpb.Nic{{}}, DiskIndex: proto.Int64(0)}
	got := mustMarshal(t, Marshaler{OmitUnset: true}, m)
	// disk_index comes in field order, before the repeated fields after it.
	want := `{"instance_name":"","new_name":"x","name_check":false,"priority":null,"depends":[],"disk_index":0,` +
		`"tags":[],"osparams":{},"disk_template":null,"nics":[{}],"indices":[],"OP_ID":"","secret_map":{},` +
		`"ignore-offline":false,"children":[]}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestMarshalPrivate(t *testing.T) {
	osp, _ := structpb.NewStruct(map[string]any{"password": "hunter2", "a": 1})
	m := &testpb.OpTestRename{
		NewName:         "x",
		Secret:          proto.String("s3cret"),
		OsparamsPrivate: osp,
		SecretMap:       map[string]string{"k": "v", "b": "w"},
	}
	got := mustMarshal(t, Marshaler{}, m)
	for _, frag := range []string{`"secret":null`, `"osparams_private":{"a":null,"password":null}`, `"secret_map":{"b":null,"k":null}`} {
		if !strings.Contains(got, frag) {
			t.Errorf("missing %s in %s", frag, got)
		}
	}
	for _, leak := range []string{"hunter2", "s3cret", `"v"`, `"w"`} {
		if strings.Contains(got, leak) {
			t.Errorf("private value %s leaked: %s", leak, got)
		}
	}
	// Decoding keeps private values.
	var back testpb.OpTestRename
	if err := FromValue(&back, map[string]any{"secret": "s3cret", "osparams_private": map[string]any{"password": "p"}}); err != nil {
		t.Fatal(err)
	}
	if back.GetSecret() != "s3cret" || back.GetOsparamsPrivate().GetFields()["password"].GetStringValue() != "p" {
		t.Errorf("private values not decoded: %v", &back)
	}
	v, err := ToValue(&back)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := v.(Object).Get("secret"); s != nil {
		t.Errorf("ToValue secret = %v, want nil", s)
	}
}

type named string

func TestMarshalValues(t *testing.T) {
	s := "x"
	var nilNic *testpb.Nic
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, "null"},
		{"string", "a\"b", `"a\"b"`},
		{"bool", true, "true"},
		{"int", 2, "2"},
		{"int64", int64(-1234), "-1234"},
		{"uint64", uint64(math.MaxUint64), "18446744073709551615"},
		{"float64 integral", 1.0, "1.0"},
		{"float32", float32(0.1), "0.1"},
		{"json.Number", json.Number("1.50"), "1.50"},
		{"[]string", []string{"a", "b"}, `["a","b"]`},
		{"[]int64", []int64{1, 2}, `[1,2]`},
		{"[]enum", []testpb.Priority{testpb.Priority_PRIORITY_LOW, testpb.Priority_PRIORITY_HIGH}, `[10,-10]`},
		{"enum", testpb.DiskTemplate_DISK_TEMPLATE_DRBD, `"drbd"`},
		{"unknown enum number", testpb.DiskTemplate(42), `42`},
		{"[]*Msg", []*testpb.Timestamp{{Seconds: 1}, nil, {Seconds: 3}}, `[[1,0],null,[3,0]]`},
		{"empty []*Msg", []*testpb.Timestamp{}, `[]`},
		{"nil []*Msg", []*testpb.Timestamp(nil), `[]`},
		{"nil message", nilNic, "null"},
		{"*string", &s, `"x"`},
		{"named string", named("n"), `"n"`},
		{"map[string]any sorted", map[string]any{"b": 1, "a": []any{true, nil}}, `{"a":[true,null],"b":1}`},
		{"map[string]int", map[string]int{"b": 1, "a": 2}, `{"a":2,"b":1}`},
		{"Object keeps order", Object{{"z", 1}, {"a", Object{}}}, `{"z":1,"a":{}}`},
		{"[]byte", []byte{0, 1}, `"AAE="`},
		{"RawMessage", json.RawMessage(` {"a" : [1, 2.0]} `), `{"a":[1,2.0]}`},
		{"structpb null", structpb.NewNullValue(), "null"},
		{"structpb number int", structpb.NewNumberValue(3), "3"},
		{"structpb number float", structpb.NewNumberValue(0.25), "0.25"},
		{"structpb big", structpb.NewNumberValue(1e20), "1e+20"},
		{"structpb nil struct", &structpb.Value{Kind: &structpb.Value_StructValue{}}, "{}"},
		{"empty Value", &structpb.Value{}, "null"},
		{"ListValue", &structpb.ListValue{Values: []*structpb.Value{nil, structpb.NewStringValue("s")}}, `[null,"s"]`},
		{"Struct", &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewBoolValue(true)}}, `{"k":true}`},
		{"wrapper", wrapperspb.UInt32(9), "9"},
		{"bytes wrapper", wrapperspb.Bytes([]byte("a")), `"YQ=="`},
		{"tuple with unset fields", &testpb.LogEntry{}, `[0,null,"",null]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustMarshal(t, Marshaler{}, tc.in); got != tc.want {
				t.Errorf("Marshal(%#v) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	loop := []any{nil}
	loop[0] = loop
	for _, in := range []any{
		make(chan int),
		json.Number("1x"),
		json.Number(""),
		json.RawMessage("{"),
		struct{ A int }{1},
		map[float64]int{1: 1},
		loop,
	} {
		if b, err := (Marshaler{}).Marshal(in); err == nil {
			t.Errorf("Marshal(%T) = %s, want an error", in, b)
		}
	}
}

func TestPyFloat(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{1, "1.0"},
		{-2.5, "-2.5"},
		{0.1, "0.1"},
		{1e-4, "0.0001"},
		{1e-5, "1e-05"},
		{1.5e-7, "1.5e-07"},
		{123456789, "123456789.0"},
		{1e15, "1000000000000000.0"},
		{9999999999999998, "9999999999999998.0"},
		{1e16, "1e+16"},
		{1.2345678901234568e+17, "1.2345678901234568e+17"},
		{1795376092.358, "1795376092.358"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{5e-324, "5e-324"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
	} {
		if got := string(appendPyFloat(nil, tc.f, 64)); got != tc.want {
			t.Errorf("appendPyFloat(%v) = %s, want %s", tc.f, got, tc.want)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, tc := range []struct {
		in, compact, ascii string
	}{
		{"plain", `"plain"`, `"plain"`},
		{"q\"b\\s/", `"q\"b\\s/"`, `"q\"b\\s/"`},
		{"\n\r\t\b\f\x00\x1f", `"\n\r\t\b\f\u0000\u001f"`, `"\n\r\t\b\f\u0000\u001f"`},
		{"<>&", `"<>&"`, `"<>&"`},
		{"\u2028\u2029", `"\u2028\u2029"`, `"\u2028\u2029"`},
		{"bad\xffutf8", `"bad\ufffdutf8"`, `"bad\ufffdutf8"`},
		{"ü€𝄞", `"ü€𝄞"`, `"\u00fc\u20ac\ud834\udd1e"`},
	} {
		if got := string(appendString(nil, tc.in, false)); got != tc.compact {
			t.Errorf("compact %q = %s, want %s", tc.in, got, tc.compact)
		}
		if got := string(appendString(nil, tc.in, true)); got != tc.ascii {
			t.Errorf("ascii %q = %s, want %s", tc.in, got, tc.ascii)
		}
		var back string
		if err := json.Unmarshal([]byte(appendString(nil, tc.in, true)), &back); err != nil {
			t.Errorf("ascii %q: not valid JSON: %v", tc.in, err)
		}
	}
}

func TestToValue(t *testing.T) {
	v, err := ToValue(everything())
	if err != nil {
		t.Fatal(err)
	}
	obj, ok := v.(Object)
	if !ok {
		t.Fatalf("ToValue = %T, want Object", v)
	}
	if obj[0].Key != "name" || obj[2].Key != "admin_state" {
		t.Errorf("key order: %v, %v", obj[0].Key, obj[2].Key)
	}
	if big, _ := obj.Get("big"); big != json.Number("1795376099172802304") {
		t.Errorf("big = %#v, want json.Number", big)
	}
	if u, _ := obj.Get("uuid"); u != "b471a9ea" {
		t.Errorf("uuid = %#v", u)
	}
	if md, ok := obj.Get("maybe_double"); !ok || md != nil {
		t.Errorf("maybe_double = %#v, %v; want present and nil", md, ok)
	}
	if ct, _ := obj.Get("ctime"); len(ct.([]any)) != 2 {
		t.Errorf("ctime = %#v", ct)
	}
	// encoding/json of the result gives the same bytes as Marshal.
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != everythingJSON {
		t.Errorf("json.Marshal(ToValue) differs from Marshal:\n%s", b)
	}
	if v, err := ToValue(nil); err != nil || v != nil {
		t.Errorf("ToValue(nil) = %v, %v", v, err)
	}
}
