package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestCheckAndSetDefaults(t *testing.T) {
	c := Config{DataDir: "/d"}
	if err := c.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.UsersFile != filepath.Join("/d", "rapi", "users") || c.ReadTimeout != DefaultReadTimeout ||
		c.WriteRate != 0 || c.WriteBurst != DefaultWriteBurst || c.MaxWaiters != DefaultMaxWaiters ||
		c.AllowAnonymousReads || c.ShutdownTimeout != DefaultShutdownTimeout ||
		c.MaxWatchAge != DefaultMaxWatchAge || c.DrainDelay != 0 {
		t.Errorf("defaults: %+v", c)
	}
	unlimited := Config{WriteRate: -1, MaxWaiters: -1}
	if err := unlimited.CheckAndSetDefaults(); err != nil || unlimited.WriteRate != -1 || unlimited.MaxWaiters != -1 {
		t.Errorf("negative limits must stay (no limit): %+v %v", unlimited, err)
	}
	for _, bad := range []Config{
		{Insecure: true, ClientCA: "ca.pem"},
		{Insecure: true, TLSCert: "c", TLSKey: "k"},
		{TLSCert: "c"},
		{DrainDelay: DefaultShutdownTimeout},
		{DrainDelay: 5 * time.Second, ShutdownTimeout: 3 * time.Second},
		{DrainDelay: -time.Second},
		{ShutdownTimeout: -time.Second},
		{Listen: "5080"},
		{Listen: "127.0.0.1:http-nope"},
		{Listen: "[::1:5080"},
		{Store: "etcd"},
		{Store: "zookeeper"},
		{Etcd: EtcdConfig{DialConfig: etcdstore.DialConfig{Endpoints: []string{"http://127.0.0.1:2379"}}}},
		{Store: "etcd", Etcd: EtcdConfig{DialConfig: etcdstore.DialConfig{Endpoints: []string{"http://127.0.0.1:2379"}}},
			Upstream: UpstreamConfig{URLs: []string{"https://cluster.example.com:5080"}}},
	} {
		if err := bad.CheckAndSetDefaults(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// TestShutdownDrainDelay: once Shutdown begins, the gRPC health of the
// server and of every service, and the admin /healthz, say the server is
// going away, while requests are still served for DrainDelay; then the
// listener closes and Shutdown returns.
func TestShutdownDrainDelay(t *testing.T) {
	const delay = 400 * time.Millisecond
	a, err := New(context.Background(), Config{
		DataDir: t.TempDir(), Insecure: true, AllowAnonymousReads: true, DrainDelay: delay, AdminListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLis, err := a.ListenAdmin()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Serve(lis) }()
	go func() { _ = a.ServeAdmin(adminLis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	health := func() (grpcStatus []healthpb.HealthCheckResponse_ServingStatus, admin int) {
		for _, svc := range []string{"", "ganeti.rapi.v2.JobService", "ganeti.rapi.v2.ClusterService"} {
			res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil {
				t.Fatalf("health of %q: %v", svc, err)
			}
			grpcStatus = append(grpcStatus, res.GetStatus())
		}
		resp, err := http.Get("http://" + adminLis.Addr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return grpcStatus, resp.StatusCode
	}
	info := func() error {
		resp, err := http.Get("http://" + lis.Addr().String() + "/2/info")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	serving := healthpb.HealthCheckResponse_SERVING
	if st, admin := health(); st[0] != serving || st[1] != serving || st[2] != serving || admin != http.StatusOK {
		t.Fatalf("before Shutdown: %v, /healthz %d", st, admin)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- a.Shutdown(ctx) }()
	time.Sleep(delay / 4)
	notServing := healthpb.HealthCheckResponse_NOT_SERVING
	if st, admin := health(); st[0] != notServing || st[1] != notServing || st[2] != notServing || admin != http.StatusServiceUnavailable {
		t.Errorf("during the drain delay: %v, /healthz %d", st, admin)
	}
	if err := info(); err != nil {
		t.Errorf("GET /2/info during the drain delay: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < delay || d > delay+5*time.Second {
		t.Errorf("Shutdown took %v with a drain delay of %v", d, delay)
	}
	if err := info(); err == nil {
		t.Error("GET /2/info after Shutdown succeeded")
	}
}

// TestValidateWritesNothing: a config naming a file that is missing or
// wrong is refused before the data dir is created or anything written.
func TestValidateWritesNothing(t *testing.T) {
	dir := t.TempDir()
	notCert := filepath.Join(dir, "not-a-cert.pem")
	if err := os.WriteFile(notCert, []byte("no PEM here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing cluster file", Config{ClusterFile: filepath.Join(dir, "nope.json"), Insecure: true}, "--cluster-file"},
		{"bad cluster file", Config{ClusterFile: notCert, Insecure: true}, "--cluster-file"},
		{"missing certificate", Config{TLSCert: filepath.Join(dir, "c.pem"), TLSKey: filepath.Join(dir, "k.pem")}, "--tls-cert"},
		{"client CA without certificates", Config{ClientCA: notCert}, "--client-ca"},
		{"missing domain secret", Config{ClusterDomainSecretFile: filepath.Join(dir, "secret"), Insecure: true}, "--cluster-domain-secret-file"},
		{"bad listen address", Config{Listen: "localhost", Insecure: true}, "--listen"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dataDir := filepath.Join(dir, "data-"+strings.ReplaceAll(c.name, " ", "-"))
			c.cfg.DataDir = dataDir
			if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate: %v, want an error about %s", err, c.want)
			}
			a, err := New(t.Context(), c.cfg)
			if err == nil {
				a.Close()
				t.Fatal("New accepted the config")
			}
			if _, err := os.Lstat(dataDir); err == nil {
				t.Errorf("New created the data dir %s before refusing the config", dataDir)
			}
		})
	}
}
