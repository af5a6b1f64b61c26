package specconform

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
)

// TestTypedAllowList enumerates SubmitJob's allow-list (derived from the
// legacy routes' legacy_job options) against the specification: it is
// exactly spec/opcodes.json's rapi_reachable and the union of
// resources.json's job_opcodes, it agrees with the opcodes' rapi_reachable
// option, and every other opcode the engine can run (OP_TEST_DELAY among
// them) is outside it: a new executor is not reachable by write users
// unless a legacy route submits its opcode.
func TestTypedAllowList(t *testing.T) {
	allowed, err := service.TypedAllowList()
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Reachable []string `json:"rapi_reachable"`
	}
	readJSON(t, "opcodes.json", &spec)
	reachable := slices.Sorted(slices.Values(spec.Reachable))
	if !slices.Equal(allowed, reachable) {
		t.Errorf("allow-list\n %v\nspec rapi_reachable\n %v", allowed, reachable)
	}
	var res struct {
		Resources map[string]struct {
			Methods map[string]struct {
				JobOpcodes []string `json:"job_opcodes"`
			} `json:"methods"`
		} `json:"resources"`
	}
	readJSON(t, "resources.json", &res)
	union := map[string]bool{}
	for _, r := range res.Resources {
		for _, m := range r.Methods {
			for _, op := range m.JobOpcodes {
				union[op] = true
			}
		}
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for op := range union {
			if !yield(op) {
				return
			}
		}
	}); !slices.Equal(allowed, got) {
		t.Errorf("allow-list\n %v\nresources.json job_opcodes\n %v", allowed, got)
	}
	for id, md := range opcodeMessages(t) {
		info, _ := proto.GetExtension(md.Options(), rapiv2.E_Opcode).(*rapiv2.OpcodeInfo)
		if info.GetRapiReachable() != slices.Contains(allowed, id) {
			t.Errorf("%s: rapi_reachable option %v, allow-list %v", id, info.GetRapiReachable(), slices.Contains(allowed, id))
		}
	}
	var adminOnly []string
	for id := range lu.DefaultExecutors() {
		if !slices.Contains(allowed, id) {
			adminOnly = append(adminOnly, id)
		}
	}
	sort.Strings(adminOnly)
	if !slices.Contains(adminOnly, "OP_TEST_DELAY") {
		t.Errorf("OP_TEST_DELAY is not admin-only: %v", adminOnly)
	}
	t.Logf("%d opcodes allowed to write users; executors for admins only: %v", len(allowed), adminOnly)
}

// TestLegacyJobMatchesSpec checks every route's legacy_job option against
// resources.json: the handler, the job's opcodes, the parameters the
// client chooses (path, query, the fixed values that come from the path,
// depends for a body that gives only that) and the handler's fixed values.
func TestLegacyJobMatchesSpec(t *testing.T) {
	type queryArg struct {
		Sets *string `json:"sets_opcode_param"`
	}
	var spec struct {
		Resources map[string]struct {
			Handler string `json:"handler"`
			Methods map[string]struct {
				JobOpcodes     []string          `json:"job_opcodes"`
				DeclaredOpcode string            `json:"declared_opcode"`
				FixedParams    map[string]any    `json:"fixed_params"`
				ParamsFromPath map[string]string `json:"params_from_path"`
				QueryArgs      []queryArg        `json:"query_args"`
				Body           struct {
					Kind string `json:"kind"`
				} `json:"body"`
			} `json:"methods"`
		} `json:"resources"`
	}
	readJSON(t, "resources.json", &spec)
	// A fixed value such as "<name from path>" is the client's (its path).
	var placeholder func(v any) bool
	placeholder = func(v any) bool {
		switch x := v.(type) {
		case string:
			return strings.HasPrefix(x, "<") && strings.HasSuffix(x, ">")
		case []any:
			return slices.ContainsFunc(x, placeholder)
		}
		return false
	}
	checked := 0
	for _, route := range routeMethods(t) {
		res := spec.Resources[route.specPath]
		m := res.Methods[route.httpMethod]
		job, _ := proto.GetExtension(route.md.Options(), rapiv2.E_LegacyJob).(*rapiv2.LegacyJob)
		if len(m.JobOpcodes) == 0 {
			if job != nil {
				t.Errorf("%s: legacy_job on a route that submits no job", route.full)
			}
			continue
		}
		if job == nil {
			t.Errorf("%s: submits %v without a legacy_job option", route.full, m.JobOpcodes)
			continue
		}
		checked++
		if "R_2_"+job.GetHandler() != res.Handler {
			t.Errorf("%s: handler %q, spec %q", route.full, job.GetHandler(), res.Handler)
		}
		var ops []string
		for _, op := range job.GetOps() {
			ops = append(ops, op.GetOpcode())
		}
		if !slices.Equal(ops, m.JobOpcodes) {
			t.Errorf("%s: opcodes %v, spec %v", route.full, ops, m.JobOpcodes)
			continue
		}
		for _, op := range job.GetOps() {
			fixed := m.FixedParams
			if len(m.JobOpcodes) > 1 {
				fixed, _ = m.FixedParams[op.GetOpcode()].(map[string]any)
			}
			var client []string
			wantFixed := map[string]string{}
			for k, v := range fixed {
				if placeholder(v) {
					client = append(client, k)
				} else {
					b, _ := json.Marshal(v)
					wantFixed[k] = string(b)
				}
			}
			if len(m.JobOpcodes) == 1 || op.GetOpcode() == m.DeclaredOpcode {
				for k := range m.ParamsFromPath {
					client = append(client, k)
				}
				for _, q := range m.QueryArgs {
					if q.Sets != nil && *q.Sets != "reason" {
						client = append(client, *q.Sets)
					}
				}
				if m.Body.Kind == "ignored_except_depends" {
					client = append(client, "depends")
				}
			}
			slices.Sort(client)
			client = slices.Compact(client)
			if got := op.GetClientParams(); !slices.Equal(got, client) {
				t.Errorf("%s %s: client_params %v, spec %v", route.full, op.GetOpcode(), got, client)
			}
			gotFixed := map[string]string{}
			for _, f := range op.GetFixed() {
				var v any
				if err := json.Unmarshal([]byte(f.GetValueJson()), &v); err != nil {
					t.Errorf("%s %s: fixed %s: %v", route.full, op.GetOpcode(), f.GetName(), err)
				}
				b, _ := json.Marshal(v)
				gotFixed[f.GetName()] = string(b)
			}
			if len(gotFixed) != len(wantFixed) {
				t.Errorf("%s %s: fixed %v, spec %v", route.full, op.GetOpcode(), gotFixed, wantFixed)
			}
			for k, v := range wantFixed {
				if gotFixed[k] != v {
					t.Errorf("%s %s: fixed %s = %s, spec %s", route.full, op.GetOpcode(), k, gotFixed[k], v)
				}
			}
		}
	}
	if checked != 50 {
		t.Errorf("%d routes with jobs checked, expected 50", checked)
	}
}
