package service

import (
	"context"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

type clusterService struct {
	rapiv2.UnimplementedClusterServiceServer
	s *Services
}

func (c *clusterService) GetInfo(ctx context.Context, _ *rapiv2.GetInfoRequest) (*rapiv2.ClusterInfo, error) {
	vb, ok := c.s.cfg.Backend.(backend.Versioned)
	if !ok || vb.StateVersion(ctx) == nil {
		return c.info(ctx)
	}
	// One conversion per cluster state, shared (read only) by the answers.
	v := vb.StateVersion(ctx)
	if m := c.s.info.Load(); m != nil && m.version == v {
		return m.info, nil
	}
	info, err := c.info(ctx)
	if err == nil && vb.StateVersion(ctx) == v {
		// Frozen: the gRPC codec sends its bytes, encoded once.
		legacyjson.Freeze([]*rapiv2.ClusterInfo{info})
		if old := c.s.info.Swap(&memoInfo{version: v, info: info}); old != nil {
			legacyjson.Thaw([]*rapiv2.ClusterInfo{old.info})
		}
	}
	return info, err
}

// memoInfo is GetInfo's answer for one backend state.
type memoInfo struct {
	version any
	info    *rapiv2.ClusterInfo
}

func (c *clusterService) info(ctx context.Context) (*rapiv2.ClusterInfo, error) {
	shared, err := c.s.cfg.Backend.ClusterInfo(ctx)
	if err != nil {
		return nil, err
	}
	info := &rapiv2.ClusterInfo{}
	if err := fill(info, shared); err != nil { // fill copies what it keeps
		return nil, err
	}
	return info, nil
}
