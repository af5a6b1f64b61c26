// Package legacyjson converts between Ganeti's legacy RAPI JSON and proto
// messages, driven by the custom options of ganeti/rapi/v2/options.proto.
//
// The legacy key of a field is its json_name when the proto sets one
// explicitly (for example "nic.bridges", "dry-run" or "OP_ID"), otherwise
// the proto field name ("instance_name"). Enum values are spelled by their
// (legacy) option, (tuple) messages are fixed-length JSON arrays whose
// positions are the fields in field-number order, and (opcode) messages are
// decoded strictly, with Ganeti's own error texts.
//
// The other options of ganeti/rapi/v2/options.proto:
//   - (unwrap) messages are the bare value of their first non-empty field,
//     or of their first field when all are empty ([] for a repeated first
//     field, null for a message). Decoding takes the first field's value;
//     when the first field is in a oneof, the members are tried in order,
//     google.protobuf.Value ones last, the first that accepts the value
//     wins (see decoder.unwrap and unwrapMatch for OpResult's rules).
//   - (empty) = LEGACY_EMPTY_NULL writes an empty repeated or map field, or
//     an unset field with presence, as null; LEGACY_EMPTY_OMIT leaves it out
//     of the object. Plain scalars are not affected.
//   - (inline) message fields have their fields written in the parent's
//     object, in the inline field's place (an unset one as an empty
//     message); on decoding, the keys the parent does not know go to the
//     (first) inline field, which is always set and keeps its own strictness (an inline opcode rejects unknown keys with
//     its class name).
//   - (strict_object) = "name": decoding rejects unknown keys with
//     "Invalid body parameters: name doesn't support the parameter 'key'".
//   - Tuples leave out trailing positions that are unset (or hold an enum
//     written as null) when the field has presence, except
//     google.protobuf.Value whose null is a value; decoding accepts arrays
//     that lack such trailing positions.
//   - (params) messages are Ganeti parameter dicts (params.proto): unset
//     fields are left out, and doubles are written as Ganeti's numbers (an
//     integral value as a JSON integer), as google.protobuf.Struct numbers.
//   - (null_value) messages take JSON null as a value: decoding null sets
//     the field to an empty message (MaybeString, written back as null).
//   - (variant_by) = "key" on a field holding an (unwrap) oneof message
//     (HvParams): the sibling field keyed "key" names the member by its
//     json_name (an instance's "hypervisor" chooses the hypervisor's
//     parameters). Decoding fails when the selector is absent, null, not a
//     string or names no member; null for the field itself stays null.
//     Opcode bodies keep google.protobuf.Struct hvparams (see params.proto);
//     a typed one without a hypervisor would take the cluster's default
//     hypervisor, Ganeti's rule, which the caller must supply.
//   - (typed_only) fields are never written on the legacy surface; Keys
//     leaves them out, QueryKeys (the query fields that fill a read
//     message) keeps them.
//   - A message made of a single oneof whose members are all (opcode)
//     messages, such as ganeti.rapi.v2.OpCode, is the chosen opcode's object
//     with a first member "OP_ID"; decoding picks the member by OP_ID.
//
// The package is used in two places: the gateway installs Marshaler as the
// grpc-gateway runtime.Marshaler of the legacy paths, and the service layer
// calls FromValue / ToValue to turn domain values into typed messages and
// back. The read path uses FillTrusted, RowFiller and Batch, which give
// FromValue's results faster for the values a domain layer produces
// (trusted.go); the encoder reads the fields of generated messages
// directly where it can (encode_fast.go). Nothing in here panics on any input; every decoding problem is a
// *DecodeError whose Msg is the text Ganeti would answer with (HTTP 400).
package legacyjson

import (
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
)

// Object is a JSON object whose key order is preserved. ToValue returns
// objects as Object so that encoding the result keeps the proto field order,
// and the request decoder produces Object so that errors name the first
// offending key in body order, as Ganeti does. FromValue and Marshal accept
// Object wherever a JSON object is expected.
type Object []Member

// Member is one key of an Object.
type Member struct {
	Key   string
	Value any
}

// Get returns the value of key and whether the key is present.
func (o Object) Get(key string) (any, bool) {
	for i := range o {
		if o[i].Key == key {
			return o[i].Value, true
		}
	}
	return nil, false
}

// MarshalJSON encodes the object compactly, keys in order, so that values
// returned by ToValue can also be encoded with encoding/json.
func (o Object) MarshalJSON() ([]byte, error) {
	e := encoder{}
	if err := e.value(o); err != nil {
		return nil, err
	}
	return e.buf, nil
}

// wktKind tells the well-known types that have their own JSON form.
type wktKind uint8

const (
	wktNone      wktKind = iota
	wktStruct            // google.protobuf.Struct: any JSON object
	wktValue             // google.protobuf.Value: any JSON value
	wktListValue         // google.protobuf.ListValue: any JSON array
	wktWrapper           // google.protobuf.StringValue etc.: the bare value
)

var wktByName = map[protoreflect.FullName]wktKind{
	"google.protobuf.Struct":      wktStruct,
	"google.protobuf.Value":       wktValue,
	"google.protobuf.ListValue":   wktListValue,
	"google.protobuf.DoubleValue": wktWrapper,
	"google.protobuf.FloatValue":  wktWrapper,
	"google.protobuf.Int64Value":  wktWrapper,
	"google.protobuf.UInt64Value": wktWrapper,
	"google.protobuf.Int32Value":  wktWrapper,
	"google.protobuf.UInt32Value": wktWrapper,
	"google.protobuf.BoolValue":   wktWrapper,
	"google.protobuf.StringValue": wktWrapper,
	"google.protobuf.BytesValue":  wktWrapper,
}

const nullValueEnum protoreflect.FullName = "google.protobuf.NullValue"

// msgInfo is the cached legacy view of one message type.
type msgInfo struct {
	fields []*fieldInfo // in field-number order
	byKey  map[string]*fieldInfo
	tuple  bool
	opcode *rapiv2.OpcodeInfo // nil unless the message is an opcode
	wkt    wktKind
	unwrap bool   // (unwrap): written as the value of one of its fields
	strict string // (strict_object): unknown keys are rejected with this name
	// inline is the first (inline) field: the decode target of the keys
	// the message does not know. Nil when there is none.
	inline *fieldInfo
	// opSwitch is set for an "any opcode" message (see isOpSwitch): the
	// oneof members by OP_ID.
	opSwitch map[string]*fieldInfo
	// minTuple is, for tuples, the shortest array accepted: positions after
	// it can be left out (see tupleDroppable).
	minTuple int
}

// fieldInfo is the cached legacy view of one field.
type fieldInfo struct {
	fd      protoreflect.FieldDescriptor
	index   int    // position in msgInfo.fields
	key     string // legacy JSON key
	quoted  []byte // key as a JSON string (UTF-8 kept)
	quotedA []byte // key as a JSON string, non-ASCII escaped (Python style)
	spec    *rapiv2.ParamSpec
	oneof   bool      // member of a real (non-synthetic) oneof
	enum    *enumInfo // for enum fields, enum list elements and enum map values
	valKind wktKind   // for message fields, list elements and map values
	empty   rapiv2.LegacyEmpty
	inline  bool   // (inline) on a plain message field: its fields are the parent's
	opID    string // OP_ID of an opSwitch member
	// match, for some (unwrap) oneof members, narrows which JSON values
	// select the member (see unwrapMatch).
	match func(any) bool
	// sig is the compiled (param) sig of a google.protobuf.Struct, Value
	// or ListValue field (or list or map of them) whose sig checks more
	// than the JSON shape (see sig.go); nil otherwise.
	sig *sigType
	// number: a double of a (params) message, written as Ganeti's number
	// (an integral value as a JSON integer).
	number bool
	// nullMsg: a singular message field whose type is (null_value): JSON
	// null sets it to an empty message.
	nullMsg bool
	// typedOnly: (typed_only), never written on the legacy surface.
	typedOnly bool
	// variantName is the (variant_by) option; variant the sibling field
	// it names (nil when there is none in the message).
	variantName string
	variant     *fieldInfo
}

// private reports whether the field holds a private (secret) value.
func (f *fieldInfo) private() bool { return f.spec != nil && f.spec.GetPrivate() }

// enumInfo is the cached legacy view of one enum type.
type enumInfo struct {
	desc      protoreflect.EnumDescriptor
	hasLegacy bool // at least one value carries (legacy)
	null      bool // google.protobuf.NullValue
	out       map[protoreflect.EnumNumber]enumOut
	byStr     map[string]protoreflect.EnumNumber // legacy strings
	byNum     map[int64]protoreflect.EnumNumber  // legacy numbers
	byName    map[string]protoreflect.EnumNumber // names of values without (legacy)
	allNames  map[string]protoreflect.EnumNumber // every value name
	want      string                             // Python type name of the legacy values
}

// enumOut is the encoded JSON of one enum value, in both output styles.
type enumOut struct {
	compact, ascii []byte
}

var (
	msgCache  sync.Map // protoreflect.MessageDescriptor -> *msgInfo
	enumCache sync.Map // protoreflect.EnumDescriptor -> *enumInfo
)

// infoFor returns the cached metadata of a message type.
func infoFor(md protoreflect.MessageDescriptor) *msgInfo {
	if v, ok := msgCache.Load(md); ok {
		return v.(*msgInfo)
	}
	mi := buildMsgInfo(md)
	v, _ := msgCache.LoadOrStore(md, mi)
	return v.(*msgInfo)
}

// msgOpts are the legacy message options of a message type.
type msgOpts struct {
	tuple     bool
	unwrap    bool
	opcode    *rapiv2.OpcodeInfo
	strict    string
	params    bool
	nullValue bool
}

func messageOptions(md protoreflect.MessageDescriptor) msgOpts {
	var mo msgOpts
	opts, ok := md.Options().(*descriptorpb.MessageOptions)
	if !ok || opts == nil {
		return mo
	}
	mo.tuple, _ = getExtension(opts, rapiv2.E_Tuple).(bool)
	mo.unwrap, _ = getExtension(opts, rapiv2.E_Unwrap).(bool)
	mo.strict, _ = getExtension(opts, rapiv2.E_StrictObject).(string)
	mo.params, _ = getExtension(opts, rapiv2.E_Params).(bool)
	mo.nullValue, _ = getExtension(opts, rapiv2.E_NullValue).(bool)
	if oc, ok := getExtension(opts, rapiv2.E_Opcode).(*rapiv2.OpcodeInfo); ok && oc != nil {
		mo.opcode = oc
	}
	return mo
}

// isOpSwitch reports whether md is an "any opcode" message such as
// ganeti.rapi.v2.OpCode: exactly one (real) oneof, every field a member of
// it, and every member a message carrying (opcode). On the legacy surface
// it is the chosen opcode's object with an extra first member "OP_ID".
func isOpSwitch(md protoreflect.MessageDescriptor) bool {
	ods := md.Oneofs()
	var od protoreflect.OneofDescriptor
	for i := 0; i < ods.Len(); i++ {
		if ods.Get(i).IsSynthetic() {
			return false // an optional field outside the oneof
		}
		if od != nil {
			return false
		}
		od = ods.Get(i)
	}
	if od == nil || od.Fields().Len() == 0 || od.Fields().Len() != md.Fields().Len() {
		return false
	}
	for i := 0; i < od.Fields().Len(); i++ {
		fd := od.Fields().Get(i)
		if fd.Kind() != protoreflect.MessageKind || messageOptions(fd.Message()).opcode == nil {
			return false
		}
	}
	return true
}

// plainObject reports whether messages of type md are written as a JSON
// object of their own fields (what an (inline) field needs).
func plainObject(md protoreflect.MessageDescriptor) bool {
	mo := messageOptions(md)
	return wktByName[md.FullName()] == wktNone && !mo.tuple && !mo.unwrap && !isOpSwitch(md)
}

// unwrapMatch narrows which JSON values select particular members of an
// (unwrap) oneof, keyed by the member's full name. Without an entry, a
// member is selected by any value that decodes into it (see
// decoder.unwrap).
var unwrapMatch = map[protoreflect.FullName]func(any) bool{
	// ["OpPrereqError", ["Instance 'x' not known", "unknown_entity"]]
	"ganeti.rapi.v2.OpResult.error": isErrorTuple,
	// Ganeti's text for the result of a canceled opcode.
	"ganeti.rapi.v2.OpResult.canceled": func(v any) bool {
		s, ok := asString(deref(v))
		return ok && s == "Job canceled by request"
	},
}

// isErrorTuple reports whether v looks like an encoded Ganeti error: a
// [class, [args...]] array whose class name ends in "Error".
func isErrorTuple(v any) bool {
	list, ok := asList(deref(v))
	if !ok || len(list) != 2 {
		return false
	}
	cls, ok := asString(deref(list[0]))
	if !ok || !strings.HasSuffix(cls, "Error") {
		return false
	}
	_, ok = asList(deref(list[1]))
	return ok
}

func buildMsgInfo(md protoreflect.MessageDescriptor) *msgInfo {
	mo := messageOptions(md)
	mi := &msgInfo{wkt: wktByName[md.FullName()], tuple: mo.tuple, opcode: mo.opcode, unwrap: mo.unwrap, strict: mo.strict}
	if mi.wkt != wktNone {
		mi.tuple, mi.unwrap, mi.opcode, mi.strict = false, false, nil, ""
	}
	opSwitch := mi.wkt == wktNone && isOpSwitch(md)
	fds := md.Fields()
	mi.fields = make([]*fieldInfo, 0, fds.Len())
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		f := &fieldInfo{fd: fd, key: legacyKey(fd)}
		f.quoted = appendString(nil, f.key, false)
		f.quotedA = appendString(nil, f.key, true)
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			f.oneof = true
		}
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts != nil {
			if ps, ok := getExtension(opts, rapiv2.E_Param).(*rapiv2.ParamSpec); ok && ps != nil {
				f.spec = ps
			}
			f.empty, _ = getExtension(opts, rapiv2.E_Empty).(rapiv2.LegacyEmpty)
			f.typedOnly, _ = getExtension(opts, rapiv2.E_TypedOnly).(bool)
			f.variantName, _ = getExtension(opts, rapiv2.E_VariantBy).(string)
			if in, _ := getExtension(opts, rapiv2.E_Inline).(bool); in && !mi.tuple && !mi.unwrap && !opSwitch &&
				fd.Kind() == protoreflect.MessageKind && fd.Cardinality() != protoreflect.Repeated && !f.oneof &&
				plainObject(fd.Message()) {
				f.inline = true
			}
		}
		if opSwitch {
			f.opID = messageOptions(fd.Message()).opcode.GetId()
		}
		if mo.params {
			// A parameter dict: unset parameters are not in it.
			if f.empty == rapiv2.LegacyEmpty_LEGACY_EMPTY_UNSPECIFIED {
				f.empty = rapiv2.LegacyEmpty_LEGACY_EMPTY_OMIT
			}
			f.number = fd.Kind() == protoreflect.DoubleKind
		}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
			f.nullMsg = messageOptions(fd.Message()).nullValue
		}
		if f.oneof && mi.unwrap {
			f.match = unwrapMatch[fd.FullName()]
		}
		vd := fd
		if fd.IsMap() {
			vd = fd.MapValue()
		}
		switch vd.Kind() {
		case protoreflect.EnumKind:
			f.enum = enumInfoFor(vd.Enum())
		case protoreflect.MessageKind, protoreflect.GroupKind:
			f.valKind = wktByName[vd.Message().FullName()]
		}
		switch f.valKind {
		case wktStruct, wktValue, wktListValue:
			f.sig = compileSig(f.spec.GetSig())
		}
		mi.fields = append(mi.fields, f)
	}
	slices.SortFunc(mi.fields, func(a, b *fieldInfo) int { return int(a.fd.Number()) - int(b.fd.Number()) })
	mi.byKey = make(map[string]*fieldInfo, len(mi.fields))
	if opSwitch {
		mi.opSwitch = make(map[string]*fieldInfo, len(mi.fields))
	}
	for i, f := range mi.fields {
		f.index = i
		if f.inline {
			// An inline field has no key of its own.
			if mi.inline == nil {
				mi.inline = f
			}
			continue
		}
		if _, dup := mi.byKey[f.key]; !dup {
			mi.byKey[f.key] = f
		}
		if opSwitch {
			if _, dup := mi.opSwitch[f.opID]; !dup {
				mi.opSwitch[f.opID] = f
			}
		}
		if mi.tuple && !tupleDroppable(f) {
			mi.minTuple = i + 1
		}
	}
	for _, f := range mi.fields {
		if f.variantName != "" {
			f.variant = mi.byKey[f.variantName]
		}
	}
	return mi
}

// variantKey is the member a (variant_by) field's selector value names:
// its legacy string (an enum's legacy spelling, or a string). ok is false
// when the selector is absent, null or not a string.
func variantKey(sel *fieldInfo, v any, set bool) (string, bool) {
	if sel == nil || !set {
		return "", false
	}
	s, ok := asString(deref(v))
	return s, ok && s != ""
}

// tupleDroppable reports whether a tuple position may be left out at the
// end of the array when unset: a field with presence (optional scalar,
// message, wrapper), except google.protobuf.Value, whose unset state is
// JSON null, a value of its own (QueryCell [2, null]).
func tupleDroppable(f *fieldInfo) bool {
	return f.fd.HasPresence() && !(f.valKind == wktValue && !f.fd.IsList() && !f.fd.IsMap())
}

func enumInfoFor(ed protoreflect.EnumDescriptor) *enumInfo {
	if v, ok := enumCache.Load(ed); ok {
		return v.(*enumInfo)
	}
	ei := &enumInfo{
		desc:     ed,
		null:     ed.FullName() == nullValueEnum,
		out:      map[protoreflect.EnumNumber]enumOut{},
		byStr:    map[string]protoreflect.EnumNumber{},
		byNum:    map[int64]protoreflect.EnumNumber{},
		byName:   map[string]protoreflect.EnumNumber{},
		allNames: map[string]protoreflect.EnumNumber{},
	}
	vals := ed.Values()
	for i := 0; i < vals.Len(); i++ {
		vd := vals.Get(i)
		n := vd.Number()
		ei.allNames[string(vd.Name())] = n
		lv, _ := legacyenum.Value(ed, n)
		var out enumOut
		switch v := lv.(type) {
		case string:
			ei.hasLegacy = true
			if _, dup := ei.byStr[v]; !dup {
				ei.byStr[v] = n
			}
			out = enumOut{appendString(nil, v, false), appendString(nil, v, true)}
			if ei.want == "" {
				ei.want = "str"
			}
		case int64:
			ei.hasLegacy = true
			if _, dup := ei.byNum[v]; !dup {
				ei.byNum[v] = n
			}
			b := appendInt(nil, v)
			out = enumOut{b, b}
			if ei.want == "" {
				ei.want = "int"
			}
		default:
			ei.byName[string(vd.Name())] = n
			if n == 0 || ei.null {
				// The zero value of a proto enum means "not set".
				out = enumOut{[]byte("null"), []byte("null")}
			} else {
				out = enumOut{appendString(nil, string(vd.Name()), false), appendString(nil, string(vd.Name()), true)}
			}
		}
		if _, dup := ei.out[n]; !dup {
			ei.out[n] = out
		}
	}
	if ei.want == "" {
		ei.want = "str"
	}
	v, _ := enumCache.LoadOrStore(ed, ei)
	return v.(*enumInfo)
}

// getExtension reads an extension without ever panicking.
func getExtension(opts proto.Message, xt protoreflect.ExtensionType) (v any) {
	defer func() {
		if recover() != nil {
			v = nil
		}
	}()
	if !proto.HasExtension(opts, xt) {
		return nil
	}
	return proto.GetExtension(opts, xt)
}

// legacyKey is the JSON key of a field: an explicitly set json_name, or the
// proto field name. Compilers fill json_name with the lowerCamelCase default
// for every field, so a json_name equal to that default counts as unset.
func legacyKey(fd protoreflect.FieldDescriptor) string {
	name := string(fd.Name())
	if fd.HasJSONName() {
		if j := fd.JSONName(); j != defaultJSONName(name) {
			return j
		}
	}
	return name
}

// defaultJSONName is protoc's lowerCamelCase json_name of a field name.
func defaultJSONName(s string) string {
	b := make([]byte, 0, len(s))
	up := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			up = true
			continue
		}
		if up && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up = false
		b = append(b, c)
	}
	return string(b)
}
