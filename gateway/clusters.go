package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
)

// MetadataCluster is the gRPC metadata key that names the cluster of a
// call when the gateway fronts several (--clusters).
const MetadataCluster = "ganeti-cluster"

// mdCluster carries the cluster a legacy request resolved to on its
// in-process call (trusted there only, like the other internal keys).
const mdCluster = InternalMetadataPrefix + "cluster"

// Clusters selects the cluster of each request when the gateway fronts
// several; nil when it fronts one.
type Clusters struct {
	// Resolve is the cluster a gRPC call names ("": none, the default
	// cluster); false: no such cluster.
	Resolve func(name string) (string, bool)
	// ResolveHost is the cluster of a legacy request by its Host header
	// and TLS server name (else the default cluster); false: none.
	ResolveHost func(hosts ...string) (string, bool)
}

// clusterMethod reports whether a method is a cluster's (the RAPI
// services), which the cluster selection applies to.
func clusterMethod(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/ganeti.rapi.v2.")
}

// unknownCluster is the error of a request for no known cluster:
// NOT_FOUND (404 on the legacy surface).
func unknownCluster(name string) error {
	if name == "" {
		return errs.Prereq(errs.CodeNoEnt, "no cluster named and no default cluster: set the %s metadata", MetadataCluster)
	}
	return errs.Prereq(errs.CodeNoEnt, "Cluster '%s' not known", name)
}

// clusterContext resolves the call's cluster: the one its legacy request
// resolved to (in process), or the one its ganeti-cluster metadata names.
func (c *Clusters) clusterContext(ctx context.Context, fullMethod string, inProcess func(context.Context) bool) (context.Context, error) {
	if c == nil || !clusterMethod(fullMethod) {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	key := MetadataCluster
	if inProcess != nil && inProcess(ctx) {
		key = mdCluster
	}
	want := ""
	if v := md.Get(key); len(v) > 0 {
		want = v[0]
	}
	name, ok := c.Resolve(want)
	if !ok {
		return ctx, unknownCluster(want)
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(telemetry.AttrCluster.String(name))
	}
	return backend.WithCluster(ctx, name), nil
}

// ClusterUnaryInterceptor puts the cluster of each RAPI call in its
// context (backend.WithCluster), before the authorizer: an unknown
// cluster is NOT_FOUND. inProcess tells the legacy surface's calls.
func ClusterUnaryInterceptor(c *Clusters, inProcess func(context.Context) bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := c.clusterContext(ctx, info.FullMethod, inProcess)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// ClusterStreamInterceptor is ClusterUnaryInterceptor for streams.
func ClusterStreamInterceptor(c *Clusters, inProcess func(context.Context) bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := c.clusterContext(ss.Context(), info.FullMethod, inProcess)
		if err != nil {
			return err
		}
		if c == nil || !clusterMethod(info.FullMethod) {
			return handler(srv, ss)
		}
		return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	}
}

// legacyCluster resolves the cluster of a legacy request by its Host
// header, then its TLS server name; false (and a 404 written) when none.
func (l *Legacy) legacyCluster(w http.ResponseWriter, r *http.Request, call *LegacyCall) bool {
	c := l.cfg.Clusters
	if c == nil {
		return true
	}
	sni := ""
	if r.TLS != nil {
		sni = r.TLS.ServerName
	}
	name, ok := c.ResolveHost(r.Host, sni)
	if !ok {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		WriteLegacyError(w, LegacyError{Code: http.StatusNotFound,
			Message: "Cluster '" + host + "' not known", Explain: explain[http.StatusNotFound]})
		return false
	}
	call.Cluster = name
	attr := telemetry.AttrCluster.String(name)
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		span.SetAttributes(attr)
	}
	if lab, ok := otelhttp.LabelerFromContext(r.Context()); ok {
		lab.Add(attr)
	}
	return true
}
