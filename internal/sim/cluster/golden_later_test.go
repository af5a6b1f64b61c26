package cluster

import (
	"os"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

// testdata/after-create-cluster.json is the golden cluster after the
// captured instance creations (records 62-71: inst1..inst4), plus the
// network of record 197 and the filter rule of record 244, so that instance,
// network and filter values can be compared with the captures too.

func laterState(t testing.TB) *State {
	t.Helper()
	data, err := os.ReadFile("testdata/after-create-cluster.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(memstore.New(), f, func() time.Time { return time.Unix(1795376100, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return m.State()
}

func TestGoldenLaterObjects(t *testing.T) {
	caps := loadCaptures(t)
	s := laterState(t)
	list := func(res string) any {
		l, err := bulkList(s, res)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	object := func(res, name string) any {
		o, err := object(s, res, name)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	checkGolden(t, caps[86], func() any {
		out := []any{}
		for _, n := range s.Names(ResInstance) {
			out = append(out, map[string]any{"id": n, "uri": "/2/instances/" + n})
		}
		return out
	}())
	checkGolden(t, caps[87], list(ResInstance))
	checkGolden(t, caps[88], object(ResInstance, "inst1.example.com"))
	checkGolden(t, caps[89], object(ResInstance, "inst2.example.com"))
	checkGolden(t, caps[93], list(ResNode))
	checkGolden(t, caps[199], list(ResNetwork))
	checkGolden(t, caps[200], object(ResNetwork, "net1"))
	checkGolden(t, caps[246], list(ResFilter))
	checkGolden(t, caps[247], object(ResFilter, "8cf35981-83a9-4c91-a89a-3cc69f42efc2"))

	console, err := s.Console("inst1.example.com")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, caps[98], console)
	_, err = s.Console("inst3.example.com")
	if e, ok := errs.As(err); !ok || e.Class != errs.ClassUnavailable || e.Msg != "Instance console unavailable" {
		t.Errorf("console of a stopped instance: %v, want Unavailable(Instance console unavailable)", err)
	}
}

func TestGoldenLaterQueries(t *testing.T) {
	caps := loadCaptures(t)
	s := laterState(t)
	for _, tc := range []struct {
		seq      int
		resource string
		fields   []string
		filter   any
	}{
		{91, ResInstance, []string{"name", "status"}, nil},
		{92, ResInstance, []string{"name", "status", "oper_state", "admin_state", "pnode", "disk_template", "tags", "be/memory", "nic.macs", "disk.sizes"}, nil},
		{222, ResInstance, []string{"name", "status", "pnode"}, []any{"=", "name", "inst1.example.com"}},
	} {
		res, err := s.Query(tc.resource, tc.fields, tc.filter)
		if err != nil {
			t.Fatalf("seq %d: %v", tc.seq, err)
		}
		checkGolden(t, caps[tc.seq], res)
	}

	// Record 225 was taken later (other instances), but its shape holds:
	// an unknown field is defined as kind "unknown" and gives [1, null].
	res, err := s.Query(ResInstance, []string{"name", "nosuchfield"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := parsed(t, caps[225]).(map[string]any)["fields"]
	checkJSON(t, "seq 225 fields", roundTrip(t, res.Fields), want)
	for _, row := range res.Data {
		if row[1] != (Cell{Status: StatusUnknown}) {
			t.Errorf("unknown field cell = %+v, want [1, null]", row[1])
		}
	}
}
