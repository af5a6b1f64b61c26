package clusters

import (
	"context"
	"testing"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// fake is a cluster's backend that knows its name; what it does not
// override panics (the embedded nil interface).
type fake struct {
	backend.Backend
	name      string
	supports  bool
	submitted int
	ver       any
}

func (f *fake) ClusterInfo(context.Context) (map[string]any, error) {
	return map[string]any{"name": f.name}, nil
}
func (f *fake) JobIDs(context.Context) ([]int64, error) { return []int64{1}, nil }
func (f *fake) Supports(string) bool                    { return f.supports }
func (f *fake) Submit(context.Context, []*rapiv2.OpCode, backend.SubmitOptions) (int64, error) {
	f.submitted++
	return 1, nil
}

type versioned struct{ *fake }

func (v versioned) StateVersion(context.Context) any { return v.ver }

func newRouter(t *testing.T, def bool) (*Router, *fake, *fake) {
	t.Helper()
	a := &fake{name: "a", supports: true, ver: new(int)}
	b := &fake{name: "b"}
	f := &File{Clusters: []Entry{{Name: "a", Hosts: []string{"a.example.com"}, Default: def}, {Name: "b", Hosts: []string{"rapi-b"}}}}
	r, err := NewRouter(f, map[string]backend.Backend{"a": versioned{a}, "b": b})
	if err != nil {
		t.Fatal(err)
	}
	return r, a, b
}

func TestRouterRoutes(t *testing.T) {
	r, _, _ := newRouter(t, false)
	for _, name := range []string{"a", "b"} {
		info, err := r.ClusterInfo(backend.WithCluster(context.Background(), name))
		if err != nil || info["name"] != name {
			t.Errorf("cluster %s: %v %v", name, info, err)
		}
	}
	for _, ctx := range []context.Context{context.Background(), backend.WithCluster(context.Background(), "c")} {
		_, err := r.ClusterInfo(ctx)
		if e, ok := errs.As(err); !ok || e.Code != errs.CodeNoEnt {
			t.Errorf("%q: %v, want an unknown cluster (ENOENT)", backend.ClusterFrom(ctx), err)
		}
		if _, err := r.JobIDs(ctx); err == nil {
			t.Error("JobIDs of an unknown cluster")
		}
	}
	r2, _, _ := newRouter(t, true)
	if info, err := r2.ClusterInfo(context.Background()); err != nil || info["name"] != "a" {
		t.Errorf("default cluster: %v %v", info, err)
	}
}

func TestRouterResolve(t *testing.T) {
	r, _, _ := newRouter(t, false)
	for _, tc := range []struct {
		hosts []string
		want  string
		ok    bool
	}{
		{[]string{"a"}, "a", true},
		{[]string{"A.example.COM:5080"}, "a", true},
		{[]string{"a.example.com."}, "a", true},
		{[]string{"rapi-b:443"}, "b", true},
		{[]string{"127.0.0.1:5080", "rapi-b"}, "b", true}, // the TLS server name
		{[]string{"[::1]:5080"}, "", false},
		{[]string{"", ""}, "", false},
		{[]string{"c"}, "", false},
	} {
		got, ok := r.ResolveHost(tc.hosts...)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ResolveHost(%q) = %q %v, want %q %v", tc.hosts, got, ok, tc.want, tc.ok)
		}
	}
	if n, ok := r.Resolve("b"); n != "b" || !ok {
		t.Error("Resolve(b)")
	}
	if _, ok := r.Resolve("a.example.com"); ok {
		t.Error("gRPC names a cluster by its name, not a host name")
	}
	if _, ok := r.Resolve(""); ok {
		t.Error("no default")
	}
	r2, _, _ := newRouter(t, true)
	if n, ok := r2.ResolveHost("elsewhere:5080"); n != "a" || !ok {
		t.Errorf("default by host: %q %v", n, ok)
	}
	if n, ok := r2.Resolve(""); n != "a" || !ok {
		t.Errorf("default: %q %v", n, ok)
	}
	if got := r.ClusterNames(); len(got) != 2 || got[0] != "a" {
		t.Errorf("ClusterNames %q", got)
	}
}

func TestRouterSupports(t *testing.T) {
	r, a, b := newRouter(t, false)
	if !r.Supports("OP_TAGS_SET") {
		t.Error("a runs it: the router supports it")
	}
	op := &rapiv2.OpCode{}
	ctxB := backend.WithCluster(context.Background(), "b")
	if _, err := r.Submit(ctxB, []*rapiv2.OpCode{op}, backend.SubmitOptions{}); err == nil || b.submitted != 0 {
		t.Errorf("b does not run it: %v, %d submitted", err, b.submitted)
	}
	if _, err := r.Submit(backend.WithCluster(context.Background(), "a"), []*rapiv2.OpCode{op}, backend.SubmitOptions{}); err != nil || a.submitted != 1 {
		t.Errorf("a: %v, %d submitted", err, a.submitted)
	}
	if e, ok := errs.As(r.Unsupported("OP_X")); !ok || e.Class != errs.ClassNotImplemented {
		t.Errorf("Unsupported: %v", e)
	}
}

func TestRouterStateVersion(t *testing.T) {
	r, _, _ := newRouter(t, false)
	ctxA := backend.WithCluster(context.Background(), "a")
	ctxB := backend.WithCluster(context.Background(), "b")
	if r.StateVersion(ctxA) != r.StateVersion(ctxA) {
		t.Error("a's version is stable")
	}
	if r.StateVersion(ctxB) != nil || r.StateVersion(context.Background()) != nil {
		t.Error("b is not versioned, and no cluster is unknown: nil")
	}
	if r.StateVersion(ctxA) == r.StateVersion(ctxB) {
		t.Error("two clusters share a version")
	}
}
