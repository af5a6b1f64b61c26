package telemetry

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
)

// HTTPHandler traces and measures h (the legacy surface) with otelhttp:
// one server span per request, named after the RAPI route template the
// handler matched ("PUT /2/instances/{instance_name}/startup", set as the
// request's Pattern) or only the method when none matched, and the
// http.server.* metrics labeled with the route. h is returned as is when
// telemetry is off.
func HTTPHandler(p *Providers, h http.Handler) http.Handler {
	if !p.Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, "rapi",
		otelhttp.WithTracerProvider(p.Tracer()),
		otelhttp.WithMeterProvider(p.Meter()),
		otelhttp.WithPropagators(p.Propagators()))
}

// grpcOptions are the otelgrpc options of both sides; health checks are
// not traced.
func grpcOptions(p *Providers) []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(p.Tracer()),
		otelgrpc.WithMeterProvider(p.Meter()),
		otelgrpc.WithPropagators(p.Propagators()),
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	}
}

// ServerOptions are the gRPC server's options for tracing and metrics (the
// otelgrpc server stats handler); none when telemetry is off.
func ServerOptions(p *Providers) []grpc.ServerOption {
	if !p.Enabled() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(grpcOptions(p)...))}
}

// DialOptions are the options of the gateway's in-process client (the
// otelgrpc client stats handler, which also carries the trace context to
// the server); none when telemetry is off. The client records no metrics:
// its calls are the legacy requests, which the HTTP and the gRPC server
// metrics already measure.
func DialOptions(p *Providers) []grpc.DialOption {
	if !p.Enabled() {
		return nil
	}
	opts := append(grpcOptions(p), otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()))
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(opts...))}
}
