package jobs

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// TestCheckErrorKeepsFeedback: an opcode whose Check phase fails commits
// nothing, and its job keeps the log entries and parameter writes the
// logical unit made before the failing check, with Ganeti's error.
func TestCheckErrorKeepsFeedback(t *testing.T) {
	failingHail := &fakeIAllocators{path: "/fake/hail", out: `{"success": false, "info": "no luck", "result": []}`}
	for _, tc := range []struct {
		name   string
		setup  []proto.Message // run first, each must succeed
		op     proto.Message
		result string   // the job's opresult
		log    []string // the failing opcode's log
		param  func(*rapiv2.OpCode) string
		want   string // param's value
	}{
		{
			name: "network remove, still connected",
			setup: []proto.Message{&rapiv2.OpNetworkConnect{GroupName: proto.String("default"), NetworkName: proto.String("net1"),
				NetworkMode: rapiv2.NetworkMode_NETWORK_MODE_BRIDGED.Enum(), NetworkLink: proto.String("br1")}},
			op:     &rapiv2.OpNetworkRemove{NetworkName: proto.String("net1")},
			result: `[["OpPrereqError",["Network still connected","wrong_state"]]]`,
			log:    []string{" - WARNING: Network 'net1' is connected to the following node groups: default"},
		},
		{
			name:   "failover, the cluster's default iallocator fails",
			setup:  []proto.Message{&rapiv2.OpClusterSetParams{DefaultIallocator: proto.String("hail")}},
			op:     &rapiv2.OpInstanceFailover{InstanceName: proto.String("inst1.example.com")},
			result: `[["OpPrereqError",["Can't compute nodes using iallocator 'hail': no luck","insufficient_resources"]]]`,
			param:  func(op *rapiv2.OpCode) string { return op.GetInstanceFailover().GetIallocator() },
			want:   "hail", // CheckIAllocatorOrNode wrote it back
		},
		{
			name: "network connect, an instance's IP in the network",
			setup: []proto.Message{&rapiv2.OpInstanceSetParams{InstanceName: proto.String("inst1.example.com"),
				Nics: mustValue([]any{[]any{"add", -1, map[string]any{"link": "br7", "ip": "203.0.113.5"}}})}},
			op: &rapiv2.OpNetworkConnect{GroupName: proto.String("default"), NetworkName: proto.String("net1"),
				NetworkMode: rapiv2.NetworkMode_NETWORK_MODE_BRIDGED.Enum(), NetworkLink: proto.String("br1"), ConflictsCheck: proto.Bool(true)},
			result: `[["OpPrereqError",["Conflicting IP addresses found;  remove/modify the corresponding network interfaces","wrong_state"]]]`,
			log:    []string{" - WARNING: IP addresses from network 'net1', which is about to connect to node group 'default', are in use: inst1.example.com: nic1/203.0.113.5"},
		},
		{
			name:   "network add, the name exists",
			op:     &rapiv2.OpNetworkAdd{NetworkName: proto.String("net1"), Network: proto.String("198.51.100.0/24")},
			result: `[["OpPrereqError",["Desired network name 'net1' already exists as a network (UUID: UUID)","already_exists"]]]`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			useIAllocators(t, failingHail)
			v := newEnv(t, 1, nil)
			v.e.Start()
			for _, op := range tc.setup {
				v.runOK(op)
			}
			before := v.configJSON()

			// The failure is Check's: on the snapshot, before any
			// transaction.
			st := v.model.State()
			ph := lu.DefaultExecutors()[opexec.OpID(tc.op)].(opexec.Phased)
			x := &opexec.ExecContext{JobID: 1, State: st, Env: opexec.Env{IAllocator: testIAllocators{}}}
			if _, err := ph.Check(opexec.NewCheckContext(x, st, nil), tc.op); err == nil {
				t.Fatal("Check succeeded")
			}

			j := v.run(tc.op)
			if j.Status != StatusError {
				t.Fatalf("status %s, want error", j.Status)
			}
			if got := anyUUID.ReplaceAllString(jsonOf(t, j.OpResult), "UUID"); got != tc.result {
				t.Errorf("result %s\nwant %s", got, tc.result)
			}
			if got := logMessages(j, 0); !slices.Equal(got, tc.log) {
				t.Errorf("log %q\nwant %q", got, tc.log)
			}
			if tc.param != nil {
				if got := tc.param(j.Ops[0]); got != tc.want {
					t.Errorf("parameter %q, want %q written back", got, tc.want)
				}
			}
			if got := v.configJSON(); got != before {
				t.Error("the failed opcode changed the configuration")
			}

			// In dry-run mode (opexec.CheckApply) too.
			dry := proto.Clone(tc.op)
			dry.ProtoReflect().Set(dry.ProtoReflect().Descriptor().Fields().ByName("dry_run"), protoreflect.ValueOfBool(true))
			j = v.run(dry)
			if got := anyUUID.ReplaceAllString(jsonOf(t, j.OpResult), "UUID"); got != tc.result {
				t.Errorf("dry run: result %s\nwant %s", got, tc.result)
			}
			if got := logMessages(j, 0); !slices.Equal(got, tc.log) {
				t.Errorf("dry run: log %q\nwant %q", got, tc.log)
			}
		})
	}
}

// anyUUID matches a UUID.
var anyUUID = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// TestApplyAfterChange: Apply on a configuration changed after Check (the
// instance removed, a node offlined, the network removed) fails with
// Ganeti's error of the check that no longer holds, and leaves the
// snapshot Check ran on as it was.
func TestApplyAfterChange(t *testing.T) {
	hail := &countingIAllocator{} // chooses node2
	instUUID := func(cfg *cluster.Config, name string) string {
		for u, i := range cfg.Instances {
			if i.Name == name {
				return u
			}
		}
		t.Fatalf("no instance %s", name)
		return ""
	}
	nodeUUID := func(cfg *cluster.Config, name string) string {
		for u, n := range cfg.Nodes {
			if n.Name == name {
				return u
			}
		}
		t.Fatalf("no node %s", name)
		return ""
	}
	for _, tc := range []struct {
		name   string
		op     proto.Message
		change func(cfg *cluster.Config)
		err    string // the error's class and message
	}{
		{
			name:   "instance remove, the instance removed",
			op:     &rapiv2.OpInstanceRemove{InstanceName: proto.String("inst1.example.com")},
			change: func(cfg *cluster.Config) { delete(cfg.Instances, instUUID(cfg, "inst1.example.com")) },
			err:    "OpPrereqError: Instance 'inst1.example.com' not known",
		},
		{
			name: "instance reboot, its primary node offlined",
			op:   &rapiv2.OpInstanceReboot{InstanceName: proto.String("inst1.example.com")},
			change: func(cfg *cluster.Config) {
				cfg.EditNode(nodeUUID(cfg, "node2.example.com")).Offline = true
			},
			err: "OpPrereqError: Can't use offline node: node2.example.com",
		},
		{
			name: "failover by hail, the chosen node offlined",
			op:   &rapiv2.OpInstanceFailover{InstanceName: proto.String("inst2.example.com"), Iallocator: proto.String("hail")},
			change: func(cfg *cluster.Config) {
				cfg.EditNode(nodeUUID(cfg, "node2.example.com")).Offline = true
			},
			err: "OpPrereqError: Can't use offline node: node2.example.com",
		},
		{
			name: "network connect, the network removed",
			op: &rapiv2.OpNetworkConnect{GroupName: proto.String("default"), NetworkName: proto.String("net1"),
				NetworkMode: rapiv2.NetworkMode_NETWORK_MODE_BRIDGED.Enum(), NetworkLink: proto.String("br1")},
			change: func(cfg *cluster.Config) {
				for u, n := range cfg.Networks {
					if n.Name == "net1" {
						delete(cfg.Networks, u)
					}
				}
			},
			err: "OpPrereqError: Network 'net1' not found",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model := openModel(t, newTestStore(t), 3)
			st := model.State()
			before := jsonOf(t, st.Config())
			ph := lu.DefaultExecutors()[opexec.OpID(tc.op)].(opexec.Phased)
			x := &opexec.ExecContext{JobID: 1, State: st, Env: opexec.Env{IAllocator: hail}}
			plan, err := ph.Check(opexec.NewCheckContext(x, st, nil), tc.op)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			runs := hail.runs.Load()
			cfg := st.Config()
			tc.change(cfg)
			x = &opexec.ExecContext{JobID: 1, State: st, Config: cfg, Env: opexec.Env{IAllocator: hail}}
			_, err = ph.Apply(x, tc.op, plan)
			e, ok := errs.As(err)
			if !ok {
				t.Fatalf("Apply: %v, want a Ganeti error", err)
			}
			if got := e.Class + ": " + e.Msg; got != tc.err {
				t.Errorf("Apply: %s\nwant %s", got, tc.err)
			}
			if hail.runs.Load() != runs {
				t.Error("Apply ran the iallocator")
			}
			if got := jsonOf(t, st.Config()); got != before {
				t.Error("Apply changed the snapshot")
			}
		})
	}
}

// offliningHail answers as countingIAllocator, and offlines the node it
// chose while it runs: a change to the configuration between an opcode's
// Check and its Apply.
type offliningHail struct {
	countingIAllocator
	model *cluster.Model
}

func (o *offliningHail) Run(ctx context.Context, path string, in []byte) ([]byte, error) {
	out, err := o.countingIAllocator.Run(ctx, path, in)
	if uerr := o.model.Update(ctx, func(_ store.Tx, cfg *cluster.Config) error {
		for u, n := range cfg.Nodes {
			if n.Name == "node2.example.com" {
				cfg.EditNode(u).Offline = true
			}
		}
		return nil
	}); uerr != nil {
		return nil, uerr
	}
	return out, err
}

// TestApplyAfterChangeJob: in the engine, a failover whose target node
// goes offline between Check (hail chose it) and Apply fails with
// Ganeti's error and commits nothing of its own; hail ran once.
func TestApplyAfterChangeJob(t *testing.T) {
	st := newTestStore(t)
	model := openModel(t, st, 3)
	hail := &offliningHail{model: model}
	e, err := New(Config{Model: model, Clock: newFakeClock().Now, Logger: quiet, IAllocator: hail, Executors: lu.DefaultExecutors()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	v := &env{t: t, st: st, model: model, e: e, clock: newFakeClock()}
	e.Start()
	before := model.State().Config()
	j := v.run(&rapiv2.OpInstanceFailover{InstanceName: proto.String("inst2.example.com"), Iallocator: proto.String("hail")})
	if got, want := jsonOf(t, j.OpResult), `[["OpPrereqError",["Can't use offline node: node2.example.com","wrong_state"]]]`; got != want {
		t.Errorf("result %s\nwant %s", got, want)
	}
	if n := hail.runs.Load(); n != 1 {
		t.Errorf("hail ran %d times, want 1 (in Check)", n)
	}
	after := model.State().Config()
	for u, i := range after.Instances {
		if b := before.Instances[u]; i.PrimaryNode != b.PrimaryNode || i.SerialNo != b.SerialNo {
			t.Errorf("instance %s changed: primary %s serial %d, was %s %d", i.Name, i.PrimaryNode, i.SerialNo, b.PrimaryNode, b.SerialNo)
		}
	}
	if !strings.Contains(objects(after), "node node2.example.com") {
		t.Error("node2 is gone")
	}
}
