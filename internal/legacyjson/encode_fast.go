package legacyjson

import (
	"reflect"
	"slices"
	"strconv"
	"unsafe"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// The fast path of the encoder: the fields of plain generated messages
// whose plan (see trusted.go) knows their Go type are read straight from
// the message struct instead of through protoreflect. The output is
// byte for byte what members writes.

// plan returns the plan of m when its fields can be read directly: m is a
// generated message written as a plain object. Nil otherwise.
func (e *encoder) plan(m protoreflect.Message) *plan {
	msg := m.Interface()
	t := reflect.TypeOf(msg)
	md := m.Descriptor()
	if md != e.lastPlanMD || t != e.lastPlanT {
		e.lastPlanMD, e.lastPlanT, e.lastPlan = md, t, nil
		if p := planForMessage(msg); p != nil && p.object {
			e.lastPlan = p
		}
	}
	return e.lastPlan
}

// planMembers is members(m, p.mi, true, "") for a message with a plan.
func (e *encoder) planMembers(m protoreflect.Message, p *plan) (bool, error) {
	base := pointerOf(m.Interface())
	first := true
	for i := range p.fields {
		pf := &p.fields[i]
		f := pf.fieldInfo
		if f.typedOnly {
			continue
		}
		if pf.op == opGeneric || pf.op == opMessage || pf.op == opMessages || f.inline || f.private() {
			var err error
			if first, err = e.member(m, f, first, ""); err != nil {
				return first, err
			}
			continue
		}
		ptr := unsafe.Add(base, pf.offset)
		presence := f.fd.HasPresence()
		has := pf.has(ptr)
		if (f.oneof || e.omitUnset) && presence && !has && !e.nullWhenUnset(f) {
			continue
		}
		if e.omitEmptyParam(f) && !has {
			continue
		}
		empty := f.empty != rapiv2.LegacyEmpty_LEGACY_EMPTY_UNSPECIFIED &&
			(f.fd.IsList() || f.fd.IsMap() || presence) && !has
		if empty && f.empty == rapiv2.LegacyEmpty_LEGACY_EMPTY_OMIT {
			continue
		}
		e.key(f, first)
		first = false
		if empty || (presence && !has) {
			e.null()
			continue
		}
		if err := e.planField(pf, ptr); err != nil {
			return first, err
		}
	}
	return first, nil
}

// has is protoreflect's Has for the fields with presence, lists and maps.
func (pf *planField) has(ptr unsafe.Pointer) bool {
	switch pf.op {
	case opOptString, opOptInt64, opOptInt32, opOptBool, opOptDouble, opStruct, opListValue, opValue:
		return *(*unsafe.Pointer)(ptr) != nil
	case opStrings:
		return len(*(*[]string)(ptr)) > 0
	case opInt64s:
		return len(*(*[]int64)(ptr)) > 0
	case opStructs:
		return len(*(*[]*structpb.Struct)(ptr)) > 0
	case opMapBool:
		return len(*(*map[string]bool)(ptr)) > 0
	case opMapInt64:
		return len(*(*map[string]int64)(ptr)) > 0
	case opMapString:
		return len(*(*map[string]string)(ptr)) > 0
	}
	return true
}

// planField writes the value of a set field, like field.
func (e *encoder) planField(pf *planField, ptr unsafe.Pointer) error {
	switch pf.op {
	case opString:
		e.str(*(*string)(ptr))
	case opOptString:
		e.str(**(**string)(ptr))
	case opInt64:
		e.buf = strconv.AppendInt(e.buf, *(*int64)(ptr), 10)
	case opOptInt64:
		e.buf = strconv.AppendInt(e.buf, **(**int64)(ptr), 10)
	case opInt32:
		e.buf = strconv.AppendInt(e.buf, int64(*(*int32)(ptr)), 10)
	case opOptInt32:
		e.buf = strconv.AppendInt(e.buf, int64(**(**int32)(ptr)), 10)
	case opBool:
		e.buf = strconv.AppendBool(e.buf, *(*bool)(ptr))
	case opOptBool:
		e.buf = strconv.AppendBool(e.buf, **(**bool)(ptr))
	case opDouble:
		e.buf = appendDouble(e.buf, *(*float64)(ptr), pf.number)
	case opOptDouble:
		e.buf = appendDouble(e.buf, **(**float64)(ptr), pf.number)
	case opEnum:
		e.enum(pf.enum, protoreflect.EnumNumber(*(*int32)(ptr)))
	case opStrings:
		e.buf = append(e.buf, '[')
		for i, s := range *(*[]string)(ptr) {
			if i > 0 {
				e.comma()
			}
			e.str(s)
		}
		e.buf = append(e.buf, ']')
	case opInt64s:
		e.buf = append(e.buf, '[')
		for i, n := range *(*[]int64)(ptr) {
			if i > 0 {
				e.comma()
			}
			e.buf = strconv.AppendInt(e.buf, n, 10)
		}
		e.buf = append(e.buf, ']')
	case opStructs:
		e.buf = append(e.buf, '[')
		for i, s := range *(*[]*structpb.Struct)(ptr) {
			if i > 0 {
				e.comma()
			}
			if err := e.pbStruct(s); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
	case opStruct:
		return e.pbStruct(*(**structpb.Struct)(ptr))
	case opListValue:
		return e.pbList(*(**structpb.ListValue)(ptr))
	case opValue:
		return e.pbValue(*(**structpb.Value)(ptr))
	case opMapBool:
		writeMap(e, *(*map[string]bool)(ptr), func(b bool) { e.buf = strconv.AppendBool(e.buf, b) })
	case opMapInt64:
		writeMap(e, *(*map[string]int64)(ptr), func(n int64) { e.buf = strconv.AppendInt(e.buf, n, 10) })
	case opMapString:
		writeMap(e, *(*map[string]string)(ptr), e.str)
	default:
		return errUnexpectedOp
	}
	return nil
}

var errUnexpectedOp = &DecodeError{Msg: "legacyjson: internal error: unexpected field operation"}

// writeMap writes a map with string keys, keys sorted, like mapField.
func writeMap[V any](e *encoder, mp map[string]V, val func(V)) {
	keys := make([]string, 0, len(mp))
	for k := range mp {
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
		val(mp[k])
	}
	e.buf = append(e.buf, '}')
}

// appendDouble writes a double field: as Ganeti's number for a (params)
// field (see fieldInfo.number), otherwise as Python's float repr.
func appendDouble(b []byte, f float64, number bool) []byte {
	if number {
		return appendNumberValue(b, f)
	}
	return appendPyFloat(b, f, 64)
}
