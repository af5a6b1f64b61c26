package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// benchServer is a whole server (plain HTTP, as --insecure) on a loopback
// listener, with n instances, and the basic-auth header of its write user.
type benchServer struct {
	url, auth string
	conn      *grpc.ClientConn
	client    *http.Client
}

func startBenchServer(b *testing.B, instances int) *benchServer {
	return startBenchServerWith(b, instances, nil)
}

func startBenchServerWith(b *testing.B, instances int, configure func(*Config)) *benchServer {
	b.Helper()
	dir := b.TempDir()
	cf := filepath.Join(dir, "cluster.json")
	if err := os.WriteFile(cf, []byte(largeCluster(instances)), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := Config{DataDir: dir, ClusterFile: cf, Insecure: true,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	if configure != nil {
		configure(&cfg)
	}
	a, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = a.Serve(lis) }()
	b.Cleanup(func() { _ = a.Shutdown(context.Background()); a.Close() })
	pw, err := os.ReadFile(filepath.Join(dir, "rapi", "initial-admin-password"))
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth("admin", strings.TrimSpace(string(pw)))
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return &benchServer{url: "http://" + lis.Addr().String(), auth: req.Header.Get("Authorization"), conn: conn,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func (s *benchServer) do(b *testing.B, method, path, body string) []byte {
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", s.auth)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("%s %s: %d %s %v", method, path, resp.StatusCode, out, err)
	}
	return out
}

func (s *benchServer) ctx() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", s.auth)
}

// The whole request path, in process over loopback: the figures the
// backend-seam refactoring must keep (ns/op, allocs/op of client and
// server together).
//
//	go test ./server -run '^$' -bench 'Serve' -benchmem
func BenchmarkServeLegacyInfo(b *testing.B) {
	s := startBenchServer(b, 10)
	b.ReportAllocs()
	for b.Loop() {
		s.do(b, "GET", "/2/info", "")
	}
}

// BenchmarkServeLegacyInfoCodec is BenchmarkServeLegacyInfo through the
// general path (the gRPC codec on the in-process hop), for comparison.
func BenchmarkServeLegacyInfoCodec(b *testing.B) {
	s := startBenchServerWith(b, 10, func(c *Config) { c.InProcessCodec = true })
	b.ReportAllocs()
	for b.Loop() {
		s.do(b, "GET", "/2/info", "")
	}
}

// BenchmarkServeLegacyInfoParallel: GET /2/info from GOMAXPROCS*4 clients.
func BenchmarkServeLegacyInfoParallel(b *testing.B) {
	s := startBenchServer(b, 10)
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.do(b, "GET", "/2/info", "")
		}
	})
}

// BenchmarkServeBareInfo is the machine's limit for BenchmarkServeLegacyInfo:
// a bare net/http handler serving the same /2/info body to the same
// client (the acceptance target: the gateway's time per request at most
// twice this).
func BenchmarkServeBareInfo(b *testing.B) {
	s := startBareInfo(b)
	b.ReportAllocs()
	for b.Loop() {
		s.do(b, "GET", "/2/info", "")
	}
}

// BenchmarkServeBareInfoParallel is BenchmarkServeBareInfo from
// GOMAXPROCS*4 clients (for BenchmarkServeLegacyInfoParallel: the gateway
// at least half this rate).
func BenchmarkServeBareInfoParallel(b *testing.B) {
	s := startBareInfo(b)
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.do(b, "GET", "/2/info", "")
		}
	})
}

// startBareInfo serves the gateway's /2/info body from a bare handler.
func startBareInfo(b *testing.B) *benchServer {
	gw := startBenchServer(b, 10)
	body := gw.do(b, "GET", "/2/info", "")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(func() { _ = srv.Close() })
	return &benchServer{url: "http://" + lis.Addr().String(), auth: gw.auth, client: gw.client}
}

func BenchmarkServeGRPCGetInfo(b *testing.B) {
	s := startBenchServer(b, 10)
	c := rapiv2.NewClusterServiceClient(s.conn)
	ctx := s.ctx()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetInfo(ctx, &rapiv2.GetInfoRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeGRPCGetInfoParallel: GetInfo from GOMAXPROCS*4 clients on
// one connection (within 1.5x of BenchmarkServeLegacyInfoParallel).
func BenchmarkServeGRPCGetInfoParallel(b *testing.B) {
	s := startBenchServer(b, 10)
	c := rapiv2.NewClusterServiceClient(s.conn)
	ctx := s.ctx()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetInfo(ctx, &rapiv2.GetInfoRequest{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkServeLegacyInstancesBulk1000(b *testing.B) {
	s := startBenchServer(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		s.do(b, "GET", "/2/instances?bulk=1", "")
	}
}

// BenchmarkServeLegacyInstancesBulk10000: the bulk list of a cluster of
// 10,000 instances (about 10 MB of JSON), assembled from the fragments of
// the shared list and streamed.
func BenchmarkServeLegacyInstancesBulk10000(b *testing.B) {
	s := startBenchServer(b, 10000)
	b.ReportAllocs()
	for b.Loop() {
		s.do(b, "GET", "/2/instances?bulk=1", "")
	}
}

// BenchmarkServeLegacyInstancesBulk10000Parallel: the bulk list of 10,000
// instances to GOMAXPROCS*8 clients at once; peak-heap-MB is the largest
// heap in use seen (client and server of the one process; the target is
// a server RSS of at most 400 MB).
func BenchmarkServeLegacyInstancesBulk10000Parallel(b *testing.B) {
	s := startBenchServer(b, 10000)
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.do(b, "GET", "/2/instances?bulk=1", "")
		}
	})
	close(stop)
	<-done
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
}

// BenchmarkServeGRPCListInstances10000 is the typed bulk list of 10,000
// instances.
func BenchmarkServeGRPCListInstances10000(b *testing.B) {
	s := startBenchServer(b, 10000)
	c := rapiv2.NewInstanceServiceClient(s.conn)
	ctx := s.ctx()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ListInstances(ctx, &rapiv2.ListInstancesRequest{Bulk: true}, grpc.MaxCallRecvMsgSize(256<<20)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeLegacyJobRoundTrip: PUT a tag, then wait for the job to
// succeed with GET /2/jobs/{id}/wait, as Ganeti's client does.
func BenchmarkServeLegacyJobRoundTrip(b *testing.B) {
	s := startBenchServer(b, 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		out := s.do(b, "PUT", fmt.Sprintf("/2/instances/inst1.example.com/tags?tag=b%d", i), "")
		var id json.Number // Ganeti answers the job id as a number
		if err := json.Unmarshal(out, &id); err != nil {
			b.Fatal(err)
		}
		for {
			res := s.do(b, "GET", "/2/jobs/"+id.String()+"/wait", `{"fields": ["status"], "previous_job_info": null, "previous_log_serial": null}`)
			if strings.Contains(string(res), `"success"`) {
				break
			}
			if strings.Contains(string(res), `"error"`) {
				b.Fatalf("job %s: %s", id, res)
			}
		}
	}
}
