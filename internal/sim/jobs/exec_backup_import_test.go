package jobs

import (
	"context"
	"encoding/json"
	"reflect"
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

// importOp is OP_INSTANCE_CREATE in mode import with nothing but the
// placement and the source given.
func importOp(name, pnode, srcNode, srcPath string) *rapiv2.OpInstanceCreate {
	mode := rapiv2.InstanceCreateMode_INSTANCE_CREATE_MODE_IMPORT
	op := &rapiv2.OpInstanceCreate{
		InstanceName: proto.String(name), Mode: &mode, DiskTemplate: dt("file"), Pnode: proto.String(pnode),
		IpCheck: proto.Bool(false), NameCheck: proto.Bool(true), WaitForSync: proto.Bool(false),
	}
	if srcNode != "" {
		op.SrcNode = proto.String(srcNode)
	}
	if srcPath != "" {
		op.SrcPath = proto.String(srcPath)
	}
	return op
}

// exportedEnv: inst2 (a named 1 GiB file disk, a NIC on link br2 with a
// name, tags, custom backend and OS parameters) created on node1, then
// exported to node2 and removed; the export's MAC is returned.
func exportedEnv(t *testing.T) (*env, string) {
	t.Helper()
	v := newInstEnv(t)
	op := create("inst2.example.com", "file")
	op.Disks = []*structpb.Struct{mustStruct(map[string]any{"size": 1024, "name": "data", "mode": "ro"})}
	op.Nics = []*rapiv2.NicParams{{Link: proto.String("br2"), Name: proto.String("eth0")}}
	op.Beparams = mustStruct(map[string]any{"maxmem": 256, "minmem": 192, "vcpus": 2})
	op.Osparams = mustStruct(map[string]any{"x": "1"})
	op.Tags = []string{"a", "b"}
	v.runOK(op)
	mac := v.instField("inst2.example.com", "nic.macs")[0].([]any)[0].(string)
	local := rapiv2.ExportMode_EXPORT_MODE_LOCAL
	v.runOK(&rapiv2.OpBackupExport{InstanceName: proto.String("inst2.example.com"), TargetNode: structpb.NewStringValue("node2.example.com"),
		Mode: &local, RemoveInstance: proto.Bool(true)})
	return v, mac
}

func TestInstanceImport(t *testing.T) {
	const exportDirInst2 = "/srv/ganeti/export/inst2.example.com"
	type want struct {
		result string            // JSON of the opresult
		fields map[string]string // instance field -> JSON value, after success
		log    []string          // messages the log must contain, in order
	}
	imported := want{
		result: `[["node3.example.com"]]`,
		fields: map[string]string{
			"os": `"noop"`, "disk_template": `"file"`, "hypervisor": `"fake"`,
			"disk.sizes": `[1024]`, "disk.names": `["data"]`, "@disk.modes": `["rw"]`, // Ganeti imports no disk mode
			"nic.macs": `["%M"]`, "nic.names": `["eth0"]`, "nic.links": `["br0"]`,
			"tags": `["a","b"]`, "be/maxmem": `256`, "be/minmem": `192`, "be/vcpus": `2`, "osparams": `{"x":"1"}`,
			"status": `"running"`,
		},
		log: []string{"* disk 0, size 1.0G", "* creating instance disks...", "adding instance inst2.example.com to cluster config",
			"* running the instance OS import scripts...", "Exporting disk/0 from node2.example.com to node3.example.com",
			"disk/0 is now listening, starting export", "disk/0 is sending data on node2.example.com",
			"disk/0 is receiving data on node3.example.com", "disk/0 finished sending data", "disk/0 finished receiving data",
			"Running rename script for inst2.example.com", "* starting instance..."},
	}
	cases := []struct {
		name string
		op   *rapiv2.OpInstanceCreate
		want want
	}{
		{"relative path on src_node", importOp("inst2.example.com", "node3.example.com", "node2.example.com", "inst2.example.com"), imported},
		{"absolute path on src_node", importOp("inst2.example.com", "node3.example.com", "node2.example.com", exportDirInst2), imported},
		{"unnormalized absolute path", importOp("inst2.example.com", "node3.example.com", "node2.example.com", exportDirInst2+"/"), imported},
		{"searched on every node", importOp("inst2.example.com", "node3.example.com", "", "inst2.example.com"), imported},
		{"no src_path: the instance name", importOp("inst2.example.com", "node3.example.com", "", ""), imported},
		{"explicit parameters override the export", func() *rapiv2.OpInstanceCreate {
			op := importOp("inst2.example.com", "node3.example.com", "node2.example.com", "")
			op.Disks = []*structpb.Struct{mustStruct(map[string]any{"size": 2048}), mustStruct(map[string]any{"size": 1024})}
			op.Nics = []*rapiv2.NicParams{{Link: proto.String("br3")}}
			op.Beparams = mustStruct(map[string]any{"maxmem": 512})
			op.Osparams = mustStruct(map[string]any{"x": "2"})
			op.Tags = []string{"c"}
			op.OsType = proto.String("debootstrap+minimal") // Ganeti: always the export's OS
			return op
		}(), want{
			result: `[["node3.example.com"]]`,
			fields: map[string]string{
				"os": `"noop"`, "disk.sizes": `[2048,1024]`, "disk.names": `[null,null]`,
				// Same name as the exported instance: a NIC without MAC gets the exported one.
				"nic.macs": `["%M"]`, "nic.names": `[null]`, "nic.links": `["br3"]`,
				"tags": `["c"]`, "be/maxmem": `512`, "be/minmem": `192`, "osparams": `{"x":"2"}`,
			},
			// Only disk 0 has an image in the export.
			log: []string{"* running the instance OS import scripts...", "Exporting disk/0 from node2.example.com to node3.example.com",
				"disk/0 finished receiving data", "Running rename script for inst2.example.com"},
		}},
		{"another name: new MAC for a NIC given without", func() *rapiv2.OpInstanceCreate {
			op := importOp("inst7.example.com", "node3.example.com", "node2.example.com", "inst2.example.com")
			op.Nics = []*rapiv2.NicParams{{}}
			op.Start = proto.Bool(false)
			return op
		}(), want{result: `[["node3.example.com"]]`, fields: map[string]string{"nic.macs": `["!%M"]`, "status": `"ADMIN_down"`, "disk.sizes": `[1024]`},
			log: []string{"Running rename script for inst7.example.com"}}},
		{"identify_defaults", func() *rapiv2.OpInstanceCreate {
			op := importOp("inst2.example.com", "node3.example.com", "node2.example.com", "")
			op.IdentifyDefaults = proto.Bool(true)
			return op
		}(), want{result: `[["node3.example.com"]]`, fields: map[string]string{
			"custom_beparams": `{"maxmem":256,"minmem":192,"vcpus":2}`, "custom_hvparams": `{}`, "custom_osparams": `{"x":"1"}`,
		}}},
		{"no_install has no effect", func() *rapiv2.OpInstanceCreate {
			op := importOp("inst2.example.com", "node3.example.com", "node2.example.com", "")
			op.NoInstall = proto.Bool(true)
			return op
		}(), want{result: `[["node3.example.com"]]`, fields: map[string]string{"status": `"ADMIN_down"`},
			log: []string{" - INFO: No-installation mode selected, disabling startup", " - INFO: No-installation mode has no effect during import",
				"* running the instance OS import scripts..."}}},
		{"not on src_node", importOp("inst2.example.com", "node3.example.com", "node1.example.com", "inst2.example.com"), want{
			result: `[["OpExecError",["No export or invalid export found in dir /srv/ganeti/export/inst2.example.com: Export info file doesn't have the required fields"]]]`}},
		{"absolute path elsewhere", importOp("inst2.example.com", "node3.example.com", "node2.example.com", "/tmp/inst2.example.com"), want{
			result: `[["OpExecError",["No export or invalid export found in dir /tmp/inst2.example.com: Export info file doesn't have the required fields"]]]`}},
		{"no export of that name", importOp("inst2.example.com", "node3.example.com", "", "nosuch.example.com"), want{
			result: `[["OpPrereqError",["No export found for relative path nosuch.example.com","wrong_input"]]]`}},
		{"no src_path and no export of the instance's name", importOp("inst9.example.com", "node3.example.com", "", ""), want{
			result: `[["OpPrereqError",["No export found for relative path inst9.example.com","wrong_input"]]]`}},
		{"absolute path without src_node", importOp("inst2.example.com", "node3.example.com", "", exportDirInst2), want{
			result: `[["OpPrereqError",["Importing an instance from a path requires a source node option","wrong_input"]]]`}},
		{"unknown src_node", importOp("inst2.example.com", "node3.example.com", "nosuch", ""), want{
			result: `[["OpPrereqError",["Node 'nosuch' not known","unknown_entity"]]]`}},
		{"diskless export, disk template needing disks", func() *rapiv2.OpInstanceCreate {
			return importOp("inst1.example.com", "node3.example.com", "node2.example.com", "inst1.example.com")
		}(), want{result: `[["OpPrereqError",["No disk info specified and the export is missing the disk information","wrong_input"]]]`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, mac := exportedEnv(t)
			if strings.Contains(c.name, "diskless export") {
				local := rapiv2.ExportMode_EXPORT_MODE_LOCAL
				v.runOK(&rapiv2.OpBackupExport{InstanceName: proto.String("inst1.example.com"), TargetNode: structpb.NewStringValue("node2.example.com"),
					Mode: &local, RemoveInstance: proto.Bool(true)})
			}
			before := v.model.State()
			j := v.run(c.op)
			if got := jsonOf(t, j.OpResult); got != c.want.result {
				t.Fatalf("opresult = %s, want %s (log %q)", got, c.want.result, logMessages(j, 0))
			}
			if j.Status != StatusSuccess {
				if v.model.State() != before {
					t.Errorf("a failed import changed the cluster")
				}
				return
			}
			name := c.op.GetInstanceName()
			for f, w := range c.want.fields {
				var got string
				if f == "@disk.modes" { // no query field
					for _, i := range v.model.State().Config().Instances {
						if i.Name == name {
							var modes []string
							for _, d := range i.Disks {
								modes = append(modes, d.Mode)
							}
							got = jsonOf(t, modes)
						}
					}
				} else {
					got = jsonOf(t, v.instField(name, f)[0])
				}
				switch {
				case strings.HasPrefix(w, `["!%M"]`):
					if strings.Contains(got, mac) {
						t.Errorf("%s = %s, want a new MAC", f, got)
					}
				case got != strings.ReplaceAll(w, "%M", mac):
					t.Errorf("%s = %s, want %s", f, got, strings.ReplaceAll(w, "%M", mac))
				}
			}
			if !containsInOrder(logMessages(j, 0), c.want.log) {
				t.Errorf("log = %q, want in order %q", logMessages(j, 0), c.want.log)
			}
		})
	}
}

// containsInOrder says whether want is a subsequence of got.
func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestInstanceImportDryRun(t *testing.T) {
	v, _ := exportedEnv(t)
	node3, err := testLookup(v.model.State(), "node", "node3.example.com", "uuid")
	if err != nil {
		t.Fatal(err)
	}
	before := v.model.State()
	op := importOp("inst2.example.com", "node3.example.com", "node2.example.com", "inst2.example.com")
	op.DryRun = proto.Bool(true)
	j := v.runOK(op)
	if got, want := jsonOf(t, j.OpResult), `[["`+node3+`"]]`; got != want {
		t.Errorf("dry-run result = %s, want %s", got, want)
	}
	if v.model.State() != before {
		t.Errorf("a dry run changed the cluster")
	}
	if slices.Contains(v.model.State().Names("instance"), "inst2.example.com") {
		t.Errorf("a dry run created the instance")
	}
	// A dry run reports the import's errors too.
	op = importOp("inst2.example.com", "node3.example.com", "node1.example.com", "inst2.example.com")
	op.DryRun = proto.Bool(true)
	if j := v.run(op); j.Status == StatusSuccess {
		t.Errorf("dry run of an import from a node without the export succeeded")
	}
}

// The export records what Ganeti's config.ini holds, and the record
// survives the store (also when a newer export replaces one on the same
// node).
func TestExportInfoRecorded(t *testing.T) {
	v, mac := exportedEnv(t)
	exp := func(st *cluster.State) cluster.Export {
		t.Helper()
		for _, e := range st.Config().Exports {
			if e.Name == "inst2.example.com" {
				return e
			}
		}
		t.Fatal("no export of inst2")
		return cluster.Export{}
	}
	e := exp(v.model.State())
	if e.Info == nil {
		t.Fatal("export without info")
	}
	got, _ := json.Marshal(e.Info)
	for _, w := range []string{`"os":"noop"`, `"disk_template":"file"`, `"hypervisor":"fake"`, `"tags":["a","b"]`,
		`"disks":[{"size":1024,"name":"data","mode":"ro"}]`, `"mac":"` + mac + `"`, `"nicparams":{"link":"br2","mode":"bridged","vlan":""}`,
		`"maxmem":256`, `"always_failover":false`, `"osparams":{"x":"1"}`} {
		if !strings.Contains(string(got), w) {
			t.Errorf("export info %s lacks %s", got, w)
		}
	}
	reopen := func() *cluster.State {
		t.Helper()
		m, err := cluster.Open(v.st, nil, func() time.Time { return time.Unix(1795376000, 0) })
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		return m.State()
	}
	if r := exp(reopen()); jsonOf(t, r.Info) != jsonOf(t, e.Info) || !reflect.DeepEqual(r.Info.BEParams, e.Info.BEParams) {
		t.Errorf("after reopening: %s, want %s", jsonOf(t, r.Info), jsonOf(t, e.Info))
	}
	// Import, then export again to the same node: the stored record is the new one.
	op := importOp("inst2.example.com", "node3.example.com", "node2.example.com", "")
	op.Tags = []string{"new"}
	v.runOK(op)
	local := rapiv2.ExportMode_EXPORT_MODE_LOCAL
	// The imported instance runs on file disks: no snapshots, so it may
	// stay down during the export (long_sleep), as Ganeti requires.
	v.runOK(&rapiv2.OpBackupExport{InstanceName: proto.String("inst2.example.com"), TargetNode: structpb.NewStringValue("node2.example.com"), Mode: &local,
		LongSleep: proto.Bool(true)})
	if r := exp(reopen()); !slices.Equal(r.Info.Tags, []string{"new"}) || r.Info.Source == e.Info.Source {
		t.Errorf("after a new export to the same node, the store has %+v", r.Info)
	}
}

// An export recorded without information (a cluster file's, an older
// store's) is one whose config.ini declares nothing.
func TestInstanceImportExportWithoutInfo(t *testing.T) {
	v := newInstEnv(t)
	node2, err := testLookup(v.model.State(), "node", "node2.example.com", "uuid")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.model.Update(context.Background(), func(_ store.Tx, cfg *cluster.Config) error {
		cfg.Exports = append(cfg.Exports, cluster.Export{Node: node2, Name: "old.example.com"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	j := v.run(importOp("old.example.com", "node3.example.com", "", ""))
	if got, want := jsonOf(t, j.OpResult), `[["OpPrereqError",["No disk info specified and the export is missing the disk information","wrong_input"]]]`; got != want {
		t.Errorf("opresult = %s, want %s", got, want)
	}
	// With the disks and NICs given, it imports: no OS, no rename script,
	// no disk image to copy.
	op := importOp("old.example.com", "node3.example.com", "node2.example.com", "old.example.com")
	op.Disks = []*structpb.Struct{mustStruct(map[string]any{"size": 1024})}
	op.Nics = []*rapiv2.NicParams{{Mac: proto.String("aa:00:00:00:00:01")}}
	j = v.runOK(op)
	if got := jsonOf(t, v.instField("old.example.com", "os", "nic.macs", "disk.sizes")); got != `["",["aa:00:00:00:00:01"],[1024]]` {
		t.Errorf("imported instance: %s", got)
	}
	if msgs := logMessages(j, 0); slices.Contains(msgs, "Running rename script for old.example.com") ||
		!slices.Contains(msgs, "* running the instance OS import scripts...") || slices.Contains(msgs, "disk/0 finished receiving data") {
		t.Errorf("log = %q", msgs)
	}
}
