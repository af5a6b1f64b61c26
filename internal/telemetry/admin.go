package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// AdminConfig configures the admin listener's handler.
type AdminConfig struct {
	// Metrics is the Prometheus scrape handler, served on /metrics when
	// set.
	Metrics http.Handler
	// Health reports whether the server is healthy (/healthz answers 200
	// "ok", else 503); nil means always healthy.
	Health func(context.Context) error
	// Clusters, when the gateway fronts several clusters, reports each
	// one's health: /healthz lists them after its verdict, and
	// /healthz/cluster/{name} answers 200 "ok", 503 or 404 (unknown).
	Clusters func(context.Context) []ClusterHealth
	// LeaderHealth answers /healthz?role=leader: healthy and the replica
	// that runs the job queue (several replicas on etcd); nil means
	// Health.
	LeaderHealth func(context.Context) error
	// Backup, when set, serves GET /backup (a copy of the store) to
	// loopback clients only, whatever address the listener binds.
	Backup http.Handler
}

// ClusterHealth is one cluster's health (Err nil: healthy; its text is
// never shown).
type ClusterHealth struct {
	Name string
	Err  error
}

func (c ClusterHealth) verdict() string {
	if c.Err != nil {
		return "unavailable"
	}
	return "ok"
}

// AdminHandler serves /healthz, /debug/pprof/ and, when enabled, /metrics,
// on a mux of its own (never the public listener's).
func AdminHandler(cfg AdminConfig) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		verdict := "ok"
		check := cfg.Health
		if r.URL.Query().Get("role") == "leader" && cfg.LeaderHealth != nil {
			check = cfg.LeaderHealth
		}
		if check != nil {
			if err := check(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				verdict = "unavailable"
			}
		}
		fmt.Fprintln(w, verdict)
		if cfg.Clusters != nil {
			for _, c := range cfg.Clusters(r.Context()) {
				fmt.Fprintf(w, "cluster %s: %s\n", c.Name, c.verdict())
			}
		}
	})
	if cfg.Clusters != nil {
		mux.HandleFunc("GET /healthz/cluster/{name}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			for _, c := range cfg.Clusters(r.Context()) {
				if c.Name == r.PathValue("name") {
					if c.Err != nil {
						w.WriteHeader(http.StatusServiceUnavailable)
					}
					fmt.Fprintln(w, c.verdict())
					return
				}
			}
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintln(w, "unknown cluster")
		})
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Backup != nil {
		mux.Handle("GET /backup", loopbackOnly(cfg.Backup))
	}
	return mux
}

// loopbackOnly refuses (403) requests from other than a loopback address:
// an admin listener bound to all interfaces for metrics scrapes must not
// hand out the store.
func loopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			http.Error(w, "only loopback clients may fetch a backup", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// NewAdminServer is the admin listener's HTTP server (HTTP/1.1, bounded
// header reads; no write timeout, for CPU profiles).
func NewAdminServer(cfg AdminConfig) *http.Server {
	return &http.Server{
		Handler:           AdminHandler(cfg),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// AdminAddr is the address the admin listener binds: a bare port (":9090"
// or "9090") binds the loopback interface only; a host, including 0.0.0.0
// or [::], is used as given.
func AdminAddr(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("empty admin address")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// A bare port.
		host, port = "", addr
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return "", fmt.Errorf("admin address %q: bad port", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
