package rapi

import (
	"encoding/json"
	"net/url"
	"testing"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// TestOpcodeRoutes checks the derived opcode -> route mapping on opcodes
// of each rule (the e2e tests check it on every write of the golden
// captures and of the official client's suite).
func TestOpcodeRoutes(t *testing.T) {
	tests := []struct {
		name string
		op   map[string]any
		// want: method, path without the query, query, body (JSON, "" none)
		method, path string
		query        url.Values
		body         string
	}{
		{"cluster tags: fixed kind and name, tag -> tags",
			map[string]any{"OP_ID": "OP_TAGS_SET", "kind": "cluster", "tags": []any{"a", "b"}},
			"PUT", "/2/tags", url.Values{"tag": {"a", "b"}}, ""},
		{"instance tags: the path's name, dry-run",
			map[string]any{"OP_ID": "OP_TAGS_DEL", "kind": "instance", "name": "i1", "tags": []any{"a"}, "dry_run": true},
			"DELETE", "/2/instances/i1/tags", url.Values{"tag": {"a"}, "dry-run": {"1"}}, ""},
		{"grow disk: {disk_index} is disk, the rest in the opcode body",
			map[string]any{"OP_ID": "OP_INSTANCE_GROW_DISK", "instance_name": "i1", "disk": 2, "amount": 1024},
			"POST", "/2/instances/i1/disk/2/grow", url.Values{}, `{"amount":1024}`},
		{"instance info: {instance_name} is the one-element instances",
			map[string]any{"OP_ID": "OP_INSTANCE_QUERY_DATA", "instances": []any{"i1"}, "static": true},
			"GET", "/2/instances/i1/info", url.Values{"static": {"1"}}, ""},
		{"storage modify: changes as query arguments",
			map[string]any{"OP_ID": "OP_NODE_MODIFY_STORAGE", "node_name": "n1", "storage_type": "lvm-vg", "name": "xenvg",
				"changes": map[string]any{"allocatable": false}},
			"PUT", "/2/nodes/n1/storage/modify", url.Values{"storage_type": {"lvm-vg"}, "name": {"xenvg"}, "allocatable": {"0"}}, ""},
		{"reboot: sets_param type",
			map[string]any{"OP_ID": "OP_INSTANCE_REBOOT", "instance_name": "i1", "reboot_type": "hard"},
			"POST", "/2/instances/i1/reboot", url.Values{"type": {"hard"}}, "{}"},
		{"node role opcode: the modify route (the role route's body is a role name)",
			map[string]any{"OP_ID": "OP_NODE_SET_PARAMS", "node_name": "n1", "drained": true},
			"POST", "/2/nodes/n1/modify", url.Values{}, `{"drained":true}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := &rapiv2.OpCode{}
			if err := legacyjson.FromValue(op, tc.op); err != nil {
				t.Fatal(err)
			}
			req, err := buildRequest([]*rapiv2.OpCode{op}, "")
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(req.path)
			if err != nil {
				t.Fatal(err)
			}
			if req.verb != tc.method || u.Path != tc.path || u.Query().Encode() != tc.query.Encode() {
				t.Errorf("%s %s, want %s %s?%s", req.verb, req.path, tc.method, tc.path, tc.query.Encode())
			}
			body := ""
			if req.body != nil {
				b, _ := json.Marshal(req.body)
				body = string(b)
			}
			if body != tc.body {
				t.Errorf("body %s, want %s", body, tc.body)
			}
		})
	}
}

func TestOpcodeRouteRefusals(t *testing.T) {
	for name, op := range map[string]map[string]any{
		"no route submits it":            {"OP_ID": "OP_TEST_DELAY", "duration": 1},
		"a reinstall (a route of three)": {"OP_ID": "OP_INSTANCE_REINSTALL", "instance_name": "i1"},
	} {
		t.Run(name, func(t *testing.T) {
			m := &rapiv2.OpCode{}
			if err := legacyjson.FromValue(m, op); err != nil {
				t.Fatal(err)
			}
			_, err := buildRequest([]*rapiv2.OpCode{m}, "")
			if e, _ := errs.As(err); e == nil || e.Code != errs.CodeState {
				t.Errorf("%v, want FAILED_PRECONDITION", err)
			}
		})
	}
}
