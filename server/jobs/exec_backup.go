package jobs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/server/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/server/errs"
)

// BackupPrepare implements OP_BACKUP_PREPARE (LUBackupPrepare): null in
// local mode; in remote mode a new X509 key and self-signed CA on the
// primary node, returned as {"handshake", "x509_key_name", "x509_ca"}
// signed with the cluster domain secret (HMAC-SHA1), the key name being
// kept in the configuration for a later export.
type BackupPrepare struct{}

// BackupExport implements OP_BACKUP_EXPORT (LUBackupExport), local mode:
// the export is recorded on the target node (and older exports of the
// instance on other nodes are removed); shutdown and remove_instance are
// honoured. The result is [true, [true for each disk]].
type BackupExport struct{}

// Remote import/export constants (Ganeti's RIE_*).
const (
	rieVersion       = 0
	rieHandshake     = "Hi, I'm Ganeti"
	rieCertValidity  = 24 * time.Hour
	x509SignatureHdr = "X-Ganeti-Signature"
)

func exportModeOf(m *rapiv2.ExportMode) string {
	if m == nil {
		return ""
	}
	s, _ := obEnum(m)
	return s
}

// sha1Hmac is Ganeti's utils.Sha1Hmac with a salt.
func sha1Hmac(key, text, salt string) string {
	h := hmac.New(sha1.New, []byte(key))
	h.Write([]byte(salt + text))
	return hex.EncodeToString(h.Sum(nil))
}

// generateSecret is Ganeti's utils.GenerateSecret(n): n random bytes in hex.
func generateSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// selfSignedCA returns a new self-signed X509 CA certificate, PEM-encoded.
func selfSignedCA(cn string, now time.Time) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(rieCertValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

// Locks implements Executor: the instance.
func (BackupPrepare) Locks(op proto.Message, st *cluster.State) ([]Lock, error) {
	return instanceLocks(op, st, lockSpec{instanceMode: Exclusive})
}

// Exec implements Executor.
func (BackupPrepare) Exec(x *ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpBackupPrepare)
	if !ok {
		return nil, obUnexpected(op)
	}
	inst, err := findInstance(x.Config, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	pnode := x.Config.Nodes[inst.PrimaryNode]
	if err := checkNodeOnline(pnode, ""); err != nil {
		return nil, err
	}
	mode := exportModeOf(m.Mode)
	if mode != "remote" {
		return nil, nil
	}
	cds := x.Config.Cluster.DomainSecret
	if cds == "" {
		return nil, errs.Prereq(errs.CodeInval, "Cluster domain secret not configured")
	}
	if x.DryRun {
		return nil, nil
	}
	x.Log("Generating X509 certificate on " + pnode.Name)
	suffix, err := generateSecret(4)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("x509-%s-%s", x.Now().UTC().Format("2006-01-02_15_04_05"), suffix)
	certPEM, err := selfSignedCA(name, x.Now())
	if err != nil {
		return nil, err
	}
	var salts [3]string
	for i := range salts {
		if salts[i], err = generateSecret(8); err != nil {
			return nil, err
		}
	}
	c := x.Config.EditCluster()
	c.AddX509KeyName(name)
	msg := fmt.Sprintf("%d:%s", rieVersion, rieHandshake)
	return map[string]any{
		"handshake":     []any{int64(rieVersion), sha1Hmac(cds, msg, salts[0]), salts[0]},
		"x509_key_name": []any{name, sha1Hmac(cds, name, salts[1]), salts[1]},
		"x509_ca":       fmt.Sprintf("%s: %s/%s\n\n%s", x509SignatureHdr, salts[2], sha1Hmac(cds, certPEM, salts[2]), certPEM),
	}, nil
}

// Locks implements Executor: the instance and, shared, every node (old
// exports on any node may be removed).
func (BackupExport) Locks(op proto.Message, st *cluster.State) ([]Lock, error) {
	m, ok := op.(*rapiv2.OpBackupExport)
	if !ok {
		return nil, obUnexpected(op)
	}
	if exportModeOf(m.Mode) == "remote" {
		return nil, errs.Prereq(errs.CodeInval, "remote exports are not supported yet")
	}
	return instanceLocks(op, st, lockSpec{instanceMode: Exclusive, nodes: true, nodeMode: Shared, allNodes: true})
}

// Exec implements Executor.
func (BackupExport) Exec(x *ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpBackupExport)
	if !ok {
		return nil, obUnexpected(op)
	}
	if exportModeOf(m.Mode) == "remote" {
		return nil, errs.Prereq(errs.CodeInval, "remote exports are not supported yet")
	}
	cfg := x.Config
	inst, err := findInstance(cfg, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	shutdown := m.Shutdown == nil || m.GetShutdown()
	if m.GetRemoveInstance() && inst.AdminState == cluster.AdminUp && !shutdown {
		return nil, errs.Prereq(errs.CodeState, "Can not remove instance without shutting it down before")
	}
	pnode := cfg.Nodes[inst.PrimaryNode]
	if err := checkNodeOnline(pnode, ""); err != nil {
		return nil, err
	}
	target := m.GetTargetNode().GetStringValue()
	if target == "" {
		return nil, errs.Prereq(errs.CodeInval, "Local exports require a target node given as a string")
	}
	dst := obNode(cfg, target)
	if dst == nil {
		return nil, errs.NotFound("Node", target)
	}
	if err := checkNodeOnline(dst, ""); err != nil {
		return nil, err
	}
	if dst.Drained {
		return nil, errs.Prereq(errs.CodeState, "Can't use drained node %s", dst.Name)
	}
	if x.DryRun {
		return nil, nil
	}
	wasRunning := inst.Running
	if shutdown && wasRunning {
		x.Log("Shutting down instance " + inst.Name)
	}
	dresults := make([]any, len(inst.Disks))
	for i := range inst.Disks {
		x.Log(fmt.Sprintf("Exporting snapshot/%d from %s to %s", i, pnode.Name, dst.Name))
		dresults[i] = true
	}
	if shutdown && wasRunning && inst.AdminState == cluster.AdminUp && !m.GetRemoveInstance() {
		x.Log("Starting instance " + inst.Name)
	}
	exports := make([]cluster.Export, 0, len(cfg.Exports)+1)
	removedOld := false
	for _, e := range cfg.Exports {
		if e.Name == inst.Name {
			if e.Node != dst.UUID {
				removedOld = true
			}
			continue
		}
		exports = append(exports, e)
	}
	cfg.Exports = append(exports, cluster.Export{Node: dst.UUID, Name: inst.Name})
	if m.GetRemoveInstance() {
		x.Log("Removing instance " + inst.Name)
		releaseIPs(cfg, inst.NICs)
		delete(cfg.Instances, inst.UUID)
	}
	if removedOld {
		x.Log("Removing old exports for instance " + inst.Name)
	}
	return []any{true, dresults}, nil
}
