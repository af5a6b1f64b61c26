package legacyjson

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// DecodeError is a request body or value that cannot be decoded. Msg is the
// message Ganeti answers with (HTTP 400), before HTML escaping; it never
// contains Go internals.
type DecodeError struct {
	Msg string
}

func (e *DecodeError) Error() string { return e.Msg }

// The Ganeti 3.0.2 message texts (see errors.md, section 3).

func errUnparsable() error { return &DecodeError{Msg: "Unable to parse JSON data"} }

func errBodyType(got, want string) error {
	return &DecodeError{Msg: fmt.Sprintf("Body contents: Type is '%s', but '%s' is expected", got, want)}
}

func errParamType(key, got, want string) error {
	return &DecodeError{Msg: fmt.Sprintf("'%s' parameter: Type is '%s', but '%s' is expected", key, got, want)}
}

func errParamValue(key string) error {
	return &DecodeError{Msg: fmt.Sprintf("Invalid value for the '%s' parameter", key)}
}

func errRequiredMissing(key string) error {
	return &DecodeError{Msg: fmt.Sprintf("Required parameter '%s' is missing", key)}
}

func errUnsupportedParam(class, key string) error {
	return &DecodeError{Msg: fmt.Sprintf("Invalid body parameters: Object %s doesn't support the parameter '%s'", class, key)}
}

func errStrictObject(name, key string) error {
	return &DecodeError{Msg: fmt.Sprintf("Invalid body parameters: %s doesn't support the parameter '%s'", name, key)}
}

func errMissingOpID() error { return &DecodeError{Msg: "Invalid body parameters: missing OP_ID"} }

func errUnknownOpcode(id string) error {
	return &DecodeError{Msg: fmt.Sprintf("Invalid body parameters: unknown opcode '%s'", id)}
}

func errFailsValidation(opID, key string) error {
	// str() of OpPrereqError(msg, ECODE_INVAL): the repr of its args tuple.
	return &DecodeError{Msg: fmt.Sprintf("Invalid body parameters: (\"Parameter '%s.%s' fails validation\", 'wrong_input')", opID, key)}
}

// typeError is an internal JSON type mismatch; callers turn it into the
// DecodeError that fits the context.
type typeError struct{ got, want string }

func (e *typeError) Error() string { return "type is " + e.got + ", expected " + e.want }

// valueError is an internal "right type, unacceptable value".
type valueError struct{}

func (valueError) Error() string { return "invalid value" }

var errInvalid error = valueError{}

func mismatch(v any, want string) error { return &typeError{got: pyType(v), want: want} }

// pyType is the Python type name of a JSON-like Go value, as Ganeti's
// messages print it.
func pyType(v any) string {
	switch t := v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case string:
		return "str"
	case json.Number:
		if isFloatLiteral(string(t)) {
			return "float"
		}
		return "int"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "int"
	case float32, float64:
		return "float"
	case Object, map[string]any:
		return "dict"
	case []any:
		return "list"
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return "NoneType"
		}
		return pyType(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map:
		return "dict"
	case reflect.String:
		return "str"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "float"
	}
	return "object"
}

// isFloatLiteral reports whether a JSON number literal is a Python float
// (has a fraction or exponent, or is NaN/Infinity).
func isFloatLiteral(s string) bool {
	return strings.ContainsAny(s, ".eEIN")
}
