package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// bigClusterFile writes a cluster file with n running instances spread over
// 10 nodes (the demo's cluster settings), for the bulk-list benchmark.
func bigClusterFile(tb testing.TB, n int) string {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(tb), "deploy", "demo-cluster.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		tb.Fatal(err)
	}
	const nodes = 10
	var nodeList, instList []any
	for i := 0; i < nodes; i++ {
		nodeList = append(nodeList, map[string]any{
			"name": fmt.Sprintf("node%d.example.com", i+1), "group": "default",
			"pip": fmt.Sprintf("192.0.2.%d", i+10), "sip": fmt.Sprintf("198.51.100.%d", i+10),
			"mtotal": 1 << 20, "mnode": 1024, "dtotal": 1 << 26, "ctotal": 64, "cnos": 1, "cnodes": 2, "csockets": 2,
		})
	}
	for i := 0; i < n; i++ {
		instList = append(instList, map[string]any{
			"name": fmt.Sprintf("inst%04d.example.com", i), "os": "noop",
			"pnode": fmt.Sprintf("node%d.example.com", i%nodes+1), "disk_template": "plain",
			"disks":       []any{map[string]any{"size": 10240}, map[string]any{"size": 2048, "name": "swap"}},
			"nics":        []any{map[string]any{}},
			"beparams":    map[string]any{"maxmem": 512, "minmem": 512, "vcpus": 1},
			"admin_state": "up", "tags": []any{"bench"},
		})
	}
	f["nodes"], f["instances"], f["networks"] = nodeList, instList, []any{}
	out, err := json.Marshal(f)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "big-cluster.json")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func benchGET(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n == 0 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
		b.SetBytes(n)
	}
}

// BenchmarkBulkInstances1000 is GET /2/instances?bulk=1 on 1,000 instances
// through the whole HTTP stack (loopback TCP, legacy checks,
// grpc-gateway, in-process gRPC, query, conversion, legacy codec).
func BenchmarkBulkInstances1000(b *testing.B) {
	base := inProcess(b, bigClusterFile(b, 1000))
	benchGET(b, base+"/2/instances?bulk=1")
}

// BenchmarkInfoHTTP is GET /2/info over the legacy JSON surface.
func BenchmarkInfoHTTP(b *testing.B) {
	base := inProcess(b, "testdata/golden-cluster.json")
	benchGET(b, base+"/2/info")
}

// BenchmarkInfoGRPC is ClusterService.GetInfo over gRPC (h2c, loopback).
func BenchmarkInfoGRPC(b *testing.B) {
	base := inProcess(b, "testdata/golden-cluster.json")
	client := rapiv2.NewClusterServiceClient(dialGRPC(b, base))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := client.GetInfo(ctx, &rapiv2.GetInfoRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBigClusterFile makes sure the benchmark's cluster loads and lists.
func TestBigClusterFile(t *testing.T) {
	base := inProcess(t, bigClusterFile(t, 50))
	status, _, body := do(t, "GET", base+"/2/instances?bulk=1", "", "")
	var insts []map[string]any
	if status != 200 || json.Unmarshal(body, &insts) != nil || len(insts) != 50 {
		t.Fatalf("status %d, %d instances: %.300s", status, len(insts), body)
	}
}
