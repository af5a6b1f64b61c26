package jobs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/server/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/server/errs"
	"github.com/ganeti-gateway/ganeti-gateway/server/impexp"
)

// BackupPrepare implements OP_BACKUP_PREPARE (LUBackupPrepare): null in
// local mode; in remote mode a new X509 key and self-signed CA on the
// primary node (kept by the Remote until it expires), returned as
// {"handshake", "x509_key_name", "x509_ca"} signed with the cluster domain
// secret (HMAC-SHA1), the key name being recorded in the configuration.
type BackupPrepare struct {
	// Remote configures the remote mode (nil: DefaultExecutors' one).
	Remote *Remote
}

// BackupExport implements OP_BACKUP_EXPORT (LUBackupExport). Local mode:
// the export is recorded on the target node with what its config.ini
// holds (cluster.ExportInfo, read by an import), and older exports of the
// instance on other nodes are removed. Remote mode (move-instance): the
// destination information and the key name are checked with the cluster
// domain secret, each disk is sent to its destination (Run), and only
// then is the instance removed when remove_instance is set. shutdown and
// remove_instance are honoured. The result is [true, [true for each
// disk]].
type BackupExport struct {
	// Remote configures the remote mode (nil: DefaultExecutors' one).
	Remote *Remote
}

func exportModeOf(m *rapiv2.ExportMode) string {
	if m == nil {
		return ""
	}
	s, _ := obEnum(m)
	return s
}

// preparedKey is what BackupPrepare.Run hands to Exec.
type preparedKey struct {
	cds  string
	key  *impexp.KeyPair
	gone []string // the expired keys Run removed
}

// Locks implements Executor: the instance.
func (BackupPrepare) Locks(op proto.Message, st *cluster.State) ([]Lock, error) {
	return instanceLocks(op, st, lockSpec{instanceMode: Exclusive})
}

func (BackupPrepare) needsRun(op proto.Message) bool {
	m, ok := op.(*rapiv2.OpBackupPrepare)
	return ok && exportModeOf(m.Mode) == "remote"
}

// prepareChecks is CheckPrereq of LUBackupPrepare.
func prepareChecks(cfg *cluster.Config, m *rapiv2.OpBackupPrepare) (*cluster.Node, error) {
	inst, err := findInstance(cfg, m.GetInstanceName())
	if err != nil {
		return nil, err
	}
	pnode := cfg.Nodes[inst.PrimaryNode]
	if err := checkNodeOnline(pnode, ""); err != nil {
		return nil, err
	}
	return pnode, nil
}

// Run implements Runner (remote mode): the X509 key on the primary node.
func (p BackupPrepare) Run(x *ExecContext, op proto.Message) error {
	m, ok := op.(*rapiv2.OpBackupPrepare)
	if !ok {
		return obUnexpected(op)
	}
	r := remoteOr(p.Remote)
	cfg := x.State.Config()
	pnode, err := prepareChecks(cfg, m)
	if err != nil {
		return err
	}
	cds, err := r.secret(cfg)
	if err != nil {
		return err
	}
	gone, err := r.keys.Prune(r.cfg.Now())
	if err != nil {
		r.cfg.Logger.Warn("removing expired X509 keys failed", "err", err)
	}
	x.Log("Generating X509 certificate on " + pnode.Name)
	key, err := r.newKey(pnode.Name)
	if err != nil {
		return err
	}
	if err := r.keys.Add(key); err != nil {
		return err
	}
	x.handoff = &preparedKey{cds: cds, key: key, gone: gone}
	return nil
}

// Exec implements Executor.
func (p BackupPrepare) Exec(x *ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpBackupPrepare)
	if !ok {
		return nil, obUnexpected(op)
	}
	if _, err := prepareChecks(x.Config, m); err != nil {
		return nil, err
	}
	if exportModeOf(m.Mode) != "remote" {
		return nil, nil
	}
	if x.DryRun {
		_, err := remoteOr(p.Remote).secret(x.Config)
		return nil, err
	}
	pk, ok := x.handoff.(*preparedKey)
	if !ok {
		return nil, errs.Exec("The X509 key was not created")
	}
	salt, err := impexp.GenerateSecret(8)
	if err != nil {
		return nil, err
	}
	handshake, err := impexp.ComputeHandshake(pk.cds)
	if err != nil {
		return nil, err
	}
	ca, err := impexp.SignCertificate(pk.key.Cert, pk.cds, salt)
	if err != nil {
		return nil, err
	}
	c := x.Config.EditCluster()
	names := make([]string, 0, len(c.X509KeyNames)+1)
	for _, n := range c.X509KeyNames {
		if !slices.Contains(pk.gone, n) && n != pk.key.Name {
			names = append(names, n)
		}
	}
	c.X509KeyNames = append(names, pk.key.Name)
	name := pk.key.Name
	return map[string]any{
		"handshake":     handshake,
		"x509_key_name": []any{name, impexp.Sha1Hmac(pk.cds, name, salt), salt},
		"x509_ca":       ca,
	}, nil
}

// exportArgs is CheckArguments of LUBackupExport.
func exportArgs(m *rapiv2.OpBackupExport) error {
	if exportModeOf(m.Mode) != "remote" {
		return nil
	}
	if len(m.GetX509KeyName()) == 0 {
		return errs.Prereq(errs.CodeInval, "Missing X509 key name for encryption")
	}
	if m.GetDestinationX509Ca() == "" {
		return errs.Prereq(errs.CodeInval, "Missing destination X509 CA")
	}
	return nil
}

// Locks implements Executor: the instance and, for a local export,
// shared, every node (old exports on any node may be removed).
func (BackupExport) Locks(op proto.Message, st *cluster.State) ([]Lock, error) {
	m, ok := op.(*rapiv2.OpBackupExport)
	if !ok {
		return nil, obUnexpected(op)
	}
	if err := exportArgs(m); err != nil {
		return nil, err
	}
	if exportModeOf(m.Mode) == "remote" {
		return instanceLocks(op, st, lockSpec{instanceMode: Exclusive})
	}
	return instanceLocks(op, st, lockSpec{instanceMode: Exclusive, nodes: true, nodeMode: Shared, allNodes: true})
}

// locksParams is Locks with the write of LUBackupExport.ExpandNames: a
// local export's target node uuid and full name.
func (b BackupExport) locksParams(op proto.Message, st *cluster.State) ([]Lock, []paramWrite, error) {
	locks, err := b.Locks(op, st)
	m, ok := op.(*rapiv2.OpBackupExport)
	if err != nil || !ok || exportModeOf(m.Mode) == "remote" || m.TargetNodeUuid != nil {
		return locks, nil, err
	}
	var w []paramWrite
	if name := m.GetTargetNode().GetStringValue(); name != "" {
		if u, full, err := st.NodeByName(name); err == nil {
			w = append(w, paramWrite{"target_node_uuid", u}, paramWrite{"target_node", full})
		}
	}
	return locks, w, nil
}

func (BackupExport) needsRun(op proto.Message) bool {
	m, ok := op.(*rapiv2.OpBackupExport)
	return ok && exportModeOf(m.Mode) == "remote"
}

// remoteExport is a checked remote export (CheckPrereq of LUBackupExport).
type remoteExport struct {
	inst  *cluster.Instance
	dests []impexp.Destination
	key   *impexp.KeyPair
	ca    *x509.Certificate
}

// exportChecks is the part of CheckPrereq of LUBackupExport common to
// both modes.
func exportChecks(cfg *cluster.Config, m *rapiv2.OpBackupExport) (*cluster.Instance, *cluster.Node, error) {
	inst, err := findInstance(cfg, m.GetInstanceName())
	if err != nil {
		return nil, nil, err
	}
	shutdown := m.Shutdown == nil || m.GetShutdown()
	if m.GetRemoveInstance() && inst.AdminState == cluster.AdminUp && !shutdown {
		return nil, nil, errs.Prereq(errs.CodeState, "Can not remove instance without shutting it down before")
	}
	pnode := cfg.Nodes[inst.PrimaryNode]
	if err := checkNodeOnline(pnode, ""); err != nil {
		return nil, nil, err
	}
	return inst, pnode, nil
}

// checkExport is CheckPrereq of LUBackupExport in remote mode.
func (r *Remote) checkExport(cfg *cluster.Config, m *rapiv2.OpBackupExport) (*remoteExport, error) {
	inst, _, err := exportChecks(cfg, m)
	if err != nil {
		return nil, err
	}
	targets, ok := jsonValue(m.GetTargetNode()).([]any)
	if !ok {
		return nil, errs.Prereq(errs.CodeInval, "Remote exports require the destination information as a list")
	}
	if len(targets) != len(inst.Disks) {
		return nil, errs.Prereq(errs.CodeInval, "Received destination information for %d disks, but instance %s has %d disks",
			len(targets), m.GetInstanceName(), len(inst.Disks))
	}
	cds, err := r.secret(cfg)
	if err != nil {
		return nil, err
	}
	name, err := impexp.CheckKeyName(cds, listValues(m.GetX509KeyName()))
	if err != nil {
		return nil, errs.Prereq(errs.CodeInval, "%s", err.Error())
	}
	ca, err := r.loadPeerCA(cds, m.GetDestinationX509Ca(), "destination")
	if err != nil {
		return nil, err
	}
	ex := &remoteExport{inst: inst, ca: ca}
	for i, t := range targets {
		d, err := impexp.CheckDiskInfo(cds, i, t)
		if err != nil {
			return nil, errs.Prereq(errs.CodeInval, "Target info for disk %d: %s", i, err.Error())
		}
		ex.dests = append(ex.dests, d)
	}
	key, err := r.keys.Get(name)
	switch {
	case errors.Is(err, impexp.ErrNoKey):
		return nil, errs.Prereq(errs.CodeInval, "X509 key %s not found", name)
	case err != nil:
		return nil, err
	case r.cfg.Now().After(key.Cert.NotAfter):
		return nil, errs.Prereq(errs.CodeInval, "X509 key %s has expired", name)
	}
	ex.key = key
	return ex, nil
}

// exportDone is what BackupExport.Run hands to Exec.
type exportDone struct{ dresults []any }

// Run implements Runner (remote mode): each disk is sent to its
// destination (ExportInstanceHelper.RemoteExport); an error leaves the
// instance as it is.
func (b BackupExport) Run(x *ExecContext, op proto.Message) error {
	m, ok := op.(*rapiv2.OpBackupExport)
	if !ok {
		return obUnexpected(op)
	}
	r := remoteOr(b.Remote)
	ex, err := r.checkExport(x.State.Config(), m)
	if err != nil {
		return err
	}
	inst := ex.inst
	if (m.Shutdown == nil || m.GetShutdown()) && inst.Running {
		x.Log("Shutting down instance " + inst.Name)
	}
	tlsCfg := impexp.ClientTLS(ex.key, ex.ca, r.cfg.Now)
	sent := make([]bool, len(ex.dests))
	var wg sync.WaitGroup
	for i, d := range ex.dests {
		x.Log(fmt.Sprintf("Sending disk %d to %s:%s", i, d.Host, d.Port))
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := impexp.Send(x.Context(), d, tlsCfg, inst.Disks[i].Size, r.cfg.ConnectTimeout, impexp.Events{
				Connected: func() { x.Log(fmt.Sprintf("Disk %d is now sending data", i)) },
			})
			if err != nil {
				x.Log(fmt.Sprintf("Disk %d failed to send data: %s", i, r.transferFailure(x, i, err)))
				return
			}
			x.Log(fmt.Sprintf("Disk %d finished sending data", i))
			sent[i] = true
		}()
	}
	wg.Wait()
	if err := x.Context().Err(); err != nil {
		return err
	}
	var failed []string
	dresults := make([]any, len(sent))
	for i, v := range sent {
		dresults[i] = v
		if !v {
			failed = append(failed, strconv.Itoa(i))
		}
	}
	if len(failed) > 0 {
		return errs.Exec("Export failed, errors in disk export: disk(s) %s", obCommaJoin(failed))
	}
	x.handoff = &exportDone{dresults: dresults}
	return nil
}

// Exec implements Executor.
func (b BackupExport) Exec(x *ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpBackupExport)
	if !ok {
		return nil, obUnexpected(op)
	}
	if err := exportArgs(m); err != nil {
		return nil, err
	}
	if exportModeOf(m.Mode) == "remote" {
		return b.execRemote(x, m)
	}
	cfg := x.Config
	inst, pnode, err := exportChecks(cfg, m)
	if err != nil {
		return nil, err
	}
	shutdown := m.Shutdown == nil || m.GetShutdown()
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
	cfg.Exports = append(exports, cluster.Export{Node: dst.UUID, Name: inst.Name, Info: cluster.NewExportInfo(cfg.Cluster, inst)})
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

// execRemote is the configuration part of a remote export, after Run sent
// every disk: the instance is removed if asked.
func (b BackupExport) execRemote(x *ExecContext, m *rapiv2.OpBackupExport) (any, error) {
	r := remoteOr(b.Remote)
	if x.DryRun {
		_, err := r.checkExport(x.Config, m)
		return nil, err
	}
	done, ok := x.handoff.(*exportDone)
	if !ok {
		return nil, errs.Exec("The disks were not sent")
	}
	inst, _, err := exportChecks(x.Config, m)
	if err != nil {
		return nil, err
	}
	switch {
	case m.GetRemoveInstance():
		x.Log("Removing instance " + inst.Name)
		releaseIPs(x.Config, inst.NICs)
		delete(x.Config.Instances, inst.UUID)
	case (m.Shutdown == nil || m.GetShutdown()) && inst.Running && inst.AdminState == cluster.AdminUp:
		x.Log("Starting instance " + inst.Name)
	}
	return []any{true, done.dresults}, nil
}
