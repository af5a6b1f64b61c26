package jobs

import (
	"context"
	"strconv"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// BenchmarkTracedSubmitToSuccess is BenchmarkSubmitToSuccessTagAdd on two
// engines in turn, one without telemetry and one tracing every job (spans
// exported in batches to an in-memory exporter, the submission a child of
// a request span) and recording the metrics. It reports the mean of each
// (off-ns/op, on-ns/op) and the overhead in percent.
func BenchmarkTracedSubmitToSuccess(b *testing.B) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	off := benchEngine(b, 10, Config{})
	on := benchEngine(b, 10, Config{TracerProvider: tp, MeterProvider: mp})
	tracer := tp.Tracer("bench")
	round := func(e *Engine, i int) time.Duration {
		ctx, span := tracer.Start(context.Background(), "request")
		defer span.End()
		op := tagsSet(kInstance, "inst"+strconv.Itoa(i%10+1)+".example.com", "bench")
		start := time.Now()
		id, err := e.Submit(ctx, []*rapiv2.OpCode{op}, SubmitOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if s := waitDone(b, e, id); s != StatusSuccess {
			b.Fatalf("job %d: %s", id, s)
		}
		return time.Since(start)
	}
	var toff, ton time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			toff += round(off, i)
			ton += round(on, i)
		} else {
			ton += round(on, i)
			toff += round(off, i)
		}
		if i%500 == 499 {
			exp.Reset()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(toff.Nanoseconds())/float64(b.N), "off-ns/op")
	b.ReportMetric(float64(ton.Nanoseconds())/float64(b.N), "on-ns/op")
	b.ReportMetric(100*(float64(ton)/float64(toff)-1), "overhead-%")
}
