package legacyjson

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// Frozen messages are encoded once and copied: the output is the one of
// the messages encoded every time, whatever the options, and a message
// changed after Thaw is encoded anew.
func TestFrozenFragments(t *testing.T) {
	be := &rapiv2.BeParams{Maxmem: proto.Int64(512), Vcpus: proto.Int64(1)}
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

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

type failingWriter struct{ writes int }

func (w *failingWriter) Write([]byte) (int, error) {
	w.writes++
	return 0, errors.New("gone")
}

// A Streamed value is written as Marshal encodes it, in pieces, frozen or
// not; a write error ends the encoding.
func TestStreamed(t *testing.T) {
	insts := make([]*rapiv2.Instance, 2000)
	for i := range insts {
		insts[i] = &rapiv2.Instance{Name: fmt.Sprintf("inst%05d.example.com", i), Tags: []string{"a", "b"}}
	}
	resp := &rapiv2.ListInstancesResponse{Instances: insts}
	for _, frozen := range []bool{false, true} {
		for _, m := range []Marshaler{{}, {PythonStyle: true}} {
			want, err := m.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			if frozen {
				Freeze(insts)
			}
			var w countingWriter
			out, err := m.Marshal(Streamed{Value: resp, W: &w})
			if err != nil || len(out) != 0 || !bytes.Equal(w.Bytes(), want) {
				t.Errorf("frozen %v %+v: %d bytes returned, streamed %q (%v), want %q", frozen, m, len(out), w.Bytes(), err, want)
			}
			if w.writes < len(want)/StreamChunk {
				t.Errorf("frozen %v %+v: %d writes for %d bytes", frozen, m, w.writes, len(want))
			}
			var f failingWriter
			if _, err := m.Marshal(Streamed{Value: resp, W: &f}); err == nil || f.writes != 1 {
				t.Errorf("failing writer: %v after %d writes", err, f.writes)
			}
			Thaw(insts)
		}
	}
}

// A frozen message marshaled on its own (GetInfo's shared answer) is
// encoded once and copied, streamed or not, with the output of the
// message encoded every time.
func TestFrozenTopLevel(t *testing.T) {
	info := &rapiv2.ClusterInfo{Name: "cluster.example.com", Tags: []string{"ünïcode"},
		Beparams: map[string]*rapiv2.BeParams{"default": {Maxmem: proto.Int64(512)}}}
	for _, m := range []Marshaler{{}, {PythonStyle: true}, {OmitUnset: true}} {
		want, err := m.Marshal(info)
		if err != nil {
			t.Fatal(err)
		}
		Freeze([]*rapiv2.ClusterInfo{info})
		for range 2 {
			got, err := m.Marshal(info)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%+v frozen: %s (%v), want %s", m, got, err, want)
			}
			var w bytes.Buffer
			if _, err := m.Marshal(Streamed{Value: info, W: &w}); err != nil || !bytes.Equal(w.Bytes(), want) {
				t.Errorf("%+v frozen, streamed: %s (%v), want %s", m, w.Bytes(), err, want)
			}
		}
		Thaw([]*rapiv2.ClusterInfo{info})
	}
}
