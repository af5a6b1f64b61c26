package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Persistence: every configuration object is one JSON document in a bucket
// of the store, keyed by UUID (OSes by name, exports by "<node uuid>/<name>",
// the cluster object under "config"). A commit writes only the objects that
// changed.
//
// Every commit that changes the configuration also writes its own store
// revision under meta/"cfgrev": the configuration's revision. A Model
// remembers the one its State was built from and, inside each update's
// transaction, compares it with the stored one: equal, the State is the
// stored configuration (the store's other writes, job records, leave the
// configuration alone); different, another writer (another replica on the
// same store) changed it, and the Model reloads before it writes.

// Buckets of the cluster model; other users of the store must use others.
const (
	BucketMeta      = "meta"
	BucketCluster   = "cluster"
	BucketNodes     = "nodes"
	BucketGroups    = "groups"
	BucketInstances = "instances"
	BucketNetworks  = "networks"
	BucketOSes      = "oses"
	BucketFilters   = "filters"
	BucketExports   = "exports"
)

// Buckets lists every bucket the model uses.
var Buckets = []string{BucketMeta, BucketCluster, BucketNodes, BucketGroups, BucketInstances,
	BucketNetworks, BucketOSes, BucketFilters, BucketExports}

const (
	keyConfig     = "config"
	keySchema     = "schema"
	keyCfgRev     = "cfgrev"
	schemaVersion = "1"
)

var errStop = errors.New("stop")

func putJSON(tx store.Tx, bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cluster: encode %s/%s: %w", bucket, key, err)
	}
	return tx.Put(bucket, key, b)
}

func exportKey(e Export) string { return e.Node + "/" + e.Name }

// readCfgRev returns the configuration's revision as the store holds it
// (0 when absent: a store written before it was kept).
func readCfgRev(tx store.Tx) (int64, error) {
	raw, err := tx.Get(BucketMeta, keyCfgRev)
	if err != nil || raw == nil {
		return 0, err
	}
	rev, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, store.Corrupt(BucketMeta, keyCfgRev, err)
	}
	return rev, nil
}

// saveAll writes a whole configuration (seeding an empty store) and returns
// its revision.
func saveAll(tx store.Tx, cfg *Config) (int64, error) {
	return saveDiff(tx, &Config{}, cfg, 0)
}

// saveDiff writes the objects of next that are not the very objects of prev
// (writers replace what they change, see Config.EditNode and friends) and
// deletes the objects next no longer has. It returns the configuration's
// revision after the commit: prevRev when nothing changed, else the
// commit's revision, which it records.
func saveDiff(tx store.Tx, prev, next *Config, prevRev int64) (int64, error) {
	w := &writeCounter{Tx: tx}
	if err := writeDiff(w, prev, next); err != nil {
		return 0, err
	}
	if w.writes == 0 {
		return prevRev, nil
	}
	rev := tx.Revision() + 1
	if err := tx.Put(BucketMeta, keyCfgRev, []byte(strconv.FormatInt(rev, 10))); err != nil {
		return 0, err
	}
	return rev, nil
}

// writeCounter counts the writes made through it.
type writeCounter struct {
	store.Tx
	writes int
}

func (t *writeCounter) Put(bucket, key string, val []byte) error {
	t.writes++
	return t.Tx.Put(bucket, key, val)
}

func (t *writeCounter) Delete(bucket, key string) error {
	t.writes++
	return t.Tx.Delete(bucket, key)
}

func writeDiff(tx store.Tx, prev, next *Config) error {
	if prev.Cluster != next.Cluster {
		if err := putJSON(tx, BucketCluster, keyConfig, next.Cluster); err != nil {
			return err
		}
		if err := tx.Put(BucketMeta, keySchema, []byte(schemaVersion)); err != nil {
			return err
		}
	}
	if err := diffBucket(tx, BucketNodes, prev.Nodes, next.Nodes); err != nil {
		return err
	}
	if err := diffBucket(tx, BucketGroups, prev.Groups, next.Groups); err != nil {
		return err
	}
	if err := diffBucket(tx, BucketInstances, prev.Instances, next.Instances); err != nil {
		return err
	}
	if err := diffBucket(tx, BucketNetworks, prev.Networks, next.Networks); err != nil {
		return err
	}
	if err := diffBucket(tx, BucketOSes, prev.OSes, next.OSes); err != nil {
		return err
	}
	if err := diffBucket(tx, BucketFilters, prev.Filters, next.Filters); err != nil {
		return err
	}
	old := map[string]Export{}
	for _, e := range prev.Exports {
		old[exportKey(e)] = e
	}
	now := map[string]bool{}
	for _, e := range next.Exports {
		k := exportKey(e)
		now[k] = true
		if o, ok := old[k]; !ok || o != e { // a new export, or a new one replacing it (new Info)
			if err := putJSON(tx, BucketExports, k, e); err != nil {
				return err
			}
		}
	}
	for k := range old {
		if !now[k] {
			if err := tx.Delete(BucketExports, k); err != nil {
				return err
			}
		}
	}
	return nil
}

func diffBucket[T any](tx store.Tx, bucket string, prev, next map[string]*T) error {
	for _, k := range sortedKeys(next) {
		if prev[k] != next[k] {
			if err := putJSON(tx, bucket, k, next[k]); err != nil {
				return err
			}
		}
	}
	for _, k := range sortedKeys(prev) {
		if _, ok := next[k]; !ok {
			if err := tx.Delete(bucket, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadConfig reads the configuration; nil, nil when the store holds none.
func loadConfig(tx store.Tx) (*Config, error) {
	raw, err := tx.Get(BucketCluster, keyConfig)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		// No cluster yet, unless its objects are there: then the
		// configuration record was lost, and seeding a new cluster over
		// them would be wrong.
		for _, b := range Buckets {
			found := false
			if err := tx.ForEach(b, func(string, []byte) error {
				found = true
				return errStop
			}); err != nil && !errors.Is(err, errStop) {
				return nil, err
			}
			if found {
				return nil, store.Corrupt(BucketCluster, keyConfig, fmt.Errorf("missing, while bucket %s holds cluster objects", b))
			}
		}
		return nil, nil
	}
	if v, err := tx.Get(BucketMeta, keySchema); err != nil {
		return nil, err
	} else if v != nil && string(v) != schemaVersion {
		return nil, fmt.Errorf("cluster: store schema version %q, this server reads %q", v, schemaVersion)
	}
	cfg := &Config{Cluster: &Cluster{}}
	if err := decodeJSON(raw, cfg.Cluster, false); err != nil {
		return nil, store.Corrupt(BucketCluster, keyConfig, err)
	}
	normalizeCluster(cfg.Cluster)
	if cfg.Nodes, err = loadBucket[Node](tx, BucketNodes, func(n *Node) string {
		n.NDParams = normalizeParams(n.NDParams, defaultNDParams)
		return n.UUID
	}); err != nil {
		return nil, err
	}
	if cfg.Groups, err = loadBucket[Group](tx, BucketGroups, func(g *Group) string {
		g.NDParams = normalizeParams(g.NDParams, defaultNDParams)
		g.IPolicy = normalizeIPolicy(g.IPolicy)
		for dt, p := range g.DiskParams {
			g.DiskParams[dt] = normalizeParams(p, defaultDiskParams[dt])
		}
		for nw, p := range g.Networks {
			g.Networks[nw] = normalizeParams(p, nicParamDefaults)
		}
		return g.UUID
	}); err != nil {
		return nil, err
	}
	if cfg.Instances, err = loadBucket[Instance](tx, BucketInstances, func(i *Instance) string {
		i.BEParams = normalizeParams(i.BEParams, defaultBEParams)
		i.HVParams = normalizeParams(i.HVParams, defaultHVParams[i.Hypervisor])
		i.OSParams = normalizeParams(i.OSParams, nil)
		for k := range i.NICs {
			i.NICs[k].NICParams = normalizeParams(i.NICs[k].NICParams, nicParamDefaults)
		}
		return i.UUID
	}); err != nil {
		return nil, err
	}
	if cfg.Networks, err = loadBucket[Network](tx, BucketNetworks, func(n *Network) string { return n.UUID }); err != nil {
		return nil, err
	}
	if cfg.OSes, err = loadBucket[OS](tx, BucketOSes, func(o *OS) string { return o.Name }); err != nil {
		return nil, err
	}
	if cfg.Filters, err = loadBucket[FilterRule](tx, BucketFilters, func(f *FilterRule) string {
		f.Predicates, _ = normalizeJSON(nonNilAny(f.Predicates)).([]any)
		f.Action = normalizeJSON(f.Action)
		f.ReasonTrail, _ = normalizeJSON(nonNilAny(f.ReasonTrail)).([]any)
		return f.UUID
	}); err != nil {
		return nil, err
	}
	err = tx.ForEach(BucketExports, func(key string, val []byte) error {
		var e Export
		if err := decodeJSON(val, &e, false); err != nil {
			return store.Corrupt(BucketExports, key, err)
		}
		if k := exportKey(e); k != key {
			return store.Corrupt(BucketExports, key, fmt.Errorf("holds the export %q", k))
		}
		cfg.Exports = append(cfg.Exports, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// loadBucket decodes every document of a bucket; fix normalizes one object
// and returns its key, which must match the document's.
func loadBucket[T any](tx store.Tx, bucket string, fix func(*T) string) (map[string]*T, error) {
	out := map[string]*T{}
	err := tx.ForEach(bucket, func(key string, val []byte) error {
		v := new(T)
		if err := decodeJSON(val, v, false); err != nil {
			return store.Corrupt(bucket, key, err)
		}
		if k := fix(v); k != key {
			return store.Corrupt(bucket, key, fmt.Errorf("holds the object %q", k))
		}
		out[key] = v
		return nil
	})
	return out, err
}

func normalizeCluster(c *Cluster) {
	for hv, p := range c.HVParams {
		c.HVParams[hv] = normalizeParams(p, defaultHVParams[hv])
	}
	for os, m := range c.OSHVP {
		for hv, p := range m {
			c.OSHVP[os][hv] = normalizeParams(p, defaultHVParams[hv])
		}
	}
	if c.OSHVP == nil {
		c.OSHVP = map[string]map[string]Params{}
	}
	if c.OSParams == nil {
		c.OSParams = map[string]Params{}
	}
	c.BEParams = normalizeParams(c.BEParams, defaultBEParams)
	c.NICParams = normalizeParams(c.NICParams, nicParamDefaults)
	c.NDParams = normalizeParams(c.NDParams, defaultNDParams)
	for dt, p := range c.DiskParams {
		c.DiskParams[dt] = normalizeParams(p, defaultDiskParams[dt])
	}
	c.IPolicy = normalizeIPolicy(c.IPolicy)
	c.DefaultIAllocatorParams, _ = normalizeJSON(nonNilParams(c.DefaultIAllocatorParams)).(map[string]any)
	if len(c.EnabledHypervisors) == 0 {
		c.EnabledHypervisors = []string{"fake"}
	}
}
