package jobs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/faultstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

// followUpIDs returns the job ids of a {"jobs": [[true, id], ...]} result.
func followUpIDs(t *testing.T, res any) []int64 {
	t.Helper()
	m, ok := res.(map[string]any)
	if !ok {
		t.Fatalf("result %s is not an object", jsonOf(t, res))
	}
	list, _ := m["jobs"].([]any)
	var ids []int64
	for _, e := range list {
		pair, _ := e.([]any)
		if len(pair) != 2 || pair[0] != true {
			t.Fatalf("bad jobs entry %s", jsonOf(t, e))
		}
		id, _ := pair[1].(int64)
		ids = append(ids, id)
	}
	return ids
}

// submitter submits one follow-up job (a tag on the cluster) and then
// fails when fail is set.
type submitter struct{ fail bool }

func (submitter) Locks(proto.Message, *cluster.State) ([]opexec.Lock, error) { return nil, nil }

func (s submitter) Exec(x *opexec.ExecContext, _ proto.Message) (any, error) {
	if x.DryRun {
		_, err := x.SubmitFollowUp([]*rapiv2.OpCode{tagsSet(kCluster, "", "dry")})
		return nil, err
	}
	id, err := x.SubmitFollowUp([]*rapiv2.OpCode{tagsSet(kCluster, "", "followup")})
	if err != nil {
		return nil, err
	}
	if s.fail {
		return nil, errors.New("boom")
	}
	return map[string]any{"jobs": opexec.FollowUpResult([]int64{id})}, nil
}

func TestFollowUpCommitsWithOpcode(t *testing.T) {
	st := newTestStore(t)
	model := openModel(t, st, 3)
	clock := newFakeClock()
	execs := lu.DefaultExecutors()
	execs["OP_TEST_DELAY"] = submitter{}
	execs["OP_TEST_ALLOCATOR"] = submitter{fail: true}
	e1, err := New(Config{IAllocator: testIAllocators{}, Model: model, Clock: clock.Now, Logger: quiet, Executors: execs})
	if err != nil {
		t.Fatal(err)
	}
	e1.Start()
	// A failed opcode submits nothing.
	bad, err := e1.Submit(context.Background(), []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TestAllocator{TestAllocator: &rapiv2.OpTestAllocator{}}}}, SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, e1, bad); j.Status != StatusError {
		t.Fatalf("failing job: %s", j.Status)
	}
	if ids := e1.IDs(); len(ids) != 1 {
		t.Fatalf("jobs after a failed submitter: %v", ids)
	}
	// Dry run: no follow-up.
	dry, _ := e1.Submit(context.Background(), []*rapiv2.OpCode{opOf(&rapiv2.OpTestDelay{DryRun: proto.Bool(true)})}, SubmitOptions{})
	if j := waitJob(t, e1, dry); j.Status != StatusError {
		t.Fatalf("dry-run submitter: %s %s", j.Status, jsonOf(t, j.OpResult))
	}
	parent, _ := e1.Submit(context.Background(), []*rapiv2.OpCode{opOf(&rapiv2.OpTestDelay{Priority: rapiv2.OpPriority_OP_PRIORITY_HIGH.Enum()})}, SubmitOptions{})
	j := waitJob(t, e1, parent)
	if j.Status != StatusSuccess {
		t.Fatalf("submitter: %s %s", j.Status, jsonOf(t, j.OpResult))
	}
	ids := followUpIDs(t, j.OpResult[0])
	if len(ids) != 1 || ids[0] <= parent {
		t.Fatalf("follow-up ids %v (parent %d)", ids, parent)
	}
	// The follow-up job is in the store with the parent's success, and has
	// Ganeti's base parameters.
	var raw []byte
	if err := st.View(context.Background(), func(tx store.Tx) error { raw, err = tx.Get(BucketJobs, jobKey(ids[0])); return err }); err != nil || raw == nil {
		t.Fatalf("follow-up job not stored: %v", err)
	}
	fj := waitJob(t, e1, ids[0])
	if fj.Status != StatusSuccess || fj.OpPriority[0] != PriorityHigh {
		t.Errorf("follow-up job: %s priority %d", fj.Status, fj.OpPriority[0])
	}
	ts := fj.Ops[0].GetTagsSet()
	if ts.GetComment() != "Submitted by OP_TEST_DELAY" {
		t.Errorf("comment %q", ts.GetComment())
	}
	var sources []string
	for _, r := range ts.GetReason() {
		sources = append(sources, r.GetSource())
	}
	if got := strings.Join(sources, " "); got != "gnt:opcode:test_delay gnt:opcode:tags_set" {
		t.Errorf("reason trail %q", got)
	}
	// A restart keeps it and does not reuse its id.
	if err := e1.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	model2, err := cluster.Open(st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model2, Clock: clock.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Stop(context.Background())
	if _, ok := e2.Get(ids[0]); !ok {
		t.Errorf("follow-up job lost on restart")
	}
	next, err := e2.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "x")}, SubmitOptions{})
	if err != nil || next <= ids[0] {
		t.Errorf("next id %d after follow-up %d (%v)", next, ids[0], err)
	}
}

// drbdOn is a DRBD instance with a 1 GiB disk on pnode/snode.
func drbdOn(name, pnode, snode string) *rapiv2.OpInstanceCreate {
	op := create(name, "drbd", 1024)
	op.Pnode, op.Snode = proto.String(pnode), proto.String(snode)
	return op
}

func TestNodeMigrateAndEvacuate(t *testing.T) {
	v := newInstEnv(t)
	v.runOK(drbdOn("inst2.example.com", "node1.example.com", "node2.example.com"))
	v.runOK(drbdOn("inst3.example.com", "node2.example.com", "node1.example.com"))
	node1 := proto.String("node1.example.com")

	// Dry run: null, no jobs.
	before := len(v.e.IDs())
	j := v.runOK(&rapiv2.OpNodeMigrate{NodeName: node1, DryRun: proto.Bool(true)})
	if j.OpResult[0] != nil || len(v.e.IDs()) != before+1 {
		t.Errorf("dry-run migrate: %s, %d jobs", jsonOf(t, j.OpResult), len(v.e.IDs())-before)
	}

	// Node migrate: one OP_INSTANCE_MIGRATE per primary instance.
	j = v.runOK(&rapiv2.OpNodeMigrate{NodeName: node1, AllowRuntimeChanges: proto.Bool(true), IgnoreIpolicy: proto.Bool(false)})
	ids := followUpIDs(t, j.OpResult[0])
	if len(ids) != 2 || ids[0] != j.ID+1 || ids[1] != j.ID+2 {
		t.Fatalf("node migrate jobs %v (job %d)", ids, j.ID)
	}
	var names []string
	for _, id := range ids {
		fj := v.wait(id)
		m := fj.Ops[0].GetInstanceMigrate()
		names = append(names, m.GetInstanceName())
		if fj.Summary[0] != "INSTANCE_MIGRATE("+m.GetInstanceName()+")" || m.GetComment() != "Submitted by OP_NODE_MIGRATE" {
			t.Errorf("follow-up %d: %s %q", id, fj.Summary[0], m.GetComment())
		}
	}
	if strings.Join(names, ",") != "inst1.example.com,inst2.example.com" {
		t.Errorf("migrated %v", names)
	}
	// inst2 (DRBD) migrated to node2.
	if j := v.wait(ids[1]); j.Status != StatusSuccess {
		t.Errorf("migrate inst2: %s", jsonOf(t, j.OpResult))
	}
	if got := obGet(t, v.model.State(), "instance", "inst2.example.com", "pnode", "snodes"); got != `["node2.example.com",["node1.example.com"]]` {
		t.Errorf("inst2 after migration: %s", got)
	}

	// Evacuate the secondaries of node1 to node3 with a remote node.
	j = v.runOK(&rapiv2.OpNodeEvacuate{NodeName: node1, RemoteNode: proto.String("node3.example.com"),
		Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_SECONDARY_ONLY.Enum(), EarlyRelease: proto.Bool(true)})
	ids = followUpIDs(t, j.OpResult[0])
	if len(ids) != 2 {
		t.Fatalf("evacuate jobs %v", ids)
	}
	for _, id := range ids {
		fj := v.wait(id)
		r := fj.Ops[0].GetInstanceReplaceDisks()
		if r.GetRemoteNode() != "node3.example.com" || r.GetMode() != rapiv2.ReplaceDisksMode_REPLACE_DISKS_MODE_REPLACE_NEW_SECONDARY || !r.GetEarlyRelease() {
			t.Errorf("evacuation op %d: %v", id, r)
		}
		if fj.Status != StatusSuccess {
			t.Errorf("replace disks %d: %s", id, jsonOf(t, fj.OpResult))
		}
	}
	st := v.model.State()
	for _, name := range []string{"inst2.example.com", "inst3.example.com"} {
		if got := obGet(t, st, "instance", name, "snodes"); got != `[["node3.example.com"]]` {
			t.Errorf("%s snodes after evacuation: %s", name, got)
		}
	}

	// Primary-only with the built-in allocator: inst2 and inst3 (DRBD)
	// migrate to their secondary, inst1 (diskless, migrated to node2 above)
	// to another node.
	j = v.runOK(&rapiv2.OpNodeEvacuate{NodeName: proto.String("node2.example.com"), Iallocator: proto.String("hail"),
		Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_PRIMARY_ONLY.Enum()})
	ids = followUpIDs(t, j.OpResult[0])
	if len(ids) != 3 {
		t.Fatalf("primary evacuation jobs %v", ids)
	}
	for i, id := range ids {
		fj := v.wait(id)
		m := fj.Ops[0].GetInstanceMigrate()
		if !m.GetAllowFailover() || (m.TargetNode != nil) != (i == 0) || fj.Status != StatusSuccess {
			t.Errorf("evacuation job %d: %v %s", id, m, jsonOf(t, fj.OpResult))
		}
	}
	if len(j.OpLog[0]) == 0 || !strings.Contains(jsonOf(t, j.OpLog[0]), "inst2.example.com (to node3.example.com, node2.example.com), inst3.example.com (to node3.example.com, node2.example.com)") {
		t.Errorf("evacuation log %s", jsonOf(t, j.OpLog))
	}

	// A plain instance cannot be relocated.
	v.runOK(create("inst4.example.com", "plain", 1024))
	j = v.run(&rapiv2.OpNodeEvacuate{NodeName: node1, Iallocator: proto.String("hail"),
		Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_PRIMARY_ONLY.Enum()})
	if j.Status != StatusError || !strings.Contains(jsonOf(t, j.OpResult), "Unable to evacuate instances inst4.example.com (Instances of type plain cannot be relocated)") {
		t.Errorf("plain evacuation: %s", jsonOf(t, j.OpResult))
	}
}

// allocInst is an instance of POST /2/instances-multi-alloc as seq 163
// sends it (pnode "" for none).
func allocInst(name, pnode string, memory int) any {
	m := map[string]any{"mode": "create", "instance_name": name, "os_type": "noop", "disk_template": "diskless",
		"disks": []any{}, "nics": []any{map[string]any{}}, "hypervisor": "fake",
		"beparams": map[string]any{"memory": memory, "vcpus": 1}, "ip_check": false, "name_check": true,
		"start": true, "wait_for_sync": false}
	if pnode != "" {
		m["pnode"] = pnode
	}
	return m
}

func multiAlloc(insts ...any) *rapiv2.OpInstanceMultiAlloc {
	m := &rapiv2.OpInstanceMultiAlloc{}
	for _, c := range insts {
		m.Instances = append(m.Instances, mustValue(c))
	}
	return m
}

func TestInstanceMultiAlloc(t *testing.T) {
	v := newInstEnv(t)
	// Nodes given (seq 163-164).
	j := v.runOK(multiAlloc(allocInst("inst6.example.com", "node1.example.com", 128), allocInst("inst7.example.com", "node1.example.com", 128)))
	ids := followUpIDs(t, j.OpResult[0])
	res := j.OpResult[0].(map[string]any)
	if jsonOf(t, res["allocatable"]) != `["inst6.example.com","inst7.example.com"]` || jsonOf(t, res["failed"]) != `[]` || len(ids) != 2 || ids[0] != j.ID+1 {
		t.Fatalf("multi-alloc result %s", jsonOf(t, res))
	}
	for _, id := range ids {
		fj := v.wait(id)
		c := fj.Ops[0].GetInstanceCreate()
		if fj.Status != StatusSuccess || c.GetComment() != "Submitted by OP_INSTANCE_MULTI_ALLOC" || c.GetPnodeUuid() == "" {
			t.Errorf("create job %d: %s %v", id, jsonOf(t, fj.OpResult), c)
		}
	}

	// With the allocator: node2 has 7168 MiB free, node1 ~2800, node3 1024;
	// 4 GiB fits on node2 only, the second 4 GiB nowhere.
	op := multiAlloc(allocInst("big1.example.com", "", 4096), allocInst("big2.example.com", "", 4096))
	op.Iallocator = proto.String("hail")
	op.DryRun = proto.Bool(true)
	n := len(v.e.IDs())
	j = v.runOK(op)
	if got := jsonOf(t, j.OpResult[0]); got != `{"allocatable":["big1.example.com"],"failed":["big2.example.com"],"jobs":[]}` || len(v.e.IDs()) != n+1 {
		t.Errorf("dry-run multi-alloc: %s", got)
	}
	op.DryRun = nil
	j = v.runOK(op)
	ids = followUpIDs(t, j.OpResult[0])
	if len(ids) != 1 {
		t.Fatalf("multi-alloc jobs %v", ids)
	}
	fj := v.wait(ids[0])
	if fj.Status != StatusSuccess || fj.Ops[0].GetInstanceCreate().GetPnode() != "node2.example.com" {
		t.Errorf("allocated create: %s %v", jsonOf(t, fj.OpResult), fj.Ops[0].GetInstanceCreate().GetPnode())
	}

	// Mixed nodes / no nodes.
	mixed := multiAlloc(allocInst("a.example.com", "", 128), allocInst("b.example.com", "node1.example.com", 128))
	if j := v.run(mixed); j.Status != StatusError || !strings.Contains(jsonOf(t, j.OpResult), "providing pnode/snode while others do not") {
		t.Errorf("mixed: %s", jsonOf(t, j.OpResult))
	}
}

// A store may run a transaction's function more than once: the opcode's
// follow-up jobs are then submitted once, with the IDs the first run took
// (no job ID skipped, no extra job).
func TestFollowUpWhenFnRunsTwice(t *testing.T) {
	st := faultstore.New(memstore.New())
	model := openModel(t, st, 3)
	st.Rerun(true)
	execs := lu.DefaultExecutors()
	execs["OP_TEST_DELAY"] = submitter{}
	e, err := New(Config{Model: model, Clock: newFakeClock().Now, Logger: quiet, Executors: execs})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	e.Start()
	parent, err := e.Submit(context.Background(), []*rapiv2.OpCode{opOf(&rapiv2.OpTestDelay{})}, SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, e, parent)
	if j.Status != StatusSuccess {
		t.Fatalf("submitter: %s %s", j.Status, jsonOf(t, j.OpResult))
	}
	ids := followUpIDs(t, j.OpResult[0])
	if len(ids) != 1 || ids[0] != parent+1 {
		t.Fatalf("follow-up ids %v, want [%d]", ids, parent+1)
	}
	waitJob(t, e, ids[0])
	if got := e.IDs(); !slices.Equal(got, []int64{parent, parent + 1}) {
		t.Errorf("jobs %v, want [%d %d]", got, parent, parent+1)
	}
	next, err := e.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "x")}, SubmitOptions{})
	if err != nil || next != parent+2 {
		t.Errorf("next job id %d (%v), want %d", next, err, parent+2)
	}
}
