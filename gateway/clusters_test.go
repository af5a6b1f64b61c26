package gateway_test

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

func TestClusterUnaryInterceptor(t *testing.T) {
	known := map[string]bool{"a": true, "b": true}
	sel := &gateway.Clusters{Resolve: func(n string) (string, bool) {
		if n == "" {
			return "b", true // the default
		}
		return n, known[n]
	}}
	inProcess := func(ctx context.Context) bool { return ctx.Value(inProcessMark{}) != nil }
	icpt := gateway.ClusterUnaryInterceptor(sel, inProcess)
	call := func(ctx context.Context, method string) (string, error) {
		got := "<not called>"
		_, err := icpt(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
			got = backend.ClusterFrom(ctx)
			return nil, nil
		})
		return got, err
	}
	md := func(kv ...string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
	}
	const rapi = "/ganeti.rapi.v2.TagService/ListClusterTags"
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		method string
		want   string
		code   errs.Code
	}{
		{"named", md("ganeti-cluster", "a"), rapi, "a", ""},
		{"default", context.Background(), rapi, "b", ""},
		{"unknown", md("ganeti-cluster", "c"), rapi, "<not called>", errs.CodeNoEnt},
		// An external call cannot use the internal key of the legacy
		// surface's calls (the listener strips it anyway).
		{"internal key from outside", md("x-ganeti-gateway-cluster", "a"), rapi, "b", ""},
		{"in process", context.WithValue(md("x-ganeti-gateway-cluster", "a", "ganeti-cluster", "c"), inProcessMark{}, true), rapi, "a", ""},
		// Other services are no cluster's.
		{"directory", md("ganeti-cluster", "c"), "/ganeti.gateway.v1.ClusterDirectoryService/ListClusters", "", ""},
		{"health", md("ganeti-cluster", "c"), "/grpc.health.v1.Health/Check", "", ""},
	} {
		got, err := call(tc.ctx, tc.method)
		if got != tc.want {
			t.Errorf("%s: cluster %q, want %q", tc.name, got, tc.want)
		}
		if tc.code == "" && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.code != "" {
			e, ok := errs.As(err)
			if !ok || e.Code != tc.code {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			} else if st := gateway.ToStatus(slog.Default(), err); status.Code(st) != codes.NotFound {
				t.Errorf("%s: gRPC %v, want NOT_FOUND", tc.name, st)
			}
		}
	}
	// Without clusters, nothing is selected.
	got, err := func() (string, error) {
		got := ""
		_, err := gateway.ClusterUnaryInterceptor(nil, inProcess)(md("ganeti-cluster", "zz"), nil, &grpc.UnaryServerInfo{FullMethod: rapi},
			func(ctx context.Context, _ any) (any, error) { got = backend.ClusterFrom(ctx); return nil, nil })
		return got, err
	}()
	if got != "" || err != nil {
		t.Errorf("one cluster: %q %v", got, err)
	}
}

type inProcessMark struct{}
