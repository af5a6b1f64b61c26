package legacyjson

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// secretOpcodes are opcodes with private values at every place one can be:
// private Struct fields (one and two dictionary levels) and private keys
// inside free-form values (OP_INSTANCE_MULTI_ALLOC's instances).
func secretOpcodes(t *testing.T) []*rapiv2.OpCode {
	inst, err := structpb.NewValue(map[string]any{"instance_name": "a", "hvparams": map[string]any{"kernel_path": "/k"},
		"osparams_secret": map[string]any{"pw": "leak-3"}, "osparams_private": map[string]any{"key": "leak-4"}})
	if err != nil {
		t.Fatal(err)
	}
	return []*rapiv2.OpCode{
		{Op: &rapiv2.OpCode_InstanceCreate{InstanceCreate: &rapiv2.OpInstanceCreate{
			InstanceName:    proto.String("x"),
			Hvparams:        mustStruct(t, map[string]any{"kernel_path": "/boot/k"}),
			OsparamsSecret:  mustStruct(t, map[string]any{"root_pw": "leak-1", "n": 7}),
			OsparamsPrivate: mustStruct(t, map[string]any{"api_key": "leak-2"}),
		}}},
		{Op: &rapiv2.OpCode_InstanceMultiAlloc{InstanceMultiAlloc: &rapiv2.OpInstanceMultiAlloc{
			Instances: []*structpb.Value{inst},
		}}},
		{Op: &rapiv2.OpCode_ClusterSetParams{ClusterSetParams: &rapiv2.OpClusterSetParams{
			OsparamsPrivateCluster: mustStruct(t, map[string]any{"debian": map[string]any{"root_pw": "leak-5"}}),
		}}},
	}
}

// TestRedact: Redact replaces every private value by "<redacted>" in a
// copy (keys kept, per the parameter's dictionary levels), leaves the
// other values and the original alone, and returns an opcode without
// private values as it is.
func TestRedact(t *testing.T) {
	want := []string{
		`"osparams_secret":{"n":"<redacted>","root_pw":"<redacted>"}`,
		`"osparams_private":{"api_key":"<redacted>"}`,
		`"hvparams":{"kernel_path":"/boot/k"}`,
		`"osparams_secret":{"pw":"<redacted>"}`,
		`"osparams_private":{"key":"<redacted>"}`,
		`"hvparams":{"kernel_path":"/k"}`,
		`"osparams_private_cluster":{"debian":{"root_pw":"<redacted>"}}`,
	}
	var all string
	for _, op := range secretOpcodes(t) {
		before := protojson.Format(op)
		r, changed := Redact(op)
		if !changed {
			t.Errorf("nothing redacted in %s", before)
			continue
		}
		if protojson.Format(op) != before {
			t.Errorf("Redact modified its argument")
		}
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		all += strings.ReplaceAll(string(b), " ", "")
		// Idempotent.
		if _, again := Redact(r); again {
			t.Errorf("a redacted opcode is redacted again: %s", b)
		}
	}
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing %s in %s", w, all)
		}
	}
	if strings.Contains(all, "leak-") {
		t.Errorf("a secret is left: %s", all)
	}
	plain := &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Tags: []string{"a"}}}}
	if r, changed := Redact(plain); changed || r != proto.Message(plain) {
		t.Errorf("an opcode without private values was copied")
	}
	empty := &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceCreate{InstanceCreate: &rapiv2.OpInstanceCreate{OsparamsSecret: &structpb.Struct{}}}}
	if _, changed := Redact(empty); changed {
		t.Errorf("an empty osparams_secret was redacted")
	}
}

// TestMarshalPrivateLevels: the legacy encoder writes private values as
// Ganeti's RAPI does (serializer.WrapPrivateValues, then null for each
// Private): osparams_private_cluster keeps both levels of keys, and the
// private keys inside a free-form value (a multi-allocation's instances)
// have null values, whether the opcode was redacted first or not.
func TestMarshalPrivateLevels(t *testing.T) {
	for _, op := range secretOpcodes(t) {
		got := mustMarshal(t, Marshaler{}, op)
		r, _ := Redact(op)
		if again := mustMarshal(t, Marshaler{}, r); again != got {
			t.Errorf("the redacted opcode encodes differently:\n%s\n%s", got, again)
		}
		if v, err := ToValue(op); err != nil || strings.Contains(mustMarshal(t, Marshaler{}, v), "leak-") {
			t.Errorf("ToValue: %v %v", v, err)
		}
		if strings.Contains(got, "leak-") || strings.Contains(got, "redacted") {
			t.Errorf("encoded: %s", got)
		}
		var want []string
		switch op.Op.(type) {
		case *rapiv2.OpCode_InstanceCreate:
			want = []string{`"osparams_secret":{"n":null,"root_pw":null}`, `"osparams_private":{"api_key":null}`, `"hvparams":{"kernel_path":"/boot/k"}`}
		case *rapiv2.OpCode_InstanceMultiAlloc:
			want = []string{`"osparams_secret":{"pw":null}`, `"osparams_private":{"key":null}`, `"hvparams":{"kernel_path":"/k"}`}
		case *rapiv2.OpCode_ClusterSetParams:
			want = []string{`"osparams_private_cluster":{"debian":{"root_pw":null}}`}
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("missing %s in %s", w, got)
			}
		}
	}
}
