package lu

import (
	"google.golang.org/protobuf/proto"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// opKey is the OP_ID of an opcode message type (the executors' keys).
func opKey(msg proto.Message) string { return opexec.OpID(msg) }
