package server

import (
	"context"
	"errors"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	gatewayv1 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/gateway/v1"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/clusters"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
)

// ClusterHealthService is the gRPC health service name of a cluster
// behind the gateway (--clusters).
func ClusterHealthService(name string) string { return "cluster/" + name }

// multi is the state of a gateway in front of several clusters.
type multi struct {
	file      *clusters.File
	router    *clusters.Router
	upstreams map[string]upstreamBackend // the real clusters, by name
	sim       string                     // the simulated cluster's name ("": none)
}

// openClusters builds the backend of every cluster of the clusters file
// and the router in front of them.
func (a *App) openClusters(ctx context.Context, cfg Config, f *clusters.File, seed *cluster.File) (backend.Backend, error) {
	m := &multi{file: f, upstreams: map[string]upstreamBackend{}}
	a.multi = m
	backends := map[string]backend.Backend{}
	for _, e := range f.Clusters {
		if e.IsSim() {
			be, err := a.openSim(ctx, cfg, seed)
			if err != nil {
				return nil, err
			}
			m.sim, backends[e.Name] = e.Name, be
			continue
		}
		u := cfg.Upstream // the companions of --upstream apply to every cluster
		u.URLs, u.User, u.PasswordFile, u.CAFile, u.Insecure = e.Upstream, e.User, e.PasswordFile, e.CA, e.Insecure
		name := e.Name
		up, err := a.newUpstream(u, name, func(err error) { a.clusterHealthReport(name, err) })
		if err != nil {
			return nil, err
		}
		m.upstreams[name], backends[name] = up, up
	}
	router, err := clusters.NewRouter(f, backends)
	if err != nil {
		return nil, err
	}
	m.router = router
	cfg.Logger.Info("fronting several clusters", "clusters", router.ClusterNames(), "default", router.Default())
	return router, nil
}

// gatewayClusters is the transport's cluster selection (nil: one
// cluster).
func (a *App) gatewayClusters() *gateway.Clusters {
	if a.multi == nil {
		return nil
	}
	return &gateway.Clusters{Resolve: a.multi.router.Resolve, ResolveHost: a.multi.router.ResolveHost}
}

// clusterHealth is a cluster's health: its upstream's last check, or the
// simulated cluster's store and job queue.
func (a *App) clusterHealth(ctx context.Context, name string) error {
	if a.draining.Load() {
		return errors.New("shutting down")
	}
	if up, ok := a.multi.upstreams[name]; ok {
		return up.Health()
	}
	if err := a.jobs.Err(); err != nil {
		return err
	}
	return a.store.View(ctx, func(store.Tx) error { return nil })
}

// clusterHealthReport sets a cluster's gRPC health (cluster/<name>) from
// its upstream's health check.
func (a *App) clusterHealthReport(name string, err error) {
	if a.draining.Load() || a.grpcServer == nil {
		return
	}
	st := healthpb.HealthCheckResponse_SERVING
	if err != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	a.healthSrv.SetServingStatus(ClusterHealthService(name), st)
}

// healthOfClusters is every cluster's health, for the admin /healthz.
func (a *App) healthOfClusters(ctx context.Context) []telemetry.ClusterHealth {
	out := make([]telemetry.ClusterHealth, 0, len(a.multi.file.Clusters))
	for _, e := range a.multi.file.Clusters {
		out = append(out, telemetry.ClusterHealth{Name: e.Name, Err: a.clusterHealth(ctx, e.Name)})
	}
	return out
}

// startClusters sets every cluster's gRPC health and starts the
// upstreams' health checks, once the App is complete.
func (a *App) startClusters(ctx context.Context) {
	for _, e := range a.multi.file.Clusters {
		a.clusterHealthReport(e.Name, a.clusterHealth(ctx, e.Name))
	}
	for name, up := range a.multi.upstreams {
		name := name
		up.StartHealth(ctx, func(err error) { a.clusterHealthReport(name, err) })
	}
}

// directory is the ClusterDirectoryService: the clusters file's clusters,
// or the one cluster of a gateway without one.
func (a *App) directory() gatewayv1.ClusterDirectoryServiceServer {
	if a.multi != nil {
		return clusters.NewDirectory(a.multi.file, func(name string) error {
			return a.clusterHealth(context.Background(), name)
		})
	}
	e := clusters.Entry{Name: clusters.SingleName, Upstream: clusters.Strings{clusters.Sim}, Default: true}
	if len(a.cfg.Upstream.URLs) > 0 {
		e.Upstream = a.cfg.Upstream.URLs
	}
	return clusters.NewDirectory(&clusters.File{Clusters: []clusters.Entry{e}}, func(string) error {
		return a.health(context.Background())
	})
}

// clusterOfCall is the cluster of a gRPC call as its metrics name it: the
// cluster its ganeti-cluster metadata names, or the default one; nil with
// one cluster. An unknown name gives none (clients cannot make labels).
func (a *App) clusterOfCall() func(context.Context) string {
	if a.multi == nil {
		return nil
	}
	return func(ctx context.Context) string {
		md, _ := metadata.FromIncomingContext(ctx)
		want := ""
		if v := md.Get(gateway.MetadataCluster); len(v) > 0 {
			want = v[0]
		}
		if name, ok := a.multi.router.Resolve(want); ok {
			return name
		}
		return ""
	}
}
