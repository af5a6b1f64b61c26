package gateway

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// queryParser fills a request message from the query string with Ganeti's
// rules (resources.json query_arg_parsing):
//   - an argument with a blank value counts as absent;
//   - a bool or integer takes the first value, parsed like Python's int()
//     (non-zero is true), else 400 "Invalid value for the '<name>' parameter";
//   - a string takes the first value; an enum its legacy spelling;
//   - a repeated field takes every value, or with the csv option the first
//     value split on commas;
//   - unknown arguments are ignored.
//
// Arguments are matched by json_name (the legacy spelling, e.g. "dry-run")
// or field name, among the top-level fields of the request that are not
// bound to the path or the body.
type queryParser struct{}

// queryError is a query argument Ganeti's rules reject.
type queryError struct{ name string }

func (e *queryError) Error() string {
	return fmt.Sprintf("Invalid value for the '%s' parameter", e.name)
}

func (queryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	m := msg.ProtoReflect()
	fields := m.Descriptor().Fields()
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(key))
		}
		if fd == nil || fd.Kind() == protoreflect.MessageKind || filter.HasCommonPrefix([]string{string(fd.Name())}) {
			continue
		}
		vals := nonBlank(values[key])
		if len(vals) == 0 {
			continue
		}
		if err := setQueryField(m, fd, key, vals); err != nil {
			return err
		}
	}
	return nil
}

func nonBlank(vals []string) []string {
	out := vals[:0:0]
	for _, v := range vals {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func setQueryField(m protoreflect.Message, fd protoreflect.FieldDescriptor, key string, vals []string) error {
	if fd.IsList() {
		if csv, _ := proto.GetExtension(fd.Options(), rapiv2.E_Csv).(bool); csv {
			vals = strings.Split(vals[0], ",")
		}
		list := m.Mutable(fd).List()
		for _, v := range vals {
			pv, err := scalarValue(fd, key, v)
			if err != nil {
				return err
			}
			list.Append(pv)
		}
		return nil
	}
	if fd.IsMap() {
		return nil
	}
	pv, err := scalarValue(fd, key, vals[0])
	if err != nil {
		return err
	}
	m.Set(fd, pv)
	return nil
}

func scalarValue(fd protoreflect.FieldDescriptor, key, v string) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(v), nil
	case protoreflect.BoolKind:
		n, ok := pyInt(v)
		if !ok {
			return protoreflect.Value{}, &queryError{key}
		}
		return protoreflect.ValueOfBool(n != 0), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, ok := pyInt(v)
		if !ok {
			return protoreflect.Value{}, &queryError{key}
		}
		return protoreflect.ValueOfInt64(n), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, ok := pyInt(v)
		if !ok || n != int64(int32(n)) {
			return protoreflect.Value{}, &queryError{key}
		}
		return protoreflect.ValueOfInt32(int32(n)), nil
	case protoreflect.EnumKind:
		if num, ok := enumByLegacySpelling(fd.Enum(), v); ok {
			return protoreflect.ValueOfEnum(num), nil
		}
	}
	return protoreflect.Value{}, &queryError{key}
}

// pyInt parses like Python's int() of a str: surrounding whitespace, an
// optional sign, decimal digits with single underscores between them.
func pyInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "_") || strings.HasSuffix(s, "_") || strings.Contains(s, "__") {
		return 0, false
	}
	sign := ""
	if s[0] == '+' || s[0] == '-' {
		sign, s = s[:1], s[1:]
		if strings.HasPrefix(s, "_") {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(sign+strings.ReplaceAll(s, "_", ""), 10, 64)
	return n, err == nil
}

func enumByLegacySpelling(ed protoreflect.EnumDescriptor, v string) (protoreflect.EnumNumber, bool) {
	vals := ed.Values()
	for i := 0; i < vals.Len(); i++ {
		ev := vals.Get(i)
		if lv, ok := proto.GetExtension(ev.Options(), rapiv2.E_Legacy).(*rapiv2.LegacyValue); ok && lv != nil {
			switch x := lv.GetValue().(type) {
			case *rapiv2.LegacyValue_Str:
				if x.Str == v {
					return ev.Number(), true
				}
			case *rapiv2.LegacyValue_Num:
				if n, ok := pyInt(v); ok && n == x.Num {
					return ev.Number(), true
				}
			}
		}
	}
	return 0, false
}
