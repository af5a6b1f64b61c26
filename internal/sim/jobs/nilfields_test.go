package jobs

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
)

// nilClusterJSON has an instance of each simulated disk template (running
// diskless and file instances, a stopped plain one, a drbd one), an LVM
// volume group, a network and a second group, so that executors get past
// their first lookups.
const nilClusterJSON = `{
  "cluster": {"name": "cluster.example.com", "master_node": "node1.example.com",
    "enabled_hypervisors": ["fake"], "enabled_disk_templates": ["diskless", "file", "plain", "drbd"],
    "volume_group_name": "xenvg", "drbd_usermode_helper": "/bin/true",
    "nicparams": {"mode": "bridged", "link": "br0"}, "master_netdev": "eth0", "master_netmask": 24},
  "groups": [{"name": "default", "alloc_policy": "preferred"}, {"name": "group2", "alloc_policy": "preferred"}],
  "nodes": [
    {"name": "node1.example.com", "group": "default", "pip": "192.0.2.11", "mtotal": 65536, "mnode": 1024,
     "dtotal": 1048576, "ctotal": 16, "cnos": 1, "cnodes": 1, "csockets": 2, "spindles": 4},
    {"name": "node2.example.com", "group": "default", "pip": "192.0.2.12", "mtotal": 65536, "mnode": 1024,
     "dtotal": 1048576, "ctotal": 16, "cnos": 1, "cnodes": 1, "csockets": 2, "spindles": 4},
    {"name": "node3.example.com", "group": "default", "pip": "192.0.2.13", "mtotal": 65536, "mnode": 1024,
     "dtotal": 1048576, "ctotal": 16, "cnos": 1, "cnodes": 1, "csockets": 2, "spindles": 4},
    {"name": "node4.example.com", "group": "group2", "pip": "192.0.2.14", "mtotal": 65536, "mnode": 1024,
     "dtotal": 1048576, "ctotal": 16, "cnos": 1, "cnodes": 1, "csockets": 2, "spindles": 4}
  ],
  "oses": [{"name": "noop"}],
  "networks": [{"name": "net1", "network": "203.0.113.0/24",
    "connections": [{"group": "default", "mode": "bridged", "link": "br1"}]}],
  "instances": [
    {"name": "inst1.example.com", "os": "noop", "pnode": "node1.example.com", "disk_template": "diskless",
     "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1}},
    {"name": "inst2.example.com", "os": "noop", "pnode": "node2.example.com", "disk_template": "file",
     "disks": [{"size": 1024}], "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1}},
    {"name": "inst3.example.com", "os": "noop", "pnode": "node2.example.com", "disk_template": "plain",
     "disks": [{"size": 1024}], "admin_state": "down", "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1}},
    {"name": "inst4.example.com", "os": "noop", "pnode": "node1.example.com", "snode": "node3.example.com",
     "disk_template": "drbd", "disks": [{"size": 1024}], "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1}}
  ]
}`

// panicLog records the engine's log lines about executor panics and
// unexpected errors.
type panicLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicLog) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *panicLog) WithGroup(string) slog.Handler            { return p }
func (p *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") || strings.Contains(r.Message, "unexpectedly") {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key != "stack" {
				b.WriteString(" " + a.String())
			}
			return true
		})
		p.mu.Lock()
		p.lines = append(p.lines, b.String())
		p.mu.Unlock()
	}
	return nil
}

func (p *panicLog) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.lines
	p.lines = nil
	return out
}

// nilFieldValues are values for required parameters, by parameter name,
// naming objects of nilClusterJSON; other strings get "x".
var nilFieldValues = map[string]string{
	"instance_name": "inst4.example.com", "node_name": "node2.example.com", "group_name": "default",
	"network_name": "net1", "os_type": "noop", "pnode": "node2.example.com", "target_node": "node3.example.com",
	"remote_node": "node2.example.com", "target_group": "group2", "new_name": "renamed.example.com",
	"name": "inst4.example.com", "storage_name": "xenvg",
}

// setRequired gives each required parameter of msg (its ParamSpec) a value
// of its type; every other parameter stays unset.
func setRequired(t *testing.T, msg protoreflect.Message) {
	t.Helper()
	fields := msg.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		spec, _ := proto.GetExtension(fd.Options(), rapiv2.E_Param).(*rapiv2.ParamSpec)
		if !spec.GetRequired() || fd.IsMap() || fd.IsList() {
			continue // a required list is given empty
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			v, ok := nilFieldValues[string(fd.Name())]
			if !ok {
				v = "x"
			}
			msg.Set(fd, protoreflect.ValueOfString(v))
		case protoreflect.BoolKind:
			msg.Set(fd, protoreflect.ValueOfBool(true))
		case protoreflect.EnumKind:
			if vals := fd.Enum().Values(); vals.Len() > 1 {
				msg.Set(fd, protoreflect.ValueOfEnum(vals.Get(1).Number()))
			}
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			msg.Set(fd, protoreflect.ValueOfInt32(1))
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			msg.Set(fd, protoreflect.ValueOfInt64(1))
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			msg.Set(fd, protoreflect.ValueOfUint32(1))
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			msg.Set(fd, protoreflect.ValueOfUint64(1))
		case protoreflect.DoubleKind:
			msg.Set(fd, protoreflect.ValueOfFloat64(1))
		case protoreflect.FloatKind:
			msg.Set(fd, protoreflect.ValueOfFloat32(1))
		case protoreflect.MessageKind:
			switch fd.Message().FullName() {
			case "google.protobuf.Value":
				v := nilFieldValues[string(fd.Name())]
				if v == "" {
					v = "x"
				}
				msg.Set(fd, protoreflect.ValueOfMessage(structpb.NewStringValue(v).ProtoReflect()))
			default:
				msg.Set(fd, protoreflect.ValueOfMessage(msg.NewField(fd).Message()))
			}
		}
	}
}

// TestExecutorsWithUnsetOptionalFields runs every opcode that has an
// executor, built from the proto descriptors (the OpCode oneof), once with
// every field unset and once with only its required parameters set: no
// executor may panic (in Locks, Run or Exec) or fail with an error that is
// not Ganeti's ("Unexpected error while executing the opcode").
func TestExecutorsWithUnsetOptionalFields(t *testing.T) {
	executors := lu.DefaultExecutors()
	oneof := (&rapiv2.OpCode{}).ProtoReflect().Descriptor().Oneofs().ByName("op")
	if oneof == nil {
		t.Fatal("OpCode has no oneof op")
	}
	logs := &panicLog{}
	covered := map[string]bool{}
	for i := 0; i < oneof.Fields().Len(); i++ {
		fd := oneof.Fields().Get(i)
		mt, err := protoregistry.GlobalTypes.FindMessageByName(fd.Message().FullName())
		if err != nil {
			t.Fatalf("%s: %v", fd.Message().FullName(), err)
		}
		id := opcodeInfo(mt.New().Interface()).GetId()
		if executors[id] == nil {
			continue
		}
		covered[id] = true
		for _, variant := range []string{"unset", "required only"} {
			t.Run(id+"/"+variant, func(t *testing.T) {
				msg := mt.New()
				if variant != "unset" {
					setRequired(t, msg)
				}
				op := &rapiv2.OpCode{}
				op.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(msg))
				v := nilEnv(t, slog.New(logs))
				id, err := v.e.Submit(context.Background(), []*rapiv2.OpCode{op}, SubmitOptions{})
				if err != nil {
					t.Fatalf("Submit: %v", err)
				}
				j := v.wait(id)
				t.Logf("%s %s", j.Status, jsonOf(t, j.OpResult))
				for _, r := range j.OpResult {
					if strings.Contains(jsonOf(t, r), msgUnexpected) {
						t.Errorf("result %s", jsonOf(t, r))
					}
				}
				for _, l := range logs.take() {
					t.Errorf("engine log: %s", l)
				}
			})
		}
	}
	for id := range executors {
		if !covered[id] {
			t.Errorf("executor %s has no opcode in the OpCode oneof", id)
		}
	}
}

// nilEnv is a started engine on nilClusterJSON.
func nilEnv(t *testing.T, log *slog.Logger) *env {
	t.Helper()
	f, err := cluster.ParseFile([]byte(nilClusterJSON))
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	st := newTestStore(t)
	model, err := cluster.Open(st, f, func() time.Time { return time.Unix(1795376000, 0) })
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	clock := newFakeClock()
	e, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Clock: clock.Now, Logger: log})
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
