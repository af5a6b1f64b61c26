package legacyjson

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// This file is a fast path of FromValue for the values a trusted domain
// layer produces (the read API's objects, converted once per request and
// item). It gives exactly FromValue's result: the common shapes (strings,
// numbers, bools, lists and maps of them, google.protobuf.Struct / Value /
// ListValue, nested plain messages) are set straight into the fields of
// generated messages, without building an Object per message or going
// through protoreflect; every other field is converted by the general
// decoder, field by field, in the same (field-number) order. Whenever the
// general decoder reports an error, the whole conversion is redone by
// FromValue, so errors are FromValue's too.

// FillTrusted resets msg and fills it from v exactly as FromValue(msg, v)
// does (same result, same errors), faster for the JSON-like values of a
// domain layer: map[string]any and Object holding nil, bool, string,
// int, int64, float64, []any, []string and maps of those (for (tuple)
// messages, []any). v is only read.
func FillTrusted(msg proto.Message, v any) error { return fillTrusted(&slab{}, msg, v) }

// Batch converts several values into messages that are used and dropped
// together (the items of one response), allocating their
// google.protobuf.Value trees in shared blocks. The zero Batch is ready to
// use; a Batch is not safe for concurrent use.
type Batch struct{ sl slab }

// FillTrusted is the package FillTrusted.
func (b *Batch) FillTrusted(msg proto.Message, v any) error { return fillTrusted(&b.sl, msg, v) }

// FillRow is r.Fill.
func (b *Batch) FillRow(r *RowFiller, msg proto.Message, vals []any) error {
	return r.fillWith(&b.sl, msg, vals)
}

func fillTrusted(sl *slab, msg proto.Message, v any) error {
	if msg == nil {
		return FromValue(msg, v)
	}
	var err error
	switch tv := v.(type) {
	case map[string]any, Object:
		if p := planForMessage(msg); p != nil && p.object {
			proto.Reset(msg)
			err = p.fillObject(sl, msg, v, 1)
			break
		}
		err = errFast
	case []any:
		if p := planForMessage(msg); p != nil && p.tuple {
			proto.Reset(msg)
			err = p.fillTuple(sl, msg, tv)
			break
		}
		err = errFast
	default:
		err = errFast
	}
	if err != nil {
		return FromValue(msg, v)
	}
	return nil
}

// RowFiller fills messages of one type from rows of values, one value per
// key given to NewRowFiller, without building an object per row.
type RowFiller struct {
	keys []string
	t    reflect.Type
	md   protoreflect.MessageDescriptor
	cols []rowCol // the columns that name a field, in field-number order
	fast bool     // the plan applies: otherwise Fill goes through FromValue
	p    *plan
}

type rowCol struct {
	col int
	f   *planField
	sel int // the column of f's (variant_by) selector; -1 when none
}

// NewRowFiller prepares the conversion of rows whose values are, in order,
// those of keys into messages of prototype's type.
func NewRowFiller(prototype proto.Message, keys []string) *RowFiller {
	r := &RowFiller{keys: append([]string(nil), keys...)}
	if prototype == nil || !prototype.ProtoReflect().IsValid() {
		return r
	}
	r.t = reflect.TypeOf(prototype)
	r.md = prototype.ProtoReflect().Descriptor()
	p := planForMessage(prototype)
	if p == nil || !p.object {
		return r
	}
	byField := make(map[int]int, len(keys))
	for col, k := range keys {
		f := p.mi.byKey[k]
		if f == nil {
			continue
		}
		if _, dup := byField[f.index]; dup {
			return r // two keys for one field: leave it to FromValue
		}
		byField[f.index] = col
	}
	for i := range p.fields {
		if col, ok := byField[i]; ok {
			rc := rowCol{col: col, f: &p.fields[i], sel: -1}
			if v := p.fields[i].variant; v != nil {
				if sc, ok := byField[v.index]; ok {
					rc.sel = sc
				}
			}
			r.cols = append(r.cols, rc)
		}
	}
	r.p, r.fast = p, true
	return r
}

// Fill resets msg and fills it as FromValue(msg, obj) would, where obj is
// the object of the keys whose value in vals is not nil (a nil value is an
// absent key: FromValue leaves a field unset for both). vals has one value
// per key; it is only read.
func (r *RowFiller) Fill(msg proto.Message, vals []any) error {
	return r.fillWith(&slab{}, msg, vals)
}

func (r *RowFiller) fillWith(sl *slab, msg proto.Message, vals []any) error {
	if len(vals) != len(r.keys) {
		return errors.New("legacyjson: RowFiller.Fill: wrong number of values")
	}
	if r.fast && msg != nil && reflect.TypeOf(msg) == r.t && msg.ProtoReflect().Descriptor() == r.md {
		proto.Reset(msg)
		if err := r.fill(sl, msg, vals); err == nil {
			return nil
		}
	}
	obj := make(Object, 0, len(vals))
	for i, v := range vals {
		if v != nil {
			obj = append(obj, Member{r.keys[i], v})
		}
	}
	return FromValue(msg, obj)
}

func (r *RowFiller) fill(sl *slab, msg proto.Message, vals []any) (err error) {
	defer recoverFast(&err)
	base := pointerOf(msg)
	var m protoreflect.Message
	d := decoder{depth: 1}
	for _, c := range r.cols {
		v := vals[c.col]
		if v == nil {
			continue
		}
		if c.f.variantName != "" {
			var sel any
			if c.sel >= 0 {
				sel = vals[c.sel]
			}
			if sel != nil && r.p.fastVariant(sl, base, c.f, v, sel, 1) {
				continue
			}
			if m == nil {
				m = msg.ProtoReflect()
			}
			if err := d.withVariant(m, c.f.fieldInfo, v, sel, sel != nil); err != nil {
				return err
			}
			continue
		}
		if err := r.p.setField(sl, base, msg, &m, &d, c.f, v, 1); err != nil {
			return err
		}
	}
	return nil
}

// errFast makes the fast path give up (the caller then runs FromValue).
var errFast = errors.New("legacyjson: fast path not applicable")

func recoverFast(err *error) {
	if recover() != nil {
		*err = errFast
	}
}

// maxFastDepth bounds the nesting the fast path handles itself; deeper
// values go to FromValue (which enforces maxDepth).
const maxFastDepth = 64

// fastOp is how the fast path sets one field.
type fastOp uint8

const (
	opGeneric   fastOp = iota // the general decoder, through protoreflect
	opString                  // string
	opOptString               // *string
	opInt64                   // int64
	opOptInt64                // *int64
	opInt32                   // int32
	opOptInt32                // *int32
	opBool                    // bool
	opOptBool                 // *bool
	opDouble                  // float64
	opOptDouble               // *float64
	opEnum                    // a closed set of numbers (int32 kind)
	opStrings                 // []string
	opInt64s                  // []int64
	opStruct                  // *structpb.Struct
	opListValue               // *structpb.ListValue
	opValue                   // *structpb.Value
	opStructs                 // []*structpb.Struct
	opMapBool                 // map[string]bool
	opMapInt64                // map[string]int64
	opMapString               // map[string]string
	opMessage                 // *T, a plain generated message
	opMessages                // []*T, plain generated messages
)

// plan is the compiled fast path of one generated message type.
type plan struct {
	mi     *msgInfo
	t      reflect.Type // the *T of the generated message
	object bool         // written as a plain JSON object (the fast path applies)
	tuple  bool         // written as a JSON array (the fast path applies)
	fields []planField  // like mi.fields
}

type planField struct {
	*fieldInfo
	op     fastOp
	offset uintptr
	sub    reflect.Type // opMessage: the *T of the field
}

type planKey struct {
	md protoreflect.MessageDescriptor
	t  reflect.Type
}

var planCache sync.Map // planKey -> *plan

// planForMessage returns the plan of msg's type; nil when msg is not a
// generated message (a dynamic one, for instance).
func planForMessage(msg proto.Message) *plan {
	t := reflect.TypeOf(msg)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	m := msg.ProtoReflect()
	if !m.IsValid() {
		return nil
	}
	return planFor(m.Descriptor(), t)
}

func planFor(md protoreflect.MessageDescriptor, t reflect.Type) *plan {
	key := planKey{md, t}
	if v, ok := planCache.Load(key); ok {
		return v.(*plan)
	}
	p := buildPlan(md, t)
	v, _ := planCache.LoadOrStore(key, p)
	return v.(*plan)
}

var (
	typString     = reflect.TypeFor[string]()
	typOptString  = reflect.TypeFor[*string]()
	typInt64      = reflect.TypeFor[int64]()
	typOptInt64   = reflect.TypeFor[*int64]()
	typInt32      = reflect.TypeFor[int32]()
	typOptInt32   = reflect.TypeFor[*int32]()
	typBool       = reflect.TypeFor[bool]()
	typOptBool    = reflect.TypeFor[*bool]()
	typFloat64    = reflect.TypeFor[float64]()
	typOptFloat64 = reflect.TypeFor[*float64]()
	typStrings    = reflect.TypeFor[[]string]()
	typInt64s     = reflect.TypeFor[[]int64]()
	typStruct     = reflect.TypeFor[*structpb.Struct]()
	typListValue  = reflect.TypeFor[*structpb.ListValue]()
	typValue      = reflect.TypeFor[*structpb.Value]()
	typStructs    = reflect.TypeFor[[]*structpb.Struct]()
	typMapBool    = reflect.TypeFor[map[string]bool]()
	typMapInt64   = reflect.TypeFor[map[string]int64]()
	typMapString  = reflect.TypeFor[map[string]string]()
	typProtoMsg   = reflect.TypeFor[proto.Message]()
)

func buildPlan(md protoreflect.MessageDescriptor, t reflect.Type) *plan {
	mi := infoFor(md)
	p := &plan{mi: mi, t: t}
	p.object = mi.wkt == wktNone && !mi.tuple && !mi.unwrap && mi.opcode == nil && mi.opSwitch == nil &&
		mi.inline == nil && mi.strict == ""
	p.tuple = mi.wkt == wktNone && mi.tuple && !mi.unwrap && mi.opcode == nil && mi.opSwitch == nil
	// The Go fields of the generated struct, by field number.
	goFields := map[protoreflect.FieldNumber]reflect.StructField{}
	st := t.Elem()
	for i := 0; i < st.NumField(); i++ {
		sf := st.Field(i)
		tag := sf.Tag.Get("protobuf")
		if tag == "" || !sf.IsExported() {
			continue
		}
		parts := strings.Split(tag, ",")
		if len(parts) < 2 {
			continue
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil {
			continue
		}
		goFields[protoreflect.FieldNumber(n)] = sf
	}
	p.fields = make([]planField, len(mi.fields))
	for i, f := range mi.fields {
		pf := planField{fieldInfo: f}
		if sf, ok := goFields[f.fd.Number()]; ok && !f.oneof {
			pf.op, pf.sub = fieldOp(f, sf.Type)
			pf.offset = sf.Offset
		}
		p.fields[i] = pf
	}
	return p
}

// fieldOp chooses the fast operation of a field whose Go type is gt.
func fieldOp(f *fieldInfo, gt reflect.Type) (fastOp, reflect.Type) {
	fd := f.fd
	presence := fd.HasPresence()
	want := func(op, optOp fastOp, plain, opt reflect.Type) fastOp {
		switch {
		case !presence && gt == plain:
			return op
		case presence && gt == opt:
			return optOp
		}
		return opGeneric
	}
	switch {
	case fd.IsMap():
		if fd.MapKey().Kind() != protoreflect.StringKind {
			return opGeneric, nil
		}
		switch {
		case fd.MapValue().Kind() == protoreflect.BoolKind && gt == typMapBool:
			return opMapBool, nil
		case fd.MapValue().Kind() == protoreflect.Int64Kind && gt == typMapInt64:
			return opMapInt64, nil
		case fd.MapValue().Kind() == protoreflect.StringKind && gt == typMapString:
			return opMapString, nil
		}
		return opGeneric, nil
	case fd.IsList():
		switch {
		case fd.Kind() == protoreflect.StringKind && gt == typStrings:
			return opStrings, nil
		case fd.Kind() == protoreflect.Int64Kind && gt == typInt64s:
			return opInt64s, nil
		case fd.Kind() == protoreflect.MessageKind && f.valKind == wktStruct && gt == typStructs:
			return opStructs, nil
		case fd.Kind() == protoreflect.MessageKind && f.valKind == wktNone && gt.Kind() == reflect.Slice &&
			gt.Elem().Kind() == reflect.Pointer && gt.Elem().Elem().Kind() == reflect.Struct && gt.Elem().Implements(typProtoMsg):
			return opMessages, gt
		}
		return opGeneric, nil
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return want(opString, opOptString, typString, typOptString), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return want(opInt64, opOptInt64, typInt64, typOptInt64), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return want(opInt32, opOptInt32, typInt32, typOptInt32), nil
	case protoreflect.BoolKind:
		return want(opBool, opOptBool, typBool, typOptBool), nil
	case protoreflect.DoubleKind:
		return want(opDouble, opOptDouble, typFloat64, typOptFloat64), nil
	case protoreflect.EnumKind:
		if !presence && gt.Kind() == reflect.Int32 && f.enum != nil && !f.enum.null {
			return opEnum, nil
		}
	case protoreflect.MessageKind:
		switch {
		case f.valKind == wktStruct && gt == typStruct:
			return opStruct, nil
		case f.valKind == wktListValue && gt == typListValue:
			return opListValue, nil
		case f.valKind == wktValue && gt == typValue:
			return opValue, nil
		case f.valKind == wktNone && gt.Kind() == reflect.Pointer && gt.Elem().Kind() == reflect.Struct &&
			gt.Implements(typProtoMsg):
			return opMessage, gt
		}
	}
	return opGeneric, nil
}

// pointerOf is the address of the struct behind a generated message.
func pointerOf(msg proto.Message) unsafe.Pointer {
	return reflect.ValueOf(msg).UnsafePointer()
}

// fillObject fills msg (already reset) from the object v, like
// decoder.object.
func (p *plan) fillObject(sl *slab, msg proto.Message, v any, depth int) (err error) {
	defer recoverFast(&err)
	if depth > maxFastDepth {
		return errFast
	}
	var vals [64]any
	var set [64]bool
	var valsS []any
	var setS []bool
	if n := len(p.fields); n <= len(vals) {
		valsS, setS = vals[:n], set[:n]
	} else {
		valsS, setS = make([]any, n), make([]bool, n)
	}
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if f := p.mi.byKey[k]; f != nil {
				valsS[f.index], setS[f.index] = x, true
			}
		}
	case Object:
		for _, mem := range t {
			if f := p.mi.byKey[mem.Key]; f != nil {
				valsS[f.index], setS[f.index] = mem.Value, true
			}
		}
	default:
		return errFast
	}
	base := pointerOf(msg)
	var m protoreflect.Message
	d := decoder{depth: depth}
	for i := range p.fields {
		if !setS[i] {
			continue
		}
		f := &p.fields[i]
		if f.variantName != "" {
			var sel any
			var ok bool
			if f.variant != nil {
				sel, ok = valsS[f.variant.index], setS[f.variant.index]
			}
			if ok && p.fastVariant(sl, base, f, valsS[i], sel, depth) {
				continue
			}
			if m == nil {
				m = msg.ProtoReflect()
			}
			if err := d.variantField(m, f.fieldInfo, valsS[i], valsS, setS); err != nil {
				return err
			}
			continue
		}
		if err := p.setField(sl, base, msg, &m, &d, f, valsS[i], depth); err != nil {
			return err
		}
	}
	return nil
}

// fillTuple fills msg (already reset) from the array list, like
// decoder.tuple.
func (p *plan) fillTuple(sl *slab, msg proto.Message, list []any) (err error) {
	defer recoverFast(&err)
	if len(list) > len(p.fields) || len(list) < p.mi.minTuple {
		return errFast
	}
	base := pointerOf(msg)
	var m protoreflect.Message
	d := decoder{depth: 1}
	for i, x := range list {
		if err := p.setField(sl, base, msg, &m, &d, &p.fields[i], x, 1); err != nil {
			return err
		}
	}
	return nil
}

// setField sets field f of msg (at base) from v, like decoder.field; m is
// msg's protoreflect view, made on first need.
func (p *plan) setField(sl *slab, base unsafe.Pointer, msg proto.Message, m *protoreflect.Message, d *decoder, f *planField, v any, depth int) error {
	if v != nil && f.op != opGeneric && p.fast(sl, base, f, v, depth) {
		return nil
	}
	if *m == nil {
		*m = msg.ProtoReflect()
	}
	return d.field(*m, f.fieldInfo, v)
}

// fast sets f from v when v has a shape the fast path handles; false
// leaves the field to the general decoder.
func (p *plan) fast(sl *slab, base unsafe.Pointer, f *planField, v any, depth int) bool {
	ptr := unsafe.Add(base, f.offset)
	switch f.op {
	case opString, opOptString:
		s, ok := v.(string)
		if !ok {
			return false
		}
		s = validUTF8(s)
		if f.op == opString {
			*(*string)(ptr) = s
		} else {
			x := take(&sl.optStrs, &sl.nOptStrs)
			*x = s
			*(**string)(ptr) = x
		}
	case opInt64, opOptInt64:
		i, ok := fastInt(v)
		if !ok {
			return false
		}
		if f.op == opInt64 {
			*(*int64)(ptr) = i
		} else {
			x := take(&sl.optInts, &sl.nOptInts)
			*x = i
			*(**int64)(ptr) = x
		}
	case opInt32, opOptInt32:
		i, ok := fastInt(v)
		if !ok || i < math.MinInt32 || i > math.MaxInt32 {
			return false
		}
		i32 := int32(i)
		if f.op == opInt32 {
			*(*int32)(ptr) = i32
		} else {
			*(**int32)(ptr) = &i32
		}
	case opBool, opOptBool:
		b, ok := v.(bool)
		if !ok {
			return false
		}
		if f.op == opBool {
			*(*bool)(ptr) = b
		} else {
			x := take(&sl.optBools, &sl.nOptBools)
			*x = b
			*(**bool)(ptr) = x
		}
	case opDouble, opOptDouble:
		var x float64
		switch t := v.(type) {
		case float64:
			x = t
		case int64:
			x = float64(t)
		case int:
			x = float64(t)
		default:
			return false
		}
		if f.op == opDouble {
			*(*float64)(ptr) = x
		} else {
			y := take(&sl.optFloats, &sl.nOptFloats)
			*y = x
			*(**float64)(ptr) = y
		}
	case opEnum:
		n, ok := fastEnum(f.enum, v)
		if !ok {
			return false
		}
		*(*int32)(ptr) = int32(n)
	case opStrings:
		l, ok := fastStrings(v)
		if !ok {
			return false
		}
		*(*[]string)(ptr) = l
	case opInt64s:
		l, ok := fastInts(v)
		if !ok {
			return false
		}
		*(*[]int64)(ptr) = l
	case opStruct:
		s, ok := sl.fastStruct(v, depth+1)
		if !ok {
			return false
		}
		*(**structpb.Struct)(ptr) = s
	case opListValue:
		l, ok := sl.fastList(v, depth+1)
		if !ok {
			return false
		}
		*(**structpb.ListValue)(ptr) = l
	case opValue:
		x, ok := sl.fastValue(v, depth+1)
		if !ok {
			return false
		}
		*(**structpb.Value)(ptr) = x
	case opStructs:
		l, ok := sl.fastStructs(v, depth+1)
		if !ok {
			return false
		}
		*(*[]*structpb.Struct)(ptr) = l
	case opMapBool:
		mp, ok := fastMap(v, func(x any) (bool, bool) { b, ok := x.(bool); return b, ok })
		if !ok {
			return false
		}
		*(*map[string]bool)(ptr) = mp
	case opMapInt64:
		mp, ok := fastMap(v, fastInt)
		if !ok {
			return false
		}
		*(*map[string]int64)(ptr) = mp
	case opMapString:
		mp, ok := fastMap(v, func(x any) (string, bool) {
			s, ok := x.(string)
			return validUTF8(s), ok
		})
		if !ok {
			return false
		}
		*(*map[string]string)(ptr) = mp
	case opMessage:
		switch v.(type) {
		case map[string]any, Object:
		default:
			return false
		}
		sub := reflect.New(f.sub.Elem()).Interface().(proto.Message)
		sp := planFor(f.fd.Message(), f.sub)
		if !sp.object || sp.fillObject(sl, sub, v, depth+1) != nil {
			return false
		}
		*(*unsafe.Pointer)(ptr) = pointerOf(sub)
	case opMessages:
		list, ok := v.([]any)
		if !ok {
			return false
		}
		elem := f.sub.Elem()
		sp := planFor(f.fd.Message(), elem)
		if !sp.object {
			return false
		}
		out := reflect.MakeSlice(f.sub, len(list), len(list))
		for i, x := range list {
			switch x.(type) {
			case map[string]any, Object:
			default:
				return false
			}
			sub := reflect.New(elem.Elem())
			if sp.fillObject(sl, sub.Interface().(proto.Message), x, depth+1) != nil {
				return false
			}
			out.Index(i).Set(sub)
		}
		reflect.NewAt(f.sub, ptr).Elem().Set(out)
	default:
		return false
	}
	return true
}

// fastVariant sets the (variant_by) field f (at base) from the object v,
// as the member its selector value sel names, like decoder.withVariant;
// false leaves the field to it.
func (p *plan) fastVariant(sl *slab, base unsafe.Pointer, f *planField, v, sel any, depth int) bool {
	if f.op != opMessage {
		return false
	}
	switch v.(type) {
	case map[string]any, Object:
	default:
		return false
	}
	key, ok := variantKey(f.variant, sel, true)
	if !ok {
		return false
	}
	outer := reflect.New(f.sub.Elem()).Interface().(proto.Message)
	om := outer.ProtoReflect()
	oi := infoFor(om.Descriptor())
	member := oi.byKey[key]
	if !oi.unwrap || member == nil || !member.oneof || member.fd.Kind() != protoreflect.MessageKind {
		return false
	}
	val := om.NewField(member.fd)
	sub := val.Message().Interface()
	sp := planForMessage(sub)
	if sp == nil || !sp.object || sp.fillObject(sl, sub, v, depth+1) != nil {
		return false
	}
	if set := oneofSetterFor(f.sub, member.fd); set != nil {
		set(outer, sub)
	} else {
		om.Set(member.fd, val)
	}
	*(*unsafe.Pointer)(unsafe.Add(base, f.offset)) = pointerOf(outer)
	return true
}

var oneofSetters sync.Map // protoreflect.FullName (member) -> func(outer, sub proto.Message); nil when not found

// oneofSetterFor returns a function that sets the oneof member fd of a
// generated message of type t (a *T) to a message of the member's type,
// straight into the struct's oneof field (protoreflect's Set costs far
// more); nil when the generated struct is not as expected.
func oneofSetterFor(t reflect.Type, fd protoreflect.FieldDescriptor) func(outer, sub proto.Message) {
	if v, ok := oneofSetters.Load(fd.FullName()); ok {
		set, _ := v.(func(outer, sub proto.Message))
		return set
	}
	set := buildOneofSetter(t, fd)
	oneofSetters.Store(fd.FullName(), set)
	return set
}

func buildOneofSetter(t reflect.Type, fd protoreflect.FieldDescriptor) func(outer, sub proto.Message) {
	od := fd.ContainingOneof()
	if od == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	// The wrapper type of the member: what protoreflect puts in the field.
	scratch := reflect.New(t.Elem()).Interface().(proto.Message)
	sm := scratch.ProtoReflect()
	sm.Set(fd, sm.NewField(fd))
	st := t.Elem()
	for i := 0; i < st.NumField(); i++ {
		sf := st.Field(i)
		if sf.Tag.Get("protobuf_oneof") != string(od.Name()) || sf.Type.Kind() != reflect.Interface {
			continue
		}
		w := reflect.ValueOf(scratch).Elem().Field(i).Elem() // *Wrapper
		if w.Kind() != reflect.Pointer || w.Elem().Kind() != reflect.Struct || w.Elem().NumField() != 1 {
			return nil
		}
		wt, offset, it := w.Type(), sf.Offset, sf.Type
		return func(outer, sub proto.Message) {
			x := reflect.New(wt.Elem())
			x.Elem().Field(0).Set(reflect.ValueOf(sub))
			reflect.NewAt(it, unsafe.Add(pointerOf(outer), offset)).Elem().Set(x)
		}
	}
	return nil
}

// fastInt is decoder.toInt for the Go integer types and integral floats.
func fastInt(v any) (int64, bool) {
	switch t := v.(type) {
	case int64:
		return t, true
	case int:
		return int64(t), true
	case float64:
		if t != math.Trunc(t) || math.IsInf(t, 0) || t < -(1<<63) || t >= 1<<63 {
			return 0, false
		}
		return int64(t), true
	}
	return 0, false
}

// fastEnum is decoder.enum (outside opcodes) for strings and small
// integers.
func fastEnum(ei *enumInfo, v any) (protoreflect.EnumNumber, bool) {
	switch t := v.(type) {
	case string:
		if !utf8.ValidString(t) {
			return 0, false
		}
		if n, ok := ei.byStr[t]; ok {
			return n, true
		}
		n, ok := ei.byName[t]
		return n, ok
	case int64:
		if t <= -(1<<53) || t >= 1<<53 {
			return 0, false
		}
		n, ok := ei.byNum[t]
		return n, ok
	case int:
		if int64(t) <= -(1<<53) || int64(t) >= 1<<53 {
			return 0, false
		}
		n, ok := ei.byNum[int64(t)]
		return n, ok
	}
	return 0, false
}

func fastStrings(v any) ([]string, bool) {
	switch t := v.(type) {
	case []string:
		if len(t) == 0 {
			return nil, true
		}
		out := make([]string, len(t))
		for i, s := range t {
			out[i] = validUTF8(s)
		}
		return out, true
	case []any:
		if len(t) == 0 {
			return nil, true
		}
		out := make([]string, len(t))
		for i, x := range t {
			s, ok := x.(string)
			if !ok {
				return nil, false
			}
			out[i] = validUTF8(s)
		}
		return out, true
	}
	return nil, false
}

func fastInts(v any) ([]int64, bool) {
	switch t := v.(type) {
	case []int64:
		if len(t) == 0 {
			return nil, true
		}
		return append([]int64(nil), t...), true
	case []any:
		if len(t) == 0 {
			return nil, true
		}
		out := make([]int64, len(t))
		for i, x := range t {
			n, ok := fastInt(x)
			if !ok {
				return nil, false
			}
			out[i] = n
		}
		return out, true
	}
	return nil, false
}

// fastMap converts a JSON object into a map with string keys, like
// decoder.field does for map<string, scalar> fields.
func fastMap[T any](v any, conv func(any) (T, bool)) (map[string]T, bool) {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]T, len(t))
		for k, x := range t {
			if !utf8.ValidString(k) {
				return nil, false
			}
			y, ok := conv(x)
			if !ok {
				return nil, false
			}
			out[k] = y
		}
		return out, true
	case Object:
		out := make(map[string]T, len(t))
		for _, mem := range t {
			if !utf8.ValidString(mem.Key) {
				return nil, false
			}
			y, ok := conv(mem.Value)
			if !ok {
				return nil, false
			}
			out[mem.Key] = y
		}
		return out, true
	}
	return nil, false
}

func (sl *slab) fastStructs(v any, depth int) ([]*structpb.Struct, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	if len(list) == 0 {
		return nil, true
	}
	out := make([]*structpb.Struct, len(list))
	for i, x := range list {
		s, ok := sl.fastStruct(x, depth)
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// fastStruct is decoder.pbStruct for maps with valid UTF-8 keys (so that
// no two keys collapse into one).
func (sl *slab) fastStruct(v any, depth int) (*structpb.Struct, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	switch t := v.(type) {
	case map[string]any:
		fields := make(map[string]*structpb.Value, len(t))
		for k, x := range t {
			val := sl.value()
			if !utf8.ValidString(k) || !sl.fastValueInto(val, x, depth+1) {
				return nil, false
			}
			fields[k] = val
		}
		s := sl.pbStruct()
		s.Fields = fields
		return s, true
	case Object:
		fields := make(map[string]*structpb.Value, len(t))
		for _, mem := range t {
			val := sl.value()
			if !utf8.ValidString(mem.Key) || !sl.fastValueInto(val, mem.Value, depth+1) {
				return nil, false
			}
			fields[mem.Key] = val
		}
		s := sl.pbStruct()
		s.Fields = fields
		return s, true
	}
	return nil, false
}

// fastList is decoder.pbList.
func (sl *slab) fastList(v any, depth int) (*structpb.ListValue, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	switch t := v.(type) {
	case []any:
		out := sl.pointers(len(t))
		for i, x := range t {
			val := sl.value()
			if !sl.fastValueInto(val, x, depth+1) {
				return nil, false
			}
			out[i] = val
		}
		l := sl.pbList()
		l.Values = out
		return l, true
	case []string:
		out := sl.pointers(len(t))
		for i, s := range t {
			val := sl.value()
			val.Kind = sl.str(validUTF8(s))
			out[i] = val
		}
		l := sl.pbList()
		l.Values = out
		return l, true
	}
	return nil, false
}

func (sl *slab) fastValue(v any, depth int) (*structpb.Value, bool) {
	x := sl.value()
	if !sl.fastValueInto(x, v, depth) {
		return nil, false
	}
	return x, true
}

// fastValueInto is decoder.pbValue for the common Go types, into x.
func (sl *slab) fastValueInto(x *structpb.Value, v any, depth int) bool {
	if depth > maxFastDepth {
		return false
	}
	switch t := v.(type) {
	case nil:
		x.Kind = take(&sl.nulls, &sl.nNulls)
	case string:
		x.Kind = sl.str(validUTF8(t))
	case bool:
		b := take(&sl.bools, &sl.nBools)
		b.BoolValue = t
		x.Kind = b
	case float64:
		x.Kind = sl.num(t)
	case int64:
		x.Kind = sl.num(float64(t))
	case int:
		x.Kind = sl.num(float64(t))
	case []any, []string:
		l, ok := sl.fastList(v, depth+1)
		if !ok {
			return false
		}
		lv := take(&sl.listKinds, &sl.nListKinds)
		lv.ListValue = l
		x.Kind = lv
	case map[string]any, Object:
		s, ok := sl.fastStruct(v, depth+1)
		if !ok {
			return false
		}
		sv := take(&sl.structKinds, &sl.nStructKinds)
		sv.StructValue = s
		x.Kind = sv
	default:
		return false
	}
	return true
}

// slab allocates the google.protobuf.Value trees of a fill in chunks:
// the messages of one conversion live and die together, and a chunk saves
// an allocation per value. Not safe for concurrent use.
type slab struct {
	vals        []structpb.Value
	ptrs        []*structpb.Value
	structs     []structpb.Struct
	lists       []structpb.ListValue
	strs        []structpb.Value_StringValue
	nums        []structpb.Value_NumberValue
	bools       []structpb.Value_BoolValue
	nulls       []structpb.Value_NullValue
	listKinds   []structpb.Value_ListValue
	structKinds []structpb.Value_StructValue

	nVals, nPtrs, nStructs, nLists, nStrs, nNums, nBools, nNulls, nListKinds, nStructKinds int

	// The targets of optional scalar fields (a typed parameter message
	// has many).
	optStrs   []string
	optInts   []int64
	optBools  []bool
	optFloats []float64

	nOptStrs, nOptInts, nOptBools, nOptFloats int
}

const (
	minChunk = 4
	maxChunk = 256
)

// take returns the next element of a chunk, allocating chunks of growing
// size (n holds the size of the last one).
func take[T any](chunk *[]T, n *int) *T {
	if len(*chunk) == 0 {
		*n = min(max(2**n, minChunk), maxChunk)
		*chunk = make([]T, *n)
	}
	x := &(*chunk)[0]
	*chunk = (*chunk)[1:]
	return x
}

func (sl *slab) value() *structpb.Value      { return take(&sl.vals, &sl.nVals) }
func (sl *slab) pbStruct() *structpb.Struct  { return take(&sl.structs, &sl.nStructs) }
func (sl *slab) pbList() *structpb.ListValue { return take(&sl.lists, &sl.nLists) }

func (sl *slab) str(s string) *structpb.Value_StringValue {
	x := take(&sl.strs, &sl.nStrs)
	x.StringValue = s
	return x
}

func (sl *slab) num(f float64) *structpb.Value_NumberValue {
	x := take(&sl.nums, &sl.nNums)
	x.NumberValue = f
	return x
}

// pointers returns a slice of n pointers (capacity n).
func (sl *slab) pointers(n int) []*structpb.Value {
	if n > maxChunk/4 {
		return make([]*structpb.Value, n)
	}
	if len(sl.ptrs) < n {
		sl.nPtrs = min(max(2*sl.nPtrs, minChunk*4), maxChunk)
		sl.ptrs = make([]*structpb.Value, sl.nPtrs)
	}
	out := sl.ptrs[:n:n]
	sl.ptrs = sl.ptrs[n:]
	return out
}
