package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ganeti-gateway/ganeti-gateway/internal/buildinfo"
)

// meterName is the instrumentation scope of the gateway's own process
// metrics (build info, health).
const meterName = "github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"

// BuildInfo is what the build_info metric reports.
type BuildInfo struct {
	Version, Commit, GoVersion string
}

// buildInfo is what make build stamped, or what the Go toolchain recorded
// (internal/buildinfo).
func buildInfo() BuildInfo {
	b := buildinfo.Get()
	return BuildInfo{Version: b.Version, Commit: b.Commit, GoVersion: b.GoVersion}
}

// startProcessMetrics records the Go runtime metrics (runtime/metrics,
// through the OpenTelemetry runtime instrumentation: go.memory.used,
// go.goroutine.count, ...) and ganeti_gateway.build_info, a gauge of 1
// whose attributes are bi's fields.
func startProcessMetrics(mp metric.MeterProvider, bi BuildInfo) error {
	if err := runtime.Start(runtime.WithMeterProvider(mp)); err != nil {
		return fmt.Errorf("telemetry: runtime metrics: %w", err)
	}
	attrs := metric.WithAttributes(
		attribute.String("version", bi.Version),
		attribute.String("commit", bi.Commit),
		attribute.String("go_version", bi.GoVersion),
	)
	_, err := mp.Meter(meterName).Int64ObservableGauge("ganeti_gateway.build_info",
		metric.WithDescription("Always 1; the attributes name the version, commit and Go version of the binary."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, attrs)
			return nil
		}))
	if err != nil {
		return fmt.Errorf("telemetry: build info metric: %w", err)
	}
	return nil
}

// ObserveHealth records ganeti_gateway.health.serving: per service name of
// the gRPC health server h (the overall "" included, as rpc.service), 1
// while it is SERVING, else 0. It reads h's state at each collection, so
// it follows every change (a fail-stop's NOT_SERVING included). The
// caller unregisters the returned registration when h goes away.
func ObserveHealth(mp metric.MeterProvider, h healthpb.HealthServer) (metric.Registration, error) {
	meter := mp.Meter(meterName)
	gauge, err := meter.Int64ObservableGauge("ganeti_gateway.health.serving",
		metric.WithDescription("1 while the gRPC health service (rpc.service; \"\" is the server as a whole) is SERVING, else 0."))
	if err != nil {
		return nil, fmt.Errorf("telemetry: health metric: %w", err)
	}
	return meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		list, err := h.List(ctx, &healthpb.HealthListRequest{})
		if err != nil {
			return err
		}
		for name, st := range list.GetStatuses() {
			v := int64(0)
			if st.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				v = 1
			}
			o.ObserveInt64(gauge, v, metric.WithAttributes(attribute.String("rpc.service", name)))
		}
		return nil
	}, gauge)
}
