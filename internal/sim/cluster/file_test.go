package cluster

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// minimal is the smallest valid cluster file; cases below extend it.
const minimal = `{"cluster": {"name": "c.example.com", "master_node": "n1", "enabled_disk_templates": ["diskless", "plain", "drbd"]}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]`

// file returns minimal with extra top-level members (each `"key": value`).
func file(extra ...string) string {
	s := minimal
	for _, e := range extra {
		s += ", " + e
	}
	return s + "}"
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"not JSON", `{`, "cluster file:"},
		{"trailing data", file() + ` {}`, "unexpected data"},
		{"not an object", `[]`, "cannot unmarshal array"},
		{"no cluster", `{"nodes": []}`, `missing "cluster" object`},
		{"unknown top-level key", file(`"nodez": []`), `unknown key "nodez"`},
		{"unknown cluster key", `{"cluster": {"name": "c", "master_node": "n1", "colour": 1}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `cluster: unknown key "colour"`},
		{"unknown node key", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1", "mtotl": 1}]}`, `nodes[0]: unknown key "mtotl"`},
		{"unknown disk key", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "disk_template": "plain", "disks": [{"sise": 1}]}]`), `instances[0]: unknown key "sise"`},
		{"wrong type", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1", "mtotal": "big"}]}`, "nodes[0]: cannot unmarshal string"},
		{"fractional size", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1", "mtotal": 1.5}]}`, "nodes[0]"},
		{"missing cluster name", `{"cluster": {"master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "cluster: missing name"},
		{"bad cluster name", `{"cluster": {"name": "a b", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `invalid name "a b"`},
		{"no nodes", `{"cluster": {"name": "c", "master_node": "n1"}}`, "no nodes declared"},
		{"no master", `{"cluster": {"name": "c"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "missing master_node"},
		{"unknown master", `{"cluster": {"name": "c", "master_node": "n9"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `master_node "n9" is not a declared node`},
		{"offline master", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1", "offline": true}]}`, "master node must be"},
		{"duplicate node", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}, {"name": "n1", "pip": "192.0.2.2"}]}`, "node n1: declared twice"},
		{"duplicate pip", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}, {"name": "n2", "pip": "192.0.2.1"}]}`, "pip 192.0.2.1 is already used"},
		{"bad pip", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "x"}]}`, `invalid pip "x"`},
		{"two roles", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}, {"name": "n2", "pip": "192.0.2.2", "drained": true, "offline": true}]}`, "only one of master_candidate, drained and offline"},
		{"mnode above mtotal", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1", "mtotal": 100, "mnode": 200}]}`, "mnode (200) is more than mtotal (100)"},
		{"negative size", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1", "dtotal": -1}]}`, "dtotal must be between"},
		{"unknown group", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1", "group": "g9"}]}`, `unknown group "g9"`},
		{"bad uuid", `{"cluster": {"name": "c", "master_node": "n1", "uuid": "xyz"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `invalid uuid "xyz"`},
		{"duplicate uuid", `{"cluster": {"name": "c", "master_node": "n1", "uuid": "191bf0a2-ce90-4914-bd06-43e4a2421af9"}, "nodes": [{"name": "n1", "pip": "192.0.2.1", "uuid": "191bf0a2-ce90-4914-bd06-43e4a2421af9"}]}`, "is already used by cluster"},
		{"bad tag", `{"cluster": {"name": "c", "master_node": "n1", "tags": ["a b"]}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `invalid tag "a b"`},
		// The object naming rules (internal/names): host names for nodes and
		// instances, addressable names for groups and networks, Ganeti's
		// Unicode tag rule.
		{"upper-case node name", `{"cluster": {"name": "c", "master_node": "N1"}, "nodes": [{"name": "N1", "pip": "192.0.2.1"}]}`, `nodes[0]: invalid name "N1"`},
		{"node name with an empty label", `{"cluster": {"name": "c", "master_node": "n1..x"}, "nodes": [{"name": "n1..x", "pip": "192.0.2.1"}]}`, `nodes[0]: invalid name "n1..x"`},
		{"instance name with a trailing dot", file(`"instances": [{"name": "i1.", "os": "noop", "pnode": "n1", "disk_template": "diskless"}]`), `instances[0]: invalid name "i1."`},
		{"group name dot dot", file(`"groups": [{"name": ".."}]`), `groups[0]: invalid name ".."`},
		{"unicode tag", `{"cluster": {"name": "c", "master_node": "n1", "tags": ["tägé", "` + strings.Repeat("ä", 128) + `"]}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, ""},
		{"tag of 129 characters", `{"cluster": {"name": "c", "master_node": "n1", "tags": ["` + strings.Repeat("ä", 129) + `"]}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "invalid tag"},
		{"negative ctime", `{"cluster": {"name": "c", "master_node": "n1", "ctime": -1}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "ctime must be a Unix timestamp"},
		{"other hypervisor", `{"cluster": {"name": "c", "master_node": "n1", "enabled_hypervisors": ["kvm"]}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "only the fake hypervisor"},
		{"unknown disk template", `{"cluster": {"name": "c", "master_node": "n1", "enabled_disk_templates": ["floppy"]}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `unknown value "floppy"`},
		{"lvm without vg", `{"cluster": {"name": "c", "master_node": "n1", "volume_group_name": null}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "volume_group_name is required"},
		{"unknown hv param", `{"cluster": {"name": "c", "master_node": "n1", "hvparams": {"kvm": {"turbo": true}}}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `hvparams kvm: unknown parameter "turbo"`},
		{"wrong hv param type", `{"cluster": {"name": "c", "master_node": "n1", "hvparams": {"kvm": {"acpi": "yes"}}}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `"acpi" must be a boolean`},
		{"unknown hypervisor", `{"cluster": {"name": "c", "master_node": "n1", "hvparams": {"vmware": {}}}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `unknown hypervisor "vmware"`},
		{"bad beparams", `{"cluster": {"name": "c", "master_node": "n1", "beparams": {"minmem": 512, "maxmem": 256}}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "minmem must be between 1 and maxmem"},
		{"bad nic mode", `{"cluster": {"name": "c", "master_node": "n1", "nicparams": {"mode": "tunnel"}}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `invalid mode "tunnel"`},
		{"bad ipolicy", `{"cluster": {"name": "c", "master_node": "n1", "ipolicy": {"vcpu-ratio": "x"}}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "vcpu-ratio must be a non-negative number"},
		{"incomplete minmax", `{"cluster": {"name": "c", "master_node": "n1", "ipolicy": {"minmax": [{"min": {}, "max": {}}]}}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "missing parameter"},
		{"std outside minmax", `{"cluster": {"name": "c", "master_node": "n1", "ipolicy": {"std": {"memory-size": 64}}}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "memory-size 64 is not between the minimum 128"},
		{"group std outside minmax", file(`"groups": [{"name": "g", "ipolicy": {"std": {"disk-count": 99}}}]`), "group g: ipolicy std: disk-count 99"},
		{"bad mac prefix", `{"cluster": {"name": "c", "master_node": "n1", "mac_prefix": "zz:00:00"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "invalid mac_prefix"},
		{"bad netmask", `{"cluster": {"name": "c", "master_node": "n1", "master_netmask": 33}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "invalid master_netmask"},
		{"relative storage dir", `{"cluster": {"name": "c", "master_node": "n1", "file_storage_dir": "srv"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, "must be an absolute path"},
		{"bad alloc policy", file(`"groups": [{"name": "g", "alloc_policy": "sometimes"}]`), "alloc_policy must be one of"},
		{"duplicate group", file(`"groups": [{"name": "g"}, {"name": "g"}]`), "group g: declared twice"},
		{"bad os name", file(`"oses": [{"name": "no op"}]`), "invalid OS name"},
		{"unknown os", file(`"instances": [{"name": "i", "os": "debian", "pnode": "n1"}]`), `os "debian" is not declared`},
		{"unknown variant", file(`"oses": [{"name": "deb", "variants": ["a"]}]`, `"instances": [{"name": "i", "os": "deb+b", "pnode": "n1"}]`), `has no variant "b"`},
		{"unknown pnode", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n9"}]`), `pnode "n9" is not a declared node`},
		{"template not enabled", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "disk_template": "file", "disks": [{"size": 1}]}]`), `disk template "file" is not enabled`},
		{"diskless with disks", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "disk_template": "diskless", "disks": [{"size": 1}]}]`), "a diskless instance has no disks"},
		{"plain without disks", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "disk_template": "plain"}]`), "needs at least one disk"},
		{"zero disk", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "disk_template": "plain", "disks": [{"size": 0}]}]`), "size must be between 1"},
		{"drbd without snode", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "disk_template": "drbd", "disks": [{"size": 1}]}]`), "needs an snode"},
		{"snode without drbd", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "snode": "n1", "disk_template": "plain", "disks": [{"size": 1}]}]`), "snode is only valid with the drbd"},
		{"duplicate instance", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1"}, {"name": "i", "os": "noop", "pnode": "n1"}]`), "instance i: declared twice"},
		{"bad admin state", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "admin_state": "sleeping"}]`), "admin_state must be"},
		{"too much memory", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "beparams": {"maxmem": 999999, "minmem": 1}}]`), "running instances need 999999 MiB"},
		{"stopped instance may be big", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "admin_state": "down", "beparams": {"maxmem": 999999, "minmem": 1}}]`), ""},
		{"mfree too large", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1", "mtotal": 1000, "mnode": 100, "mfree": 950}]}`, "mfree must be between 0 and 900"},
		{"dfree too large", `{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1", "dtotal": 1000, "dfree": 1001}]}`, "dfree must be between 0 and 1000"},
		{"bad mac", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "nics": [{"mac": "00:11"}]}]`), `invalid mac "00:11"`},
		{"duplicate mac", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "nics": [{"mac": "aa:00:00:00:00:01"}, {"mac": "aa:00:00:00:00:01"}]}]`), "is already used"},
		{"too many nics", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "nics": [{},{},{},{},{},{},{},{},{}]}]`), "more than 8 NICs"},
		{"unknown network", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "nics": [{"network": "x"}]}]`), `unknown network "x"`},
		{"pool ip without network", file(`"instances": [{"name": "i", "os": "noop", "pnode": "n1", "nics": [{"ip": "pool"}]}]`), "needs a network"},
		{"network not connected", file(`"networks": [{"name": "net", "network": "10.0.0.0/24"}]`, `"instances": [{"name": "i", "os": "noop", "pnode": "n1", "nics": [{"network": "net"}]}]`), "is not connected to node group default"},
		{"ip outside network", file(`"networks": [{"name": "net", "network": "10.0.0.0/24", "connections": [{"group": "default", "link": "br1"}]}]`, `"instances": [{"name": "i", "os": "noop", "pnode": "n1", "nics": [{"network": "net", "ip": "10.1.0.5"}]}]`), "is not an address of network net"},
		{"ip reserved twice", file(`"networks": [{"name": "net", "network": "10.0.0.0/24", "gateway": "10.0.0.1", "connections": [{"group": "default", "link": "br1"}]}]`, `"instances": [{"name": "i", "os": "noop", "pnode": "n1", "nics": [{"network": "net", "ip": "10.0.0.1"}]}]`), "is already reserved"},
		{"network too big", file(`"networks": [{"name": "net", "network": "10.0.0.0/8"}]`), "prefix length must be between /16 and /30"},
		{"network host bits", file(`"networks": [{"name": "net", "network": "10.0.0.1/24"}]`), "has host bits set"},
		{"gateway outside", file(`"networks": [{"name": "net", "network": "10.0.0.0/24", "gateway": "10.0.1.1"}]`), "is not an address of"},
		{"connection to unknown group", file(`"networks": [{"name": "net", "network": "10.0.0.0/24", "connections": [{"group": "g9", "link": "br1"}]}]`), `connection to unknown group "g9"`},
		{"bad filter action", file(`"filters": [{"action": "EXPLODE"}]`), "action must be one of"},
		{"bad filter predicate", file(`"filters": [{"predicates": [["colour", "red"]]}]`), "kind must be jobid, opcode or reason"},
		{"export on unknown node", file(`"exports": [{"node": "n9", "name": "i"}]`), `unknown node "n9"`},
		{"unknown collector", `{"cluster": {"name": "c", "master_node": "n1", "enabled_data_collectors": {"x": true}}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`, `unknown data collector "x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFile([]byte(tc.data))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ParseFile: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseFile accepted the file; want an error containing %q", tc.want)
			}
			if f != nil {
				t.Errorf("ParseFile returned a file together with an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseFileDefaults(t *testing.T) {
	f, err := ParseFile([]byte(`{"cluster": {"name": "c", "master_node": "n1"}, "nodes": [{"name": "n1", "pip": "192.0.2.1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.build(fixedClock, newDeterministicIDs())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cluster
	if got := c.EnabledDiskTemplates; strings.Join(got, ",") != "drbd,plain" {
		t.Errorf("default enabled_disk_templates = %v", got)
	}
	if c.VolumeGroupName == nil || *c.VolumeGroupName != "xenvg" || c.DRBDUsermodeHelper == nil || *c.DRBDUsermodeHelper != "/bin/true" {
		t.Errorf("default vg/helper = %v/%v", c.VolumeGroupName, c.DRBDUsermodeHelper)
	}
	if c.CTime != 1700000000 || c.MTime != 1700000000 || c.SerialNo != 1 {
		t.Errorf("default ctime/mtime/serial = %v/%v/%v", c.CTime, c.MTime, c.SerialNo)
	}
	if !uuidRe.MatchString(c.UUID) {
		t.Errorf("generated uuid %q", c.UUID)
	}
	if len(cfg.Groups) != 1 || len(cfg.OSes) != 1 || cfg.OSes["noop"] == nil {
		t.Errorf("want the default group and the noop OS, got %d groups, OSes %v", len(cfg.Groups), cfg.OSes)
	}
	if got := c.IPolicy["disk-templates"]; strings.Join(got.([]string), ",") != "drbd,plain" {
		t.Errorf("ipolicy disk-templates = %v, want the enabled templates", got)
	}
	if c.NICParams["link"] != "xen-br0" || c.MasterNetdev != "xen-br0" || c.MasterNetmask != 32 {
		t.Errorf("nic/master defaults: %v %v %v", c.NICParams, c.MasterNetdev, c.MasterNetmask)
	}
}

// TestMasterCandidates checks the automatic candidate pool.
func TestMasterCandidates(t *testing.T) {
	data := `{"cluster": {"name": "c", "master_node": "n1", "candidate_pool_size": 2},
	  "nodes": [{"name": "n1", "pip": "192.0.2.1"}, {"name": "n2", "pip": "192.0.2.2"},
	            {"name": "n3", "pip": "192.0.2.3"}, {"name": "n4", "pip": "192.0.2.4", "master_candidate": true},
	            {"name": "n5", "pip": "192.0.2.5", "drained": true}, {"name": "n6", "pip": "192.0.2.6", "master_capable": false}]}`
	s := stateFromJSON(t, data)
	want := map[string]string{"n1": "master", "n2": "regular", "n3": "regular", "n4": "master-candidate", "n5": "drained", "n6": "regular"}
	for n, role := range want {
		got, err := s.NodeRole(n)
		if err != nil || got != role {
			t.Errorf("NodeRole(%s) = %q, %v; want %q", n, got, err, role)
		}
	}
	data = strings.Replace(data, `"candidate_pool_size": 2`, `"candidate_pool_size": 3`, 1)
	if got, _ := stateFromJSON(t, data).NodeRole("n2"); got != "master-candidate" {
		t.Errorf("with room in the pool n2 is %q, want master-candidate", got)
	}
}

func TestDemoClusterFile(t *testing.T) {
	data, err := os.ReadFile("../../../deploy/demo-cluster.json")
	if err != nil {
		t.Fatal(err)
	}
	s := stateFromJSON(t, string(data))
	if got := s.Names(ResNode); strings.Join(got, ",") != "node1.example.com,node2.example.com,node3.example.com" {
		t.Errorf("nodes = %v", got)
	}
	if s.Master() != "node1.example.com" {
		t.Errorf("master = %s", s.Master())
	}
	res, err := s.Query(ResInstance, []string{"name", "status", "disk_template"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]bool{}
	templates := map[string]bool{}
	for _, row := range res.Data {
		statuses[row[1].Value.(string)] = true
		templates[row[2].Value.(string)] = true
	}
	if !statuses[StatusRunning] || !statuses[StatusAdminDown] {
		t.Errorf("demo should have running and stopped instances: %v", statuses)
	}
	if len(templates) < 3 {
		t.Errorf("demo should show several disk templates: %v", templates)
	}
}

func TestParseFileBounds(t *testing.T) {
	var nets []string
	for i := 0; i < 65; i++ {
		nets = append(nets, fmt.Sprintf(`{"name": "n%d", "network": "10.%d.0.0/16"}`, i, i))
	}
	_, err := ParseFile([]byte(file(`"networks": [` + strings.Join(nets, ",") + `]`)))
	if err == nil || !strings.Contains(err.Error(), "more than 4194304 addresses") {
		t.Errorf("65 /16 networks: %v", err)
	}
	if _, err := ParseFile(make([]byte, maxFileBytes+1)); err == nil {
		t.Errorf("an oversized file was accepted")
	}
}
