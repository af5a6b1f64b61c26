// Package service holds the gRPC service handlers of ganeti-gateway. They are
// thin: validate the request, call the backend (backend.Backend), convert
// its Ganeti-shaped values into the typed messages, and return its errors
// for the transport to map.
package service

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
)

// Config holds the dependencies of the services.
type Config struct {
	// Backend is the cluster the services answer for. Required.
	Backend backend.Backend
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MaxTestDelay bounds the sleep of an OP_TEST_DELAY an administrator
	// submits with SubmitJob (duration × repeat, on the master and the
	// nodes); default DefaultMaxTestDelay.
	MaxTestDelay time.Duration
	// Limits bound what one query may make the server build.
	Limits Limits
	// MaxWatchAge ends a WatchJob stream after about this long (between
	// 90% and 100% of it, so that streams opened together do not end
	// together) with a resumable UNAVAILABLE, so that long-lived clients
	// move to other servers in time; 0: no limit.
	MaxWatchAge time.Duration
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Backend == nil {
		return errors.New("service: Config.Backend is required")
	}
	c.Limits.setDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxTestDelay <= 0 {
		c.MaxTestDelay = DefaultMaxTestDelay
	}
	return nil
}

// Services are the RAPI services, ready to be registered on a gRPC server.
type Services struct {
	cfg Config
	// watchLogs shares converted log entries among WatchJob streams.
	watchLogs watchLogs
	// bulk shares the bulk lists of one cluster state.
	bulk bulkCache
	// info is GetInfo's answer of the latest state.
	info atomic.Pointer[memoInfo]
	// draining is canceled by Drain.
	draining context.Context
	drain    context.CancelFunc
}

// New builds the services.
func New(cfg Config) (*Services, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	s := &Services{cfg: cfg}
	s.draining, s.drain = context.WithCancel(context.Background())
	return s, nil
}

// Implementation returns the implementation of the RAPI service with the
// full name serviceName, nil when there is none.
func (s *Services) Implementation(serviceName string) any {
	switch serviceName {
	case rapiv2.VersionService_ServiceDesc.ServiceName:
		return &versionService{}
	case rapiv2.ClusterService_ServiceDesc.ServiceName:
		return &clusterService{s: s}
	case rapiv2.NodeService_ServiceDesc.ServiceName:
		return &nodeService{s: s}
	case rapiv2.GroupService_ServiceDesc.ServiceName:
		return &groupService{s: s}
	case rapiv2.InstanceService_ServiceDesc.ServiceName:
		return &instanceService{s: s}
	case rapiv2.NetworkService_ServiceDesc.ServiceName:
		return &networkService{s: s}
	case rapiv2.JobService_ServiceDesc.ServiceName:
		return &jobService{s: s}
	case rapiv2.FilterService_ServiceDesc.ServiceName:
		return &filterService{s: s}
	case rapiv2.OsService_ServiceDesc.ServiceName:
		return &osService{s: s}
	case rapiv2.TagService_ServiceDesc.ServiceName:
		return &tagService{s: s}
	case rapiv2.QueryService_ServiceDesc.ServiceName:
		return &queryService{s: s}
	}
	return nil
}
