package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/upstream/luxi"
	"github.com/ganeti-gateway/ganeti-gateway/internal/upstream/rapi"
)

// upstreamBackend is a real cluster behind the backend interface, with its
// health (the admin listener's /healthz and the gRPC health service follow
// it) and its connections to close.
type upstreamBackend interface {
	backend.Backend
	Health() error
	// StartHealth starts the health checks, which report each outcome
	// (the RAPI backend reports through its own Config.OnHealth).
	StartHealth(ctx context.Context, report func(error))
	Close()
}

// Upstream transports, by the scheme of the --upstream addresses.
const (
	transportRAPI = "rapi" // https://host:5080, one per master candidate
	transportLUXI = "luxi" // unix:///path/to/luxid's socket, on the master node
)

// upstreamTransport is the transport of the --upstream addresses: RAPI for
// http(s) URLs (several: the master candidates), luxi for one unix:// URL
// (then its socket path).
func upstreamTransport(addrs []string) (transport, socket string, err error) {
	for _, a := range addrs {
		u, err := url.Parse(a)
		if err != nil {
			return "", "", fmt.Errorf("--upstream %q: %w", a, err)
		}
		switch u.Scheme {
		case "https", "http":
			transport = transportRAPI
		case "unix":
			if len(addrs) != 1 {
				return "", "", fmt.Errorf("--upstream: a luxi socket (%s) is the only address of its cluster", a)
			}
			if u.Host != "" || u.Path == "" || u.Path[0] != '/' {
				return "", "", fmt.Errorf("--upstream: want unix:///absolute/path/to/socket, got %q", a)
			}
			return transportLUXI, u.Path, nil
		default:
			return "", "", fmt.Errorf("--upstream %q: unsupported scheme %q (https:// for RAPI, unix:// for luxi)", a, u.Scheme)
		}
	}
	return transport, "", nil
}

// openUpstream builds the upstream backend of cfg.Upstream. Its health
// checks start with startHealth, once the App they report to is complete.
func (a *App) openUpstream() (backend.Backend, error) {
	up, err := a.newUpstream(a.cfg.Upstream, "", a.upstreamHealth)
	if err != nil {
		return nil, err
	}
	a.upstream = up
	return up, nil
}

// newUpstream builds the backend of an upstream cluster (cluster: its
// name in a clusters file, "" for --upstream); a RAPI backend reports
// its health checks to onHealth.
func (a *App) newUpstream(u UpstreamConfig, cluster string, onHealth func(error)) (upstreamBackend, error) {
	log := a.cfg.Logger
	if cluster != "" {
		log = log.With("cluster", cluster)
	}
	transport, socket, err := upstreamTransport(u.URLs)
	if err != nil {
		return nil, err
	}
	if transport == transportLUXI {
		be, err := luxi.New(luxi.Config{Socket: socket, MaxConns: u.MaxConcurrent, CallTimeout: u.Timeout,
			IdempotencyRetention: a.cfg.IdempotencyKeyTTL})
		if err != nil {
			return nil, err
		}
		log.Info("fronting a real cluster over luxi", "socket", socket)
		return &luxiUpstream{Backend: be, interval: u.HealthInterval, stop: make(chan struct{})}, nil
	}
	up, err := rapi.New(rapi.Config{
		URLs: u.URLs, User: u.User, PasswordFile: u.PasswordFile, CAFile: u.CAFile, Insecure: u.Insecure,
		CacheTTL: u.CacheTTL, Timeout: u.Timeout, MaxConcurrent: u.MaxConcurrent, HealthInterval: u.HealthInterval,
		IdempotencyTTL: a.cfg.IdempotencyKeyTTL, Logger: log.With("upstream", "rapi"),
		OnHealth: onHealth,
	})
	if err != nil {
		return nil, err
	}
	return rapiUpstream{up}, nil
}

// rapiUpstream is the RAPI backend; it reports its health checks through
// rapi.Config.OnHealth.
type rapiUpstream struct{ *rapi.Backend }

func (r rapiUpstream) StartHealth(ctx context.Context, _ func(error)) { r.Start(ctx) }

// luxiUpstream is the luxi backend with a health check: luxid answers a
// cluster-info query.
type luxiUpstream struct {
	*luxi.Backend
	interval time.Duration
	health   healthState
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func (l *luxiUpstream) Health() error { return l.health.get() }

// Close stops the health checks, then closes the connections.
func (l *luxiUpstream) Close() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
	_ = l.Backend.Close()
}

// StartHealth checks luxid every interval until Close, reporting each
// outcome to report.
func (l *luxiUpstream) StartHealth(_ context.Context, report func(error)) {
	interval := l.interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), interval)
			go func() { // Close ends a check in flight
				select {
				case <-l.stop:
				case <-ctx.Done():
				}
				cancel()
			}()
			_, err := l.ClusterInfo(ctx)
			cancel()
			select {
			case <-l.stop:
				return
			default:
			}
			l.health.set(err)
			report(err)
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// healthState is the outcome of the last health check (an error until the
// first one answers).
type healthState struct {
	mu      sync.Mutex
	checked bool
	err     error
}

func (h *healthState) set(err error) {
	h.mu.Lock()
	h.checked, h.err = true, err
	h.mu.Unlock()
}

func (h *healthState) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.checked {
		return errors.New("the upstream has not answered a health check yet")
	}
	return h.err
}
