package cluster

import (
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

// FuzzParseFile: no input may panic the parser; an accepted file must seed
// a model whose read API works and which reloads from the store unchanged.
// Seeds: testdata/fuzz/FuzzParseFile plus the files below.
func FuzzParseFile(f *testing.F) {
	for _, path := range []string{"../../../testdata/golden-cluster.json", "../../../deploy/demo-cluster.json", "testdata/after-create-cluster.json"} {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(testCluster))
	f.Add([]byte(file()))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile(data)
		if err != nil {
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("ParseFile panicked: %v", err)
			}
			return
		}
		db := memstore.New()
		m, err := Open(db, file, testClock)
		if err != nil {
			t.Fatalf("ParseFile accepted a file Open rejects: %v", err)
		}
		s := m.State()
		before := fuzzSnapshot(t, s)
		m2, err := Open(db, nil, nil)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if after := fuzzSnapshot(t, m2.State()); after != before {
			t.Fatalf("the reloaded state differs:\n%s\n%s", before, after)
		}
	})
}

func fuzzSnapshot(t *testing.T, s *State) string {
	var b strings.Builder
	info, err := json.Marshal(s.Info())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	b.Write(info)
	for _, res := range QueryResources {
		defs, err := s.FieldDefs(res, nil)
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, len(defs))
		for i, d := range defs {
			names[i] = d.Name
		}
		r, err := s.Query(res, names, nil)
		if err != nil {
			t.Fatalf("Query %s: %v", res, err)
		}
		out, err := json.Marshal(r.Data)
		if err != nil {
			t.Fatalf("Query %s: %v", res, err)
		}
		b.Write(out)
	}
	return b.String()
}

var (
	fuzzStateOnce sync.Once
	fuzzState     *State
)

// FuzzQueryFilter: no filter may panic the query engine; every failure is a
// domain error. Seeds: testdata/fuzz/FuzzQueryFilter plus the filters below.
func FuzzQueryFilter(f *testing.F) {
	for _, seed := range []string{
		`null`, `["=", "name", "web"]`, `["|", ["=", "name", "a"], ["=", "name", "b"]]`,
		`["&", ["?", "admin_up"], ["!", ["=~", "name", "^d"]]]`, `["=[]", "tags", "a"]`,
		`[">=", "disk_usage", 10]`, `["~~", "name"]`, `["<", "received_ts", 5]`, `[]`, `[null]`,
	} {
		for res := 0; res < len(QueryResources); res++ {
			f.Add([]byte(seed), uint8(res))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, res uint8) {
		var filter any
		if json.Unmarshal(data, &filter) != nil {
			return
		}
		fuzzStateOnce.Do(func() {
			m := modelFromJSON(t, testCluster)
			_ = m.SetRowSource(ResJob, RowSourceFunc(func() []Row {
				return []Row{testRow{"id": normal(int64(1)), "received_ts": normal([]any{int64(1), int64(2)}), "status": normal("success")}}
			}))
			fuzzState = m.State()
		})
		resource := QueryResources[int(res)%len(QueryResources)]
		fields := []string{"name", "uuid", "id", "tags", "nosuch"}
		r, err := fuzzState.Query(resource, fields, filter)
		if err != nil {
			if _, ok := errs.As(err); !ok {
				t.Fatalf("Query returned a non-domain error: %v", err)
			}
			return
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("result does not marshal: %v", err)
		}
	})
}
