package legacyjson

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Marshaler is the grpc-gateway runtime.Marshaler of the legacy RAPI
// surface.
//
// Marshal accepts proto messages, slices of them (what grpc-gateway passes
// for a repeated response_body field), repeated scalars, Go scalars, enums,
// google.protobuf.Struct / Value / ListValue, Object, []any,
// map[string]any, json.Number and nil, and writes the legacy JSON followed
// by "\n" (Ganeti ends every body with a newline):
//   - keys in field-number order; tuples as arrays; enums as their legacy
//     value; int64 as a JSON number; doubles as Python's repr (1.0, 1e+16);
//   - an unset field with presence (optional scalar, message, wrapper) is
//     null; an unset member of a real oneof is left out;
//   - private parameters are null (a private map or Struct keeps its keys,
//     each value null, like Ganeti's PrivateDict);
//   - map and Struct keys are sorted;
//   - Value numbers that are integral are written as integers;
//   - (unwrap), (empty), (inline), trailing tuple positions and opcode
//     switches are written as the package documentation says;
//   - a nil message pointer is null.
//
// Decoding (Unmarshal, NewDecoder(r).Decode) takes the whole body as one
// JSON value; an empty body is io.EOF (which grpc-gateway ignores). The
// target is a proto message (see FromValue; JSON null leaves it empty), a
// pointer to a message pointer (grpc-gateway's &protoReq.Op: a new message
// is allocated and filled, JSON null sets it to nil), or a pointer to a Go scalar, enum, slice or
// map (grpc-gateway's &protoReq.Role for a body field). Errors are
// *DecodeError with Ganeti's texts: "Unable to parse JSON data" for
// anything that is not a single JSON value, "Body contents: Type is 'list',
// but 'dict' is expected" for a body of the wrong type, and so on.
type Marshaler struct {
	// PythonStyle writes ", " and ": " separators and escapes every
	// non-ASCII character as \uXXXX: byte for byte what Ganeti's json
	// module writes. The zero value writes compact JSON, UTF-8 kept.
	PythonStyle bool
	// OmitUnset leaves out fields that have presence and are unset, instead
	// of writing null.
	OmitUnset bool
}

var _ runtime.Marshaler = Marshaler{}

// ContentType is always application/json, like Ganeti.
func (Marshaler) ContentType(any) string { return "application/json" }

const maxPooledBuffer = 4 << 20

// maxHintedBuffer bounds the buffers Marshal sizes from earlier outputs.
const maxHintedBuffer = 256 << 20

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 4096)
	return &b
}}

// bigOutput is the expected size from which Marshal encodes into a buffer
// of its own, sized from the earlier outputs of the same Go type, and
// returns that buffer (rather than growing a pooled one and copying).
const bigOutput = 64 << 10

// sizeHints are the sizes of the latest outputs per Go type of the
// marshaled value, per element for slices: reflect.Type -> *atomic.Int64.
var sizeHints sync.Map

// sizeHint returns the hint of v's type (nil when there is none yet) and
// the number of elements the hint is multiplied by.
func sizeHint(v any) (reflect.Type, *atomic.Int64, int64) {
	t := reflect.TypeOf(v)
	if t == nil {
		return nil, nil, 0
	}
	n := int64(1)
	if t.Kind() == reflect.Slice {
		n = max(int64(reflect.ValueOf(v).Len()), 1)
	}
	h, _ := sizeHints.Load(t)
	hint, _ := h.(*atomic.Int64)
	return t, hint, n
}

func recordSize(t reflect.Type, hint *atomic.Int64, n int64, size int) {
	if t == nil {
		return
	}
	if hint == nil {
		h, _ := sizeHints.LoadOrStore(t, new(atomic.Int64))
		hint = h.(*atomic.Int64)
	}
	if per := int64(size) / n; hint.Load() != per {
		hint.Store(per)
	}
}

// Marshal encodes v as legacy JSON followed by a newline.
func (m Marshaler) Marshal(v any) (out []byte, err error) {
	defer catchPanic(&err)
	if s, ok := v.(Streamed); ok {
		return nil, m.stream(s)
	}
	t, hint, n := sizeHint(v)
	if hint != nil {
		if est := hint.Load() * n; est >= bigOutput && est <= maxHintedBuffer {
			e := encoder{buf: make([]byte, 0, est+est/16+512), ascii: m.PythonStyle, omitUnset: m.OmitUnset}
			if err = e.value(v); err != nil {
				return nil, err
			}
			out = append(e.buf, '\n')
			recordSize(t, hint, n, len(out))
			return out, nil
		}
	}
	bp := bufPool.Get().(*[]byte)
	e := encoder{buf: (*bp)[:0], ascii: m.PythonStyle, omitUnset: m.OmitUnset}
	if err = e.value(v); err == nil {
		out = make([]byte, len(e.buf)+1)
		copy(out, e.buf)
		out[len(e.buf)] = '\n'
		recordSize(t, hint, n, len(out))
	}
	if cap(e.buf) <= maxPooledBuffer {
		*bp = e.buf[:0]
		bufPool.Put(bp)
	}
	return out, err
}

// Unmarshal decodes one JSON value from data into v (see Marshaler).
func (Marshaler) Unmarshal(data []byte, v any) error { return unmarshal(data, v) }

// NewDecoder returns a decoder that reads the whole of r as one body.
func (Marshaler) NewDecoder(r io.Reader) runtime.Decoder { return &bodyDecoder{r: r} }

// NewEncoder returns an encoder writing Marshal's output to w.
func (m Marshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

type bodyDecoder struct {
	r    io.Reader
	done bool
}

// Decode reads the body on the first call; later calls return io.EOF. A
// read error (for example http.MaxBytesError) is returned as is.
func (d *bodyDecoder) Decode(v any) error {
	if d.done || d.r == nil {
		return io.EOF
	}
	d.done = true
	data, err := io.ReadAll(d.r)
	if err != nil {
		return err
	}
	return unmarshal(data, v)
}

func unmarshal(data []byte, v any) (err error) {
	defer catchPanic(&err)
	if len(data) == 0 {
		return io.EOF
	}
	val, perr := parseJSON(data, maxBodyDepth)
	if perr != nil {
		return errUnparsable()
	}
	switch t := v.(type) {
	case nil:
		return errors.New("legacyjson: Decode into nil")
	case proto.Message:
		return FromValue(t, val)
	case *any:
		*t = val
		return nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("legacyjson: Decode needs a non-nil pointer, not %T", v)
	}
	if err := setGo(rv.Elem(), val, 0); err != nil {
		var ut errUnsupportedTarget
		if errors.As(err, &ut) {
			return err
		}
		return bodyError(err)
	}
	return nil
}

var (
	protoMessageType = reflect.TypeFor[proto.Message]()
	protoEnumType    = reflect.TypeFor[protoreflect.Enum]()
)

// errUnsupportedTarget is a programming error: a Decode target this codec
// does not know. It is not a DecodeError.
type errUnsupportedTarget struct{ t reflect.Type }

func (e errUnsupportedTarget) Error() string { return "legacyjson: cannot decode into " + e.t.String() }

// setGo stores a JSON-like value into a Go variable (a request body field).
func setGo(dst reflect.Value, val any, depth int) error {
	if depth > maxDepth {
		return errInvalid
	}
	t := dst.Type()
	if t.Kind() == reflect.Pointer {
		if val == nil {
			dst.Set(reflect.Zero(t))
			return nil
		}
		n := reflect.New(t.Elem())
		if t.Implements(protoMessageType) {
			if err := FromValue(n.Interface().(proto.Message), val); err != nil {
				return err
			}
		} else if err := setGo(n.Elem(), val, depth+1); err != nil {
			return err
		}
		dst.Set(n)
		return nil
	}
	if t.Implements(protoEnumType) && t.Kind() == reflect.Int32 {
		ed := reflect.Zero(t).Interface().(protoreflect.Enum).Descriptor()
		d := decoder{}
		num, err := d.enum(enumInfoFor(ed), val)
		if err != nil {
			return err
		}
		dst.SetInt(int64(num))
		return nil
	}
	d := decoder{}
	switch t.Kind() {
	case reflect.Interface:
		if val == nil {
			dst.Set(reflect.Zero(t))
			return nil
		}
		rv := reflect.ValueOf(val)
		if !rv.Type().AssignableTo(t) {
			return errUnsupportedTarget{t}
		}
		dst.Set(rv)
	case reflect.String:
		s, ok := asString(val)
		if !ok {
			return mismatch(val, "str")
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := asBool(val)
		if !ok {
			return mismatch(val, "bool")
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := d.toInt(val)
		if err != nil {
			return err
		}
		if dst.OverflowInt(i) {
			return errInvalid
		}
		dst.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := d.toUint(val)
		if err != nil {
			return err
		}
		if dst.OverflowUint(u) {
			return errInvalid
		}
		dst.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := toFloat(val)
		if err != nil {
			return err
		}
		dst.SetFloat(f)
	case reflect.Slice:
		if val == nil {
			dst.Set(reflect.Zero(t))
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			s, ok := asString(val)
			if !ok {
				return mismatch(val, "str")
			}
			b, err := decodeBase64(s)
			if err != nil {
				return err
			}
			dst.SetBytes(b)
			return nil
		}
		list, ok := asList(val)
		if !ok {
			return mismatch(val, "list")
		}
		s := reflect.MakeSlice(t, len(list), len(list))
		for i, x := range list {
			if err := setGo(s.Index(i), x, depth+1); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return errUnsupportedTarget{t}
		}
		if val == nil {
			dst.Set(reflect.Zero(t))
			return nil
		}
		obj, ok := asObject(val)
		if !ok {
			return mismatch(val, "dict")
		}
		mp := reflect.MakeMapWithSize(t, len(obj))
		for _, mem := range obj {
			ev := reflect.New(t.Elem()).Elem()
			if err := setGo(ev, mem.Value, depth+1); err != nil {
				return err
			}
			mp.SetMapIndex(reflect.ValueOf(mem.Key).Convert(t.Key()), ev)
		}
		dst.Set(mp)
	default:
		return errUnsupportedTarget{t}
	}
	return nil
}

// catchPanic turns a panic into an error: a last line of defence, the
// codec is meant never to panic.
func catchPanic(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("legacyjson: internal error: %v", r)
	}
}
