package jobs

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"google.golang.org/protobuf/proto"
)

// fakeIAllocators records the requests and answers with out (or runs real
// when set).
type fakeIAllocators struct {
	mu       sync.Mutex
	path     string // what Lookup("hail") returns
	out      string
	real     opexec.IAllocatorRunner
	requests [][]byte
}

func (f *fakeIAllocators) Lookup(name string) string {
	if name != "hail" {
		return ""
	}
	return f.path
}

func (f *fakeIAllocators) Run(ctx context.Context, path string, request []byte) ([]byte, error) {
	f.mu.Lock()
	f.requests = append(f.requests, append([]byte(nil), request...))
	f.mu.Unlock()
	if f.real != nil {
		return f.real.Run(ctx, path, request)
	}
	return []byte(f.out), nil
}

func (f *fakeIAllocators) last(t *testing.T) []byte {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("the iallocator was not run")
	}
	return f.requests[len(f.requests)-1]
}

// iallocators is the runner of the engines of newEnv (through
// testIAllocators): useIAllocators replaces it for one test.
var iallocators opexec.IAllocatorRunner = opexec.SubprocessIAllocators{}

// testIAllocators is the Config.IAllocator of newEnv's engines.
type testIAllocators struct{}

func (testIAllocators) Lookup(name string) string { return iallocators.Lookup(name) }

func (testIAllocators) Run(ctx context.Context, path string, request []byte) ([]byte, error) {
	return iallocators.Run(ctx, path, request)
}

// useIAllocators installs r for the test.
func useIAllocators(t *testing.T, r opexec.IAllocatorRunner) {
	old := iallocators
	iallocators = r
	t.Cleanup(func() { iallocators = old })
}

// createAlloc is create() placed by the iallocator.
func createAlloc(name, template, ialloc string, sizes ...int64) proto.Message {
	o := create(name, template, sizes...)
	o.Pnode = nil
	if ialloc != "" {
		o.Iallocator = proto.String(ialloc)
	}
	return o
}

type jsonKind int

const (
	kString jsonKind = iota
	kNumber
	kBool
	kList
	kObject
	kStringOrNull
	kNumberOrNull
)

func checkKinds(t *testing.T, what string, obj map[string]any, want map[string]jsonKind) {
	t.Helper()
	for k, kind := range want {
		v, ok := obj[k]
		if !ok {
			t.Errorf("%s: missing key %q", what, k)
			continue
		}
		good := false
		switch kind {
		case kString:
			_, good = v.(string)
		case kNumber:
			_, good = v.(float64)
		case kBool:
			_, good = v.(bool)
		case kList:
			_, good = v.([]any)
		case kObject:
			_, good = v.(map[string]any)
		case kStringOrNull:
			_, good = v.(string)
			good = good || v == nil
		case kNumberOrNull:
			_, good = v.(float64)
			good = good || v == nil
		}
		if !good {
			t.Errorf("%s: key %q has the wrong type: %#v", what, k, v)
		}
	}
}

// TestIAllocatorRequest checks the request an instance creation sends
// against Ganeti's iallocator input format (version 2).
func TestIAllocatorRequest(t *testing.T) {
	fake := &fakeIAllocators{path: "/fake/hail", out: `{"success": true, "info": "ok", "result": ["node3.example.com"]}`}
	useIAllocators(t, fake)
	v := newEnv(t, 3, nil)
	v.e.Start()
	o := create("inst5.example.com", "file", 1024)
	o.Pnode = nil
	o.Iallocator = proto.String("hail")
	o.Tags = []string{"web"}
	j := v.runOK(o)
	if got := jsonOf(t, j.OpResult); got != `[["node3.example.com"]]` {
		t.Fatalf("result %s, want the iallocator's node", got)
	}
	var in map[string]any
	if err := json.Unmarshal(fake.last(t), &in); err != nil {
		t.Fatal(err)
	}
	checkKinds(t, "input", in, map[string]jsonKind{
		"version": kNumber, "cluster_name": kString, "cluster_tags": kList, "enabled_hypervisors": kList,
		"ipolicy": kObject, "nodegroups": kObject, "nodes": kObject, "instances": kObject, "request": kObject,
	})
	if in["version"] != float64(2) {
		t.Errorf("version %v", in["version"])
	}
	ipolKinds := map[string]jsonKind{"minmax": kList, "std": kObject, "disk-templates": kList, "vcpu-ratio": kNumber, "spindle-ratio": kNumber}
	checkKinds(t, "cluster ipolicy", in["ipolicy"].(map[string]any), ipolKinds)
	groups := in["nodegroups"].(map[string]any)
	if len(groups) != 1 {
		t.Fatalf("nodegroups %v", groups)
	}
	var groupUUID string
	for u, g := range groups {
		groupUUID = u
		gm := g.(map[string]any)
		checkKinds(t, "group", gm, map[string]jsonKind{"name": kString, "alloc_policy": kString, "ipolicy": kObject, "tags": kList, "networks": kList})
		checkKinds(t, "group ipolicy", gm["ipolicy"].(map[string]any), ipolKinds)
	}
	nodes := in["nodes"].(map[string]any)
	if len(nodes) != 3 {
		t.Fatalf("nodes %v", nodes)
	}
	for name, n := range nodes {
		nm := n.(map[string]any)
		checkKinds(t, "node "+name, nm, map[string]jsonKind{
			"total_memory": kNumber, "reserved_memory": kNumber, "free_memory": kNumber, "total_disk": kNumber, "free_disk": kNumber,
			"total_cpus": kNumber, "reserved_cpus": kNumber, "i_pri_memory": kNumber, "i_pri_up_memory": kNumber,
			"total_spindles": kNumber, "free_spindles": kNumber,
			"primary_ip": kString, "secondary_ip": kString, "tags": kList, "offline": kBool, "drained": kBool,
			"master_candidate": kBool, "master_capable": kBool, "vm_capable": kBool, "group": kString, "ndparams": kObject,
		})
		if nm["group"] != groupUUID {
			t.Errorf("node %s: group %v, want %s", name, nm["group"], groupUUID)
		}
		checkKinds(t, "node "+name+" ndparams", nm["ndparams"].(map[string]any), map[string]jsonKind{"spindle_count": kNumber, "exclusive_storage": kBool})
	}
	insts := in["instances"].(map[string]any)
	if len(insts) != 3 {
		t.Fatalf("instances %v", insts)
	}
	instKinds := map[string]jsonKind{
		"memory": kNumber, "spindle_use": kNumber, "vcpus": kNumber, "disks": kList, "disk_template": kString,
		"disk_space_total": kNumber, "nics": kList, "os": kString, "tags": kList, "nodes": kList,
		"admin_state": kString, "admin_state_source": kString, "hypervisor": kString,
	}
	for name, i := range insts {
		im := i.(map[string]any)
		checkKinds(t, "instance "+name, im, instKinds)
		ns := im["nodes"].([]any)
		if len(ns) == 0 || nodes[ns[0].(string)] == nil {
			t.Errorf("instance %s: nodes %v", name, ns)
		}
	}
	req := in["request"].(map[string]any)
	reqKinds := map[string]jsonKind{"type": kString, "name": kString, "required_nodes": kNumber}
	for k, kind := range instKinds {
		if k != "nodes" && k != "admin_state" && k != "admin_state_source" {
			reqKinds[k] = kind
		}
	}
	checkKinds(t, "request", req, reqKinds)
	for i, d := range req["disks"].([]any) {
		checkKinds(t, "request disk", d.(map[string]any), map[string]jsonKind{"size": kNumber, "mode": kString, "spindles": kNumberOrNull})
		if i == 0 && d.(map[string]any)["size"] != float64(1024) {
			t.Errorf("disk size %v", d)
		}
	}
	for _, n := range req["nics"].([]any) {
		checkKinds(t, "request nic", n.(map[string]any), map[string]jsonKind{"mac": kString, "ip": kStringOrNull, "mode": kString, "link": kString, "network": kStringOrNull})
	}
	want := map[string]any{"type": "allocate", "name": "inst5.example.com", "memory": float64(128), "vcpus": float64(1),
		"disk_template": "file", "disk_space_total": float64(1024), "required_nodes": float64(1), "os": "noop", "hypervisor": "fake"}
	for k, w := range want {
		if req[k] != w {
			t.Errorf("request %s = %v, want %v", k, req[k], w)
		}
	}
	if _, ok := req["group_name"]; ok {
		t.Errorf("request has a group_name without one in the opcode")
	}
}

// TestIAllocatorFailure: a failed allocation fails the opcode with
// Ganeti's message; a name other than hail uses the built-in allocator.
func TestIAllocatorFailure(t *testing.T) {
	fake := &fakeIAllocators{path: "/fake/hail", out: `{"success": false, "info": "Request failed: Group default (preferred): No valid allocation solutions", "result": []}`}
	useIAllocators(t, fake)
	v := newEnv(t, 3, nil)
	v.e.Start()
	j := v.run(createAlloc("inst5.example.com", "file", "hail", 1024))
	want := `[["OpPrereqError",["Can't compute nodes using iallocator 'hail': Request failed: Group default (preferred): No valid allocation solutions","insufficient_resources"]]]`
	if got := jsonOf(t, j.OpResult); got != want {
		t.Fatalf("result %s\nwant %s", got, want)
	}
	n := len(fake.requests)
	v.runOK(createAlloc("inst6.example.com", "file", "other", 1024))
	if len(fake.requests) != n {
		t.Fatalf("iallocator 'other' ran the external allocator")
	}
	fake.path = ""
	j = v.runOK(createAlloc("inst7.example.com", "file", "hail", 1024))
	if !strings.Contains(jsonOf(t, j.OpLog), "not installed") {
		t.Errorf("no fallback log: %s", jsonOf(t, j.OpLog))
	}
}

// TestHail runs the real hail (Debian's ganeti-htools-3.0) through the
// engine and compares its choice with hail run by hand on the same request.
func TestHail(t *testing.T) {
	real := opexec.SubprocessIAllocators{}
	path := realHail(t)
	fake := &fakeIAllocators{path: path, real: real}
	useIAllocators(t, fake)
	v := newEnv(t, 3, nil)
	v.e.Start()
	for _, tc := range []struct {
		name, template string
		sizes          []int64
	}{{"inst5.example.com", "file", []int64{1024}}, {"inst6.example.com", "file", []int64{2048, 1024}}, {"inst7.example.com", "diskless", nil}} {
		j := v.run(createAlloc(tc.name, tc.template, "hail", tc.sizes...))
		if j.Status != StatusSuccess {
			t.Fatalf("%s: job failed: %s (request %s)", tc.name, jsonOf(t, j.OpResult), fake.last(t))
		}
		var got [][]string
		if err := json.Unmarshal([]byte(jsonOf(t, j.OpResult)), &got); err != nil || len(got) != 1 || len(got[0]) != 1 {
			t.Fatalf("%s: result %s", tc.name, jsonOf(t, j.OpResult))
		}
		// hail by hand on the same request.
		file := filepath.Join(t.TempDir(), "request.json")
		if err := os.WriteFile(file, fake.last(t), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(path, file).Output()
		if err != nil {
			t.Fatalf("%s %s: %v", path, file, err)
		}
		var resp struct {
			Success bool     `json:"success"`
			Info    string   `json:"info"`
			Result  []string `json:"result"`
		}
		if err := json.Unmarshal(out, &resp); err != nil || !resp.Success || len(resp.Result) == 0 {
			t.Fatalf("hail by hand: %s (%v)", out, err)
		}
		if got[0][0] != resp.Result[0] {
			t.Errorf("%s: engine placed it on %s, hail by hand chose %s", tc.name, got[0][0], resp.Result[0])
		}
		if !strings.Contains(jsonOf(t, j.OpLog), "via iallocator hail: "+resp.Result[0]) {
			t.Errorf("%s: log %s", tc.name, jsonOf(t, j.OpLog))
		}
	}
}
