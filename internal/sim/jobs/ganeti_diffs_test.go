package jobs

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Issue 14, section 2: behaviour that differed from Ganeti 3.0.2, each
// with Ganeti's message and classification.

func wantOpResult(t *testing.T, j *Job, want string) {
	t.Helper()
	if got := jsonOf(t, j.OpResult[0]); got != want {
		t.Errorf("opresult\n got %s\nwant %s", got, want)
	}
}

// Hypervisor parameters are checked against the instance's hypervisor
// (CheckParameterSyntax of its class), not against every hypervisor's.
func TestHypervisorParametersOfTheInstancesHypervisor(t *testing.T) {
	v := newInstEnv(t)
	const notSupported = `["HypervisorError",["Parameter 'kernel_path' is not supported"]]`
	kernel := mustStruct(map[string]any{"kernel_path": "/boot/x"})

	modify := &rapiv2.OpInstanceSetParams{InstanceName: proto.String("inst1.example.com"), Hvparams: kernel}
	wantOpResult(t, v.run(modify), notSupported)

	op := create("inst2.example.com", "diskless")
	op.Hvparams = kernel
	wantOpResult(t, v.run(op), notSupported)
	if slices.Contains(v.model.State().Names("instance"), "inst2.example.com") {
		t.Error("the instance was created")
	}

	startup := &rapiv2.OpInstanceStartup{InstanceName: proto.String("inst1.example.com"), Hvparams: kernel}
	wantOpResult(t, v.run(startup), notSupported)

	clusterHV := func(hv string) *rapiv2.OpClusterSetParams {
		return &rapiv2.OpClusterSetParams{Hvparams: mustStruct(map[string]any{hv: map[string]any{"kernel_path": "/boot/x"}})}
	}
	wantOpResult(t, v.run(clusterHV("fake")), notSupported)
	// kvm has a kernel_path: the cluster-level parameter is accepted.
	v.runOK(clusterHV("kvm"))
	if got := v.model.State().Config().Cluster.HVParams["kvm"]["kernel_path"]; got != "/boot/x" {
		t.Errorf("kvm kernel_path %v", got)
	}
	// A parameter of no hypervisor fails Ganeti's type check first.
	op = create("inst2.example.com", "diskless")
	op.Hvparams = mustStruct(map[string]any{"no_such_param": "x"})
	if j := v.run(op); !strings.Contains(jsonOf(t, j.OpResult[0]), "Unknown parameter 'no_such_param'") {
		t.Errorf("opresult %s", jsonOf(t, j.OpResult[0]))
	}
}

// exportLocal is a local export of name to node3.
func exportLocal(name string, mod func(*rapiv2.OpBackupExport)) *rapiv2.OpBackupExport {
	op := &rapiv2.OpBackupExport{InstanceName: proto.String(name), TargetNode: structpb.NewStringValue("node3.example.com"),
		Mode: rapiv2.ExportMode_EXPORT_MODE_LOCAL.Enum()}
	if mod != nil {
		mod(op)
	}
	return op
}

// Ganeti snapshots the disks of an instance marked up that stays (plain,
// drbd and ext disks only); without snapshots the instance must be shut
// down for the export and allowed to stay down (long_sleep).
func TestExportSnapshotRules(t *testing.T) {
	v := newInstEnv(t)
	v.runOK(create("file1.example.com", "file", 1024))
	v.runOK(create("plain1.example.com", "plain", 1024))
	status := func(name string) string {
		t.Helper()
		return jsonOf(t, v.instField(name, "admin_state", "status", "serial_no"))
	}
	fileBefore := status("file1.example.com")
	if fileBefore != `["up","running",1]` && fileBefore != `["up","running",2]` {
		t.Fatalf("file1: %s", fileBefore)
	}

	live := v.run(exportLocal("file1.example.com", func(op *rapiv2.OpBackupExport) { op.Shutdown = proto.Bool(false) }))
	wantOpResult(t, live, `["OpExecError",["Not all disks could be snapshotted, and you requested a live export; aborting"]]`)
	if got := status("file1.example.com"); got != fileBefore {
		t.Errorf("after a refused live export: %s, was %s", got, fileBefore)
	}

	sleep := v.run(exportLocal("file1.example.com", func(op *rapiv2.OpBackupExport) {
		op.Shutdown = proto.Bool(false)
		op.LongSleep = proto.Bool(true)
	}))
	wantOpResult(t, sleep, `["OpPrereqError",["The long sleep option only makes sense when the instance can be shut down.","wrong_input"]]`)

	// Shut down, then refused: the instance stays down, marked up, and the
	// configuration keeps its serial number (a shutdown is not a change).
	down := v.run(exportLocal("file1.example.com", nil))
	wantOpResult(t, down, `["OpExecError",["Not all disks could be snapshotted, and you did not allow the instance to remain offline for a longer time through the --long-sleep option; aborting"]]`)
	if got, want := status("file1.example.com"), strings.Replace(fileBefore, `"running"`, `"ERROR_down"`, 1); got != want {
		t.Errorf("after a refused export with shutdown: %s, want %s", got, want)
	}
	if got := logMessages(down, 0); !slices.Equal(got, []string{"Shutting down instance file1.example.com"}) {
		t.Errorf("log %q", got)
	}
	for _, e := range v.model.State().Config().Exports {
		if e.Name == "file1.example.com" {
			t.Error("a refused export was recorded")
		}
	}

	v.runOK(&rapiv2.OpInstanceStartup{InstanceName: proto.String("file1.example.com")})
	ok := v.runOK(exportLocal("file1.example.com", func(op *rapiv2.OpBackupExport) { op.LongSleep = proto.Bool(true) }))
	if got, want := logMessages(ok, 0), []string{"Shutting down instance file1.example.com",
		"Exporting disk/0 from node1.example.com to node3.example.com", "Starting instance file1.example.com"}; !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
	if got := jsonOf(t, v.instField("file1.example.com", "status")); got != `["running"]` {
		t.Errorf("after the export: %s", got)
	}

	// plain disks are snapshotted: a live export works.
	snap := v.runOK(exportLocal("plain1.example.com", func(op *rapiv2.OpBackupExport) { op.Shutdown = proto.Bool(false) }))
	if got, want := logMessages(snap, 0), []string{"Creating a snapshot of disk/0 on node node1.example.com",
		"Exporting snapshot/0 from node1.example.com to node3.example.com"}; !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}

	// A stopped instance is not snapshotted: its disks are activated.
	v.runOK(&rapiv2.OpInstanceShutdown{InstanceName: proto.String("file1.example.com")})
	stopped := v.runOK(exportLocal("file1.example.com", nil))
	if got, want := logMessages(stopped, 0), []string{"Shutting down instance file1.example.com", "Activating disks for file1.example.com",
		"Exporting disk/0 from node1.example.com to node3.example.com", "Deactivating disks for file1.example.com"}; !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
}

// The remote mode (move-instance's) has the same rules; the refusal comes
// before any disk is sent.
func TestRemoteExportSnapshotRules(t *testing.T) {
	clock := newFakeClock()
	src := newRIEEnv(t, clock, 0, "s3cret", 2*time.Second)
	dst := newRIEEnv(t, clock, 0, "s3cret", 2*time.Second)
	createSource(t, src, []int64{1024})
	p := src.prepare(t, "moving.example.com")
	imp := dst.remoteImport(t, p, "moving.example.com", []int64{1024}, nil)
	info, ok := dst.importInfo(t, imp)
	if !ok {
		t.Fatalf("no remote-import log entry: %s", jsonOf(t, dst.wait(imp).OpResult))
	}
	exp := src.remoteExport(t, p, "moving.example.com", info, func(op *rapiv2.OpBackupExport) { op.RemoveInstance = proto.Bool(false) })
	ej := src.wait(exp)
	stWantResult(t, ej, "error", `["OpExecError",["Not all disks could be snapshotted, and you did not allow the instance to remain offline for a longer time through the --long-sleep option; aborting"]]`)
	inst := src.instance("moving.example.com")
	if inst == nil || inst.Running || inst.AdminState != cluster.AdminUp {
		t.Errorf("source instance %+v, want marked up and stopped", inst)
	}
	if strings.Contains(logText(ej), "Sending disk") {
		t.Errorf("a disk was sent:\n%s", logText(ej))
	}
}

// Without a storage type, OP_NODE_QUERY_STORAGE uses the first enabled
// disk template's, which must support storage reporting.
func TestNodeQueryStorageDefaultType(t *testing.T) {
	v := newEnv(t, 0, nil) // enabled disk templates: diskless, file
	v.e.Start()
	query := &rapiv2.OpNodeQueryStorage{Nodes: []string{"node1.example.com"}, OutputFields: []string{"name", "type"}}
	stWantResult(t, stRun(t, v, query), "error",
		`["OpPrereqError",["Storage reporting for storage type 'diskless' is not supported. Please use the --storage-type option to specify one of the supported storage types (file, gluster, lvm-pv, lvm-vg, sharedfile) or set the default disk template to one that supports storage reporting."]]`)
	if err := v.model.Update(context.Background(), func(_ store.Tx, cfg *cluster.Config) error {
		cfg.EditCluster().EnabledDiskTemplates = []string{"file", "diskless"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stWantResult(t, stRun(t, v, query), "success", `[["/srv/ganeti/file-storage","file"]]`)
}

// A storage type whose disk templates are all disabled: Ganeti's message,
// without classification, and lvm-pv is checked (and named) as lvm-vg.
func TestStorageTypeNotEnabled(t *testing.T) {
	v := newEnv(t, 0, nil) // enabled disk templates: diskless, file
	v.e.Start()
	const want = `["OpPrereqError",["No disk template of storage type 'lvm-vg' is enabled in this cluster. Enabled disk templates are: diskless,file"]]`
	for _, st := range []rapiv2.StorageType{rapiv2.StorageType_STORAGE_TYPE_LVM_PV, rapiv2.StorageType_STORAGE_TYPE_LVM_VG} {
		stWantResult(t, stRun(t, v, &rapiv2.OpNodeQueryStorage{Nodes: []string{"node1"}, OutputFields: []string{"name"}, StorageType: st.Enum()}), "error", want)
	}
	chg := mustStruct(map[string]any{"allocatable": false})
	stWantResult(t, stRun(t, v, &rapiv2.OpNodeModifyStorage{NodeName: proto.String("node1"), StorageType: rapiv2.StorageType_STORAGE_TYPE_LVM_PV.Enum(),
		Name: proto.String(cluster.PVName), Changes: chg}), "error", want)
	stWantResult(t, stRun(t, v, &rapiv2.OpRepairNodeStorage{NodeName: proto.String("node1"), StorageType: rapiv2.StorageType_STORAGE_TYPE_LVM_VG.Enum(),
		Name: proto.String("xenvg")}), "error", want)
}

// The file storage unit's "used" is the apparent size of the file disks
// in it (Ganeti's CalculateDirectorySize).
func TestFileStorageUsed(t *testing.T) {
	v := newInstEnv(t)
	v.runOK(create("file1.example.com", "file", 1024, 1024))
	v.runOK(create("plain1.example.com", "plain", 1024))
	file := rapiv2.StorageType_STORAGE_TYPE_FILE.Enum()
	for node, want := range map[string]string{"node1": `[["node1.example.com",2048]]`, "node2": `[["node2.example.com",0]]`} {
		j := v.runOK(&rapiv2.OpNodeQueryStorage{Nodes: []string{node}, OutputFields: []string{"node", "used"}, StorageType: file})
		wantOpResult(t, j, want)
	}
}

// replace-disks checks the number of secondaries first, as Ganeti does.
func TestReplaceDisksLayoutFirst(t *testing.T) {
	v := newInstEnv(t)
	v.runOK(create("plain1.example.com", "plain", 1024))
	for _, name := range []string{"inst1.example.com", "plain1.example.com"} {
		op := &rapiv2.OpInstanceReplaceDisks{InstanceName: proto.String(name), Mode: rapiv2.ReplaceDisksMode_REPLACE_DISKS_MODE_REPLACE_ON_PRIMARY.Enum()}
		wantOpResult(t, v.run(op), `["OpPrereqError",["The instance has a strange layout, expected one secondary but found 0","internal_error"]]`)
	}
	// CheckArguments comes before: Ganeti's message for both new-secondary options.
	op := &rapiv2.OpInstanceReplaceDisks{InstanceName: proto.String("plain1.example.com"), Mode: rapiv2.ReplaceDisksMode_REPLACE_DISKS_MODE_REPLACE_NEW_SECONDARY.Enum(),
		RemoteNode: proto.String("node2.example.com"), Iallocator: proto.String("hail")}
	wantOpResult(t, v.run(op), `["OpPrereqError",["Do not specify both, iallocator and node","wrong_input"]]`)
}

// An instance created and started has the serial number of its start and
// a modification time after its creation time (Ganeti's MarkInstanceUp).
func TestCreateAndStartModifies(t *testing.T) {
	v := newInstEnv(t)
	v.runOK(create("up.example.com", "diskless"))
	stopped := create("down.example.com", "diskless")
	stopped.Start = proto.Bool(false)
	v.runOK(stopped)
	for name, serial := range map[string]int64{"up.example.com": 2, "down.example.com": 1} {
		f := v.instField(name, "serial_no", "ctime", "mtime")
		ctime, mtime := f[1].(float64), f[2].(float64)
		if f[0].(int64) != serial {
			t.Errorf("%s: serial_no %v, want %d", name, f[0], serial)
		}
		if serial == 2 && !(mtime > ctime) {
			t.Errorf("%s: mtime %f not after ctime %f", name, mtime, ctime)
		}
		if serial == 1 && mtime != ctime {
			t.Errorf("%s: mtime %f, ctime %f", name, mtime, ctime)
		}
	}
}
