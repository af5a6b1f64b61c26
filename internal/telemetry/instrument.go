package telemetry

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
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
// otelgrpc server stats handler); none when telemetry is off. Calls for
// which inProcess is true (the legacy requests, over the gateway's
// in-process connection) are traced but record no rpc.server metrics:
// http.server.request.duration measures them, by route.
//
// clusterOf, when given, is the cluster a call is for (several clusters
// behind the gateway; "" for none or an unknown one): the ganeti.cluster
// attribute of its metrics.
func ServerOptions(p *Providers, inProcess func(context.Context) bool, clusterOf ...func(context.Context) string) []grpc.ServerOption {
	h := ServerStatsHandler(p, inProcess, clusterOf...)
	if h == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(h)}
}

// ServerStatsHandler is the stats handler of ServerOptions (nil when
// telemetry is off), for calls that reach the services without the gRPC
// server (gateway.Direct).
func ServerStatsHandler(p *Providers, inProcess func(context.Context) bool, clusterOf ...func(context.Context) string) stats.Handler {
	if !p.Enabled() {
		return nil
	}
	opts := grpcOptions(p)
	external := opts
	if len(clusterOf) > 0 && clusterOf[0] != nil {
		of := clusterOf[0]
		external = append(external[:len(external):len(external)], otelgrpc.WithMetricAttributesFn(func(ctx context.Context) []attribute.KeyValue {
			if name := of(ctx); name != "" {
				return []attribute.KeyValue{AttrCluster.String(name)}
			}
			return nil
		}))
	}
	return &serverHandler{
		external:  otelgrpc.NewServerHandler(external...),
		inProcess: otelgrpc.NewServerHandler(append(opts, otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()))...),
		isIn:      inProcess,
	}
}

// serverHandler sends each call to the otelgrpc handler of its kind.
type serverHandler struct {
	external, inProcess stats.Handler
	isIn                func(context.Context) bool
}

type inProcessKey struct{}

func (h *serverHandler) of(ctx context.Context) stats.Handler {
	if ctx.Value(inProcessKey{}) != nil {
		return h.inProcess
	}
	return h.external
}

func (h *serverHandler) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if h.isIn != nil && h.isIn(ctx) {
		return h.inProcess.TagRPC(context.WithValue(ctx, inProcessKey{}, true), info)
	}
	return h.external.TagRPC(ctx, info)
}

func (h *serverHandler) HandleRPC(ctx context.Context, s stats.RPCStats) { h.of(ctx).HandleRPC(ctx, s) }

func (h *serverHandler) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	return h.external.TagConn(ctx, info)
}

func (h *serverHandler) HandleConn(ctx context.Context, s stats.ConnStats) {
	h.external.HandleConn(ctx, s)
}

// DialOptions are the options of the gateway's in-process client (the
// otelgrpc client stats handler, which also carries the trace context to
// the server); none when telemetry is off. The client records no metrics:
// its calls are the legacy requests, which the HTTP and the gRPC server
// metrics already measure.
func DialOptions(p *Providers) []grpc.DialOption {
	h := ClientStatsHandler(p)
	if h == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(h)}
}

// ClientStatsHandler is the stats handler of DialOptions (nil when
// telemetry is off), for gateway.Direct.
func ClientStatsHandler(p *Providers) stats.Handler {
	if !p.Enabled() {
		return nil
	}
	return otelgrpc.NewClientHandler(append(grpcOptions(p), otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()))...)
}
