package e2e

import (
	"encoding/json"
	"regexp"
	"slices"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
)

type writeRoute struct{ method, path string }

// writeRoutes are the legacy write routes (every route that may queue a
// job or change the cluster), with their path parameters filled in.
func writeRoutes(t testing.TB) []writeRoute {
	t.Helper()
	routes, err := gateway.LoadRoutes()
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{([a-z_]+)\}`)
	values := map[string]string{"node_name": "node1.example.com", "group_name": "default", "instance_name": "inst1.example.com",
		"network_name": "net1", "disk_index": "0", "filter_uuid": "00000000-0000-0000-0000-000000000000"}
	var out []writeRoute
	for _, r := range routes.All() {
		path := param.ReplaceAllStringFunc(r.Template, func(m string) string { return values[m[1:len(m)-1]] })
		for method, m := range r.Methods {
			if method == "GET" && !slices.Contains(m.Access, "write") && r.Template != "/2/instances/{instance_name}/info" {
				continue
			}
			if r.Template == "/2/jobs/{job_id}/wait" || r.Template == "/2/query/{resource}" {
				continue
			}
			out = append(out, writeRoute{method, path})
		}
	}
	slices.SortFunc(out, func(a, b writeRoute) int {
		if a.path != b.path {
			if a.path < b.path {
				return -1
			}
			return 1
		}
		if a.method < b.method {
			return -1
		} else if a.method > b.method {
			return 1
		}
		return 0
	})
	return out
}

// FuzzWriteBodies sends arbitrary JSON bodies to every legacy write route
// of an in-process server: no route panics or answers a server error
// (only 501 for what is not implemented), and every error is a Ganeti
// error body without Go internals.
func FuzzWriteBodies(f *testing.F) {
	for _, seed := range []string{
		`{}`, `null`, `[]`, `"master-candidate"`, `{"__version__": 1}`, `{"name": "x", "group_name": "y"}`,
		`{"reason": []}`, `{"depends": [[-1, ["success"]]]}`, `{"amount": -1}`, `{"amount": 1e400}`,
		`{"mode": "all", "dry_run": true}`, `{"instances": [{"name": "a", "os": "b"}]}`, `{"priority": 100}`,
		`{"new_name": "\u00e9t\u00e9"}`, `{"nodes": "node1"}`, `{"compression_tools": []}`,
		`{"priority": 1, "predicates": [["jobid", [">", "id", 0]]], "action": "ACCEPT"}`, `{"action": ["RATE_LIMIT", -1]}`,
		`{"__version__": 1, "instance_name": "A b", "disks": [{"size": 1e30}], "beparams": {"memory": -1}, "tags": ["t\u00e4g\u00e9"]}`,
		`{"group_name": "..", "new_name": "x/y", "network_name": "` + "n\u00e9t" + `", "network": "10.0.0.0/24"}`,
		`{"disks": [["add", {"size": 1180591620717411303424}]], "beparams": {"maxmem": 1e400}, "runtime_mem": -1}`,
	} {
		f.Add(seed)
	}
	base := inProcess(f, "testdata/golden-cluster.json")
	routes := writeRoutes(f)
	if len(routes) < 40 {
		f.Fatalf("only %d write routes", len(routes))
	}
	f.Fuzz(func(t *testing.T, body string) {
		if !json.Valid([]byte(body)) {
			return // the gateway rejects those before any route (TestBadRequests)
		}
		for _, r := range routes {
			status, _, resp := do(t, r.method, base+r.path+"?dry-run=1", "application/json", body)
			if status >= 500 && status != 501 {
				t.Fatalf("%s %s %s: %d %s", r.method, r.path, body, status, resp)
			}
			if leak.Match(resp) {
				t.Fatalf("%s %s %s: leaks internals: %s", r.method, r.path, body, resp)
			}
			if status == 200 {
				continue
			}
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Explain string `json:"explain"`
			}
			if err := json.Unmarshal(resp, &e); err != nil || e.Code != status || e.Message == "" || e.Explain == "" {
				t.Fatalf("%s %s %s: not a Ganeti error body: %d %s", r.method, r.path, body, status, resp)
			}
		}
	})
}
