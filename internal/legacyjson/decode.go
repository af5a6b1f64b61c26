package legacyjson

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/names"
)

// FromValue resets msg and fills it from a JSON-like Go value: what
// encoding/json produces with UseNumber (nil, bool, json.Number, string,
// []any, map[string]any), Object, and the Go types a domain layer tends to
// produce (int*, uint*, float*, named string/bool/number types, slices,
// maps with string, integer or bool keys, pointers).
//
// Keys are matched by legacy key. JSON null leaves a field unset (inside a
// list or map, a google.protobuf.Value element becomes a null Value and an
// (unwrap) element an empty message; other element types do not take
// null). Non-opcode messages ignore unknown keys, unless they have an
// (inline) field (which gets them) or a (strict_object) name.
// Opcode messages are checked like Ganeti checks opcode parameters: an
// unknown key, a value of the wrong JSON type or one failing its (param)
// spec is a *DecodeError with Ganeti's message. Required parameters are not
// checked here (path parameters fill them later); see CheckRequired.
//
// Errors are *DecodeError, except for a nil msg. After an error the content
// of msg is unspecified.
func FromValue(msg proto.Message, v any) (err error) {
	defer catchPanic(&err)
	if msg == nil {
		return errors.New("legacyjson: FromValue into a nil message")
	}
	m := msg.ProtoReflect()
	if !m.IsValid() {
		return errors.New("legacyjson: FromValue into a nil message")
	}
	proto.Reset(msg)
	v = deref(v)
	if v == nil {
		return nil
	}
	d := decoder{}
	return bodyError(d.message(m, nil, v))
}

// bodyError turns an internal error about the whole body into a DecodeError.
func bodyError(err error) error {
	if err == nil {
		return nil
	}
	var de *DecodeError
	if errors.As(err, &de) {
		return de
	}
	var te *typeError
	if errors.As(err, &te) {
		return errBodyType(te.got, te.want)
	}
	return &DecodeError{Msg: "Invalid body contents"}
}

// paramError turns an internal error about the value of key into a
// DecodeError (outside opcodes).
func paramError(key string, err error) error {
	var de *DecodeError
	if errors.As(err, &de) {
		return de
	}
	var te *typeError
	if errors.As(err, &te) {
		return errParamType(key, te.got, te.want)
	}
	return errParamValue(key)
}

// CheckRequired returns, for the first (in field-number order) parameter
// whose (param) spec says required and that has no value, the error Ganeti
// gives: for an opcode `Invalid body parameters: ("Parameter
// '<OP_ID>.<key>' fails validation", 'wrong_input')`, otherwise `Required
// parameter '<key>' is missing`. A field without presence (plain scalar,
// repeated, map) counts as missing when it holds its zero value / is empty,
// so required parameters whose zero value is valid should be `optional`.
// A set (inline) field and the chosen member of an opcode switch (OpCode)
// are checked in place.
func CheckRequired(msg proto.Message) (err error) {
	defer catchPanic(&err)
	if msg == nil {
		return nil
	}
	return checkRequired(msg.ProtoReflect(), 0)
}

func checkRequired(m protoreflect.Message, depth int) error {
	if depth > maxDepth {
		return nil
	}
	mi := infoFor(m.Descriptor())
	for _, f := range mi.fields {
		if (f.inline || mi.opSwitch != nil) && m.Has(f.fd) {
			// The parameters of an inline message or of the chosen opcode
			// are checked in its place.
			if err := checkRequired(m.Get(f.fd).Message(), depth+1); err != nil {
				return err
			}
			continue
		}
		if !f.spec.GetRequired() || m.Has(f.fd) {
			continue
		}
		if mi.opcode != nil {
			return errFailsValidation(mi.opcode.GetId(), f.key)
		}
		return errRequiredMissing(f.key)
	}
	return nil
}

type decoder struct {
	strict bool // inside an opcode: Ganeti's type checks apply
	depth  int
	// variant is the member the next (unwrap) oneof message decoded takes
	// (the value of a (variant_by) field's selector); "" when none.
	variant string
}

func (d *decoder) push() error {
	d.depth++
	if d.depth > maxDepth {
		return errInvalid
	}
	return nil
}

func (d *decoder) pop() { d.depth-- }

// spec is the ParamSpec to enforce for f: only inside opcodes.
func (d *decoder) spec(f *fieldInfo) *rapiv2.ParamSpec {
	if d.strict {
		return f.spec
	}
	return nil
}

// object fills m from a JSON object.
func (d *decoder) object(m protoreflect.Message, mi *msgInfo, obj Object) error {
	if mi.opcode != nil {
		return d.opcode(m, mi, obj)
	}
	vals, set, err := d.collect(mi, obj)
	if err != nil {
		return err
	}
	for i, f := range mi.fields {
		if !set[i] {
			continue
		}
		err := d.variantField(m, f, vals[i], vals, set)
		if err != nil {
			if d.strict {
				return err // the enclosing opcode names the parameter
			}
			return paramError(f.key, err)
		}
	}
	return nil
}

// variantField is setField for a field of an object whose values collect
// gave: a (variant_by) field takes the member its selector names (and
// fails without one, unless null).
func (d *decoder) variantField(m protoreflect.Message, f *fieldInfo, v any, vals []any, set []bool) error {
	if f.variantName == "" {
		return d.setField(m, f, v)
	}
	var sel any
	var ok bool
	if f.variant != nil {
		sel, ok = vals[f.variant.index], set[f.variant.index]
	}
	return d.withVariant(m, f, v, sel, ok)
}

// withVariant sets the (variant_by) field f from v, the member chosen by
// the selector value sel (present when ok).
func (d *decoder) withVariant(m protoreflect.Message, f *fieldInfo, v, sel any, ok bool) error {
	if deref(v) == nil {
		return d.field(m, f, nil)
	}
	key, ok := variantKey(f.variant, sel, ok)
	if !ok {
		return errInvalid
	}
	d.variant = key
	err := d.field(m, f, v)
	d.variant = ""
	return err
}

// setField sets f from the value collect assigned it: for an (inline)
// field, the Object of the keys its parent does not know.
func (d *decoder) setField(m protoreflect.Message, f *fieldInfo, v any) error {
	if !f.inline {
		return d.field(m, f, v)
	}
	val := m.NewField(f.fd)
	if err := d.message(val.Message(), nil, v); err != nil {
		return err
	}
	m.Set(f.fd, val)
	return nil
}

// collect assigns the members of obj to the fields of mi. Unknown keys go
// to the (inline) field when there is one (which is always set, possibly
// from an empty object); otherwise they fail with a (strict_object)
// message, or inside opcodes, and are ignored elsewhere.
func (d *decoder) collect(mi *msgInfo, obj Object) ([]any, []bool, error) {
	vals := make([]any, len(mi.fields))
	set := make([]bool, len(mi.fields))
	var rest Object
	if mi.inline != nil {
		rest = Object{}
	}
	for _, mem := range obj {
		f := mi.byKey[mem.Key]
		if f == nil {
			switch {
			case mi.inline != nil:
				rest = append(rest, mem)
			case mi.strict != "":
				return nil, nil, errStrictObject(mi.strict, mem.Key)
			case d.strict:
				return nil, nil, errInvalid
			}
			continue
		}
		vals[f.index] = mem.Value
		set[f.index] = true
	}
	if mi.inline != nil {
		vals[mi.inline.index] = rest
		set[mi.inline.index] = true
	}
	return vals, set, nil
}

// opcode fills an opcode message: first every key must be a parameter
// (reported in body order), then each parameter is checked in field-number
// order, like Ganeti's opcode constructor and Validate.
func (d *decoder) opcode(m protoreflect.Message, mi *msgInfo, obj Object) error {
	if mi.inline == nil {
		for _, mem := range obj {
			if mi.byKey[mem.Key] == nil {
				return errUnsupportedParam(mi.opcode.GetClassName(), mem.Key)
			}
		}
	}
	outer := d.strict
	d.strict = true
	defer func() { d.strict = outer }()
	vals, set, _ := d.collect(mi, obj)
	for i, f := range mi.fields {
		if !set[i] {
			continue
		}
		if err := d.setField(m, f, vals[i]); err != nil {
			var de *DecodeError
			if errors.As(err, &de) { // from a nested opcode
				return de
			}
			return errFailsValidation(mi.opcode.GetId(), f.key)
		}
	}
	return nil
}

// tuple fills m from a JSON array, one position per field. Trailing
// positions that may be left out (see tupleDroppable) stay unset when the
// array is shorter.
func (d *decoder) tuple(m protoreflect.Message, mi *msgInfo, list []any) error {
	if len(list) > len(mi.fields) || len(list) < mi.minTuple {
		return errInvalid
	}
	for i, x := range list {
		if err := d.field(m, mi.fields[i], x); err != nil {
			return err
		}
	}
	return nil
}

// unwrap fills an (unwrap) message from the bare value of one of its
// fields. When the first field is a member of a oneof, the oneof's members
// are tried in field-number order, google.protobuf.Value members (which
// take anything) last; a member is chosen when the value decodes into it
// and passes its unwrapMatch check. Otherwise the value is the first
// field's (e.g. the array of a repeated first field). Null leaves the
// message empty.
func (d *decoder) unwrap(m protoreflect.Message, mi *msgInfo, v any) error {
	variant := d.variant
	d.variant = ""
	if v == nil || len(mi.fields) == 0 {
		return nil
	}
	first := mi.fields[0]
	if !first.oneof {
		return d.field(m, first, v)
	}
	od := first.fd.ContainingOneof()
	if variant != "" {
		// A (variant_by) field's selector names the member.
		f := mi.byKey[variant]
		if f == nil || f.fd.ContainingOneof() != od {
			return errInvalid
		}
		return d.field(m, f, v)
	}
	var values []*fieldInfo
	var lastErr error
	try := func(f *fieldInfo) bool {
		if f.match != nil && !f.match(v) {
			return false
		}
		scratch := m.New()
		if err := d.field(scratch, f, v); err != nil {
			lastErr = err
			return false
		}
		m.Set(f.fd, scratch.Get(f.fd))
		return true
	}
	for _, f := range mi.fields {
		if f.fd.ContainingOneof() != od {
			continue
		}
		if f.valKind == wktValue {
			values = append(values, f)
			continue
		}
		if try(f) {
			return nil
		}
	}
	for _, f := range values {
		if try(f) {
			return nil
		}
	}
	if lastErr == nil {
		lastErr = errInvalid
	}
	return lastErr
}

// opSwitch fills an "any opcode" message from the opcode's object: its
// "OP_ID" chooses the member, the other keys are the opcode's parameters.
func (d *decoder) opSwitch(m protoreflect.Message, mi *msgInfo, obj Object) error {
	idv, ok := obj.Get("OP_ID")
	if idv = deref(idv); !ok || idv == nil {
		return errMissingOpID()
	}
	id, ok := asString(idv)
	if !ok {
		id = fmt.Sprint(idv)
	}
	f := mi.opSwitch[id]
	if !ok || f == nil {
		return errUnknownOpcode(id)
	}
	val := m.NewField(f.fd)
	sub := val.Message()
	if infoFor(sub.Descriptor()).byKey["OP_ID"] == nil {
		rest := make(Object, 0, len(obj)-1)
		for _, mem := range obj {
			if mem.Key != "OP_ID" {
				rest = append(rest, mem)
			}
		}
		obj = rest
	}
	if err := d.message(sub, nil, obj); err != nil {
		return err
	}
	m.Set(f.fd, val)
	return nil
}

// field sets field f of m from v.
func (d *decoder) field(m protoreflect.Message, f *fieldInfo, v any) error {
	fd := f.fd
	v = deref(v)
	spec := d.spec(f)
	if v == nil && f.nullMsg {
		// A (null_value) message: null is one of its values.
		m.Set(fd, m.NewField(fd))
		return nil
	}
	if v == nil {
		// A google.protobuf.Value field takes null whatever its spec says
		// (Ganeti's "any"); unset and null encode alike.
		isValue := f.valKind == wktValue && !fd.IsList() && !fd.IsMap()
		if spec != nil && !spec.GetNullable() && !isValue {
			return errInvalid
		}
		m.Clear(fd)
		return nil
	}
	if spec != nil && f.sig != nil && !f.sig.check(v, 0) {
		return errInvalid
	}
	switch {
	case fd.IsList():
		list, ok := asList(v)
		if !ok {
			return mismatch(v, "list")
		}
		l := m.Mutable(fd).List()
		l.Truncate(0)
		for _, x := range list {
			val, err := d.single(fd, f.enum, spec, x, l.NewElement)
			if err != nil {
				return err
			}
			l.Append(val)
		}
	case fd.IsMap():
		obj, ok := asObject(v)
		if !ok {
			return mismatch(v, "dict")
		}
		mp := m.Mutable(fd).Map()
		kd, vd := fd.MapKey(), fd.MapValue()
		for _, mem := range obj {
			k, ok := mapKey(kd, mem.Key)
			if !ok {
				return errInvalid
			}
			val, err := d.single(vd, f.enum, spec, mem.Value, mp.NewValue)
			if err != nil {
				return err
			}
			mp.Set(k, val)
		}
	default:
		val, err := d.single(fd, f.enum, spec, v, func() protoreflect.Value { return m.NewField(fd) })
		if err != nil {
			return err
		}
		m.Set(fd, val)
	}
	return nil
}

func mapKey(kd protoreflect.FieldDescriptor, s string) (protoreflect.MapKey, bool) {
	var v protoreflect.Value
	switch kd.Kind() {
	case protoreflect.StringKind:
		v = protoreflect.ValueOfString(validUTF8(s))
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		if err != nil || (s != "true" && s != "false") {
			return protoreflect.MapKey{}, false
		}
		v = protoreflect.ValueOfBool(b)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		i, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return protoreflect.MapKey{}, false
		}
		v = protoreflect.ValueOfInt32(int32(i))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return protoreflect.MapKey{}, false
		}
		v = protoreflect.ValueOfInt64(i)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		u, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return protoreflect.MapKey{}, false
		}
		v = protoreflect.ValueOfUint32(uint32(u))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return protoreflect.MapKey{}, false
		}
		v = protoreflect.ValueOfUint64(u)
	default:
		return protoreflect.MapKey{}, false
	}
	return v.MapKey(), true
}

// single converts one singular value (a field, a list element or a map
// value) of kind fd.Kind(). newMsg allocates a message when the kind is one.
func (d *decoder) single(fd protoreflect.FieldDescriptor, ei *enumInfo, spec *rapiv2.ParamSpec, v any, newMsg func() protoreflect.Value) (protoreflect.Value, error) {
	v = deref(v)
	switch fd.Kind() {
	case protoreflect.BoolKind:
		b, ok := asBool(v)
		if !ok {
			return protoreflect.Value{}, mismatch(v, "bool")
		}
		return protoreflect.ValueOfBool(b), nil
	case protoreflect.StringKind:
		s, ok := asString(v)
		if !ok {
			return protoreflect.Value{}, mismatch(v, "str")
		}
		if !checkString(spec, s) {
			return protoreflect.Value{}, errInvalid
		}
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BytesKind:
		s, ok := asString(v)
		if !ok {
			return protoreflect.Value{}, mismatch(v, "str")
		}
		b, err := decodeBase64(s)
		if err != nil {
			return protoreflect.Value{}, errInvalid
		}
		return protoreflect.ValueOfBytes(b), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		i, err := d.toInt(v)
		if err != nil {
			return protoreflect.Value{}, err
		}
		if i < math.MinInt32 || i > math.MaxInt32 || !checkInt(spec, i) {
			return protoreflect.Value{}, errInvalid
		}
		return protoreflect.ValueOfInt32(int32(i)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		i, err := d.toInt(v)
		if err != nil {
			return protoreflect.Value{}, err
		}
		if !checkInt(spec, i) {
			return protoreflect.Value{}, errInvalid
		}
		return protoreflect.ValueOfInt64(i), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		u, err := d.toUint(v)
		if err != nil {
			return protoreflect.Value{}, err
		}
		if u > math.MaxUint32 || !checkUint(spec, u) {
			return protoreflect.Value{}, errInvalid
		}
		return protoreflect.ValueOfUint32(uint32(u)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		u, err := d.toUint(v)
		if err != nil {
			return protoreflect.Value{}, err
		}
		if !checkUint(spec, u) {
			return protoreflect.Value{}, errInvalid
		}
		return protoreflect.ValueOfUint64(u), nil
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f, err := toFloat(v)
		if err != nil {
			return protoreflect.Value{}, err
		}
		if !checkFloat(spec, f) {
			return protoreflect.Value{}, errInvalid
		}
		if fd.Kind() == protoreflect.FloatKind {
			return protoreflect.ValueOfFloat32(float32(f)), nil
		}
		return protoreflect.ValueOfFloat64(f), nil
	case protoreflect.EnumKind:
		if ei == nil {
			ei = enumInfoFor(fd.Enum())
		}
		n, err := d.enum(ei, v)
		if err != nil {
			return protoreflect.Value{}, err
		}
		return protoreflect.ValueOfEnum(n), nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		val := newMsg()
		if err := d.message(val.Message(), spec, v); err != nil {
			return protoreflect.Value{}, err
		}
		return val, nil
	}
	return protoreflect.Value{}, errInvalid
}

// message fills a nested message from v.
func (d *decoder) message(m protoreflect.Message, spec *rapiv2.ParamSpec, v any) error {
	if err := d.push(); err != nil {
		return err
	}
	defer d.pop()
	mi := infoFor(m.Descriptor())
	switch {
	case mi.wkt != wktNone:
		return d.wkt(m, mi, spec, v)
	case mi.unwrap:
		return d.unwrap(m, mi, v)
	case v == nil:
		return mismatch(v, "dict")
	case mi.tuple:
		list, ok := asList(v)
		if !ok {
			return mismatch(v, "list")
		}
		return d.tuple(m, mi, list)
	}
	obj, ok := asObject(v)
	if !ok {
		return mismatch(v, "dict")
	}
	if mi.opSwitch != nil {
		return d.opSwitch(m, mi, obj)
	}
	return d.object(m, mi, obj)
}

// wkt fills a Struct, Value, ListValue or wrapper message. The ParamSpec of
// the enclosing field applies to a wrapper's value.
func (d *decoder) wkt(m protoreflect.Message, mi *msgInfo, spec *rapiv2.ParamSpec, v any) error {
	switch mi.wkt {
	case wktWrapper:
		if len(mi.fields) == 0 {
			return errInvalid
		}
		f := mi.fields[0]
		if v == nil {
			return mismatch(v, wrapperWant(f.fd))
		}
		val, err := d.single(f.fd, f.enum, spec, v, nil)
		if err != nil {
			return err
		}
		m.Set(f.fd, val)
		return nil
	case wktStruct:
		obj, ok := asObject(v)
		if !ok {
			return mismatch(v, "dict")
		}
		s, err := d.pbStruct(obj)
		if err != nil {
			return err
		}
		return setWKT(m, s)
	case wktListValue:
		list, ok := asList(v)
		if !ok {
			return mismatch(v, "list")
		}
		l, err := d.pbList(list)
		if err != nil {
			return err
		}
		return setWKT(m, l)
	default:
		val, err := d.pbValue(v)
		if err != nil {
			return err
		}
		return setWKT(m, val)
	}
}

func wrapperWant(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "bool"
	case protoreflect.StringKind, protoreflect.BytesKind:
		return "str"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "float"
	}
	return "int"
}

// setWKT stores src (a generated Struct / ListValue / Value) into m, which
// may be the generated type or a dynamic message of the same type.
func setWKT(m protoreflect.Message, src proto.Message) error {
	switch dst := m.Interface().(type) {
	case *structpb.Struct:
		if s, ok := src.(*structpb.Struct); ok {
			dst.Fields = s.Fields
			return nil
		}
	case *structpb.ListValue:
		if s, ok := src.(*structpb.ListValue); ok {
			dst.Values = s.Values
			return nil
		}
	case *structpb.Value:
		if s, ok := src.(*structpb.Value); ok {
			dst.Kind = s.Kind
			return nil
		}
	}
	b, err := proto.Marshal(src)
	if err != nil {
		return errInvalid
	}
	if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(b, m.Interface()); err != nil {
		return errInvalid
	}
	return nil
}

func (d *decoder) pbStruct(obj Object) (*structpb.Struct, error) {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(obj))}
	for _, mem := range obj {
		val, err := d.pbValue(mem.Value)
		if err != nil {
			return nil, err
		}
		s.Fields[validUTF8(mem.Key)] = val
	}
	return s, nil
}

func (d *decoder) pbList(list []any) (*structpb.ListValue, error) {
	l := &structpb.ListValue{Values: make([]*structpb.Value, 0, len(list))}
	for _, x := range list {
		val, err := d.pbValue(x)
		if err != nil {
			return nil, err
		}
		l.Values = append(l.Values, val)
	}
	return l, nil
}

// pbValue converts any JSON-like value into a google.protobuf.Value.
func (d *decoder) pbValue(v any) (*structpb.Value, error) {
	if err := d.push(); err != nil {
		return nil, err
	}
	defer d.pop()
	v = deref(v)
	switch t := v.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case string:
		return structpb.NewStringValue(validUTF8(t)), nil
	}
	if b, ok := asBool(v); ok {
		return structpb.NewBoolValue(b), nil
	}
	if s, ok := asString(v); ok {
		return structpb.NewStringValue(validUTF8(s)), nil
	}
	if f, err := toFloat(v); err == nil {
		if d.strict && !strictNumber(v, f) {
			return nil, errInvalid
		}
		return structpb.NewNumberValue(f), nil
	}
	if list, ok := asList(v); ok {
		l, err := d.pbList(list)
		if err != nil {
			return nil, err
		}
		return structpb.NewListValue(l), nil
	}
	if obj, ok := asObject(v); ok {
		s, err := d.pbStruct(obj)
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(s), nil
	}
	return nil, errInvalid
}

// strictNumber is the rule of numbers in the free-form values of an
// opcode (the dicts and lists Ganeti types as any): finite, and an integer
// literal within the int64 range. Python would take 2**70 or 1e400 (as
// inf); the store, which keeps these values as doubles, and the executors
// could not.
func strictNumber(v any, f float64) bool {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return false
	}
	if n, ok := v.(json.Number); ok && !isFloatLiteral(string(n)) {
		if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			return false
		}
	}
	return true
}

// enum matches v against the legacy spelling of the enum's values. Numbers
// (and bools) compare like Python's ==, so -10.0 and false match -10 and 0.
// Values without (legacy) match by name, but inside opcodes only when the
// enum has no legacy values at all.
func (d *decoder) enum(ei *enumInfo, v any) (protoreflect.EnumNumber, error) {
	if s, ok := asString(v); ok {
		if n, ok := ei.byStr[s]; ok {
			return n, nil
		}
		if !d.strict || !ei.hasLegacy {
			if n, ok := ei.byName[s]; ok {
				return n, nil
			}
		}
		if ei.want == "str" {
			return 0, errInvalid
		}
		return 0, mismatch(v, ei.want)
	}
	f, isNum := pyNumber(v)
	if isNum && len(ei.byNum) > 0 && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		if n, ok := ei.byNum[int64(f)]; ok {
			return n, nil
		}
	}
	if isNum && ei.want == "int" {
		return 0, errInvalid
	}
	return 0, mismatch(v, ei.want)
}

// pyNumber is the numeric value of v when Python would compare it as a
// number (bools are 0 and 1).
func pyNumber(v any) (float64, bool) {
	if b, ok := asBool(v); ok {
		if b {
			return 1, true
		}
		return 0, true
	}
	f, err := toFloat(v)
	return f, err == nil
}

// toInt converts a JSON-like integer. Inside opcodes only Python ints pass:
// a float literal such as 1.0 is a float there. Elsewhere an integral float
// is accepted too. A Go float64 that is integral always passes (domain
// values decoded without UseNumber).
func (d *decoder) toInt(v any) (int64, error) {
	switch t := v.(type) {
	case json.Number:
		s := string(t)
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		if !isFloatLiteral(s) {
			return 0, errInvalid // an int out of range (or junk)
		}
		if d.strict {
			return 0, mismatch(v, "int")
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, mismatch(v, "int")
		}
		return floatToInt(v, f)
	case int:
		return int64(t), nil
	case int64:
		return t, nil
	case float64:
		return floatToInt(v, t)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if rv.Uint() > math.MaxInt64 {
			return 0, errInvalid
		}
		return int64(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return floatToInt(v, rv.Float())
	}
	return 0, mismatch(v, "int")
}

func floatToInt(v any, f float64) (int64, error) {
	if f != math.Trunc(f) || math.IsInf(f, 0) {
		return 0, mismatch(v, "int")
	}
	if f < -(1<<63) || f >= 1<<63 {
		return 0, errInvalid
	}
	return int64(f), nil
}

func (d *decoder) toUint(v any) (uint64, error) {
	if n, ok := v.(json.Number); ok {
		if u, err := strconv.ParseUint(string(n), 10, 64); err == nil {
			return u, nil
		}
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint(), nil
	}
	i, err := d.toInt(v)
	if err != nil {
		return 0, err
	}
	if i < 0 {
		return 0, errInvalid
	}
	return uint64(i), nil
}

// toFloat converts a JSON-like number; ints are accepted where a float is
// expected, bools are not.
func toFloat(v any) (float64, error) {
	switch t := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, mismatch(v, "float")
		}
		return f, nil
	case float64:
		return t, nil
	case int:
		return float64(t), nil
	case int64:
		return float64(t), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	}
	return 0, mismatch(v, "float")
}

// ParamSpec checks (opcodes only; spec is nil elsewhere).

func checkInt(spec *rapiv2.ParamSpec, i int64) bool {
	if spec == nil {
		return true
	}
	return (spec.Min == nil || i >= *spec.Min) && (spec.Max == nil || i <= *spec.Max)
}

func checkUint(spec *rapiv2.ParamSpec, u uint64) bool {
	if spec == nil {
		return true
	}
	if spec.Min != nil && *spec.Min > 0 && u < uint64(*spec.Min) {
		return false
	}
	if spec.Max != nil && (*spec.Max < 0 || u > uint64(*spec.Max)) {
		return false
	}
	return true
}

func checkFloat(spec *rapiv2.ParamSpec, f float64) bool {
	if spec == nil {
		return true
	}
	// Written so that NaN fails any bound, as in Python.
	if spec.Min != nil && !(f >= float64(*spec.Min)) {
		return false
	}
	if spec.Max != nil && !(f <= float64(*spec.Max)) {
		return false
	}
	return true
}

func checkString(spec *rapiv2.ParamSpec, s string) bool {
	if spec == nil {
		return true
	}
	if spec.GetNonEmpty() && s == "" {
		return false
	}
	return checkFormat(spec.GetFormat(), s)
}

// checkFormat checks a string against a ParamSpec format: Ganeti's address
// and network types, or object_name, the rule of new node group and
// network names (ValidObjectName). An unknown format checks nothing.
func checkFormat(format, s string) bool {
	switch format {
	case "ipv4_address":
		return validIPv4(s)
	case "ipv6_address":
		return validIPv6(s)
	case "ipv4_network":
		return validIPv4Network(s)
	case "ipv6_network":
		return validIPv6Network(s)
	case "object_name":
		return names.ValidObjectName(s)
	}
	return true
}

// The address checks follow Python's ipaddress module (IPv4Address,
// IPv6Address, and IPv4Network / IPv6Network with strict=True), which
// Ganeti's ht.TIPv4Address etc. use.

// parseIPv4 parses a dotted quad: four decimal octets, no leading zeros.
func parseIPv4(s string) (uint32, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return 0, false
	}
	var ip uint32
	for _, p := range parts {
		if p == "" || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return 0, false
		}
		n := 0
		for i := 0; i < len(p); i++ {
			if !isDigit(p[i]) {
				return 0, false
			}
			n = n*10 + int(p[i]-'0')
		}
		if n > 255 {
			return 0, false
		}
		ip = ip<<8 | uint32(n)
	}
	return ip, true
}

func validIPv4(s string) bool {
	_, ok := parseIPv4(s)
	return ok
}

func parseIPv6(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	return a, true
}

func validIPv6(s string) bool {
	_, ok := parseIPv6(s)
	return ok
}

// asciiDigits parses a prefix length the way Python's ipaddress does: ASCII
// digits only; a huge number is simply out of range.
func asciiDigits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return math.MaxInt32, true
	}
	return n, true
}

// prefixFromMask returns the prefix length of a contiguous netmask.
func prefixFromMask(m uint32) (int, bool) {
	tz := 0
	for tz < 32 && m&(1<<tz) == 0 {
		tz++
	}
	prefix := 32 - tz
	if prefix == 0 {
		return 0, true
	}
	ones := m >> tz
	return prefix, ones == (1<<prefix)-1
}

func validIPv4Network(s string) bool {
	addr, mask, hasMask := strings.Cut(s, "/")
	if strings.Contains(mask, "/") {
		return false
	}
	ip, ok := parseIPv4(addr)
	if !ok {
		return false
	}
	prefix := 32
	if hasMask {
		if n, ok := asciiDigits(mask); ok {
			if n > 32 {
				return false
			}
			prefix = n
		} else {
			m, ok := parseIPv4(mask)
			if !ok {
				return false
			}
			if p, ok := prefixFromMask(m); ok {
				prefix = p
			} else if p, ok := prefixFromMask(^m); ok {
				prefix = p // a hostmask such as 0.0.0.255
			} else {
				return false
			}
		}
	}
	var netmask uint32
	if prefix > 0 {
		netmask = ^uint32(0) << (32 - prefix)
	}
	return ip&netmask == ip // strict: no host bits set
}

func validIPv6Network(s string) bool {
	addr, mask, hasMask := strings.Cut(s, "/")
	if strings.Contains(mask, "/") {
		return false
	}
	a, ok := parseIPv6(addr)
	if !ok {
		return false
	}
	prefix := 128
	if hasMask {
		n, ok := asciiDigits(mask)
		if !ok || n > 128 {
			return false
		}
		prefix = n
	}
	a = a.WithZone("")
	p, err := a.Prefix(prefix)
	return err == nil && p.Addr() == a
}

// Accessors for JSON-like Go values.

// deref unwraps pointers and interfaces (a nil one is JSON null).
func deref(v any) any {
	switch v.(type) {
	case nil, bool, string, json.Number, Object, []any, map[string]any, int, int64, float64:
		return v
	}
	rv := reflect.ValueOf(v)
	for i := 0; i < 64 && (rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface); i++ {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	if rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface || !rv.CanInterface() {
		return nil
	}
	return rv.Interface()
}

func asBool(v any) (bool, bool) {
	if b, ok := v.(bool); ok {
		return b, true
	}
	if v == nil {
		return false, false
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Bool {
		return rv.Bool(), true
	}
	return false, false
}

func asString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return validUTF8(t), true
	case nil, json.Number:
		return "", false
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		return validUTF8(rv.String()), true
	}
	return "", false
}

// validUTF8 replaces invalid UTF-8 (which a proto string cannot hold).
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func asList(v any) ([]any, bool) {
	switch t := v.(type) {
	case []any:
		return t, true
	case []string:
		out := make([]any, len(t))
		for i, s := range t {
			out[i] = s
		}
		return out, true
	case nil, string, json.Number, []byte, json.RawMessage, Object:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		if x := rv.Index(i); x.CanInterface() {
			out[i] = x.Interface()
		}
	}
	return out, true
}

func asObject(v any) (Object, bool) {
	switch t := v.(type) {
	case Object:
		return t, true
	case map[string]any:
		obj := make(Object, 0, len(t))
		for k, x := range t {
			obj = append(obj, Member{k, x})
		}
		slices.SortFunc(obj, func(a, b Member) int { return strings.Compare(a.Key, b.Key) })
		return obj, true
	case nil, string, json.Number, []any:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map {
		return nil, false
	}
	obj := make(Object, 0, rv.Len())
	iter := rv.MapRange()
	for iter.Next() {
		// JSON object keys are strings; integer and bool keys are spelled
		// like Python's json module spells them.
		var key string
		switch k := iter.Key(); k.Kind() {
		case reflect.String:
			key = k.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			key = strconv.FormatInt(k.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			key = strconv.FormatUint(k.Uint(), 10)
		case reflect.Bool:
			key = strconv.FormatBool(k.Bool())
		default:
			return nil, false
		}
		obj = append(obj, Member{key, iter.Value().Interface()})
	}
	slices.SortFunc(obj, func(a, b Member) int { return strings.Compare(a.Key, b.Key) })
	return obj, true
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errInvalid
}
