package legacyjson

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson/testdata/testpb"
)

// TestMarshalSizeHints marshals big values repeatedly (the later calls
// take the hinted path) with growing and shrinking sizes, and checks the
// output against the first, unhinted encoding.
func TestMarshalSizeHints(t *testing.T) {
	all := benchInstances(400)
	for _, m := range []Marshaler{{}, {PythonStyle: true}} {
		want := map[int][]byte{}
		for _, n := range []int{400, 10, 0, 400, 200, 400, 1} {
			out, err := m.Marshal(all[:n])
			if err != nil {
				t.Fatal(err)
			}
			if w, ok := want[n]; ok && !bytes.Equal(w, out) {
				t.Fatalf("%d instances: output changed between calls", n)
			}
			want[n] = out
			if out[len(out)-1] != '\n' {
				t.Fatal("no final newline")
			}
		}
		// An error on the hinted path.
		bad := append([]any{}, make([]any, 2000)...)
		for i := range bad {
			bad[i] = Object{{"k", "a long enough string value to make the output big"}}
		}
		if _, err := m.Marshal(bad); err != nil {
			t.Fatal(err)
		}
		bad[len(bad)-1] = math.Inf(1) // encodes; a json.Number would not
		bad[len(bad)-2] = jsonNumberForTest("bogus")
		if _, err := m.Marshal(bad); err == nil {
			t.Fatal("invalid number literal marshaled")
		}
	}
	// The hint of one type does not leak into another.
	if out, err := (Marshaler{}).Marshal(&testpb.Nic{}); err != nil || len(out) > 200 {
		t.Fatalf("small message: %q, %v", out, err)
	}
}

func jsonNumberForTest(s string) any { return json.Number(s) }
