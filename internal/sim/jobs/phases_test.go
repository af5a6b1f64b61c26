package jobs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

// phasedOps are the representative opcodes of the LU-phase tests.
var phasedOps = []struct {
	name string
	op   proto.Message
}{
	{"tag set", &rapiv2.OpTagsSet{Kind: rapiv2.TagKind_TAG_KIND_INSTANCE.Enum(), Name: proto.String("inst1.example.com"), Tags: []string{"a", "b"}}},
	{"tag del", &rapiv2.OpTagsDel{Kind: rapiv2.TagKind_TAG_KIND_INSTANCE.Enum(), Name: proto.String("inst1.example.com"), Tags: []string{"t1"}}},
	// Logs in its Check phase ("Demoting from master candidate").
	{"node modify", &rapiv2.OpNodeSetParams{NodeName: proto.String("node2.example.com"), MasterCapable: proto.Bool(false), AutoPromote: proto.Bool(true)}},
	// The new group's UUID is in the plan.
	{"group add", &rapiv2.OpGroupAdd{GroupName: proto.String("g2")}},
	{"group rename", &rapiv2.OpGroupRename{GroupName: proto.String("default"), NewName: proto.String("main")}},
	// The new network's UUID is in the plan.
	{"network add", &rapiv2.OpNetworkAdd{NetworkName: proto.String("net2"), Network: proto.String("198.51.100.0/24")}},
	// The new NIC's UUID and generated MAC are in the plan.
	{"instance modify nic add", &rapiv2.OpInstanceSetParams{InstanceName: proto.String("inst1.example.com"),
		Nics: mustValue([]any{[]any{"add", -1, map[string]any{"link": "br7"}}})}},
	{"instance shutdown", &rapiv2.OpInstanceShutdown{InstanceName: proto.String("inst1.example.com")}},
	// hail (countingIAllocator) chooses node2: its answer is in the plan.
	{"instance failover hail", &rapiv2.OpInstanceFailover{InstanceName: proto.String("inst2.example.com"), Iallocator: proto.String("hail")}},
	{"network connect", &rapiv2.OpNetworkConnect{GroupName: proto.String("default"), NetworkName: proto.String("net1"),
		NetworkMode: rapiv2.NetworkMode_NETWORK_MODE_BRIDGED.Enum(), NetworkLink: proto.String("br1")}},
	// The node's new boot id is in the plan.
	{"node powercycle", &rapiv2.OpNodePowercycle{NodeName: proto.String("node2.example.com"), Force: proto.Bool(true)}},
	{"cluster modify", &rapiv2.OpClusterSetParams{CandidatePoolSize: proto.Int64(5)}},
}

// TestApplyTwiceSameSnapshot: a Phased executor's Apply, run twice on
// copies of the same snapshot with the same plan, leaves the same
// configuration, result and log, and leaves the snapshot as it was: it is
// a function of the transaction's contents and the plan.
func TestApplyTwiceSameSnapshot(t *testing.T) {
	for _, tc := range phasedOps {
		t.Run(tc.name, func(t *testing.T) {
			model := openModel(t, memstore.New(), 3)
			st := model.State()
			before := jsonOf(t, st.Config())
			ex := lu.DefaultExecutors()[opexec.OpID(tc.op)].(opexec.Phased)
			x := &opexec.ExecContext{JobID: 1, State: st, Env: opexec.Env{IAllocator: &countingIAllocator{}}}
			plan, err := ex.Check(opexec.NewCheckContext(x, st, nil), tc.op)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			apply := func() (cfg, res, logs string) {
				var log []string
				x := &opexec.ExecContext{JobID: 1, State: st, Config: st.Config(),
					Env: opexec.Env{Now: time.Unix(1795376095, 0), IAllocator: &countingIAllocator{}, Logf: func(_ string, msg any) { log = append(log, fmt.Sprint(msg)) }}}
				r, err := ex.Apply(x, tc.op, plan)
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				return jsonOf(t, x.Config), jsonOf(t, r), fmt.Sprint(log)
			}
			c1, r1, l1 := apply()
			c2, r2, l2 := apply()
			if c1 == before {
				t.Fatal("Apply changed nothing")
			}
			if c1 != c2 || r1 != r2 || l1 != l2 {
				t.Errorf("second Apply differs:\nconfig %v\nresult %s / %s\nlog %s / %s", c1 != c2, r1, r2, l1, l2)
			}
			if got := jsonOf(t, model.State().Config()); got != before {
				t.Error("Apply changed the snapshot")
			}
		})
	}
}

// countingIAllocator places every instance on node2 and counts its runs.
type countingIAllocator struct{ runs atomic.Int32 }

func (*countingIAllocator) Lookup(name string) string {
	if name != "hail" {
		return ""
	}
	return "/fake/hail"
}

func (c *countingIAllocator) Run(context.Context, string, []byte) ([]byte, error) {
	c.runs.Add(1)
	return []byte(`{"success": true, "info": "ok", "result": ["node2.example.com"]}`), nil
}

// TestApplyRerunNoDoubleEffect: with a store that runs every update
// function twice (the first run rolled back), each opcode has the effect
// of one run: the same serial numbers, tags, log and result as on a plain
// store, one new instance, and hail run once (in the plan phase).
func TestApplyRerunNoDoubleEffect(t *testing.T) {
	ops := append(phasedOps[:len(phasedOps):len(phasedOps)], struct {
		name string
		op   proto.Message
	}{"instance create", createAlloc("new.example.com", "file", "hail", 1024)})
	run := func(t *testing.T, op proto.Message, rerun bool) (*Job, *cluster.Config, int32) {
		fs := faultstore.New(memstore.New())
		model := openModel(t, fs, 3)
		fs.Rerun(rerun)
		hail := &countingIAllocator{}
		v := &env{t: t, st: fs, model: model, clock: newFakeClock()}
		e, err := New(Config{Model: model, Clock: v.clock.Now, Logger: quiet, IAllocator: hail, Executors: lu.DefaultExecutors()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Stop(context.Background()) })
		v.e = e
		e.Start()
		j := v.wait(v.submit(wrap(op)))
		return j, model.State().Config(), hail.runs.Load()
	}
	for _, tc := range ops {
		t.Run(tc.name, func(t *testing.T) {
			j1, c1, runs1 := run(t, tc.op, false)
			j2, c2, runs2 := run(t, tc.op, true)
			if j2.Status != StatusSuccess || j1.Status != StatusSuccess {
				t.Fatalf("status %s (plain %s): %v", j2.Status, j1.Status, j2.OpResult)
			}
			if runs2 != runs1 {
				t.Errorf("hail ran %d times, %d on a plain store", runs2, runs1)
			}
			if len(c2.Instances) != len(c1.Instances) {
				t.Errorf("%d instances, %d on a plain store", len(c2.Instances), len(c1.Instances))
			}
			if c2.Cluster.SerialNo != c1.Cluster.SerialNo {
				t.Errorf("cluster serial %d, %d on a plain store", c2.Cluster.SerialNo, c1.Cluster.SerialNo)
			}
			if got, want := objects(c2), objects(c1); got != want {
				t.Errorf("nodes and instances:\n%s\nplain store:\n%s", got, want)
			}
			// A generated MAC address is random in each of the two runs.
			res1, res2 := anyMAC.ReplaceAllString(jsonOf(t, j1.OpResult), "MAC"), anyMAC.ReplaceAllString(jsonOf(t, j2.OpResult), "MAC")
			if msgs(j2) != msgs(j1) || res2 != res1 {
				t.Errorf("log or result differ:\n%s %s\n%s %s", msgs(j2), jsonOf(t, j2.OpResult), msgs(j1), jsonOf(t, j1.OpResult))
			}
		})
	}
}

// anyMAC matches a MAC address.
var anyMAC = regexp.MustCompile(`[0-9a-f]{2}(:[0-9a-f]{2}){5}`)

// objects lists the nodes and instances of cfg by name with their serial
// numbers, tags and roles.
func objects(cfg *cluster.Config) string {
	var out []string
	for _, n := range cfg.Nodes {
		out = append(out, fmt.Sprintf("node %s serial %d tags %v mc %v", n.Name, n.SerialNo, n.Tags, n.MasterCandidate))
	}
	for _, g := range cfg.Groups {
		out = append(out, fmt.Sprintf("group %s serial %d", g.Name, g.SerialNo))
	}
	for _, i := range cfg.Instances {
		out = append(out, fmt.Sprintf("instance %s serial %d tags %v disks %d on %s", i.Name, i.SerialNo, i.Tags, len(i.Disks), cfg.Nodes[i.PrimaryNode].Name))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// msgs are the messages of a job's log.
func msgs(j *Job) string {
	var out []any
	for _, l := range j.OpLog {
		for _, e := range l {
			out = append(out, e.Type, e.Message)
		}
	}
	return fmt.Sprint(out)
}

// writingCheck is a Phased executor whose Check tries to write: to the
// store and to the configuration snapshot.
type writingCheck struct {
	putErr chan error
}

func (writingCheck) Locks(proto.Message, *cluster.State) ([]opexec.Lock, error) { return nil, nil }

func (w writingCheck) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(w, x, op)
}

func (w writingCheck) Check(c *opexec.CheckContext, _ proto.Message) (any, error) {
	w.putErr <- c.Tx.Put("config", "intruder", []byte("x"))
	for uuid := range c.Snapshot.Nodes {
		c.Snapshot.EditNode(uuid).Tags = []string{"intruder"} // panics
	}
	return nil, nil
}

func (writingCheck) Apply(*opexec.ExecContext, proto.Message, any) (any, error) {
	return "applied", nil
}

// TestCheckCannotWrite: the Check phase gets a store view that refuses
// writes and a configuration snapshot whose edits panic (the opcode then
// fails, unexpectedly): nothing it tried reaches the cluster.
func TestCheckCannotWrite(t *testing.T) {
	w := writingCheck{putErr: make(chan error, 1)}
	v := newEnv(t, 1, func(c *Config) { c.Executors = map[string]opexec.Executor{"OP_TEST_DELAY": w} })
	before := jsonOf(t, v.model.State().Config())
	v.e.Start()
	j := v.wait(v.submit(opOf(delay(0))))
	if err := <-w.putErr; !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("Put in Check: %v, want store.ErrReadOnly", err)
	}
	if j.Status != StatusError || jsonOf(t, j.OpResult) == `["applied"]` {
		t.Errorf("job %s %s, want an error", j.Status, jsonOf(t, j.OpResult))
	}
	if got := jsonOf(t, v.model.State().Config()); got != before {
		t.Error("Check changed the configuration")
	}
	if err := v.st.View(context.Background(), func(tx store.Tx) error {
		if val, _ := tx.Get("config", "intruder"); val != nil {
			t.Error("Check wrote to the store")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
