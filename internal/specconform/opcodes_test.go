package specconform

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

type specType struct {
	Type     string          `json:"type"`
	Nullable bool            `json:"nullable"`
	NonEmpty bool            `json:"non_empty"`
	Values   json.RawMessage `json:"values"`
	Items    json.RawMessage `json:"items"`
}

type specParam struct {
	Name     string   `json:"name"`
	Required bool     `json:"required"`
	Sig      string   `json:"sig"`
	Type     specType `json:"type"`
}

type specOpcode struct {
	Class        string      `json:"class"`
	OpID         string      `json:"op_id"`
	Params       []specParam `json:"params"`
	SummaryField *string     `json:"summary_field"`
	Rapi         struct {
		Reachable bool `json:"reachable"`
	} `json:"rapi"`
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "spec", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// opcodeMessages returns the opcode messages of the OpCode oneof by OP_ID.
func opcodeMessages(t *testing.T) map[string]protoreflect.MessageDescriptor {
	oneof := (&rapiv2.OpCode{}).ProtoReflect().Descriptor().Oneofs().ByName("op")
	if oneof == nil {
		t.Fatal("OpCode has no oneof op")
	}
	out := map[string]protoreflect.MessageDescriptor{}
	fields := oneof.Fields()
	for i := 0; i < fields.Len(); i++ {
		md := fields.Get(i).Message()
		info, _ := proto.GetExtension(md.Options(), rapiv2.E_Opcode).(*rapiv2.OpcodeInfo)
		if info == nil {
			t.Errorf("%s has no opcode option", md.FullName())
			continue
		}
		if _, dup := out[info.GetId()]; dup {
			t.Errorf("%s appears twice in OpCode", info.GetId())
		}
		out[info.GetId()] = md
	}
	return out
}

// TestOpcodesMatchSpec checks that every opcode of spec/opcodes.json is a
// message of the OpCode oneof with one field per parameter, named as in
// Ganeti, with Ganeti's type signature and flags, and enum values that are
// exactly the spec's.
func TestOpcodesMatchSpec(t *testing.T) {
	var spec struct {
		Opcodes map[string]specOpcode `json:"opcodes"`
	}
	readJSON(t, "opcodes.json", &spec)
	msgs := opcodeMessages(t)
	if len(spec.Opcodes) != 75 || len(msgs) != len(spec.Opcodes) {
		t.Fatalf("spec has %d opcodes, the proto %d", len(spec.Opcodes), len(msgs))
	}
	for id, op := range spec.Opcodes {
		md, ok := msgs[id]
		if !ok {
			t.Errorf("%s: no message", id)
			continue
		}
		info := proto.GetExtension(md.Options(), rapiv2.E_Opcode).(*rapiv2.OpcodeInfo)
		if info.GetClassName() != op.Class || string(md.Name()) != op.Class {
			t.Errorf("%s: class %q (message %s), spec %q", id, info.GetClassName(), md.Name(), op.Class)
		}
		summary := ""
		if op.SummaryField != nil {
			summary = *op.SummaryField
		}
		if info.GetSummaryField() != summary || info.GetRapiReachable() != op.Rapi.Reachable {
			t.Errorf("%s: opcode option %v disagrees with the spec", id, info)
		}
		if md.Fields().Len() != len(op.Params) {
			t.Errorf("%s: %d fields, spec has %d parameters", id, md.Fields().Len(), len(op.Params))
		}
		for _, p := range op.Params {
			fd := md.Fields().ByName(protoreflect.Name(p.Name))
			if fd == nil {
				t.Errorf("%s: no field for parameter %s", id, p.Name)
				continue
			}
			if fd.JSONName() != p.Name {
				t.Errorf("%s.%s: json_name %q", id, p.Name, fd.JSONName())
			}
			ps, _ := proto.GetExtension(fd.Options(), rapiv2.E_Param).(*rapiv2.ParamSpec)
			if ps == nil {
				t.Errorf("%s.%s: no param option", id, p.Name)
				continue
			}
			if ps.GetSig() != p.Sig || ps.GetRequired() != p.Required || ps.GetNullable() != p.Type.Nullable {
				t.Errorf("%s.%s: param option %v, spec sig %q required %v nullable %v", id, p.Name, ps, p.Sig, p.Required, p.Type.Nullable)
			}
			checkEnum(t, id+"."+p.Name, fd, p.Type)
		}
	}
}

// checkEnum compares an enum field's legacy values with the spec's enum
// (for a field of a list type, with its item enum).
func checkEnum(t *testing.T, what string, fd protoreflect.FieldDescriptor, st specType) {
	if fd.Kind() != protoreflect.EnumKind {
		return
	}
	if st.Type == "list" && len(st.Items) > 0 {
		var item specType
		if err := json.Unmarshal(st.Items, &item); err == nil {
			st = item
		}
	}
	if st.Type != "enum" {
		t.Errorf("%s: proto enum for spec type %s", what, st.Type)
		return
	}
	var values []any
	if err := json.Unmarshal(st.Values, &values); err != nil {
		t.Errorf("%s: spec enum values: %v", what, err)
		return
	}
	var want []string
	for _, v := range values {
		b, _ := json.Marshal(v)
		want = append(want, string(b))
	}
	var got []string
	vals := fd.Enum().Values()
	for i := 0; i < vals.Len(); i++ {
		lv, _ := proto.GetExtension(vals.Get(i).Options(), rapiv2.E_Legacy).(*rapiv2.LegacyValue)
		switch x := lv.GetValue().(type) {
		case *rapiv2.LegacyValue_Str:
			b, _ := json.Marshal(x.Str)
			got = append(got, string(b))
		case *rapiv2.LegacyValue_Num:
			b, _ := json.Marshal(x.Num)
			got = append(got, string(b))
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(want, ",") != strings.Join(got, ",") {
		t.Errorf("%s: enum values %v, spec %v", what, got, want)
	}
}

// TestReadMessagesMatchFieldLists checks that the read messages hold exactly
// Ganeti's rlib2 field lists, in order, keyed by the legacy names.
func TestReadMessagesMatchFieldLists(t *testing.T) {
	var spec struct {
		Lists map[string]struct {
			Fields []struct {
				Name string `json:"name"`
			} `json:"fields"`
		} `json:"rlib2_field_lists"`
	}
	readJSON(t, "fields.json", &spec)
	cases := map[string]proto.Message{
		"N_FIELDS":           &rapiv2.Node{},
		"I_FIELDS":           &rapiv2.Instance{},
		"G_FIELDS":           &rapiv2.Group{},
		"NET_FIELDS":         &rapiv2.Network{},
		"FILTER_RULE_FIELDS": &rapiv2.FilterRule{},
		"J_FIELDS":           &rapiv2.Job{},
		"J_FIELDS_BULK":      &rapiv2.JobSummary{},
	}
	for list, msg := range cases {
		var want []string
		for _, f := range spec.Lists[list].Fields {
			want = append(want, f.Name)
		}
		var got []string
		fds := msg.ProtoReflect().Descriptor().Fields()
		for i := 0; i < fds.Len(); i++ {
			fd := fds.Get(i)
			if fd.JSONName() == "secondary_ip" { // GET /2/nodes/[node_name] extra (fields.json response_extras)
				continue
			}
			if fd.JSONName() == "log_serial_after" || fd.JSONName() == "version" { // WatchJob's deltas and versions: typed API only, never set on the legacy surface
				continue
			}
			if typedOnly, _ := proto.GetExtension(fd.Options(), rapiv2.E_TypedOnly).(bool); typedOnly { // typed API only (an instance's hypervisor)
				continue
			}
			got = append(got, fd.JSONName())
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: message %s has\n %v\nspec:\n %v", list, msg.ProtoReflect().Descriptor().Name(), got, want)
		}
	}
}

// TestLegacyBodyRulesMatchSpec checks every method's legacy_body option
// (static, renamed and forbidden parameters) against resources.json, and
// that every write whose body holds opcode parameters has one.
func TestLegacyBodyRulesMatchSpec(t *testing.T) {
	var spec struct {
		Resources map[string]struct {
			Methods map[string]struct {
				Body struct {
					Kind            string            `json:"kind"`
					StaticParams    []string          `json:"static_params"`
					Renames         map[string]string `json:"renames"`
					ForbiddenParams []string          `json:"forbidden_params"`
				} `json:"body"`
				StaticParams    []string          `json:"static_params"`
				Renames         map[string]string `json:"renames"`
				ForbiddenParams []string          `json:"forbidden_params"`
			} `json:"methods"`
		} `json:"resources"`
	}
	readJSON(t, "resources.json", &spec)
	opcodeBodies := map[string]bool{"opcode_params": true, "opcode_params_required": true, "opcode_params_or_query": true,
		"opcode_params_unless_query": true, "instance_create_v1": true, "multi_alloc": true}
	checked := 0
	for _, route := range routeMethods(t) {
		res, ok := spec.Resources[route.specPath]
		if !ok {
			t.Errorf("%s: no spec resource %s", route.full, route.specPath)
			continue
		}
		m := res.Methods[route.httpMethod]
		rules, _ := proto.GetExtension(route.md.Options(), rapiv2.E_LegacyBody).(*rapiv2.LegacyBodyRules)
		if !opcodeBodies[m.Body.Kind] {
			if rules != nil {
				t.Errorf("%s: legacy_body option on a %s body", route.full, m.Body.Kind)
			}
			continue
		}
		if rules == nil {
			t.Errorf("%s: %s body without a legacy_body option", route.full, m.Body.Kind)
			continue
		}
		checked++
		// resources.json keeps each list on the method or on its body.
		static, renames, forbidden := m.StaticParams, m.Renames, m.ForbiddenParams
		if static == nil {
			static = m.Body.StaticParams
		}
		if renames == nil {
			renames = m.Body.Renames
		}
		if forbidden == nil {
			forbidden = m.Body.ForbiddenParams
		}
		if strings.Join(rules.GetStaticParams(), ",") != strings.Join(static, ",") {
			t.Errorf("%s: static %v, spec %v", route.full, rules.GetStaticParams(), static)
		}
		got := map[string]string{}
		for _, r := range rules.GetRenames() {
			got[r.GetFrom()] = r.GetTo()
		}
		if len(got) != len(renames) {
			t.Errorf("%s: renames %v, spec %v", route.full, got, renames)
		}
		for from, to := range renames {
			if got[from] != to {
				t.Errorf("%s: rename %s -> %q, spec %q", route.full, from, got[from], to)
			}
		}
		if strings.Join(rules.GetForbiddenParams(), ",") != strings.Join(forbidden, ",") {
			t.Errorf("%s: forbidden %v, spec %v", route.full, rules.GetForbiddenParams(), forbidden)
		}
		if rules.GetVersioned() != (m.Body.Kind == "instance_create_v1") {
			t.Errorf("%s: versioned %v for a %s body", route.full, rules.GetVersioned(), m.Body.Kind)
		}
	}
	if checked < 25 {
		t.Errorf("only %d methods with opcode bodies checked", checked)
	}
}

type routeMethod struct {
	full, httpMethod, specPath string
	md                         protoreflect.MethodDescriptor
}

// routeMethods lists the API's methods with their legacy binding.
func routeMethods(t *testing.T) []routeMethod {
	var out []routeMethod
	protoregistry.GlobalFiles.RangeFilesByPackage("ganeti.rapi.v2", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			mds := fd.Services().Get(i).Methods()
			for j := 0; j < mds.Len(); j++ {
				md := mds.Get(j)
				rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
				if rule == nil {
					continue
				}
				var method, tmpl string
				switch p := rule.GetPattern().(type) {
				case *annotations.HttpRule_Get:
					method, tmpl = "GET", p.Get
				case *annotations.HttpRule_Put:
					method, tmpl = "PUT", p.Put
				case *annotations.HttpRule_Post:
					method, tmpl = "POST", p.Post
				case *annotations.HttpRule_Delete:
					method, tmpl = "DELETE", p.Delete
				}
				specPath := strings.NewReplacer("{", "[", "}", "]").Replace(tmpl)
				out = append(out, routeMethod{full: string(md.FullName()), httpMethod: method, specPath: specPath, md: md})
			}
		}
		return true
	})
	return out
}
