// Package app wires ganeti-gateway together: store, cluster model, gRPC
// services and interceptors, the in-process connection, the legacy surface
// and the one listener. cmd/ganeti-gateway and the end-to-end tests use it.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/ganeti-gateway/ganeti-gateway/deploy"
	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	"github.com/ganeti-gateway/ganeti-gateway/internal/selfsigned"
	"github.com/ganeti-gateway/ganeti-gateway/server"
	"github.com/ganeti-gateway/ganeti-gateway/server/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/server/store/boltstore"
)

// Config is the server configuration; the zero value plus a DataDir works.
type Config struct {
	// Listen is the address of the one listener (gRPC and legacy JSON).
	Listen string
	// DataDir holds the store, the generated certificate and the users file.
	DataDir string
	// ClusterFile seeds the store on first start; empty means the embedded
	// demo cluster.
	ClusterFile string
	// Insecure serves plain HTTP/1.1 and h2c instead of TLS.
	Insecure bool
	// TLSCert and TLSKey name a certificate; empty means a self-signed one
	// kept in DataDir.
	TLSCert, TLSKey string
	// UsersFile is Ganeti's RAPI users file; default <DataDir>/rapi/users.
	UsersFile string
	// MaxBodyBytes caps legacy request bodies.
	MaxBodyBytes int64
	// ReadHeaderTimeout and IdleTimeout bound slow or idle clients.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// Logger defaults to a JSON logger on stderr.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultListen            = ":5080"
	DefaultDataDir           = "./data"
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.UsersFile == "" {
		c.UsersFile = filepath.Join(c.DataDir, "rapi", "users")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.Insecure && c.TLSCert != "" {
		return errors.New("--insecure and --tls-cert exclude each other")
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = gateway.DefaultMaxBodyBytes
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return nil
}

// App is a ganeti-gateway ready to serve.
type App struct {
	cfg        Config
	store      *boltstore.Store
	grpcServer *grpc.Server
	conn       *grpc.ClientConn
	legacy     *gateway.Legacy
	http       *http.Server
	tls        *tls.Config
	// Fingerprint is the SHA-256 fingerprint of the TLS certificate (empty
	// with Insecure).
	Fingerprint string
}

// New opens the store (seeding it from the cluster file on first start)
// and builds the servers.
func New(ctx context.Context, cfg Config) (_ *App, err error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	seedData := deploy.DemoCluster
	if cfg.ClusterFile != "" {
		if seedData, err = os.ReadFile(cfg.ClusterFile); err != nil {
			return nil, fmt.Errorf("cluster file: %w", err)
		}
	}
	seed, err := cluster.ParseFile(seedData)
	if err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	st, err := boltstore.Open(filepath.Join(cfg.DataDir, "state.db"))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	a := &App{cfg: cfg, store: st}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	model, err := cluster.Open(st, seed, time.Now)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	services, err := server.New(server.Config{Cluster: model, Logger: log})
	if err != nil {
		return nil, err
	}
	a.grpcServer = grpc.NewServer(
		grpc.ChainUnaryInterceptor(server.ErrorUnaryInterceptor(log)),
		grpc.ChainStreamInterceptor(server.ErrorStreamInterceptor(log)),
	)
	services.Register(a.grpcServer)
	healthpb.RegisterHealthServer(a.grpcServer, health.NewServer())
	reflection.Register(a.grpcServer)

	if a.conn, err = gateway.InProcess(a.grpcServer); err != nil {
		return nil, err
	}
	if a.legacy, err = gateway.NewLegacy(ctx, gateway.Config{Conn: a.conn, MaxBodyBytes: cfg.MaxBodyBytes, Logger: log}); err != nil {
		return nil, err
	}
	if !cfg.Insecure {
		if a.tls, err = a.loadTLS(); err != nil {
			return nil, err
		}
	}
	a.http = gateway.NewHTTPServer(gateway.SamePort(a.grpcServer, a.legacy), a.tls, gateway.Timeouts{
		ReadHeader: cfg.ReadHeaderTimeout,
		Idle:       cfg.IdleTimeout,
	})
	return a, nil
}

func (a *App) loadTLS() (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if a.cfg.TLSCert != "" {
		cert, err = tls.LoadX509KeyPair(a.cfg.TLSCert, a.cfg.TLSKey)
	} else {
		host, _ := os.Hostname()
		cert, err = selfsigned.LoadOrCreate(a.cfg.DataDir, []string{host})
	}
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	a.Fingerprint = selfsigned.Fingerprint(cert)
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// Listen opens the configured listener.
func (a *App) Listen() (net.Listener, error) {
	return net.Listen("tcp", a.cfg.Listen)
}

// Serve serves on lis until Shutdown; it returns nil after a shutdown.
func (a *App) Serve(lis net.Listener) error {
	var err error
	if a.tls != nil {
		err = a.http.Serve(tls.NewListener(lis, a.tls))
	} else {
		err = a.http.Serve(lis)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes everything.
func (a *App) Shutdown(ctx context.Context) error {
	err := a.http.Shutdown(ctx)
	a.Close()
	return err
}

// Close releases everything at once.
func (a *App) Close() {
	if a.http != nil {
		_ = a.http.Close()
	}
	if a.conn != nil {
		_ = a.conn.Close()
	}
	if a.grpcServer != nil {
		a.grpcServer.Stop()
	}
	if a.store != nil {
		_ = a.store.Close()
	}
}
