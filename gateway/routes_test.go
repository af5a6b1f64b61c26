package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

type specResources struct {
	Resources map[string]struct {
		Match struct {
			Pattern string `json:"pattern"`
			Type    string `json:"type"`
		} `json:"match"`
		Methods map[string]struct {
			Access []string `json:"access"`
		} `json:"methods"`
	} `json:"resources"`
	Routing struct {
		Placeholders map[string]string `json:"placeholders"`
	} `json:"routing"`
}

func loadSpecResources(t *testing.T) specResources {
	data, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "spec", "resources.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specResources
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

var specVar = regexp.MustCompile(`\[([a-z_]+)\]`)

// TestRoutesMatchSpec proves the route table derived from the proto's
// google.api.http bindings is exactly Ganeti's: every path and method of
// resources.json, with the same access lists, and nothing else.
func TestRoutesMatchSpec(t *testing.T) {
	spec := loadSpecResources(t)
	routes, err := LoadRoutes()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for path, res := range spec.Resources {
		tmpl := specVar.ReplaceAllString(path, "{$1}")
		for method, m := range res.Methods {
			acc := append([]string(nil), m.Access...)
			sort.Strings(acc)
			want[method+" "+tmpl] = acc
		}
	}
	got := map[string][]string{}
	for _, r := range routes.All() {
		for method, m := range r.Methods {
			acc := append([]string(nil), m.Access...)
			sort.Strings(acc)
			got[method+" "+r.Template] = acc
		}
	}
	if len(want) != 82 {
		t.Fatalf("spec has %d route+method pairs, expected 82", len(want))
	}
	for k, acc := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("missing route %s", k)
			continue
		}
		if strings.Join(g, ",") != strings.Join(acc, ",") {
			t.Errorf("%s: access %v, spec says %v", k, g, acc)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("route %s is not in the spec", k)
		}
	}
}

// TestRoutePlaceholders checks the path-variable patterns against Ganeti's
// and that matching behaves like Ganeti's router.
func TestRoutePlaceholders(t *testing.T) {
	spec := loadSpecResources(t)
	for name, re := range spec.Routing.Placeholders {
		got, ok := placeholders[name]
		if !ok {
			got = namePlaceholder
		}
		if re == `\d+` && got != `\d+` {
			t.Errorf("placeholder %s: %s, spec %s", name, got, re)
		}
		if re == `[\w\._-]+` && got != namePlaceholder {
			t.Errorf("placeholder %s: %s, spec %s", name, got, re)
		}
	}
	routes, err := LoadRoutes()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, template string
	}{
		{"/", "/"},
		{"/2", "/2"},
		{"/version", "/version"},
		{"/2/instances", "/2/instances"},
		{"/2/instances/", ""},
		{"/2/instances/inst1.example.com", "/2/instances/{instance_name}"},
		{"/2/instances/inst1.example.com/tags", "/2/instances/{instance_name}/tags"},
		{"/2/instances/x/disk/0/grow", "/2/instances/{instance_name}/disk/{disk_index}/grow"},
		{"/2/instances/x/disk/a/grow", ""},
		{"/2/jobs/12", "/2/jobs/{job_id}"},
		{"/2/jobs/notanumber", ""},
		{"/2/jobs/12/wait", "/2/jobs/{job_id}/wait"},
		{"/2/nodes/n%201", ""},
		{"/2/nodes/../info", ""},
		{"/2/query/node/fields", "/2/query/{resource}/fields"},
		{"/3/info", ""},
		{"/nonexistent", ""},
		{"/2/instances-multi-alloc", "/2/instances-multi-alloc"},
		{"/2/filters/8cf35981-83a9-4c91-a89a-3cc69f42efc2", "/2/filters/{filter_uuid}"},
	}
	for _, c := range cases {
		r := routes.Match(c.path)
		got := ""
		if r != nil {
			got = r.Template
		}
		if got != c.template {
			t.Errorf("Match(%q) = %q, want %q", c.path, got, c.template)
		}
	}
}
