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
	var rev int64
	// Opening has no caller's context: it runs once, at start.
	ctx := context.Background()
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		cfg, rev, err = load(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		if seed == nil {
			return nil, ErrNoCluster
		}
		fresh, err := seed.build(clock, cryptoIDs{})
		if err != nil {
			return nil, fmt.Errorf("cluster file: %w", err)
		}
		err = st.Update(ctx, func(tx store.Tx) error {
			// Another process may have seeded the store meanwhile.
			existing, existingRev, err := load(tx)
			if err != nil {
				return err
			}
			if existing != nil {
				cfg, rev = existing, existingRev
				return nil
			}
			cfg = fresh
			rev, err = saveAll(tx, fresh)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	s, err := newState(cfg, m.reg, nil)
	if err != nil {
		return nil, err
	}
	s.rev = rev
	m.state.Store(s)
	return m, nil
}

// ErrNoCluster is Open's error for a store that holds no cluster when no
// cluster file is given.
var ErrNoCluster = errors.New("cluster: the store holds no cluster and no cluster file was given")

// load reads the configuration and its revision; nil when the store holds
// none.
func load(tx store.Tx) (*Config, int64, error) {
	cfg, err := loadConfig(tx)
	if err != nil || cfg == nil {
		return nil, 0, err
	}
	rev, err := readCfgRev(tx)
	if err != nil {
		return nil, 0, err
	}
	return cfg, rev, nil
}

// Reload publishes the configuration the store holds when its revision
// differs from the current State's: the model of a follower replica, whose
// store another replica's commits change. It reports whether the State
// changed; a store that holds no cluster keeps the State.
func (m *Model) Reload(ctx context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.state.Load()
	var cfg *Config
	var rev int64
	err := m.st.View(ctx, func(tx store.Tx) error {
		r, err := readCfgRev(tx)
		if err != nil || r == prev.rev {
			return err
		}
		cfg, rev, err = load(tx)
		return err
	})
	if err != nil || cfg == nil {
		return false, err
	}
	s, err := newState(cfg, m.reg, nil)
	if err != nil {
		return false, err
	}
	s.rev = rev
	m.state.Store(s)
	return true, nil
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

// MaxRereads bounds how often one Update reads the configuration afresh
// because another writer changed it (see Update).
const MaxRereads = 10

// ErrConflict is returned by an Update whose transaction the store kept
// rerunning because other writers kept changing the configuration. It
// changed nothing.
var ErrConflict = errors.New("cluster: the configuration kept changing under this update (other writers), gave up")

// Update runs fn in one store transaction with a copy of the current
// configuration. fn may write its own records through tx (the job engine
// puts its job records there) and change cfg: existing objects only through
// cfg.EditCluster/EditNode/EditGroup/EditInstance/EditNetwork/EditFilter,
// new objects by adding them to the maps, removals by deleting map entries.
// When fn returns nil, the changed objects are written in the same
// transaction and, once it has committed, the new State is published. If
// fn, the consistency check of the new configuration or the commit fails,
// nothing changes. Updates of one Model are serialized. An Update whose
// ctx is done before it commits changes nothing and returns ctx.Err().
//
// Other writers (other Models on the same store: replicas) are detected
// inside the transaction: when the configuration's revision in the store
// is not the one the current State was built from, the transaction reads
// the configuration afresh and fn runs on that; the State published is
// built from it. A store that reruns the transaction because another
// writer committed meanwhile (store.Store: fn may run more than once) gets
// the same treatment at each run. After MaxRereads runs that found the
// configuration changed, the next one ends the Update with ErrConflict.
//
// fn may therefore run more than once: each run gets a fresh copy of the
// configuration and a fresh transaction, and must have no effect outside
// them.
func (m *Model) Update(ctx context.Context, fn func(tx store.Tx, cfg *Config) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.state.Load()
	var next *State
	conflicts := 0
	err := m.st.Update(ctx, func(tx store.Tx) error {
		next = nil
		if err := ctx.Err(); err != nil {
			return err
		}
		rev, err := readCfgRev(tx)
		if err != nil {
			return err
		}
		base, baseRev, reuse := prev.cfg, prev.rev, prev
		if rev != prev.rev {
			// Another writer changed the configuration: read it here,
			// in this transaction, and work on that.
			if conflicts++; conflicts > MaxRereads {
				return fmt.Errorf("%w after %d rereads", ErrConflict, MaxRereads)
			}
			if base, baseRev, err = load(tx); err != nil {
				return err
			}
			if base == nil {
				return store.Corrupt(BucketCluster, keyConfig, errors.New("the cluster was removed from the store"))
			}
			reuse = nil
		}
		cfg := base.cow()
		if err := fn(tx, cfg); err != nil {
			return err
		}
		cfg.owned = nil
		s, err := newState(cfg, m.reg, reuse)
		if err != nil {
			return err
		}
		if s.rev, err = saveDiff(tx, base, cfg, baseRev); err != nil {
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
