package legacyjson

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson/testdata/testpb"
)

// benchInstances builds n bulk-instance messages (35 fields each) shaped
// like the items of GET /2/instances?bulk=1.
func benchInstances(n int) []*testpb.BenchInstance {
	be, _ := structpb.NewStruct(map[string]any{"always_failover": false, "auto_balance": true, "maxmem": 1024, "memory": 1024, "minmem": 1024, "spindle_use": 1, "vcpus": 1})
	hv, _ := structpb.NewStruct(map[string]any{
		"acpi": true, "boot_order": "disk", "cdrom_image_path": "", "cpu_cores": 0, "cpu_mask": "all", "disk_cache": "default",
		"kernel_args": "ro", "kernel_path": "/boot/vmlinuz-3-kvmU", "kvm_flag": "", "migration_bandwidth": 32, "migration_downtime": 30,
		"nic_type": "paravirtual", "root_path": "/dev/vda1", "security_model": "none", "serial_console": true, "usb_mouse": "", "vnc_bind_address": "0.0.0.0",
	})
	osp, _ := structpb.NewStruct(map[string]any{"dhcp": "yes", "filesystem": "ext4"})
	nicp, _ := structpb.NewStruct(map[string]any{"link": "br0", "mode": "bridged"})
	out := make([]*testpb.BenchInstance, n)
	for i := range out {
		name := fmt.Sprintf("inst%d.example.com", i)
		m := &testpb.BenchInstance{
			Name: name, Os: "debootstrap+default", Pnode: "node1.example.com", Snodes: []string{"node2.example.com"},
			AdminState: i%3 != 0, AdminStateSource: "admin", DiskTemplate: testpb.DiskTemplate_DISK_TEMPLATE_DRBD,
			DiskUsage: proto.Int64(10368), DiskSizes: []int64{10240}, DiskSpindles: []*structpb.Value{structpb.NewNullValue()},
			DiskNames: []string{"disk0"}, DiskUuids: []string{"6b8c4a37-2d0f-4d6c-9b1e-6a5d2c1e0f3a"},
			NicIps: []*structpb.Value{structpb.NewStringValue("192.0.2.10")}, NicMacs: []string{"aa:00:00:12:34:56"},
			NicModes: []string{"bridged"}, NicLinks: []string{"br0"}, NicBridges: []string{"br0"},
			NicNetworks: []*structpb.Value{structpb.NewNullValue()}, NetworkPort: proto.Int64(11000 + int64(i)),
			OperState: i%3 != 0, Status: "running", Tags: []string{"prod", "web"},
			Uuid: "b471a9ea-c26f-47e3-93c3-52c9e1b7f418", Ctime: 1795376092.358, Mtime: 1795376099.5, SerialNo: 7,
			Beparams: be, Hvparams: hv, Osparams: osp, CustomBeparams: &structpb.Struct{}, CustomHvparams: &structpb.Struct{},
			CustomNicparams: []*structpb.Struct{nicp}, Priority: testpb.Priority_PRIORITY_NORMAL,
		}
		if i%2 == 1 {
			m.OperRam = proto.Int64(1024)
			m.OperVcpus = proto.Int64(1)
		}
		out[i] = m
	}
	return out
}

// BenchmarkMarshal1000 marshals the bulk instance list: 1,000 messages of
// 35 fields, as grpc-gateway passes a repeated response_body field.
func BenchmarkMarshal1000(b *testing.B) {
	msgs := benchInstances(1000)
	m := Marshaler{}
	out, err := m.Marshal(msgs)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Marshal(msgs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeOpcode(b *testing.B) {
	body := []byte(`{"new_name": "inst2.example.com", "name_check": false, "depends": [[-1, ["success"]]],
		"priority": -10, "tags": ["a", "b"], "reason": [["gnt:user", "", 1795376099172802304]], "osparams": {"a": "b"}}`)
	m := Marshaler{}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var op testpb.OpTestRename
		if err := m.Unmarshal(body, &op); err != nil {
			b.Fatal(err)
		}
	}
}
