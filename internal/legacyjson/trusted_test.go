package legacyjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson/testdata/testpb"
)

// sameAsFromValue checks that FillTrusted(msg, v) gives exactly what
// FromValue gives: the same error text, or the same message (compared
// with proto.Equal, the legacy encoding and the deterministic wire form).
func sameAsFromValue(t *testing.T, newMsg func() proto.Message, v any) {
	t.Helper()
	want, got := newMsg(), newMsg()
	wantErr := FromValue(want, v)
	gotErr := FillTrusted(got, v)
	compareFills(t, fmt.Sprintf("%T %#v", want, v), want, got, wantErr, gotErr)
}

func compareFills(t *testing.T, what string, want, got proto.Message, wantErr, gotErr error) {
	t.Helper()
	if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
		t.Fatalf("%s: error %v, FromValue: %v", what, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if !proto.Equal(want, got) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
	for _, m := range []Marshaler{{}, {PythonStyle: true}, {OmitUnset: true}} {
		a, errA := m.Marshal(want)
		b, errB := m.Marshal(got)
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s: legacy encoding\n got  %s (%v)\n want %s (%v)", what, b, errB, a, errA)
		}
	}
	a, errA := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	b, errB := proto.MarshalOptions{Deterministic: true}.Marshal(got)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Fatalf("%s: wire form differs (%v, %v)", what, errA, errB)
	}
	sameEncodingAsDynamic(t, what, got)
}

// sameEncodingAsDynamic checks that the encoder's fast path (generated
// messages) writes what its general path writes, by encoding a dynamic
// copy of msg, which the fast path does not read.
func sameEncodingAsDynamic(t *testing.T, what string, msg proto.Message) {
	t.Helper()
	if _, ok := msg.(*dynamicpb.Message); ok {
		return
	}
	wire, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamicpb.NewMessage(msg.ProtoReflect().Descriptor())
	if err := proto.Unmarshal(wire, dyn); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Marshaler{{}, {PythonStyle: true}, {OmitUnset: true}} {
		a, errA := m.Marshal(dyn)
		b, errB := m.Marshal(msg)
		if (errA == nil) != (errB == nil) || !bytes.Equal(a, b) {
			t.Fatalf("%s: fast encoding\n got  %s (%v)\n want %s (%v)", what, b, errB, a, errA)
		}
		va, errA := m.ToValue(dyn)
		vb, errB := m.ToValue(msg)
		if (errA == nil) != (errB == nil) || jsonText(va) != jsonText(vb) {
			t.Fatalf("%s: fast ToValue differs", what)
		}
	}
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

func TestFastEncodingSameAsGeneral(t *testing.T) {
	for _, m := range benchInstances(3) {
		sameEncodingAsDynamic(t, "bench instance", m)
	}
	for _, m := range []proto.Message{
		&testpb.Everything{}, &testpb.BenchInstance{}, &testpb.OpTestRename{Secret: proto.String("s"), SecretMap: map[string]string{"a": "b"}},
		&testpb.Everything{Name: "\u2028\u00e9<>\x7f\"\\", Uuid: proto.String(""), MaybeDouble: proto.Float64(math.Copysign(0, -1)),
			Ratio: math.Copysign(0, -1), MaybeInt: proto.Int64(0), MaybeBool: proto.Bool(false), Tags: []string{""},
			Labels: map[string]string{"b": "1", "a": "\x00", "\u00e9": ""}, Counters: map[string]int64{"z": -1, "": 0},
			Hvparams: &structpb.Struct{}, Items: &structpb.ListValue{}, Anything: &structpb.Value{},
			Priority: testpb.Priority(42)},
	} {
		sameEncodingAsDynamic(t, fmt.Sprintf("%T", m), m)
	}
}

type myString string

type myBool bool

func TestFillTrustedSameAsFromValue(t *testing.T) {
	nic := map[string]any{"mac": "aa:00:00:00:00:01", "ip": nil, "mode": "bridged", "link": "br0"}
	hv := map[string]any{"acpi": true, "kernel_path": "/boot/vmlinuz", "cpu_cores": int64(0), "ratio": 0.5,
		"list": []any{int64(1), "a", nil, []string{"x"}, map[string]any{"n": 1}}, "none": nil, "i": 3}
	values := []any{
		nil,
		map[string]any{},
		Object{},
		map[string]any{"unknown": 1, "other": []any{1}},
		// Every field with the shapes the domain produces.
		map[string]any{
			"name": "inst1", "uuid": "u-1", "admin_state": true, "small": int64(-5), "big": int64(1) << 40,
			"u32": int64(7), "u64": int64(8), "s64": int64(-9), "f64": int64(10), "ratio": 0.25, "f32": 1.5,
			"maybe_int": int64(3), "maybe_double": 2.5, "maybe_bool": false, "maybe_template": "drbd",
			"tags": []string{"a", "b"}, "disk.sizes": []any{int64(1024), 2048}, "nic.bridges": []any{"br0"},
			"templates": []any{"plain", "drbd"}, "labels": map[string]any{"a": "b"},
			"counters": map[string]any{"x": int64(1), "y": 2.0}, "by_index": map[string]any{"1": "one"},
			"nic_map": map[string]any{"eth0": nic}, "hvparams": hv, "anything": []any{1, "x"},
			"items": []any{nil, true, 1.5}, "w_string": "s", "w_int": int64(5), "w_bool": true, "w_double": 1.0,
			"times": []any{[]any{int64(1), int64(2)}}, "nics": []any{nic, map[string]any{}},
			"dry-run": true, "OP_ID": "OP_X", "blob": "aGVsbG8=", "oplog": []any{[]any{1, []any{1, 2}, "message", "m"}},
			"values": []any{nil, "v", map[string]any{"k": []any{}}}, "prio_map": map[string]any{"a": "low"},
		},
		// Ints where floats go, floats where ints go, Go types outside the
		// fast path, invalid UTF-8, empty lists and maps.
		map[string]any{
			"name": myString("named"), "admin_state": myBool(true), "small": 3.0, "big": float64(1 << 50),
			"ratio": int64(3), "maybe_double": 7, "tags": []any{}, "disk.sizes": []int64{}, "labels": map[string]any{},
			"hvparams": map[string]any{}, "items": []any{}, "anything": nil, "uuid": "\xff\xfe", "nic.bridges": []string{"\xffx"},
			"counters": map[string]string{"a": "1"}, "nics": []any{},
		},
		map[string]any{"hvparams": map[string]any{"\xffkey": 1, "\xfekey": 2}},
		map[string]any{"hvparams": map[myString]any{"a": 1}, "labels": map[string]string{"x": "y"}},
		map[string]any{"anything": json.Number("12"), "items": []any{json.Number("1.5"), myString("s")}},
		map[string]any{"big": math.NaN()}, map[string]any{"ratio": math.Inf(1)}, map[string]any{"big": 1e300},
		map[string]any{"small": int64(1) << 40}, map[string]any{"small": 2.5}, map[string]any{"big": "12"},
		map[string]any{"tags": []any{"a", 1}}, map[string]any{"tags": "a"}, map[string]any{"tags": []any{nil}},
		map[string]any{"disk.sizes": []any{1.5}}, map[string]any{"hvparams": []any{}}, map[string]any{"hvparams": "x"},
		map[string]any{"hvparams": map[string]any{"f": func() {}}}, map[string]any{"nics": []any{nil}},
		map[string]any{"nics": []any{"x"}}, map[string]any{"nic_map": map[string]any{"a": nil}},
		map[string]any{"priority": "low"}, map[string]any{"priority": int64(-10)}, map[string]any{"priority": 10},
		map[string]any{"priority": 0.0}, map[string]any{"priority": true}, map[string]any{"priority": "PRIORITY_HIGH"},
		map[string]any{"priority": int64(1) << 60}, map[string]any{"priority": int64(3)}, map[string]any{"priority": "\xff"},
		map[string]any{"maybe_template": "bogus"}, map[string]any{"maybe_template": int64(5)},
		map[string]any{"templates": []any{"plain", 7}}, map[string]any{"counters": map[string]any{"a": "1"}},
		map[string]any{"labels": map[string]any{"a": 1}}, map[string]any{"w_int": nil, "maybe_int": nil},
		map[string]any{"times": []any{[]any{1, 2, 3}}}, map[string]any{"name": 5}, map[string]any{"admin_state": "yes"},
		// Objects, with repeated keys.
		Object{{"name", "a"}, {"name", "b"}, {"tags", []any{"x"}}, {"tags", nil}, {"hvparams", Object{{"k", 1}, {"k", 2}}}},
		// Arrays (tuples) and other values.
		[]any{1, 2}, "string", int64(5), []any{}, []any{nil}, []any{int64(1), nil, "x", []any{"y"}},
		[]any{true, 1, uint64(2), 0.5, "l", "drbd", -10, []any{"a"}, map[string]any{"a": int64(1)}, []any{1, 2},
			map[string]any{"x": []any{1, nil}}, []any{nil}, 5, map[string]any{"mac": "m"}},
		[]any{true, int64(1) << 40}, []any{false, 3, 4, 5, nil, nil, nil, []string{"a"}, map[string]any{"a": 1.5}},
		[]any{int64(0), nil}, []any{int64(2), "x"}, []any{int64(9), "x"}, []any{"x", "y"}, []any{int64(1), []any{"success"}},
		[]any{int64(1), []any{int64(2), int64(3)}, "message", map[string]any{"a": nil}}, []any{1, 2, 3, 4, 5},
	}
	newEverything := func() proto.Message { return &testpb.Everything{} }
	var batch Batch
	var batchMsgs, batchWant []proto.Message
	for _, v := range values {
		sameAsFromValue(t, newEverything, v)
		want, got := &testpb.Everything{}, &testpb.Everything{}
		wantErr, gotErr := FromValue(want, v), batch.FillTrusted(got, v)
		compareFills(t, fmt.Sprintf("batch %#v", v), want, got, wantErr, gotErr)
		batchMsgs, batchWant = append(batchMsgs, got), append(batchWant, want)
	}
	for i := range batchMsgs {
		if !proto.Equal(batchMsgs[i], batchWant[i]) {
			t.Fatalf("batch message %d changed: %v", i, batchMsgs[i])
		}
	}
	// Messages the fast path leaves to FromValue, and a dynamic message.
	others := []func() proto.Message{
		func() proto.Message { return &testpb.OpTestRename{} },
		func() proto.Message { return &testpb.Mixed{} },
		func() proto.Message { return &testpb.JobLike{} },
		func() proto.Message { return &testpb.UnwrapChoice{} },
		func() proto.Message { return &testpb.StrictSpec{} },
		func() proto.Message { return &testpb.AnyOp{} },
		func() proto.Message { return &testpb.InlineOpBody{} },
		func() proto.Message { return &testpb.BenchInstance{} },
		func() proto.Message { return &testpb.Nic{} },
		func() proto.Message { return &testpb.Timestamp{} },
		func() proto.Message { return &testpb.Dependency{} },
		func() proto.Message { return &testpb.LogEntry{} },
		func() proto.Message { return &rapiv2.QueryCell{} },
		func() proto.Message { return &rapiv2.Instance{} },
		func() proto.Message { return &rapiv2.ClusterInfo{} },
		func() proto.Message { return dynamicpb.NewMessage((&testpb.Mixed{}).ProtoReflect().Descriptor()) },
		func() proto.Message { return dynamicpb.NewMessage((&testpb.Everything{}).ProtoReflect().Descriptor()) },
	}
	for _, newMsg := range others {
		for _, v := range values {
			sameAsFromValue(t, newMsg, v)
		}
		sameAsFromValue(t, newMsg, map[string]any{"new_name": "x", "instance_name": "y", "mac": "m"})
	}
	if err := FillTrusted(nil, map[string]any{}); err == nil {
		t.Fatal("FillTrusted(nil) succeeded")
	}
}

// TestFillTrustedDeep checks values nested beyond the fast path's limit.
func TestFillTrustedDeep(t *testing.T) {
	for _, depth := range []int{maxFastDepth - 2, maxFastDepth + 5, maxDepth + 5} {
		var v any = "leaf"
		for i := 0; i < depth; i++ {
			if i%2 == 0 {
				v = []any{v}
			} else {
				v = map[string]any{"k": v}
			}
		}
		sameAsFromValue(t, func() proto.Message { return &testpb.Everything{} }, map[string]any{"hvparams": map[string]any{"x": v}})
		sameAsFromValue(t, func() proto.Message { return &testpb.Everything{} }, map[string]any{"anything": v})
	}
}

func TestFillTrustedBenchInstance(t *testing.T) {
	for _, m := range benchInstances(5) {
		v, err := ToValue(m)
		if err != nil {
			t.Fatal(err)
		}
		sameAsFromValue(t, func() proto.Message { return &testpb.BenchInstance{} }, domainShape(v))
		sameAsFromValue(t, func() proto.Message { return &testpb.BenchInstance{} }, v)
	}
}

// domainShape turns a parsed JSON value (Object, json.Number) into what a
// domain layer holds: map[string]any, int64 and float64.
func domainShape(v any) any {
	switch t := v.(type) {
	case Object:
		m := make(map[string]any, len(t))
		for _, mem := range t {
			m[mem.Key] = domainShape(mem.Value)
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = domainShape(x)
		}
		return out
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		f, _ := strconv.ParseFloat(string(t), 64)
		return f
	}
	return v
}

func TestRowFiller(t *testing.T) {
	keys := []string{"name", "tags", "bogus", "hvparams", "maybe_int", "nics", "anything", "choice_a"}
	rows := [][]any{
		{"a", []string{"x"}, 1, map[string]any{"k": 1}, int64(3), []any{map[string]any{"mac": "m"}}, nil, nil},
		{nil, nil, nil, nil, nil, nil, nil, nil},
		{"b", []any{}, nil, map[string]any{}, nil, []any{}, []any{1}, "x"},
		{5, nil, nil, nil, nil, nil, nil, nil},                // error
		{nil, nil, nil, "x", nil, nil, nil, nil},              // error
		{nil, nil, nil, nil, 2.5, nil, nil, nil},              // error
		{"\xff", []any{"\xfe"}, nil, nil, 2.0, nil, nil, nil}, // invalid UTF-8
	}
	rf := NewRowFiller(&testpb.Everything{}, keys)
	var batch Batch
	var batchMsgs, batchWant []proto.Message
	dyn := dynamicpb.NewMessage((&testpb.Everything{}).ProtoReflect().Descriptor())
	for _, row := range rows {
		obj := map[string]any{}
		for i, v := range row {
			if v != nil {
				obj[keys[i]] = v
			}
		}
		want := &testpb.Everything{}
		wantErr := FromValue(want, obj)
		got := &testpb.Everything{Name: "stale", Tags: []string{"old"}}
		gotErr := rf.Fill(got, row)
		compareFills(t, fmt.Sprintf("row %#v", row), want, got, wantErr, gotErr)
		got = &testpb.Everything{Name: "stale", Tags: []string{"old"}}
		gotErr = batch.FillRow(rf, got, row)
		compareFills(t, fmt.Sprintf("batch row %#v", row), want, got, wantErr, gotErr)
		batchMsgs = append(batchMsgs, got)
		batchWant = append(batchWant, want)
		// A dynamic message goes through FromValue.
		gotErr = rf.Fill(dyn, row)
		compareFills(t, fmt.Sprintf("dynamic row %#v", row), want, dyn, wantErr, gotErr)
	}
	// The messages of a batch do not overwrite each other.
	for i := range batchMsgs {
		if !proto.Equal(batchMsgs[i], batchWant[i]) {
			t.Fatalf("batch message %d changed: %v", i, batchMsgs[i])
		}
	}
	if err := rf.Fill(&testpb.Everything{}, []any{"short"}); err == nil {
		t.Fatal("Fill with too few values succeeded")
	}
	// Two keys for one field, a message type without a plan, no prototype.
	for _, tc := range []struct {
		prototype proto.Message
		keys      []string
		row       []any
	}{
		{&testpb.Everything{}, []string{"name", "name"}, []any{"a", "b"}},
		{&testpb.Mixed{}, []string{"flag"}, []any{true}},
		{&testpb.OpTestRename{}, []string{"new_name", "bogus"}, []any{"n", 1}},
		{nil, []string{"name"}, []any{"a"}},
	} {
		rf := NewRowFiller(tc.prototype, tc.keys)
		if tc.prototype == nil {
			if err := rf.Fill(&testpb.Everything{}, tc.row); err != nil {
				t.Fatalf("no prototype: %v", err)
			}
			continue
		}
		obj := Object{}
		for i, v := range tc.row {
			obj = append(obj, Member{tc.keys[i], v})
		}
		want, got := tc.prototype.ProtoReflect().New().Interface(), tc.prototype.ProtoReflect().New().Interface()
		wantErr := FromValue(want, obj)
		gotErr := rf.Fill(got, tc.row)
		compareFills(t, fmt.Sprintf("%T %v", tc.prototype, tc.keys), want, got, wantErr, gotErr)
	}
}

// FuzzFillTrusted checks FillTrusted against FromValue on arbitrary JSON,
// both as parsed (Object, json.Number) and in the domain's shape.
func FuzzFillTrusted(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"name": "x", "tags": ["a"], "hvparams": {"a": [1, {"b": null}]}, "nics": [{"mac": "m"}]}`,
		`{"small": 1e10, "big": 1.5, "disk.sizes": [1, 2.0], "counters": {"a": 1}, "labels": {"a": "b"}}`,
		`{"maybe_template": "drbd", "templates": ["plain"], "times": [[1, 2]], "anything": {"x": [true]}}`,
		`{"nic_map": {"a": {"ip": "1.2.3.4"}}, "w_int": 3, "choice_a": "x", "prio_map": {"a": "high"}}`,
		`[true, 1, 2, 0.5, "l", "drbd", -10, ["a"], {"a": 1}, [1, 2], {"x": [1, null]}, [null], 5, {"mac": "m"}]`,
		`[0, null]`, `[2, {"a": [1]}]`, `[1]`, `[true, 1e3]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseJSON(data, maxDepth)
		if err != nil {
			return
		}
		for _, x := range []any{v, domainShape(v)} {
			sameAsFromValue(t, func() proto.Message { return &testpb.Everything{} }, x)
			sameAsFromValue(t, func() proto.Message { return &testpb.BenchInstance{} }, x)
			sameAsFromValue(t, func() proto.Message { return &testpb.Mixed{} }, x)
			sameAsFromValue(t, func() proto.Message { return &rapiv2.QueryCell{} }, x)
		}
	})
}

func BenchmarkFillTrusted(b *testing.B) {
	insts := benchInstances(100)
	vals := make([]any, len(insts))
	for i, m := range insts {
		v, err := ToValue(m)
		if err != nil {
			b.Fatal(err)
		}
		vals[i] = domainShape(v)
	}
	for _, bc := range []struct {
		name string
		fill func(proto.Message, any) error
	}{{"FromValue", FromValue}, {"FillTrusted", FillTrusted}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				for _, v := range vals {
					if err := bc.fill(&testpb.BenchInstance{}, v); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
