package clusters

import (
	"context"
	"strings"

	gatewayv1 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/gateway/v1"
)

// SingleName is the name a gateway without a clusters file gives its one
// cluster in the directory.
const SingleName = "default"

// Directory is the ClusterDirectoryService: the clusters of a file and
// their health.
type Directory struct {
	gatewayv1.UnimplementedClusterDirectoryServiceServer
	file   *File
	health func(name string) error
}

// NewDirectory lists the clusters of f; health is a cluster's last health
// check (nil: serving). Its error text is never shown.
func NewDirectory(f *File, health func(name string) error) *Directory {
	return &Directory{file: f, health: health}
}

// TransportOf is how the gateway reaches a cluster, by its upstream.
func TransportOf(e *Entry) gatewayv1.Transport {
	switch {
	case e.IsSim():
		return gatewayv1.Transport_TRANSPORT_SIM
	case len(e.Upstream) == 1 && strings.HasPrefix(e.Upstream[0], "unix:"):
		return gatewayv1.Transport_TRANSPORT_LUXI
	}
	return gatewayv1.Transport_TRANSPORT_RAPI
}

// ListClusters implements gatewayv1.ClusterDirectoryServiceServer.
func (d *Directory) ListClusters(context.Context, *gatewayv1.ListClustersRequest) (*gatewayv1.ListClustersResponse, error) {
	resp := &gatewayv1.ListClustersResponse{}
	for i := range d.file.Clusters {
		e := &d.file.Clusters[i]
		c := &gatewayv1.Cluster{
			Name: e.Name, Transport: TransportOf(e), Hosts: e.Hosts, IsDefault: e.Default,
			Health: gatewayv1.Health_HEALTH_SERVING,
		}
		if err := d.health(e.Name); err != nil {
			c.Health = gatewayv1.Health_HEALTH_NOT_SERVING
			c.HealthMessage = "the cluster did not answer its last health check (see the gateway's log)"
		}
		resp.Clusters = append(resp.Clusters, c)
	}
	return resp, nil
}
