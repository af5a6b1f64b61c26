package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

type fakeVersion struct {
	rapiv2.UnimplementedVersionServiceServer
}

func (fakeVersion) GetVersion(context.Context, *rapiv2.GetVersionRequest) (*rapiv2.Version, error) {
	return &rapiv2.Version{Version: 2}, nil
}

func (fakeVersion) GetRoot(context.Context, *rapiv2.GetRootRequest) (*structpb.Value, error) {
	return structpb.NewNullValue(), nil
}

// TestLegacyRunsInterceptors proves that legacy requests reach the gRPC
// services through the server's interceptor chain (and get the gRPC
// server's metadata: the Authorization header arrives as metadata).
func TestLegacyRunsInterceptors(t *testing.T) {
	var calls atomic.Int32
	var lastMethod atomic.Value
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		calls.Add(1)
		lastMethod.Store(info.FullMethod)
		return h(ctx, req)
	}))
	rapiv2.RegisterVersionServiceServer(srv, fakeVersion{})
	conn, err := InProcess(srv)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	defer conn.Close()
	legacy, err := NewLegacy(context.Background(), Config{Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(SamePort(srv, legacy))
	defer ts.Close()

	resp, err := http.Get(ts.URL + "/version")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "2" {
		t.Fatalf("GET /version: %d %q", resp.StatusCode, body)
	}
	if calls.Load() != 1 || lastMethod.Load() != "/ganeti.rapi.v2.VersionService/GetVersion" {
		t.Fatalf("interceptor saw %d calls, last %v", calls.Load(), lastMethod.Load())
	}
	// A route the table knows but whose service is not implemented here
	// still goes through the chain and maps Unimplemented to 501.
	resp, err = http.Get(ts.URL + "/2/features")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented || calls.Load() != 2 {
		t.Fatalf("GET /2/features: %d after %d calls", resp.StatusCode, calls.Load())
	}
	// Requests the legacy checks reject never reach the services.
	resp, err = http.Get(ts.URL + "/2/nosuch")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || calls.Load() != 2 {
		t.Fatalf("GET /2/nosuch: %d after %d calls", resp.StatusCode, calls.Load())
	}
}
