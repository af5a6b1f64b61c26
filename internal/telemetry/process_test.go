package telemetry

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthGauge collects ganeti_gateway.health.serving: service -> value.
func healthGauge(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "ganeti_gateway.health.serving" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				name, _ := dp.Attributes.Value(attribute.Key("rpc.service"))
				got[name.AsString()] = dp.Value
			}
		}
	}
	return got
}

// TestHealthMetricFollowsState: the metric reads the health server at
// each collection, so a fail-stop (Shutdown) turns every service to 0.
func TestHealthMetricFollowsState(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	h := health.NewServer()
	reg, err := ObserveHealth(mp, h)
	if err != nil {
		t.Fatal(err)
	}
	const svc = "ganeti.rapi.v2.ClusterService"
	steps := []struct {
		name   string
		change func()
		want   map[string]int64
	}{
		{"new server", func() {}, map[string]int64{"": 1}},
		{"a service added", func() { h.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING) }, map[string]int64{"": 1, svc: 1}},
		{"the service not serving", func() { h.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING) }, map[string]int64{"": 1, svc: 0}},
		{"fail-stop (Shutdown)", func() { h.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING); h.Shutdown() }, map[string]int64{"": 0, svc: 0}},
		{"resumed", h.Resume, map[string]int64{"": 1, svc: 1}},
	}
	for _, s := range steps {
		s.change()
		got := healthGauge(t, r)
		if len(got) != len(s.want) {
			t.Errorf("%s: %v, want %v", s.name, got, s.want)
			continue
		}
		for k, v := range s.want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s: %v, want %v", s.name, got, s.want)
				break
			}
		}
	}
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if got := healthGauge(t, r); len(got) != 0 {
		t.Errorf("after Unregister: %v", got)
	}
}

// TestPrometheusProcessMetrics: the scrape has the Go runtime metrics, the
// process metrics and the build info.
func TestPrometheusProcessMetrics(t *testing.T) {
	ctx := context.Background()
	p, err := New(ctx, Options{Getenv: env(), Prometheus: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	srv := httptest.NewServer(AdminHandler(AdminConfig{Metrics: p.Metrics}))
	defer srv.Close()
	body := get(t, srv.URL+"/metrics", 200)
	for _, re := range []string{
		`(?m)^go_goroutine_count\{.*\} [1-9]`,
		`(?m)^go_memory_used_bytes\{.*go_memory_type="stack".*\} [1-9]`,
		`(?m)^process_cpu_seconds_total [0-9]`,
		`(?m)^process_resident_memory_bytes [1-9]`,
		`(?m)^process_open_fds [1-9]`,
		`(?m)^ganeti_gateway_build_info\{.*go_version="go1\.[^"]+".*\} 1$`,
	} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("no match for %s in the scrape:\n%s", re, body)
		}
	}
	if strings.Contains(body, "ganeti_gateway_build_info{") && !regexp.MustCompile(`ganeti_gateway_build_info\{.*commit="[^"]+".*version="[^"]+"`).MatchString(body) {
		t.Errorf("build info without commit or version:\n%s", body)
	}
}

func TestBuildInfo(t *testing.T) {
	bi := buildInfo()
	// A test binary has no stamp and no main module version: "devel" or
	// "unknown"; the Go version is always recorded.
	if bi.Version == "" || bi.Commit == "" || !strings.HasPrefix(bi.GoVersion, "go1.") {
		t.Errorf("buildInfo() = %+v", bi)
	}
}
