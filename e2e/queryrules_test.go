package e2e

import (
	"encoding/json"
	"testing"
)

// TestQueryArgumentRules checks Ganeti's query-argument parsing on the
// legacy surface: a blank value is absent, the first of repeated values
// wins, bools are integers (non-zero is true), unknown arguments are
// ignored, csv lists split on commas.
func TestQueryArgumentRules(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	cases := []struct {
		query string
		bulk  bool
	}{
		{"", false},
		{"?bulk=", false},
		{"?bulk", false},
		{"?bulk=0", false},
		{"?bulk=1", true},
		{"?bulk=2", true},
		{"?bulk=-1", true},
		{"?bulk=%201%20", true},
		{"?bulk=1&bulk=0", true},
		{"?bulk=0&bulk=1", false},
		{"?bulk=&bulk=1", true},
		{"?foo=bar&bulk=1", true},
	}
	for _, c := range cases {
		status, _, body := do(t, "GET", base+"/2/nodes"+c.query, "", "")
		var items []map[string]any
		if status != 200 || json.Unmarshal(body, &items) != nil || len(items) != 1 {
			t.Fatalf("%s: %d %s", c.query, status, body)
		}
		_, isBulk := items[0]["mtotal"]
		if isBulk != c.bulk {
			t.Errorf("/2/nodes%s: bulk form %v, want %v", c.query, isBulk, c.bulk)
		}
	}
	status, _, body := do(t, "GET", base+"/2/query/node/fields?fields=name,mtotal", "", "")
	var defs struct {
		Fields []struct{ Name string } `json:"fields"`
	}
	if status != 200 || json.Unmarshal(body, &defs) != nil || len(defs.Fields) != 2 || defs.Fields[1].Name != "mtotal" {
		t.Errorf("csv fields: %d %s", status, body)
	}
}
