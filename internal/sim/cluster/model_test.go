package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

// stores runs a test against both store implementations.
var stores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"memstore", func(*testing.T) store.Store { return memstore.New() }},
	{"boltstore", func(t *testing.T) store.Store {
		s, err := boltstore.OpenDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	// Every update function runs twice, the first run discarded: the
	// model's updates must have their effect once (store.Store).
	{"rerun", func(*testing.T) store.Store {
		s := faultstore.New(memstore.New())
		s.Rerun(true)
		return s
	}},
}

func parse(t *testing.T, data string) *File {
	t.Helper()
	f, err := ParseFile([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// snapshot renders everything the read API shows, for comparisons.
func snapshot(t *testing.T, s *State) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(mustJSON(s.Info()))
	for _, res := range []string{ResNode, ResInstance, ResGroup, ResNetwork, ResFilter, ResExport} {
		defs, _ := s.FieldDefs(res, nil)
		names := make([]string, len(defs))
		for i, d := range defs {
			names[i] = d.Name
		}
		b.WriteString(mustJSON(query(t, s, res, names, nil)))
	}
	b.WriteString(mustJSON(s.OSNames()))
	return b.String()
}

func TestOpenSeedsThenLoads(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			db := st.open(t)
			m1, err := Open(db, parse(t, testCluster), testClock)
			if err != nil {
				t.Fatal(err)
			}
			// A second Open reads the store and ignores the (different) file.
			m2, err := Open(db, parse(t, file()), nil)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := snapshot(t, m1.State()), snapshot(t, m2.State()); a != b {
				t.Errorf("reloaded state differs from the seeded one:\n%s\n%s", a, b)
			}
			m3, err := Open(db, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if m3.State().cfg.Cluster.Name != "c.example.com" {
				t.Errorf("Open without a file did not load the store")
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(memstore.New(), nil, nil); err == nil || !strings.Contains(err.Error(), "no cluster file") {
		t.Errorf("Open of an empty store without a file: %v", err)
	}
	if _, err := Open(nil, nil, nil); err == nil {
		t.Errorf("Open without a store succeeded")
	}
	db := memstore.New()
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Put(BucketCluster, keyConfig, []byte(`{"name":"c"}`)); err != nil {
			return err
		}
		return tx.Put(BucketMeta, keySchema, []byte("99"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db, nil, nil); err == nil || !strings.Contains(err.Error(), "schema version") {
		t.Errorf("Open of a store from the future: %v", err)
	}
}

// countingStore records the writes of the last Update transaction's last
// run of its function (the one that commits).
type countingStore struct {
	store.Store
	mu   sync.Mutex
	puts []string
}

type countingTx struct {
	store.Tx
	s *countingStore
}

func (c *countingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return c.Store.Update(ctx, func(tx store.Tx) error {
		c.mu.Lock()
		c.puts = nil
		c.mu.Unlock()
		return fn(countingTx{tx, c})
	})
}

func (c countingTx) Put(bucket, key string, val []byte) error {
	c.s.mu.Lock()
	c.s.puts = append(c.s.puts, bucket+"/"+key)
	c.s.mu.Unlock()
	return c.Tx.Put(bucket, key, val)
}

func TestUpdate(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			db := &countingStore{Store: st.open(t)}
			m, err := Open(db, parse(t, testCluster), testClock)
			if err != nil {
				t.Fatal(err)
			}
			before := m.State()
			beforeSnap := snapshot(t, before)
			web := before.instanceByName["web.example.com"]
			db.puts = nil

			err = m.Update(context.Background(), func(tx store.Tx, cfg *Config) error {
				inst := cfg.EditInstance(web.UUID)
				inst.AdminState, inst.Running, inst.SerialNo = AdminDown, false, inst.SerialNo+1
				inst.Tags = append(inst.Tags, "c")
				cfg.EditCluster().Tags = []string{"t1", "t2"}
				return tx.Put("jobs", "1", []byte(`{"id":1}`))
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(db.puts, " "); got != "jobs/1 cluster/config meta/schema instances/"+web.UUID+" meta/cfgrev" {
				t.Errorf("Update wrote %s", got)
			}
			after := m.State()
			if snapshot(t, before) != beforeSnap {
				t.Errorf("Update changed the previous State")
			}
			if status := query(t, after, ResInstance, []string{"status"}, []any{"=", "name", "web"}); mustJSON(status) != `[[[0,"ADMIN_down"]]]` {
				t.Errorf("status after Update: %s", mustJSON(status))
			}
			if tags, _ := after.Tags(TagCluster, ""); mustJSON(tags) != `["t1","t2"]` {
				t.Errorf("cluster tags after Update: %v", tags)
			}
			// n1 got the instance's memory back.
			if mfree := query(t, after, ResNode, []string{"mfree"}, []any{"=", "name", "n1"}); mustJSON(mfree) != `[[[0,7680]]]` {
				t.Errorf("mfree after stop: %s", mustJSON(mfree))
			}
			reloaded, err := Open(db.Store, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if snapshot(t, reloaded.State()) != snapshot(t, after) {
				t.Errorf("the store does not hold what Update published")
			}
			var job []byte
			_ = db.View(context.Background(), func(tx store.Tx) error { job, _ = tx.Get("jobs", "1"); return nil })
			if string(job) != `{"id":1}` {
				t.Errorf("job record = %q", job)
			}

			// A failing fn changes nothing.
			boom := errors.New("boom")
			err = m.Update(context.Background(), func(tx store.Tx, cfg *Config) error {
				cfg.EditInstance(web.UUID).Name = "renamed"
				delete(cfg.Instances, before.instanceByName["db.example.com"].UUID)
				_ = tx.Put("jobs", "2", []byte(`{}`))
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("Update = %v, want boom", err)
			}
			// An inconsistent result is refused.
			err = m.Update(context.Background(), func(tx store.Tx, cfg *Config) error {
				delete(cfg.Nodes, before.nodeByName["n2.example.com"].UUID)
				return tx.Put("jobs", "3", []byte(`{}`))
			})
			if err == nil || !strings.Contains(err.Error(), "unknown") {
				t.Errorf("Update leaving a dangling node reference: %v", err)
			}
			if m.State() != after {
				t.Errorf("a failed Update published a State")
			}
			reloaded, err = Open(db.Store, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if snapshot(t, reloaded.State()) != snapshot(t, after) {
				t.Errorf("a failed Update reached the store")
			}
			_ = db.View(context.Background(), func(tx store.Tx) error {
				for _, k := range []string{"2", "3"} {
					if v, _ := tx.Get("jobs", k); v != nil {
						t.Errorf("job %s of a failed Update was stored", k)
					}
				}
				return nil
			})

			// Adding and removing objects.
			err = m.Update(context.Background(), func(tx store.Tx, cfg *Config) error {
				delete(cfg.Instances, before.instanceByName["off.example.com"].UUID)
				g := &Group{Name: "g3", UUID: NewUUID(), AllocPolicy: "preferred", Networks: map[string]Params{}}
				cfg.Groups[g.UUID] = g
				cfg.Exports = cfg.Exports[1:]
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			reloaded, err = Open(db.Store, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(reloaded.State().Names(ResGroup), " "); got != "default g2 g3" {
				t.Errorf("groups after adding g3: %s", got)
			}
			if got := strings.Join(reloaded.State().Names(ResInstance), " "); strings.Contains(got, "off.example.com") {
				t.Errorf("instances after removing off: %s", got)
			}
			if n := len(reloaded.State().cfg.Exports); n != 2 {
				t.Errorf("%d exports after removing one, want 2", n)
			}
		})
	}
}

// TestConcurrentReadsAndUpdates is for the race detector.
func TestConcurrentReadsAndUpdates(t *testing.T) {
	m := modelFromJSON(t, testCluster)
	web := m.State().instanceByName["web.example.com"].UUID
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := m.State()
				if _, err := s.Query(ResInstance, rlibFields(ResInstance), nil); err != nil {
					t.Error(err)
					return
				}
				_ = s.Info()
			}
		}()
	}
	for i := 0; i < 50; i++ {
		err := m.Update(context.Background(), func(_ store.Tx, cfg *Config) error {
			inst := cfg.EditInstance(web)
			inst.SerialNo++
			inst.Running = !inst.Running
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if got := m.State().instanceByName["web.example.com"].SerialNo; got != 51 {
		t.Errorf("serial after 50 updates = %d", got)
	}
}

func TestConfigCloneIsDeep(t *testing.T) {
	s := testState(t)
	before := snapshot(t, s)
	c := s.Config()
	for _, inst := range c.Instances {
		inst.Tags = append(inst.Tags[:0], "x")
		inst.BEParams["maxmem"] = int64(1)
		inst.NICs[0].NICParams["mode"] = "x"
		if len(inst.Disks) > 0 {
			inst.Disks[0].Size = 1
		}
	}
	for _, n := range c.Nodes {
		n.Tags = append(n.Tags[:0], "x")
		n.MemTotal = 1
	}
	c.Cluster.HVParams["fake"]["migration_mode"] = "x"
	c.Cluster.IPolicy["std"].(map[string]any)["disk-size"] = int64(1)
	for _, f := range c.Filters {
		f.Predicates = append(f.Predicates[:0], "x")
	}
	if snapshot(t, s) != before {
		t.Errorf("State.Config shares memory with the state")
	}
}

// TestRowsFollowUpdates checks that precomputed instance rows are reused
// only while what they show is unchanged.
func TestRowsFollowUpdates(t *testing.T) {
	m := modelFromJSON(t, testCluster)
	s0 := m.State()
	web, db := s0.instanceByName["web.example.com"], s0.instanceByName["db.example.com"]
	n1 := s0.nodeByName["n1.example.com"]
	update := func(fn func(cfg *Config)) *State {
		t.Helper()
		if err := m.Update(context.Background(), func(_ store.Tx, cfg *Config) error { fn(cfg); return nil }); err != nil {
			t.Fatal(err)
		}
		return m.State()
	}
	s1 := update(func(cfg *Config) { cfg.EditInstance(db.UUID).Tags = []string{"x"} })
	if s1.instRowByUUID[web.UUID] != s0.instRowByUUID[web.UUID] {
		t.Errorf("an unchanged instance's row was rebuilt")
	}
	if s1.instRowByUUID[db.UUID] == s0.instRowByUUID[db.UUID] {
		t.Errorf("a changed instance's row was reused")
	}
	s2 := update(func(cfg *Config) { cfg.EditNode(n1.UUID).Offline = true })
	if got := mustJSON(query(t, s2, ResInstance, []string{"status"}, []any{"=", "name", "web"})); got != `[[[0,"ERROR_nodeoffline"]]]` {
		t.Errorf("status after the primary node went offline: %s", got)
	}
	s3 := update(func(cfg *Config) { cfg.EditCluster().NICParams["link"] = "br7" })
	if got := mustJSON(query(t, s3, ResInstance, []string{"nic.links"}, []any{"=", "name", "db"})); got != `[[[0,["br7"]]]]` {
		t.Errorf("nic.links after changing the cluster's link: %s", got)
	}
}

// Seeding a large cluster is one transaction: it must fit the store's
// default limits with room to spare (store.DefaultLimits says why they are
// what they are).
func TestSeedLargeClusterFitsDefaultLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 10,000 instances")
	}
	st := memstore.New(memstore.WithWatchBuffer(1 << 20))
	ch, err := st.Watch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(st, parse(t, benchCluster(400, 10_000)), testClock); err != nil {
		t.Fatalf("seeding 10,000 instances: %v", err)
	}
	ops, bytes := 0, int64(0)
	for len(ch) > 0 {
		ev := <-ch
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		ops++
		bytes += int64(len(ev.Key) + len(ev.Value))
	}
	t.Logf("seeding 400 nodes and 10,000 instances: %d operations, %d bytes", ops, bytes)
	if lim := store.DefaultLimits; ops > lim.MaxOps/2 || bytes > lim.MaxBytes/2 {
		t.Errorf("seeding uses more than half the default limits %+v", lim)
	}
}
