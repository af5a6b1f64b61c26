package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
)

// The stores of Config.Store.
const (
	StoreBolt = "bolt"
	StoreEtcd = "etcd"
)

// EtcdConfig is the etcd of Config.Store "etcd".
type EtcdConfig struct {
	etcdstore.DialConfig
	// Prefix of the keys (default etcdstore.DefaultPrefix); replicas of
	// one cluster share it.
	Prefix string
	// LeaseTTL is the leader's lease in seconds (default
	// etcdstore.DefaultLeaseTTL): a leader cut off from etcd loses the
	// leadership after it, and another replica takes over.
	LeaseTTL int
	// Name names this replica in the election (default: the host name).
	Name string
}

// checkStore validates Store and Etcd.
func (c *Config) checkStore() error {
	switch c.Store {
	case "":
		c.Store = StoreBolt
	case StoreBolt:
	case StoreEtcd:
		if len(c.Etcd.Endpoints) == 0 {
			return errors.New("--store etcd needs --etcd-endpoints")
		}
	default:
		return fmt.Errorf("--store %q: want bolt or etcd", c.Store)
	}
	if c.Store != StoreEtcd && len(c.Etcd.Endpoints) > 0 {
		return errors.New("--etcd-endpoints needs --store etcd")
	}
	if c.Store == StoreEtcd && len(c.Upstream.URLs) > 0 {
		return errors.New("--store etcd keeps the simulated cluster: it does not go with --upstream, whose cluster keeps its own state")
	}
	return nil
}

// openEtcdState opens the store on etcd and campaigns: New blocks until
// this replica is the leader (or ctx ends). The leader seeds the cluster
// (when etcd holds none), loads the job queue and runs it; every commit it
// makes carries the fence, so once it lost the leadership none of them
// lands. When the leadership is lost, the job queue stops, the health
// checks answer NOT_SERVING and Lost delivers the reason: the process
// exits, and its restart campaigns again (a replica reloads everything
// from etcd when it leads).
func (a *App) openEtcdState(ctx context.Context, seed *cluster.File, jc jobs.Config) (_ *cluster.Model, err error) {
	log := a.cfg.Logger
	ec := a.cfg.Etcd
	cli, err := etcdstore.Dial(ec.DialConfig)
	if err != nil {
		return nil, err
	}
	st, err := etcdstore.New(etcdstore.Config{Client: cli, Prefix: ec.Prefix})
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	a.store = st
	a.closeEtcd = func() { _ = st.Close(); _ = cli.Close() }
	name := ec.Name
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return nil, err
		}
	}
	el := etcdstore.NewElector(st, name, ec.LeaseTTL)
	log.Info("etcd: campaigning for the leadership", "endpoints", ec.Endpoints, "prefix", st.Prefix(), "name", name)
	start := time.Now()
	lead, err := el.Campaign(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcd: campaign: %w", err)
	}
	log.Info("etcd: this replica leads; loading the cluster and the job queue", "waited", time.Since(start).String())
	model, err := cluster.Open(st, seed, time.Now)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	jc.Model = model
	if a.jobs, err = jobs.New(jc); err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	a.lost = make(chan error, 1)
	go func() {
		<-lead.Done()
		if a.draining.Load() {
			return
		}
		err := errors.New("etcd: this replica lost the leadership (its lease expired or its key is gone); the job queue stops, restart to campaign again")
		log.Error(err.Error())
		a.healthSrv.Shutdown()
		a.lost <- err
	}()
	return model, nil
}

// Lost delivers an error when this replica lost the leadership (Store
// "etcd"): the caller closes the App and exits. Nil (never ready) with
// bbolt.
func (a *App) Lost() <-chan error { return a.lost }

// Defaults of the etcd store's flags.
const (
	DefaultEtcdPrefix   = etcdstore.DefaultPrefix
	DefaultEtcdLeaseTTL = etcdstore.DefaultLeaseTTL
)
