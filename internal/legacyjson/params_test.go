package legacyjson

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// The typed parameter messages of ganeti/rapi/v2/params.proto are checked
// against spec/constants.json both ways (every parameter is a field of the
// right type, every field is a parameter), the per-hypervisor messages
// against the hvparams Ganeti 3.0.2 answers in GET /2/info, and every
// parameter round-trips through the legacy JSON byte for byte.

type paramSpec struct {
	BEParams   map[string]string `json:"beparams"`
	NDParams   map[string]string `json:"ndparams"`
	NICParams  map[string]string `json:"nicparams"`
	DiskParams map[string]string `json:"diskparams"`
	HVParams   map[string]string `json:"hvparams"`
	IPolicy    struct {
		ISpecParams map[string]string `json:"ispec_params"`
		Keys        []string          `json:"keys"`
		RatioParams []string          `json:"ratio_params"`
		ISpecsMin   string            `json:"ispecs_min"`
		ISpecsMax   string            `json:"ispecs_max"`
		ISpecsMM    string            `json:"ispecs_minmax"`
		ISpecsStd   string            `json:"ispecs_std"`
	} `json:"ipolicy"`
	Hypervisors   []string `json:"hypervisors"`
	DiskTemplates []string `json:"disk_templates"`
	ValueTypes    []string `json:"param_value_types"`
}

func readParamSpec(t *testing.T) paramSpec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "spec", "constants.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s paramSpec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// goldenClusterHVParams is the hvparams of Ganeti 3.0.2's GET /2/info.
func goldenClusterHVParams(t *testing.T) map[string]map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(testutil.SharedDir(t), "golden", "captures.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var c struct {
			Method, Path string
			Status       int
			Response     json.RawMessage `json:"response_json"`
		}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		if c.Method == "GET" && c.Path == "/2/info" && c.Status == 200 {
			var info struct {
				HVParams map[string]map[string]any `json:"hvparams"`
			}
			if err := json.Unmarshal(c.Response, &info); err != nil {
				t.Fatal(err)
			}
			return info.HVParams
		}
	}
	t.Fatal("no GET /2/info capture")
	return nil
}

// kindOf is the Ganeti value type a parameter field holds.
func kindOf(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "bool"
	case protoreflect.Int64Kind:
		return "int"
	case protoreflect.DoubleKind:
		return "float"
	case protoreflect.StringKind:
		return "string"
	case protoreflect.MessageKind:
		if fd.Message().FullName() == "ganeti.rapi.v2.MaybeString" {
			return "maybe-string"
		}
	}
	return "?" + string(fd.Kind().String())
}

// fieldTypes are the fields of md by legacy key, with their value type.
func fieldTypes(md protoreflect.MessageDescriptor) map[string]string {
	out := map[string]string{}
	fds := md.Fields()
	for i := 0; i < fds.Len(); i++ {
		out[fds.Get(i).JSONName()] = kindOf(fds.Get(i))
	}
	return out
}

// specTypes maps Ganeti's "size" to int: a size is an integer of MiB.
func specTypes(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if v == "size" {
			v = "int"
		}
		out[k] = v
	}
	return out
}

func diffTypes(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: parameter %q (%s) has no field", what, k, w)
		} else if g != w {
			t.Errorf("%s: field %q is %s, constants.json says %s", what, k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: field %q is not a parameter in constants.json", what, k)
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func descOf(m proto.Message) protoreflect.MessageDescriptor { return m.ProtoReflect().Descriptor() }

func TestParamMessagesMatchConstants(t *testing.T) {
	spec := readParamSpec(t)
	be := specTypes(spec.BEParams)
	be["memory"] = "int" // rlib2's copy of maxmem in an instance's beparams
	diffTypes(t, "BeParams", fieldTypes(descOf(&rapiv2.BeParams{})), be)
	diffTypes(t, "NdParams", fieldTypes(descOf(&rapiv2.NdParams{})), specTypes(spec.NDParams))
	diffTypes(t, "NicLinkParams", fieldTypes(descOf(&rapiv2.NicLinkParams{})), specTypes(spec.NICParams))
	diffTypes(t, "DiskTemplateParams", fieldTypes(descOf(&rapiv2.DiskTemplateParams{})), specTypes(spec.DiskParams))
	diffTypes(t, "ISpecs", fieldTypes(descOf(&rapiv2.ISpecs{})), specTypes(spec.IPolicy.ISpecParams))

	// The policy: its keys, the ratios as floats, min/max/std as ISpecs.
	ipol := map[string]string{}
	fds := descOf(&rapiv2.IPolicy{}).Fields()
	for i := 0; i < fds.Len(); i++ {
		ipol[fds.Get(i).JSONName()] = ""
	}
	if got, want := keysOf(ipol), slices.Sorted(slices.Values(spec.IPolicy.Keys)); !slices.Equal(got, want) {
		t.Errorf("IPolicy fields %v, constants.json ipolicy keys %v", got, want)
	}
	for _, r := range spec.IPolicy.RatioParams {
		if fd := fds.ByJSONName(r); fd == nil || fd.Kind() != protoreflect.DoubleKind {
			t.Errorf("IPolicy: ratio %q is not a double field", r)
		}
	}
	for key, msg := range map[string]proto.Message{
		spec.IPolicy.ISpecsStd:              &rapiv2.IPolicy{},
		spec.IPolicy.ISpecsMin:              &rapiv2.MinMaxISpecs{},
		spec.IPolicy.ISpecsMax:              &rapiv2.MinMaxISpecs{},
		spec.IPolicy.ISpecsMM + "/repeated": &rapiv2.IPolicy{},
	} {
		name, repeated := strings.CutSuffix(key, "/repeated")
		fd := descOf(msg).Fields().ByJSONName(name)
		switch {
		case fd == nil:
			t.Errorf("%s has no field %q", descOf(msg).Name(), name)
		case repeated && (!fd.IsList() || fd.Message().FullName() != "ganeti.rapi.v2.MinMaxISpecs"):
			t.Errorf("%s.%s is not a list of MinMaxISpecs", descOf(msg).Name(), name)
		case !repeated && (fd.IsList() || fd.Message().FullName() != "ganeti.rapi.v2.ISpecs"):
			t.Errorf("%s.%s is not an ISpecs", descOf(msg).Name(), name)
		}
	}

	// Disk parameters: one field per disk template.
	dp := fieldTypes(descOf(&rapiv2.DiskParams{}))
	if got, want := keysOf(dp), slices.Sorted(slices.Values(spec.DiskTemplates)); !slices.Equal(got, want) {
		t.Errorf("DiskParams fields %v, disk templates %v", got, want)
	}

	// Hypervisors: HvParams' members and ClusterHvParams' fields are the
	// hypervisors, of the same per-hypervisor message; each message has
	// exactly the parameters Ganeti answers for that hypervisor, typed as
	// constants.json says, and together they are every hvparam.
	golden := goldenClusterHVParams(t)
	oneof := descOf(&rapiv2.HvParams{}).Oneofs().ByName("hypervisor")
	cluster := descOf(&rapiv2.ClusterHvParams{}).Fields()
	if oneof.Fields().Len() != len(spec.Hypervisors) || cluster.Len() != len(spec.Hypervisors) {
		t.Errorf("HvParams has %d members, ClusterHvParams %d fields, want %d hypervisors",
			oneof.Fields().Len(), cluster.Len(), len(spec.Hypervisors))
	}
	union := map[string]string{}
	for _, hv := range spec.Hypervisors {
		member, field := oneof.Fields().ByJSONName(hv), cluster.ByJSONName(hv)
		if member == nil || field == nil {
			t.Errorf("hypervisor %q: HvParams member %v, ClusterHvParams field %v", hv, member, field)
			continue
		}
		if member.Message() != field.Message() {
			t.Errorf("hypervisor %q: HvParams and ClusterHvParams use different messages", hv)
		}
		got := fieldTypes(member.Message())
		want := map[string]string{}
		for k := range golden[hv] {
			want[k] = specTypes(spec.HVParams)[k]
		}
		diffTypes(t, string(member.Message().Name()), got, want)
		for k, v := range got {
			union[k] = v
		}
	}
	diffTypes(t, "the hypervisor messages together", union, specTypes(spec.HVParams))
}

// sampleValue is a legacy JSON value of Ganeti type typ, distinct per key.
func sampleValue(typ string, i int) []any {
	switch typ {
	case "bool":
		return []any{i%2 == 0}
	case "int", "size":
		return []any{int64(100 + i)}
	case "float":
		// An integral float is written as Ganeti holds it: an integer.
		return []any{1.5 + float64(i), float64(i)}
	case "string":
		return []any{"v" + string(rune('a'+i%26)), ""}
	case "maybe-string":
		return []any{"s", nil}
	}
	return nil
}

// sampleParams gives every parameter of params a value, and as many
// objects as the parameter with the most sample values needs.
func sampleParams(params map[string]string) []map[string]any {
	var out []map[string]any
	for i, k := range keysOf(params) {
		for j, v := range sampleValue(params[k], i) {
			for len(out) <= j {
				out = append(out, map[string]any{})
			}
			out[j][k] = v
		}
	}
	return out
}

// roundTrip decodes doc (the legacy object of a read message) into msg
// three ways (FromValue, FillTrusted, a RowFiller), sends each through the
// proto wire format (the gRPC hop), and checks that the legacy encoding
// writes every member of doc back byte for byte (typed-only members, such
// as an instance's hypervisor, are not written).
func roundTrip(t *testing.T, what string, msg proto.Message, doc map[string]any) {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var obj any
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	keys := keysOf(doc)
	vals := make([]any, len(keys))
	for i, k := range keys {
		vals[i] = doc[k]
	}
	mi := infoFor(msg.ProtoReflect().Descriptor())
	fills := map[string]func(proto.Message) error{
		"FromValue":   func(m proto.Message) error { return FromValue(m, obj) },
		"FillTrusted": func(m proto.Message) error { return FillTrusted(m, doc) },
		"RowFiller":   func(m proto.Message) error { return NewRowFiller(m, keys).Fill(m, vals) },
	}
	for _, how := range keysOf(fills) {
		m := msg.ProtoReflect().New().Interface()
		if err := fills[how](m); err != nil {
			t.Errorf("%s: %s: %v", what, how, err)
			continue
		}
		wire, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back := msg.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(wire, back); err != nil {
			t.Fatal(err)
		}
		out, err := Marshaler{}.Marshal(back)
		if err != nil {
			t.Errorf("%s: %s: Marshal: %v", what, how, err)
			continue
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(out, &members); err != nil {
			t.Fatalf("%s: %s: %v in %s", what, how, err, out)
		}
		for _, k := range keys {
			got, ok := members[k]
			if f := mi.byKey[k]; f != nil && f.typedOnly {
				if ok {
					t.Errorf("%s: %s: typed-only %q written: %s", what, how, k, got)
				}
				continue
			}
			want, _ := json.Marshal(doc[k]) // keys sorted, compact: Ganeti's dicts
			if string(got) != string(want) {
				t.Errorf("%s: %s: %q:\n got %s\nwant %s", what, how, k, got, want)
			}
		}
	}
}

func TestParamMessagesRoundTripLegacyJSON(t *testing.T) {
	spec := readParamSpec(t)
	golden := goldenClusterHVParams(t)
	wrap := func(key string, v any, extra ...any) map[string]any {
		m := map[string]any{key: v}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i].(string)] = extra[i+1]
		}
		return m
	}
	be := map[string]string{"memory": "size"}
	for k, v := range spec.BEParams {
		be[k] = v
	}
	ispec := sampleParams(spec.IPolicy.ISpecParams)[0]
	type tc struct {
		what string
		msg  proto.Message
		docs []map[string]any
	}
	cases := []tc{{"unset parameters", &rapiv2.Node{}, []map[string]any{wrap("ndparams", map[string]any{})}}}
	for _, d := range sampleParams(be) {
		cases = append(cases, tc{"instance beparams", &rapiv2.Instance{}, []map[string]any{
			wrap("beparams", d, "custom_beparams", map[string]any{"maxmem": d["maxmem"]})}})
	}
	for _, d := range sampleParams(spec.NDParams) {
		cases = append(cases, tc{"node ndparams", &rapiv2.Node{}, []map[string]any{wrap("ndparams", d)}},
			tc{"group ndparams", &rapiv2.Group{}, []map[string]any{wrap("ndparams", d, "custom_ndparams", map[string]any{})}})
	}
	for _, d := range sampleParams(spec.NICParams) {
		cases = append(cases,
			tc{"cluster nicparams", &rapiv2.ClusterInfo{}, []map[string]any{wrap("nicparams", map[string]any{"default": d})}},
			tc{"instance custom_nicparams", &rapiv2.Instance{}, []map[string]any{wrap("custom_nicparams", []any{d, map[string]any{}})}})
	}
	for _, d := range sampleParams(spec.DiskParams) {
		all := map[string]any{}
		for i, dt := range spec.DiskTemplates {
			if i%2 == 0 {
				all[dt] = d
			} else {
				all[dt] = map[string]any{}
			}
		}
		cases = append(cases, tc{"diskparams", &rapiv2.Group{}, []map[string]any{
			wrap("diskparams", all, "custom_diskparams", map[string]any{"drbd": d})}})
	}
	for _, ratio := range []any{4.0, 2.5} {
		full := map[string]any{
			"disk-templates": []any{"drbd", "plain"},
			"minmax":         []any{map[string]any{"min": ispec, "max": ispec}},
			"spindle-ratio":  ratio, "std": ispec, "vcpu-ratio": ratio,
		}
		cases = append(cases, tc{"ipolicy", &rapiv2.Group{}, []map[string]any{
			wrap("ipolicy", full, "custom_ipolicy", map[string]any{"disk-templates": []any{}, "vcpu-ratio": ratio}),
		}}, tc{"cluster ipolicy", &rapiv2.ClusterInfo{}, []map[string]any{wrap("ipolicy", full)}})
	}
	for _, hv := range spec.Hypervisors {
		params := map[string]string{}
		for k := range golden[hv] {
			params[k] = spec.HVParams[k]
		}
		for _, d := range sampleParams(params) {
			cases = append(cases,
				tc{"instance hvparams " + hv, &rapiv2.Instance{}, []map[string]any{
					wrap("hvparams", d, "custom_hvparams", map[string]any{}, "hypervisor", hv)}},
				tc{"cluster hvparams " + hv, &rapiv2.ClusterInfo{}, []map[string]any{
					wrap("hvparams", map[string]any{hv: d, "fake": map[string]any{}},
						"os_hvp", map[string]any{"debootstrap": map[string]any{hv: d}, "noop": map[string]any{}})}})
		}
	}
	cases = append(cases, tc{"cluster osparams", &rapiv2.ClusterInfo{}, []map[string]any{
		wrap("osparams", map[string]any{"debootstrap": map[string]any{"dhcp": "yes", "x": ""}, "noop": map[string]any{}})}})

	for _, c := range cases {
		for _, doc := range c.docs {
			roundTrip(t, c.what, c.msg, doc)
		}
	}
}

// TestHvParamsVariant checks how an instance's hypervisor chooses the
// member of its hvparams, on every decoding path.
func TestHvParamsVariant(t *testing.T) {
	kvm := map[string]any{"acpi": true, "root_path": nil}
	cases := []struct {
		name    string
		doc     map[string]any
		wantErr bool
		check   func(*rapiv2.Instance) bool
	}{
		{"kvm", map[string]any{"hypervisor": "kvm", "hvparams": kvm, "custom_hvparams": map[string]any{}},
			false, func(i *rapiv2.Instance) bool {
				return i.GetHvparams().GetKvm().GetAcpi() && i.GetHvparams().GetKvm().GetRootPath() != nil &&
					i.GetHvparams().GetKvm().GetRootPath().Value == nil && i.GetCustomHvparams().GetKvm() != nil
			}},
		{"xen-pvm", map[string]any{"hypervisor": "xen-pvm", "hvparams": map[string]any{"root_path": "/dev/xvda1"}},
			false, func(i *rapiv2.Instance) bool {
				return i.GetHvparams().GetXenPvm().GetRootPath().GetValue() == "/dev/xvda1"
			}},
		{"null without hypervisor", map[string]any{"hvparams": nil}, false,
			func(i *rapiv2.Instance) bool { return i.Hvparams == nil }},
		{"no hypervisor", map[string]any{"hvparams": kvm}, true, nil},
		{"unknown hypervisor", map[string]any{"hypervisor": "vmware", "hvparams": kvm}, true, nil},
		{"hypervisor not a string", map[string]any{"hypervisor": 1, "hvparams": kvm}, true, nil},
	}
	for _, c := range cases {
		keys := keysOf(c.doc)
		vals := make([]any, len(keys))
		for i, k := range keys {
			vals[i] = c.doc[k]
		}
		fills := map[string]func(proto.Message) error{
			"FromValue":   func(m proto.Message) error { return FromValue(m, c.doc) },
			"FillTrusted": func(m proto.Message) error { return FillTrusted(m, c.doc) },
			"RowFiller":   func(m proto.Message) error { return NewRowFiller(m, keys).Fill(m, vals) },
		}
		for how, fill := range fills {
			inst := &rapiv2.Instance{}
			err := fill(inst)
			if (err != nil) != c.wantErr {
				t.Errorf("%s: %s: error %v, want error %v", c.name, how, err, c.wantErr)
				continue
			}
			if err == nil && !c.check(inst) {
				t.Errorf("%s: %s: got %v", c.name, how, inst)
			}
		}
	}
}
