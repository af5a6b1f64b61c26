package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// TestQueryEstimate: the size QueryLimited estimates for a result (before
// building it) is within 10% of the length of its JSON encoding, for every
// field of every resource of the conformance cluster; a limit below the
// estimate refuses the query with errs.TooLarge, and Admit sees the
// estimate.
func TestQueryEstimate(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "conformance-cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := stateFromJSON(t, string(data))
	for _, res := range []string{ResNode, ResInstance, ResGroup, ResNetwork, ResFilter, ResExport} {
		defs, err := s.FieldDefs(res, nil)
		if err != nil {
			t.Fatal(err)
		}
		var fields []string
		for _, d := range defs {
			fields = append(fields, d.Name)
		}
		fields = append(fields, "no_such_field")
		var est int64
		out, err := s.QueryLimited(res, fields, nil, QueryLimits{Admit: func(e int64) error { est = e; return nil }})
		if err != nil {
			t.Fatalf("%s: %v", res, err)
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		if n := int64(len(b)); est < n*9/10 || est > n*11/10 {
			t.Errorf("%s: estimated %d bytes, encoded %d", res, est, n)
		}
		_, err = s.QueryLimited(res, fields, nil, QueryLimits{MaxBytes: est - 1})
		if de, ok := asTooLarge(err); !ok {
			t.Errorf("%s over its limit: %v", res, err)
		} else if de == "" {
			t.Errorf("%s over its limit: no message", res)
		}
		if _, err := s.QueryLimited(res, fields, nil, QueryLimits{MaxBytes: est}); err != nil {
			t.Errorf("%s at its limit: %v", res, err)
		}
	}
}

func asTooLarge(err error) (string, bool) {
	de, ok := errs.As(err)
	if !ok || de.Class != errs.ClassTooLarge {
		return "", false
	}
	return de.Msg, true
}
