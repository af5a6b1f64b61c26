package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// benchCluster declares nodes nodes and instances instances (a mix of
// running and stopped, plain, drbd and diskless) as a cluster file.
func benchCluster(nodes, instances int) string {
	type obj = map[string]any
	var ns, is []obj
	for i := 0; i < nodes; i++ {
		ns = append(ns, obj{"name": fmt.Sprintf("node%d.example.com", i+1), "pip": fmt.Sprintf("10.0.%d.%d", i/250, i%250+1),
			"mtotal": 1 << 20, "dtotal": 1 << 30})
	}
	for i := 0; i < instances; i++ {
		inst := obj{"name": fmt.Sprintf("inst%d.example.com", i+1), "os": "noop",
			"pnode": fmt.Sprintf("node%d.example.com", i%nodes+1), "tags": []string{"bench", fmt.Sprintf("t%d", i%7)},
			"beparams": obj{"maxmem": 512 + 128*(i%8), "minmem": 256, "vcpus": 1 + i%4}}
		switch i % 3 {
		case 0:
			inst["disk_template"], inst["disks"] = "plain", []obj{{"size": 10240}, {"size": 2048, "name": "swap"}}
		case 1:
			inst["disk_template"], inst["disks"] = "drbd", []obj{{"size": 20480}}
			inst["snode"] = fmt.Sprintf("node%d.example.com", (i+1)%nodes+1)
		default:
			inst["disk_template"] = "diskless"
		}
		if i%5 == 0 {
			inst["admin_state"] = "down"
		}
		is = append(is, inst)
	}
	b, _ := json.Marshal(obj{
		"cluster": obj{"name": "bench.example.com", "master_node": "node1.example.com",
			"enabled_disk_templates": []string{"plain", "drbd", "diskless"}},
		"nodes": ns, "instances": is,
	})
	return string(b)
}

// BenchmarkQueryInstancesBulk is GET /2/instances?bulk=1 on 1,000
// instances: the I_FIELDS query the service layer runs.
func BenchmarkQueryInstancesBulk(b *testing.B) {
	s := stateFromJSON(b, benchCluster(40, 1000))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := s.Query(ResInstance, rlibFields(ResInstance), nil)
		if err != nil || len(r.Data) != 1000 {
			b.Fatal(err, len(r.Data))
		}
	}
}

// BenchmarkQuerySharedInstancesBulk is BenchmarkQueryInstancesBulk as the
// read path runs it: without copies (QueryShared).
func BenchmarkQuerySharedInstancesBulk(b *testing.B) {
	s := stateFromJSON(b, benchCluster(40, 1000))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := s.QueryShared(ResInstance, rlibFields(ResInstance), nil)
		if err != nil || len(r.Data) != 1000 {
			b.Fatal(err, len(r.Data))
		}
	}
}

// BenchmarkQueryInstancesFiltered adds a filter evaluated on every item.
func BenchmarkQueryInstancesFiltered(b *testing.B) {
	s := stateFromJSON(b, benchCluster(40, 1000))
	filter := []any{"&", []any{"=", "status", "running"}, []any{"=[]", "tags", "t3"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Query(ResInstance, []string{"name", "pnode", "oper_ram"}, filter); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInfo is GET /2/info.
func BenchmarkInfo(b *testing.B) {
	s := stateFromJSON(b, benchCluster(40, 1000))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = s.Info()
	}
}

// BenchmarkUpdateOneInstance is a commit changing one of 1,000 instances.
func BenchmarkUpdateOneInstance(b *testing.B) {
	m := modelFromJSON(b, benchCluster(40, 1000))
	uuid := m.State().instanceByName["inst1.example.com"].UUID
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := m.Update(context.Background(), func(_ store.Tx, cfg *Config) error {
			cfg.EditInstance(uuid).SerialNo++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
