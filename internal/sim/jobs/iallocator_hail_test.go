package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// Tests that do not install a runner (useIAllocators) run the installed
// hail for "allocate" only: multi-allocations and evacuations stay with
// the built-in allocator, whose results those tests expect.
func init() { iallocators = allocateOnly{} }

type allocateOnly struct{ opexec.SubprocessIAllocators }

func (a allocateOnly) Run(ctx context.Context, path string, request []byte) ([]byte, error) {
	var in struct {
		Request struct {
			Type string `json:"type"`
		} `json:"request"`
	}
	if err := json.Unmarshal(request, &in); err != nil {
		return nil, err
	}
	if in.Request.Type != "allocate" {
		return nil, fmt.Errorf("%s request: %w", in.Request.Type, opexec.ErrNoExternalIAllocator)
	}
	return a.SubprocessIAllocators.Run(ctx, path, request)
}

// realHail returns the installed hail. Without one the test skips with a
// message, or fails under CI=true, where .ci/run installs it.
func realHail(t *testing.T) string {
	t.Helper()
	path := opexec.SubprocessIAllocators{}.Lookup("hail")
	if path == "" {
		msg := "hail is not installed (apt-get install ganeti-htools-3.0; Debian puts it at " + "/usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators/hail" + ")"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// hailByHand runs hail on request and returns its "result".
func hailByHand(t *testing.T, path string, request []byte) json.RawMessage {
	t.Helper()
	ok, info, res := hailByHandResp(t, path, request)
	if !ok {
		t.Fatalf("hail by hand failed: %s", info)
	}
	return res
}

// hailByHandResp runs hail on request and returns what it printed.
func hailByHandResp(t *testing.T, path string, request []byte) (bool, string, json.RawMessage) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "request.json")
	if err := os.WriteFile(file, request, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, file).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", path, file, err)
	}
	var resp struct {
		Success bool            `json:"success"`
		Info    string          `json:"info"`
		Result  json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("hail by hand: %s (%v)", out, err)
	}
	return resp.Success, resp.Info, resp.Result
}

func requestOf(t *testing.T, in []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(in, &m); err != nil {
		t.Fatal(err)
	}
	req, _ := m["request"].(map[string]any)
	return req
}

// TestHailMultiAlloc runs OP_INSTANCE_MULTI_ALLOC with the real hail
// ("multi-allocate") and compares with hail run by hand on the request.
func TestHailMultiAlloc(t *testing.T) {
	path := realHail(t)
	fake := &fakeIAllocators{path: path, real: opexec.SubprocessIAllocators{}}
	useIAllocators(t, fake)
	v := newInstEnv(t)
	// An instance that does not fit: hail (3.0) fails the whole request,
	// and so the opcode (LUInstanceMultiAlloc.CheckPrereq).
	op := multiAlloc(allocInst("m1.example.com", "", 128), allocInst("huge.example.com", "", 1<<20))
	op.Iallocator = proto.String("hail")
	j := v.run(op)
	if ok, info, _ := hailByHandResp(t, path, fake.last(t)); ok {
		t.Errorf("hail by hand placed the huge instance")
	} else if got, want := jsonOf(t, j.OpResult), jsonOf(t, []any{[]any{"OpPrereqError", []any{"Can't compute nodes using iallocator 'hail': " + info, "insufficient_resources"}}}); got != want {
		t.Errorf("result %s\nwant %s", got, want)
	}

	op = multiAlloc(allocInst("m1.example.com", "", 128), allocInst("m2.example.com", "", 256), allocInst("m3.example.com", "", 128))
	op.Iallocator = proto.String("hail")
	j = v.runOK(op)
	req := requestOf(t, fake.last(t))
	if req["type"] != "multi-allocate" || len(req["instances"].([]any)) != 3 {
		t.Fatalf("request %v", req)
	}
	checkKinds(t, "multi-allocate instance", req["instances"].([]any)[0].(map[string]any), map[string]jsonKind{
		"name": kString, "memory": kNumber, "vcpus": kNumber, "disks": kList, "disk_template": kString,
		"disk_space_total": kNumber, "nics": kList, "os": kString, "tags": kList, "required_nodes": kNumber, "hypervisor": kString,
	})
	var hand []json.RawMessage
	if err := json.Unmarshal(hailByHand(t, path, fake.last(t)), &hand); err != nil || len(hand) != 2 {
		t.Fatalf("hail multi-allocate result: %v", hand)
	}
	var allocs [][2]json.RawMessage
	var failed []string
	if err := json.Unmarshal(hand[0], &allocs); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(hand[1], &failed); err != nil {
		t.Fatal(err)
	}
	var names []string
	pnodes := map[string]string{}
	for _, a := range allocs {
		var n string
		var nodes []string
		_ = json.Unmarshal(a[0], &n)
		_ = json.Unmarshal(a[1], &nodes)
		names = append(names, n)
		pnodes[n] = nodes[0]
	}
	res := j.OpResult[0].(map[string]any)
	if got, want := jsonOf(t, res["allocatable"]), jsonOf(t, names); got != want {
		t.Errorf("allocatable %s, hail by hand %s", got, want)
	}
	if got, want := jsonOf(t, res["failed"]), jsonOf(t, failed); got != want {
		t.Errorf("failed %s, hail by hand %s", got, want)
	}
	ids := followUpIDs(t, res)
	if len(ids) != len(names) {
		t.Fatalf("jobs %v for %v", ids, names)
	}
	for i, id := range ids {
		fj := v.wait(id)
		c := fj.Ops[0].GetInstanceCreate()
		if c.GetInstanceName() != names[i] || c.GetPnode() != pnodes[names[i]] || c.GetPnodeUuid() == "" {
			t.Errorf("create job %d: %s on %s, hail by hand %s on %s", id, c.GetInstanceName(), c.GetPnode(), names[i], pnodes[names[i]])
		}
		if fj.Status != StatusSuccess {
			t.Errorf("create job %d: %s", id, jsonOf(t, fj.OpResult))
		}
	}
}

// TestHailNodeEvacuate runs OP_NODE_EVACUATE with the real hail
// ("node-evacuate") and compares the follow-up jobs with the opcodes of
// hail run by hand on the request.
func TestHailNodeEvacuate(t *testing.T) {
	path := realHail(t)
	fake := &fakeIAllocators{path: path, real: opexec.SubprocessIAllocators{}}
	useIAllocators(t, fake)
	v := newInstEnv(t)
	v.runOK(drbdOn("inst2.example.com", "node1.example.com", "node2.example.com"))
	v.runOK(drbdOn("inst3.example.com", "node2.example.com", "node1.example.com"))
	for _, tc := range []struct {
		mode rapiv2.NodeEvacMode
		name string
	}{{rapiv2.NodeEvacMode_NODE_EVAC_MODE_SECONDARY_ONLY, "secondary-only"}, {rapiv2.NodeEvacMode_NODE_EVAC_MODE_PRIMARY_ONLY, "primary-only"}} {
		j := v.runOK(&rapiv2.OpNodeEvacuate{NodeName: proto.String("node1.example.com"), Iallocator: proto.String("hail"),
			Mode: tc.mode.Enum(), EarlyRelease: proto.Bool(true)})
		req := requestOf(t, fake.last(t))
		if req["type"] != "node-evacuate" || req["evac_mode"] != tc.name || len(req["instances"].([]any)) == 0 {
			t.Fatalf("%s: request %v", tc.name, req)
		}
		var hand []json.RawMessage
		if err := json.Unmarshal(hailByHand(t, path, fake.last(t)), &hand); err != nil || len(hand) != 3 {
			t.Fatalf("%s: hail node-evacuate result %v", tc.name, hand)
		}
		var jobs [][]map[string]any
		if err := json.Unmarshal(hand[2], &jobs); err != nil {
			t.Fatal(err)
		}
		ids := followUpIDs(t, j.OpResult[0])
		if len(ids) != len(jobs) || len(ids) == 0 {
			t.Fatalf("%s: jobs %v, hail by hand %v", tc.name, ids, jobs)
		}
		for i, id := range ids {
			fj := v.wait(id)
			if len(fj.Ops) != len(jobs[i]) {
				t.Fatalf("%s: job %d has %d opcodes, hail by hand %d", tc.name, id, len(fj.Ops), len(jobs[i]))
			}
			for k, op := range fj.Ops {
				want := &rapiv2.OpCode{}
				if err := legacyjson.FromValue(want, jobs[i][k]); err != nil {
					t.Fatal(err)
				}
				if r := want.GetInstanceReplaceDisks(); r != nil {
					r.EarlyRelease = proto.Bool(true)
				}
				got := proto.Clone(op).(*rapiv2.OpCode)
				clearComment(got)
				if !proto.Equal(got, want) {
					t.Errorf("%s: job %d opcode %d: %v\nhail by hand %v", tc.name, id, k, got, want)
				}
			}
			if fj.Status != StatusSuccess {
				t.Errorf("%s: job %d: %s", tc.name, id, jsonOf(t, fj.OpResult))
			}
		}
		if !strings.Contains(jsonOf(t, j.OpLog), "Instances to be moved: ") {
			t.Errorf("%s: log %s", tc.name, jsonOf(t, j.OpLog))
		}
	}

	// A plain instance cannot be relocated: hail's reason, OpExecError.
	v.runOK(create("inst4.example.com", "plain", 1024))
	j := v.run(&rapiv2.OpNodeEvacuate{NodeName: proto.String("node1.example.com"), Iallocator: proto.String("hail"),
		Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_PRIMARY_ONLY.Enum()})
	var hand []json.RawMessage
	if err := json.Unmarshal(hailByHand(t, path, fake.last(t)), &hand); err != nil || len(hand) != 3 {
		t.Fatalf("hail node-evacuate result %v", hand)
	}
	var failed [][2]string
	if err := json.Unmarshal(hand[1], &failed); err != nil || len(failed) == 0 {
		t.Fatalf("hail by hand failed %s (%v)", hand[1], err)
	}
	if got := jsonOf(t, j.OpResult); j.Status != StatusError || !strings.Contains(got, `"OpExecError",["Unable to evacuate instances `+failed[0][0]+" ("+failed[0][1]+")") {
		t.Errorf("plain evacuation: %s, hail by hand %v", got, failed)
	}
}

// clearComment drops the generic opcode parameters the engine sets on a
// follow-up job (comment, debug_level, reason, ...).
func clearComment(op *rapiv2.OpCode) {
	op.ProtoReflect().Range(func(_ protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		sub := v.Message()
		// (and the instance uuid the job wrote back when it ran)
		for _, name := range []protoreflect.Name{"comment", "debug_level", "reason", "priority", "depends", "dry_run", "instance_uuid"} {
			if f := sub.Descriptor().Fields().ByName(name); f != nil {
				sub.Clear(f)
			}
		}
		return false
	})
}

// TestIAllocatorMultiAllocFake checks the multi-allocate request and
// result handling, and a failed run, with a fake hail.
func TestIAllocatorMultiAllocFake(t *testing.T) {
	fake := &fakeIAllocators{path: "/fake/hail",
		out: `{"success": true, "info": "ok", "result": [[["b.example.com", ["node3.example.com"]], ["a.example.com", ["node1.example.com"]]], ["c.example.com"]]}`}
	useIAllocators(t, fake)
	v := newInstEnv(t)
	op := multiAlloc(allocInst("a.example.com", "", 128), allocInst("b.example.com", "", 128), allocInst("c.example.com", "", 128))
	op.Iallocator = proto.String("hail")
	j := v.runOK(op)
	res := j.OpResult[0].(map[string]any)
	if jsonOf(t, res["allocatable"]) != `["b.example.com","a.example.com"]` || jsonOf(t, res["failed"]) != `["c.example.com"]` {
		t.Fatalf("result %s", jsonOf(t, res))
	}
	req := requestOf(t, fake.last(t))
	if req["type"] != "multi-allocate" || len(req["instances"].([]any)) != 3 {
		t.Fatalf("request %v", req)
	}
	if _, ok := req["instances"].([]any)[0].(map[string]any)["type"]; ok {
		t.Errorf("instance request has a type: %v", req["instances"])
	}
	ids := followUpIDs(t, res)
	for i, want := range [][2]string{{"b.example.com", "node3.example.com"}, {"a.example.com", "node1.example.com"}} {
		c := v.wait(ids[i]).Ops[0].GetInstanceCreate()
		if c.GetInstanceName() != want[0] || c.GetPnode() != want[1] {
			t.Errorf("job %d: %s on %s, want %v", ids[i], c.GetInstanceName(), c.GetPnode(), want)
		}
	}

	fake.out = `{"success": false, "info": "Request failed: Group default (preferred): No valid allocation solutions", "result": []}`
	op.DryRun = proto.Bool(true)
	j = v.run(op)
	want := `[["OpPrereqError",["Can't compute nodes using iallocator 'hail': Request failed: Group default (preferred): No valid allocation solutions","insufficient_resources"]]]`
	if got := jsonOf(t, j.OpResult); got != want {
		t.Errorf("failed run: %s\nwant %s", got, want)
	}
}

// TestIAllocatorNodeEvacuateFake checks the node-evacuate request and the
// result handling (object form, early_release, failures) with a fake hail.
func TestIAllocatorNodeEvacuateFake(t *testing.T) {
	fake := &fakeIAllocators{path: "/fake/hail"}
	useIAllocators(t, fake)
	v := newInstEnv(t)
	v.runOK(drbdOn("inst2.example.com", "node1.example.com", "node2.example.com"))
	fake.out = `{"success": true, "info": "ok", "result": {"moved": [["inst2.example.com", "default", ["node1.example.com", "node3.example.com"]]], "failed": [],
		"jobs": [[{"OP_ID": "OP_INSTANCE_REPLACE_DISKS", "instance_name": "inst2.example.com", "mode": "replace_new_secondary", "remote_node": "node3.example.com", "disks": [], "early_release": false, "ignore_ipolicy": false}]]}}`
	j := v.runOK(&rapiv2.OpNodeEvacuate{NodeName: proto.String("node2.example.com"), Iallocator: proto.String("hail"),
		Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_SECONDARY_ONLY.Enum(), EarlyRelease: proto.Bool(true)})
	req := requestOf(t, fake.last(t))
	if jsonOf(t, req) != `{"evac_mode":"secondary-only","instances":["inst2.example.com"],"type":"node-evacuate"}` {
		t.Errorf("request %s", jsonOf(t, req))
	}
	ids := followUpIDs(t, j.OpResult[0])
	if len(ids) != 1 {
		t.Fatalf("jobs %v", ids)
	}
	fj := v.wait(ids[0])
	r := fj.Ops[0].GetInstanceReplaceDisks()
	if r.GetRemoteNode() != "node3.example.com" || !r.GetEarlyRelease() || fj.Status != StatusSuccess {
		t.Errorf("follow-up %v: %s", r, jsonOf(t, fj.OpResult))
	}
	if !strings.Contains(jsonOf(t, j.OpLog), "Instances to be moved: inst2.example.com (to node1.example.com, node3.example.com)") {
		t.Errorf("log %s", jsonOf(t, j.OpLog))
	}

	fake.out = `{"success": true, "info": "ok", "result": [[], [["inst2.example.com", "No valid allocation solutions"]], []]}`
	j = v.run(&rapiv2.OpNodeEvacuate{NodeName: proto.String("node3.example.com"), Iallocator: proto.String("hail"),
		Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_SECONDARY_ONLY.Enum()})
	if got := jsonOf(t, j.OpResult); got != `[["OpExecError",["Unable to evacuate instances inst2.example.com (No valid allocation solutions)"]]]` {
		t.Errorf("failed evacuation: %s", got)
	}
	fake.out = `{"success": false, "info": "Request failed: no nodes", "result": []}`
	j = v.run(&rapiv2.OpNodeEvacuate{NodeName: proto.String("node3.example.com"), Iallocator: proto.String("hail"),
		Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_SECONDARY_ONLY.Enum()})
	if got := jsonOf(t, j.OpResult); got != `[["OpPrereqError",["Can't compute node evacuation using iallocator 'hail': Request failed: no nodes","insufficient_resources"]]]` {
		t.Errorf("failed run: %s", got)
	}
}

// TestHailRelocate: replace-disks with a new secondary chosen by hail
// sends hail a "relocate" request (IAReqRelocate) and uses its node; when
// hail finds none, the opcode fails with hail's reason, as Ganeti's
// TLReplaceDisks._RunAllocator.
func TestHailRelocate(t *testing.T) {
	path := realHail(t)
	fake := &fakeIAllocators{path: path, real: opexec.SubprocessIAllocators{}}
	useIAllocators(t, fake)
	v := newInstEnv(t)
	v.runOK(drbdOn("inst2.example.com", "node1.example.com", "node2.example.com"))
	replace := &rapiv2.OpInstanceReplaceDisks{InstanceName: proto.String("inst2.example.com"),
		Mode: rapiv2.ReplaceDisksMode_REPLACE_DISKS_MODE_REPLACE_NEW_SECONDARY.Enum(), Iallocator: proto.String("hail")}

	j := v.runOK(replace)
	req := requestOf(t, fake.last(t))
	if req["type"] != "relocate" || req["name"] != "inst2.example.com" || jsonOf(t, req["relocate_from"]) != `["node2.example.com"]` ||
		req["required_nodes"] != float64(1) || req["disk_space_total"] != float64(1024+cluster.DRBDMetaSize) {
		t.Fatalf("request %v", req)
	}
	var hand []string
	if err := json.Unmarshal(hailByHand(t, path, fake.last(t)), &hand); err != nil || len(hand) != 1 {
		t.Fatalf("hail by hand: %v (%v)", hand, err)
	}
	var inst *cluster.Instance
	for _, i := range v.model.State().Config().Instances {
		if i.Name == "inst2.example.com" {
			inst = i
		}
	}
	if got := v.model.State().Config().Nodes[inst.SecondaryNodes[0]].Name; got != hand[0] {
		t.Errorf("new secondary %s, hail by hand chose %s", got, hand[0])
	}
	if !strings.Contains(jsonOf(t, j.OpLog), "Selected new secondary for instance '"+inst.UUID+"': "+hand[0]) {
		t.Errorf("log %s", jsonOf(t, j.OpLog))
	}

	// The instance is now on node1 and node3: with node2, the only other
	// node, drained, hail has nowhere to put the new secondary.
	v.runOK(&rapiv2.OpNodeSetParams{NodeName: proto.String("node2.example.com"), Drained: proto.Bool(true)})
	j = v.run(replace)
	ok, info, _ := hailByHandResp(t, path, fake.last(t))
	if ok {
		t.Fatalf("hail by hand relocated with no free node")
	}
	want := jsonOf(t, []any{[]any{"OpPrereqError", []any{"Can't compute nodes using iallocator 'hail': " + info, "insufficient_resources"}}})
	if got := jsonOf(t, j.OpResult); j.Status != StatusError || got != want {
		t.Errorf("status %s result %s\nwant %s", j.Status, got, want)
	}
}

// TestHailRelocatePrimary: migrating an externally mirrored (here
// diskless) instance with an iallocator sends a "relocate" request away
// from its primary (TLMigrateInstance._RunAllocator), and the instance
// moves to the node hail chose.
func TestHailRelocatePrimary(t *testing.T) {
	path := realHail(t)
	fake := &fakeIAllocators{path: path, real: opexec.SubprocessIAllocators{}}
	useIAllocators(t, fake)
	v := newInstEnv(t)
	j := v.runOK(&rapiv2.OpInstanceMigrate{InstanceName: proto.String("inst1.example.com"), Iallocator: proto.String("hail")})
	req := requestOf(t, fake.last(t))
	if req["type"] != "relocate" || req["name"] != "inst1.example.com" || jsonOf(t, req["relocate_from"]) != `["node1.example.com"]` ||
		req["disk_space_total"] != float64(0) {
		t.Fatalf("request %v", req)
	}
	var hand []string
	if err := json.Unmarshal(hailByHand(t, path, fake.last(t)), &hand); err != nil || len(hand) != 1 {
		t.Fatalf("hail by hand: %v (%v)", hand, err)
	}
	for _, i := range v.model.State().Config().Instances {
		if i.Name == "inst1.example.com" {
			if got := v.model.State().Config().Nodes[i.PrimaryNode].Name; got != hand[0] {
				t.Errorf("migrated to %s, hail by hand chose %s", got, hand[0])
			}
		}
	}
	if !strings.Contains(jsonOf(t, j.OpLog), "Selected nodes for instance inst1.example.com via iallocator hail: "+hand[0]) {
		t.Errorf("log %s", jsonOf(t, j.OpLog))
	}
}
