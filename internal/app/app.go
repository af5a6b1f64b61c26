// Package app wires ganeti-gateway together: store, cluster model, gRPC
// services and interceptors, the in-process connection, the legacy surface
// and the one listener. cmd/ganeti-gateway and the end-to-end tests use it.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.opentelemetry.io/otel/metric"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/ganeti-gateway/ganeti-gateway/deploy"
	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	"github.com/ganeti-gateway/ganeti-gateway/internal/selfsigned"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
	"github.com/ganeti-gateway/ganeti-gateway/server"
	"github.com/ganeti-gateway/ganeti-gateway/server/auth"
	"github.com/ganeti-gateway/ganeti-gateway/server/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/server/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/server/store"
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
	// Reinit begins a new cluster when the store is refused (missing, empty
	// or blank in a data dir used before, or damaged): the refused file is
	// kept as state.db.reinit-<time>. A healthy store is never touched.
	Reinit bool
	// Insecure serves plain HTTP/1.1 and h2c instead of TLS.
	Insecure bool
	// TLSCert and TLSKey name a certificate; empty means a self-signed one
	// kept in DataDir.
	TLSCert, TLSKey string
	// UsersFile is Ganeti's RAPI users file; default <DataDir>/rapi/users.
	// It is created on first start with one "write" user whose password is
	// printed once on Console; changes apply without a restart.
	UsersFile string
	// AllowAnonymousReads lets requests without credentials call the
	// methods whose access list is empty (upstream's default); by default
	// every request needs a user.
	AllowAnonymousReads bool
	// ClientCA, when set, requires every TLS client to present a
	// certificate verified against this CA bundle (PEM); the certificate's
	// common name is the user (who must be in the users file).
	ClientCA string
	// MaxBodyBytes caps legacy request bodies and the gRPC messages of
	// writes.
	MaxBodyBytes int64
	// MaxQueryBodyBytes caps PUT /2/query bodies and QueryService messages.
	MaxQueryBodyBytes int64
	// MaxHeaderBytes caps request headers (with the request line) and the
	// gRPC messages of reads.
	MaxHeaderBytes int
	// MaxQueryFields bounds the fields one query (or job wait) names.
	MaxQueryFields int
	// MaxQueryResultBytes bounds one query result (its estimated JSON
	// size, measured before it is built).
	MaxQueryResultBytes int64
	// QueryMemory is the memory budget of the query results being built
	// and sent at once (server.MemoryBudget); negative: no budget.
	QueryMemory int64
	// MaxStreamsPerConn bounds the concurrent requests of one HTTP/2
	// connection.
	MaxStreamsPerConn int
	// MaxAnonymousPerPeer and MaxAnonymous bound the concurrent requests
	// without valid credentials of one client address and of all (0: the
	// default, negative: no limit).
	MaxAnonymousPerPeer, MaxAnonymous int
	// Keepalive is how long an HTTP/2 connection may be silent before the
	// server pings it (negative: never); an unanswered ping closes it.
	Keepalive time.Duration
	// ReadHeaderTimeout and IdleTimeout bound slow or idle clients;
	// ReadTimeout bounds the reading of a legacy request body.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// WriteRate is each user's sustained rate of writes per second, and
	// WriteBurst the bucket size: beyond, writes get 429 /
	// ResourceExhausted. 0 means the default; a negative WriteRate means
	// no limit.
	WriteRate  float64
	WriteBurst int
	// JobWorkers is the number of jobs that run at once (default 4).
	JobWorkers int
	// JobArchiveAfter is the age after which finished jobs are archived:
	// still readable by id, no longer listed (default 6h; negative: never).
	JobArchiveAfter time.Duration
	// JobQueueSize is the most jobs the queue holds before submissions are
	// refused (0: jobs.DefaultQueueSize, Ganeti's hard limit; negative: no
	// limit).
	JobQueueSize int
	// MaxOpcodesPerJob bounds a job's opcodes (0: jobs.DefaultMaxOpsPerJob).
	MaxOpcodesPerJob int
	// MaxTestDelay bounds how long an OP_TEST_DELAY (submitted with the
	// typed SubmitJob by a user with the admin option) may sleep in all;
	// 0 means server.DefaultMaxTestDelay.
	MaxTestDelay time.Duration
	// MaxWaiters bounds the concurrent job waits (GET /2/jobs/{id}/wait,
	// WaitJobChange); 0 means the default, negative no limit.
	MaxWaiters int
	// MaxWatchers bounds the concurrent WatchJob streams, and
	// MaxWatchersPerUser those of one user; 0 means the default, negative
	// no limit.
	MaxWatchers, MaxWatchersPerUser int
	// ClusterDomainSecretFile is Ganeti's cluster domain secret file (one
	// line of text): clusters sharing it trust each other for remote
	// imports and exports (move-instance). Default
	// <DataDir>/cluster-domain-secret, created with a random secret on
	// first start.
	ClusterDomainSecretFile string
	// RemoteImportAddress is the address remote imports listen on and
	// announce to the exporting cluster (default 127.0.0.1).
	RemoteImportAddress string
	// RemoteConnectTimeout is how long a remote export tries to connect
	// and a remote import waits for it (Ganeti's RIE_CONNECT_TIMEOUT,
	// default 180 s; imports add the opcode's source_shutdown_timeout).
	RemoteConnectTimeout time.Duration
	// Logger defaults to a JSON logger on stderr.
	Logger *slog.Logger
	// Console receives the one-time notice with the password of the user
	// created on first start (not the log); default os.Stderr.
	Console io.Writer
	// Telemetry are the tracer and meter providers. Nil means built from
	// the OTEL_* environment (telemetry.New; off unless configured) and
	// stopped by Shutdown; a given one is the caller's to stop.
	Telemetry *telemetry.Providers
	// AdminListen is the address of the admin listener (/healthz,
	// /debug/pprof/, and /metrics with MetricsPrometheus); empty: none. A
	// bare port (":9090") binds the loopback interface only.
	AdminListen string
	// MetricsPrometheus serves the metrics in Prometheus format on the
	// admin listener's /metrics.
	MetricsPrometheus bool
}

// Defaults.
const (
	DefaultListen              = ":5080"
	DefaultDataDir             = "./data"
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultReadTimeout         = 30 * time.Second
	DefaultIdleTimeout         = 120 * time.Second
	DefaultWriteRate           = 20
	DefaultWriteBurst          = 40
	DefaultMaxWaiters          = 128
	DefaultMaxWatchers         = 128
	DefaultMaxWatchersPerUser  = 32
	DefaultQueryMemory         = 192 << 20
	DefaultMaxStreamsPerConn   = 100
	DefaultMaxAnonymousPerPeer = 64
	DefaultMaxAnonymous        = 1024
	DefaultKeepalive           = 60 * time.Second
	DefaultMaxTestDelay        = server.DefaultMaxTestDelay
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
	if c.Insecure && c.ClientCA != "" {
		return errors.New("--client-ca needs TLS: it excludes --insecure")
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = gateway.DefaultMaxBodyBytes
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteRate == 0 {
		c.WriteRate = DefaultWriteRate
	}
	if c.WriteBurst <= 0 {
		c.WriteBurst = DefaultWriteBurst
	}
	if c.MaxWaiters == 0 {
		c.MaxWaiters = DefaultMaxWaiters
	}
	if c.MaxWatchers == 0 {
		c.MaxWatchers = DefaultMaxWatchers
	}
	if c.MaxWatchersPerUser == 0 {
		c.MaxWatchersPerUser = DefaultMaxWatchersPerUser
	}
	if c.MaxQueryBodyBytes <= 0 {
		c.MaxQueryBodyBytes = gateway.DefaultMaxQueryBodyBytes
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = gateway.DefaultMaxHeaderBytes
	}
	if c.MaxQueryFields <= 0 {
		c.MaxQueryFields = server.DefaultMaxQueryFields
	}
	if c.MaxQueryResultBytes <= 0 {
		c.MaxQueryResultBytes = server.DefaultMaxQueryResultBytes
	}
	if c.QueryMemory == 0 {
		c.QueryMemory = DefaultQueryMemory
	}
	if c.MaxStreamsPerConn <= 0 {
		c.MaxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	if c.MaxAnonymousPerPeer == 0 {
		c.MaxAnonymousPerPeer = DefaultMaxAnonymousPerPeer
	}
	if c.MaxAnonymous == 0 {
		c.MaxAnonymous = DefaultMaxAnonymous
	}
	if c.Keepalive == 0 {
		c.Keepalive = DefaultKeepalive
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if c.Console == nil {
		c.Console = os.Stderr
	}
	if c.AdminListen != "" {
		addr, err := telemetry.AdminAddr(c.AdminListen)
		if err != nil {
			return fmt.Errorf("--admin-listen: %w", err)
		}
		c.AdminListen = addr
	} else if c.MetricsPrometheus {
		return errors.New("--metrics-prometheus needs --admin-listen")
	}
	return nil
}

// App is a ganeti-gateway ready to serve.
type App struct {
	cfg        Config
	store      *boltstore.Store
	users      *auth.Store
	jobs       *jobs.Engine
	grpcServer *grpc.Server
	healthSrv  *health.Server
	conn       *grpc.ClientConn
	legacy     *gateway.Legacy
	http       *http.Server
	tls        *tls.Config
	tel        *telemetry.Providers
	ownTel     bool // tel was built here: Shutdown stops it
	admin      *http.Server
	// healthMetric records the health server's state; unregistered on
	// Close (a given meter provider may outlive the App).
	healthMetric metric.Registration
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
	cfg.Logger = telemetry.Logger(cfg.Logger) // trace and span ids in the logs
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
	a := &App{cfg: cfg}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.tel = cfg.Telemetry; a.tel == nil {
		if a.tel, err = telemetry.New(ctx, telemetry.Options{Prometheus: cfg.MetricsPrometheus}); err != nil {
			return nil, err
		}
		a.ownTel = true
	}
	if a.tel.Metrics != nil && cfg.AdminListen == "" {
		return nil, errors.New("the Prometheus endpoint (OTEL_METRICS_EXPORTER=prometheus) needs --admin-listen")
	}
	secret := domainSecretPath(cfg)
	a.healthSrv = health.NewServer()
	model, err := a.openState(seed, jobs.Config{
		Logger: log, EncodeOp: server.LegacyOpValue, Executors: executors(cfg, log, secret),
		Workers: cfg.JobWorkers, ArchiveAfter: cfg.JobArchiveAfter,
		QueueSize: cfg.JobQueueSize, MaxOpsPerJob: cfg.MaxOpcodesPerJob,
		TracerProvider: a.tel.TracerProvider, MeterProvider: a.tel.MeterProvider,
		// The store refused a commit: the job queue stopped (fail-stop).
		// Every service reports NOT_SERVING until a restart.
		OnFailure: func(error) { a.healthSrv.Shutdown() },
	})
	if err != nil {
		return nil, err
	}
	// Files of the first start are created once the store is accepted.
	if err := ensureDomainSecret(cfg, secret, log); err != nil {
		return nil, err
	}
	a.jobs.Start()
	// Three quarters of the query memory for answers, one for requests
	// being decoded.
	budget := server.NewMemoryBudget(cfg.QueryMemory-cfg.QueryMemory/4, 0)
	requestBudget := server.NewMemoryBudget(cfg.QueryMemory/4, 0)
	services, err := server.New(server.Config{Cluster: model, Jobs: a.jobs, Logger: log, MaxTestDelay: cfg.MaxTestDelay, Limits: server.Limits{
		MaxQueryFields:      cfg.MaxQueryFields,
		MaxQueryResultBytes: cfg.MaxQueryResultBytes,
		Budget:              budget,
	}})
	if err != nil {
		return nil, err
	}
	if err := a.openUsers(); err != nil {
		return nil, err
	}
	writeRate := rate.Limit(cfg.WriteRate)
	if cfg.WriteRate < 0 {
		writeRate = 0 // no limit
	}
	authz, err := server.NewAuthorizer(server.AuthConfig{
		Users:               a.users,
		AllowAnonymousReads: cfg.AllowAnonymousReads,
		WriteRate:           writeRate,
		WriteBurst:          cfg.WriteBurst,
		MaxWaiters:          cfg.MaxWaiters,
		MaxWatchers:         cfg.MaxWatchers,
		MaxWatchersPerUser:  cfg.MaxWatchersPerUser,
		MaxAnonymousPerPeer: cfg.MaxAnonymousPerPeer,
		MaxAnonymous:        cfg.MaxAnonymous,
		Budget:              budget,
		InProcess:           gateway.IsInProcess,
		Logger:              log,
		MeterProvider:       a.tel.MeterProvider,
	})
	if err != nil {
		return nil, err
	}
	a.grpcServer = grpc.NewServer(append(telemetry.ServerOptions(a.tel, gateway.IsInProcess),
		// External messages are bounded per method by the listener
		// (gateway.Limits); this bounds the gateway's in-process calls,
		// whose messages come from legacy bodies of up to MaxBodyBytes.
		grpc.MaxRecvMsgSize(int(2*cfg.MaxBodyBytes)),
		grpc.ChainUnaryInterceptor(server.ErrorUnaryInterceptor(log), authz.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(server.ErrorStreamInterceptor(log), authz.StreamInterceptor()),
	)...)
	services.Register(a.grpcServer)
	healthpb.RegisterHealthServer(a.grpcServer, a.healthSrv)
	if a.healthMetric, err = telemetry.ObserveHealth(a.tel.Meter(), a.healthSrv); err != nil {
		return nil, err
	}
	reflection.Register(a.grpcServer)

	if a.conn, err = gateway.InProcess(a.grpcServer, telemetry.DialOptions(a.tel)...); err != nil {
		return nil, err
	}
	limits := &gateway.Limits{
		BodyBytes:        cfg.MaxBodyBytes,
		QueryBodyBytes:   cfg.MaxQueryBodyBytes,
		ReadMessageBytes: int64(cfg.MaxHeaderBytes),
	}
	if a.legacy, err = gateway.NewLegacy(ctx, gateway.Config{
		Conn:          a.conn,
		MaxBodyBytes:  cfg.MaxBodyBytes,
		Limits:        limits,
		Budget:        budget,
		RequestBudget: requestBudget,
		ReadTimeout:   cfg.ReadTimeout,
		Authorize:     authz.Preflight,
		Logger:        log,
	}); err != nil {
		return nil, err
	}
	if !cfg.Insecure {
		if a.tls, err = a.loadTLS(); err != nil {
			return nil, err
		}
	}
	legacy := telemetry.HTTPHandler(a.tel, a.legacy.Handler())
	a.admin = telemetry.NewAdminServer(telemetry.AdminConfig{Metrics: a.tel.Metrics, Health: a.health})
	a.http = gateway.NewHTTPServer(gateway.SamePortWith(a.grpcServer, legacy, gateway.SamePortConfig{
		Limits:        limits,
		ReadTimeout:   cfg.ReadTimeout,
		Budget:        budget,
		RequestBudget: requestBudget,
		Admit:         authz.AdmitConnectionRequest,
	}), a.tls, gateway.Timeouts{
		ReadHeader:           cfg.ReadHeaderTimeout,
		Idle:                 cfg.IdleTimeout,
		MaxHeaderBytes:       cfg.MaxHeaderBytes,
		MaxConcurrentStreams: cfg.MaxStreamsPerConn,
		Keepalive:            max(cfg.Keepalive, 0),
	})
	return a, nil
}

// PrometheusMetrics reports whether the admin listener serves /metrics
// (--metrics-prometheus or OTEL_METRICS_EXPORTER=prometheus).
func (a *App) PrometheusMetrics() bool {
	return a.tel.Metrics != nil
}

// health is the admin listener's health check: the store answers and the
// job queue has not stopped on a refused commit.
func (a *App) health(context.Context) error {
	if err := a.jobs.Err(); err != nil {
		return err
	}
	return a.store.View(func(store.Tx) error { return nil })
}

// openUsers creates the users file on first start, loads it and starts
// watching it.
func (a *App) openUsers() error {
	password, created, err := auth.CreateInitial(a.cfg.UsersFile, auth.DefaultAdmin)
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	if created {
		a.cfg.Logger.Info("created the users file with one user; its password is printed once on stderr, outside the log",
			"path", a.cfg.UsersFile, "user", auth.DefaultAdmin)
		fmt.Fprintf(a.cfg.Console, "\n"+
			"ganeti-gateway: created the RAPI users file %s with one user (option %q):\n"+
			"    user:     %s\n"+
			"    password: %s\n"+
			"This password is shown only now; the file keeps only its {HA1} hash.\n\n",
			a.cfg.UsersFile, auth.OptionWrite, auth.DefaultAdmin, password)
	}
	a.users = auth.NewStore(a.cfg.UsersFile, a.cfg.Logger)
	a.users.Start()
	return nil
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
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if a.cfg.ClientCA != "" {
		pem, err := os.ReadFile(a.cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA: no PEM certificate in %s", a.cfg.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
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

// ListenAdmin opens the admin listener (nil without AdminListen).
func (a *App) ListenAdmin() (net.Listener, error) {
	if a.cfg.AdminListen == "" {
		return nil, nil
	}
	return net.Listen("tcp", a.cfg.AdminListen)
}

// ServeAdmin serves health, pprof and the Prometheus metrics on lis until
// Shutdown; it returns nil after a shutdown.
func (a *App) ServeAdmin(lis net.Listener) error {
	err := a.admin.Serve(lis)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// then closes everything.
func (a *App) Shutdown(ctx context.Context) error {
	err := a.http.Shutdown(ctx)
	if a.jobs != nil {
		// Running opcodes finish (or ctx ends); queued jobs stay queued
		// in the store and run after the next start.
		if jerr := a.jobs.Stop(ctx); err == nil {
			err = jerr
		}
	}
	if a.ownTel {
		// Export what is buffered.
		if terr := a.tel.Shutdown(ctx); terr != nil {
			a.cfg.Logger.Warn("telemetry shutdown failed", "err", terr)
		}
	}
	if a.admin != nil {
		_ = a.admin.Shutdown(ctx)
	}
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
	if a.jobs != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // no grace: Shutdown is the graceful path
		_ = a.jobs.Stop(ctx)
	}
	if a.store != nil {
		_ = a.store.Close()
	}
	if a.users != nil {
		a.users.Close()
	}
	if a.admin != nil {
		_ = a.admin.Close()
	}
	if a.healthMetric != nil {
		_ = a.healthMetric.Unregister()
	}
	if a.ownTel && a.tel != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // no grace
		_ = a.tel.Shutdown(ctx)
	}
}
