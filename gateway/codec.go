package gateway

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// ServerCodec is the gRPC server's codec: gRPC's proto codec, except that
// an answer the services share while the cluster state is the same
// (legacyjson.Freeze) is encoded once and its bytes sent to every caller.
func ServerCodec() grpc.ServerOption {
	return grpc.ForceServerCodecV2(sharedCodec{encoding.GetCodecV2(protoenc.Name)})
}

type sharedCodec struct{ encoding.CodecV2 }

func (c sharedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(proto.Message); ok {
		if b, ok, err := legacyjson.FrozenWire(m); ok {
			if err != nil {
				return nil, err
			}
			return mem.BufferSlice{mem.SliceBuffer(b)}, nil
		}
	}
	return c.CodecV2.Marshal(v)
}
