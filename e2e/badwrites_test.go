package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// writeSnapshotPaths are the reads whose answers a rejected write must not
// change: the cluster state and the job queue.
var writeSnapshotPaths = []string{
	"/2/info", "/2/nodes?bulk=1", "/2/groups?bulk=1", "/2/instances?bulk=1",
	"/2/networks?bulk=1", "/2/filters?bulk=1", "/2/jobs", "/2/tags",
}

func writeSnapshot(t *testing.T, base string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	for _, p := range writeSnapshotPaths {
		status, _, body := do(t, "GET", base+p, "", "")
		if status != 200 {
			t.Fatalf("GET %s: %d %s", p, status, body)
		}
		snap[p] = string(body)
	}
	return snap
}

// TestBadWrites is issue #4's table: bad write requests over the legacy
// surface, each with Ganeti's status and message, none of which may
// change the cluster or queue a job.
func TestBadWrites(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	const js = "application/json"
	huge := `{"group_name": "` + strings.Repeat("a", 5<<20) + `"}`
	inst := `"mode": "create", "disk_template": "diskless", "disks": [], "nics": [{}], "pnode": "node1.example.com", "os_type": "noop"`
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		message                         string
	}{
		// Malformed JSON and wrong JSON types.
		{"malformed JSON", "POST", "/2/groups", js, `{"group_name": `, 400, "Unable to parse JSON data"},
		{"trailing garbage", "POST", "/2/groups", js, `{"group_name": "g"} x`, 400, "Unable to parse JSON data"},
		{"single quotes", "POST", "/2/networks", js, `{'network_name': 'n'}`, 400, "Unable to parse JSON data"},
		{"body is a list", "POST", "/2/groups", js, `["g"]`, 400, "Body contents: Type is 'list', but 'dict' is expected"},
		{"body is a string", "PUT", "/2/modify", js, `"x"`, 400, "Body contents: Type is 'str', but 'dict' is expected"},
		{"body is a number", "POST", "/2/networks", js, `42`, 400, "Body contents: Type is 'int', but 'dict' is expected"},
		{"instance body is a list", "POST", "/2/instances", js, `[1]`, 400, "Body contents: Type is 'list', but 'dict' is expected"},
		{"group name is a number", "POST", "/2/groups", js, `{"group_name": 5}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_ADD.group_name' fails validation\", 'wrong_input')"},
		{"group name is empty", "POST", "/2/groups", js, `{"group_name": ""}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_ADD.group_name' fails validation\", 'wrong_input')"},
		{"new_name is a list", "PUT", "/2/groups/default/rename", js, `{"new_name": ["a"]}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_RENAME.new_name' fails validation\", 'wrong_input')"},
		{"nodes is a string", "PUT", "/2/groups/default/assign-nodes", js, `{"nodes": "node1.example.com"}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_ASSIGN_NODES.nodes' fails validation\", 'wrong_input')"},
		{"evacuate mode unknown", "POST", "/2/nodes/node1.example.com/evacuate", js, `{"mode": "everything"}`, 400, "Invalid body parameters: (\"Parameter 'OP_NODE_EVACUATE.mode' fails validation\", 'wrong_input')"},
		{"master_candidate is a string", "POST", "/2/nodes/node1.example.com/modify", js, `{"master_candidate": "yes"}`, 400, "Invalid body parameters: (\"Parameter 'OP_NODE_SET_PARAMS.master_candidate' fails validation\", 'wrong_input')"},
		{"network is not a network", "POST", "/2/networks", js, `{"network_name": "n1", "network": "300.1.2.0/24"}`, 400, "Invalid body parameters: (\"Parameter 'OP_NETWORK_ADD.network' fails validation\", 'wrong_input')"},
		{"candidate_pool_size is a string", "PUT", "/2/modify", js, `{"candidate_pool_size": "ten"}`, 400, "Invalid body parameters: (\"Parameter 'OP_CLUSTER_SET_PARAMS.candidate_pool_size' fails validation\", 'wrong_input')"},
		{"depends is not a list", "POST", "/2/groups", js, `{"group_name": "g", "depends": 5}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_ADD.depends' fails validation\", 'wrong_input')"},
		{"priority out of range", "POST", "/2/groups", js, `{"group_name": "g", "priority": 100}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_ADD.priority' fails validation\", 'wrong_input')"},
		// Sizes.
		{"grow by a negative amount", "POST", "/2/instances/inst1.example.com/disk/0/grow", js, `{"amount": -1}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_GROW_DISK.amount' fails validation\", 'wrong_input')"},
		{"grow by 2^70", "POST", "/2/instances/inst1.example.com/disk/0/grow", js, `{"amount": 1180591620717411303424}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_GROW_DISK.amount' fails validation\", 'wrong_input')"},
		{"grow by a fraction", "POST", "/2/instances/inst1.example.com/disk/0/grow", js, `{"amount": 1.5}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_GROW_DISK.amount' fails validation\", 'wrong_input')"},
		{"grow without amount", "POST", "/2/instances/inst1.example.com/disk/0/grow", js, `{}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_GROW_DISK.amount' fails validation\", 'wrong_input')"},
		{"shutdown timeout negative", "PUT", "/2/instances/inst1.example.com/shutdown", js, `{"timeout": -5}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_SHUTDOWN.timeout' fails validation\", 'wrong_input')"},
		{"runtime_mem 2^70", "PUT", "/2/instances/inst1.example.com/modify", js, `{"runtime_mem": 1180591620717411303424}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_SET_PARAMS.runtime_mem' fails validation\", 'wrong_input')"},
		{"body too large", "POST", "/2/groups", js, huge, 413, "Request body too large"},
		// Names.
		{"rename to an empty name", "PUT", "/2/instances/inst1.example.com/rename", js, `{"new_name": ""}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_RENAME.new_name' fails validation\", 'wrong_input')"},
		{"rename without new_name", "PUT", "/2/instances/inst1.example.com/rename", js, `{}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_RENAME.new_name' fails validation\", 'wrong_input')"},
		{"network without network", "POST", "/2/networks", js, `{"network_name": "n1"}`, 400, "Invalid body parameters: (\"Parameter 'OP_NETWORK_ADD.network' fails validation\", 'wrong_input')"},
		{"group without name", "POST", "/2/groups", js, `{}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_ADD.group_name' fails validation\", 'wrong_input')"},
		{"connect without group", "PUT", "/2/networks/net1/connect", js, `{"network_mode": "bridged", "network_link": "br0"}`, 400, "Invalid body parameters: (\"Parameter 'OP_NETWORK_CONNECT.group_name' fails validation\", 'wrong_input')"},
		{"path traversal in a node name", "POST", "/2/nodes/..%2F..%2Fetc/modify", js, `{}`, 404, "Not Found"},
		{"unicode in a path name", "POST", "/2/nodes/n%C3%B6de/modify", js, `{}`, 404, "Not Found"},
		{"space in a path name", "PUT", "/2/groups/a%20b/rename", js, `{"new_name": "c"}`, 404, "Not Found"},
		// Names of new groups and networks must be addressable by a RAPI path
		// (README, Compatibility; Ganeti only requires them non-empty).
		{"group name with a space", "POST", "/2/groups", js, `{"group_name": "a b"}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_ADD.group_name' fails validation\", 'wrong_input')"},
		{"group name (old key) with a slash", "POST", "/2/groups", js, `{"name": "a/b"}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_ADD.group_name' fails validation\", 'wrong_input')"},
		{"group name of 256 characters", "POST", "/2/groups", js, `{"group_name": "` + strings.Repeat("g", 256) + `"}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_ADD.group_name' fails validation\", 'wrong_input')"},
		{"group name of 40,000 characters", "POST", "/2/groups", js, `{"group_name": "` + strings.Repeat("g", 40000) + `"}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_ADD.group_name' fails validation\", 'wrong_input')"},
		{"group renamed to dot dot", "PUT", "/2/groups/default/rename", js, `{"new_name": ".."}`, 400, "Invalid body parameters: (\"Parameter 'OP_GROUP_RENAME.new_name' fails validation\", 'wrong_input')"},
		{"network name with unicode", "POST", "/2/networks", js, `{"network_name": "n\u00e9t", "network": "10.0.0.0/24"}`, 400, "Invalid body parameters: (\"Parameter 'OP_NETWORK_ADD.network_name' fails validation\", 'wrong_input')"},
		// Ganeti's type signatures of disk specifications and modifications;
		// free-form numbers must be finite and int64 integers.
		{"disk size 1.5", "POST", "/2/instances", js, `{"__version__": 1, ` + strings.Replace(inst, `"disks": []`, `"disks": [{"size": 1.5}]`, 1) + `, "instance_name": "i1.example.com"}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_CREATE.disks' fails validation\", 'wrong_input')"},
		{"disk size 1e30", "POST", "/2/instances", js, `{"__version__": 1, ` + strings.Replace(inst, `"disks": []`, `"disks": [{"size": 1e30}]`, 1) + `, "instance_name": "i1.example.com"}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_CREATE.disks' fails validation\", 'wrong_input')"},
		{"memory 2^70", "POST", "/2/instances", js, `{"__version__": 1, ` + inst + `, "instance_name": "i1.example.com", "beparams": {"memory": 1180591620717411303424}}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_CREATE.beparams' fails validation\", 'wrong_input')"},
		{"memory 1e400", "POST", "/2/instances", js, `{"__version__": 1, ` + inst + `, "instance_name": "i1.example.com", "beparams": {"memory": 1e400}}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_CREATE.beparams' fails validation\", 'wrong_input')"},
		{"modify memory 2^70", "PUT", "/2/instances/inst1.example.com/modify", js, `{"beparams": {"maxmem": 1180591620717411303424}}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_SET_PARAMS.beparams' fails validation\", 'wrong_input')"},
		{"modify adds a disk of 1.5", "PUT", "/2/instances/inst1.example.com/modify", js, `{"disks": [["add", {"size": 1.5}]]}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_SET_PARAMS.disks' fails validation\", 'wrong_input')"},
		{"modify with an unknown action", "PUT", "/2/instances/inst1.example.com/modify", js, `{"disks": [["grow", {}]]}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_SET_PARAMS.disks' fails validation\", 'wrong_input')"},
		{"recreate disk -1", "POST", "/2/instances/inst1.example.com/recreate-disks", js, `{"disks": [-1]}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_RECREATE_DISKS.disks' fails validation\", 'wrong_input')"},
		// Filter rules (luxid's checks; Ganeti answers 502).
		{"filter priority 2^70", "POST", "/2/filters", js, `{"priority": 1180591620717411303424}`, 400, ""},
		{"filter priority -1", "POST", "/2/filters", js, `{"priority": -1}`, 400, ""},
		{"filter rate limit 1e30", "POST", "/2/filters", js, `{"action": ["RATE_LIMIT", 1e30]}`, 400, ""},
		{"filter reason timestamp 2^70", "POST", "/2/filters", js, `{"reason": [["a", "b", 1180591620717411303424]]}`, 400, ""},
		// Tags.
		{"tags is a string", "POST", "/2/networks", js, `{"network_name": "n1", "network": "10.0.0.0/24", "tags": "a"}`, 400, "Invalid body parameters: (\"Parameter 'OP_NETWORK_ADD.tags' fails validation\", 'wrong_input')"},
		{"tags of numbers", "POST", "/2/networks", js, `{"network_name": "n1", "network": "10.0.0.0/24", "tags": [1]}`, 400, "Invalid body parameters: (\"Parameter 'OP_NETWORK_ADD.tags' fails validation\", 'wrong_input')"},
		// Null tags are no tags (README, Compatibility); other nulls are still refused.
		{"network name null, tags null", "POST", "/2/networks", js, `{"network_name": null, "network": "10.0.0.0/24", "tags": null}`, 400, "Invalid body parameters: (\"Parameter 'OP_NETWORK_ADD.network_name' fails validation\", 'wrong_input')"},
		// Unknown parameters, static parameters, renames.
		{"unknown group parameter", "POST", "/2/groups", js, `{"group_name": "g", "no_such_param": 1}`, 400, "Invalid body parameters: Object OpGroupAdd doesn't support the parameter 'no_such_param'"},
		{"unknown cluster parameter", "PUT", "/2/modify", js, `{"no_such_param": 1}`, 400, "Invalid body parameters: Object OpClusterSetParams doesn't support the parameter 'no_such_param'"},
		{"unknown node parameter", "POST", "/2/nodes/node1.example.com/modify", js, `{"colour": "red"}`, 400, "Invalid body parameters: Object OpNodeSetParams doesn't support the parameter 'colour'"},
		{"OP_ID in the body", "PUT", "/2/redistribute-config", js, `{"OP_ID": "OP_CLUSTER_DESTROY"}`, 400, "Invalid body parameters: Object OpClusterRedistConf doesn't support the parameter 'OP_ID'"},
		{"unknown instance parameter", "POST", "/2/instances", js, `{"__version__": 1, ` + inst + `, "instance_name": "i1.example.com", "bogus": 1}`, 400, "Invalid body parameters: Object OpInstanceCreate doesn't support the parameter 'bogus'"},
		{"reason in the body", "POST", "/2/groups", js, `{"group_name": "g", "reason": []}`, 400, "Can't overwrite static parameters {'reason'}"},
		{"reason in a modify body", "PUT", "/2/modify", js, `{"reason": [["a", "b", 1]]}`, 400, "Can't overwrite static parameters {'reason'}"},
		{"dry_run and reason in the body", "PUT", "/2/groups/default/rename", js, `{"new_name": "x", "reason": [], "dry_run": true}`, 400, "Can't overwrite static parameters {'dry_run', 'reason'}"},
		{"node_name in the body", "POST", "/2/nodes/node1.example.com/evacuate", js, `{"mode": "all", "node_name": "node2.example.com"}`, 400, "Can't overwrite static parameters {'node_name'}"},
		{"instance_name in the body", "PUT", "/2/instances/inst1.example.com/rename", js, `{"new_name": "x", "instance_name": "y"}`, 400, "Can't overwrite static parameters {'instance_name'}"},
		{"disk in the body", "POST", "/2/instances/inst1.example.com/disk/0/grow", js, `{"amount": 1, "disk": 1}`, 400, "Can't overwrite static parameters {'disk'}"},
		{"group name renamed and new", "POST", "/2/groups", js, `{"name": "a", "group_name": "b"}`, 400, "Parameter 'name' was renamed to 'group_name', but both are specified"},
		{"instance name renamed and new", "POST", "/2/instances", js, `{"__version__": 1, "name": "a", "instance_name": "b"}`, 400, "Parameter 'name' was renamed to 'instance_name', but both are specified"},
		{"network name renamed and new", "POST", "/2/networks", js, `{"name": "a", "network_name": "b"}`, 400, "Parameter 'name' was renamed to 'network_name', but both are specified"},
		{"renamed name is static too", "POST", "/2/groups", js, `{"name": "g", "dry_run": false}`, 400, "Can't overwrite static parameters {'dry_run'}"},
		{"compression_tools in the body", "PUT", "/2/modify", js, `{"compression_tools": ["gzip"]}`, 403, "The parameter compression_tools cannot be set via RAPI"},
		{"compression_tools in the query", "PUT", "/2/modify?compression_tools=gzip", "", "", 403, "The parameter compression_tools cannot be set via RAPI"},
		// Instance creation versions and multi-allocation.
		{"missing __version__", "POST", "/2/instances", js, `{` + inst + `, "instance_name": "i1.example.com"}`, 400, "Instance creation request version 0 is no longer supported"},
		{"__version__ 0", "POST", "/2/instances", js, `{"__version__": 0}`, 400, "Instance creation request version 0 is no longer supported"},
		{"__version__ 2", "POST", "/2/instances", js, `{"__version__": 2}`, 400, "Unsupported request data version 2"},
		{"no instance body", "POST", "/2/instances", "", "", 400, "Instance creation request version 0 is no longer supported"},
		{"instance without a name", "POST", "/2/instances", js, `{"__version__": 1, "mode": "create", "disks": [], "nics": []}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_CREATE.instance_name' fails validation\", 'wrong_input')"},
		{"multi-alloc without instances", "POST", "/2/instances-multi-alloc", js, `{}`, 400, "Request is missing required 'instances' field in body"},
		{"multi-alloc instances not a list", "POST", "/2/instances-multi-alloc", js, `{"instances": 1}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_MULTI_ALLOC.instances' fails validation\", 'wrong_input')"},
		// Route-specific rules.
		{"role master", "PUT", "/2/nodes/node1.example.com/role", js, `"master"`, 400, "Can't set 'master' role"},
		{"role unknown", "PUT", "/2/nodes/node1.example.com/role", js, `"boss"`, 400, "Can't set 'boss' role"},
		{"role as an object", "PUT", "/2/nodes/node1.example.com/role", js, `{"role": "regular"}`, 400, ""},
		{"migrate live and mode", "POST", "/2/nodes/node1.example.com/migrate?live=1&mode=live", "", "", 400, "Only one of 'live' and 'mode' should be passed"},
		{"storage without output_fields", "GET", "/2/nodes/node1.example.com/storage?storage_type=lvm-vg", "", "", 400, "Missing the required 'output_fields' parameter"},
		{"storage modify without name", "PUT", "/2/nodes/node1.example.com/storage/modify?storage_type=lvm-vg", "", "", 400, "Missing the required 'name' parameter"},
		{"storage repair without name", "PUT", "/2/nodes/node1.example.com/storage/repair?storage_type=lvm-vg", "", "", 400, "Missing the required 'name' parameter"},
		{"reinstall query and body", "POST", "/2/instances/inst1.example.com/reinstall?os=noop", js, `{"os": "noop"}`, 400, "Can't combine query and body parameters"},
		// ?reason= may come with a body (README, Compatibility), the legacy arguments may not.
		{"reinstall nostartup, reason and body", "POST", "/2/instances/inst1.example.com/reinstall?nostartup=1&reason=r", js, `{"os": "noop"}`, 400, "Can't combine query and body parameters"},
		{"replace-disks without mode", "POST", "/2/instances/inst1.example.com/replace-disks", js, `{"disks": [0]}`, 400, "Invalid body parameters: (\"Parameter 'OP_INSTANCE_REPLACE_DISKS.mode' fails validation\", 'wrong_input')"},
		{"export without target", "PUT", "/2/instances/inst1.example.com/export", js, `{"mode": "local"}`, 400, "Invalid body parameters: (\"Parameter 'OP_BACKUP_EXPORT.target_node' fails validation\", 'wrong_input')"},
		{"export destination and target", "PUT", "/2/instances/inst1.example.com/export", js, `{"destination": "a", "target_node": "b"}`, 400, "Parameter 'destination' was renamed to 'target_node', but both are specified"},
		{"modify instance without body", "PUT", "/2/instances/inst1.example.com/modify", "", "", 400, "Body contents: Type is 'NoneType', but 'dict' is expected"},
		// Query arguments.
		{"dry-run not a number", "POST", "/2/groups?dry-run=yes", js, `{"group_name": "g"}`, 400, "Invalid value for the 'dry-run' parameter"},
		{"duplicate dry-run, second bad", "POST", "/2/groups?dry-run=x&dry-run=1", js, `{"group_name": "g"}`, 400, "Invalid value for the 'dry-run' parameter"},
		{"force not a number", "POST", "/2/nodes/node1.example.com/powercycle?force=sure", js, `{}`, 400, "Invalid value for the 'force' parameter"},
		// Transport.
		{"content type with charset", "POST", "/2/groups", "application/json; charset=utf-8", `{"group_name": "g"}`, 415, "Unsupported Media Type"},
		{"content type text/plain", "PUT", "/2/modify", "text/plain", `{}`, 415, "Unsupported Media Type"},
		{"no content type", "POST", "/2/networks", "", `{"network_name": "n1"}`, 415, "Unsupported Media Type"},
		{"wrong method", "PUT", "/2/nodes/node1.example.com/evacuate?dry-run=1", js, `{"mode": "all"}`, 501, "Method PUT is unsupported for path /2/nodes/node1.example.com/evacuate?dry-run=1"},
	}
	if len(cases) < 60 {
		t.Fatalf("only %d cases", len(cases))
	}
	before := writeSnapshot(t, base)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, body := do(t, c.method, base+c.path, c.ctype, c.body)
			if status != c.status {
				t.Errorf("%s %s: status %d, want %d (%s)", c.method, c.path, status, c.status, body)
			}
			if status >= 500 && status != 501 {
				t.Errorf("server error %d: %s", status, body)
			}
			if leak.Match(body) {
				t.Errorf("body leaks internals: %s", body)
			}
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Explain string `json:"explain"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Code != status || e.Explain == "" {
				t.Errorf("not a Ganeti error body: %s", body)
			}
			if c.message != "" && htmlUnescape(e.Message) != c.message {
				t.Errorf("message %q, want %q", htmlUnescape(e.Message), c.message)
			}
			after := writeSnapshot(t, base)
			for _, p := range writeSnapshotPaths {
				if after[p] != before[p] {
					t.Errorf("GET %s changed:\nbefore %s\nafter  %s", p, before[p], after[p])
				}
			}
		})
	}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", `"`, "&#x27;", "'").Replace(s)
}
