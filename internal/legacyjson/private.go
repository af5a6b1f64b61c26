package legacyjson

import (
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// Private parameters.
//
// A parameter whose (param) option says private (osparams_private,
// osparams_secret, osparams_private_cluster) holds secrets. Ganeti keeps
// them in its job queue but never shows them:
//   - its RAPI (Python) wraps every dictionary value under such a key in
//     a Private, found by key anywhere in a decoded value
//     (serializer.WrapPrivateValues with PRIVATE_PARAMETERS_BLACKLIST; a key
//     ending in "_cluster" is a dictionary of such dictionaries), and
//     writes a Private as null: the legacy encoder does the same, for the
//     proto fields and for the keys of google.protobuf.Struct values (the
//     instances of OP_INSTANCE_MULTI_ALLOC);
//   - its typed side (Haskell) shows a secret as "<redacted>"
//     (Types.redacted): Redact replaces every private value of a message
//     by that string, which is what every read of a job's opcodes shows.

// Redacted is the value Redact puts in place of a private value.
const Redacted = "<redacted>"

// privateDepth is how many dictionary levels of a private parameter are
// kept (their keys shown) before the values are private: 1 for
// dict<any,private<any>>, 2 for dict<string,dict<any,private<any>>>, 0 for
// a private scalar. Without a signature, a map or Struct keeps its keys.
func privateDepth(fd protoreflect.FieldDescriptor, spec *rapiv2.ParamSpec) int {
	if sig := spec.GetSig(); sig != "" {
		if i := strings.Index(sig, "private<"); i >= 0 {
			return strings.Count(sig[:i], "dict<")
		}
	}
	if fd.IsMap() || (fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Struct") {
		return 1
	}
	return 0
}

var (
	privateKeysOnce sync.Once
	privateKeys     map[string]int // legacy key -> privateDepth
)

// privateKeyDepth reports whether key is the name of a private parameter
// (of any registered message) and its depth: the keys under which a
// google.protobuf.Struct holds private values.
func privateKeyDepth(key string) (int, bool) {
	privateKeysOnce.Do(func() {
		privateKeys = map[string]int{}
		protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
			collectPrivate(fd.Messages())
			return true
		})
	})
	d, ok := privateKeys[key]
	return d, ok
}

func collectPrivate(mds protoreflect.MessageDescriptors) {
	for i := 0; i < mds.Len(); i++ {
		md := mds.Get(i)
		fields := md.Fields()
		for j := 0; j < fields.Len(); j++ {
			fd := fields.Get(j)
			spec, _ := proto.GetExtension(fd.Options(), rapiv2.E_Param).(*rapiv2.ParamSpec)
			if spec.GetPrivate() {
				privateKeys[fd.JSONName()] = max(privateKeys[fd.JSONName()], privateDepth(fd, spec))
			}
		}
		collectPrivate(md.Messages())
	}
}

// Redact returns msg with every private value replaced by Redacted: the
// private fields (by their depth: the keys of a private dictionary are
// kept) and, inside google.protobuf.Struct and Value fields, the values
// under the keys of private parameters. A message without private values
// is returned as it is (changed false); otherwise the result is a copy and
// msg is not modified.
func Redact(msg proto.Message) (out proto.Message, changed bool) {
	if msg == nil || !msg.ProtoReflect().IsValid() || !redactMessage(msg.ProtoReflect(), false) {
		return msg, false
	}
	c := proto.Clone(msg)
	redactMessage(c.ProtoReflect(), true)
	return c, true
}

// redactPlan is what redactMessage looks at in a message type: its
// private fields (with their depth) and the message fields that may hold
// private values, by field number.
type redactPlan struct {
	wkt    bool                             // Struct, Value or ListValue
	fields map[protoreflect.FieldNumber]int // depth of a private field, -1 for a nested one
}

var redactPlans sync.Map // protoreflect.MessageDescriptor -> *redactPlan

// redactPlanFor returns the plan of md; nil when md cannot hold a private
// value.
func redactPlanFor(md protoreflect.MessageDescriptor) *redactPlan {
	if p, ok := redactPlans.Load(md); ok {
		return p.(*redactPlan)
	}
	p := buildRedactPlan(md, map[protoreflect.FullName]bool{})
	v, _ := redactPlans.LoadOrStore(md, p)
	return v.(*redactPlan)
}

const nestedField = -1

func buildRedactPlan(md protoreflect.MessageDescriptor, visiting map[protoreflect.FullName]bool) *redactPlan {
	switch md.FullName() {
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		return &redactPlan{wkt: true}
	}
	if visiting[md.FullName()] {
		// A recursive type: looked into (its own plan is built when reached).
		return &redactPlan{}
	}
	visiting[md.FullName()] = true
	defer delete(visiting, md.FullName())
	p := &redactPlan{fields: map[protoreflect.FieldNumber]int{}}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		spec, _ := proto.GetExtension(fd.Options(), rapiv2.E_Param).(*rapiv2.ParamSpec)
		if spec.GetPrivate() {
			p.fields[fd.Number()] = privateDepth(fd, spec)
			continue
		}
		sub := fd.Message()
		if fd.IsMap() {
			sub = fd.MapValue().Message()
		}
		if sub != nil && buildRedactPlan(sub, visiting) != nil {
			p.fields[fd.Number()] = nestedField
		}
	}
	if len(p.fields) == 0 {
		return nil
	}
	return p
}

// redactMessage reports whether m holds a private value; with apply, it
// replaces them.
func redactMessage(m protoreflect.Message, apply bool) bool {
	p := redactPlanFor(m.Descriptor())
	if p == nil {
		return false
	}
	if p.wkt {
		return redactWKT(m, apply)
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		depth, ok := p.fields[fd.Number()]
		if !ok {
			return true
		}
		if depth != nestedField {
			if redactField(m, fd, v, depth, apply) {
				found = true
			}
			return apply || !found
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if redactMessage(l.Get(i).Message(), apply) {
					found = true
				}
			}
		case fd.IsMap():
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				if redactMessage(mv.Message(), apply) {
					found = true
				}
				return true
			})
		default:
			if redactMessage(v.Message(), apply) {
				found = true
			}
		}
		return apply || !found
	})
	return found
}

// redactWKT handles Struct, Value and ListValue messages: the values under
// private keys.
func redactWKT(m protoreflect.Message, apply bool) bool {
	switch x := m.Interface().(type) {
	case *structpb.Struct:
		return redactStruct(x, apply)
	case *structpb.Value:
		return redactValue(x, apply)
	case *structpb.ListValue:
		found := false
		for _, v := range x.GetValues() {
			if redactValue(v, apply) {
				found = true
			}
		}
		return found
	}
	return false
}

func redactStruct(s *structpb.Struct, apply bool) bool {
	found := false
	for k, v := range s.GetFields() {
		if d, ok := privateKeyDepth(k); ok {
			if nv, changed := redactedValue(v, d); changed {
				found = true
				if apply {
					s.Fields[k] = nv
				}
			}
			continue
		}
		if redactValue(v, apply) {
			found = true
		}
	}
	return found
}

func redactValue(v *structpb.Value, apply bool) bool {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		return redactStruct(k.StructValue, apply)
	case *structpb.Value_ListValue:
		found := false
		for _, e := range k.ListValue.GetValues() {
			if redactValue(e, apply) {
				found = true
			}
		}
		return found
	}
	return false
}

// redactedValue returns v with its values below depth dictionary levels
// replaced by Redacted (null stays null: it holds nothing); changed is
// false when there was nothing to replace.
func redactedValue(v *structpb.Value, depth int) (*structpb.Value, bool) {
	switch k := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return v, false
	case *structpb.Value_StructValue:
		if depth > 0 {
			out := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(k.StructValue.GetFields()))}
			changed := false
			for key, e := range k.StructValue.GetFields() {
				ne, c := redactedValue(e, depth-1)
				out.Fields[key] = ne
				changed = changed || c
			}
			return structpb.NewStructValue(out), changed
		}
	}
	if s, ok := v.GetKind().(*structpb.Value_StringValue); ok && s.StringValue == Redacted {
		return v, false
	}
	return structpb.NewStringValue(Redacted), true
}

// redactField replaces the value of a private field.
func redactField(m protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int, apply bool) bool {
	switch {
	case fd.IsMap():
		mp := v.Map()
		if mp.Len() == 0 || fd.MapValue().Kind() != protoreflect.StringKind {
			if mp.Len() > 0 && apply {
				m.Clear(fd) // a private map of other values: nothing to show
			}
			return mp.Len() > 0
		}
		found := false
		mp.Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
			if e.String() != Redacted {
				found = true
				if apply {
					mp.Set(k, protoreflect.ValueOfString(Redacted))
				}
			}
			return true
		})
		return found
	case fd.IsList():
		l := v.List()
		if fd.Kind() != protoreflect.StringKind {
			if l.Len() > 0 && apply {
				m.Clear(fd)
			}
			return l.Len() > 0
		}
		found := false
		for i := 0; i < l.Len(); i++ {
			if l.Get(i).String() != Redacted {
				found = true
				if apply {
					l.Set(i, protoreflect.ValueOfString(Redacted))
				}
			}
		}
		return found
	case fd.Kind() == protoreflect.StringKind:
		if v.String() == Redacted {
			return false
		}
		if apply {
			m.Set(fd, protoreflect.ValueOfString(Redacted))
		}
		return true
	case fd.Kind() == protoreflect.BytesKind:
		if string(v.Bytes()) == Redacted {
			return false
		}
		if apply {
			m.Set(fd, protoreflect.ValueOfBytes([]byte(Redacted)))
		}
		return true
	case fd.Message() != nil:
		var pv *structpb.Value
		switch x := v.Message().Interface().(type) {
		case *structpb.Struct:
			pv = structpb.NewStructValue(x)
		case *structpb.Value:
			pv = x
		default:
			if apply {
				m.Clear(fd)
			}
			return true
		}
		nv, changed := redactedValue(pv, depth)
		if changed && apply {
			if _, isStruct := v.Message().Interface().(*structpb.Struct); isStruct {
				if s := nv.GetStructValue(); s != nil {
					m.Set(fd, protoreflect.ValueOfMessage(s.ProtoReflect()))
				} else {
					m.Clear(fd)
				}
			} else {
				m.Set(fd, protoreflect.ValueOfMessage(nv.ProtoReflect()))
			}
		}
		return changed
	}
	// Another scalar: it cannot hold the marker; it is left out.
	if apply {
		m.Clear(fd)
	}
	return true
}

// IsPrivateKey reports whether key names a private parameter in some
// message (osparams_secret, ...), whose values the encoder never writes.
func IsPrivateKey(key string) bool {
	_, ok := privateKeyDepth(key)
	return ok
}
