package legacyjson

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson/testdata/testpb"
)

// FuzzDecode feeds arbitrary bodies to the decoder with opcodes, tuples,
// plain, unwrap, strict, inline and opcode-switch messages as targets.
// Decoding must never panic and fail only with a *DecodeError; whatever
// decodes must encode, and for the targets that hold no opcode parameters,
// encoding is a fixed point (decode(encode(m)) encodes to the same bytes).
// The seed corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"new_name": "x"}`, `{"bogus": 1}`,
		`[true, 1, 2, 0.5, "l", "drbd", -10, ["a"], {"a": 1}, [1, 2], {"x": [1, null]}, [null], 5, {"mac": "m"}]`,
		`{"depends": [[1, ["success"]]], "ip": "192.0.2.1", "network": "10.0.0.0/8", "priority": false}`,
		`{"ctime": [1, 2], "hvparams": {"a": NaN}, "disk.sizes": [1e3], "by_index": {"-1": "x"}}`,
		`{"id": 1, "ops": [{"OP_ID": "OP_TEST_NOTE", "note": "x", "when": [1, 2]}, {"OP_ID": "OP_TEST_FLAG", "ids": [1]}],
		  "results": [null, "t", [1, 2], {"a": 1}], "lists": [[{"mac": "m"}], []], "error": ["E", ["m", "drbd"]], "name": "n", "link": "l"}`,
		`["OpPrereqError", ["msg", "plain"], 5]`, `[1, 2]`, `{"priority": 1, "bogus": 2}`,
		`{"instance_name": "i", "disks": [{"size": 1.5}], "beparams": {"memory": 1e30}}`,
		`{"disks": [["add", {"size": -1}]], "nics": [[0, {"ip": null}]], "runtime_mem": 1180591620717411303424}`,
		`{"group_name": "a b", "new_name": "..", "network_name": "n\u00e9t", "disks": [0, [1, {}]]}`,
	} {
		f.Add([]byte(s))
	}
	m := Marshaler{}
	f.Fuzz(func(t *testing.T, data []byte) {
		targets := []struct {
			msg       proto.Message
			fixDPoint bool
		}{
			{&testpb.OpTestRename{}, false},
			{&testpb.Mixed{}, true},
			{&testpb.Everything{}, true},
			{&testpb.JobLike{}, true},
			{&testpb.UnwrapChoice{}, true},
			{&testpb.ErrTuple{}, true},
			{&testpb.StrictSpec{}, true},
			{&testpb.AnyOp{}, false},
			{&testpb.InlineOpBody{}, false},
			// Real opcodes with sig-checked (Struct / Value) and named
			// parameters.
			{&rapiv2.OpInstanceCreate{}, false},
			{&rapiv2.OpInstanceSetParams{}, false},
			{&rapiv2.OpInstanceRecreateDisks{}, false},
			{&rapiv2.OpGroupAdd{}, false},
			{&rapiv2.OpGroupRename{}, false},
		}
		for _, tc := range targets {
			err := m.Unmarshal(data, tc.msg)
			if err != nil {
				var de *DecodeError
				if !errors.As(err, &de) && !(len(data) == 0 && err == io.EOF) {
					t.Fatalf("%T: error %v (%T) is not a *DecodeError", tc.msg, err, err)
				}
				if err := CheckRequired(tc.msg); err != nil && !errors.As(err, &de) {
					t.Fatalf("CheckRequired: %v", err)
				}
				continue
			}
			// The typed check agrees with the decoder: what a legacy body
			// may hold, a gRPC client may send.
			if err := CheckParams(tc.msg); err != nil {
				t.Fatalf("%T: decoded, but CheckParams refuses it: %v", tc.msg, err)
			}
			out, err := m.Marshal(tc.msg)
			if err != nil {
				t.Fatalf("%T: Marshal after a successful decode: %v", tc.msg, err)
			}
			if _, err := parseJSON(out, maxDepth); err != nil {
				t.Fatalf("%T: Marshal wrote invalid JSON %q", tc.msg, out)
			}
			if _, err := ToValue(tc.msg); err != nil {
				t.Fatalf("%T: ToValue: %v", tc.msg, err)
			}
			if _, err := (Marshaler{PythonStyle: true}).Marshal(tc.msg); err != nil {
				t.Fatalf("%T: Marshal (Python style): %v", tc.msg, err)
			}
			if !tc.fixDPoint {
				continue
			}
			again := tc.msg.ProtoReflect().New().Interface()
			if err := m.Unmarshal(out, again); err != nil {
				t.Fatalf("%T: re-decoding %q: %v", tc.msg, out, err)
			}
			out2, err := m.Marshal(again)
			if err != nil {
				t.Fatalf("%T: re-marshal: %v", tc.msg, err)
			}
			if !bytes.Equal(out, out2) {
				t.Fatalf("%T: not a fixed point:\n%s\n%s", tc.msg, out, out2)
			}
		}
		var anything any
		if err := m.Unmarshal(data, &anything); err == nil {
			if _, err := m.Marshal(anything); err != nil {
				t.Fatalf("Marshal(any): %v", err)
			}
		}
	})
}
