package opexec

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// Opcode helpers that the engine and the logical units both use.

// priorityNormal is Ganeti's default opcode priority.
const priorityNormal = 0

// OpID is the OP_ID of an opcode message type (the executors' keys).
func OpID(msg proto.Message) string { return backend.OpcodeInfo(msg).GetId() }

func field(msg proto.Message, name string) (protoreflect.Message, protoreflect.FieldDescriptor) {
	m := msg.ProtoReflect()
	return m, m.Descriptor().Fields().ByName(protoreflect.Name(name))
}

// ParamSpec returns the (param) option of a field (nil when it has none).
func ParamSpec(fd protoreflect.FieldDescriptor) *rapiv2.ParamSpec {
	spec, _ := proto.GetExtension(fd.Options(), rapiv2.E_Param).(*rapiv2.ParamSpec)
	return spec
}

// SetBaseOpParams is Ganeti's _SetBaseOpParams for an opcode dst submitted
// by src (whose priority is srcPrio).
func SetBaseOpParams(src proto.Message, srcPrio int, dst proto.Message) {
	if sm, sfd := field(src, "debug_level"); sfd != nil && sm.Has(sfd) {
		if dm, dfd := field(dst, "debug_level"); dfd != nil && dfd.Kind() == sfd.Kind() {
			dm.Set(dfd, sm.Get(sfd))
		}
	}
	if dm, dfd := field(dst, "priority"); dfd != nil && !dm.Has(dfd) && srcPrio != priorityNormal &&
		dfd.Kind() == protoreflect.EnumKind {
		if n, ok := legacyenum.ParseNum(dfd.Enum(), int64(srcPrio)); ok {
			dm.Set(dfd, protoreflect.ValueOfEnum(n))
		}
	}
	if dm, dfd := field(dst, "comment"); dfd != nil && dfd.Kind() == protoreflect.StringKind && dm.Get(dfd).String() == "" {
		dm.Set(dfd, protoreflect.ValueOfString("Submitted by "+backend.OpcodeInfo(src).GetId()))
	}
	sm, sfd := field(src, "reason")
	dm, dfd := field(dst, "reason")
	if sfd != nil && dfd != nil && sfd.IsList() && dfd.IsList() && sfd.Message() != nil &&
		dfd.Message() != nil && sfd.Message().FullName() == dfd.Message().FullName() {
		sl := sm.Get(sfd).List()
		dl := dm.Mutable(dfd).List()
		for i := 0; i < sl.Len(); i++ {
			dl.Append(protoreflect.ValueOfMessage(proto.Clone(sl.Get(i).Message().Interface()).ProtoReflect()))
		}
	}
}

// FullOpcodeValue is the serialized form of a Python opcode object: its
// OP_ID and every parameter, null where the parameter has no value (the
// dictionaries in it, such as NICs, carry what they were given).
func FullOpcodeValue(msg proto.Message) (*structpb.Value, error) {
	val, err := legacyjson.Marshaler{OmitUnset: true}.ToValue(msg)
	if err != nil {
		return nil, err
	}
	obj, ok := val.(legacyjson.Object)
	if !ok {
		return nil, fmt.Errorf("opcode: %T is not an object", val)
	}
	m := msg.ProtoReflect()
	fields := m.Descriptor().Fields()
	out := legacyjson.Object{{Key: "OP_ID", Value: backend.OpcodeInfo(msg).GetId()}}
	for i := range fields.Len() {
		fd := fields.Get(i)
		v, _ := obj.Get(fd.JSONName())
		if (fd.IsList() || fd.IsMap()) && !m.Has(fd) {
			// An empty list without a default was not given: None.
			if spec := ParamSpec(fd); spec != nil && !spec.GetRequired() && spec.GetDefaultJson() == "" {
				v = nil
			}
		}
		out = append(out, legacyjson.Member{Key: fd.JSONName(), Value: v})
	}
	b, err := out.MarshalJSON()
	if err != nil {
		return nil, err
	}
	sv := &structpb.Value{}
	if err := protojson.Unmarshal(b, sv); err != nil {
		return nil, err
	}
	return sv, nil
}

// JSONValue converts a structpb value to a JSON-like Go value; integral
// numbers become int64.
func JSONValue(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		f := k.NumberValue
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f)
		}
		return f
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_StructValue:
		return StructMap(k.StructValue)
	case *structpb.Value_ListValue:
		out := make([]any, 0, len(k.ListValue.GetValues()))
		for _, e := range k.ListValue.GetValues() {
			out = append(out, JSONValue(e))
		}
		return out
	}
	return nil
}

// StructMap converts a structpb struct to a map of JSON-like Go values.
func StructMap(s *structpb.Struct) map[string]any {
	out := map[string]any{}
	for k, v := range s.GetFields() {
		out[k] = JSONValue(v)
	}
	return out
}
