package jobs

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
)

// obWrap puts any opcode message in an OpCode (the oneof member of its
// type).
func obWrap(t testing.TB, msg proto.Message) *rapiv2.OpCode {
	t.Helper()
	op := &rapiv2.OpCode{}
	r := op.ProtoReflect()
	fields := r.Descriptor().Oneofs().ByName("op").Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Message() != nil && fd.Message().FullName() == msg.ProtoReflect().Descriptor().FullName() {
			r.Set(fd, protoreflect.ValueOfMessage(msg.ProtoReflect()))
			return op
		}
	}
	t.Fatalf("no OpCode member for %T", msg)
	return nil
}

func obStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// obStep is one job of a table test: its opcodes, the expected job status
// and the JSON of the first failing (or the last) opcode's result.
type obStep struct {
	name   string
	ops    []proto.Message
	status string
	result string // JSON of OpResult[len-1]; "" = not checked
	check  func(t *testing.T, st *cluster.State)
}

func obRun(t *testing.T, steps []obStep) *env {
	t.Helper()
	v := newEnv(t, 3, nil)
	v.e.Start()
	for _, s := range steps {
		ops := make([]*rapiv2.OpCode, len(s.ops))
		for i, m := range s.ops {
			ops[i] = obWrap(t, m)
		}
		j := v.wait(v.submit(ops...))
		if j.Status != s.status {
			t.Fatalf("%s: status %s, want %s (results %s, log %s)", s.name, j.Status, s.status, jsonOf(t, j.OpResult), jsonOf(t, j.OpLog))
		}
		if s.result != "" {
			if got := jsonOf(t, j.OpResult[len(j.OpResult)-1]); got != s.result {
				t.Fatalf("%s: result\n got %s\nwant %s", s.name, got, s.result)
			}
		}
		if s.check != nil {
			s.check(t, v.model.State())
		}
	}
	return v
}

func obGet(t *testing.T, st *cluster.State, resource, name string, fields ...string) string {
	t.Helper()
	cells, err := st.Get(resource, name, fields)
	if err != nil {
		t.Fatalf("Get %s %s: %v", resource, name, err)
	}
	vals := make([]any, len(cells))
	for i, c := range cells {
		vals[i] = c.Value
	}
	return jsonOf(t, vals)
}

func obWant(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func obNodeUUID(t *testing.T, st *cluster.State, name string) string {
	t.Helper()
	u, _, err := st.NodeByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestGroupOpcodes(t *testing.T) {
	var defaultUUID string
	ps := proto.String
	obRun(t, []obStep{
		{name: "add (seq 178)", ops: []proto.Message{&rapiv2.OpGroupAdd{GroupName: ps("group2")}}, status: "success", result: "null",
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "group", "group2", "alloc_policy", "node_cnt", "serial_no", "custom_ipolicy"), `["preferred",0,1,{}]`)
				defaultUUID, _ = st.GroupUUID("default")
			}},
		{name: "duplicate (seq 180)", ops: []proto.Message{&rapiv2.OpGroupAdd{GroupName: ps("group2")}}, status: "error"},
		{name: "dry-run (seq 182)", ops: []proto.Message{&rapiv2.OpGroupAdd{GroupName: ps("group9"), DryRun: proto.Bool(true)}}, status: "success", result: "null",
			check: func(t *testing.T, st *cluster.State) {
				if _, ok := st.GroupUUID("group9"); ok {
					t.Fatal("dry-run created group9")
				}
			}},
		{name: "modify alloc_policy (seq 187)", ops: []proto.Message{&rapiv2.OpGroupSetParams{GroupName: ps("group2"),
			AllocPolicy: rapiv2.AllocPolicy_ALLOC_POLICY_LAST_RESORT.Enum()}}, status: "success", result: "[]",
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "group", "group2", "alloc_policy", "serial_no"), `["last_resort",2]`)
			}},
		{name: "modify ndparams", ops: []proto.Message{&rapiv2.OpGroupSetParams{GroupName: ps("group2"),
			Ndparams: obStruct(t, map[string]any{"spindle_count": 2, "oob_program": "/bin/oob"})}}, status: "success",
			result: `[["ndparams","{'oob_program': '/bin/oob', 'spindle_count': 2}"]]`,
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "group", "group2", "custom_ndparams"), `[{"oob_program":"/bin/oob","spindle_count":2}]`)
			}},
		{name: "modify nothing", ops: []proto.Message{&rapiv2.OpGroupSetParams{GroupName: ps("group2")}}, status: "error",
			result: `["OpPrereqError",["Please pass at least one modification","wrong_input"]]`},
		{name: "modify bad ndparam", ops: []proto.Message{&rapiv2.OpGroupSetParams{GroupName: ps("group2"),
			Ndparams: obStruct(t, map[string]any{"spindle_count": "x"})}}, status: "error"},
		{name: "rename (seq 191)", ops: []proto.Message{&rapiv2.OpGroupRename{GroupName: ps("group2"), NewName: ps("group3")}}, status: "success", result: `"group3"`},
		{name: "rename clash", ops: []proto.Message{&rapiv2.OpGroupRename{GroupName: ps("group3"), NewName: ps("default")}}, status: "error"},
		{name: "rename unknown", ops: []proto.Message{&rapiv2.OpGroupRename{GroupName: ps("nope"), NewName: ps("x")}}, status: "error",
			result: `["OpPrereqError",["Node group 'nope' not found","unknown_entity"]]`},
		{name: "assign node2", ops: []proto.Message{&rapiv2.OpGroupAssignNodes{GroupName: ps("group3"), Nodes: []string{"node2"}}}, status: "success", result: "null",
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "node", "node2.example.com", "group"), `["group3"]`)
				obWant(t, obGet(t, st, "group", "group3", "node_list"), `[["node2.example.com"]]`)
			}},
		{name: "remove non-empty", ops: []proto.Message{&rapiv2.OpGroupRemove{GroupName: ps("group3")}}, status: "error"},
		{name: "assign back", ops: []proto.Message{&rapiv2.OpGroupAssignNodes{GroupName: ps("default"), Nodes: []string{"node2.example.com"}}}, status: "success"},
		{name: "remove (seq 194)", ops: []proto.Message{&rapiv2.OpGroupRemove{GroupName: ps("group3")}}, status: "success", result: "null",
			check: func(t *testing.T, st *cluster.State) {
				if _, ok := st.GroupUUID("group3"); ok {
					t.Fatal("group3 still there")
				}
			}},
		{name: "remove the only group", ops: []proto.Message{&rapiv2.OpGroupRemove{GroupName: ps("default"), DryRun: proto.Bool(true)}}, status: "error"},
	})
	_ = defaultUUID
}

func TestGroupErrorsMessages(t *testing.T) {
	v := newEnv(t, 3, nil)
	v.e.Start()
	st := v.model.State()
	run := func(m proto.Message) *Job { return v.wait(v.submit(obWrap(t, m))) }
	run(&rapiv2.OpGroupAdd{GroupName: proto.String("group2")})
	g2, _ := v.model.State().GroupUUID("group2")
	j := run(&rapiv2.OpGroupAdd{GroupName: proto.String("group2")})
	obWant(t, jsonOf(t, j.OpResult[0]), `["OpPrereqError",["Desired group name 'group2' already exists as a node group (UUID: `+g2+`)","already_exists"]]`)

	// seq 196: the group's nodes by UUID, NiceSorted.
	uuids := []string{obNodeUUID(t, st, "node1"), obNodeUUID(t, st, "node2"), obNodeUUID(t, st, "node3")}
	cluster.NiceSort(uuids)
	j = run(&rapiv2.OpGroupRemove{GroupName: proto.String("default")})
	obWant(t, jsonOf(t, j.OpResult[0]), `["OpPrereqError",["Group 'default' not empty, has the following nodes: `+strings.Join(uuids, ", ")+`","wrong_state"]]`)

	run(&rapiv2.OpGroupRemove{GroupName: proto.String("group2")})
	j = run(&rapiv2.OpGroupRename{GroupName: proto.String("default"), NewName: proto.String("default")})
	def, _ := v.model.State().GroupUUID("default")
	obWant(t, jsonOf(t, j.OpResult[0]), `["OpPrereqError",["Desired new name 'default' clashes with existing node group default (UUID: `+def+`)","already_exists"]]`)
}

func TestNetworkOpcodes(t *testing.T) {
	ps := proto.String
	obRun(t, []obStep{
		// seq 198-200.
		{name: "add", ops: []proto.Message{&rapiv2.OpNetworkAdd{NetworkName: ps("net2"), Network: ps("10.99.0.0/24"),
			Gateway: ps("10.99.0.1"), ConflictsCheck: proto.Bool(true), Tags: []string{}}}, status: "success", result: "null",
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "network", "net2", "external_reservations", "free_count", "reserved_count", "gateway", "serial_no", "tags", "group_list"),
					`["10.99.0.0, 10.99.0.1, 10.99.0.255",253,3,"10.99.0.1",1,[],[]]`)
				obWant(t, obGet(t, st, "network", "net2", "map"), `["XX`+strings.Repeat(".", 253)+`X"]`)
			}},
		{name: "add duplicate", ops: []proto.Message{&rapiv2.OpNetworkAdd{NetworkName: ps("net2"), Network: ps("10.98.0.0/24")}}, status: "error"},
		{name: "add reserved + node IPs", ops: []proto.Message{&rapiv2.OpNetworkAdd{NetworkName: ps("net3"), Network: ps("192.0.2.0/28"),
			AddReservedIps: []string{"192.0.2.5"}, Tags: []string{"b", "a"}}}, status: "success",
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "network", "net3", "external_reservations", "free_count", "tags"),
					`["192.0.2.0, 192.0.2.5, 192.0.2.11, 192.0.2.12, 192.0.2.13, 192.0.2.15",10,["a","b"]]`)
			}},
		{name: "add too big", ops: []proto.Message{&rapiv2.OpNetworkAdd{NetworkName: ps("big"), Network: ps("10.0.0.0/8")}}, status: "error",
			result: `["OpExecError",["Cannot create IP address pool for network 'big': A big network with 16777216 host(s) is currently not supported. please specify at most a /16 network"]]`},
		{name: "set params", ops: []proto.Message{&rapiv2.OpNetworkSetParams{NetworkName: ps("net2"), AddReservedIps: []string{"10.99.0.7"},
			MacPrefix: ps("AA:BB:CC")}}, status: "success", result: "null",
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "network", "net2", "external_reservations", "mac_prefix", "serial_no"),
					`["10.99.0.0, 10.99.0.1, 10.99.0.7, 10.99.0.255","aa:bb:cc",2]`)
			}},
		{name: "set gateway and reservations", ops: []proto.Message{&rapiv2.OpNetworkSetParams{NetworkName: ps("net2"), Gateway: ps("10.99.0.2"),
			RemoveReservedIps: []string{"10.99.0.7"}}}, status: "error",
			result: `["OpPrereqError",["Cannot modify gateway and reservations at the same time","wrong_input"]]`},
		{name: "move gateway", ops: []proto.Message{&rapiv2.OpNetworkSetParams{NetworkName: ps("net2"), Gateway: ps("10.99.0.2")}}, status: "success",
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "network", "net2", "external_reservations", "gateway"), `["10.99.0.0, 10.99.0.2, 10.99.0.7, 10.99.0.255","10.99.0.2"]`)
			}},
		// seq 202-206.
		{name: "connect", ops: []proto.Message{&rapiv2.OpNetworkConnect{NetworkName: ps("net2"), GroupName: ps("default"),
			NetworkMode: rapiv2.NetworkMode_NETWORK_MODE_BRIDGED.Enum(), NetworkLink: ps("gntbr0"), NetworkVlan: ps(""), ConflictsCheck: proto.Bool(true)}},
			status: "success", result: "null",
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "network", "net2", "group_list", "group_cnt"), `[[["default","bridged","gntbr0",""]],1]`)
			}},
		{name: "remove connected", ops: []proto.Message{&rapiv2.OpNetworkRemove{NetworkName: ps("net2")}}, status: "error",
			result: `["OpPrereqError",["Network still connected","wrong_state"]]`},
		{name: "disconnect", ops: []proto.Message{&rapiv2.OpNetworkDisconnect{NetworkName: ps("net2"), GroupName: ps("default")}}, status: "success", result: "null",
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "network", "net2", "group_cnt"), `[0]`)
			}},
		{name: "disconnect again (warning only)", ops: []proto.Message{&rapiv2.OpNetworkDisconnect{NetworkName: ps("net2"), GroupName: ps("default")}}, status: "success"},
		{name: "remove", ops: []proto.Message{&rapiv2.OpNetworkRemove{NetworkName: ps("net2"), Force: proto.Bool(false)}}, status: "success", result: "null",
			check: func(t *testing.T, st *cluster.State) {
				if _, ok := st.NetworkUUID("net2"); ok {
					t.Fatal("net2 still there")
				}
			}},
		{name: "remove unknown", ops: []proto.Message{&rapiv2.OpNetworkRemove{NetworkName: ps("net2")}}, status: "error",
			result: `["OpPrereqError",["Network 'net2' not found","unknown_entity"]]`},
	})
}

func TestNodeOpcodes(t *testing.T) {
	ps, pb := proto.String, proto.Bool
	obRun(t, []obStep{
		// seq 212, 214: the master's role flags.
		{name: "master candidate on master", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node1.example.com"), Force: pb(false),
			MasterCandidate: pb(true), AutoPromote: pb(false)}}, status: "error",
			result: `["OpPrereqError",["The master role can be changed only via master-failover","wrong_input"]]`},
		{name: "drained=false on master", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node1.example.com"), Drained: pb(false)}}, status: "error",
			result: `["OpPrereqError",["The master role can be changed only via master-failover","wrong_input"]]`},
		// seq 216.
		{name: "ndparams", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node1.example.com"), Ndparams: obStruct(t, map[string]any{"spindle_count": 2})}},
			status: "success", result: "[]",
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "node", "node1", "custom_ndparams", "ndp/spindle_count"), `[{"spindle_count":2},2]`)
			}},
		{name: "global ndparam", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node2"), Ndparams: obStruct(t, map[string]any{"exclusive_storage": true})}},
			status: "error", result: `["OpPrereqError",["The following node parameters are global and cannot be customized at node level, please modify them at cluster or group level: exclusive_storage","wrong_input"]]`},
		{name: "no modification", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node2")}}, status: "error",
			result: `["OpPrereqError",["Please pass at least one modification","wrong_input"]]`},
		{name: "two states", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node2"), Drained: pb(true), Offline: pb(true)}}, status: "error",
			result: `["OpPrereqError",["Can't set the node into more than one state at the same time","wrong_input"]]`},
		{name: "node3 to regular", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node3"), MasterCandidate: pb(false)}}, status: "success",
			result: `[["master_candidate","False"]]`,
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "node", "node3", "role"), `["R"]`)
			}},
		{name: "drain a candidate without auto_promote", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node2"), Drained: pb(true)}}, status: "error",
			result: `["OpPrereqError",["Not enough master candidates, please pass auto promote option to allow promotion (--auto-promote or RAPI auto_promote=True)","wrong_state"]]`},
		{name: "drain with auto_promote", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node2"), Drained: pb(true), AutoPromote: pb(true)}}, status: "success",
			result: `[["master_candidate","False"],["drained","True"]]`,
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "node", "node2", "role", "drained", "master_candidate"), `["D",true,false]`)
				obWant(t, obGet(t, st, "node", "node3", "role"), `["C"]`)
			}},
		{name: "undrain (auto-promotes back)", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node2"), Drained: pb(false)}}, status: "success",
			result: `[["master_candidate","True"],["drained","False"]]`,
			check: func(t *testing.T, st *cluster.State) {
				obWant(t, obGet(t, st, "node", "node2", "role"), `["C"]`)
			}},
		{name: "vm_capable off with instances", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node2"), VmCapable: pb(false)}}, status: "error",
			result: `["OpPrereqError",["Node node2.example.com hosts instances, cannot unset the vm_capable flag","wrong_state"]]`},
		// The message names the node as ExpandNames wrote it back: its full name.
		{name: "powered without oob", ops: []proto.Message{&rapiv2.OpNodeSetParams{NodeName: ps("node2"), Powered: pb(true), MasterCapable: pb(true)}}, status: "error",
			result: `["OpPrereqError",["Unable to change powered state for node node2.example.com as it does not support out-of-band handling","wrong_state"]]`},
		// seq 208.
		{name: "query storage", ops: []proto.Message{&rapiv2.OpNodeQueryStorage{Nodes: []string{"node1.example.com"},
			OutputFields: []string{"name", "size", "used", "free"}, StorageType: rapiv2.StorageType_STORAGE_TYPE_FILE.Enum()}}, status: "success",
			result: `[["/srv/ganeti/file-storage",1048576,0,1048576]]`},
		{name: "query storage bad field", ops: []proto.Message{&rapiv2.OpNodeQueryStorage{OutputFields: []string{"name", "bogus"},
			StorageType: rapiv2.StorageType_STORAGE_TYPE_FILE.Enum()}}, status: "error",
			result: `["OpPrereqError",["Unknown output fields selected: bogus","wrong_input"]]`},
		// seq 219.
		{name: "evacuate all", ops: []proto.Message{&rapiv2.OpNodeEvacuate{NodeName: ps("node1.example.com"), Iallocator: ps("hail"),
			Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_ALL.Enum(), EarlyRelease: pb(false), DryRun: pb(true)}}, status: "error",
			result: `["OpPrereqError",["Due to an issue with the iallocator interface it is not possible to evacuate all instances at once; specify explicitly whether to evacuate primary or secondary instances","wrong_input"]]`},
		{name: "evacuate secondaries (none)", ops: []proto.Message{&rapiv2.OpNodeEvacuate{NodeName: ps("node1.example.com"), Iallocator: ps("hail"),
			Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_SECONDARY_ONLY.Enum()}}, status: "success", result: `{"jobs":[]}`},
		{name: "evacuate primaries", ops: []proto.Message{&rapiv2.OpNodeEvacuate{NodeName: ps("node1.example.com"), Iallocator: ps("hail"),
			Mode: rapiv2.NodeEvacMode_NODE_EVAC_MODE_PRIMARY_ONLY.Enum()}}, status: "success"},
		{name: "migrate with instances", ops: []proto.Message{&rapiv2.OpNodeMigrate{NodeName: ps("node1.example.com")}}, status: "success"},
	})
}

func TestClusterOpcodes(t *testing.T) {
	obRun(t, []obStep{
		// seq 283, 285.
		{name: "redistribute", ops: []proto.Message{&rapiv2.OpClusterRedistConf{}}, status: "success", result: "null"},
		{name: "candidate_pool_size", ops: []proto.Message{&rapiv2.OpClusterSetParams{Force: proto.Bool(false), CandidatePoolSize: proto.Int64(10)}},
			status: "success", result: "null",
			check: func(t *testing.T, st *cluster.State) {
				if got := st.Info()["candidate_pool_size"]; jsonOf(t, got) != "10" {
					t.Fatalf("candidate_pool_size %v", got)
				}
			}},
		{name: "pool size 0", ops: []proto.Message{&rapiv2.OpClusterSetParams{CandidatePoolSize: proto.Int64(0)}}, status: "error",
			result: `["OpPrereqError",["At least one master candidate needed","wrong_input"]]`},
		{name: "beparams + ndparams", ops: []proto.Message{&rapiv2.OpClusterSetParams{Beparams: obStruct(t, map[string]any{"maxmem": 256}),
			Ndparams: obStruct(t, map[string]any{"spindle_count": 3})}}, status: "success",
			check: func(t *testing.T, st *cluster.State) {
				info := st.Info()
				obWant(t, jsonOf(t, info["beparams"].(map[string]any)["default"].(map[string]any)["maxmem"]), "256")
				obWant(t, jsonOf(t, info["ndparams"].(map[string]any)["spindle_count"]), "3")
				obWant(t, obGet(t, st, "node", "node3", "ndp/spindle_count"), "[3]")
			}},
		{name: "disable used template", ops: []proto.Message{&rapiv2.OpClusterSetParams{
			EnabledDiskTemplates: []rapiv2.DiskTemplate{rapiv2.DiskTemplate_DISK_TEMPLATE_FILE}}}, status: "error",
			result: `["OpPrereqError",["Cannot disable disk template 'diskless', because there is at least one instance using it.","wrong_state"]]`},
		{name: "unsupported", ops: []proto.Message{&rapiv2.OpClusterSetParams{DrbdHelper: proto.String("/bin/true")}}, status: "error"},
	})
}
