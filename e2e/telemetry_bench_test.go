package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// The telemetry benchmarks compare two servers in the same process: one
// with telemetry off (the default: nothing configured), one with it on
// (every span sampled and exported in batches to an in-memory exporter,
// the metrics recorded and read by a manual reader). Each iteration runs
// the workload once on each, in alternating order, so that the load of a
// shared machine weighs on both alike; they report the mean time of each
// (off-ns/op, on-ns/op) and the overhead in percent.

type pairedServers struct {
	off, on string
	reset   func() // drops the spans the exporter kept
}

func newPairedServers(b *testing.B) *pairedServers {
	b.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	mp := telemetry.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = tp.Shutdown(b.Context()) })
	return &pairedServers{
		off: inProcessWith(b, "testdata/golden-cluster.json", func(c *server.Config) {
			c.WriteRate = -1 // no write rate limit
		}),
		on: inProcessWith(b, "testdata/golden-cluster.json", func(c *server.Config) {
			c.Telemetry = &telemetry.Providers{TracerProvider: tp, MeterProvider: mp}
			c.WriteRate = -1
		}),
		reset: exp.Reset,
	}
}

// run times work on both servers b.N times and reports the means.
func (p *pairedServers) run(b *testing.B, work func(base string)) {
	var off, on time.Duration
	timed := func(base string) time.Duration {
		start := time.Now()
		work(base)
		return time.Since(start)
	}
	// Warm both up.
	work(p.off)
	work(p.on)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			off += timed(p.off)
			on += timed(p.on)
		} else {
			on += timed(p.on)
			off += timed(p.off)
		}
		if i%500 == 499 {
			p.reset() // the exporter keeps every span
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(off.Nanoseconds())/float64(b.N), "off-ns/op")
	b.ReportMetric(float64(on.Nanoseconds())/float64(b.N), "on-ns/op")
	b.ReportMetric(100*(float64(on)/float64(off)-1), "overhead-%")
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
}

func call(b *testing.B, client *http.Client, method, url string, body []byte) []byte {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, out)
	}
	return out
}

// BenchmarkTelemetryInfoHTTP is GET /2/info with telemetry off and on.
func BenchmarkTelemetryInfoHTTP(b *testing.B) {
	p := newPairedServers(b)
	client := benchClient()
	p.run(b, func(base string) { call(b, client, "GET", base+"/2/info", nil) })
}

// BenchmarkTelemetryJobRoundTrip is one job at a time over the legacy
// surface, with telemetry off and on: PUT /2/tags (a job adding a cluster
// tag, committed with fsync), then long polls on GET /2/jobs/{id}/wait
// until it has succeeded, as clients do.
func BenchmarkTelemetryJobRoundTrip(b *testing.B) {
	p := newPairedServers(b)
	client := benchClient()
	p.run(b, func(base string) {
		var id int64
		if err := json.Unmarshal(call(b, client, "PUT", base+"/2/tags?tag=bench", nil), &id); err != nil {
			b.Fatal(err)
		}
		prev := "null"
		for {
			body := fmt.Sprintf(`{"fields": ["status"], "previous_job_info": %s, "previous_log_serial": null}`, prev)
			var w struct {
				JobInfo []string `json:"job_info"`
			}
			if err := json.Unmarshal(call(b, client, "GET", fmt.Sprintf("%s/2/jobs/%d/wait", base, id), []byte(body)), &w); err != nil {
				b.Fatal(err)
			}
			switch {
			case len(w.JobInfo) != 1:
				b.Fatalf("job %d: %v", id, w.JobInfo)
			case w.JobInfo[0] == "success":
				return
			case w.JobInfo[0] == "error" || w.JobInfo[0] == "canceled":
				b.Fatalf("job %d: %s", id, w.JobInfo[0])
			}
			info, _ := json.Marshal(w.JobInfo)
			prev = string(info)
		}
	})
}
