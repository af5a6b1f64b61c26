package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// env is a fake environment.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestNewFromEnvironment(t *testing.T) {
	// The OTLP exporters read the process environment; keep them away
	// from any real collector (nothing is sent before spans end anyway).
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	ctx := context.Background()
	for _, c := range []struct {
		name            string
		env             func(string) string
		prometheus      bool
		traces, metrics bool
		scrape          bool
	}{
		{name: "nothing configured", env: env()},
		{name: "none", env: env("OTEL_TRACES_EXPORTER", "none", "OTEL_METRICS_EXPORTER", "none")},
		{name: "console traces", env: env("OTEL_TRACES_EXPORTER", "console"), traces: true},
		{name: "otlp", env: env("OTEL_TRACES_EXPORTER", "otlp", "OTEL_METRICS_EXPORTER", "otlp"), traces: true, metrics: true},
		{name: "an OTLP endpoint alone", env: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"), traces: true, metrics: true},
		{name: "a traces endpoint", env: env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/v1/traces"), traces: true},
		{name: "prometheus exporter", env: env("OTEL_METRICS_EXPORTER", "prometheus"), metrics: true, scrape: true},
		{name: "prometheus flag", env: env(), prometheus: true, metrics: true, scrape: true},
		{name: "SDK disabled", env: env("OTEL_SDK_DISABLED", "true", "OTEL_TRACES_EXPORTER", "console", "OTEL_METRICS_EXPORTER", "otlp")},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := New(ctx, Options{Getenv: c.env, Prometheus: c.prometheus})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Shutdown(ctx)
			if got := p.TracerProvider != nil; got != c.traces {
				t.Errorf("tracing = %v, want %v", got, c.traces)
			}
			if got := p.MeterProvider != nil; got != c.metrics {
				t.Errorf("metrics = %v, want %v", got, c.metrics)
			}
			if got := p.Metrics != nil; got != c.scrape {
				t.Errorf("scrape handler = %v, want %v", got, c.scrape)
			}
			if p.Enabled() != (c.traces || c.metrics) {
				t.Errorf("Enabled = %v", p.Enabled())
			}
			if !c.traces {
				if _, ok := p.Tracer().(*sdktrace.TracerProvider); ok {
					t.Error("Tracer() is an SDK provider with tracing off")
				}
			}
		})
	}
	for _, bad := range []func(string) string{
		env("OTEL_TRACES_EXPORTER", "zipkin"),
		env("OTEL_METRICS_EXPORTER", "bogus"),
	} {
		if p, err := New(ctx, Options{Getenv: bad}); err == nil {
			p.Shutdown(ctx)
			t.Errorf("accepted a bad configuration")
		}
	}
}

// TestOTLPProtocols exports a span and a metric over both OTLP
// transports to a receiver on the loopback interface (the exporters read
// the process environment).
func TestOTLPProtocols(t *testing.T) {
	ctx := context.Background()
	rcv := &otlpReceiver{}
	hsrv := httptest.NewServer(rcv)
	defer hsrv.Close()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gsrv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gsrv, rcv)
	colmetricpb.RegisterMetricsServiceServer(gsrv, metricsService{otlpReceiver: rcv})
	go gsrv.Serve(lis)
	defer gsrv.Stop()
	for _, c := range []struct{ proto, endpoint string }{
		{"grpc", "http://" + lis.Addr().String()},
		{"http/protobuf", hsrv.URL},
	} {
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", c.proto)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", c.endpoint)
		p, err := New(ctx, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.proto, err)
		}
		_, span := p.Tracer().Tracer("test").Start(ctx, "span over "+c.proto)
		span.End()
		counter, _ := p.Meter().Meter("test").Int64Counter("counter." + strings.ReplaceAll(c.proto, "/", "."))
		counter.Add(ctx, 1)
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("%s: shutdown: %v", c.proto, err)
		}
	}
	spans, metrics := rcv.got()
	// Each provider also exports the runtime metrics and the build info.
	counters := slices.DeleteFunc(slices.Clone(metrics), func(n string) bool { return !strings.HasPrefix(n, "counter.") })
	if !slices.Equal(spans, []string{"span over grpc", "span over http/protobuf"}) ||
		!slices.Equal(counters, []string{"counter.grpc", "counter.http.protobuf"}) ||
		!slices.Contains(metrics, "go.goroutine.count") || !slices.Contains(metrics, "ganeti_gateway.build_info") {
		t.Errorf("received spans %v, metrics %v", spans, metrics)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
	if p, err := New(ctx, Options{}); err == nil {
		p.Shutdown(ctx)
		t.Error("accepted OTEL_EXPORTER_OTLP_PROTOCOL=thrift")
	}
}

// otlpReceiver is an OTLP receiver (gRPC services and HTTP handler) that
// keeps the names of the spans and metrics it gets.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu             sync.Mutex
	spans, metrics []string
}

func (r *otlpReceiver) got() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans), slices.Clone(r.metrics)
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, s.GetName())
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// metricsService is the receiver's metrics service.
type metricsService struct {
	colmetricpb.UnimplementedMetricsServiceServer
	*otlpReceiver
}

func (m metricsService) Export(_ context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	m.exportMetrics(req)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

func (r *otlpReceiver) exportMetrics(req *colmetricpb.ExportMetricsServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				r.metrics = append(r.metrics, m.GetName())
			}
		}
	}
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var out proto.Message
	switch req.URL.Path {
	case "/v1/traces":
		var in coltracepb.ExportTraceServiceRequest
		if err = proto.Unmarshal(body, &in); err == nil {
			_, err = r.Export(req.Context(), &in)
		}
		out = &coltracepb.ExportTraceServiceResponse{}
	case "/v1/metrics":
		var in colmetricpb.ExportMetricsServiceRequest
		if err = proto.Unmarshal(body, &in); err == nil {
			r.exportMetrics(&in)
		}
		out = &colmetricpb.ExportMetricsServiceResponse{}
	default:
		http.NotFound(w, req)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	b, _ := proto.Marshal(out)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

// TestPrometheusScrape records a counter and scrapes it.
func TestPrometheusScrape(t *testing.T) {
	ctx := context.Background()
	p, err := New(ctx, Options{Getenv: env(), Prometheus: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	c, err := p.Meter().Meter("test").Int64Counter("ganeti.test.things")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(ctx, 3)
	srv := httptest.NewServer(AdminHandler(AdminConfig{Metrics: p.Metrics}))
	defer srv.Close()
	body := get(t, srv.URL+"/metrics", 200)
	if !strings.Contains(body, "ganeti_test_things_total") || !strings.Contains(body, `service_name="ganeti-gateway"`) {
		t.Errorf("scrape:\n%s", body)
	}
}

func TestAdminHandler(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(AdminHandler(AdminConfig{Health: func(context.Context) error {
		if !healthy {
			return io.ErrUnexpectedEOF
		}
		return nil
	}}))
	defer srv.Close()
	if body := get(t, srv.URL+"/healthz", 200); body != "ok\n" {
		t.Errorf("healthz %q", body)
	}
	healthy = false
	get(t, srv.URL+"/healthz", 503)
	if body := get(t, srv.URL+"/debug/pprof/", 200); !strings.Contains(body, "goroutine") {
		t.Errorf("pprof index: %.200s", body)
	}
	get(t, srv.URL+"/metrics", 404) // not enabled
}

func get(t *testing.T, url string, status int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, status, b)
	}
	return string(b)
}

func TestAdminAddr(t *testing.T) {
	for in, want := range map[string]string{
		":9090":         "127.0.0.1:9090",
		"9090":          "127.0.0.1:9090",
		"0.0.0.0:9090":  "0.0.0.0:9090",
		"[::1]:9090":    "[::1]:9090",
		"localhost:0":   "localhost:0",
		"10.0.0.1:9464": "10.0.0.1:9464",
	} {
		if got, err := AdminAddr(in); err != nil || got != want {
			t.Errorf("AdminAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "host:", "host:notaport", "a:b:c"} {
		if got, err := AdminAddr(bad); err == nil {
			t.Errorf("AdminAddr(%q) = %q", bad, got)
		}
	}
}

// TestLogHandler: records logged inside a span carry its ids; others do
// not.
func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := Logger(slog.New(slog.NewJSONHandler(&buf, nil)))
	if Logger(log) != log {
		t.Error("wrapping twice made a new logger")
	}
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	log.InfoContext(ctx, "inside", "k", "v")
	log.With("a", 1).InfoContext(ctx, "with attrs")
	span.End()
	log.Info("outside")
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	sc := span.SpanContext()
	for _, l := range lines[:2] {
		if l["trace_id"] != sc.TraceID().String() || l["span_id"] != sc.SpanID().String() {
			t.Errorf("line inside the span: %v", l)
		}
	}
	if _, ok := lines[2]["trace_id"]; ok {
		t.Errorf("line outside a span: %v", lines[2])
	}
}

// TestInstrumentOff: with telemetry off nothing is wrapped or added.
func TestInstrumentOff(t *testing.T) {
	var p *Providers
	h := http.NotFoundHandler()
	if got := HTTPHandler(p, h); got == nil || ServerOptions(p, nil) != nil || DialOptions(p) != nil {
		t.Error("instrumentation installed with telemetry off")
	}
	on := &Providers{MeterProvider: sdkmetric.NewMeterProvider()}
	if len(ServerOptions(on, nil)) != 1 || len(DialOptions(on)) != 1 {
		t.Error("no instrumentation with metrics on")
	}
	var _ metric.MeterProvider = on.Meter()
}
