// Package legacyenum spells proto enum values as Ganeti does on the legacy
// surface: the (ganeti.rapi.v2.legacy) option of each value, a string such
// as "drbd" or a number such as -10. It is the one place that reads the
// option; tables of Ganeti's enumerations (hypervisors, disk templates,
// job statuses, ...) are derived from the proto through it.
package legacyenum

import (
	"reflect"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// table is the legacy spelling of one enum's values.
type table struct {
	byNum   map[protoreflect.EnumNumber]any // string or int64
	byStr   map[string]protoreflect.EnumNumber
	strings []string // the string spellings, in declaration order
}

var tables sync.Map // protoreflect.FullName -> *table

func tableOf(ed protoreflect.EnumDescriptor) *table {
	if t, ok := tables.Load(ed.FullName()); ok {
		return t.(*table)
	}
	t := &table{byNum: map[protoreflect.EnumNumber]any{}, byStr: map[string]protoreflect.EnumNumber{}}
	vals := ed.Values()
	for i := range vals.Len() {
		v := vals.Get(i)
		switch x := option(v).GetValue().(type) {
		case *rapiv2.LegacyValue_Str:
			if _, dup := t.byNum[v.Number()]; !dup {
				t.byNum[v.Number()] = x.Str
			}
			if _, dup := t.byStr[x.Str]; !dup {
				t.byStr[x.Str] = v.Number()
				t.strings = append(t.strings, x.Str)
			}
		case *rapiv2.LegacyValue_Num:
			if _, dup := t.byNum[v.Number()]; !dup {
				t.byNum[v.Number()] = x.Num
			}
		}
	}
	got, _ := tables.LoadOrStore(ed.FullName(), t)
	return got.(*table)
}

// option reads a value's legacy option; nil when it has none. Descriptors
// built at run time (dynamicpb, tests) may carry options of another type:
// those never panic.
func option(v protoreflect.EnumValueDescriptor) (lv *rapiv2.LegacyValue) {
	opts, ok := v.Options().(*descriptorpb.EnumValueOptions)
	if !ok || opts == nil {
		return nil
	}
	defer func() {
		if recover() != nil {
			lv = nil
		}
	}()
	if !proto.HasExtension(opts, rapiv2.E_Legacy) {
		return nil
	}
	lv, _ = proto.GetExtension(opts, rapiv2.E_Legacy).(*rapiv2.LegacyValue)
	return lv
}

// Value is the legacy JSON value of n in ed: a string, or an int64; false
// when the value has no legacy spelling (the zero value, an unknown number).
func Value(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) (any, bool) {
	v, ok := tableOf(ed).byNum[n]
	return v, ok
}

// String is the legacy spelling of n in ed, a number in decimal; false
// when it has none.
func String(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) (string, bool) {
	switch v := tableOf(ed).byNum[n].(type) {
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	}
	return "", false
}

// Of is String of an enum value; false for nil, including an unset
// optional enum field (a typed nil pointer).
func Of(e protoreflect.Enum) (string, bool) {
	if isNil(e) {
		return "", false
	}
	return String(e.Descriptor(), e.Number())
}

// Num is the legacy number of n in ed (opcode priorities); false when its
// spelling is not a number.
func Num(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) (int64, bool) {
	v, ok := tableOf(ed).byNum[n].(int64)
	return v, ok
}

// Parse is the value of ed spelled s (a string spelling).
func Parse(ed protoreflect.EnumDescriptor, s string) (protoreflect.EnumNumber, bool) {
	n, ok := tableOf(ed).byStr[s]
	return n, ok
}

// ParseNum is the value of ed whose legacy number is num.
func ParseNum(ed protoreflect.EnumDescriptor, num int64) (protoreflect.EnumNumber, bool) {
	for n, v := range tableOf(ed).byNum {
		if x, ok := v.(int64); ok && x == num {
			return n, true
		}
	}
	return 0, false
}

// Strings lists the string spellings of ed in declaration order (a new
// slice).
func Strings(ed protoreflect.EnumDescriptor) []string {
	return append([]string(nil), tableOf(ed).strings...)
}

// isNil reports a nil enum, also a typed nil pointer (an unset optional
// field's value), whose methods would panic.
func isNil(e protoreflect.Enum) bool {
	if e == nil {
		return true
	}
	v := reflect.ValueOf(e)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// StringOf is Of without the flag: "" for a value without a spelling.
func StringOf(e protoreflect.Enum) string {
	s, _ := Of(e)
	return s
}
