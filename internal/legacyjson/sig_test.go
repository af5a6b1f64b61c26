package legacyjson

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

func opFails(opID, param string) string {
	return `Invalid body parameters: ("Parameter '` + opID + `.` + param + `' fails validation", 'wrong_input')`
}

// opcodeFields visits every field of every opcode of the OpCode switch.
func opcodeFields(t *testing.T, visit func(opID string, fd protoreflect.FieldDescriptor, spec *rapiv2.ParamSpec)) {
	t.Helper()
	oneof := (&rapiv2.OpCode{}).ProtoReflect().Descriptor().Oneofs().ByName("op")
	for i := 0; i < oneof.Fields().Len(); i++ {
		md := oneof.Fields().Get(i).Message()
		info, _ := proto.GetExtension(md.Options(), rapiv2.E_Opcode).(*rapiv2.OpcodeInfo)
		for j := 0; j < md.Fields().Len(); j++ {
			fd := md.Fields().Get(j)
			spec, _ := proto.GetExtension(fd.Options(), rapiv2.E_Param).(*rapiv2.ParamSpec)
			visit(info.GetId(), fd, spec)
		}
	}
}

// intBounds finds the int[min..max] of a sig made of maybe<>, list<>,
// set<> and one int type: the bounds a scalar (or repeated) integer field
// must enforce.
func intBounds(t *sigType) (*sigType, bool) {
	for t.kind == sigMaybe || t.kind == sigList {
		t = t.elems[0]
	}
	return t, t.kind == sigInt
}

// TestEverySigCompiles checks that the type signature of every opcode
// parameter parses, and that every integer parameter enforces exactly the
// bounds of its signature (non-negative, positive, [0..15]): the
// (param) option's min and max are what the decoder and CheckParams
// check, so no integer parameter of any opcode goes without Ganeti's
// range check.
func TestEverySigCompiles(t *testing.T) {
	ints, structured := 0, 0
	opcodeFields(t, func(opID string, fd protoreflect.FieldDescriptor, spec *rapiv2.ParamSpec) {
		name := opID + "." + string(fd.Name())
		st, ok := parseSig(spec.GetSig())
		if !ok {
			t.Errorf("%s: sig %q does not parse", name, spec.GetSig())
			return
		}
		switch fd.Kind() {
		case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
			protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind,
			protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
			it, ok := intBounds(st)
			if !ok {
				t.Errorf("%s: integer field with sig %q", name, spec.GetSig())
				return
			}
			ints++
			eq := func(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
			if !eq(it.min, spec.Min) || !eq(it.max, spec.Max) {
				t.Errorf("%s: sig %q, but the param option bounds are min %v max %v", name, spec.GetSig(), spec.Min, spec.Max)
			}
		case protoreflect.MessageKind:
			switch infoFor(fd.Message()).wkt {
			case wktStruct, wktValue, wktListValue:
				f := infoFor(fd.ContainingMessage()).byKey[fd.JSONName()]
				if st.trivial() != (f.sig == nil) {
					t.Errorf("%s: sig %q compiled to %v", name, spec.GetSig(), f.sig)
				}
				if f.sig != nil {
					structured++
				}
			}
		}
	})
	if ints < 100 || structured < 10 {
		t.Errorf("checked %d integer and %d structured parameters", ints, structured)
	}
}

func TestSigCheck(t *testing.T) {
	num := func(s string) any { return json.Number(s) }
	cases := []struct {
		sig  string
		v    any
		want bool
	}{
		{"int", num("5"), true},
		{"int", num("-5"), true},
		{"int", num("1.0"), false}, // a Python float
		{"int", num("1e3"), false},
		{"int", num("9223372036854775807"), true},
		{"int", num("9223372036854775808"), false}, // beyond int64
		{"int", true, false},                       // ht.TInt excludes bools
		{"int", 5.0, true},                         // a protobuf Value number
		{"int", 5.5, false},
		{"int", 1e30, false},
		{"int", math.Inf(1), false},
		{"int[0..]", num("0"), true},
		{"int[0..]", num("-1"), false},
		{"int[1..]", num("0"), false},
		{"int[0..15]", num("16"), false},
		{"nonempty_string", "", false},
		{"(nonempty_string|int)", "1G", true},
		{"(nonempty_string|int)", num("1.5"), false},
		{"list<dict<nonempty_string,(nonempty_string|int)>>", []any{map[string]any{"size": num("1024")}}, true},
		{"list<dict<nonempty_string,(nonempty_string|int)>>", []any{map[string]any{"size": num("1e30")}}, false},
		{"list<dict<nonempty_string,(nonempty_string|int)>>", []any{map[string]any{"": num("1")}}, false},
		{"list<dict<nonempty_string,(nonempty_string|int)>>", []any{map[string]any{"size": nil}}, false},
		{"(list<int[0..]>|list<tuple<int[0..],dict<nonempty_string,(nonempty_string|int)>>>)", []any{num("0"), num("2")}, true},
		{"(list<int[0..]>|list<tuple<int[0..],dict<nonempty_string,(nonempty_string|int)>>>)", []any{num("-1")}, false},
		{"(list<int[0..]>|list<tuple<int[0..],dict<nonempty_string,(nonempty_string|int)>>>)", []any{[]any{num("0"), map[string]any{"size": num("5")}}}, true},
		{"(list<int[0..]>|list<tuple<int[0..],dict<nonempty_string,(nonempty_string|int)>>>)", []any{[]any{num("0")}}, false},
		{"list<tuple<enum{add,attach,detach,modify,remove},(int|string),dict<nonempty_string,(nonempty_string|int)>>>", []any{[]any{"add", num("-1"), map[string]any{}}}, true},
		{"list<tuple<enum{add,attach,detach,modify,remove},(int|string),dict<nonempty_string,(nonempty_string|int)>>>", []any{[]any{"grow", num("-1"), map[string]any{}}}, false},
		{"enum{-10,0,10}", num("0"), true},
		{"enum{-10,0,10}", "0", false},
		{"maybe<list<tuple<(job_id|relative_job_id),list<enum{canceled,error,success}>>>>", []any{[]any{"12", []any{"success"}}, []any{num("-1"), []any{}}}, true},
		{"maybe<list<tuple<(job_id|relative_job_id),list<enum{canceled,error,success}>>>>", []any{[]any{"x", []any{}}}, false},
		{"maybe<ipv4_address>", "192.0.2.300", false},
		{"maybe<dict<any,private<any>>>", map[string]any{"a": num("1")}, true},
	}
	for _, c := range cases {
		st, ok := parseSig(c.sig)
		if !ok {
			t.Fatalf("sig %q does not parse", c.sig)
		}
		if got := st.check(c.v, 0); got != c.want {
			t.Errorf("%s: check(%#v) = %v, want %v", c.sig, c.v, got, c.want)
		}
	}
}

// TestStructuredParams: legacy bodies of the parameters whose proto type
// is a Struct / Value get Ganeti's submission-time type check (400), and
// free-form numbers must be finite int64 integers or floats; what Ganeti
// checks later (beparams sizes, negative disk sizes) still decodes.
func TestStructuredParams(t *testing.T) {
	cases := []struct {
		msg  proto.Message
		body string
		want string
	}{
		{&rapiv2.OpInstanceCreate{}, `{"disks": [{"size": 1024}]}`, ""},
		{&rapiv2.OpInstanceCreate{}, `{"disks": [{"size": "1G", "mode": "rw"}]}`, ""},
		{&rapiv2.OpInstanceCreate{}, `{"disks": [{"size": -1}]}`, ""}, // the job's TypeEnforcementError
		{&rapiv2.OpInstanceCreate{}, `{"disks": [{"size": 1.5}]}`, opFails("OP_INSTANCE_CREATE", "disks")},
		{&rapiv2.OpInstanceCreate{}, `{"disks": [{"size": 1e30}]}`, opFails("OP_INSTANCE_CREATE", "disks")},
		{&rapiv2.OpInstanceCreate{}, `{"disks": [{"size": 1180591620717411303424}]}`, opFails("OP_INSTANCE_CREATE", "disks")},
		{&rapiv2.OpInstanceCreate{}, `{"disks": [{"size": true}]}`, opFails("OP_INSTANCE_CREATE", "disks")},
		{&rapiv2.OpInstanceCreate{}, `{"beparams": {"memory": 1e30}}`, ""}, // the job's TypeEnforcementError
		{&rapiv2.OpInstanceCreate{}, `{"beparams": {"memory": -1}}`, ""},
		{&rapiv2.OpInstanceCreate{}, `{"beparams": {"memory": 1180591620717411303424}}`, opFails("OP_INSTANCE_CREATE", "beparams")},
		{&rapiv2.OpInstanceCreate{}, `{"beparams": {"memory": 1e400}}`, opFails("OP_INSTANCE_CREATE", "beparams")},
		{&rapiv2.OpInstanceCreate{}, `{"hvparams": {"x": [1, {"y": -2e400}]}}`, opFails("OP_INSTANCE_CREATE", "hvparams")},
		{&rapiv2.OpInstanceSetParams{}, `{"disks": [["add", {"size": 1024}]]}`, ""},
		{&rapiv2.OpInstanceSetParams{}, `{"disks": [["add", {"size": 1.5}]]}`, opFails("OP_INSTANCE_SET_PARAMS", "disks")},
		{&rapiv2.OpInstanceSetParams{}, `{"disks": [["grow", {}]]}`, opFails("OP_INSTANCE_SET_PARAMS", "disks")},
		{&rapiv2.OpInstanceSetParams{}, `{"runtime_mem": -1}`, opFails("OP_INSTANCE_SET_PARAMS", "runtime_mem")},
		{&rapiv2.OpInstanceRecreateDisks{}, `{"disks": [0, 1]}`, ""},
		{&rapiv2.OpInstanceRecreateDisks{}, `{"disks": [-1]}`, opFails("OP_INSTANCE_RECREATE_DISKS", "disks")},
		{&rapiv2.OpGroupAdd{}, `{"group_name": "rack-1_a.b"}`, ""},
		{&rapiv2.OpGroupAdd{}, `{"group_name": "a b"}`, opFails("OP_GROUP_ADD", "group_name")},
		{&rapiv2.OpGroupAdd{}, `{"group_name": ".."}`, opFails("OP_GROUP_ADD", "group_name")},
		{&rapiv2.OpGroupAdd{}, `{"group_name": "` + strings.Repeat("g", 256) + `"}`, opFails("OP_GROUP_ADD", "group_name")},
		{&rapiv2.OpGroupRename{}, `{"new_name": "x/y"}`, opFails("OP_GROUP_RENAME", "new_name")},
		{&rapiv2.OpGroupRemove{}, `{"group_name": "a b"}`, ""}, // a look-up, not a new name
		{&rapiv2.OpNetworkAdd{}, `{"network_name": "nét"}`, opFails("OP_NETWORK_ADD", "network_name")},
	}
	for _, c := range cases {
		err := decodeBody(c.msg, c.body)
		checkErr(t, err, c.want)
		if err == nil {
			// What decodes passes the typed check too.
			if err := CheckParams(c.msg); err != nil {
				t.Errorf("%s: decodes, but CheckParams: %v", c.body, err)
			}
		}
	}
}

// TestCheckParamsTyped: a typed (gRPC) opcode is refused for the values a
// legacy body is refused for.
func TestCheckParamsTyped(t *testing.T) {
	st := func(m map[string]any) *structpb.Struct {
		s, err := structpb.NewStruct(m)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	val := func(v any) *structpb.Value {
		x, err := structpb.NewValue(v)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	badEnum := rapiv2.DiskTemplate(999)
	unspecified := rapiv2.DiskTemplate(0)
	cases := []struct {
		msg  proto.Message
		want string
	}{
		{&rapiv2.OpInstanceGrowDisk{InstanceName: proto.String("i"), Amount: proto.Int64(1024)}, ""},
		{&rapiv2.OpInstanceGrowDisk{InstanceName: proto.String("i"), Amount: proto.Int64(-1)}, opFails("OP_INSTANCE_GROW_DISK", "amount")},
		{&rapiv2.OpInstanceCreate{Disks: []*structpb.Struct{st(map[string]any{"size": 1024})}}, ""},
		{&rapiv2.OpInstanceCreate{Disks: []*structpb.Struct{st(map[string]any{"size": 1.5})}}, opFails("OP_INSTANCE_CREATE", "disks")},
		{&rapiv2.OpInstanceCreate{Disks: []*structpb.Struct{st(map[string]any{"size": 1e30})}}, opFails("OP_INSTANCE_CREATE", "disks")},
		{&rapiv2.OpInstanceCreate{Beparams: st(map[string]any{"memory": math.NaN()})}, opFails("OP_INSTANCE_CREATE", "beparams")},
		{&rapiv2.OpInstanceCreate{Hvparams: st(map[string]any{"a": []any{math.Inf(-1)}})}, opFails("OP_INSTANCE_CREATE", "hvparams")},
		{&rapiv2.OpInstanceCreate{DiskTemplate: &badEnum}, opFails("OP_INSTANCE_CREATE", "disk_template")},
		{&rapiv2.OpInstanceCreate{DiskTemplate: &unspecified}, opFails("OP_INSTANCE_CREATE", "disk_template")},
		{&rapiv2.OpInstanceSetParams{Disks: val([]any{[]any{"add", map[string]any{"size": 2048}}})}, ""},
		{&rapiv2.OpInstanceSetParams{Disks: val([]any{[]any{"add", map[string]any{"size": 2048.5}}})}, opFails("OP_INSTANCE_SET_PARAMS", "disks")},
		{&rapiv2.OpInstanceSetParams{Disks: &structpb.Value{}}, ""}, // a Value without a kind: not given
		{&rapiv2.OpGroupAdd{GroupName: proto.String("a b")}, opFails("OP_GROUP_ADD", "group_name")},
		{&rapiv2.OpGroupAdd{GroupName: proto.String("")}, opFails("OP_GROUP_ADD", "group_name")},
		{&rapiv2.OpNetworkAdd{NetworkName: proto.String("n1"), Network: proto.String("10.0.0.0/33")}, opFails("OP_NETWORK_ADD", "network")},
		{&rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceGrowDisk{InstanceGrowDisk: &rapiv2.OpInstanceGrowDisk{Amount: proto.Int64(-5)}}},
			opFails("OP_INSTANCE_GROW_DISK", "amount")},
		{&rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Tags: []string{"tägé"}}}}, ""},
	}
	for _, c := range cases {
		checkErr(t, CheckParams(c.msg), c.want)
	}
}

// BenchmarkCheckParams: the typed check of an instance creation with disks
// and parameters (what every typed write pays once).
func BenchmarkCheckParams(b *testing.B) {
	disks := []*structpb.Struct{}
	for range 4 {
		s, _ := structpb.NewStruct(map[string]any{"size": 1024, "mode": "rw", "name": "d"})
		disks = append(disks, s)
	}
	be, _ := structpb.NewStruct(map[string]any{"memory": 512, "vcpus": 2})
	op := &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceCreate{InstanceCreate: &rapiv2.OpInstanceCreate{
		InstanceName: proto.String("inst1.example.com"), Disks: disks, Beparams: be, Tags: []string{"a", "b"},
		Nics: []*rapiv2.NicParams{{Ip: proto.String("192.0.2.1")}}, DiskTemplate: rapiv2.DiskTemplate_DISK_TEMPLATE_PLAIN.Enum(),
	}}}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckParams(op); err != nil {
			b.Fatal(err)
		}
	}
}
