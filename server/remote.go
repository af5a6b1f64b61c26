package server

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/impexp"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// DomainSecretFile is the cluster domain secret's file name in the data
// dir (Ganeti's cluster-domain-secret), created on first start.
const DomainSecretFile = "cluster-domain-secret"

// domainSecretPath is the cluster domain secret file: the configured one,
// or the default one in the data dir.
func domainSecretPath(cfg Config) string {
	if cfg.ClusterDomainSecretFile != "" {
		return cfg.ClusterDomainSecretFile
	}
	return filepath.Join(cfg.DataDir, DomainSecretFile)
}

// ensureDomainSecret creates the default secret file with a random secret
// on first start, and checks that the secret can be read.
func ensureDomainSecret(cfg Config, path string, log *slog.Logger) error {
	if cfg.ClusterDomainSecretFile == "" {
		created, err := impexp.EnsureSecret(path)
		if err != nil {
			return fmt.Errorf("cluster domain secret: %w", err)
		}
		if created {
			log.Info("created a cluster domain secret; clusters that share it trust each other for move-instance", "path", path)
		}
	}
	if _, err := impexp.ReadSecret(path); err != nil {
		return fmt.Errorf("cluster domain secret: %w", err)
	}
	return nil
}

// executors is the executor table with the remote import/export
// (move-instance) configured: the cluster domain secret file at path
// (read when used), the X509 keys in <data dir>/crypto.
func executors(cfg Config, log *slog.Logger, path string) map[string]opexec.Executor {
	m := lu.DefaultExecutors()
	lu.NewRemote(lu.RemoteConfig{
		DomainSecret:   func() (string, error) { return impexp.ReadSecret(path) },
		KeyDir:         filepath.Join(cfg.DataDir, "crypto"),
		Address:        cfg.RemoteImportAddress,
		ConnectTimeout: cfg.RemoteConnectTimeout,
		Logger:         log,
	}).Install(m)
	return m
}
