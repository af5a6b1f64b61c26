package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

func openState(t *testing.T, file string) *cluster.State {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), file))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := cluster.ParseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	model, err := cluster.Open(memstore.New(), seed, func() time.Time { return time.Unix(1795376092, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return model.State()
}

// rowObject is the Ganeti object of a query row the way FromValue takes it:
// cells without data are left out.
func rowObject(fields []string, cells []cluster.Cell) map[string]any {
	obj := make(map[string]any, len(fields))
	for i, f := range fields {
		if i < len(cells) && cells[i].Status == 0 {
			obj[f] = cells[i].Value
		}
	}
	return obj
}

func sameMessage(t *testing.T, what string, want, got proto.Message) {
	t.Helper()
	if !proto.Equal(want, got) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
	for _, m := range []legacyjson.Marshaler{{}, {PythonStyle: true}} {
		a, errA := m.Marshal(want)
		b, errB := m.Marshal(got)
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s: legacy encoding differs:\n got  %s (%v)\n want %s (%v)", what, b, errB, a, errA)
		}
	}
}

// TestFastConversionSameAsFromValue converts every object of the golden and
// demo clusters both through the row fillers of the read path and through
// the general decoder, and compares.
func TestFastConversionSameAsFromValue(t *testing.T) {
	resources := []struct {
		resource string
		newMsg   func() proto.Message
	}{
		{cluster.ResInstance, func() proto.Message { return newInstance() }},
		{cluster.ResNode, func() proto.Message { return newNode() }},
		{cluster.ResGroup, func() proto.Message { return newGroup() }},
		{cluster.ResNetwork, func() proto.Message { return newNetwork() }},
		{cluster.ResFilter, func() proto.Message { return newFilterRule() }},
	}
	ctx := context.Background()
	for _, file := range []string{"testdata/golden-cluster.json", "deploy/demo-cluster.json"} {
		st := openState(t, file)
		for _, r := range resources {
			list, err := listObjects(ctx, stateReader{st: st}, r.resource, r.newMsg)
			if err != nil {
				t.Fatal(err)
			}
			fields := legacyjson.QueryKeys(r.newMsg())
			res, err := st.Query(r.resource, fields, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Data) != len(list) {
				t.Fatalf("%s: %d rows, %d objects", r.resource, len(res.Data), len(list))
			}
			for i, row := range res.Data {
				want := r.newMsg()
				if err := legacyjson.FromValue(want, rowObject(fields, row)); err != nil {
					t.Fatal(err)
				}
				sameMessage(t, file+" "+r.resource, want, list[i])
			}
			for _, name := range st.Names(r.resource) {
				got := r.newMsg()
				if err := getObject(ctx, stateReader{st: st}, r.resource, name, got); err != nil {
					t.Fatal(err)
				}
				cells, err := st.Get(r.resource, name, fields)
				if err != nil {
					t.Fatal(err)
				}
				want := r.newMsg()
				if err := legacyjson.FromValue(want, rowObject(fields, cells)); err != nil {
					t.Fatal(err)
				}
				sameMessage(t, file+" "+r.resource+" "+name, want, got)
			}
			// Every query field, through the query cells.
			var all []string
			defs, err := st.FieldDefs(r.resource, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range defs {
				all = append(all, d.Name)
			}
			res, err = st.Query(r.resource, append(all, "no-such-field"), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := queryResponse(res)
			if err != nil {
				t.Fatal(err)
			}
			for i, row := range res.Data {
				for j, c := range row {
					want := &rapiv2.QueryCell{}
					if err := legacyjson.FromValue(want, []any{int64(c.Status), c.Value}); err != nil {
						t.Fatal(err)
					}
					sameMessage(t, file+" "+r.resource+" cell "+all[min(j, len(all)-1)], want, got.Data[i].Cells[j])
				}
			}
		}
		want, got := &rapiv2.ClusterInfo{}, &rapiv2.ClusterInfo{}
		if err := legacyjson.FromValue(want, st.Info()); err != nil {
			t.Fatal(err)
		}
		if err := fill(got, st.InfoShared()); err != nil {
			t.Fatal(err)
		}
		sameMessage(t, file+" info", want, got)
	}
}

// benchState is a cluster of 10 nodes and n running instances (two disks,
// one NIC, tags), like the e2e bulk benchmark's.
func benchState(b *testing.B, n int) *cluster.State {
	type obj = map[string]any
	var nodes, insts []obj
	for i := 0; i < 10; i++ {
		nodes = append(nodes, obj{"name": fmt.Sprintf("node%d.example.com", i+1), "pip": fmt.Sprintf("192.0.2.%d", i+10),
			"mtotal": 1 << 20, "dtotal": 1 << 26})
	}
	for i := 0; i < n; i++ {
		insts = append(insts, obj{"name": fmt.Sprintf("inst%04d.example.com", i), "os": "noop",
			"pnode": fmt.Sprintf("node%d.example.com", i%10+1), "disk_template": "plain",
			"disks": []obj{{"size": 10240}, {"size": 2048, "name": "swap"}}, "nics": []obj{{}},
			"beparams": obj{"maxmem": 512, "minmem": 512, "vcpus": 1}, "tags": []string{"bench"}})
	}
	data, err := json.Marshal(obj{"cluster": obj{"name": "bench.example.com", "master_node": "node1.example.com"},
		"nodes": nodes, "instances": insts})
	if err != nil {
		b.Fatal(err)
	}
	seed, err := cluster.ParseFile(data)
	if err != nil {
		b.Fatal(err)
	}
	model, err := cluster.Open(memstore.New(), seed, func() time.Time { return time.Unix(1795376092, 0) })
	if err != nil {
		b.Fatal(err)
	}
	return model.State()
}

// BenchmarkListInstances1000 is the service side of GET
// /2/instances?bulk=1 on 1,000 instances: the query and the conversion
// into messages, through the read path (fast) and through the general
// decoder on copied rows (FromValue, the reference).
func BenchmarkListInstances1000(b *testing.B) {
	st := benchState(b, 1000)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if l, err := listObjects(context.Background(), stateReader{st: st}, cluster.ResInstance, newInstance); err != nil || len(l) != 1000 {
				b.Fatal(err)
			}
		}
	})
	b.Run("FromValue", func(b *testing.B) {
		fields := legacyjson.QueryKeys(newInstance())
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			res, err := st.Query(cluster.ResInstance, fields, nil)
			if err != nil {
				b.Fatal(err)
			}
			for _, row := range res.Data {
				if err := legacyjson.FromValue(newInstance(), rowObject(fields, row)); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkClusterInfo is the service side of GET /2/info on the golden
// cluster.
func BenchmarkClusterInfo(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(b), "testdata", "golden-cluster.json"))
	if err != nil {
		b.Fatal(err)
	}
	seed, err := cluster.ParseFile(data)
	if err != nil {
		b.Fatal(err)
	}
	model, err := cluster.Open(memstore.New(), seed, func() time.Time { return time.Unix(1795376092, 0) })
	if err != nil {
		b.Fatal(err)
	}
	svc := &clusterService{s: &Services{cfg: Config{Backend: sim.New(model, nil)}}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := svc.GetInfo(context.Background(), &rapiv2.GetInfoRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

// stateReader reads one cluster state: the reads the conversion tests
// compare (the other methods are not called).
type stateReader struct {
	backend.Reader
	st *cluster.State
}

func (r stateReader) Get(_ context.Context, resource, name string, fields []string) ([]backend.Cell, error) {
	return r.st.GetShared(resource, name, fields)
}

func (r stateReader) Query(_ context.Context, resource string, fields []string, filter any, lim backend.QueryLimits) (*backend.QueryResult, error) {
	return r.st.QueryLimited(resource, fields, filter, lim)
}

// TestTypedParamsHoldDomainParams checks that the typed parameter messages
// have a field for every parameter the domain accepts, so that converting
// an object never drops one: per hypervisor, the parameters it supports;
// the backend parameters.
func TestTypedParamsHoldDomainParams(t *testing.T) {
	fieldsOf := func(md interface {
		Fields() protoreflect.FieldDescriptors
	}) map[string]bool {
		out := map[string]bool{}
		for i := 0; i < md.Fields().Len(); i++ {
			out[md.Fields().Get(i).JSONName()] = true
		}
		return out
	}
	members := (&rapiv2.HvParams{}).ProtoReflect().Descriptor().Oneofs().ByName("hypervisor").Fields()
	for _, hv := range cluster.Hypervisors {
		supported, ok := cluster.HypervisorParameters(hv)
		member := members.ByJSONName(hv)
		if !ok || member == nil {
			t.Errorf("hypervisor %q: domain knows it %v, HvParams member %v", hv, ok, member)
			continue
		}
		have := fieldsOf(member.Message())
		for k := range supported {
			if !have[k] {
				t.Errorf("hypervisor %q: parameter %q has no field in %s", hv, k, member.Message().Name())
			}
		}
	}
	have := fieldsOf((&rapiv2.BeParams{}).ProtoReflect().Descriptor())
	for k := range cluster.BEParamTypes() {
		if !have[k] {
			t.Errorf("backend parameter %q has no field in BeParams", k)
		}
	}
}
