package backend

import (
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// OpMember returns the opcode message set in op (nil when none is).
func OpMember(op *rapiv2.OpCode) proto.Message {
	if op == nil {
		return nil
	}
	m := op.ProtoReflect()
	od := m.Descriptor().Oneofs().ByName("op")
	if od == nil {
		return nil
	}
	fd := m.WhichOneof(od)
	if fd == nil {
		return nil
	}
	return m.Get(fd).Message().Interface()
}

// OpcodeInfo returns the (ganeti.rapi.v2.opcode) option of an opcode
// message.
func OpcodeInfo(msg proto.Message) *rapiv2.OpcodeInfo {
	info, _ := proto.GetExtension(msg.ProtoReflect().Descriptor().Options(), rapiv2.E_Opcode).(*rapiv2.OpcodeInfo)
	return info
}

// OpID returns the OP_ID of the opcode in op ("" when none is set).
func OpID(op *rapiv2.OpCode) string {
	msg := OpMember(op)
	if msg == nil {
		return ""
	}
	return OpcodeInfo(msg).GetId()
}

// JobNotFound is Ganeti's error for an unknown job id.
func JobNotFound(id int64) error {
	return errs.Prereq(errs.CodeNoEnt, "Job %d not found", id)
}
