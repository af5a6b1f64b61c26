package gateway

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// The server codec sends a frozen answer's bytes, encoded once, and
// encodes the others as gRPC's codec does; both decode to the message.
func TestServerCodecFrozen(t *testing.T) {
	info := &rapiv2.ClusterInfo{Name: "cluster.example.com", Beparams: map[string]*rapiv2.BeParams{"default": {Maxmem: proto.Int64(128)}}}
	c := sharedCodec{encoding.GetCodecV2(protoenc.Name)}
	want, err := proto.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	legacyjson.Freeze([]*rapiv2.ClusterInfo{info})
	defer legacyjson.Thaw([]*rapiv2.ClusterInfo{info})
	for _, m := range []proto.Message{info, info, &rapiv2.ClusterInfo{Name: "other"}} {
		data, err := c.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got := data.Materialize()
		if m == info && !bytes.Equal(got, want) {
			t.Errorf("frozen: %x, want %x", got, want)
		}
		back := &rapiv2.ClusterInfo{}
		if err := proto.Unmarshal(got, back); err != nil || !proto.Equal(back, m) {
			t.Errorf("decoded %v (%v), want %v", back, err, m)
		}
	}
}
