package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

const module = "github.com/ganeti-gateway/ganeti-gateway/"

// layers ranks every package of the module, lowest first: a package may
// import only packages of a lower rank. A new package must be placed here
// (the test fails on a package it does not know).
var layers = [][]string{
	// Vocabulary and infrastructure without project imports.
	{"gen/go/ganeti/rapi/v2", "gen/go/ganeti/gateway/v1", "internal/atomicfile", "internal/buildinfo", "internal/names",
		"internal/selfsigned", "internal/store", "internal/sim/impexp", "deploy"},
	{"internal/legacyenum", "internal/telemetry", "internal/auth", "internal/store/boltstore", "internal/store/memstore", "internal/store/faultstore", "internal/store/etcdstore",
		"internal/store/storetest"},
	{"internal/legacyjson", "internal/errs"},
	{"internal/backend"},
	{"internal/membudget"},
	// The backend of a replica that forwards its writes to the leader.
	{"internal/backend/forward"},
	// The domain: the simulated cluster; the contract between the job
	// engine and the logical units; the engine and the logical units,
	// which do not import each other.
	{"internal/sim/cluster", "internal/sim/cluster/internal/gen/fielddefs"},
	{"internal/sim/opexec"},
	{"internal/sim/jobs", "internal/sim/lu"},
	{"internal/sim", "internal/upstream/rapi", "internal/upstream/luxi", "internal/clusters"},
	// Services (thin gRPC handlers), then the transport.
	{"internal/service"},
	{"gateway"},
	// The composition root and the command.
	{"server"},
	{"cmd/ganeti-gateway"},
	// Tools beside the command (load generators): clients of the public
	// API only.
	{"tools/grpcload"},
}

// testOnly packages hold tests and their helpers: they may import anything,
// and no other package may import them.
var testOnly = []string{"e2e", "internal/testutil", "internal/specconform", "internal/archtest",
	"internal/backend/backendtest", "internal/store/etcdstore/etcdtest"}

// forbidden are imports that the ranks allow but the architecture does not:
// the transport reaches a backend only through the services, and the
// services only through the backend interface (internal/backend): neither
// imports a backend's packages or the store (a package or any below it).
var forbidden = map[string][]string{
	"gateway": {"internal/sim", "internal/store", "internal/upstream", "internal/clusters"},
	// The command imports only the composition root.
	"cmd/ganeti-gateway": {"gateway", "internal", "gen"},
	"tools/grpcload":     {"gateway", "internal", "server"},
	"internal/service":   {"internal/sim", "internal/store", "internal/upstream", "internal/clusters"},
}

// known are exceptions to forbidden, each to be removed; an exception that
// no longer occurs fails the test, so the list only shrinks.
var known = map[string][]string{}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestLayers(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = testutil.RepoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	rank := map[string]int{}
	for i, l := range layers {
		for _, p := range l {
			rank[p] = i
		}
	}
	seen := map[string]bool{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, module)
		seen[name] = true
		r, ranked := rank[name]
		if !ranked && !slices.Contains(testOnly, name) {
			t.Errorf("package %s is not placed in a layer (internal/archtest)", name)
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if slices.Contains(testOnly, dep) {
				t.Errorf("%s imports the test-only package %s", name, dep)
			}
			if !ranked {
				continue
			}
			if dr, ok := rank[dep]; ok && dr >= r {
				t.Errorf("%s imports %s, which is not below it", name, dep)
			}
			if under(dep, forbidden[name]) && !slices.Contains(known[name], dep) {
				t.Errorf("%s imports %s: forbidden by the architecture (see forbidden)", name, dep)
			}
		}
	}
	for name, deps := range known {
		for _, dep := range deps {
			if !imports(out, name, dep) {
				t.Errorf("known exception %s -> %s no longer occurs: remove it from known", name, dep)
			}
		}
	}
	for _, l := range layers {
		for _, p := range l {
			if !seen[p] {
				t.Errorf("layer entry %s is not a package of the module", p)
			}
		}
	}
}

// imports reports whether package name imports dep in go list's output.
func imports(out []byte, name, dep string) bool {
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if dec.Decode(&p) != nil {
			return false
		}
		if p.ImportPath == module+name {
			return slices.Contains(p.Imports, module+dep)
		}
	}
}

// under reports whether package p is one of roots or below one of them.
func under(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}
