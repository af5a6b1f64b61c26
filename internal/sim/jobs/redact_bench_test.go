package jobs

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// BenchmarkRedactOps measures what a snapshot pays per opcode for the
// redaction: an instance creation without secrets (walked, not copied),
// and one with a secret (copied).
func BenchmarkRedactOps(b *testing.B) {
	hv, _ := structpb.NewStruct(map[string]any{"kernel_path": "/boot/k", "root_path": "/dev/vda1"})
	disk, _ := structpb.NewStruct(map[string]any{"size": 1024})
	plain := &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceCreate{InstanceCreate: &rapiv2.OpInstanceCreate{
		InstanceName: proto.String("x.example.com"), Hvparams: hv, Disks: []*structpb.Struct{disk}, Nics: []*rapiv2.NicParams{{}},
	}}}
	secret := proto.Clone(plain).(*rapiv2.OpCode)
	secret.GetInstanceCreate().OsparamsSecret, _ = structpb.NewStruct(map[string]any{"pw": "x"})
	for _, c := range []struct {
		name string
		op   *rapiv2.OpCode
	}{{"plain", plain}, {"secret", secret}, {"tags", tagsSet(kCluster, "", "a")}} {
		ops := []*rapiv2.OpCode{c.op}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = redactOps(ops)
			}
		})
	}
}
