package lu

import (
	"crypto/x509"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/impexp"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// RemoteConfig configures the remote (inter-cluster) import and export
// that Ganeti's move-instance drives: OP_BACKUP_PREPARE and
// OP_BACKUP_EXPORT in mode "remote", OP_INSTANCE_CREATE in mode
// "remote-import".
type RemoteConfig struct {
	// DomainSecret returns the cluster domain secret; it is called for
	// each opcode (Ganeti reads its file each time). Nil: the secret of
	// the cluster configuration (cluster_domain_secret), if any.
	DomainSecret func() (string, error)
	// KeyDir keeps the X509 keys of prepared exports (Ganeti's crypto
	// directory); empty: they are kept in memory only.
	KeyDir string
	// Address is the address the import listeners bind and announce to
	// the exporting cluster (default 127.0.0.1).
	Address string
	// ConnectTimeout is Ganeti's RIE_CONNECT_TIMEOUT (default 180 s): how
	// long an export tries to connect, and how long an import waits for
	// the connection (plus the opcode's source_shutdown_timeout).
	ConnectTimeout time.Duration
	// Now is the clock of the X509 keys and of their verification
	// (default time.Now).
	Now func() time.Time
	// Logger receives the details of failed transfers (default
	// slog.Default()).
	Logger *slog.Logger
}

// Remote is a configured remote import/export; Install puts its
// executors in an executor table.
type Remote struct {
	cfg  RemoteConfig
	keys *impexp.Keys
}

// NewRemote returns a Remote with cfg's defaults filled in.
func NewRemote(cfg RemoteConfig) *Remote {
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1"
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = impexp.ConnectTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Remote{cfg: cfg, keys: &impexp.Keys{Dir: cfg.KeyDir}}
}

// Install replaces the executors of the opcodes with a remote mode in m
// by executors configured with r.
func (r *Remote) Install(m map[string]opexec.Executor) {
	m[opKey(&rapiv2.OpBackupPrepare{})] = BackupPrepare{Remote: r}
	m[opKey(&rapiv2.OpBackupExport{})] = BackupExport{Remote: r}
	m[opKey(&rapiv2.OpInstanceCreate{})] = InstanceCreate{Remote: r}
}

// defaultRemote serves the executors of DefaultExecutors: keys in memory,
// the configuration's domain secret.
var defaultRemote = sync.OnceValue(func() *Remote { return NewRemote(RemoteConfig{}) })

func remoteOr(r *Remote) *Remote {
	if r != nil {
		return r
	}
	return defaultRemote()
}

// secret is the cluster domain secret (cfg: the configuration, when no
// DomainSecret function is set).
func (r *Remote) secret(cfg *cluster.Config) (string, error) {
	var cds string
	if r.cfg.DomainSecret != nil {
		s, err := r.cfg.DomainSecret()
		if err != nil {
			r.cfg.Logger.Error("cannot read the cluster domain secret", "err", err)
			return "", errs.Prereq(errs.CodeEnviron, "Cannot read the cluster domain secret")
		}
		cds = s
	} else if cfg != nil {
		cds = cfg.Cluster.DomainSecret
	}
	if cds == "" {
		return "", errs.Prereq(errs.CodeInval, "Cluster domain secret not configured")
	}
	return cds, nil
}

// genericError is Ganeti's errors.GenericError as an opcode result.
func genericError(msg string) error { return &errs.Error{Class: "GenericError", Msg: msg} }

// loadPeerCA is the loading and verification of the other cluster's
// signed X509 CA by LUBackupExport and LUInstanceCreate (what: "source"
// or "destination").
func (r *Remote) loadPeerCA(cds, signed, what string) (*x509.Certificate, error) {
	cert, _, err := impexp.LoadSignedCertificate(signed, cds)
	var ge *impexp.GenericError
	var le *impexp.LoadError
	switch {
	case errors.As(err, &ge):
		return nil, genericError(ge.Msg)
	case errors.As(err, &le):
		return nil, errs.Prereq(errs.CodeInval, "Unable to load %s X509 CA (%s)", what, le.Msg)
	case err != nil:
		return nil, err
	}
	if msg := impexp.VerifyCertificate(cert, r.cfg.Now()); msg != "" {
		return nil, errs.Prereq(errs.CodeInval, "Invalid %s X509 CA (%s)", what, msg)
	}
	return cert, nil
}

// newKey creates an X509 key and its self-signed certificate for host
// (Ganeti's x509_cert_create on a node), valid for RIE_CERT_VALIDITY.
func (r *Remote) newKey(host string) (*impexp.KeyPair, error) {
	now := r.cfg.Now()
	name, err := impexp.NewKeyName(now)
	if err != nil {
		return nil, err
	}
	return impexp.NewKeyPair(name, host, now, impexp.CertValidity)
}

// listValues converts a repeated Value parameter to JSON-like values.
func listValues(vs []*structpb.Value) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = opexec.JSONValue(v)
	}
	return out
}

// transferFailure is the message of a failed disk transfer, for the job
// log; the details go to the server's log.
func (r *Remote) transferFailure(x *opexec.ExecContext, disk int, err error) string {
	var te *impexp.TransferError
	if errors.As(err, &te) {
		if te.Err != nil {
			r.cfg.Logger.Warn("disk transfer failed", "job", x.JobID, "disk", disk, "err", te.Err)
		}
		return te.Msg
	}
	if x.Context().Err() != nil {
		return "Aborted"
	}
	r.cfg.Logger.Error("disk transfer failed", "job", x.JobID, "disk", disk, "err", err)
	return "Unexpected error"
}
