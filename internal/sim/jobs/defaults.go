package jobs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// Opcodes as Ganeti stores them.
//
// Ganeti builds every opcode with all its parameters' defaults
// (BaseOpCode.__init__; OpCode.Validate(set_defaults=True) again when the
// logical unit starts), and its job queue (luxid) stores the opcode as the
// Haskell type parses it: disk sizes such as "1G" become the integer of MiB
// (IDiskParams' size field), and the instances of OP_INSTANCE_MULTI_ALLOC,
// which are kept as raw JSON, are full OP_INSTANCE_CREATE opcodes with their
// OP_ID and every parameter (null where there is no default). The job stores
// the opcode so filled (fillOpcode, at submission): the job record shows it,
// and executors see the defaults too. Logical units then write parameters
// back (instance and node uuids, the default iallocator, ...):
// ExecContext.SetParam.

// defaultsCache maps an opcode message's full name to a message of that
// type holding the defaults of its parameters (*defaults).
var defaultsCache sync.Map

type defaults struct {
	msg proto.Message // nil when the defaults could not be decoded
	err error
}

// defaultsOf returns a message of md's type whose fields are set to the
// defaults of the parameters that have one ((param) default_json), decoded
// as the legacy codec decodes a request. Parameters whose default is null
// are unset. Never modify the result.
func defaultsOf(msg proto.Message) (proto.Message, error) {
	md := msg.ProtoReflect().Descriptor()
	if v, ok := defaultsCache.Load(md.FullName()); ok {
		d := v.(*defaults)
		return d.msg, d.err
	}
	obj := legacyjson.Object{}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		dj := opexec.ParamSpec(fd).GetDefaultJson()
		if dj == "" {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(dj))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return storeDefaults(md, nil, fmt.Errorf("jobs: %s.%s: default %q: %w", md.Name(), fd.Name(), dj, err))
		}
		obj = append(obj, legacyjson.Member{Key: fd.JSONName(), Value: v})
	}
	d := msg.ProtoReflect().New().Interface()
	if err := legacyjson.FromValue(d, obj); err != nil {
		return storeDefaults(md, nil, fmt.Errorf("jobs: defaults of %s: %w", md.Name(), err))
	}
	return storeDefaults(md, d, nil)
}

func storeDefaults(md protoreflect.MessageDescriptor, msg proto.Message, err error) (proto.Message, error) {
	v, _ := defaultsCache.LoadOrStore(md.FullName(), &defaults{msg: msg, err: err})
	d := v.(*defaults)
	return d.msg, d.err
}

// fillDefaults sets every parameter of an opcode message that was not given
// to its default, when it has one (Ganeti's BaseOpCode.__init__). Lists and
// maps are never "not given" in a proto: an empty one stays as it is.
func fillDefaults(msg proto.Message) error {
	d, err := defaultsOf(msg)
	if err != nil {
		return err
	}
	m, dm := msg.ProtoReflect(), d.ProtoReflect()
	dm.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsList() || fd.IsMap() || m.Has(fd) {
			return true
		}
		if fd.Message() != nil {
			v = protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect())
		}
		m.Set(fd, v)
		return true
	})
	return nil
}

// fillOpcode turns a submitted opcode into the opcode Ganeti stores: the
// defaults, the disk sizes, the instances of a multi-allocation. It fails
// only on a defect of the proto's defaults.
func fillOpcode(msg proto.Message) error {
	if err := fillDefaults(msg); err != nil {
		return err
	}
	switch m := msg.(type) {
	case *rapiv2.OpInstanceCreate:
		for _, d := range m.GetDisks() {
			diskSizes(d)
		}
	case *rapiv2.OpInstanceRecreateDisks:
		diskSizesIn(m.GetDisks(), 0)
	case *rapiv2.OpInstanceSetParams:
		diskSizesIn(m.GetDisks(), 0)
	case *rapiv2.OpInstanceMultiAlloc:
		for i, v := range m.GetInstances() {
			if full, ok := nestedCreate(v); ok {
				m.Instances[i] = full
			}
		}
	}
	return nil
}

// diskSizes turns the "size" of a disk dictionary given as a string with a
// unit into the integer of MiB Ganeti stores (IDiskParams' size, parsed by
// parseUnitAssumeBinary). A size that does not parse stays as it is: the
// executor reports it.
func diskSizes(d *structpb.Struct) {
	v, ok := d.GetFields()["size"]
	if !ok {
		return
	}
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok {
		return
	}
	if n, ok := parseUnitBinary(s.StringValue); ok {
		d.Fields["size"] = structpb.NewNumberValue(float64(n))
	}
}

// diskSizesIn applies diskSizes to the disk dictionaries of a disk
// modification list ([[index, {..}], ...] or [[action, index, {..}], ...]).
func diskSizesIn(v *structpb.Value, depth int) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		if depth > 0 {
			diskSizes(k.StructValue)
		}
	case *structpb.Value_ListValue:
		if depth < 2 {
			for _, e := range k.ListValue.GetValues() {
				diskSizesIn(e, depth+1)
			}
		}
	}
}

// parseUnitBinary is Haskell's parseUnitAssumeBinary (Ganeti.Utils): a
// non-negative integer, optional spaces and a unit (m/MiB, g/GiB, t/TiB; M/MB, G/GB,
// T/TB taken as binary too; MiB without one), truncated to MiB.
func parseUnitBinary(s string) (int64, bool) {
	t := strings.TrimLeft(s, " \t\n\r\v\f")
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false // also a negative size: the executor reports it
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, false
	}
	unit := strings.TrimLeft(t[i:], " ")
	var scale int64
	switch up := strings.ToUpper(unit); {
	case unit == "", unit == "m", up == "MIB", unit == "M", up == "MB":
		scale = 1
	case unit == "g", up == "GIB", unit == "G", up == "GB":
		scale = 1024
	case unit == "t", up == "TIB", unit == "T", up == "TB":
		scale = 1024 * 1024
	default:
		return 0, false
	}
	return n * scale, true
}

// nestedCreate turns an instance of a multi-allocation into the full
// OP_INSTANCE_CREATE Ganeti keeps in the job: rlib2 builds each instance as
// an OpInstanceCreate (every parameter, its default or None) and the job
// holds its serialized form, "OP_ID" included. An instance the codec does
// not take is left as it is (the executor reports it).
func nestedCreate(v *structpb.Value) (*structpb.Value, bool) {
	if v.GetStructValue() == nil {
		return nil, false
	}
	if _, done := v.GetStructValue().GetFields()["OP_ID"]; done {
		return nil, false
	}
	c := &rapiv2.OpInstanceCreate{}
	if err := legacyjson.FromValue(c, opexec.JSONValue(v)); err != nil {
		return nil, false
	}
	if err := fillOpcode(c); err != nil {
		return nil, false
	}
	out, err := opexec.FullOpcodeValue(c)
	if err != nil {
		return nil, false
	}
	// The encoder writes private values as null (what clients see); the
	// stored opcode keeps what was given, which the job runs with.
	for k, orig := range v.GetStructValue().GetFields() {
		if legacyjson.IsPrivateKey(k) && out.GetStructValue() != nil {
			out.GetStructValue().Fields[k] = orig
		}
	}
	return out, true
}
