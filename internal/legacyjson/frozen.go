package legacyjson

import (
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Frozen messages: a caller that shares messages between requests and
// never changes them again (the services' bulk lists of one cluster state)
// freezes them; an encoder with the default options (compact, unset
// fields as null) then encodes each element of a list that is a frozen
// message once and copies those bytes afterwards, so that a bulk list is
// assembled from fragments. Thaw drops them (and their bytes) once the
// caller stops sharing them.

// frozen maps a frozen message's pointer to its fragment; the entry keeps
// the message alive, so a pointer cannot be reused while it is there.
var (
	frozen      sync.Map // protoreflect.Message (the message) -> *fragment
	frozenCount atomic.Int64
)

type fragment struct {
	once sync.Once
	b    []byte
	// The protobuf encoding, for FrozenWire.
	wireOnce sync.Once
	wire     []byte
	wireErr  error
}

// FrozenWire returns the protobuf wire encoding of a frozen message, made
// once (gateway's gRPC server codec sends it); false when m is not frozen.
func FrozenWire(m proto.Message) ([]byte, bool, error) {
	if frozenCount.Load() == 0 {
		return nil, false, nil
	}
	v, ok := frozen.Load(m.ProtoReflect())
	if !ok {
		return nil, false, nil
	}
	f := v.(*fragment)
	f.wireOnce.Do(func() { f.wire, f.wireErr = proto.Marshal(m) })
	return f.wire, true, f.wireErr
}

// Freeze marks msgs as never changed again (see above).
func Freeze[T proto.Message](msgs []T) {
	for _, m := range msgs {
		if _, loaded := frozen.LoadOrStore(m.ProtoReflect(), &fragment{}); !loaded {
			frozenCount.Add(1)
		}
	}
}

// Thaw forgets msgs and their encodings.
func Thaw[T proto.Message](msgs []T) {
	for _, m := range msgs {
		if _, loaded := frozen.LoadAndDelete(m.ProtoReflect()); loaded {
			frozenCount.Add(-1)
		}
	}
}

// frozenMessage appends the encoding of m when m is frozen and the
// encoder has the default options; false: encode m as usual.
func (e *encoder) frozenMessage(m protoreflect.Message) (bool, error) {
	if e.ascii || e.omitUnset || e.opRecord || frozenCount.Load() == 0 {
		return false, nil
	}
	v, ok := frozen.Load(m)
	if !ok {
		return false, nil
	}
	f := v.(*fragment)
	var err error
	f.once.Do(func() {
		sub := encoder{depth: e.depth}
		if err = sub.message(m); err == nil {
			f.b = sub.buf
		}
	})
	if err != nil || f.b == nil {
		return false, err
	}
	e.buf = append(e.buf, f.b...)
	return true, nil
}

// Streamed is a value that Marshal does not return: Marshal encodes Value
// (as it would encode it) to W in pieces of about StreamChunk bytes, the
// elements of lists (and the frozen fragments) going out as they are
// encoded, and returns no bytes. An answer of any size then costs a chunk
// of memory, not a copy of the answer. An encoding error after the first
// piece leaves the output cut (the caller cannot answer an error any
// more); a write error ends the encoding.
type Streamed struct {
	Value any
	W     io.Writer
}

// StreamChunk is the size of the pieces of a Streamed value.
const StreamChunk = 32 << 10

// flush writes the buffer out when it is a chunk or more (all when final).
func (e *encoder) flush(final bool) error {
	if e.w == nil || e.werr != nil || (!final && len(e.buf) < StreamChunk) {
		return e.werr
	}
	if _, err := e.w.Write(e.buf); err != nil {
		e.werr = err
	}
	e.buf = e.buf[:0]
	return e.werr
}

func (m Marshaler) stream(s Streamed) error {
	bp := bufPool.Get().(*[]byte)
	e := encoder{buf: (*bp)[:0], ascii: m.PythonStyle, omitUnset: m.OmitUnset, w: s.W}
	err := e.value(s.Value)
	if err == nil {
		e.buf = append(e.buf, '\n')
		err = e.flush(true)
	}
	if cap(e.buf) <= maxPooledBuffer {
		*bp = e.buf[:0]
		bufPool.Put(bp)
	}
	return err
}
