package legacyjson

//go:generate sh -c "cd testdata && ../../../node_modules/.bin/buf generate"

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson/testdata/testpb"
)

// mustMarshal is Marshal without the trailing newline.
func mustMarshal(t testing.TB, m Marshaler, v any) string {
	t.Helper()
	b, err := m.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%T): %v", v, err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Fatalf("Marshal(%T) = %q: no trailing newline", v, b)
	}
	return string(b[:len(b)-1])
}

func TestLegacyKeys(t *testing.T) {
	mi := infoFor((&testpb.Everything{}).ProtoReflect().Descriptor())
	want := map[int]string{
		1:  "name",        // no json_name
		3:  "admin_state", // explicit json_name
		12: "maybe_int",   // default json_name "maybeInt" is ignored
		20: "disk.sizes",
		21: "nic.bridges",
		38: "dry-run",
		39: "OP_ID",
	}
	for _, f := range mi.fields {
		if w, ok := want[int(f.fd.Number())]; ok && f.key != w {
			t.Errorf("field %d: key %q, want %q", f.fd.Number(), f.key, w)
		}
	}
	for i := 1; i < len(mi.fields); i++ {
		if mi.fields[i-1].fd.Number() >= mi.fields[i].fd.Number() {
			t.Fatalf("fields not in field-number order")
		}
	}
	if !infoFor((&testpb.Timestamp{}).ProtoReflect().Descriptor()).tuple {
		t.Errorf("Timestamp: tuple option not read")
	}
	op := infoFor((&testpb.OpTestRename{}).ProtoReflect().Descriptor())
	if op.opcode.GetId() != "OP_TEST_RENAME" || op.opcode.GetClassName() != "OpTestRename" {
		t.Errorf("opcode option = %v", op.opcode)
	}
	if f := op.byKey["new_name"]; !f.spec.GetRequired() || !f.spec.GetNonEmpty() {
		t.Errorf("new_name spec = %v", f.spec)
	}
}

func TestDefaultJSONName(t *testing.T) {
	for in, want := range map[string]string{
		"name": "name", "instance_name": "instanceName", "a__b": "aB", "a_1b": "a1b", "_x": "X", "x_": "x", "OP_ID": "OPID",
	} {
		if got := defaultJSONName(in); got != want {
			t.Errorf("defaultJSONName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestObject(t *testing.T) {
	o := Object{{"b", 1}, {"a", "x"}}
	if v, ok := o.Get("a"); !ok || v != "x" {
		t.Errorf("Get(a) = %v, %v", v, ok)
	}
	if _, ok := o.Get("c"); ok {
		t.Errorf("Get(c) found")
	}
	b, err := o.MarshalJSON()
	if err != nil || string(b) != `{"b":1,"a":"x"}` {
		t.Errorf("MarshalJSON = %s, %v", b, err)
	}
}

// equalProto reports proto equality with a readable failure.
func equalProto(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}
