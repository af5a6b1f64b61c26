package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// goldenEngine opens the golden cluster in memory with a job engine (not
// started) whose executors are execs (nil: the default ones), stopped when
// the test ends.
func goldenEngine(tb testing.TB, execs map[string]opexec.Executor) (*cluster.Model, *jobs.Engine) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(tb), "testdata", "golden-cluster.json"))
	if err != nil {
		tb.Fatal(err)
	}
	seed, err := cluster.ParseFile(data)
	if err != nil {
		tb.Fatal(err)
	}
	model, err := cluster.Open(memstore.New(), seed, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if execs == nil {
		execs = lu.DefaultExecutors()
	}
	eng, err := jobs.New(jobs.Config{Model: model, Logger: quiet, EncodeOp: service.LegacyOpValue, Executors: execs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
	})
	return model, eng
}

// serveSamePort serves srv and the legacy gateway of cfg (its Conn is the
// in-process connection to srv, made here) on one loopback port, plain
// HTTP and h2c, as the server does, until the test ends; sp configures
// the same-port limits (nil: SamePort's defaults). It returns the address.
func serveSamePort(t *testing.T, srv *grpc.Server, cfg gateway.Config, sp *gateway.SamePortConfig, to gateway.Timeouts) string {
	t.Helper()
	inproc, err := gateway.InProcess(srv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Conn = inproc
	legacy, err := gateway.NewLegacy(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if to.ReadHeader == 0 {
		to.ReadHeader, to.Idle = time.Second, time.Minute
	}
	handler := gateway.SamePort(srv, legacy)
	if sp != nil {
		handler = gateway.SamePortWith(srv, legacy, *sp)
	}
	hs := gateway.NewHTTPServer(handler, nil, to)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(lis) }()
	t.Cleanup(func() {
		hs.Close()
		inproc.Close()
		srv.Stop()
	})
	return lis.Addr().String()
}

// dialTest opens a plain-text gRPC connection to addr, closed when the
// test ends.
func dialTest(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
