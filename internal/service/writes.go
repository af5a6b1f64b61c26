package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// params are opcode parameters in their legacy JSON form (keys are the
// opcode's legacy keys), e.g. the static parameters of a write: the ones
// its path, query arguments and handler set.
type params map[string]any

// opWrite is one opcode of a write: the parameters the client gave (the
// decoded body, possibly nil) and the static ones.
type opWrite struct {
	// op is the opcode message; nil or empty when the body gave nothing.
	op proto.Message
	// static are set over op; giving one of them in op is a 400.
	static params
	// depends, when op has none, become its dependencies (the "depends"
	// key of a body the handler otherwise ignores).
	depends []*rapiv2.JobDependency
}

// write is a request that submits one job, as Ganeti's generated rlib2
// handlers do.
type write struct {
	// handler is Ganeti's handler class without "R_2_" (the reason trail).
	handler string
	// reason is the ?reason= query argument.
	reason string
	ops    []opWrite
	// builtOps says the handler builds its opcodes itself and submits them
	// as they are, as rlib2's reinstall handler does: no
	// "gnt:library:rlib2:<handler>" entry in their reason trails.
	builtOps bool
}

// opOf returns op unless it is a nil pointer, in which case a new empty
// message of the same type.
func opOf[T proto.Message](op T, empty func() T) proto.Message {
	if op.ProtoReflect().IsValid() {
		return op
	}
	return empty()
}

// submit builds the opcodes of w (static parameters, reason trail,
// dependencies, required-parameter checks), refuses the job if an opcode
// has no executor, and queues it.
func (s *Services) submit(ctx context.Context, w write) (*rapiv2.JobSubmission, error) {
	eng := s.cfg.Backend
	now := time.Now().UnixNano()
	var trail []any
	if w.reason != "" {
		trail = append(trail, []any{"gnt:user", w.reason, now})
	}
	if !w.builtOps {
		trail = append(trail, []any{"gnt:library:rlib2:" + w.handler, "", now})
	}
	ops := make([]*rapiv2.OpCode, 0, len(w.ops))
	for _, ow := range w.ops {
		msg, err := buildOp(ow, trail)
		if err != nil {
			return nil, err
		}
		op, err := wrapOp(msg)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	for _, op := range ops {
		if id := backend.OpID(op); !eng.Supports(id) {
			return nil, unsupported(eng, id)
		}
	}
	id, err := eng.Submit(ctx, ops, backend.SubmitOptions{Idempotency: backend.IdempotencyFrom(ctx)})
	if err != nil {
		return nil, err
	}
	return &rapiv2.JobSubmission{JobId: id}, nil
}

// unsupported is the error for an opcode the backend does not run: its
// own explanation, else "not implemented yet".
func unsupported(q backend.JobQueue, opID string) error {
	if e, ok := q.(backend.UnsupportedExplainer); ok {
		return e.Unsupported(opID)
	}
	return errs.NotImplemented("%s is not implemented yet", opID)
}

// buildOp fills one opcode: Ganeti's FillOpcode with the static
// parameters and the reason trail.
func buildOp(ow opWrite, trail []any) (proto.Message, error) {
	msg := proto.Clone(ow.op)
	m := msg.ProtoReflect()
	fields := m.Descriptor().Fields()
	static := make(params, len(ow.static)+1)
	for k, v := range ow.static {
		static[k] = v
	}
	if fields.ByJSONName("reason") != nil {
		static["reason"] = trail
	}
	var overwritten []string
	for k := range static {
		if fd := fields.ByJSONName(k); fd != nil && has(m, fd) {
			overwritten = append(overwritten, k)
		}
	}
	if len(overwritten) > 0 {
		return nil, errs.StaticParams(overwritten)
	}
	tmp := m.New().Interface()
	if err := legacyjson.FromValue(tmp, map[string]any(static)); err != nil {
		return nil, codecError(err)
	}
	proto.Merge(msg, tmp)
	if len(ow.depends) > 0 {
		if fd := fields.ByJSONName("depends"); fd != nil && fd.IsList() && !has(m, fd) {
			list := m.Mutable(fd).List()
			for _, d := range ow.depends {
				list.Append(protoreflect.ValueOfMessage(proto.Clone(d).ProtoReflect()))
			}
		}
	}
	if err := checkRequired(m); err != nil {
		return nil, err
	}
	// Ganeti's type checks of every parameter, in one place for both
	// surfaces: a legacy body was checked while decoding, a typed (gRPC)
	// opcode is checked here.
	if err := legacyjson.CheckParams(msg); err != nil {
		return nil, codecError(err)
	}
	return msg, nil
}

// checkRequired is legacyjson.CheckRequired, except that a list or map
// parameter counts as given even when empty: the proto cannot tell an
// empty list from a missing one, and an empty list passes Ganeti's check
// (e.g. the disks of a diskless instance).
func checkRequired(m protoreflect.Message) error {
	info, _ := proto.GetExtension(m.Descriptor().Options(), rapiv2.E_Opcode).(*rapiv2.OpcodeInfo)
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		spec, _ := proto.GetExtension(fd.Options(), rapiv2.E_Param).(*rapiv2.ParamSpec)
		if !spec.GetRequired() || fd.IsList() || fd.IsMap() || m.Has(fd) {
			continue
		}
		return errs.BadRequest("Invalid body parameters: (\"Parameter '%s.%s' fails validation\", 'wrong_input')",
			info.GetId(), fd.JSONName())
	}
	return nil
}

func has(m protoreflect.Message, fd protoreflect.FieldDescriptor) bool {
	if !m.Has(fd) {
		return false
	}
	if fd.IsList() {
		return m.Get(fd).List().Len() > 0
	}
	return true
}

// codecError turns a codec error into a 400 with its Ganeti message.
func codecError(err error) error {
	var de *legacyjson.DecodeError
	if errors.As(err, &de) {
		return errs.BadRequest("%s", de.Msg)
	}
	if _, ok := errs.As(err); ok {
		return err
	}
	return errs.BadRequest("Invalid body parameters")
}

var opCodeFields = rapiv2.File_ganeti_rapi_v2_opcodes_proto.Messages().ByName("OpCode").Oneofs().ByName("op").Fields()

// wrapOp puts an opcode message into the OpCode switch.
func wrapOp(msg proto.Message) (*rapiv2.OpCode, error) {
	name := msg.ProtoReflect().Descriptor().FullName()
	for i := range opCodeFields.Len() {
		fd := opCodeFields.Get(i)
		if fd.Message() != nil && fd.Message().FullName() == name {
			op := &rapiv2.OpCode{}
			op.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(msg.ProtoReflect()))
			return op, nil
		}
	}
	return nil, fmt.Errorf("server: %s is not an opcode", name)
}

// optEnum is legacyEnum of an optional enum field (nil when unset).
func optEnum[E interface {
	comparable
	protoreflect.Enum
}](e *E) any {
	if e == nil {
		return nil
	}
	v, _ := legacyenum.Value((*e).Descriptor(), (*e).Number())
	return v
}

// one is a write of a single opcode.
func one(handler, reason string, op proto.Message, static params) write {
	return write{handler: handler, reason: reason, ops: []opWrite{{op: op, static: static}}}
}

// oneDeps is a write of a single opcode whose body only gives depends.
func oneDeps(handler, reason string, op proto.Message, static params, opts *rapiv2.JobOptions) write {
	return write{handler: handler, reason: reason, ops: []opWrite{{op: op, static: static, depends: opts.GetDepends()}}}
}
