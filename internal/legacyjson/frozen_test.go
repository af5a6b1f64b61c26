package legacyjson

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// Frozen messages are encoded once and copied: the output is the one of
// the messages encoded every time, whatever the options, and a message
// changed after Thaw is encoded anew.
func TestFrozenFragments(t *testing.T) {
	be, _ := structpb.NewStruct(map[string]any{"maxmem": 512, "vcpus": 1})
	insts := []*rapiv2.Instance{
		{Name: "a.example.com", Beparams: be, Tags: []string{"x"}},
		{Name: "b.example.com", Tags: []string{"ünïcode"}},
	}
	resp := &rapiv2.ListInstancesResponse{Instances: insts}
	for _, m := range []Marshaler{{}, {PythonStyle: true}, {OmitUnset: true}} {
		want, err := m.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		Freeze(insts)
		for range 2 { // the first encodes the fragments, the second copies them
			got, err := m.Marshal(resp)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%+v frozen: %s (%v), want %s", m, got, err, want)
			}
		}
		Thaw(insts)
	}
	if n := frozenCount.Load(); n != 0 {
		t.Errorf("%d frozen after Thaw", n)
	}
	Freeze(insts)
	first, _ := Marshaler{}.Marshal(resp)
	Thaw(insts)
	insts[0].Name = "c.example.com"
	if got, _ := (Marshaler{}).Marshal(resp); bytes.Equal(got, first) || !bytes.Contains(got, []byte("c.example.com")) {
		t.Errorf("after Thaw and a change: %s", got)
	}
}
