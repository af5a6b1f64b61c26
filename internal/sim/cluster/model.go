// Package cluster is the simulated Ganeti cluster: its configuration
// objects (cluster, node groups, nodes, instances of the fake hypervisor,
// OSes, networks, job filter rules, exports), their persistence in a
// store.Store, their seeding from a declarative cluster file, and the read
// API the service layer answers RAPI requests with (/2/info, queries, bulk
// lists, single objects, tags, roles, consoles).
//
// Reads never touch the store: a Model holds an immutable *State behind an
// atomic pointer, and a commit (Model.Update) swaps in a new one.
//
// Values handed out are JSON-like Go values (nil, bool, int64, float64,
// string, []any, []string, map[string]any), freshly allocated per call.
package cluster

//go:generate go run ./internal/gen/fielddefs -captures ../../../testdata/shared/golden/captures.jsonl -o fielddefs_gen.go

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Model is the cluster model: the current State plus the store it is
// persisted in.
type Model struct {
	st    store.Store
	clock func() time.Time
	reg   *registry
	state atomic.Pointer[State]
	mu    sync.Mutex // serializes Update
}

// Open loads the cluster from st. If st holds no cluster yet, it is seeded
// from seed (generating the UUIDs and timestamps seed leaves out, with
// clock) and persisted; otherwise seed is ignored. clock defaults to
// time.Now.
func Open(st store.Store, seed *File, clock func() time.Time) (*Model, error) {
	if st == nil {
		return nil, errors.New("cluster: no store")
	}
	if clock == nil {
		clock = time.Now
	}
	m := &Model{st: st, clock: clock, reg: newRegistry()}
	var cfg *Config
	// Opening has no caller's context: it runs once, at start.
	ctx := context.Background()
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		cfg, err = loadConfig(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		if seed == nil {
			return nil, errors.New("cluster: the store holds no cluster and no cluster file was given")
		}
		fresh, err := seed.build(clock, cryptoIDs{})
		if err != nil {
			return nil, fmt.Errorf("cluster file: %w", err)
		}
		err = st.Update(ctx, func(tx store.Tx) error {
			// Another process may have seeded the store meanwhile.
			existing, err := loadConfig(tx)
			if err != nil {
				return err
			}
			if existing != nil {
				cfg = existing
				return nil
			}
			cfg = fresh
			return saveAll(tx, fresh)
		})
		if err != nil {
			return nil, err
		}
	}
	s, err := newState(cfg, m.reg, nil)
	if err != nil {
		return nil, err
	}
	m.state.Store(s)
	return m, nil
}

// State returns the current snapshot. It never blocks.
func (m *Model) State() *State { return m.state.Load() }

// Store returns the store the model persists in.
func (m *Model) Store() store.Store { return m.st }

// Now returns the model's clock reading as a Ganeti timestamp (seconds with
// microseconds), for writers setting ctime/mtime.
func (m *Model) Now() float64 { return timestamp(m.clock()) }

// NewUUID returns a random (version 4) UUID for a new object.
func NewUUID() string { return newUUID(cryptoIDs{}) }

// SetRowSource registers the source of the rows of resource "job" or
// "lock" (nil unregisters it).
func (m *Model) SetRowSource(resource string, src RowSource) error {
	return m.reg.set(resource, src)
}

// Update runs fn in one store transaction with a copy of the current
// configuration. fn may write its own records through tx (the job engine
// puts its job records there) and change cfg: existing objects only through
// cfg.EditCluster/EditNode/EditGroup/EditInstance/EditNetwork/EditFilter,
// new objects by adding them to the maps, removals by deleting map entries.
// When fn returns nil, the changed objects are written in the same
// transaction and, once it has committed, the new State is published. If
// fn, the consistency check of the new configuration or the commit fails,
// nothing changes. Updates are serialized. An Update whose ctx is done
// before it commits changes nothing and returns ctx.Err().
//
// fn may run more than once (store.Store): each run gets a fresh copy of
// the configuration and a fresh transaction, and must have no effect
// outside them.
func (m *Model) Update(ctx context.Context, fn func(tx store.Tx, cfg *Config) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.state.Load()
	var next *State
	err := m.st.Update(ctx, func(tx store.Tx) error {
		cfg := prev.cfg.cow()
		if err := fn(tx, cfg); err != nil {
			return err
		}
		cfg.owned = nil
		s, err := newState(cfg, m.reg, prev)
		if err != nil {
			return err
		}
		if err := saveDiff(tx, prev.cfg, cfg); err != nil {
			return err
		}
		next = s
		return nil
	})
	if err != nil {
		return err
	}
	m.state.Store(next)
	return nil
}
