// Command ganeti-gateway serves the Ganeti remote API (RAPI 2) and its typed
// gRPC API on one port, on an embedded simulated cluster by default.
//
//	ganeti-gateway [flags]                  serve
//	ganeti-gateway version                  print the version (also --version)
//	ganeti-gateway users add|passwd NAME    edit the RAPI users file
//	ganeti-gateway backup -o FILE           copy the store
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// ExitStoreRefused is the exit status when the store is refused (missing,
// empty or damaged in a data dir used before): a supervisor should not
// restart the server (systemd: RestartPreventExitStatus=3) until an
// operator restores the store or starts once with --reinit.
const ExitStoreRefused = 3

// ExitUsage is the exit status of a command line or configuration that
// is refused before anything runs.
const ExitUsage = 2

func main() {
	os.Exit(run(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}

// stdio are the command's standard streams.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// usageError is a command line or configuration refused before anything
// runs: exit status ExitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// run runs the command line args and returns the exit status.
func run(args []string, std stdio) int {
	err := dispatch(args, std)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(std.err, "ganeti-gateway: %v\nRun 'ganeti-gateway --help' for usage.\n", err)
		return ExitUsage
	}
	fmt.Fprintln(std.err, "ganeti-gateway:", err)
	if errors.Is(err, server.ErrStoreRefused) {
		return ExitStoreRefused
	}
	return 1
}

// dispatch runs a subcommand, or serves.
func dispatch(args []string, std stdio) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--version" || a == "-version" {
			return versionCommand(nil, std)
		}
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return serve(args, std)
	}
	switch args[0] {
	case "version":
		return versionCommand(args[1:], std)
	case "users":
		return usersCommand(args[1:], std)
	case "backup":
		return backupCommand(args[1:], std)
	case "healthcheck":
		return healthcheck(args[1:])
	case "help":
		return serve([]string{"--help"}, std)
	}
	return usageErrorf("unknown command %q (commands: version, users, backup, healthcheck; flags start with --)", args[0])
}

// parseFlags parses args into fs, printing fs's usage on stdout for
// --help (flag.ErrHelp); any other error is a usageError.
func parseFlags(fs *flag.FlagSet, args []string, std stdio) error {
	usage := fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(std.out)
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err != nil {
		return &usageError{err}
	}
	return nil
}

// envPrefix prefixes the environment variable of every flag: --data-dir is
// GANETI_GATEWAY_DATA_DIR. A flag given on the command line wins.
const envPrefix = "GANETI_GATEWAY_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// serve runs the server until SIGINT or SIGTERM.
func serve(args []string, std stdio) error {
	var cfg server.Config
	var logLevel string
	fs := flag.NewFlagSet("ganeti-gateway", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", server.DefaultListen, "address of the one listener (gRPC and RAPI JSON)")
	fs.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "directory of the store, the generated certificate and the users file")
	fs.StringVar(&cfg.ClusterFile, "cluster-file", "", "cluster file that seeds the store on first start (default: the embedded demo cluster)")
	fs.BoolVar(&cfg.Reinit, "reinit", false, "begin a new cluster (from --cluster-file) when the store is refused: missing or empty in a data dir used before, or damaged; the refused file is kept as state.db.reinit-<time>; a healthy store is never touched")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "serve plain HTTP/1.1 and h2c instead of TLS (local use only)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (default: a self-signed certificate kept in the data dir)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file")
	fs.StringVar(&cfg.UsersFile, "users-file", "", "Ganeti RAPI users file (default: <data-dir>/rapi/users; created on first start)")
	fs.BoolVar(&cfg.AllowAnonymousReads, "allow-anonymous-reads", false, "let requests without credentials call methods that need no user option (Ganeti's default without --require-authentication)")
	fs.StringVar(&cfg.ClientCA, "client-ca", "", "require TLS client certificates verified against this CA bundle (PEM); a certificate's CN is the user")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 0, "largest accepted request body, and gRPC message of a write (default 4 MiB)")
	fs.Int64Var(&cfg.MaxQueryBodyBytes, "max-query-body-bytes", server.DefaultMaxQueryBodyBytes, "largest PUT /2/query body and QueryService message")
	fs.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", server.DefaultMaxHeaderBytes, "largest request headers (with the request line: a GET's query string), and gRPC message of a read")
	fs.IntVar(&cfg.MaxQueryFields, "max-query-fields", server.DefaultMaxQueryFields, "most fields one query or job wait may name")
	fs.Int64Var(&cfg.MaxQueryResultBytes, "max-query-result-bytes", server.DefaultMaxQueryResultBytes, "largest query result (its JSON size, estimated before it is built)")
	fs.Int64Var(&cfg.QueryMemory, "query-memory", server.DefaultQueryMemory, "memory the query results being built and sent at once may take (estimated); beyond, queries wait, then 429; -1 for no limit")
	fs.IntVar(&cfg.MaxStreamsPerConn, "max-streams-per-conn", server.DefaultMaxStreamsPerConn, "concurrent requests (gRPC calls) of one HTTP/2 connection")
	fs.IntVar(&cfg.MaxAnonymousPerPeer, "max-anonymous-per-peer", server.DefaultMaxAnonymousPerPeer, "concurrent requests and streams without valid credentials (health checks, reflection, anonymous reads) from one client address (an IPv6 /64); -1 for no limit")
	fs.IntVar(&cfg.MaxAnonymous, "max-anonymous", server.DefaultMaxAnonymous, "concurrent requests and streams without valid credentials from all addresses; -1 for no limit")
	fs.Var(&cfg.TrustedProxies, "trusted-proxies", "comma-separated addresses and CIDR prefixes of reverse proxies whose Forwarded (else X-Forwarded-For) header names the client (the right-most hop not itself a trusted proxy) in the access and audit logs and the per-peer limits; default none: the headers are ignored")
	fs.DurationVar(&cfg.Keepalive, "keepalive", server.DefaultKeepalive, "silence after which the server pings an HTTP/2 connection (one that does not answer in 20s is closed); -1s: never")
	fs.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", server.DefaultReadHeaderTimeout, "time allowed to read request headers")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", server.DefaultReadTimeout, "time allowed to read a request body")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", server.DefaultIdleTimeout, "keep-alive idle timeout")
	fs.Var((*rateFlag)(&cfg.WriteRate), "write-rate", "writes each user may make, as N/s, N/m or N/h, or off (Ganeti has no such limit; beyond it, writes get 429)")
	fs.IntVar(&cfg.WriteBurst, "write-burst", server.DefaultWriteBurst, "writes a user may make at once before --write-rate applies (with a --write-rate)")
	fs.IntVar(&cfg.JobWorkers, "job-workers", 4, "jobs that run at once (conflicting jobs still wait for each other's locks)")
	fs.DurationVar(&cfg.JobArchiveAfter, "job-archive-after", server.DefaultJobArchiveAfter, "age after which finished jobs are archived (readable by id, no longer listed); negative: never")
	fs.DurationVar(&cfg.JobArchiveRetention, "job-archive-retention", server.DefaultJobArchiveRetention, "how long an archived job is kept after it ended; then it is removed and answered as an unknown job (Ganeti's ganeti-cleaner keeps 21 days); 0: keep them forever")
	fs.IntVar(&cfg.JobQueueSize, "job-queue-size", server.DefaultJobQueueSize, "jobs the queue holds (not archived) before submissions are refused with 503 \"Job queue is full, needs archiving\" (Ganeti's JOB_QUEUE_SIZE_HARD_LIMIT); from 80% on, finished jobs are archived early; -1 for no limit")
	fs.DurationVar(&cfg.IdempotencyKeyTTL, "idempotency-key-ttl", server.DefaultIdempotencyKeyTTL, "how long the Idempotency-Key of a write (idempotency-key metadata over gRPC) is kept: a retry within it gets the first job's id")
	fs.IntVar(&cfg.MaxOpcodesPerJob, "max-opcodes-per-job", server.DefaultMaxOpcodesPerJob, "opcodes one job may have (400 beyond)")
	fs.DurationVar(&cfg.MaxTestDelay, "max-test-delay", server.DefaultMaxTestDelay, "longest an OP_TEST_DELAY may sleep in all (duration × repeat); only users with the admin option may submit one")
	fs.IntVar(&cfg.MaxWaiters, "max-waiters", server.DefaultMaxWaiters, "concurrent job waits (GET /2/jobs/{id}/wait, WaitJobChange); -1 for no limit")
	fs.IntVar(&cfg.MaxWatchers, "max-watchers", server.DefaultMaxWatchers, "concurrent WatchJob streams (a budget of their own, apart from --max-waiters); -1 for no limit")
	fs.IntVar(&cfg.MaxWatchersPerUser, "max-watchers-per-user", server.DefaultMaxWatchersPerUser, "concurrent WatchJob streams of one user; -1 for no limit")
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", 0, "on SIGTERM, how long to keep serving after the health checks turned NOT_SERVING, before the listener closes (behind a load balancer or in Kubernetes: a few seconds, e.g. 5s)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "on SIGTERM, the longest the drain may take (--drain-delay included); then everything still open is closed (keep it below systemd's TimeoutStopSec and Kubernetes' terminationGracePeriodSeconds)")
	fs.DurationVar(&cfg.MaxWatchAge, "max-watch-age", server.DefaultMaxWatchAge, "age (less up to 10% at random) at which a WatchJob stream ends with a resumable UNAVAILABLE, so that clients rebalance; -1s: no limit")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.ClusterDomainSecretFile, "cluster-domain-secret-file", "", "Ganeti's cluster domain secret file; clusters sharing it trust each other for move-instance (default: <data-dir>/cluster-domain-secret, created on first start)")
	fs.StringVar(&cfg.RemoteImportAddress, "remote-import-address", "127.0.0.1", "address remote imports (move-instance) listen on and announce to the exporting cluster")
	fs.DurationVar(&cfg.RemoteConnectTimeout, "remote-connect-timeout", 180*time.Second, "how long a remote export tries to connect and a remote import waits for it (Ganeti's RIE_CONNECT_TIMEOUT)")
	fs.StringVar(&cfg.AdminListen, "admin-listen", "", "address of the admin listener (/healthz, /debug/pprof/, /metrics); a bare port binds loopback only; empty: none")
	fs.StringVar(&cfg.Store, "store", server.StoreBolt, "where the cluster and the job queue are kept: bolt (a file in --data-dir) or etcd (--etcd-endpoints; replicas sharing it elect the one that runs the job queue)")
	fs.Func("etcd-endpoints", "with --store etcd: the client URLs of the etcd members, comma-separated", func(v string) error {
		cfg.Etcd.Endpoints = nil
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				cfg.Etcd.Endpoints = append(cfg.Etcd.Endpoints, e)
			}
		}
		return nil
	})
	fs.StringVar(&cfg.Etcd.CA, "etcd-ca", "", "CA bundle (PEM) that signed the etcd members' certificates (https endpoints; default: the system's)")
	fs.StringVar(&cfg.Etcd.Cert, "etcd-cert", "", "client certificate (PEM) for etcd's --client-cert-auth, with --etcd-key")
	fs.StringVar(&cfg.Etcd.Key, "etcd-key", "", "key (PEM) of --etcd-cert")
	fs.StringVar(&cfg.Etcd.User, "etcd-user", "", "etcd user (etcd --auth), with --etcd-password-file")
	fs.StringVar(&cfg.Etcd.PasswordFile, "etcd-password-file", "", "file holding the password of --etcd-user")
	fs.StringVar(&cfg.Etcd.Prefix, "etcd-prefix", server.DefaultEtcdPrefix, "prefix of the keys in etcd; the replicas of one cluster share it")
	fs.IntVar(&cfg.Etcd.LeaseTTL, "etcd-lease-ttl", server.DefaultEtcdLeaseTTL, "the leader's lease in seconds: a leader cut off from etcd for this long loses the leadership and another replica takes over")
	fs.DurationVar(&cfg.Etcd.CompactionInterval, "etcd-compaction-interval", server.DefaultEtcdCompactionInterval, "with --store etcd: how often the leader compacts etcd's history, to the revision of the previous interval (as the Kubernetes apiserver); 0: never (when etcd runs with --auto-compaction-retention)")
	fs.StringVar(&cfg.Etcd.Name, "etcd-name", "", "this replica's name in the election (default: the host name)")
	fs.StringVar(&cfg.Etcd.Advertise, "etcd-advertise", "", "with --store etcd: the host:port other replicas reach this one's listener at, to forward their writes while it leads (default: --listen, with the host name when it binds every interface)")
	fs.StringVar(&cfg.Etcd.ReplicaCA, "replica-ca", "", "with --store etcd and TLS: CA bundle (PEM) that verifies the leader's certificate when a replica forwards a write (default: the replicas share --tls-cert)")
	fs.BoolVar(&cfg.MetricsPrometheus, "metrics-prometheus", false, "serve the metrics in Prometheus format on the admin listener's /metrics")
	fs.Func("upstream", "front a real Ganeti cluster: its RAPI base URL(s), comma-separated, one per master candidate (https://cluster.example.com:5080), or luxid's socket on the master node (unix:///var/run/ganeti/socket/ganeti-query); default: the simulated cluster", func(v string) error {
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				cfg.Upstream.URLs = append(cfg.Upstream.URLs, u)
			}
		}
		return nil
	})
	fs.StringVar(&cfg.Upstream.User, "upstream-user", "", "the upstream cluster's RAPI user the gateway acts as (needs the write option for writes and job waits)")
	fs.StringVar(&cfg.Upstream.PasswordFile, "upstream-password-file", "", "file whose first line is --upstream-user's password")
	fs.StringVar(&cfg.Upstream.CAFile, "upstream-ca", "", "CA bundle (PEM) that verifies the upstream's certificate (Ganeti's self-signed rapi.pem); default: the system's roots")
	fs.BoolVar(&cfg.Upstream.Insecure, "upstream-insecure", false, "do not verify the upstream's TLS certificate (testing only)")
	fs.DurationVar(&cfg.Upstream.CacheTTL, "upstream-cache-ttl", 0, "cache upstream reads this long (dropped whenever the gateway sees a job end); 0: off")
	fs.DurationVar(&cfg.Upstream.Timeout, "upstream-timeout", 8*time.Second, "longest one upstream call may take (a job wait: Ganeti's 10 s more)")
	fs.IntVar(&cfg.Upstream.MaxConcurrent, "upstream-max-concurrent", 16, "upstream calls in flight at most; as many job waits (each may hold a call for Ganeti's 10 s) are capped apart")
	fs.DurationVar(&cfg.Upstream.HealthInterval, "upstream-health-interval", 5*time.Second, "how often the upstream master is checked (and found again after a master failover)")
	fs.StringVar(&cfg.ClustersFile, "clusters", "", "front several clusters: a YAML (or JSON) file listing them (name, upstream: URLs, a unix:// socket or sim, ca, user, password_file, hosts, default; see docs/clusters.md); a request picks its cluster by Host header or TLS server name, a gRPC call by its ganeti-cluster metadata; the --upstream-* settings but the addresses and credentials apply to each; excludes --upstream")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ganeti-gateway [flags]\n"+
			"       ganeti-gateway version             print the version, commit and build date (also --version)\n"+
			"       ganeti-gateway users add NAME [--read] [--write] [--admin]\n"+
			"       ganeti-gateway users passwd NAME   add a RAPI user, or set a password (read from the terminal or stdin)\n"+
			"       ganeti-gateway backup -o FILE [--admin ADDR | --data-dir DIR]\n"+
			"                                          copy the store: from the running server's admin listener, or the stopped server's data dir\n"+
			"       ganeti-gateway healthcheck [--admin-listen ADDR]\n"+
			"                                          exit 0 when the admin listener's /healthz answers 200 (a container's health check)\n"+
			"Run 'ganeti-gateway users --help' or 'ganeti-gateway backup --help' for their flags.\n\n"+
			"Every flag can also be set with an environment variable, e.g. --data-dir as %s.\n"+
			"Tracing and metrics follow the OTEL_* variables (OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER: otlp, console or none; see docs/observability.md).\n\n", envName("data-dir"))
		fs.PrintDefaults()
	}
	if err := applyEnv(fs); err != nil {
		return &usageError{err}
	}
	if err := parseFlags(fs, args, std); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return usageErrorf("--log-level: %w", err)
	}
	// Checked before anything is written or bound.
	if err := cfg.Validate(); err != nil {
		return &usageError{err}
	}
	log := slog.New(slog.NewJSONHandler(std.err, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Bound before the data dir is written: an address in use fails the
	// first start before it creates anything.
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	var adminLis net.Listener
	if cfg.AdminListen != "" {
		if adminLis, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			_ = lis.Close()
			return err
		}
	}
	a, err := server.New(ctx, cfg)
	if err != nil {
		_ = lis.Close()
		if adminLis != nil {
			_ = adminLis.Close()
		}
		return err
	}
	build := server.Build()
	attrs := []any{"addr", lis.Addr().String(), "tls", !cfg.Insecure, "version", build.Version, "commit", build.Commit}
	if a.Fingerprint != "" {
		attrs = append(attrs, "tls_sha256_fingerprint", a.Fingerprint)
	}
	if len(cfg.TrustedProxies) > 0 {
		attrs = append(attrs, "trusted_proxies", cfg.TrustedProxies.String())
	}
	log.Info("ganeti-gateway listening", attrs...)
	errc := make(chan error, 2)
	go func() { errc <- a.Serve(lis) }()
	if adminLis != nil {
		log.Info("admin listener", "addr", adminLis.Addr().String(), "metrics", a.PrometheusMetrics())
		go func() { errc <- a.ServeAdmin(adminLis) }()
	}
	select {
	case err := <-errc:
		a.Close()
		return err
	case err := <-a.Lost():
		a.Close()
		return err
	case <-ctx.Done():
	}
	stop() // a second signal ends the process at once
	log.Info("shutting down", "shutdown_timeout", a.ShutdownTimeout().String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.ShutdownTimeout())
	defer cancel()
	return a.Shutdown(shutdownCtx)
}

// applyEnv sets each flag from its environment variable; command-line
// flags, parsed afterwards, override them.
func applyEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok || err != nil {
			return
		}
		if bf, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool && bf.IsBoolFlag() {
			if _, perr := strconv.ParseBool(v); perr != nil {
				err = fmt.Errorf("%s: %q is not a boolean", envName(f.Name), v)
				return
			}
		}
		if serr := f.Value.Set(v); serr != nil {
			err = fmt.Errorf("%s: %v", envName(f.Name), serr)
		}
	})
	return err
}

// rateFlag is a rate per second written as N/s, N/m, N/h or N (per
// second); "off" (a negative rate) means no limit.
type rateFlag float64

func (r *rateFlag) String() string {
	if r == nil || *r <= 0 {
		return "off"
	}
	return strconv.FormatFloat(float64(*r), 'f', -1, 64) + "/s"
}

func (r *rateFlag) Set(s string) error {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") || strings.EqualFold(s, "unlimited") {
		*r = -1
		return nil
	}
	num, unit, _ := strings.Cut(s, "/")
	per := map[string]float64{"": 1, "s": 1, "m": 60, "h": 3600}[strings.ToLower(unit)]
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || per == 0 || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return fmt.Errorf("%q is not a rate such as 20/s, 100/m or off", s)
	}
	*r = rateFlag(n / per)
	return nil
}
