package cluster

import (
	"reflect"
	"testing"
)

// scribble modifies every list and map in v, as a caller of Query may.
func scribble(v any) {
	switch x := v.(type) {
	case []any:
		for i := range x {
			scribble(x[i])
			x[i] = "scribbled"
		}
	case []string:
		for i := range x {
			x[i] = "scribbled"
		}
	case map[string]any:
		for k := range x {
			scribble(x[k])
			x[k] = "scribbled"
		}
		x["scribbled"] = true
	}
}

// TestQuerySharedSameAsQuery checks that the shared queries give the
// values of the copying ones, and that what callers of Query do to their
// copies does not reach the shared values.
func TestQuerySharedSameAsQuery(t *testing.T) {
	s := testState(t)
	for _, res := range []string{ResNode, ResInstance, ResGroup, ResNetwork, ResFilter, ResExport} {
		defs, _ := s.FieldDefs(res, nil)
		names := make([]string, 0, len(defs)+1)
		for _, d := range defs {
			names = append(names, d.Name)
		}
		names = append(names, "no-such-field")
		shared, err := s.QueryShared(res, names, nil)
		if err != nil {
			t.Fatal(err)
		}
		for round := 0; round < 2; round++ {
			fresh, err := s.Query(res, names, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fresh, shared) {
				t.Fatalf("%s: QueryShared differs from Query:\n%v\n%v", res, mustJSON(shared), mustJSON(fresh))
			}
			for _, row := range fresh.Data {
				for _, c := range row {
					scribble(c.Value)
				}
			}
		}
		for _, name := range s.Names(res) {
			cells, err := s.Get(res, name, names)
			if err != nil {
				t.Fatal(err)
			}
			sharedCells, err := s.GetShared(res, name, names)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cells, sharedCells) {
				t.Fatalf("%s %s: GetShared differs from Get", res, name)
			}
		}
	}
	if _, err := s.QueryShared("bogus", []string{"name"}, nil); err == nil {
		t.Fatal("QueryShared of an unknown resource succeeded")
	}
	if _, err := s.GetShared("bogus", "x", []string{"name"}); err == nil {
		t.Fatal("GetShared of an unknown resource succeeded")
	}
}

func TestInfoShared(t *testing.T) {
	s := testState(t)
	shared := s.InfoShared()
	for round := 0; round < 2; round++ {
		info := s.Info()
		if !reflect.DeepEqual(info, shared) {
			t.Fatalf("InfoShared differs from Info:\n%s\n%s", mustJSON(shared), mustJSON(info))
		}
		scribble(info)
	}
	if again := s.InfoShared(); reflect.ValueOf(again).Pointer() != reflect.ValueOf(shared).Pointer() {
		t.Fatal("InfoShared computed twice")
	}
}
