package gateway

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
)

// queryParser fills a request message from the query string with Ganeti's
// rules (resources.json query_arg_parsing):
//   - an argument with a blank value counts as absent;
//   - a bool or integer takes the first value, parsed like Python's int()
//     (non-zero is true), else 400 "Invalid value for the '<name>' parameter";
//   - a string takes the first value; an enum its legacy spelling, and an
//     unknown value with the sets_param option fails as Ganeti's type check
//     of that opcode parameter does;
//   - a repeated field takes every value, or with the csv option the first
//     value split on commas (for integers, a part that is not one fails
//     with the csv_int_error option's message and Python's int() error);
//   - unknown arguments are ignored.
//
// Arguments are matched by json_name (the legacy spelling, e.g. "dry-run")
// or field name, among the top-level fields of the request that are not
// bound to the path or the body.
type queryParser struct{}

// queryError is a query argument Ganeti's rules reject: "Invalid value
// for the '<name>' parameter", unless msg says otherwise.
type queryError struct{ name, msg string }

func (e *queryError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return fmt.Sprintf("Invalid value for the '%s' parameter", e.name)
}

// badValue is the error for value v of the argument key (field fd).
func badValue(fd protoreflect.FieldDescriptor, key, v string) *queryError {
	opts := fd.Options()
	if fd.IsList() {
		if prefix, _ := proto.GetExtension(opts, rapiv2.E_CsvIntError).(string); prefix != "" {
			return &queryError{name: key, msg: prefix + ": invalid literal for int() with base 10: " + pyRepr(v, 200)}
		}
	}
	if param, _ := proto.GetExtension(opts, rapiv2.E_SetsParam).(string); param != "" && fd.Kind() == protoreflect.EnumKind {
		return &queryError{name: key, msg: fmt.Sprintf("Invalid body parameters: (\"Parameter '%s' fails validation\", 'wrong_input')", param)}
	}
	return &queryError{name: key}
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
	pv, ok := scalarOf(fd, v)
	if !ok {
		return protoreflect.Value{}, badValue(fd, key, v)
	}
	return pv, nil
}

func scalarOf(fd protoreflect.FieldDescriptor, v string) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(v), true
	case protoreflect.BoolKind:
		n, ok := pyInt(v)
		if !ok {
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfBool(n != 0), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, ok := pyInt(v)
		if !ok {
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfInt64(n), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, ok := pyInt(v)
		if !ok || n != int64(int32(n)) {
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfInt32(int32(n)), true
	case protoreflect.EnumKind:
		if num, ok := enumByLegacySpelling(fd.Enum(), v); ok {
			return protoreflect.ValueOfEnum(num), true
		}
	}
	return protoreflect.Value{}, false
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

// enumByLegacySpelling is the value of ed spelled v: a legacy string, or
// a legacy number written as Python's int() reads it.
func enumByLegacySpelling(ed protoreflect.EnumDescriptor, v string) (protoreflect.EnumNumber, bool) {
	if n, ok := legacyenum.Parse(ed, v); ok {
		return n, true
	}
	if num, ok := pyInt(v); ok {
		return legacyenum.ParseNum(ed, num)
	}
	return 0, false
}

// pyRepr is Python's repr() of a str, cut to max characters as CPython's
// "%.200R" does in int()'s error.
func pyRepr(s string, max int) string {
	quote := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteRune(quote)
	for _, r := range s {
		switch {
		case r == '\\' || r == quote:
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == ' ' || (r >= 0x20 && r < 0x7f) || (r > 0xff && unicode.IsPrint(r)) || (r >= 0xa1 && r <= 0xff && r != 0xad):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteRune(quote)
	out := []rune(b.String())
	if len(out) > max {
		out = out[:max]
	}
	return string(out)
}
