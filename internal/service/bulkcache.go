package service

import (
	"context"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// bulkCache keeps, per query resource, the messages of the latest bulk
// list and the backend state they were made from (backend.Versioned):
// while the state is the same, every bulk list shares them (and their
// legacy encodings, legacyjson.Freeze) instead of converting the whole
// cluster again for each request. Memory is one copy of the objects per
// resource, whatever the number of requests.
type bulkCache struct {
	mu      sync.Mutex
	entries map[string]*bulkEntry
}

type bulkEntry struct {
	mu      sync.Mutex // held while the list is made: one conversion per state
	version any
	msgs    any // []T
	thaw    func()
}

func (c *bulkCache) entry(resource string) *bulkEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*bulkEntry{}
	}
	e := c.entries[resource]
	if e == nil {
		e = &bulkEntry{}
		c.entries[resource] = e
	}
	return e
}

// cachedList is listObjects through the services' bulk cache; without a
// versioned backend it is listObjects. The messages are shared: read only.
func cachedList[T proto.Message](ctx context.Context, s *Services, resource string, newMsg func() T) ([]T, error) {
	vb, ok := s.cfg.Backend.(backend.Versioned)
	if !ok || vb.StateVersion(ctx) == nil {
		return listObjects(ctx, s.cfg.Backend, resource, newMsg)
	}
	e := s.bulk.entry(resource)
	e.mu.Lock()
	defer e.mu.Unlock()
	v := vb.StateVersion(ctx)
	if e.msgs != nil && e.version == v {
		return e.msgs.([]T), nil
	}
	msgs, err := listObjects(ctx, s.cfg.Backend, resource, newMsg)
	if err != nil {
		return nil, err
	}
	// The state may have changed during the query: keep the list only if
	// it has not (else the next request makes it again).
	if vb.StateVersion(ctx) != v {
		return msgs, nil
	}
	if e.thaw != nil {
		e.thaw()
	}
	legacyjson.Freeze(msgs)
	e.version, e.msgs, e.thaw = v, msgs, func() { legacyjson.Thaw(msgs) }
	return msgs, nil
}
