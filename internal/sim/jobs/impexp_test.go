package jobs

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/impexp"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// rieEnv is one cluster of a move: an engine whose remote import/export
// uses secret, and x509Clock for its X509 keys and their verification.
// The two clusters of a move share that clock: a certificate the other
// cluster makes a moment later would be "not yet valid" for a clock that
// lags (as for OpenSSL between real clusters whose clocks differ).
type rieEnv struct {
	*env
	remote    *lu.Remote
	x509Clock *fakeClock
}

func newRIEEnv(t *testing.T, clock *fakeClock, instances int, secret string, timeout time.Duration) *rieEnv {
	t.Helper()
	r := &rieEnv{x509Clock: clock}
	r.remote = lu.NewRemote(lu.RemoteConfig{
		DomainSecret:   func() (string, error) { return secret, nil },
		KeyDir:         t.TempDir(),
		ConnectTimeout: timeout,
		Now:            clock.Now,
		Logger:         quiet,
	})
	r.env = newEnv(t, instances, func(c *Config) {
		c.Executors = lu.DefaultExecutors()
		r.remote.Install(c.Executors)
	})
	r.e.Start()
	return r
}

func (r *rieEnv) instance(name string) *cluster.Instance {
	cfg := r.model.State().Config()
	for _, i := range cfg.Instances {
		if i.Name == name {
			return i
		}
	}
	return nil
}

func mustValues(vs []any) []*structpb.Value {
	out := make([]*structpb.Value, len(vs))
	for i, v := range vs {
		out[i] = mustValue(v)
	}
	return out
}

// prepared is the result of a remote OP_BACKUP_PREPARE.
type prepared struct {
	Handshake []any  `json:"handshake"`
	KeyName   []any  `json:"x509_key_name"`
	CA        string `json:"x509_ca"`
}

func (r *rieEnv) prepare(t *testing.T, name string) prepared {
	t.Helper()
	j := stRun(t, r.env, &rapiv2.OpBackupPrepare{InstanceName: proto.String(name), Mode: rapiv2.ExportMode_EXPORT_MODE_REMOTE.Enum()})
	stWantResult(t, j, "success", "")
	var p prepared
	if err := json.Unmarshal([]byte(jsonOf(t, j.OpResult[0])), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// remoteImport submits the destination's OP_INSTANCE_CREATE of a move.
func (r *rieEnv) remoteImport(t *testing.T, p prepared, name string, sizes []int64, mod func(*rapiv2.OpInstanceCreate)) int64 {
	t.Helper()
	var disks []*structpb.Struct
	for _, s := range sizes {
		disks = append(disks, mustStruct(map[string]any{"size": float64(s), "mode": "rw", "name": "None"}))
	}
	template := rapiv2.DiskTemplate_DISK_TEMPLATE_FILE
	if len(sizes) == 0 {
		template = rapiv2.DiskTemplate_DISK_TEMPLATE_DISKLESS
	}
	op := &rapiv2.OpInstanceCreate{
		Mode: rapiv2.InstanceCreateMode_INSTANCE_CREATE_MODE_REMOTE_IMPORT.Enum(), InstanceName: proto.String(name),
		DiskTemplate: template.Enum(), Disks: disks, OsType: proto.String("noop"), Pnode: proto.String("node2"),
		IpCheck: proto.Bool(false), Start: proto.Bool(true), Nics: []*rapiv2.NicParams{{}},
		Beparams:        mustStruct(map[string]any{"maxmem": 512.0, "minmem": 256.0, "vcpus": 2.0}),
		SourceHandshake: mustValues(p.Handshake), SourceX509Ca: proto.String(p.CA), SourceInstanceName: proto.String(name),
	}
	if mod != nil {
		mod(op)
	}
	return r.submit(obWrap(t, op))
}

// importInfo waits for the remote-import log entry of job id.
func (r *rieEnv) importInfo(t *testing.T, id int64) (map[string]any, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	serial := int64(-1)
	for {
		info, logs, _, err := r.e.WaitForChange(ctx, id, []string{"status"}, nil, serial, time.Second)
		if err != nil {
			t.Fatalf("WaitForChange: %v", err)
		}
		for _, l := range logs {
			if s, ok := l[0].(int64); ok {
				serial = max(serial, s)
			}
			if l[2] == opexec.LogRemoteImport {
				m, _ := l[3].(map[string]any)
				return m, true
			}
		}
		if Finalized(info[0].(string)) {
			return nil, false
		}
	}
}

// remoteExport submits the source's OP_BACKUP_EXPORT of a move.
func (r *rieEnv) remoteExport(t *testing.T, p prepared, name string, info map[string]any, mod func(*rapiv2.OpBackupExport)) int64 {
	t.Helper()
	target, err := structpb.NewValue(info["disks"])
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := info["x509_ca"].(string)
	op := &rapiv2.OpBackupExport{
		InstanceName: proto.String(name), Mode: rapiv2.ExportMode_EXPORT_MODE_REMOTE.Enum(), TargetNode: target,
		Shutdown: proto.Bool(true), RemoveInstance: proto.Bool(true), X509KeyName: mustValues(p.KeyName),
		DestinationX509Ca: proto.String(ca), Compress: proto.String("none"),
	}
	if mod != nil {
		mod(op)
	}
	return r.submit(obWrap(t, op))
}

func logText(j *Job) string {
	var b strings.Builder
	for _, op := range j.OpLog {
		for _, l := range op {
			if s, ok := l.Message.(string); ok {
				b.WriteString(s + "\n")
			}
		}
	}
	return b.String()
}

// createSource adds "moving.example.com" (file disks of sizes, running)
// to src.
func createSource(t *testing.T, src *rieEnv, sizes []int64) {
	t.Helper()
	var disks []*structpb.Struct
	for _, s := range sizes {
		disks = append(disks, mustStruct(map[string]any{"size": float64(s)}))
	}
	stWantResult(t, stRun(t, src.env, &rapiv2.OpInstanceCreate{
		InstanceName: proto.String("moving.example.com"), DiskTemplate: rapiv2.DiskTemplate_DISK_TEMPLATE_FILE.Enum(),
		Disks: disks, OsType: proto.String("noop"), Pnode: proto.String("node1"), IpCheck: proto.Bool(false), Nics: []*rapiv2.NicParams{{}},
		Beparams: mustStruct(map[string]any{"maxmem": 512.0, "minmem": 256.0, "vcpus": 2.0}),
	}), "success", "")
}

// TestRemoteMove is move-instance's flow between two engines: prepare on
// the source, remote import on the destination (which publishes where to
// send each disk), remote export with removal on the source.
func TestRemoteMove(t *testing.T) {
	clock := newFakeClock()
	src := newRIEEnv(t, clock, 0, "s3cret", 5*time.Second)
	dst := newRIEEnv(t, clock, 0, "s3cret", 5*time.Second)
	sizes := []int64{1024, 2048}
	createSource(t, src, sizes)
	p := src.prepare(t, "moving.example.com")

	imp := dst.remoteImport(t, p, "moving.example.com", sizes, nil)
	info, ok := dst.importInfo(t, imp)
	if !ok {
		t.Fatalf("no remote-import log entry: %s", jsonOf(t, dst.wait(imp).OpResult))
	}
	disks, _ := info["disks"].([]any)
	if len(disks) != 2 || !strings.HasPrefix(info["x509_ca"].(string), "X-Ganeti-Signature: ") {
		t.Fatalf("remote-import entry %s", jsonOf(t, info))
	}
	// The destination is not in the configuration before its disks arrived.
	if dst.instance("moving.example.com") != nil {
		t.Fatal("instance created before the import")
	}
	exp := src.remoteExport(t, p, "moving.example.com", info, nil)
	ej, ij := src.wait(exp), dst.wait(imp)
	stWantResult(t, ej, "success", `[true,[true,true]]`)
	stWantResult(t, ij, "success", `["node2.example.com"]`)

	if src.instance("moving.example.com") != nil {
		t.Error("the source instance was not removed")
	}
	got := dst.instance("moving.example.com")
	if got == nil || !got.Running || got.AdminState != cluster.AdminUp || len(got.Disks) != 2 || got.Disks[0].Size != 1024 || got.Disks[1].Size != 2048 {
		t.Fatalf("destination instance %+v", got)
	}
	for _, want := range []string{"Sending disk 1 to 127.0.0.1:", "Disk 0 finished sending data", "Removing instance moving.example.com"} {
		if !strings.Contains(logText(ej), want) {
			t.Errorf("export log lacks %q:\n%s", want, logText(ej))
		}
	}
	for _, want := range []string{"* preparing remote import...", "Disk 1 is now listening", "Disk 1 finished receiving data", "Running rename script for moving.example.com", "* starting instance..."} {
		if !strings.Contains(logText(ij), want) {
			t.Errorf("import log lacks %q:\n%s", want, logText(ij))
		}
	}
	if !src.model.State().Config().Cluster.HasX509KeyName(p.KeyName[0].(string)) {
		t.Error("the key name was not recorded")
	}
}

// A diskless instance moves too: the import publishes no disk.
func TestRemoteMoveDiskless(t *testing.T) {
	clock := newFakeClock()
	src := newRIEEnv(t, clock, 1, "s3cret", 5*time.Second)
	dst := newRIEEnv(t, clock, 0, "s3cret", 5*time.Second)
	p := src.prepare(t, "inst1.example.com")
	imp := dst.remoteImport(t, p, "inst1.example.com", nil, nil)
	info, ok := dst.importInfo(t, imp)
	if !ok || len(info["disks"].([]any)) != 0 {
		t.Fatalf("remote-import entry %v", info)
	}
	stWantResult(t, src.wait(src.remoteExport(t, p, "inst1.example.com", info, nil)), "success", `[true,[]]`)
	stWantResult(t, dst.wait(imp), "success", "")
	if src.instance("inst1.example.com") != nil || dst.instance("inst1.example.com") == nil {
		t.Fatal("diskless instance not moved")
	}
}

// Clusters with different domain secrets: the import refuses the
// handshake; nothing is created, nothing listens.
func TestRemoteImportWrongSecret(t *testing.T) {
	clock := newFakeClock()
	src := newRIEEnv(t, clock, 1, "s3cret", 5*time.Second)
	dst := newRIEEnv(t, clock, 0, "other", 5*time.Second)
	p := src.prepare(t, "inst1.example.com")
	j := dst.wait(dst.remoteImport(t, p, "inst1.example.com", []int64{1024}, nil))
	stWantResult(t, j, "error", `["OpPrereqError",["Invalid handshake: Hash didn't match, clusters don't share the same domain secret","wrong_input"]]`)
	if dst.instance("inst1.example.com") != nil || src.instance("inst1.example.com") == nil {
		t.Fatal("an instance was created or lost")
	}
	// A valid handshake but a CA signed with another secret.
	good := p.Handshake
	p.Handshake = nil
	hs, _ := impexp.ComputeHandshake("other")
	p.Handshake = hs
	j = dst.wait(dst.remoteImport(t, p, "inst1.example.com", []int64{1024}, nil))
	stWantResult(t, j, "error", `["GenericError",["X509 certificate signature is invalid"]]`)
	p.Handshake = good
	j = dst.wait(dst.remoteImport(t, p, "inst1.example.com", []int64{1024}, func(op *rapiv2.OpInstanceCreate) { op.SourceHandshake = nil }))
	stWantResult(t, j, "error", `["OpPrereqError",["Missing source handshake","wrong_input"]]`)
}

// The source never connects: the import times out and creates nothing;
// an export to it then fails and leaves the source instance as it was.
func TestRemoteImportTimeout(t *testing.T) {
	clock := newFakeClock()
	src := newRIEEnv(t, clock, 0, "s3cret", 500*time.Millisecond)
	dst := newRIEEnv(t, clock, 0, "s3cret", 300*time.Millisecond)
	createSource(t, src, []int64{1024})
	p := src.prepare(t, "moving.example.com")
	imp := dst.remoteImport(t, p, "moving.example.com", []int64{1024}, func(op *rapiv2.OpInstanceCreate) {
		op.SourceShutdownTimeout = proto.Int64(0)
	})
	info, ok := dst.importInfo(t, imp)
	if !ok {
		t.Fatal("no remote-import log entry")
	}
	ij := dst.wait(imp)
	stWantResult(t, ij, "error", `["OpExecError",["Some disks for instance moving.example.com on node node2.example.com were not imported successfully"]]`)
	if !strings.Contains(logText(ij), "Disk 0 failed to receive data: Not connected after 0.3 seconds") {
		t.Errorf("import log:\n%s", logText(ij))
	}
	if dst.instance("moving.example.com") != nil {
		t.Fatal("half-imported instance left on the destination")
	}
	ej := src.wait(src.remoteExport(t, p, "moving.example.com", info, nil))
	stWantResult(t, ej, "error", `["OpExecError",["Export failed, errors in disk export: disk(s) 0"]]`)
	if !strings.Contains(logText(ej), "Disk 0 failed to send data: Not connected after 0.5 seconds") {
		t.Errorf("export log:\n%s", logText(ej))
	}
	if i := src.instance("moving.example.com"); i == nil || !i.Running {
		t.Fatalf("source instance after a failed export: %+v", i)
	}
}

// The export's checks (LUBackupExport.CheckPrereq in remote mode) on
// destination information made here with the impexp helpers.
func TestRemoteExportChecks(t *testing.T) {
	clock := newFakeClock()
	src := newRIEEnv(t, clock, 0, "s3cret", time.Second)
	createSource(t, src, []int64{1024})
	p := src.prepare(t, "moving.example.com")
	name := p.KeyName[0].(string)
	dest, err := impexp.NewKeyPair("x509-2026-01-01_00_00_00-0a0b0c0d", "dst", src.x509Clock.Now(), impexp.CertValidity)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(secret string) string {
		s, err := impexp.SignCertificate(dest.Cert, secret, "5a1d")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	diskInfo := func(secret string, idx int) any {
		return impexp.ComputeDiskInfo(secret, "5a1d", idx, "127.0.0.1", 9, "00ff")
	}
	info := func(ca string, disks ...any) map[string]any { return map[string]any{"disks": disks, "x509_ca": ca} }
	keyName := func(n, secret string) []any { return []any{n, impexp.Sha1Hmac(secret, n, "ab"), "ab"} }
	for _, tc := range []struct {
		name string
		info map[string]any
		mod  func(*rapiv2.OpBackupExport)
		want string
	}{
		{"two destinations for one disk", info(signed("s3cret"), diskInfo("s3cret", 0), diskInfo("s3cret", 1)), nil,
			`["OpPrereqError",["Received destination information for 2 disks, but instance moving.example.com has 1 disks","wrong_input"]]`},
		{"disk info of another secret", info(signed("s3cret"), diskInfo("other", 0)), nil,
			`["OpPrereqError",["Target info for disk 0: HMAC is wrong","wrong_input"]]`},
		{"CA of another secret", info(signed("other"), diskInfo("s3cret", 0)), nil,
			`["GenericError",["X509 certificate signature is invalid"]]`},
		{"CA not signed", info(impexp.CertPEM(dest.Cert.Raw), diskInfo("s3cret", 0)), nil,
			`["GenericError",["X509 certificate signature is missing"]]`},
		{"key name of another secret", info(signed("s3cret"), diskInfo("s3cret", 0)),
			func(op *rapiv2.OpBackupExport) { op.X509KeyName = mustValues(keyName(name, "other")) },
			`["OpPrereqError",["HMAC for X509 key name is wrong","wrong_input"]]`},
		{"unknown key", info(signed("s3cret"), diskInfo("s3cret", 0)),
			func(op *rapiv2.OpBackupExport) {
				op.X509KeyName = mustValues(keyName("x509-2026-01-01_00_00_00-00000000", "s3cret"))
			},
			`["OpPrereqError",["X509 key x509-2026-01-01_00_00_00-00000000 not found","wrong_input"]]`},
		{"no CA", info("", diskInfo("s3cret", 0)), nil, `["OpPrereqError",["Missing destination X509 CA","wrong_input"]]`},
		{"running, not shut down", info(signed("s3cret"), diskInfo("s3cret", 0)),
			func(op *rapiv2.OpBackupExport) { op.Shutdown = proto.Bool(false) },
			`["OpPrereqError",["Can not remove instance without shutting it down before","wrong_state"]]`},
		{"dry run", info(signed("s3cret"), diskInfo("s3cret", 0)),
			func(op *rapiv2.OpBackupExport) { op.DryRun = proto.Bool(true) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := src.wait(src.remoteExport(t, p, "moving.example.com", tc.info, tc.mod))
			if tc.want == "" {
				stWantResult(t, j, "success", "null")
			} else {
				stWantResult(t, j, "error", tc.want)
			}
			if src.instance("moving.example.com") == nil {
				t.Fatal("the instance was removed")
			}
		})
	}
	// A day later the key and the destination's CA have expired.
	src.x509Clock.Advance(25 * time.Hour)
	j := src.wait(src.remoteExport(t, p, "moving.example.com", info(signed("s3cret"), diskInfo("s3cret", 0)), nil))
	if j.Status != "error" || !strings.Contains(jsonOf(t, j.OpResult), "Invalid destination X509 CA (Certificate is expired (valid from ") {
		t.Fatalf("export with an expired CA: %s", jsonOf(t, j.OpResult))
	}
	later, err := impexp.NewKeyPair("x509-2026-01-01_00_00_00-0a0b0c0e", "dst", src.x509Clock.Now(), impexp.CertValidity)
	if err != nil {
		t.Fatal(err)
	}
	laterCA, _ := impexp.SignCertificate(later.Cert, "s3cret", "5a1d")
	j = src.wait(src.remoteExport(t, p, "moving.example.com", info(laterCA, diskInfo("s3cret", 0)), nil))
	stWantResult(t, j, "error", `["OpPrereqError",["X509 key `+name+` has expired","wrong_input"]]`)
	// The next prepare removes the expired key, from the store of keys
	// and from the configuration.
	p2 := src.prepare(t, "moving.example.com")
	names := src.model.State().Config().Cluster.X509KeyNames
	if len(names) != 1 || names[0] != p2.KeyName[0] {
		t.Fatalf("key names %v after the expiry of %s", names, name)
	}
}

// Only the remote modes have a Run phase (and its durable "running" mark).
func TestRemoteRunnerFor(t *testing.T) {
	remoteImport := &rapiv2.OpInstanceCreate{Mode: rapiv2.InstanceCreateMode_INSTANCE_CREATE_MODE_REMOTE_IMPORT.Enum()}
	for _, tc := range []struct {
		ex   opexec.Executor
		op   proto.Message
		want bool
	}{
		{lu.InstanceCreate{}, &rapiv2.OpInstanceCreate{}, false},
		{lu.InstanceCreate{}, remoteImport, true},
		{lu.BackupExport{}, &rapiv2.OpBackupExport{Mode: rapiv2.ExportMode_EXPORT_MODE_LOCAL.Enum()}, false},
		{lu.BackupExport{}, &rapiv2.OpBackupExport{Mode: rapiv2.ExportMode_EXPORT_MODE_REMOTE.Enum()}, true},
		{lu.BackupPrepare{}, &rapiv2.OpBackupPrepare{}, false},
		{lu.BackupPrepare{}, &rapiv2.OpBackupPrepare{Mode: rapiv2.ExportMode_EXPORT_MODE_REMOTE.Enum()}, true},
		{lu.TestDelay{}, &rapiv2.OpTestDelay{}, true},
		{lu.TagsSet{}, &rapiv2.OpTagsSet{}, false},
	} {
		if got := opexec.RunnerFor(tc.ex, tc.op) != nil; got != tc.want {
			t.Errorf("opexec.RunnerFor(%T, %v) = %v, want %v", tc.ex, tc.op, got, tc.want)
		}
	}
}
