package legacyjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

var errTooDeep = errors.New("legacyjson: value nested too deeply")

// ToValue converts msg to a Go value ready for encoding/json (or Marshal):
// nil, bool, json.Number, string, []any and Object (key order = field-number
// order). See Marshaler for the encoding rules.
func ToValue(msg proto.Message) (any, error) { return Marshaler{}.ToValue(msg) }

// ToValue is the package ToValue with m's encoding options.
func (m Marshaler) ToValue(msg proto.Message) (v any, err error) {
	defer catchPanic(&err)
	e := encoder{omitUnset: m.OmitUnset}
	if err := e.value(msg); err != nil {
		return nil, err
	}
	return parseJSON(e.buf, maxDepth+1)
}

// encoder writes legacy JSON straight into a byte slice.
type encoder struct {
	buf       []byte
	ascii     bool // Python style: ", " / ": " separators, non-ASCII escaped
	omitUnset bool // leave out unset fields instead of writing null
	opRecord  bool // writing an opcode as a job record shows it (opcode_record.go)
	depth     int

	// One-entry cache in front of infoFor: bulk lists repeat one type.
	lastMD protoreflect.MessageDescriptor
	lastMI *msgInfo
	// Key slices for sorting Struct keys, reused across Structs.
	freeKeys [][]string
	// One-entry cache in front of planForMessage.
	lastPlanMD protoreflect.MessageDescriptor
	lastPlanT  reflect.Type
	lastPlan   *plan
	// w, when set, receives the output as it is encoded (Streamed).
	w    io.Writer
	werr error
}

func (e *encoder) info(md protoreflect.MessageDescriptor) *msgInfo {
	if md != e.lastMD {
		e.lastMD, e.lastMI = md, infoFor(md)
	}
	return e.lastMI
}

func (e *encoder) comma() {
	if e.ascii {
		e.buf = append(e.buf, ',', ' ')
	} else {
		e.buf = append(e.buf, ',')
	}
}

func (e *encoder) colon() {
	if e.ascii {
		e.buf = append(e.buf, ':', ' ')
	} else {
		e.buf = append(e.buf, ':')
	}
}

func (e *encoder) null() { e.buf = append(e.buf, "null"...) }

func (e *encoder) str(s string) { e.buf = appendString(e.buf, s, e.ascii) }

func (e *encoder) push() error {
	e.depth++
	if e.depth > maxDepth {
		return errTooDeep
	}
	return nil
}

func (e *encoder) pop() { e.depth-- }

// value encodes any supported Go value.
func (e *encoder) value(v any) error {
	switch t := v.(type) {
	case nil:
		e.null()
	case proto.Message:
		m := t.ProtoReflect()
		if !m.IsValid() {
			e.null()
			return nil
		}
		// A frozen answer (GetInfo's, shared per cluster state) is encoded
		// once, as the elements of a frozen list are.
		if done, err := e.frozenMessage(m); done || err != nil {
			return err
		}
		return e.message(m)
	case protoreflect.Enum:
		e.enum(enumInfoFor(t.Descriptor()), t.Number())
	case string:
		e.str(t)
	case bool:
		e.buf = strconv.AppendBool(e.buf, t)
	case json.Number:
		if !validNumber(string(t)) {
			return fmt.Errorf("legacyjson: invalid number literal %q", string(t))
		}
		e.buf = append(e.buf, t...)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(t), 10)
	case int32:
		e.buf = strconv.AppendInt(e.buf, int64(t), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, t, 10)
	case uint32:
		e.buf = strconv.AppendUint(e.buf, uint64(t), 10)
	case uint64:
		e.buf = strconv.AppendUint(e.buf, t, 10)
	case float64:
		e.buf = appendPyFloat(e.buf, t, 64)
	case float32:
		e.buf = appendPyFloat(e.buf, float64(t), 32)
	case []byte:
		e.bytes(t)
	case json.RawMessage:
		return e.raw(t)
	case Object:
		if err := e.push(); err != nil {
			return err
		}
		e.buf = append(e.buf, '{')
		for i := range t {
			if i > 0 {
				e.comma()
			}
			e.str(t[i].Key)
			e.colon()
			if err := e.value(t[i].Value); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, '}')
		e.pop()
	case []any:
		if err := e.push(); err != nil {
			return err
		}
		e.buf = append(e.buf, '[')
		for i, x := range t {
			if i > 0 {
				e.comma()
			}
			if err := e.value(x); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
		e.pop()
	case []string:
		e.buf = append(e.buf, '[')
		for i, x := range t {
			if i > 0 {
				e.comma()
			}
			e.str(x)
		}
		e.buf = append(e.buf, ']')
	default:
		return e.reflectValue(reflect.ValueOf(v))
	}
	return nil
}

// reflectValue encodes the Go values the fast paths of value do not cover:
// pointers, other slices (e.g. []*rapiv2.Instance), maps and named scalars.
func (e *encoder) reflectValue(rv reflect.Value) error {
	switch rv.Kind() {
	case reflect.Invalid:
		e.null()
		return nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			e.null()
			return nil
		}
		if err := e.push(); err != nil {
			return err
		}
		defer e.pop()
		return e.value(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			e.buf = append(e.buf, "[]"...)
			return nil
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
			e.bytes(b)
			return nil
		}
		if err := e.push(); err != nil {
			return err
		}
		e.buf = append(e.buf, '[')
		for i := 0; i < rv.Len(); i++ {
			if i > 0 {
				e.comma()
			}
			if err := e.value(rv.Index(i).Interface()); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
		e.pop()
		return nil
	case reflect.Map:
		return e.reflectMap(rv)
	case reflect.String:
		e.str(rv.String())
	case reflect.Bool:
		e.buf = strconv.AppendBool(e.buf, rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = strconv.AppendInt(e.buf, rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = strconv.AppendUint(e.buf, rv.Uint(), 10)
	case reflect.Float32:
		e.buf = appendPyFloat(e.buf, rv.Float(), 32)
	case reflect.Float64:
		e.buf = appendPyFloat(e.buf, rv.Float(), 64)
	default:
		return fmt.Errorf("legacyjson: cannot encode a %s", rv.Type())
	}
	return nil
}

func (e *encoder) reflectMap(rv reflect.Value) error {
	type kv struct {
		key string
		val reflect.Value
	}
	items := make([]kv, 0, rv.Len())
	iter := rv.MapRange()
	for iter.Next() {
		k := iter.Key()
		var ks string
		switch k.Kind() {
		case reflect.String:
			ks = k.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			ks = strconv.FormatInt(k.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			ks = strconv.FormatUint(k.Uint(), 10)
		case reflect.Bool:
			ks = strconv.FormatBool(k.Bool())
		default:
			return fmt.Errorf("legacyjson: cannot encode a map with %s keys", k.Type())
		}
		items = append(items, kv{ks, iter.Value()})
	}
	slices.SortFunc(items, func(a, b kv) int { return strings.Compare(a.key, b.key) })
	if err := e.push(); err != nil {
		return err
	}
	e.buf = append(e.buf, '{')
	for i, it := range items {
		if i > 0 {
			e.comma()
		}
		e.str(it.key)
		e.colon()
		if err := e.value(it.val.Interface()); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	e.pop()
	return nil
}

func (e *encoder) raw(r json.RawMessage) error {
	if len(r) == 0 {
		e.null()
		return nil
	}
	v, err := parseJSON(r, maxDepth)
	if err != nil {
		return fmt.Errorf("legacyjson: invalid json.RawMessage")
	}
	return e.value(v)
}

func (e *encoder) bytes(b []byte) {
	e.buf = append(e.buf, '"')
	e.buf = base64.StdEncoding.AppendEncode(e.buf, b)
	e.buf = append(e.buf, '"')
}

// message encodes a proto message in its legacy form.
func (e *encoder) message(m protoreflect.Message) error {
	switch x := m.Interface().(type) { // fast path for the generated WKTs
	case *structpb.Struct:
		return e.pbStruct(x)
	case *structpb.Value:
		return e.pbValue(x)
	case *structpb.ListValue:
		return e.pbList(x)
	}
	mi := e.info(m.Descriptor())
	if mi.wkt != wktNone {
		return e.wkt(m, mi)
	}
	if err := e.push(); err != nil {
		return err
	}
	defer e.pop()
	switch {
	case mi.unwrap:
		return e.unwrap(m, mi)
	case mi.opSwitch != nil:
		return e.opSwitch(m, mi)
	case mi.tuple:
		// Trailing unset positions that may be left out are left out.
		n := len(mi.fields)
		for n > mi.minTuple && e.writesNull(m, mi.fields[n-1]) {
			n--
		}
		e.buf = append(e.buf, '[')
		for i, f := range mi.fields[:n] {
			if i > 0 {
				e.comma()
			}
			if err := e.field(m, f); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
		return nil
	}
	e.buf = append(e.buf, '{')
	if p := e.plan(m); p != nil {
		if _, err := e.planMembers(m, p); err != nil {
			return err
		}
	} else if _, err := e.members(m, mi, true, ""); err != nil {
		return err
	}
	e.buf = append(e.buf, '}')
	return nil
}

// writesNull reports whether field f of m is unset or, for an enum, holds
// a value written as null (the zero value of an enum without (legacy)).
func (e *encoder) writesNull(m protoreflect.Message, f *fieldInfo) bool {
	if !m.Has(f.fd) {
		return true
	}
	if f.enum != nil && !f.fd.IsList() && !f.fd.IsMap() {
		out, ok := f.enum.out[m.Get(f.fd).Enum()]
		return ok && string(out.compact) == "null"
	}
	return false
}

// members writes the fields of m as members of an object that is already
// open; first tells whether none has been written yet. The fields of an
// (inline) field, set or not, are written in its place. A field keyed skip
// is left out.
func (e *encoder) members(m protoreflect.Message, mi *msgInfo, first bool, skip string) (bool, error) {
	for _, f := range mi.fields {
		var err error
		if first, err = e.member(m, f, first, skip); err != nil {
			return first, err
		}
	}
	return first, nil
}

// member writes field f of m as a member of an object that is already
// open (see members).
func (e *encoder) member(m protoreflect.Message, f *fieldInfo, first bool, skip string) (bool, error) {
	if f.inline {
		// Unset is written as empty: decoding always sets the field.
		if err := e.push(); err != nil {
			return first, err
		}
		sub := m.Get(f.fd).Message()
		var err error
		if first, err = e.members(sub, e.info(sub.Descriptor()), first, skip); err != nil {
			return first, err
		}
		e.pop()
		return first, nil
	}
	if (skip != "" && f.key == skip) || f.typedOnly {
		return first, nil
	}
	if (f.oneof || e.omitUnset) && f.fd.HasPresence() && !m.Has(f.fd) && !e.nullWhenUnset(f) {
		return first, nil
	}
	if e.omitEmptyParam(f) && !m.Has(f.fd) {
		return first, nil
	}
	// m.Has is false for an empty list or map and an unset field with
	// presence; the (empty) option does not apply to other scalars.
	empty := f.empty != rapiv2.LegacyEmpty_LEGACY_EMPTY_UNSPECIFIED &&
		(f.fd.IsList() || f.fd.IsMap() || f.fd.HasPresence()) && !m.Has(f.fd)
	if empty && f.empty == rapiv2.LegacyEmpty_LEGACY_EMPTY_OMIT {
		return first, nil
	}
	e.key(f, first)
	if empty {
		e.null()
		return false, nil
	}
	return false, e.field(m, f)
}

// key writes the key of f and the colon, after a comma unless first.
func (e *encoder) key(f *fieldInfo, first bool) {
	if !first {
		e.comma()
	}
	if e.ascii {
		e.buf = append(e.buf, f.quotedA...)
	} else {
		e.buf = append(e.buf, f.quoted...)
	}
	e.colon()
}

// unwrap writes an (unwrap) message as the value of its first non-empty
// field (a set oneof member or message, a non-empty list or map, a set
// optional scalar, a non-zero scalar), or of its first field when all are
// empty.
func (e *encoder) unwrap(m protoreflect.Message, mi *msgInfo) error {
	if len(mi.fields) == 0 {
		e.null()
		return nil
	}
	for _, f := range mi.fields {
		if m.Has(f.fd) {
			return e.field(m, f)
		}
	}
	f := mi.fields[0]
	if f.empty == rapiv2.LegacyEmpty_LEGACY_EMPTY_NULL {
		e.null()
		return nil
	}
	return e.field(m, f)
}

// opSwitch writes an "any opcode" message as the chosen opcode's object,
// "OP_ID" first; null when no opcode is set.
func (e *encoder) opSwitch(m protoreflect.Message, mi *msgInfo) error {
	var f *fieldInfo
	for _, g := range mi.fields {
		if m.Has(g.fd) {
			f = g
			break
		}
	}
	if f == nil {
		e.null()
		return nil
	}
	e.buf = append(e.buf, '{')
	e.str("OP_ID")
	e.colon()
	e.str(f.opID)
	sub := m.Get(f.fd).Message()
	// An opcode is written as Ganeti's job records show it (see
	// opcodeRecord).
	omit, rec := e.omitUnset, e.opRecord
	e.omitUnset, e.opRecord = true, true
	_, err := e.members(sub, e.info(sub.Descriptor()), false, "OP_ID")
	e.omitUnset, e.opRecord = omit, rec
	if err != nil {
		return err
	}
	e.buf = append(e.buf, '}')
	return nil
}

// field encodes the value of one field of m.
func (e *encoder) field(m protoreflect.Message, f *fieldInfo) error {
	fd := f.fd
	if f.private() {
		return e.private(m, f)
	}
	switch {
	case fd.IsList():
		return e.list(m.Get(fd).List(), f)
	case fd.IsMap():
		return e.mapField(m.Get(fd).Map(), f)
	case fd.HasPresence() && !m.Has(fd):
		e.null()
		return nil
	case f.number:
		e.buf = appendNumberValue(e.buf, m.Get(fd).Float())
		return nil
	}
	return e.single(fd, f.enum, m.Get(fd))
}

// single encodes one singular value of field kind fd.Kind().
func (e *encoder) single(fd protoreflect.FieldDescriptor, ei *enumInfo, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		e.buf = strconv.AppendBool(e.buf, v.Bool())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
	case protoreflect.FloatKind:
		e.buf = appendPyFloat(e.buf, v.Float(), 32)
	case protoreflect.DoubleKind:
		e.buf = appendPyFloat(e.buf, v.Float(), 64)
	case protoreflect.StringKind:
		e.str(v.String())
	case protoreflect.BytesKind:
		e.bytes(v.Bytes())
	case protoreflect.EnumKind:
		if ei == nil {
			ei = enumInfoFor(fd.Enum())
		}
		e.enum(ei, v.Enum())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return e.message(v.Message())
	default:
		e.null()
	}
	return nil
}

func (e *encoder) enum(ei *enumInfo, n protoreflect.EnumNumber) {
	out, ok := ei.out[n]
	switch {
	case !ok:
		e.buf = strconv.AppendInt(e.buf, int64(n), 10)
	case e.ascii:
		e.buf = append(e.buf, out.ascii...)
	default:
		e.buf = append(e.buf, out.compact...)
	}
}

func (e *encoder) list(l protoreflect.List, f *fieldInfo) error {
	e.buf = append(e.buf, '[')
	n := l.Len()
	isMsg := f.fd.Kind() == protoreflect.MessageKind
	for i := 0; i < n; i++ {
		if i > 0 {
			e.comma()
		}
		v := l.Get(i)
		if isMsg {
			if done, err := e.frozenMessage(v.Message()); done || err != nil {
				if err != nil {
					return err
				}
				if err := e.flush(false); err != nil {
					return err
				}
				continue
			}
		}
		if err := e.single(f.fd, f.enum, v); err != nil {
			return err
		}
		if err := e.flush(false); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, ']')
	return nil
}

// sortedKeys returns the keys of a proto map in a stable order.
func sortedKeys(mp protoreflect.Map, kd protoreflect.FieldDescriptor) []protoreflect.MapKey {
	keys := make([]protoreflect.MapKey, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
		switch kd.Kind() {
		case protoreflect.StringKind:
			return strings.Compare(a.String(), b.String())
		case protoreflect.BoolKind:
			ab, bb := a.Bool(), b.Bool()
			switch {
			case ab == bb:
				return 0
			case !ab:
				return -1
			}
			return 1
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			au, bu := a.Uint(), b.Uint()
			switch {
			case au < bu:
				return -1
			case au > bu:
				return 1
			}
			return 0
		}
		ai, bi := a.Int(), b.Int()
		switch {
		case ai < bi:
			return -1
		case ai > bi:
			return 1
		}
		return 0
	})
	return keys
}

func (e *encoder) mapKey(k protoreflect.MapKey) {
	// MapKey.String formats integer and bool keys in decimal / true / false.
	e.str(k.String())
}

func (e *encoder) mapField(mp protoreflect.Map, f *fieldInfo) error {
	vd := f.fd.MapValue()
	e.buf = append(e.buf, '{')
	for i, k := range sortedKeys(mp, f.fd.MapKey()) {
		if i > 0 {
			e.comma()
		}
		e.mapKey(k)
		e.colon()
		if err := e.single(vd, f.enum, mp.Get(k)); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

// private writes a private value the way Ganeti echoes it: null, or for a
// dictionary its keys with each value null (PrivateDict), a dictionary of
// dictionaries (osparams_private_cluster) keeping both levels of keys.
func (e *encoder) private(m protoreflect.Message, f *fieldInfo) error {
	fd := f.fd
	switch {
	case fd.IsMap():
		mp := m.Get(fd).Map()
		e.buf = append(e.buf, '{')
		for i, k := range sortedKeys(mp, fd.MapKey()) {
			if i > 0 {
				e.comma()
			}
			e.str(k.String())
			e.colon()
			e.null()
		}
		e.buf = append(e.buf, '}')
		return nil
	case !fd.IsList() && f.valKind == wktStruct && m.Has(fd):
		s, err := asStructpb(m.Get(fd).Message())
		if err != nil {
			return err
		}
		return e.privateValue(structpb.NewStructValue(s), privateDepth(fd, f.spec))
	}
	e.null()
	return nil
}

// privateValue writes v with every value below depth dictionary levels
// null.
func (e *encoder) privateValue(v *structpb.Value, depth int) error {
	s := v.GetStructValue()
	if s == nil || depth <= 0 {
		e.null()
		return nil
	}
	if err := e.push(); err != nil {
		return err
	}
	keys := make([]string, 0, len(s.GetFields()))
	for k := range s.GetFields() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.buf = append(e.buf, '{')
	for i, k := range keys {
		if i > 0 {
			e.comma()
		}
		e.str(k)
		e.colon()
		if err := e.privateValue(s.GetFields()[k], depth-1); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	e.pop()
	return nil
}

// wkt encodes the well-known types that have a JSON form of their own.
func (e *encoder) wkt(m protoreflect.Message, mi *msgInfo) error {
	switch mi.wkt {
	case wktWrapper:
		if len(mi.fields) == 0 {
			e.null()
			return nil
		}
		f := mi.fields[0]
		return e.single(f.fd, f.enum, m.Get(f.fd))
	case wktStruct:
		s, err := asStructpb(m)
		if err != nil {
			return err
		}
		return e.pbStruct(s)
	case wktListValue:
		l, err := viewAs[*structpb.ListValue](m)
		if err != nil {
			return err
		}
		return e.pbList(l)
	default: // wktValue
		v, err := viewAs[*structpb.Value](m)
		if err != nil {
			return err
		}
		return e.pbValue(v)
	}
}

func asStructpb(m protoreflect.Message) (*structpb.Struct, error) {
	return viewAs[*structpb.Struct](m)
}

// viewAs returns m as the generated Go type T: m itself for generated
// messages, otherwise (dynamic messages) a copy through the wire format.
func viewAs[T proto.Message](m protoreflect.Message) (T, error) {
	if src, ok := m.Interface().(T); ok {
		return src, nil
	}
	var zero T
	dst := zero.ProtoReflect().New().Interface().(T)
	b, err := proto.Marshal(m.Interface())
	if err == nil {
		err = proto.Unmarshal(b, dst)
	}
	return dst, err
}

func (e *encoder) pbStruct(s *structpb.Struct) error {
	if err := e.push(); err != nil {
		return err
	}
	fields := s.GetFields()
	var keys []string
	if n := len(e.freeKeys); n > 0 {
		keys, e.freeKeys = e.freeKeys[n-1][:0], e.freeKeys[:n-1]
	}
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.buf = append(e.buf, '{')
	for i, k := range keys {
		if i > 0 {
			e.comma()
		}
		e.str(k)
		e.colon()
		var err error
		if d, ok := privateKeyDepth(k); ok {
			err = e.privateValue(fields[k], d)
		} else {
			err = e.pbValue(fields[k])
		}
		if err != nil {
			return err
		}
	}
	e.buf = append(e.buf, '}')
	e.freeKeys = append(e.freeKeys, keys)
	e.pop()
	return nil
}

func (e *encoder) pbList(l *structpb.ListValue) error {
	if err := e.push(); err != nil {
		return err
	}
	e.buf = append(e.buf, '[')
	for i, v := range l.GetValues() {
		if i > 0 {
			e.comma()
		}
		if err := e.pbValue(v); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, ']')
	e.pop()
	return nil
}

func (e *encoder) pbValue(v *structpb.Value) error {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		e.buf = appendNumberValue(e.buf, k.NumberValue)
	case *structpb.Value_StringValue:
		e.str(k.StringValue)
	case *structpb.Value_BoolValue:
		e.buf = strconv.AppendBool(e.buf, k.BoolValue)
	case *structpb.Value_StructValue:
		return e.pbStruct(k.StructValue)
	case *structpb.Value_ListValue:
		return e.pbList(k.ListValue)
	default: // null or unset
		e.null()
	}
	return nil
}

// appendNumberValue writes a google.protobuf.Value number. Value keeps only
// a double, so integral numbers are written as JSON integers (what Ganeti
// sends for counts, sizes and nanosecond timestamps).
func appendNumberValue(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return strconv.AppendInt(b, int64(f), 10)
	}
	return appendPyFloat(b, f, 64)
}

// appendPyFloat writes f like Python's repr(float): the shortest
// representation, fixed notation for exponents in [-4, 16) with at least one
// decimal ("1.0"), scientific otherwise ("1e+16", "1.5e-05"), and NaN /
// Infinity / -Infinity as Python's json module does.
func appendPyFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	var scratch [32]byte
	sci := strconv.AppendFloat(scratch[:0], f, 'e', -1, bits)
	exp := 0
	if i := bytes.LastIndexByte(sci, 'e'); i >= 0 {
		neg := false
		for _, c := range sci[i+1:] {
			switch {
			case c == '-':
				neg = true
			case '0' <= c && c <= '9':
				exp = exp*10 + int(c-'0')
			}
		}
		if neg {
			exp = -exp
		}
	}
	if exp < -4 || exp >= 16 {
		return append(b, sci...)
	}
	n := len(b)
	b = strconv.AppendFloat(b, f, 'f', -1, bits)
	for _, c := range b[n:] {
		if c == '.' {
			return b
		}
	}
	return append(b, '.', '0')
}

func appendInt(b []byte, i int64) []byte { return strconv.AppendInt(b, i, 10) }

// safeASCII[c] is true for ASCII bytes written as-is inside a JSON string.
var safeCompact, safeASCII [utf8.RuneSelf]bool

func init() {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		safeCompact[c] = c != '"' && c != '\\'
		safeASCII[c] = safeCompact[c] && c != 0x7f
	}
}

const hexDigits = "0123456789abcdef"

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// appendString writes s as a JSON string. Like encoding/json it escapes
// control characters, U+2028 / U+2029 and invalid UTF-8 (as U+FFFD), but not
// <, > and & (Ganeti does not). With ascii, every non-ASCII character and
// DEL are escaped as \uXXXX, as Python's json module does by default.
func appendString(b []byte, s string, ascii bool) []byte {
	safe := &safeCompact
	if ascii {
		safe = &safeASCII
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = appendU(b, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case ascii:
			b = append(b, s[start:i]...)
			if r > 0xffff {
				r -= 0x10000
				b = appendU(b, 0xd800+(r>>10))
				b = appendU(b, 0xdc00+(r&0x3ff))
			} else {
				b = appendU(b, r)
			}
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = appendU(b, r)
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// validNumber reports whether s is a JSON number, NaN, Infinity or -Infinity.
func validNumber(s string) bool {
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return true
	}
	if s == "" {
		return false
	}
	p := parser{data: []byte(s)}
	if _, err := p.number(); err != nil {
		return false
	}
	return p.pos == len(s)
}
