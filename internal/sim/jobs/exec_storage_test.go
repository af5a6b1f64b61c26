package jobs

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/impexp"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

func stRun(t *testing.T, v *env, m proto.Message) *Job {
	t.Helper()
	return v.wait(v.submit(obWrap(t, m)))
}

func stLVMEnv(t *testing.T, secret string) *env {
	t.Helper()
	v := newEnv(t, 3, nil)
	err := v.model.Update(context.Background(), func(_ store.Tx, cfg *cluster.Config) error {
		c := cfg.EditCluster()
		vg := "xenvg"
		c.VolumeGroupName = &vg
		c.EnabledDiskTemplates = append(append([]string(nil), c.EnabledDiskTemplates...), "plain")
		c.DomainSecret = secret
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	v.e.Start()
	return v
}

func stWantResult(t *testing.T, j *Job, status, result string) {
	t.Helper()
	if j.Status != status {
		t.Fatalf("status %s, want %s (result %s)", j.Status, status, jsonOf(t, j.OpResult))
	}
	if result != "" {
		if got := jsonOf(t, j.OpResult[0]); got != result {
			t.Fatalf("result\n got %s\nwant %s", got, result)
		}
	}
}

func TestStorageOpcodes(t *testing.T) {
	ps, pb := proto.String, proto.Bool
	v := stLVMEnv(t, "")
	pv := rapiv2.StorageType_STORAGE_TYPE_LVM_PV.Enum()
	query := &rapiv2.OpNodeQueryStorage{Nodes: []string{"node2"}, OutputFields: []string{"name", "allocatable"}, StorageType: pv}
	stWantResult(t, stRun(t, v, query), "success", `[["/dev/sdb1",true]]`)
	chg, _ := structpb.NewStruct(map[string]any{"allocatable": false})
	stWantResult(t, stRun(t, v, &rapiv2.OpNodeModifyStorage{NodeName: ps("node2"), StorageType: pv, Name: ps("/dev/sdb1"), Changes: chg}), "success", "null")
	stWantResult(t, stRun(t, v, query), "success", `[["/dev/sdb1",false]]`)
	stWantResult(t, stRun(t, v, &rapiv2.OpNodeQueryStorage{Nodes: []string{"node3"}, OutputFields: []string{"allocatable"}, StorageType: pv}), "success", `[[true]]`)

	bad, _ := structpb.NewStruct(map[string]any{"size": 1})
	stWantResult(t, stRun(t, v, &rapiv2.OpNodeModifyStorage{NodeName: ps("node2"), StorageType: pv, Name: ps("/dev/sdb1"), Changes: bad}), "error",
		`["OpPrereqError",["The following fields can not be modified for storage units of type 'lvm-pv': ['size']","wrong_input"]]`)
	stWantResult(t, stRun(t, v, &rapiv2.OpNodeModifyStorage{NodeName: ps("node2"), StorageType: rapiv2.StorageType_STORAGE_TYPE_LVM_VG.Enum(), Name: ps("xenvg"), Changes: chg}), "error",
		`["OpPrereqError",["Storage units of type 'lvm-vg' can not be modified","wrong_input"]]`)
	stWantResult(t, stRun(t, v, &rapiv2.OpNodeModifyStorage{NodeName: ps("node2"), StorageType: pv, Name: ps("/dev/nope"), Changes: chg}), "error",
		`["OpExecError",["Failed to modify storage unit '/dev/nope' on node2.example.com: Storage unit '/dev/nope' not found"]]`)

	stWantResult(t, stRun(t, v, &rapiv2.OpRepairNodeStorage{NodeName: ps("node2"), StorageType: rapiv2.StorageType_STORAGE_TYPE_LVM_VG.Enum(), Name: ps("xenvg")}), "success", "null")
	stWantResult(t, stRun(t, v, &rapiv2.OpRepairNodeStorage{NodeName: ps("node2"), StorageType: rapiv2.StorageType_STORAGE_TYPE_FILE.Enum(), Name: ps("x")}), "error",
		`["OpPrereqError",["Storage units of type 'file' can not be repaired","wrong_input"]]`)

	stWantResult(t, stRun(t, v, &rapiv2.OpNodePowercycle{NodeName: ps("node1")}), "error",
		`["OpPrereqError",["The node is the master and the force parameter was not set","wrong_input"]]`)
	stWantResult(t, stRun(t, v, &rapiv2.OpNodePowercycle{NodeName: ps("node1"), Force: pb(true)}), "success", `"Reboot scheduled in 5 seconds"`)
	node2 := func() cluster.Node {
		uuid, _, err := v.model.State().NodeByName("node2")
		if err != nil {
			t.Fatal(err)
		}
		return *v.model.State().Config().Nodes[uuid]
	}
	before := node2()
	stWantResult(t, stRun(t, v, &rapiv2.OpNodePowercycle{NodeName: ps("node2")}), "success", `"Reboot scheduled in 5 seconds"`)
	// The node rebooted: a new boot id, no configuration change.
	after := node2()
	if after.BootID == before.BootID || after.BootID == "" {
		t.Errorf("boot id %q after a powercycle, was %q", after.BootID, before.BootID)
	}
	if after.SerialNo != before.SerialNo || after.MTime != before.MTime {
		t.Errorf("serial %d mtime %v after a powercycle, were %d %v", after.SerialNo, after.MTime, before.SerialNo, before.MTime)
	}
	// A dry run reboots nothing.
	stWantResult(t, stRun(t, v, &rapiv2.OpNodePowercycle{NodeName: ps("node2"), DryRun: pb(true)}), "success", "null")
	if got := node2().BootID; got != after.BootID {
		t.Errorf("boot id %q after a dry-run powercycle, was %q", got, after.BootID)
	}
}

func TestBackupOpcodes(t *testing.T) {
	ps, pb := proto.String, proto.Bool
	local, remote := rapiv2.ExportMode_EXPORT_MODE_LOCAL.Enum(), rapiv2.ExportMode_EXPORT_MODE_REMOTE.Enum()

	v0 := stLVMEnv(t, "")
	stWantResult(t, stRun(t, v0, &rapiv2.OpBackupPrepare{InstanceName: ps("inst1"), Mode: remote}), "error",
		`["OpPrereqError",["Cluster domain secret not configured","wrong_input"]]`)

	v := stLVMEnv(t, "s3cret")
	stWantResult(t, stRun(t, v, &rapiv2.OpBackupPrepare{InstanceName: ps("inst1"), Mode: local}), "success", "null")
	j := stRun(t, v, &rapiv2.OpBackupPrepare{InstanceName: ps("inst1"), Mode: remote})
	stWantResult(t, j, "success", "")
	var res struct {
		Handshake []any  `json:"handshake"`
		KeyName   []any  `json:"x509_key_name"`
		CA        string `json:"x509_ca"`
	}
	if err := json.Unmarshal([]byte(jsonOf(t, j.OpResult[0])), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Handshake) != 3 || res.Handshake[1] != impexp.Sha1Hmac("s3cret", "0:Hi, I'm Ganeti", res.Handshake[2].(string)) {
		t.Fatalf("handshake %v", res.Handshake)
	}
	name, _ := res.KeyName[0].(string)
	if len(res.KeyName) != 3 || res.KeyName[1] != impexp.Sha1Hmac("s3cret", name, res.KeyName[2].(string)) {
		t.Fatalf("key name %v", res.KeyName)
	}
	if !strings.HasPrefix(res.CA, "X-Ganeti-Signature: ") || !strings.Contains(res.CA, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("x509_ca %q", res.CA)
	}
	if !v.model.State().Config().Cluster.HasX509KeyName(name) {
		t.Fatalf("key name %s not kept", name)
	}

	target := structpb.NewStringValue("node3")
	stWantResult(t, stRun(t, v, &rapiv2.OpBackupExport{InstanceName: ps("inst1"), TargetNode: target, Mode: local}), "success", `[true,[]]`)
	if got := jsonOf(t, exportNames(t, v)); got != `[["node3.example.com","inst1.example.com"]]` {
		t.Fatalf("exports %s", got)
	}
	// A new export of the same instance replaces the old one.
	stWantResult(t, stRun(t, v, &rapiv2.OpBackupExport{InstanceName: ps("inst1"), TargetNode: structpb.NewStringValue("node2"), Mode: local,
		RemoveInstance: pb(true)}), "success", `[true,[]]`)
	if got := jsonOf(t, exportNames(t, v)); got != `[["node2.example.com","inst1.example.com"]]` {
		t.Fatalf("exports %s", got)
	}
	if _, err := v.model.State().Get("instance", "inst1.example.com", []string{"name"}); err == nil {
		t.Fatal("inst1 not removed")
	}
	stWantResult(t, stRun(t, v, &rapiv2.OpBackupExport{InstanceName: ps("inst2"), TargetNode: structpb.NewStringValue("nonode"), Mode: local}), "error", "")
	stWantResult(t, stRun(t, v, &rapiv2.OpBackupExport{InstanceName: ps("inst2"), TargetNode: target, Mode: remote}), "error",
		`["OpPrereqError",["Missing X509 key name for encryption","wrong_input"]]`)
}

func exportNames(t *testing.T, v *env) [][]string {
	t.Helper()
	var out [][]string
	cfg := v.model.State().Config()
	for _, e := range cfg.Exports {
		out = append(out, []string{cfg.Nodes[e.Node].Name, e.Name})
	}
	return out
}
