package legacyjson

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// An opcode is written as Ganeti's job records show it: parameters never
// given and without a default are left out, "depends" and "comment" are
// null, lists and maps with a default or that are required are written
// even when empty; outside an opcode switch the same message keeps its
// nulls.
func TestOpcodeRecord(t *testing.T) {
	shutdown := &rapiv2.OpInstanceShutdown{InstanceName: proto.String("inst1"), Timeout: proto.Int64(120)}
	create := &rapiv2.OpInstanceCreate{
		InstanceName: proto.String("inst2"), Nics: []*rapiv2.NicParams{{}},
		Hvparams: &structpb.Struct{}, Comment: proto.String("c"),
	}
	runEncodeCases(t, []encodeCase{
		{"shutdown", &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceShutdown{InstanceShutdown: shutdown}},
			`{"OP_ID":"OP_INSTANCE_SHUTDOWN","instance_name":"inst1","timeout":120,"depends":null,"comment":null,"reason":[]}`},
		// disks and nics are required (kept empty), tags has a default
		// (kept), source_handshake has none (left out); a given comment is
		// written; a NIC carries only what it was given.
		{"create", &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceCreate{InstanceCreate: create}},
			`{"OP_ID":"OP_INSTANCE_CREATE","instance_name":"inst2","disks":[],"hvparams":{},"nics":[{}],"tags":[],` +
				`"depends":null,"comment":"c","reason":[]}`},
		// The bare message is not a job record.
		{"bare", &rapiv2.OpInstanceShutdown{InstanceName: proto.String("inst1")},
			`{"instance_name":"inst1","instance_uuid":null,"force":null,"ignore_offline_nodes":null,"timeout":null,` +
				`"no_remember":null,"admin_state_source":null,"dry_run":null,"debug_level":null,"priority":null,` +
				`"depends":null,"comment":null,"reason":[]}`},
	})
}
