package jobs

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
)

// instClusterJSON: three nodes with little memory (free: node1 3072 MiB,
// node2 7168, node3 1024) and 10 GiB of storage each; every simulated disk
// template enabled; inst1 diskless and running on node1.
const instClusterJSON = `{
  "cluster": {"name": "cluster.example.com", "master_node": "node1.example.com",
    "enabled_hypervisors": ["fake"], "enabled_disk_templates": ["diskless", "file", "plain", "drbd"],
    "volume_group_name": "xenvg",
    "nicparams": {"mode": "bridged", "link": "br0"}, "master_netdev": "eth0", "master_netmask": 24},
  "groups": [{"name": "default", "alloc_policy": "preferred"}],
  "nodes": [
    {"name": "node1.example.com", "group": "default", "pip": "192.0.2.11", "mtotal": 4096, "mnode": 1024,
     "dtotal": 10240, "ctotal": 16, "cnos": 1, "cnodes": 1, "csockets": 2, "spindles": 4},
    {"name": "node2.example.com", "group": "default", "pip": "192.0.2.12", "mtotal": 8192, "mnode": 1024,
     "dtotal": 10240, "ctotal": 16, "cnos": 1, "cnodes": 1, "csockets": 2, "spindles": 4},
    {"name": "node3.example.com", "group": "default", "pip": "192.0.2.13", "mtotal": 2048, "mnode": 1024,
     "dtotal": 10240, "ctotal": 16, "cnos": 1, "cnodes": 1, "csockets": 2, "spindles": 4}
  ],
  "oses": [{"name": "noop"}, {"name": "debootstrap", "variants": ["default", "minimal"]}],
  "networks": [{"name": "net1", "network": "203.0.113.0/24",
    "connections": [{"group": "default", "mode": "bridged", "link": "br1"}]}],
  "instances": [{"name": "inst1.example.com", "os": "noop", "pnode": "node1.example.com",
    "disk_template": "diskless", "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1}}]
}`

func newInstEnv(t testing.TB) *env {
	t.Helper()
	f, err := cluster.ParseFile([]byte(instClusterJSON))
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	st := newTestStore(t)
	model, err := cluster.Open(st, f, func() time.Time { return time.Unix(1795376000, 0) })
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	clock := newFakeClock()
	e, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Clock: clock.Now, Logger: quiet})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = e.Stop(ctx)
	})
	e.Start()
	return &env{t: t, st: st, model: model, e: e, clock: clock}
}

// wrap puts an opcode message into an OpCode.
func wrap(m proto.Message) *rapiv2.OpCode {
	op := &rapiv2.OpCode{}
	r := op.ProtoReflect()
	fields := r.Descriptor().Oneofs().ByName("op").Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Message() != nil && fd.Message().FullName() == m.ProtoReflect().Descriptor().FullName() {
			r.Set(fd, protoreflect.ValueOfMessage(m.ProtoReflect()))
			return op
		}
	}
	panic(fmt.Sprintf("wrap %T", m))
}

func mustStruct(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func mustValue(v any) *structpb.Value {
	s, err := structpb.NewValue(v)
	if err != nil {
		panic(err)
	}
	return s
}

func dt(s string) *rapiv2.DiskTemplate {
	v := rapiv2.DiskTemplate(rapiv2.DiskTemplate_value["DISK_TEMPLATE_"+strings.ToUpper(s)])
	return &v
}

// create is the opcode of POST /2/instances as the captures send it.
func create(name, template string, sizes ...int64) *rapiv2.OpInstanceCreate {
	mode := rapiv2.InstanceCreateMode_INSTANCE_CREATE_MODE_CREATE
	hv := rapiv2.Hypervisor_HYPERVISOR_FAKE
	op := &rapiv2.OpInstanceCreate{
		InstanceName: proto.String(name), Mode: &mode, OsType: proto.String("noop"), DiskTemplate: dt(template),
		Pnode: proto.String("node1.example.com"), Hypervisor: &hv, Nics: []*rapiv2.NicParams{{}},
		Beparams: mustStruct(map[string]any{"memory": 128, "vcpus": 1}),
		IpCheck:  proto.Bool(false), NameCheck: proto.Bool(true), Start: proto.Bool(true), WaitForSync: proto.Bool(false),
	}
	for _, s := range sizes {
		op.Disks = append(op.Disks, mustStruct(map[string]any{"size": s}))
	}
	return op
}

func (v *env) run(ops ...proto.Message) *Job {
	v.t.Helper()
	var wrapped []*rapiv2.OpCode
	for _, m := range ops {
		wrapped = append(wrapped, wrap(m))
	}
	return v.wait(v.submit(wrapped...))
}

func (v *env) runOK(ops ...proto.Message) *Job {
	v.t.Helper()
	j := v.run(ops...)
	if j.Status != StatusSuccess {
		v.t.Fatalf("job failed: %s", jsonOf(v.t, j.OpResult))
	}
	return j
}

// nodeFree returns mfree and dfree of a node.
func (v *env) nodeFree(name string) (int64, int64) {
	v.t.Helper()
	cells, err := v.model.State().Get("node", name, []string{"mfree", "dfree"})
	if err != nil {
		v.t.Fatal(err)
	}
	return cells[0].Value.(int64), cells[1].Value.(int64)
}

func (v *env) instField(name string, fields ...string) []any {
	v.t.Helper()
	cells, err := v.model.State().Get("instance", name, fields)
	if err != nil {
		v.t.Fatal(err)
	}
	out := make([]any, len(cells))
	for i, c := range cells {
		out[i] = c.Value
	}
	return out
}

func logMessages(j *Job, op int) []string {
	var out []string
	for _, e := range j.OpLog[op] {
		out = append(out, fmt.Sprint(e.Message))
	}
	return out
}

func groupUUID(t testing.TB, v *env) string {
	u, err := testLookup(v.model.State(), "group", "default", "uuid")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestInstanceCreate(t *testing.T) {
	withBE := func(op *rapiv2.OpInstanceCreate, be map[string]any) *rapiv2.OpInstanceCreate {
		op.Beparams = mustStruct(be)
		return op
	}
	cases := []struct {
		name   string
		op     *rapiv2.OpInstanceCreate
		result string // JSON; %G is the default group's UUID
		log    []string
	}{
		{name: "diskless", op: create("inst2.example.com", "diskless"), result: `[["node1.example.com"]]`,
			log: []string{"* creating instance disks...", "adding instance inst2.example.com to cluster config", "adding disks to cluster config", "* starting instance..."}},
		{name: "file 1024", op: create("inst2.example.com", "file", 1024), result: `[["node1.example.com"]]`,
			log: []string{"* disk 0, size 1.0G", "* creating instance disks...", "adding instance inst2.example.com to cluster config",
				"adding disks to cluster config", "* running the instance OS create scripts...", "* starting instance..."}},
		{name: "ipolicy", op: create("inst5.example.com", "file", 128),
			result: `[["OpPrereqError",["Instance allocation to group %G (default) violates policy: disk-size/0 value 128 is not in range [1024, 1048576]","wrong_input"]]]`},
		{name: "duplicate", op: create("inst1.example.com", "diskless"),
			result: `[["OpPrereqError",["Instance 'inst1.example.com' is already in the cluster","already_exists"]]]`},
		{name: "unknown os", op: func() *rapiv2.OpInstanceCreate {
			o := create("inst5.example.com", "diskless")
			o.OsType = proto.String("nosuchos")
			return o
		}(),
			result: `[["OpExecError",["OS Parameters validation failed on node node1.example.com: Directory for OS nosuchos not found in search path"]]]`},
		{name: "unresolvable", op: create("unresolvable-host.invalid", "diskless"),
			result: `[["OpPrereqError",["The given name (unresolvable-host.invalid) does not resolve: Temporary failure in name resolution","resolver_error"]]]`},
		{name: "ip check without name check", op: func() *rapiv2.OpInstanceCreate {
			o := create("inst5.example.com", "diskless")
			o.NameCheck, o.IpCheck = proto.Bool(false), proto.Bool(true)
			return o
		}(), result: `[["OpPrereqError",["Cannot do IP address check without a name check","wrong_input"]]]`},
		{name: "unknown node", op: func() *rapiv2.OpInstanceCreate {
			o := create("inst5.example.com", "diskless")
			o.Pnode = proto.String("nosuch")
			return o
		}(),
			result: `[["OpPrereqError",["Node 'nosuch' not known","unknown_entity"]]]`},
		{name: "no memory", op: withBE(create("inst5.example.com", "diskless"), map[string]any{"memory": 4096}),
			result: `[["OpPrereqError",["Not enough memory on node node1.example.com for creating instance inst5.example.com: needed 4096 MiB, available 2944 MiB","insufficient_resources"]]]`},
		{name: "no memory needed when not started", op: func() *rapiv2.OpInstanceCreate {
			o := withBE(create("inst5.example.com", "diskless"), map[string]any{"memory": 4096})
			o.Start = proto.Bool(false)
			return o
		}(), result: `[["node1.example.com"]]`},
		{name: "no disk space", op: create("inst5.example.com", "plain", 20480),
			result: `[["OpPrereqError",["Not enough disk space on target node node1.example.com vg xenvg: required 20480 MiB, available 10240 MiB","insufficient_resources"]]]`},
		{name: "drbd without snode", op: create("inst5.example.com", "drbd", 1024),
			result: `[["OpPrereqError",["The networked disk templates need a mirror node","wrong_input"]]]`},
		{name: "drbd snode = pnode", op: func() *rapiv2.OpInstanceCreate {
			o := create("inst5.example.com", "drbd", 1024)
			o.Snode = proto.String("node1.example.com")
			return o
		}(), result: `[["OpPrereqError",["The secondary node cannot be the primary node","wrong_input"]]]`},
		{name: "bad beparams", op: withBE(create("inst5.example.com", "diskless"), map[string]any{"memory": "lots"}),
			result: `[["TypeEnforcementError",["'minmem' (value lots) is not a valid size. error: Invalid format"]]]`},
		{name: "variant required", op: func() *rapiv2.OpInstanceCreate {
			o := create("inst5.example.com", "diskless")
			o.OsType = proto.String("debootstrap")
			return o
		}(),
			result: `[["OpPrereqError",["OS name 'debootstrap' must include a variant","wrong_input"]]]`},
		{name: "allocator", op: func() *rapiv2.OpInstanceCreate {
			o := create("inst5.example.com", "file", 1024)
			o.Pnode = nil
			return o
		}(),
			result: `[["node2.example.com"]]`, log: []string{" - INFO: Selected nodes for instance inst5.example.com via iallocator hail: node2.example.com",
				"* disk 0, size 1.0G", "* creating instance disks...", "adding instance inst5.example.com to cluster config",
				"adding disks to cluster config", "* running the instance OS create scripts...", "* starting instance..."}},
		{name: "allocator drbd", op: func() *rapiv2.OpInstanceCreate {
			o := withBE(create("inst5.example.com", "drbd", 1024), map[string]any{"memory": 2048})
			o.Pnode = nil
			return o
		}(), result: `[["node2.example.com","node1.example.com"]]`},
		{name: "bad mac", op: func() *rapiv2.OpInstanceCreate {
			o := create("inst5.example.com", "diskless")
			o.Nics = []*rapiv2.NicParams{{Mac: proto.String("zz")}}
			return o
		}(), result: `[["OpPrereqError",["Invalid MAC address 'zz'","wrong_input"]]]`},
		{name: "ip pool without network", op: func() *rapiv2.OpInstanceCreate {
			o := create("inst5.example.com", "diskless")
			o.Nics = []*rapiv2.NicParams{{Ip: proto.String("pool")}}
			return o
		}(), result: `[["OpPrereqError",["if ip=pool, parameter network must be passed too","wrong_input"]]]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newInstEnv(t)
			before := v.model.State()
			j := v.run(c.op)
			want := strings.ReplaceAll(c.result, "%G", groupUUID(t, v))
			if got := jsonOf(t, j.OpResult); got != want {
				t.Fatalf("opresult = %s, want %s", got, want)
			}
			if c.log != nil {
				if got := logMessages(j, 0); !slices.Equal(got, c.log) {
					t.Errorf("log = %q, want %q", got, c.log)
				}
			}
			if j.Status != StatusSuccess && v.model.State() != before {
				t.Errorf("a failed create changed the cluster")
			}
		})
	}
}

func TestInstanceCreateResult(t *testing.T) {
	v := newInstEnv(t)
	pn, err := testLookup(v.model.State(), "node", "node1.example.com", "uuid")
	if err != nil {
		t.Fatal(err)
	}
	// Dry run: the node UUIDs, nothing created.
	op := create("inst2.example.com", "diskless")
	op.DryRun = proto.Bool(true)
	j := v.runOK(op)
	if got, want := jsonOf(t, j.OpResult), `[["`+pn+`"]]`; got != want {
		t.Errorf("dry-run result = %s, want %s", got, want)
	}
	if got := logMessages(j, 0); !slices.Equal(got, []string{" - INFO: dry-run mode requested, not actually executing the operation"}) {
		t.Errorf("dry-run log = %q", got)
	}
	if slices.Contains(v.model.State().Names("instance"), "inst2.example.com") {
		t.Fatal("dry run created the instance")
	}
	// A real one: admin state up, MAC with the cluster's prefix, UUIDs.
	v.runOK(create("inst2.example.com", "file", 1024))
	got := v.instField("inst2.example.com", "admin_state", "status", "nic.macs", "disk.uuids", "uuid", "oper_ram", "serial_no", "custom_beparams", "nic.links")
	if got[0] != "up" || got[1] != "running" || got[5] != int64(128) || got[6] != int64(2) {
		t.Errorf("instance = %v", got)
	}
	macs := got[2].([]any)
	if len(macs) != 1 || !regexp.MustCompile(`^aa:00:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$`).MatchString(macs[0].(string)) {
		t.Errorf("macs = %v", macs)
	}
	uuidRe := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if d := got[3].([]any); len(d) != 1 || !uuidRe.MatchString(d[0].(string)) || !uuidRe.MatchString(got[4].(string)) {
		t.Errorf("uuids = %v %v", got[3], got[4])
	}
	if jsonOf(t, got[7]) != `{"maxmem":128,"minmem":128,"vcpus":1}` || jsonOf(t, got[8]) != `["br0"]` {
		t.Errorf("custom_beparams = %v, links %v", got[7], got[8])
	}
	// A NIC in a network takes its parameters and an address of its pool.
	op = create("inst3.example.com", "diskless")
	op.Nics = []*rapiv2.NicParams{{Network: proto.String("net1"), Ip: proto.String("pool")}}
	v.runOK(op)
	got = v.instField("inst3.example.com", "nic.ips", "nic.links", "nic.networks.names")
	if jsonOf(t, got) != `[["203.0.113.1"],["br1"],["net1"]]` {
		t.Errorf("network NIC = %s", jsonOf(t, got))
	}
}

// TestInstanceAccounting follows free memory and storage through the life
// of instances.
func TestInstanceAccounting(t *testing.T) {
	v := newInstEnv(t)
	m1, d1 := v.nodeFree("node1.example.com")
	m2, d2 := v.nodeFree("node2.example.com")
	if m1 != 2944 || d1 != 10240 || m2 != 7168 {
		t.Fatalf("initial free: node1 %d/%d node2 %d/%d", m1, d1, m2, d2)
	}
	op := create("db.example.com", "drbd", 1024, 2048)
	op.Snode = proto.String("node2.example.com")
	op.Beparams = mustStruct(map[string]any{"maxmem": 512, "minmem": 256})
	j := v.runOK(op)
	if got := jsonOf(t, j.OpResult); got != `[["node1.example.com","node2.example.com"]]` {
		t.Errorf("result = %s", got)
	}
	check := func(step string, wm1, wd1, wm2, wd2 int64) {
		t.Helper()
		m1, d1 := v.nodeFree("node1.example.com")
		m2, d2 := v.nodeFree("node2.example.com")
		if m1 != wm1 || d1 != wd1 || m2 != wm2 || d2 != wd2 {
			t.Errorf("%s: node1 %d/%d node2 %d/%d, want %d/%d %d/%d", step, m1, d1, m2, d2, wm1, wd1, wm2, wd2)
		}
	}
	drbd := int64(1024 + 2048 + 2*cluster.DRBDMetaSize)
	check("create", 2944-512, 10240-drbd, 7168, 10240-drbd)
	v.runOK(&rapiv2.OpInstanceShutdown{InstanceName: proto.String("db.example.com")})
	check("shutdown", 2944, 10240-drbd, 7168, 10240-drbd)
	if got := v.instField("db.example.com", "status", "disks_active"); got[0] != "ADMIN_down" || got[1] != false {
		t.Errorf("after shutdown: %v", got)
	}
	v.runOK(&rapiv2.OpInstanceStartup{InstanceName: proto.String("db.example.com")})
	check("startup", 2944-512, 10240-drbd, 7168, 10240-drbd)
	v.runOK(&rapiv2.OpInstanceMigrate{InstanceName: proto.String("db.example.com")})
	check("migrate", 2944, 10240-drbd, 7168-512, 10240-drbd)
	if got := v.instField("db.example.com", "pnode", "snodes", "status"); jsonOf(t, got) != `["node2.example.com",["node1.example.com"],"running"]` {
		t.Errorf("after migrate: %s", jsonOf(t, got))
	}
	v.runOK(&rapiv2.OpInstanceGrowDisk{InstanceName: proto.String("db.example.com"), Disk: proto.Int64(0), Amount: proto.Int64(1024)})
	check("grow", 2944, 10240-drbd-1024, 7168-512, 10240-drbd-1024)
	v.runOK(&rapiv2.OpInstanceRemove{InstanceName: proto.String("db.example.com")})
	check("remove", 2944, 10240, 7168, 10240)

	// Startup needs the memory.
	op = create("big.example.com", "diskless")
	op.Beparams = mustStruct(map[string]any{"memory": 2048})
	v.runOK(op)
	op = create("big2.example.com", "diskless")
	op.Beparams = mustStruct(map[string]any{"memory": 1024})
	op.Start = proto.Bool(false)
	v.runOK(op)
	j = v.run(&rapiv2.OpInstanceStartup{InstanceName: proto.String("big2.example.com")})
	if got := jsonOf(t, j.OpResult); got != `[["OpPrereqError",["Not enough memory on node node1.example.com for starting instance big2.example.com: needed 1024 MiB, available 896 MiB","insufficient_resources"]]]` {
		t.Errorf("startup without memory: %s", got)
	}
}

func TestInstanceOperations(t *testing.T) {
	v := newInstEnv(t)
	name := proto.String("inst1.example.com")
	expect := func(j *Job, want string) {
		t.Helper()
		if got := jsonOf(t, j.OpResult); got != want {
			t.Errorf("opresult = %s, want %s", got, want)
		}
	}
	// Startup of a running instance: success, nothing to do.
	expect(v.run(&rapiv2.OpInstanceStartup{InstanceName: name}), `[null]`)
	// Rename of a running instance fails (capture seq 128).
	expect(v.run(&rapiv2.OpInstanceRename{InstanceName: name, NewName: proto.String("renamed1.example.com")}),
		`[["OpPrereqError",["Instance 'inst1.example.com' is marked to be up, cannot rename","wrong_state"]]]`)
	// Shutdown dry run changes nothing.
	expect(v.run(&rapiv2.OpInstanceShutdown{InstanceName: name, DryRun: proto.Bool(true)}), `[null]`)
	if got := v.instField("inst1.example.com", "status")[0]; got != "running" {
		t.Errorf("status after dry run = %v", got)
	}
	// Reboot of a stopped instance starts it (capture seq 110).
	v.runOK(&rapiv2.OpInstanceShutdown{InstanceName: name})
	j := v.runOK(&rapiv2.OpInstanceReboot{InstanceName: name})
	if got := logMessages(j, 0); !slices.Equal(got, []string{" - INFO: Instance inst1.example.com was already stopped, starting now"}) {
		t.Errorf("reboot log = %q", got)
	}
	if got := v.instField("inst1.example.com", "status", "admin_state"); jsonOf(t, got) != `["running","up"]` {
		t.Errorf("after reboot: %v", got)
	}
	// Rename after a shutdown (capture seq 126).
	v.runOK(&rapiv2.OpInstanceShutdown{InstanceName: name})
	expect(v.runOK(&rapiv2.OpInstanceRename{InstanceName: name, NewName: proto.String("renamed1.example.com")}), `["renamed1.example.com"]`)
	if !slices.Equal(v.model.State().Names("instance"), []string{"renamed1.example.com"}) {
		t.Errorf("instances = %v", v.model.State().Names("instance"))
	}
	// Reinstall of a diskless instance (capture seq 143).
	expect(v.run(&rapiv2.OpInstanceReinstall{InstanceName: proto.String("renamed1.example.com"), OsType: proto.String("noop")}),
		`[["OpPrereqError",["Instance 'renamed1.example.com' has no disks","wrong_input"]]]`)
	// Remove of an unknown instance (capture seq 174).
	expect(v.run(&rapiv2.OpInstanceRemove{InstanceName: proto.String("nosuch.example.com")}),
		`[["OpPrereqError",["Instance 'nosuch.example.com' not known","unknown_entity"]]]`)

	// A file instance: grow, activate, deactivate, reinstall.
	v.runOK(create("inst2.example.com", "file", 1024))
	i2 := proto.String("inst2.example.com")
	j = v.runOK(&rapiv2.OpInstanceGrowDisk{InstanceName: i2, Disk: proto.Int64(0), Amount: proto.Int64(1024), WaitForSync: proto.Bool(true)})
	if got := logMessages(j, 0); !slices.Equal(got, []string{"Growing disk 0 of instance 'inst2.example.com' by 1.0G to 2.0G",
		" - INFO: Waiting for instance inst2.example.com to sync disks", " - INFO: Instance inst2.example.com's disks are in sync"}) {
		t.Errorf("grow log = %q", got)
	}
	expect(v.run(&rapiv2.OpInstanceGrowDisk{InstanceName: i2, Disk: proto.Int64(7), Amount: proto.Int64(1024)}),
		`[["OpPrereqError",["Invalid disk index: 7 (instace has disks 0 to 0","wrong_input"]]]`)
	j = v.runOK(&rapiv2.OpInstanceActivateDisks{InstanceName: i2})
	uuid := v.instField("inst2.example.com", "disk.uuids")[0].([]any)[0]
	if got, want := jsonOf(t, j.OpResult), `[[["node1.example.com","disk/0","/srv/ganeti/file-storage/inst2.example.com/`+uuid.(string)+`.file.disk0"]]]`; got != want {
		t.Errorf("activate-disks = %s, want %s", got, want)
	}
	expect(v.run(&rapiv2.OpInstanceDeactivateDisks{InstanceName: i2}),
		`[["OpPrereqError",["Instance 'inst2.example.com' is marked to be up, cannot shutdown disks","wrong_state"]]]`)
	expect(v.run(&rapiv2.OpInstanceMigrate{InstanceName: i2}),
		`[["OpPrereqError",["Instance's disk layout 'file' does not allow migrations","wrong_state"]]]`)
	j = v.runOK(&rapiv2.OpInstanceShutdown{InstanceName: i2}, &rapiv2.OpInstanceReinstall{InstanceName: i2, OsType: proto.String("noop")})
	if got := logMessages(j, 1); !slices.Equal(got, []string{"Changing OS scripts to 'noop'...", " - INFO: Running instance OS create scripts..."}) {
		t.Errorf("reinstall log = %q", got)
	}
	v.runOK(&rapiv2.OpInstanceDeactivateDisks{InstanceName: i2})

	// Failover of a diskless instance moves it to the node with most free memory.
	v.runOK(&rapiv2.OpInstanceStartup{InstanceName: proto.String("renamed1.example.com")})
	v.runOK(&rapiv2.OpInstanceFailover{InstanceName: proto.String("renamed1.example.com")})
	if got := v.instField("renamed1.example.com", "pnode", "status"); jsonOf(t, got) != `["node2.example.com","running"]` {
		t.Errorf("after failover: %s", jsonOf(t, got))
	}
}

func TestInstanceSetParams(t *testing.T) {
	v := newInstEnv(t)
	name := proto.String("inst1.example.com")
	expect := func(j *Job, want string) {
		t.Helper()
		if got := jsonOf(t, j.OpResult); got != want {
			t.Errorf("opresult = %s, want %s", got, want)
		}
	}
	// Capture seq 120 and 122.
	expect(v.run(&rapiv2.OpInstanceSetParams{InstanceName: name, Beparams: mustStruct(map[string]any{"memory": 256})}), `[[["be/memory",256]]]`)
	if got := v.instField("inst1.example.com", "custom_beparams", "oper_ram"); jsonOf(t, got) != `[{"maxmem":256,"minmem":256,"vcpus":1},128]` {
		t.Errorf("after modify: %s", jsonOf(t, got))
	}
	expect(v.run(&rapiv2.OpInstanceSetParams{InstanceName: name, Beparams: mustStruct(map[string]any{"memory": "lots"})}),
		`[["TypeEnforcementError",["'minmem' (value lots) is not a valid size. error: Invalid format"]]]`)
	expect(v.run(&rapiv2.OpInstanceSetParams{InstanceName: name}), `[["OpPrereqError",["No changes submitted","wrong_input"]]]`)
	expect(v.run(&rapiv2.OpInstanceSetParams{InstanceName: name, Beparams: mustStruct(map[string]any{"memory": 8192})}),
		`[["OpPrereqError",["This change will prevent the instance from starting, due to 5120 MB of memory missing on its primary node","insufficient_resources"]]]`)
	expect(v.run(&rapiv2.OpInstanceSetParams{InstanceName: name, Hvparams: mustStruct(map[string]any{"migration_mode": "live"})}),
		`[["OpPrereqError",["The following hypervisor parameters are global and cannot be customized at instance level, please modify them at cluster level: migration_mode","wrong_input"]]]`)
	expect(v.run(&rapiv2.OpInstanceSetParams{InstanceName: name, Osparams: mustStruct(map[string]any{"foo": "bar"})}), `[[["os/foo","bar"]]]`)
	expect(v.run(&rapiv2.OpInstanceSetParams{InstanceName: name, Disks: mustValue([]any{[]any{"add", map[string]any{"size": 1024}}})}),
		`[["OpPrereqError",["Disk operations not supported for diskless instances","wrong_input"]]]`)

	// NICs: add (new form), modify (legacy form), remove.
	j := v.runOK(&rapiv2.OpInstanceSetParams{InstanceName: name, Nics: mustValue([]any{[]any{"add", -1, map[string]any{"link": "br7"}}})})
	macs := v.instField("inst1.example.com", "nic.macs")[0].([]any)
	if got, want := jsonOf(t, j.OpResult), `[[["nic.1","add:mac=`+macs[1].(string)+`,ip=None,mode=bridged,link=br7,network=None"]]]`; got != want {
		t.Errorf("nic add = %s, want %s", got, want)
	}
	expect(v.runOK(&rapiv2.OpInstanceSetParams{InstanceName: name, Nics: mustValue([]any{[]any{1, map[string]any{"link": "br8"}}})}), `[[["nic.link/1","br8"]]]`)
	expect(v.runOK(&rapiv2.OpInstanceSetParams{InstanceName: name, Nics: mustValue([]any{[]any{"remove", map[string]any{}}})}), `[[["nic.1","remove"]]]`)
	expect(v.run(&rapiv2.OpInstanceSetParams{InstanceName: name, Nics: mustValue([]any{[]any{5, map[string]any{"link": "x"}}})}),
		`[["OpExecError",["Got NIC index 5, but there are only 1"]]]`)
	if got := v.instField("inst1.example.com", "nic.links"); jsonOf(t, got) != `[["br0"]]` {
		t.Errorf("links = %s", jsonOf(t, got))
	}

	// Disks of a file instance.
	v.runOK(create("inst2.example.com", "file", 1024))
	i2 := proto.String("inst2.example.com")
	_, d1 := v.nodeFree("node1.example.com")
	expect(v.runOK(&rapiv2.OpInstanceSetParams{InstanceName: i2, Disks: mustValue([]any{[]any{"add", map[string]any{"size": 2048, "name": "data"}}})}),
		`[[["disk/1","add:size=2048,mode=rw"]]]`)
	// File disks are sparse: the node's free disk does not move.
	if _, d := v.nodeFree("node1.example.com"); d != d1 {
		t.Errorf("dfree after adding a file disk = %d, want %d", d, d1)
	}
	expect(v.runOK(&rapiv2.OpInstanceSetParams{InstanceName: i2, Disks: mustValue([]any{[]any{"modify", "data", map[string]any{"mode": "ro"}}})}),
		`[[["disk.mode/1","ro"]]]`)
	expect(v.run(&rapiv2.OpInstanceSetParams{InstanceName: i2, Disks: mustValue([]any{[]any{"remove", map[string]any{}}})}),
		`[["OpPrereqError",["Instance 'inst2.example.com' is marked to be up, cannot remove disks","wrong_state"]]]`)
	v.runOK(&rapiv2.OpInstanceShutdown{InstanceName: i2})
	expect(v.runOK(&rapiv2.OpInstanceSetParams{InstanceName: i2, Disks: mustValue([]any{[]any{"remove", map[string]any{}}})}), `[[["disk/1","remove"]]]`)
	if got := v.instField("inst2.example.com", "disk.sizes"); jsonOf(t, got) != `[[1024]]` {
		t.Errorf("disk sizes = %s", jsonOf(t, got))
	}
}

func TestInstanceQueryData(t *testing.T) {
	v := newInstEnv(t)
	j := v.runOK(&rapiv2.OpInstanceQueryData{Instances: []string{"inst1.example.com"}, UseLocking: proto.Bool(true)})
	if got := logMessages(j, 0); !slices.Equal(got, []string{" - WARNING: Non-static data requested, locks need to be acquired"}) {
		t.Errorf("log = %q", got)
	}
	res := j.OpResult[0].(map[string]any)["inst1.example.com"].(map[string]any)
	var keys []string
	for k := range res {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"be_actual", "be_instance", "config_state", "ctime", "disk_template", "disks", "hv_actual", "hv_instance",
		"hypervisor", "mtime", "name", "network_port", "nics", "os", "os_actual", "os_instance", "pnode", "pnode_group_name",
		"pnode_group_uuid", "run_state", "serial_no", "snodes", "snodes_group_names", "snodes_group_uuids", "uuid"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys = %v", keys)
	}
	if res["run_state"] != "up" || res["config_state"] != "up" || jsonOf(t, res["hv_actual"]) != `{}` {
		t.Errorf("result = %s", jsonOf(t, res))
	}
	nic := res["nics"].([]any)[0].([]any)
	if len(nic) != 9 || nic[4] != "bridged" || nic[5] != "br0" {
		t.Errorf("nic = %v", nic)
	}
	j = v.runOK(&rapiv2.OpInstanceQueryData{Instances: []string{"inst1.example.com"}, Static: proto.Bool(true)})
	if res := j.OpResult[0].(map[string]any)["inst1.example.com"].(map[string]any); res["run_state"] != nil || len(j.OpLog[0]) != 0 {
		t.Errorf("static: run_state %v, log %v", res["run_state"], j.OpLog[0])
	}
}

// TestReplaceDisksIAllocatorSkipsOwnNodes: the new secondary chosen by an
// iallocator is the best node that is not one of the instance's own; it
// used to be only the best node of the group, so the call failed whenever
// that was the current secondary (found by the conformance suite).
func TestReplaceDisksIAllocatorSkipsOwnNodes(t *testing.T) {
	v := newInstEnv(t)
	op := create("drbd1.example.com", "drbd", 1024)
	op.Snode = proto.String("node2.example.com") // node2 has the most free memory
	v.runOK(op)
	mode := rapiv2.ReplaceDisksMode_REPLACE_DISKS_MODE_REPLACE_NEW_SECONDARY
	v.runOK(&rapiv2.OpInstanceReplaceDisks{InstanceName: proto.String("drbd1.example.com"), Mode: &mode, Iallocator: proto.String("hail")})
	if got := v.instField("drbd1.example.com", "pnode", "snodes"); jsonOf(t, got) != `["node1.example.com",["node3.example.com"]]` {
		t.Errorf("nodes after replace-disks: %s", jsonOf(t, got))
	}
	// And back: node2 is the only node that is neither primary nor
	// secondary.
	v.runOK(&rapiv2.OpInstanceReplaceDisks{InstanceName: proto.String("drbd1.example.com"), Mode: &mode, Iallocator: proto.String("hail")})
	if got := v.instField("drbd1.example.com", "snodes"); jsonOf(t, got) != `[["node2.example.com"]]` {
		t.Errorf("secondary after the second replace-disks: %s", jsonOf(t, got))
	}
}

// TestRecreateDisksChanges: OP_INSTANCE_RECREATE_DISKS applies the size,
// mode and spindles of [index, {changes}] entries (they used to be
// accepted and ignored) and refuses what Ganeti refuses.
func TestRecreateDisksChanges(t *testing.T) {
	v := newInstEnv(t)
	op := create("plain1.example.com", "plain", 1024, 1024)
	op.Start = proto.Bool(false)
	v.runOK(op)
	name := proto.String("plain1.example.com")
	recreate := func(disks any) *Job {
		t.Helper()
		return v.run(&rapiv2.OpInstanceRecreateDisks{InstanceName: name, Disks: mustValue(disks)})
	}
	_, dfree := v.nodeFree("node1.example.com")
	// Plain indices: recreated as they are.
	if j := recreate([]any{0, 1}); j.Status != StatusSuccess {
		t.Fatalf("recreate [0, 1]: %s", jsonOf(t, j.OpResult))
	}
	if got := v.instField("plain1.example.com", "disk.sizes", "serial_no"); jsonOf(t, got) != `[[1024,1024],1]` {
		t.Errorf("after recreating in place: %s", jsonOf(t, got))
	}
	// New size and mode for disk 1.
	if j := recreate([]any{[]any{1, map[string]any{"size": 2048, "mode": "ro"}}}); j.Status != StatusSuccess {
		t.Fatalf("recreate with changes: %s", jsonOf(t, j.OpResult))
	}
	if got := v.instField("plain1.example.com", "disk.sizes"); jsonOf(t, got) != `[[1024,2048]]` {
		t.Errorf("after recreating disk 1: %s", jsonOf(t, got))
	}
	for _, inst := range v.model.State().Config().Instances {
		if inst.Name == "plain1.example.com" && (inst.Disks[0].Mode != "rw" || inst.Disks[1].Mode != "ro") {
			t.Errorf("disk modes %s, %s", inst.Disks[0].Mode, inst.Disks[1].Mode)
		}
	}
	if _, after := v.nodeFree("node1.example.com"); after != dfree-1024 {
		t.Errorf("dfree %d, want %d", after, dfree-1024)
	}
	for _, c := range []struct {
		disks any
		want  string
	}{
		{[]any{0, 0}, `[["OpPrereqError",["Some disks have been specified more than once: 0","wrong_input"]]]`},
		{[]any{[]any{0, map[string]any{"name": "x", "vg": "y"}}}, `[["OpPrereqError",["Parameters for disk 0 try to change unmodifyable parameter(s): name, vg","wrong_input"]]]`},
		{[]any{5}, `[["OpPrereqError",["Invalid disk index '5'","wrong_input"]]]`},
		{[]any{[]any{0, map[string]any{"mode": "rw+"}}}, `[["OpPrereqError",["Invalid disk access mode 'rw+'","wrong_input"]]]`},
		{[]any{[]any{0, map[string]any{"size": 1 << 30}}}, `[["OpPrereqError",["Not enough disk space on target node node1.example.com vg xenvg: required 1073740800 MiB, available 7168 MiB","insufficient_resources"]]]`},
	} {
		if got := jsonOf(t, recreate(c.disks).OpResult); got != c.want {
			t.Errorf("recreate %s: %s, want %s", jsonOf(t, c.disks), got, c.want)
		}
	}
	if got := v.instField("plain1.example.com", "disk.sizes"); jsonOf(t, got) != `[[1024,2048]]` {
		t.Errorf("refused recreations changed the disks: %s", jsonOf(t, got))
	}
}
