package lu

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/impexp"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// BackupPrepare implements OP_BACKUP_PREPARE (LUBackupPrepare): null in
// local mode; in remote mode a new X509 key and self-signed CA on the
// primary node (kept by the Remote until it expires), returned as
// {"handshake", "x509_key_name", "x509_ca"} signed with the cluster domain
// secret (HMAC-SHA1), the key name being recorded in the configuration.
//
// Not split into opexec.Phased: remote mode makes a key pair, kept by the
// Remote outside the configuration (Run); Exec returns it.
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
//
// Not split into opexec.Phased: remote mode sends the disks over the
// network, which no Check on a snapshot can do and no Apply may do. It
// keeps the Runner shape instead: Run (outside any transaction, under the
// locks, after "running" is durable) shuts the instance down as needed and
// transfers the disks, and hands its outcome to Exec (SetHandoff), which
// only records it in the configuration and may run more than once. A
// crash during Run ends the job as an unclean shutdown.
type BackupExport struct {
	// Remote configures the remote mode (nil: DefaultExecutors' one).
	Remote *Remote
}

func exportModeOf(m *rapiv2.ExportMode) string {
	if m == nil {
		return ""
	}
	s, _ := legacyenum.Of(m)
	return s
}

// preparedKey is what BackupPrepare.Run hands to Exec.
type preparedKey struct {
	cds  string
	key  *impexp.KeyPair
	gone []string // the expired keys Run removed
}

// Locks implements Executor: the instance.
func (BackupPrepare) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return instanceLocks(op, st, lockSpec{instanceMode: opexec.Exclusive})
}

func (BackupPrepare) NeedsRun(op proto.Message) bool {
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
func (p BackupPrepare) Run(x *opexec.ExecContext, op proto.Message) error {
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
	x.SetHandoff(&preparedKey{cds: cds, key: key, gone: gone})
	return nil
}

// Exec implements Executor.
func (p BackupPrepare) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
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
	pk, ok := x.Handoff().(*preparedKey)
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
func (BackupExport) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpBackupExport)
	if !ok {
		return nil, obUnexpected(op)
	}
	if err := exportArgs(m); err != nil {
		return nil, err
	}
	if exportModeOf(m.Mode) == "remote" {
		return instanceLocks(op, st, lockSpec{instanceMode: opexec.Exclusive})
	}
	return instanceLocks(op, st, lockSpec{instanceMode: opexec.Exclusive, nodes: true, nodeMode: opexec.Shared, allNodes: true})
}

// LocksParams is Locks with the write of LUBackupExport.ExpandNames: a
// local export's target node uuid and full name.
func (b BackupExport) LocksParams(op proto.Message, st *cluster.State) ([]opexec.Lock, []opexec.ParamWrite, error) {
	locks, err := b.Locks(op, st)
	m, ok := op.(*rapiv2.OpBackupExport)
	if err != nil || !ok || exportModeOf(m.Mode) == "remote" || m.TargetNodeUuid != nil {
		return locks, nil, err
	}
	var w []opexec.ParamWrite
	if name := m.GetTargetNode().GetStringValue(); name != "" {
		if u, full, err := st.NodeByName(name); err == nil {
			w = append(w, opexec.ParamWrite{Name: "target_node_uuid", Value: u}, opexec.ParamWrite{Name: "target_node", Value: full})
		}
	}
	return locks, w, nil
}

func (BackupExport) NeedsRun(op proto.Message) bool {
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
	targets, ok := opexec.JSONValue(m.GetTargetNode()).([]any)
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
	if err := exportSleepCheck(m); err != nil {
		return nil, err
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

// snapshotCapable are Ganeti's DTS_SNAPSHOT_CAPABLE: the disk templates
// whose disks can be snapshotted for a live export.
var snapshotCapable = []string{"drbd", "ext", "plain"}

// exportSleepCheck is the long_sleep check of LUBackupExport's CheckPrereq.
func exportSleepCheck(m *rapiv2.OpBackupExport) error {
	if m.GetLongSleep() && !exportShutdown(m) {
		return errs.Prereq(errs.CodeInval, "The long sleep option only makes sense when the instance can be shut down.")
	}
	return nil
}

// exportShutdown is the opcode's shutdown parameter (default true).
func exportShutdown(m *rapiv2.OpBackupExport) bool { return m.Shutdown == nil || m.GetShutdown() }

// exportRun is an export in progress: what LUBackupExport's Exec decided
// before the disks are transferred.
type exportRun struct {
	inst      *cluster.Instance
	reboot    bool // DoReboot: start the instance again afterwards
	snapshots bool // the disks are exported from snapshots
	activated bool // the disks were activated for the export
}

// label is the disk's name in the transfer messages.
func (ex *exportRun) label(i int) string {
	if ex.snapshots {
		return fmt.Sprintf("snapshot/%d", i)
	}
	return fmt.Sprintf("disk/%d", i)
}

// exportPlan is the beginning of LUBackupExport's Exec without its
// effects: whether the instance is restarted and whether its disks can be
// snapshotted. An instance marked up that stays (TrySnapshot) is exported
// from snapshots when all its disks support them; otherwise it must be
// shut down and allowed to stay down (long_sleep), else the export aborts
// with Ganeti's OpExecError.
func exportPlan(m *rapiv2.OpBackupExport, inst *cluster.Instance) (*exportRun, error) {
	shutdown := exportShutdown(m)
	up := inst.AdminState == cluster.AdminUp
	ex := &exportRun{inst: inst, reboot: shutdown && up && !m.GetRemoveInstance(), activated: !inst.DisksActive}
	if m.GetRemoveInstance() || !up {
		return ex, nil
	}
	ex.snapshots = len(inst.Disks) == 0 || slices.Contains(snapshotCapable, inst.DiskTemplate)
	switch {
	case ex.snapshots:
	case !shutdown:
		return ex, errs.Exec("Not all disks could be snapshotted, and you requested a live export; aborting")
	case !m.GetLongSleep():
		return ex, errs.Exec("Not all disks could be snapshotted, and you did not allow the instance to remain offline for a longer time through the --long-sleep option; aborting")
	}
	return ex, nil
}

// startExport runs the beginning of LUBackupExport's Exec on x.Config
// (in a Run phase, without a configuration, it only logs):
// the instance is shut down if asked (its disks stay active), its disks
// are activated if they were not, snapshotted when they can be, and the
// instance is started again at once when it was snapshotted. When the
// export must abort, the shutdown stays (the instance is left marked up
// but down, as Ganeti leaves it): the error is FailKeeping's.
func startExport(x *opexec.ExecContext, m *rapiv2.OpBackupExport, inst *cluster.Instance, pnode *cluster.Node) (*exportRun, error) {
	ex, planErr := exportPlan(m, inst)
	if exportShutdown(m) {
		x.Log("Shutting down instance " + inst.Name)
		if inst.Running && x.Config != nil {
			stopInstance(x.Config.EditInstance(inst.UUID))
		}
	}
	if ex.activated {
		x.Log("Activating disks for " + inst.Name)
	}
	if planErr != nil {
		if ex.activated {
			x.Log("Deactivating disks for " + inst.Name)
		}
		if exportShutdown(m) {
			return nil, opexec.FailKeeping(planErr)
		}
		return nil, planErr
	}
	if ex.snapshots {
		for i := range inst.Disks {
			x.Log(fmt.Sprintf("Creating a snapshot of disk/%d on node %s", i, pnode.Name))
		}
		if ex.reboot {
			exportRestart(x, inst)
		}
	}
	return ex, nil
}

// finish is the end of LUBackupExport's Exec after the transfer: the
// instance is started if it was not from snapshots, the disks activated
// for the export are deactivated.
func (ex *exportRun) finish(x *opexec.ExecContext) {
	if ex.reboot && !ex.snapshots {
		exportRestart(x, ex.inst)
	}
	if ex.activated {
		x.Log("Deactivating disks for " + ex.inst.Name)
	}
}

// exportRestart is LUBackupExport's StartInstance.
func exportRestart(x *opexec.ExecContext, inst *cluster.Instance) {
	x.Log("Starting instance " + inst.Name)
	if x.Config != nil {
		startInstance(x.Config, x.Config.EditInstance(inst.UUID), nil)
	}
}

// exportDone is what BackupExport.Run hands to Exec: the disks were sent
// (ex, dresults), or the export aborted before (err).
type exportDone struct {
	ex       *exportRun
	dresults []any
	err      error
}

// Run implements Runner (remote mode): each disk is sent to its
// destination (ExportInstanceHelper.RemoteExport); an error leaves the
// instance as it is.
func (b BackupExport) Run(x *opexec.ExecContext, op proto.Message) error {
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
	run, err := startExport(x, m, inst, x.State.Config().Nodes[inst.PrimaryNode])
	if err != nil {
		x.SetHandoff(&exportDone{err: err})
		return nil
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
	run.finish(x)
	x.SetHandoff(&exportDone{ex: run, dresults: dresults})
	return nil
}

// Exec implements Executor.
func (b BackupExport) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
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
	if err := exportSleepCheck(m); err != nil {
		return nil, err
	}
	if x.DryRun {
		return nil, nil
	}
	ex, err := startExport(x, m, inst, pnode)
	if err != nil {
		return nil, err
	}
	dresults := make([]any, len(inst.Disks))
	for i := range inst.Disks {
		x.Log(fmt.Sprintf("Exporting %s from %s to %s", ex.label(i), pnode.Name, dst.Name))
		dresults[i] = true
	}
	ex.finish(x)
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
func (b BackupExport) execRemote(x *opexec.ExecContext, m *rapiv2.OpBackupExport) (any, error) {
	r := remoteOr(b.Remote)
	if x.DryRun {
		_, err := r.checkExport(x.Config, m)
		return nil, err
	}
	done, ok := x.Handoff().(*exportDone)
	if !ok {
		return nil, errs.Exec("The disks were not sent")
	}
	inst, _, err := exportChecks(x.Config, m)
	if err != nil {
		return nil, err
	}
	// Run logged what happened to the instance; its state changes here.
	if exportShutdown(m) && inst.Running {
		stopInstance(x.Config.EditInstance(inst.UUID))
	}
	if done.err != nil {
		return nil, done.err // FailKeeping's when the instance was shut down
	}
	switch {
	case m.GetRemoveInstance():
		x.Log("Removing instance " + inst.Name)
		releaseIPs(x.Config, inst.NICs)
		delete(x.Config.Instances, inst.UUID)
	case done.ex.reboot:
		startInstance(x.Config, x.Config.EditInstance(inst.UUID), nil)
	}
	return []any{true, done.dresults}, nil
}
