package jobs

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// recordOf is the legacy JSON object of opcode i of a job, as the job
// record shows it.
func opRecordOf(t *testing.T, j *Job, i int) map[string]any {
	t.Helper()
	v, err := legacyjson.ToValue(j.Ops[i])
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// specOpcodes reads ../shared/spec/opcodes.json: per OP_ID, the parameters
// with their defaults.
func specOpcodes(t *testing.T) map[string][]struct {
	Name     string `json:"name"`
	Default  any    `json:"default"`
	Required bool   `json:"required"`
} {
	b, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "spec", "opcodes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Opcodes map[string]struct {
			Params []struct {
				Name     string `json:"name"`
				Default  any    `json:"default"`
				Required bool   `json:"required"`
			} `json:"params"`
		} `json:"opcodes"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	out := map[string][]struct {
		Name     string `json:"name"`
		Default  any    `json:"default"`
		Required bool   `json:"required"`
	}{}
	for id, op := range spec.Opcodes {
		for _, p := range op.Params {
			out[id] = append(out[id], struct {
				Name     string `json:"name"`
				Default  any    `json:"default"`
				Required bool   `json:"required"`
			}{p.Name, p.Default, p.Required})
		}
	}
	return out
}

// A submitted opcode is stored as Ganeti stores it: every parameter that
// has a default has it (Ganeti 3.0.2's defaults, spec/opcodes.json), a
// parameter without one that was not given is left out of the record, but
// depends and comment, which are null. Every opcode with an executor is
// submitted bare to a queue that does not run (a queued job's record, as
// Ganeti shows a job a filter holds).
func TestSubmittedOpcodesHaveGanetiDefaults(t *testing.T) {
	spec := specOpcodes(t)
	v := newEnv(t, 1, nil)
	fields := (&rapiv2.OpCode{}).ProtoReflect().Descriptor().Oneofs().ByName("op").Fields()
	checked := 0
	for i := range fields.Len() {
		fd := fields.Get(i)
		op := &rapiv2.OpCode{}
		msg := op.ProtoReflect().Mutable(fd).Message()
		info := opcodeInfo(msg.Interface())
		id := info.GetId()
		if !v.e.Implements(id) {
			if info.GetRapiReachable() {
				t.Errorf("%s, which RAPI submits, has no executor", id)
			}
			continue
		}
		params, ok := spec[id]
		if !ok {
			t.Errorf("%s is not in spec/opcodes.json", id)
			continue
		}
		jid := v.submit(op)
		j, _ := v.e.Get(jid)
		rec := opRecordOf(t, j, 0)
		for _, p := range params {
			got, present := rec[p.Name]
			switch {
			case p.Name == "reason":
				// rlib2's trail and the "gnt:opcode" entry.
				if l, ok := got.([]any); !ok || len(l) != 1 {
					t.Errorf("%s.reason = %v", id, got)
				}
			case p.Default != nil:
				if !present || !reflect.DeepEqual(got, p.Default) {
					t.Errorf("%s.%s = %v (present %v), Ganeti's default %v", id, p.Name, got, present, p.Default)
				}
			case p.Name == "depends" || p.Name == "comment":
				if !present || got != nil {
					t.Errorf("%s.%s = %v (present %v), want null", id, p.Name, got, present)
				}
			case p.Required:
				// Not given: a list is [], anything else left out.
				if l, isList := got.([]any); present && (!isList || len(l) != 0) {
					t.Errorf("%s.%s = %v, not given", id, p.Name, got)
				}
			case present:
				t.Errorf("%s.%s = %v: Ganeti's record has no key for a parameter never given", id, p.Name, got)
			}
		}
		if p, ok := rec["priority"].(float64); !ok || p != 0 {
			t.Errorf("%s.priority = %v, want the integer 0", id, rec["priority"])
		}
		checked++
	}
	if checked < 41 { // the 41 opcodes RAPI submits, at least
		t.Errorf("only %d opcodes checked", checked)
	}
}

// The disk sizes of an instance creation are stored as the integer of MiB
// Ganeti's job queue parses them into; one it cannot parse is left as it
// is.
func TestDiskSizesStoredAsMiB(t *testing.T) {
	v := newEnv(t, 0, nil)
	disks := func(sizes ...any) []*structpb.Struct {
		var out []*structpb.Struct
		for _, s := range sizes {
			d, err := structpb.NewStruct(map[string]any{"size": s, "mode": "rw"})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		return out
	}
	op := &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceCreate{InstanceCreate: &rapiv2.OpInstanceCreate{
		InstanceName: proto.String("new.example.com"),
		Disks:        disks("1G", "512", 256, "2 g", "1.5G", "lots", "1T"),
	}}}
	j, _ := v.e.Get(v.submit(op))
	got := opRecordOf(t, j, 0)["disks"]
	want := []any{
		map[string]any{"size": 1024.0, "mode": "rw"}, map[string]any{"size": 512.0, "mode": "rw"},
		map[string]any{"size": 256.0, "mode": "rw"}, map[string]any{"size": 2048.0, "mode": "rw"},
		map[string]any{"size": "1.5G", "mode": "rw"}, map[string]any{"size": "lots", "mode": "rw"},
		map[string]any{"size": 1048576.0, "mode": "rw"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("disks = %v\nwant    %v", got, want)
	}
}

// parseUnitBinary is Haskell's parseUnitAssumeBinary.
func TestParseUnitBinary(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true}, {" 1G", 1024, true}, {"1g", 1024, true}, {"1GiB", 1024, true}, {"1gb", 1024, true},
		{"3M", 3, true}, {"3 mib", 3, true}, {"2t", 2 << 20, true}, {"1TB", 1 << 20, true},
		{"", 0, false}, {"G", 0, false}, {"-1G", 0, false}, {"1.5G", 0, false}, {"1G ", 0, false}, {"1k", 0, false},
	} {
		n, ok := parseUnitBinary(tc.in)
		if n != tc.want || ok != tc.ok {
			t.Errorf("parseUnitBinary(%q) = %d, %v; want %d, %v", tc.in, n, ok, tc.want, tc.ok)
		}
	}
}

// writeBack is a test executor whose Locks phase and Exec write parameters
// back, then fail or not.
type writeBack struct {
	failLocks, failExec bool
}

func (w writeBack) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	l, _, err := w.LocksParams(op, st)
	return l, err
}

func (w writeBack) LocksParams(proto.Message, *cluster.State) ([]opexec.Lock, []opexec.ParamWrite, error) {
	writes := []opexec.ParamWrite{{Name: "comment", Value: "checked"}}
	if w.failLocks {
		return nil, writes, errPrereq("no locks")
	}
	return nil, writes, nil
}

func (w writeBack) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	// The executor's opcode has the Locks phase's writes, not its own.
	if c := op.(*rapiv2.OpTestDelay).GetComment(); c != "checked" {
		return nil, errPrereq("comment " + c)
	}
	x.SetParam("on_nodes", []any{"node1.example.com"})
	x.SetParam("duration", 2.5)
	if w.failExec {
		return nil, errPrereq("exec failed")
	}
	x.SetParam("on_master", false)
	return nil, nil
}

func errPrereq(msg string) error { return errs.Prereq(errs.CodeInval, "%s", msg) }

// Parameters an executor writes back are in the job's record once the
// opcode's outcome is committed: all of them on success and in dry-run
// mode, those written before the error on failure (Ganeti's LUs assign
// self.op.* as they go); the Locks phase's writes are kept when it fails;
// they survive a restart.
func TestParamsWrittenBack(t *testing.T) {
	st := newTestStore(t)
	model := openModel(t, st, 1)
	execs := lu.DefaultExecutors()
	cfg := func() Config {
		return Config{IAllocator: testIAllocators{}, Model: model, Clock: newFakeClock().Now, Logger: quiet, Executors: execs}
	}
	e, err := New(cfg())
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	run := func(ex writeBack, dry bool) int64 {
		execs["OP_TEST_DELAY"] = ex
		d := delay(0)
		if dry {
			d.DryRun = proto.Bool(true)
		}
		id, err := e.Submit(context.Background(), []*rapiv2.OpCode{opOf(d)}, SubmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, e, id)
		return id
	}
	ok, dry, failed, lockFailed := run(writeBack{}, false), run(writeBack{}, true), run(writeBack{failExec: true}, false), run(writeBack{failLocks: true}, false)
	execs["OP_TEST_DELAY"] = lu.DefaultExecutors()["OP_TEST_DELAY"]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e, err = New(cfg()) // the records as the store has them
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Stop(ctx) }()
	for _, tc := range []struct {
		name   string
		id     int64
		status string
		want   map[string]any // nil: absent
	}{
		{"success", ok, StatusSuccess, map[string]any{"comment": "checked", "on_nodes": []any{"node1.example.com"}, "duration": 2.5, "on_master": false}},
		{"dry run", dry, StatusSuccess, map[string]any{"comment": "checked", "on_nodes": []any{"node1.example.com"}, "duration": 2.5, "on_master": false}},
		{"exec failed", failed, StatusError, map[string]any{"comment": "checked", "on_nodes": []any{"node1.example.com"}, "duration": 2.5, "on_master": true}},
		{"locks failed", lockFailed, StatusError, map[string]any{"comment": "checked", "on_nodes": []any{}, "duration": 0.0, "on_master": true}},
	} {
		j, found := e.Get(tc.id)
		if !found || j.Status != tc.status {
			t.Fatalf("%s: job %d found %v, status %v", tc.name, tc.id, found, j)
		}
		rec := opRecordOf(t, j, 0)
		for k, want := range tc.want {
			if got := rec[k]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s = %#v, want %#v", tc.name, k, got, want)
			}
		}
		if rec["debug_level"] != 0.0 {
			t.Errorf("%s: debug_level = %v", tc.name, rec["debug_level"])
		}
	}
}

// Ganeti's ExpandNames writes back the uuid and full name of the instance
// or node an opcode names; a logical unit's CheckArguments writes what it
// fills in even when a later check fails (an unknown instance).
func TestNamesExpandedIntoRecord(t *testing.T) {
	v := newEnv(t, 2, nil)
	v.e.Start()
	st := v.model.State()
	uuid, err := testLookup(st, "instance", "inst1.example.com", "uuid")
	if err != nil {
		t.Fatal(err)
	}
	node2, _, err := st.NodeByName("node2")
	if err != nil {
		t.Fatal(err)
	}
	shutdown := func(name string) *rapiv2.OpCode {
		return &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceShutdown{InstanceShutdown: &rapiv2.OpInstanceShutdown{InstanceName: proto.String(name)}}}
	}
	known := v.wait(v.submit(shutdown("inst1")))
	unknown := v.wait(v.submit(shutdown("nosuch.example.com")))
	node := v.wait(v.submit(&rapiv2.OpCode{Op: &rapiv2.OpCode_NodeSetParams{NodeSetParams: &rapiv2.OpNodeSetParams{
		NodeName: proto.String("node2"), Drained: proto.Bool(false)}}}))
	for _, tc := range []struct {
		name    string
		j       *Job
		status  string
		summary string
		want    map[string]any // nil value: absent
	}{
		{"known instance", known, StatusSuccess, "INSTANCE_SHUTDOWN(inst1.example.com)",
			map[string]any{"instance_name": "inst1.example.com", "instance_uuid": uuid, "admin_state_source": "admin"}},
		{"unknown instance", unknown, StatusError, "INSTANCE_SHUTDOWN(nosuch.example.com)",
			map[string]any{"instance_name": "nosuch.example.com", "instance_uuid": nil, "admin_state_source": "admin"}},
		{"node", node, StatusSuccess, "NODE_SET_PARAMS(node2.example.com)",
			map[string]any{"node_name": "node2.example.com", "node_uuid": node2}},
	} {
		if tc.j.Status != tc.status {
			t.Errorf("%s: status %s: %v", tc.name, tc.j.Status, tc.j.OpResult)
		}
		// Ganeti's summary is that of the opcode as stored.
		if len(tc.j.Summary) != 1 || tc.j.Summary[0] != tc.summary {
			t.Errorf("%s: summary %v, want %s", tc.name, tc.j.Summary, tc.summary)
		}
		rec := opRecordOf(t, tc.j, 0)
		for k, want := range tc.want {
			got, present := rec[k]
			if want == nil && present {
				t.Errorf("%s: %s = %v, want no key", tc.name, k, got)
			} else if want != nil && got != want {
				t.Errorf("%s: %s = %v, want %v", tc.name, k, got, want)
			}
		}
	}
}

// The record of a multi-allocation holds its instances as full
// OP_INSTANCE_CREATE opcodes: OP_ID, every parameter (null without a
// value, {} for the private ones), and after it ran the nodes' uuids and
// the base parameters of the jobs it submitted.
func TestMultiAllocRecord(t *testing.T) {
	v := newEnv(t, 0, nil)
	v.e.Start()
	inst := func(name string) *structpb.Value {
		s, err := structpb.NewStruct(map[string]any{"instance_name": name, "os_type": "noop", "disk_template": "diskless",
			"disks": []any{}, "nics": []any{map[string]any{}}, "pnode": "node2", "mode": "create",
			"beparams": map[string]any{"memory": 128}, "name_check": false, "ip_check": false})
		if err != nil {
			t.Fatal(err)
		}
		return structpb.NewStructValue(s)
	}
	j := v.wait(v.submit(&rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceMultiAlloc{InstanceMultiAlloc: &rapiv2.OpInstanceMultiAlloc{
		Instances: []*structpb.Value{inst("a.example.com"), inst("b.example.com")}, DryRun: proto.Bool(false)}}}))
	if j.Status != StatusSuccess {
		t.Fatalf("status %s: %v", j.Status, j.OpResult)
	}
	node2, _, _ := v.model.State().NodeByName("node2")
	rec := opRecordOf(t, j, 0)
	insts, _ := rec["instances"].([]any)
	if len(insts) != 2 {
		t.Fatalf("instances %v", rec["instances"])
	}
	createFields := (&rapiv2.OpInstanceCreate{}).ProtoReflect().Descriptor().Fields()
	for i, e := range insts {
		m, _ := e.(map[string]any)
		if len(m) != createFields.Len()+1 {
			t.Errorf("instance %d has %d keys, want OP_ID and the %d parameters: %v", i, len(m), createFields.Len(), m)
		}
		for k, want := range map[string]any{
			"OP_ID": "OP_INSTANCE_CREATE", "comment": "Submitted by OP_INSTANCE_MULTI_ALLOC", "pnode": "node2.example.com",
			"pnode_uuid": node2, "debug_level": 0.0, "priority": 0.0, "dry_run": nil, "iallocator": nil, "snode": nil,
			"osparams_private": map[string]any{}, "osparams_secret": map[string]any{}, "source_handshake": nil,
			"beparams": map[string]any{"memory": 128.0}, "nics": []any{map[string]any{}}, "wait_for_sync": true,
		} {
			if got, ok := m[k]; !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("instance %d: %s = %#v (present %v), want %#v", i, k, got, ok, want)
			}
		}
		// The multi-allocation's reason trail (rlib2's part is absent:
		// this job was submitted directly).
		if r, _ := m["reason"].([]any); len(r) != 1 {
			t.Errorf("instance %d: reason %v", i, m["reason"])
		}
	}
	if _, ok := rec["iallocator"]; ok {
		t.Errorf("iallocator %v: the instances name their nodes", rec["iallocator"])
	}
}

// Disk and NIC modifications given in the old two-element form are stored
// as Ganeti's LUInstanceSetParams upgrades them.
func TestSetParamsModsUpgraded(t *testing.T) {
	v := newEnv(t, 1, nil)
	v.e.Start()
	mods := func(list ...any) *structpb.Value {
		val, err := structpb.NewValue(list)
		if err != nil {
			t.Fatal(err)
		}
		return val
	}
	j := v.wait(v.submit(&rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceSetParams{InstanceSetParams: &rapiv2.OpInstanceSetParams{
		InstanceName: proto.String("inst1.example.com"),
		Nics:         mods([]any{"add", map[string]any{}}, []any{0, map[string]any{"name": "n0"}}),
	}}}))
	rec := opRecordOf(t, j, 0)
	want := []any{[]any{"add", -1.0, map[string]any{}}, []any{"modify", 0.0, map[string]any{"name": "n0"}}}
	if !reflect.DeepEqual(rec["nics"], want) {
		t.Errorf("nics = %v, want %v (job %s %v)", rec["nics"], want, j.Status, j.OpResult)
	}
	if !reflect.DeepEqual(rec["disks"], []any{}) {
		t.Errorf("disks = %v", rec["disks"])
	}
}
