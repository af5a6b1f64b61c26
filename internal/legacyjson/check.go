package legacyjson

import (
	"errors"
	"math"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// CheckParams checks the parameters of a typed opcode message (or of the
// opcode chosen in an OpCode switch) the way FromValue checks a legacy
// body: every set parameter against its (param) spec (integer bounds,
// non-empty strings, address and name formats, enum values that have a
// legacy spelling) and, for google.protobuf.Struct / Value / ListValue
// parameters, against Ganeti's type signature (sig.go), with every number
// in them finite. It is what a gRPC client's opcode goes through, so both
// surfaces refuse the same values: the error is a *DecodeError with
// Ganeti's "Parameter '<OP_ID>.<key>' fails validation" message naming the
// first failing parameter in field-number order. Required parameters are
// CheckRequired's. Outside opcodes nothing is checked (as FromValue
// checks nothing there), but opcodes nested in other messages (an OpCode
// switch, a job's list of them) are.
func CheckParams(msg proto.Message) (err error) {
	defer catchPanic(&err)
	if msg == nil {
		return nil
	}
	m := msg.ProtoReflect()
	if !m.IsValid() {
		return nil
	}
	return checkMessage(m, 0, false)
}

var errCheck = errors.New("legacyjson: parameter check failed")

// checkMessage checks the set fields of m (strict: inside an opcode). For
// an opcode, a failing field is named; inside a parameter, errCheck goes
// up to the opcode.
func checkMessage(m protoreflect.Message, depth int, strict bool) error {
	if depth > maxDepth {
		return errCheck
	}
	mi := infoFor(m.Descriptor())
	strict = strict || mi.opcode != nil
	for _, f := range mi.fields {
		if !m.Has(f.fd) {
			continue
		}
		var err error
		if strict {
			err = checkField(m, f, depth)
		} else {
			err = findOpcodes(m, f, depth)
		}
		if err == nil {
			continue
		}
		var de *DecodeError
		if errors.As(err, &de) {
			return de // named by a nested opcode
		}
		if mi.opcode != nil {
			return errFailsValidation(mi.opcode.GetId(), f.key)
		}
		return err
	}
	return nil
}

func checkField(m protoreflect.Message, f *fieldInfo, depth int) error {
	fd := f.fd
	v := m.Get(fd)
	if f.sig != nil && f.spec != nil && !emptyValue(v, fd) {
		if !f.sig.check(wktJSON(v, fd), 0) {
			return errCheck
		}
	}
	switch {
	case fd.IsList():
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			if err := checkSingle(fd, f, l.Get(i), depth); err != nil {
				return err
			}
		}
	case fd.IsMap():
		var err error
		vd := fd.MapValue()
		v.Map().Range(func(_ protoreflect.MapKey, x protoreflect.Value) bool {
			err = checkSingle(vd, f, x, depth)
			return err == nil
		})
		return err
	default:
		return checkSingle(fd, f, v, depth)
	}
	return nil
}

// checkSingle checks one value of kind fd.Kind(): a field, a list element
// or a map value.
func checkSingle(fd protoreflect.FieldDescriptor, f *fieldInfo, v protoreflect.Value, depth int) error {
	spec := f.spec
	ok := true
	switch fd.Kind() {
	case protoreflect.StringKind:
		ok = checkString(spec, v.String())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		ok = checkInt(spec, v.Int())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		ok = checkUint(spec, v.Uint())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		x := v.Float()
		ok = !math.IsNaN(x) && !math.IsInf(x, 0) && checkFloat(spec, x)
	case protoreflect.EnumKind:
		ei := f.enum
		if ei == nil {
			ei = enumInfoFor(fd.Enum())
		}
		ok = enumKnown(ei, v.Enum())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		sub := v.Message()
		switch infoFor(sub.Descriptor()).wkt {
		case wktStruct, wktValue, wktListValue:
			ok = finiteNumbers(sub.Interface(), 0)
		case wktWrapper:
			inner := infoFor(sub.Descriptor()).fields
			if len(inner) == 1 && sub.Has(inner[0].fd) {
				w := *inner[0]
				w.spec = spec
				return checkSingle(inner[0].fd, &w, sub.Get(inner[0].fd), depth)
			}
		default:
			return checkMessage(sub, depth+1, true)
		}
	}
	if !ok {
		return errCheck
	}
	return nil
}

// findOpcodes checks the opcodes held by a field outside any opcode.
func findOpcodes(m protoreflect.Message, f *fieldInfo, depth int) error {
	fd := f.fd
	vd := fd
	if fd.IsMap() {
		vd = fd.MapValue()
	}
	if vd.Kind() != protoreflect.MessageKind || f.valKind != wktNone {
		return nil
	}
	v := m.Get(fd)
	switch {
	case fd.IsList():
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			if err := checkMessage(l.Get(i).Message(), depth+1, false); err != nil {
				return err
			}
		}
	case fd.IsMap():
		var err error
		v.Map().Range(func(_ protoreflect.MapKey, x protoreflect.Value) bool {
			err = checkMessage(x.Message(), depth+1, false)
			return err == nil
		})
		return err
	default:
		return checkMessage(v.Message(), depth+1, false)
	}
	return nil
}

// enumKnown reports whether n is a value of the enum that the legacy
// surface can spell: one with a (legacy) value when the enum has any,
// otherwise any declared value.
func enumKnown(ei *enumInfo, n protoreflect.EnumNumber) bool {
	vd := ei.desc.Values().ByNumber(n)
	if vd == nil {
		return false
	}
	if !ei.hasLegacy || ei.null {
		return true
	}
	for _, x := range ei.byStr {
		if x == n {
			return true
		}
	}
	for _, x := range ei.byNum {
		if x == n {
			return true
		}
	}
	return false
}

// finiteNumbers reports whether every number in a Struct, Value or
// ListValue is finite.
func finiteNumbers(msg proto.Message, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch x := msg.(type) {
	case *structpb.Value:
		switch k := x.GetKind().(type) {
		case *structpb.Value_NumberValue:
			return !math.IsNaN(k.NumberValue) && !math.IsInf(k.NumberValue, 0)
		case *structpb.Value_StructValue:
			return finiteNumbers(k.StructValue, depth+1)
		case *structpb.Value_ListValue:
			return finiteNumbers(k.ListValue, depth+1)
		}
	case *structpb.Struct:
		for _, v := range x.GetFields() {
			if !finiteNumbers(v, depth+1) {
				return false
			}
		}
	case *structpb.ListValue:
		for _, v := range x.GetValues() {
			if !finiteNumbers(v, depth+1) {
				return false
			}
		}
	default:
		// A dynamic message of a well-known type: through its generated
		// form.
		if msg == nil {
			return true
		}
		conv, known, ok := generatedWKT(msg)
		if !known {
			return true
		}
		if !ok {
			return false
		}
		return finiteNumbers(conv, depth)
	}
	return true
}

// emptyValue reports whether v is a google.protobuf.Value field set to a
// Value without a kind: what a typed client leaves when it means "not
// given" (JSON null would be an explicit NullValue).
func emptyValue(v protoreflect.Value, fd protoreflect.FieldDescriptor) bool {
	if fd.IsList() || fd.IsMap() {
		return false
	}
	x, ok := v.Message().Interface().(*structpb.Value)
	return ok && x.GetKind() == nil
}

// wktJSON is the JSON-like value of a Struct / Value / ListValue field (a
// list of them for a repeated field, an object for a map), numbers as
// float64, for the sig check.
func wktJSON(v protoreflect.Value, fd protoreflect.FieldDescriptor) any {
	switch {
	case fd.IsList():
		l := v.List()
		out := make([]any, l.Len())
		for i := range out {
			out[i] = wktValueJSON(l.Get(i).Message().Interface())
		}
		return out
	case fd.IsMap():
		out := Object{}
		v.Map().Range(func(k protoreflect.MapKey, x protoreflect.Value) bool {
			out = append(out, Member{Key: k.String(), Value: wktValueJSON(x.Message().Interface())})
			return true
		})
		return out
	}
	return wktValueJSON(v.Message().Interface())
}

func wktValueJSON(msg proto.Message) any {
	switch x := msg.(type) {
	case *structpb.Value:
		return x.AsInterface()
	case *structpb.Struct:
		return x.AsMap()
	case *structpb.ListValue:
		return x.AsSlice()
	}
	// A dynamic message of a well-known type.
	conv, _, ok := generatedWKT(msg)
	if !ok {
		return nil
	}
	return wktValueJSON(conv)
}

// generatedWKT converts a dynamic Value, Struct or ListValue message to its
// generated form. known is false for another message type; ok is false
// when the type is unknown or the conversion failed.
func generatedWKT(msg proto.Message) (conv proto.Message, known, ok bool) {
	switch msg.ProtoReflect().Descriptor().FullName() {
	case "google.protobuf.Value":
		conv = &structpb.Value{}
	case "google.protobuf.Struct":
		conv = &structpb.Struct{}
	case "google.protobuf.ListValue":
		conv = &structpb.ListValue{}
	default:
		return nil, false, false
	}
	b, err := proto.Marshal(msg)
	if err != nil || proto.Unmarshal(b, conv) != nil {
		return nil, true, false
	}
	return conv, true, true
}
