// Package server is the composition root: it wires ganeti-gateway together: store, cluster model, gRPC
// services and interceptors, the in-process connection, the legacy surface
// and the one listener. cmd/ganeti-gateway and the end-to-end tests use it.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/ganeti-gateway/ganeti-gateway/deploy"
	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	gatewayv1 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/gateway/v1"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend/forward"
	"github.com/ganeti-gateway/ganeti-gateway/internal/clusters"
	"github.com/ganeti-gateway/ganeti-gateway/internal/membudget"
	"github.com/ganeti-gateway/ganeti-gateway/internal/selfsigned"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/impexp"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
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
	// written once to <DataDir>/rapi/initial-admin-password (mode 0600;
	// InitialPasswordFile); changes apply without a restart.
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
	// and sent at once (membudget.MemoryBudget); negative: no budget.
	QueryMemory int64
	// MaxStreamsPerConn bounds the concurrent requests of one HTTP/2
	// connection.
	MaxStreamsPerConn int
	// MaxAnonymousPerPeer and MaxAnonymous bound the concurrent requests
	// without valid credentials of one client address and of all (0: the
	// default, negative: no limit).
	MaxAnonymousPerPeer, MaxAnonymous int
	// TrustedProxies are the reverse proxies (addresses and prefixes) whose
	// Forwarded (RFC 7239) or X-Forwarded-For header names the client of a
	// request: its address in the access and audit logs and the per-peer
	// anonymous limits (gateway.TrustedProxies). Empty: none; the headers
	// are then ignored.
	TrustedProxies gateway.TrustedProxies
	// Keepalive is how long an HTTP/2 connection may be silent before the
	// server pings it (negative: never); an unanswered ping closes it.
	Keepalive time.Duration
	// ReadHeaderTimeout and IdleTimeout bound slow or idle clients;
	// ReadTimeout bounds the reading of a legacy request body.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// WriteRate is each user's sustained rate of writes per second, and
	// WriteBurst the bucket size: beyond, writes get 429 /
	// ResourceExhausted. 0 or negative means no limit (the default, as
	// Ganeti has none).
	WriteRate  float64
	WriteBurst int
	// JobWorkers is the number of jobs that run at once (default 4).
	JobWorkers int
	// JobArchiveAfter is the age after which finished jobs are archived:
	// still readable by id, no longer listed (default 6h; negative: never).
	JobArchiveAfter time.Duration
	// JobArchiveRetention is how long an archived job is kept after it
	// ended; the leader then removes it, and it is answered as an unknown
	// job, as in Ganeti once its cleaner removed it. 0 or negative: keep
	// them forever (--job-archive-retention defaults to
	// DefaultJobArchiveRetention, the 21 days of Ganeti's ganeti-cleaner).
	JobArchiveRetention time.Duration
	// Store is "bolt" (the default: a file in DataDir) or "etcd" (Etcd):
	// several replicas share one etcd; the elected leader runs the job
	// queue (see Etcd).
	Store string
	// Etcd is the etcd of Store "etcd".
	Etcd EtcdConfig
	// JobQueueSize is the most jobs the queue holds before submissions are
	// refused (0: jobs.DefaultQueueSize, Ganeti's hard limit; negative: no
	// limit).
	JobQueueSize int
	// MaxOpcodesPerJob bounds a job's opcodes (0: jobs.DefaultMaxOpsPerJob).
	MaxOpcodesPerJob int
	// IdempotencyKeyTTL is how long the idempotency key of a write is kept
	// (0: jobs.DefaultIdempotencyTTL).
	IdempotencyKeyTTL time.Duration
	// MaxTestDelay bounds how long an OP_TEST_DELAY (submitted with the
	// typed SubmitJob by a user with the admin option) may sleep in all;
	// 0 means service.DefaultMaxTestDelay.
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
	// DrainDelay is how long Shutdown keeps serving after the health
	// checks turned NOT_SERVING, so that load balancers stop sending new
	// requests before the listener closes (0: none).
	DrainDelay time.Duration
	// ShutdownTimeout bounds Shutdown as the command runs it (the drain
	// delay included): then everything still open is closed.
	ShutdownTimeout time.Duration
	// MaxWatchAge ends a WatchJob stream after about this long with a
	// resumable UNAVAILABLE, so that clients rebalance (0: the default,
	// negative: no limit).
	MaxWatchAge time.Duration
	// Upstream, when set, fronts a real Ganeti cluster over its RAPI or
	// luxi instead of the simulated one (see UpstreamConfig).
	Upstream UpstreamConfig
	// ClustersFile, when set, names the clusters file (--clusters): the
	// gateway fronts several clusters, each request going to the one its
	// Host header, TLS server name or ganeti-cluster metadata picks. The
	// companions of Upstream (cache, timeout, concurrency, health
	// interval) apply to each; it excludes Upstream.URLs.
	ClustersFile string
	// InProcessCodec sends the legacy surface's calls through the gRPC
	// codec over the in-process connection, as before gateway.Direct
	// (the differential tests compare both; no flag).
	InProcessCodec bool
}

// UpstreamConfig is the upstream cluster (--upstream and its companions).
type UpstreamConfig struct {
	// URLs are the cluster's RAPI base URLs (https://host:5080), one per
	// master candidate, or one unix:///path of luxid's socket on the
	// master node; empty: the simulated backend.
	URLs []string
	// User and PasswordFile are the service user's credentials.
	User, PasswordFile string
	// CAFile verifies the cluster's certificate; Insecure skips it.
	CAFile   string
	Insecure bool
	// CacheTTL, when positive, caches reads (invalidated when a job ends).
	CacheTTL time.Duration
	// Timeout bounds one upstream call; MaxConcurrent caps those in
	// flight (and, apart, the job waits in flight); HealthInterval is how
	// often the master is checked.
	Timeout        time.Duration
	MaxConcurrent  int
	HealthInterval time.Duration
}

// Defaults.
const (
	DefaultListen              = ":5080"
	DefaultDataDir             = "./data"
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultReadTimeout         = 30 * time.Second
	DefaultIdleTimeout         = 120 * time.Second
	DefaultWriteBurst          = 40 // with a --write-rate (off by default)
	DefaultMaxWaiters          = 128
	DefaultMaxWatchers         = 128
	DefaultMaxWatchersPerUser  = 32
	DefaultQueryMemory         = 192 << 20
	DefaultMaxStreamsPerConn   = 100
	DefaultMaxAnonymousPerPeer = 64
	DefaultMaxAnonymous        = 1024
	DefaultKeepalive           = 60 * time.Second
	DefaultMaxTestDelay        = service.DefaultMaxTestDelay
	DefaultShutdownTimeout     = 20 * time.Second
	DefaultMaxWatchAge         = 30 * time.Minute
)

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if err := c.checkStore(); err != nil {
		return err
	}
	if c.ClustersFile != "" && len(c.Upstream.URLs) > 0 {
		return errors.New("--clusters and --upstream exclude each other: list the upstream in the clusters file")
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if err := checkListen(c.Listen); err != nil {
		return fmt.Errorf("--listen: %w", err)
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
	if c.IdempotencyKeyTTL < 0 {
		return errors.New("--idempotency-key-ttl must be positive")
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
		c.MaxQueryFields = service.DefaultMaxQueryFields
	}
	if c.MaxQueryResultBytes <= 0 {
		c.MaxQueryResultBytes = service.DefaultMaxQueryResultBytes
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
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.ShutdownTimeout < 0 || c.DrainDelay < 0 {
		return errors.New("--shutdown-timeout and --drain-delay cannot be negative")
	}
	if c.DrainDelay >= c.ShutdownTimeout {
		return fmt.Errorf("--drain-delay (%s) must be shorter than --shutdown-timeout (%s)", c.DrainDelay, c.ShutdownTimeout)
	}
	if c.MaxWatchAge == 0 {
		c.MaxWatchAge = DefaultMaxWatchAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
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
	upstream   upstreamBackend // nil: the simulated backend
	multi      *multi          // several clusters (--clusters); nil: one
	store      store.Store
	bolt       *boltstore.Store // the store with Store "bolt": backups
	lost       chan error       // the leadership was lost (Store "etcd")
	replica    *replica         // this replica's role (Store "etcd")
	closeEtcd  func()           // closes the store and the client (Store "etcd")
	users      *auth.Store
	jobs       *jobs.Engine
	grpcServer *grpc.Server
	healthSrv  *health.Server
	services   *service.Services
	draining   atomic.Bool // Shutdown began
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

// inputs are the contents of the files the config names, read and
// checked before anything is written.
type inputs struct {
	seed      *cluster.File
	cert      *tls.Certificate // nil: the self-signed one kept in the data dir
	clientCAs *x509.CertPool   // nil: no client certificates
	clusters  *clusters.File   // nil: no clusters file
}

// Validate checks the config and the files it names (cluster file, TLS
// certificate and key, client CA, cluster domain secret) and fills in
// defaults, writing nothing. New does the same before it writes.
func (c *Config) Validate() error {
	_, err := c.load()
	return err
}

func (c *Config) load() (*inputs, error) {
	if err := c.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	in := &inputs{}
	seedData := deploy.DemoCluster
	if c.ClusterFile != "" {
		var err error
		if seedData, err = os.ReadFile(c.ClusterFile); err != nil {
			return nil, fmt.Errorf("--cluster-file: %w", err)
		}
	}
	var err error
	if in.seed, err = cluster.ParseFile(seedData); err != nil {
		return nil, fmt.Errorf("--cluster-file %s: %w", c.ClusterFile, err)
	}
	if c.ClustersFile != "" {
		if in.clusters, err = clusters.Load(c.ClustersFile); err != nil {
			return nil, err
		}
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
		in.cert = &cert
	}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		in.clientCAs = x509.NewCertPool()
		if !in.clientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--client-ca: no PEM certificate in %s", c.ClientCA)
		}
	}
	if c.ClusterDomainSecretFile != "" {
		if _, err := impexp.ReadSecret(c.ClusterDomainSecretFile); err != nil {
			return nil, fmt.Errorf("--cluster-domain-secret-file: %w", err)
		}
	}
	return in, nil
}

// checkListen checks a listen address's form (host:port, the host may be
// empty); whether it can be bound is known when it is.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return fmt.Errorf("address %q: bad port", addr)
	}
	return nil
}

// New opens the store (seeding it from the cluster file on first start)
// and builds the servers. It checks the config and the files it names
// (Validate) before it writes anything.
func New(ctx context.Context, cfg Config) (_ *App, err error) {
	in, err := cfg.load()
	if err != nil {
		return nil, err
	}
	cfg.Logger = telemetry.Logger(cfg.Logger) // trace and span ids in the logs
	log := cfg.Logger
	seed := in.seed
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
	// The first write.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	a.healthSrv = health.NewServer()
	var be backend.Backend
	if in.clusters != nil {
		if be, err = a.openClusters(ctx, cfg, in.clusters, seed); err != nil {
			return nil, err
		}
	} else if len(cfg.Upstream.URLs) > 0 {
		if be, err = a.openUpstream(); err != nil {
			return nil, err
		}
	} else if be, err = a.openSim(ctx, cfg, seed); err != nil {
		return nil, err
	}
	// Three quarters of the query memory for answers, one for requests
	// being decoded.
	budget := membudget.NewMemoryBudget(cfg.QueryMemory-cfg.QueryMemory/4, 0)
	requestBudget := membudget.NewMemoryBudget(cfg.QueryMemory/4, 0)
	services, err := service.New(service.Config{Backend: be, Logger: log, MaxTestDelay: cfg.MaxTestDelay, Limits: service.Limits{
		MaxQueryFields:      cfg.MaxQueryFields,
		MaxQueryResultBytes: cfg.MaxQueryResultBytes,
		Budget:              budget,
	}, MaxWatchAge: max(cfg.MaxWatchAge, 0)})
	if err != nil {
		return nil, err
	}
	a.services = services
	if err := a.openUsers(); err != nil {
		return nil, err
	}
	writeRate := rate.Limit(max(cfg.WriteRate, 0)) // 0: no limit
	authz, err := gateway.NewAuthorizer(gateway.AuthConfig{
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
	authzUnary := authz.UnaryInterceptor()
	if a.replica != nil { // replicas authenticate with their shared secret
		authzUnary = skipReplicaAuth(authzUnary)
	}
	// The cluster of each call (several clusters) is known before the
	// authorizer, which applies the user's options scoped to it.
	clusterSel := a.gatewayClusters()
	unary := []grpc.UnaryServerInterceptor{gateway.ErrorUnaryInterceptor(log),
		gateway.ClusterUnaryInterceptor(clusterSel, gateway.IsInProcess), authzUnary, gateway.IdempotencyUnaryInterceptor()}
	limits := &gateway.Limits{
		BodyBytes:        cfg.MaxBodyBytes,
		QueryBodyBytes:   cfg.MaxQueryBodyBytes,
		ReadMessageBytes: int64(cfg.MaxHeaderBytes),
	}
	// The listener's limits: SamePortWith applies them to the requests of
	// HTTP connections, the native interceptors to the calls of gRPC
	// connections (gateway.Split), which grpc-go's transport serves.
	samePort := gateway.SamePortConfig{
		Limits:         limits,
		ReadTimeout:    cfg.ReadTimeout,
		Budget:         budget,
		RequestBudget:  requestBudget,
		Admit:          authz.AdmitConnectionRequest,
		TrustedProxies: cfg.TrustedProxies,
	}
	a.grpcServer = grpc.NewServer(append(telemetry.ServerOptions(a.tel, gateway.IsInProcess, a.clusterOfCall()),
		// External messages are bounded per method by the listener
		// (gateway.Limits); this bounds the gateway's in-process calls,
		// whose messages come from legacy bodies of up to MaxBodyBytes.
		grpc.MaxRecvMsgSize(int(2*cfg.MaxBodyBytes)),
		gateway.ServerCodec(),
		grpc.Creds(gateway.SplitCredentials()),
		grpc.InTapHandle(gateway.NativeTapHandle(samePort)),
		// The HTTP server's HTTP/2 limits, for the gRPC connections.
		grpc.MaxConcurrentStreams(uint32(cfg.MaxStreamsPerConn)),
		grpc.MaxHeaderListSize(uint32(cfg.MaxHeaderBytes)),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.IdleTimeout,
			Time: keepaliveTime(cfg.Keepalive), Timeout: gateway.DefaultPingTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{gateway.NativeUnaryInterceptor(samePort)}, unary...)...),
		grpc.ChainStreamInterceptor(gateway.NativeStreamInterceptor(samePort), gateway.ErrorStreamInterceptor(log),
			gateway.ClusterStreamInterceptor(clusterSel, gateway.IsInProcess), authz.StreamInterceptor(), services.StreamInterceptor()),
	)...)
	// The legacy surface calls the services in process without the gRPC
	// codec (gateway.Direct), through the same interceptors and stats
	// handlers; streams take the in-process connection.
	direct := gateway.NewDirect(gateway.DirectConfig{
		Unary:       unary,
		ServerStats: telemetry.ServerStatsHandler(a.tel, gateway.IsInProcess),
		ClientStats: telemetry.ClientStatsHandler(a.tel),
	})
	if err := gateway.RegisterServices(direct.Registrar(a.grpcServer), services.Implementation); err != nil {
		return nil, err
	}
	gatewayv1.RegisterClusterDirectoryServiceServer(a.grpcServer, a.directory())
	healthpb.RegisterHealthServer(a.grpcServer, a.healthSrv)
	if a.replica != nil {
		forward.Register(a.grpcServer, a.replica.handler())
	}
	if a.healthMetric, err = telemetry.ObserveHealth(a.tel.Meter(), a.healthSrv); err != nil {
		return nil, err
	}
	reflection.Register(a.grpcServer)
	// Every service has a health status (SERVING, NOT_SERVING once
	// Shutdown begins or the job queue stops), not only the server's "".
	for name := range a.grpcServer.GetServiceInfo() {
		a.healthSrv.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}

	if a.conn, err = gateway.InProcess(a.grpcServer, telemetry.DialOptions(a.tel)...); err != nil {
		return nil, err
	}
	direct.SetFallback(a.conn)
	var legacyConn grpc.ClientConnInterface = direct
	if cfg.InProcessCodec {
		legacyConn = a.conn
	}
	if a.legacy, err = gateway.NewLegacy(ctx, gateway.Config{
		Conn:          legacyConn,
		MaxBodyBytes:  cfg.MaxBodyBytes,
		Limits:        limits,
		Budget:        budget,
		RequestBudget: requestBudget,
		ReadTimeout:   cfg.ReadTimeout,
		Authorize:     authz.Preflight,
		Clusters:      clusterSel,
		Logger:        log,
	}); err != nil {
		return nil, err
	}
	if !cfg.Insecure {
		if a.tls, err = a.loadTLS(in); err != nil {
			return nil, err
		}
	}
	legacy := telemetry.HTTPHandler(a.tel, a.legacy.Handler())
	adminCfg := telemetry.AdminConfig{Metrics: a.tel.Metrics, Health: a.health,
		LeaderHealth: a.leaderHealth, Backup: http.HandlerFunc(a.serveBackup)}
	if a.multi != nil {
		adminCfg.Clusters = a.healthOfClusters
	}
	a.admin = telemetry.NewAdminServer(adminCfg)
	a.http = gateway.NewHTTPServer(gateway.SamePortWith(a.grpcServer, legacy, samePort), a.tls, gateway.Timeouts{
		ReadHeader:           cfg.ReadHeaderTimeout,
		Idle:                 cfg.IdleTimeout,
		MaxHeaderBytes:       cfg.MaxHeaderBytes,
		MaxConcurrentStreams: cfg.MaxStreamsPerConn,
		Keepalive:            max(cfg.Keepalive, 0),
	})
	// Once Shutdown has closed the listener: end the long polls (the
	// HTTP/2 connections get their GOAWAY at the same time).
	a.http.RegisterOnShutdown(services.Drain)
	if a.upstream != nil { // the App is complete: health reports may come
		a.upstream.StartHealth(ctx, a.upstreamHealth)
	}
	if a.replica != nil {
		go a.replica.watchLease(a.replica.runCtx)
	}
	if a.multi != nil {
		a.startClusters(ctx)
	}
	return a, nil
}

// openSim opens the store and the simulated cluster behind the backend.
func (a *App) openSim(ctx context.Context, cfg Config, seed *cluster.File) (backend.Backend, error) {
	log := cfg.Logger
	secret := domainSecretPath(cfg)
	jc := jobs.Config{
		Logger: log, EncodeOp: service.LegacyOpValue, Executors: executors(cfg, log, secret),
		Workers: cfg.JobWorkers, ArchiveAfter: cfg.JobArchiveAfter, ArchiveRetention: archiveRetention(cfg.JobArchiveRetention),
		QueueSize: cfg.JobQueueSize, MaxOpsPerJob: cfg.MaxOpcodesPerJob,
		IdempotencyTTL: cfg.IdempotencyKeyTTL,
		TracerProvider: a.tel.TracerProvider, MeterProvider: a.tel.MeterProvider,
		// The store refused a commit: the job queue stopped (fail-stop).
		// Every service reports NOT_SERVING until a restart.
		OnFailure: func(error) { a.healthSrv.Shutdown() },
	}
	if cfg.Store == StoreEtcd {
		if err := ensureDomainSecret(cfg, secret, log); err != nil {
			return nil, err
		}
		return a.openReplica(ctx, seed, jc)
	}
	model, err := a.openState(ctx, seed, jc)
	if err != nil {
		return nil, err
	}
	// Files of the first start are created once the store is accepted.
	if err := ensureDomainSecret(cfg, secret, log); err != nil {
		return nil, err
	}
	a.jobs.Start()
	return sim.New(model, a.jobs), nil
}

// archiveRetention is the jobs.Config.ArchiveRetention of
// Config.JobArchiveRetention: 0 keeps archived jobs forever, as a negative
// value does (for the engine, 0 is its default).
func archiveRetention(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// upstreamHealth sets every gRPC service's health from the upstream's
// reachability (unless draining).
func (a *App) upstreamHealth(err error) {
	if a.draining.Load() || a.grpcServer == nil {
		return
	}
	st := healthpb.HealthCheckResponse_SERVING
	if err != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	a.healthSrv.SetServingStatus("", st)
	for name := range a.grpcServer.GetServiceInfo() {
		a.healthSrv.SetServingStatus(name, st)
	}
}

// PrometheusMetrics reports whether the admin listener serves /metrics
// (--metrics-prometheus or OTEL_METRICS_EXPORTER=prometheus).
func (a *App) PrometheusMetrics() bool {
	return a.tel.Metrics != nil
}

// health is the admin listener's health check: the store answers and the
// job queue has not stopped on a refused commit.
func (a *App) health(ctx context.Context) error {
	if a.draining.Load() {
		return errors.New("shutting down")
	}
	if a.upstream != nil {
		return a.upstream.Health()
	}
	if a.multi != nil { // healthy while one cluster is
		var err error
		for _, c := range a.healthOfClusters(ctx) {
			if err = c.Err; err == nil {
				return nil
			}
		}
		return err
	}
	if a.replica != nil {
		return a.replica.health(ctx, false)
	}
	if err := a.jobs.Err(); err != nil {
		return err
	}
	return a.store.View(ctx, func(store.Tx) error { return nil })
}

// leaderHealth is /healthz?role=leader: healthy and the replica that runs
// the job queue (always the one server but with Store "etcd").
func (a *App) leaderHealth(ctx context.Context) error {
	if a.replica != nil && !a.draining.Load() {
		return a.replica.health(ctx, true)
	}
	return a.health(ctx)
}

// InitialPasswordFile is the file, in the data dir, that receives the
// password of the user the first start creates (mode 0600). The password
// appears nowhere else: not on stderr, which is the log under systemd and
// Kubernetes.
const InitialPasswordFile = "rapi/initial-admin-password"

// BackupTimeout bounds how long GET /backup may take to send the store:
// its read transaction makes a commit that must grow the file wait.
const BackupTimeout = 5 * time.Minute

// serveBackup streams a consistent copy of the store (one bbolt read
// transaction: writers go on), with its exact Content-Length so that a
// client can tell a complete copy from a cut one.
func (a *App) serveBackup(w http.ResponseWriter, r *http.Request) {
	if a.bolt == nil {
		if a.upstream != nil || (a.multi != nil && a.multi.sim == "") {
			http.Error(w, "no store: the gateway fronts an upstream cluster", http.StatusNotFound)
			return
		}
		http.Error(w, "the store is etcd: back it up with etcdctl snapshot save", http.StatusNotImplemented)
		return
	}
	sn, err := a.bolt.Snapshot()
	if err != nil {
		a.cfg.Logger.Error("backup: cannot begin a snapshot", "err", err.Error())
		http.Error(w, "cannot read the store", http.StatusServiceUnavailable)
		return
	}
	defer sn.Close()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(BackupTimeout))
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+boltstore.FileName+`"`)
	h.Set("Content-Length", strconv.FormatInt(sn.Size(), 10))
	start := time.Now()
	n, err := sn.WriteTo(w)
	if err != nil {
		a.cfg.Logger.Warn("backup: not sent whole", "bytes", n, "size", sn.Size(), "err", err.Error())
		return
	}
	a.cfg.Logger.Info("backup sent", "bytes", n, "ms", time.Since(start).Milliseconds(), "peer", r.RemoteAddr)
}

// openUsers creates the users file on first start, loads it and starts
// watching it.
func (a *App) openUsers() error {
	if err := createInitialUsers(a.cfg); err != nil {
		return err
	}
	a.users = auth.NewStore(a.cfg.UsersFile, a.cfg.Logger)
	a.users.Start()
	return nil
}

// createInitialUsers creates the users file with one "write" user when
// there is none, writing the user's password to InitialPasswordFile
// first: the users file never exists with a password nobody was given.
func createInitialUsers(cfg Config) error {
	if _, err := os.Lstat(cfg.UsersFile); err == nil {
		return nil
	}
	password := rand.Text() // 26 base32 characters, 130 bits
	pwFile := filepath.Join(cfg.DataDir, InitialPasswordFile)
	if err := writeNewSecret(pwFile, password+"\n", cfg.Logger); err != nil {
		return fmt.Errorf("initial admin password: %w", err)
	}
	created, err := auth.CreateInitial(cfg.UsersFile, auth.DefaultAdmin, password)
	if err != nil || !created {
		_ = os.Remove(pwFile)
		if err != nil {
			return fmt.Errorf("users file: %w", err)
		}
		return nil
	}
	cfg.Logger.Info("created the users file with one user; its password is in the password file (mode 0600): read it, then delete the file",
		"users_file", cfg.UsersFile, "user", auth.DefaultAdmin, "option", auth.OptionWrite, "password_file", pwFile)
	return nil
}

// writeNewSecret creates path (mode 0600, its directory 0700 if created)
// holding content, refusing to follow or reuse an existing file: one left
// by an earlier first start whose users file is gone names a password
// nothing accepts any more, and is removed first.
func writeNewSecret(path, content string, log *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		log.Warn("removing a password file of an earlier first start: its users file is gone", "path", path)
		if err := os.Remove(path); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

func (a *App) loadTLS(in *inputs) (*tls.Config, error) {
	var cert tls.Certificate
	if in.cert != nil {
		cert = *in.cert
	} else {
		host, _ := os.Hostname()
		var err error
		if cert, err = selfsigned.LoadOrCreate(a.cfg.DataDir, []string{host}); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	a.Fingerprint = selfsigned.Fingerprint(cert)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if in.clientCAs != nil {
		cfg.ClientCAs = in.clientCAs
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
	// One port: gRPC connections to grpc-go's transport, the others to
	// the HTTP server (gateway.Split does the TLS handshake).
	grpcLis, httpLis := gateway.Split(lis, a.tls, a.cfg.ReadHeaderTimeout)
	go func() { _ = a.grpcServer.Serve(grpcLis) }()
	err := a.http.Serve(httpLis)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// keepaliveTime is grpc-go's keepalive time for Config.Keepalive
// (negative: never).
func keepaliveTime(d time.Duration) time.Duration {
	if d < 0 {
		return time.Duration(math.MaxInt64)
	}
	return d
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

// ShutdownTimeout is Config.ShutdownTimeout with its default: the bound
// the command gives Shutdown.
func (a *App) ShutdownTimeout() time.Duration { return a.cfg.ShutdownTimeout }

// Shutdown drains the server, in order: every health status (gRPC health
// and the admin /healthz) turns NOT_SERVING; requests are still served for
// DrainDelay, so that load balancers stop sending new ones; the listener
// closes (new connections are refused) and every HTTP/2 connection gets a
// GOAWAY (new streams on it are refused); the long polls end at once (see
// service.Services.Drain: job waits answer "not changed", WatchJob streams
// end with a resumable UNAVAILABLE); the requests in flight finish; the
// job queue stops (running opcodes finish, queued jobs stay queued in the
// store). When ctx ends first, everything is closed at once.
func (a *App) Shutdown(ctx context.Context) error {
	start := time.Now()
	a.draining.Store(true)
	a.healthSrv.Shutdown()
	if a.replica != nil {
		a.replica.drain(ctx)
	}
	log := a.cfg.Logger
	log.Info("draining: health checks answer NOT_SERVING", "drain_delay", a.cfg.DrainDelay.String())
	if a.cfg.DrainDelay > 0 {
		t := time.NewTimer(a.cfg.DrainDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	log.Info("draining: closing the listener, sending GOAWAY, ending the long polls; waiting for the requests in flight")
	// The gRPC connections get their GOAWAY and their calls finish as the
	// HTTP server's do.
	grpcDone := make(chan struct{})
	go func() { a.grpcServer.GracefulStop(); close(grpcDone) }()
	err := a.http.Shutdown(ctx)
	select {
	case <-grpcDone:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	log.Info("draining: requests done; stopping the job queue", "err", err, "elapsed", time.Since(start).String())
	if a.jobs != nil {
		// Running opcodes finish (or ctx ends); queued jobs stay queued
		// in the store and run after the next start.
		if jerr := a.jobs.Stop(ctx); err == nil {
			err = jerr
		}
	}
	if a.replica != nil {
		if jerr := a.replica.stop(ctx); err == nil {
			err = jerr
		}
		a.replica.resign(ctx)
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
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.New("the shutdown timeout passed: what was still open was closed (opcodes cut while running end in error at the next start)")
	}
	log.Info("shut down", "err", err, "elapsed", time.Since(start).String())
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
	if a.upstream != nil {
		a.upstream.Close()
	}
	if a.multi != nil {
		for _, up := range a.multi.upstreams {
			up.Close()
		}
	}
	if a.replica != nil {
		_ = a.replica.stop(cancelled())
	}
	if a.closeEtcd != nil {
		a.closeEtcd()
	} else if a.store != nil {
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
