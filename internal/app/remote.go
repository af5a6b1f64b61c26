package app

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/ganeti-gateway/ganeti-gateway/server/impexp"
	"github.com/ganeti-gateway/ganeti-gateway/server/jobs"
)

// DomainSecretFile is the cluster domain secret's file name in the data
// dir (Ganeti's cluster-domain-secret), created on first start.
const DomainSecretFile = "cluster-domain-secret"

// executors is the executor table with the remote import/export
// (move-instance) configured: the cluster domain secret file (created
// with a random secret on first start when it is the default one), the
// X509 keys in <data dir>/crypto.
func executors(cfg Config, log *slog.Logger) (map[string]jobs.Executor, error) {
	path := cfg.ClusterDomainSecretFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, DomainSecretFile)
		created, err := impexp.EnsureSecret(path)
		if err != nil {
			return nil, fmt.Errorf("cluster domain secret: %w", err)
		}
		if created {
			log.Info("created a cluster domain secret; clusters that share it trust each other for move-instance", "path", path)
		}
	}
	if _, err := impexp.ReadSecret(path); err != nil {
		return nil, fmt.Errorf("cluster domain secret: %w", err)
	}
	m := jobs.DefaultExecutors()
	jobs.NewRemote(jobs.RemoteConfig{
		DomainSecret:   func() (string, error) { return impexp.ReadSecret(path) },
		KeyDir:         filepath.Join(cfg.DataDir, "crypto"),
		Address:        cfg.RemoteImportAddress,
		ConnectTimeout: cfg.RemoteConnectTimeout,
		Logger:         log,
	}).Install(m)
	return m, nil
}
