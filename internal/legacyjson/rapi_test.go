package legacyjson

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// Tests with the real RAPI types of gen/go/ganeti/rapi/v2.

func TestRAPIListNodes(t *testing.T) {
	node := &rapiv2.Node{Name: "node1", Role: "M", SecondaryIp: proto.String("192.0.2.2")}
	nodeJSON := mustMarshal(t, Marshaler{}, node)
	if !strings.HasPrefix(nodeJSON, `{"name":"node1",`) || !strings.HasSuffix(nodeJSON, `"tags":[],"secondary_ip":"192.0.2.2"}`) {
		t.Errorf("node = %s", nodeJSON)
	}
	// secondary_ip is (empty) OMIT: only there when set.
	noSip := mustMarshal(t, Marshaler{}, &rapiv2.Node{Name: "node1"})
	if strings.Contains(noSip, "secondary_ip") || !strings.HasSuffix(noSip, `"tags":[]}`) {
		t.Errorf("node without secondary_ip = %s", noSip)
	}
	runEncodeCases(t, []encodeCase{
		{"empty", &rapiv2.ListNodesResponse{}, `[]`},
		{"refs", &rapiv2.ListNodesResponse{Refs: []*rapiv2.ItemRef{{Id: "node1", Uri: "/2/nodes/node1"}}},
			`[{"id":"node1","uri":"/2/nodes/node1"}]`},
		{"bulk", &rapiv2.ListNodesResponse{Nodes: []*rapiv2.Node{node}}, `[` + nodeJSON + `]`},
	})
	var back rapiv2.ListNodesResponse
	checkErr(t, decodeBody(&back, `[{"id": "node1", "uri": "/2/nodes/node1"}]`), "")
	equalProto(t, &back, &rapiv2.ListNodesResponse{Refs: []*rapiv2.ItemRef{{Id: "node1", Uri: "/2/nodes/node1"}}})
}

func TestRAPIJob(t *testing.T) {
	runEncodeCases(t, []encodeCase{
		// An unknown job: every field but the id null, as Ganeti answers
		// GET /2/jobs/999999 (e2e golden capture 241); the repeated fields
		// are (empty) LEGACY_EMPTY_NULL.
		{"all unset", &rapiv2.Job{Id: 999999},
			`{"id":999999,"ops":null,"status":null,"summary":null,"opstatus":null,"received_ts":null,"start_ts":null,"end_ts":null,"oplog":null,"opresult":null}`},
	})

	status := rapiv2.JobStatus_JOB_STATUS_ERROR
	job := &rapiv2.Job{
		Id: 7,
		Ops: []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{
			Kind: rapiv2.TagKind_TAG_KIND_CLUSTER.Enum(), Tags: []string{"a"}, Priority: rapiv2.OpPriority_OP_PRIORITY_NORMAL.Enum(),
		}}}},
		Status:     &status,
		Summary:    []string{"TAGS_SET(a)"},
		Opstatus:   []rapiv2.JobStatus{rapiv2.JobStatus_JOB_STATUS_ERROR},
		ReceivedTs: &rapiv2.JobTimestamp{Seconds: 1795376099, Microseconds: 180409},
		Oplog: []*rapiv2.OpLog{{Entries: []*rapiv2.LogEntry{{Serial: 1, Timestamp: &rapiv2.JobTimestamp{Seconds: 1795376100},
			LogType: "message", Message: structpb.NewStringValue("Ooops")}}}},
		Opresult: []*rapiv2.OpResult{{Result: &rapiv2.OpResult_Error{Error: &rapiv2.OpError{ErrorClass: "OpExecError",
			Args: &rapiv2.OpErrorArgs{Message: "Ooops"}}}}},
	}
	got := mustMarshal(t, Marshaler{}, job)
	for _, frag := range []string{
		`{"id":7,"ops":[{"OP_ID":"OP_TAGS_SET","kind":"cluster","tags":["a"],`,
		`"status":"error","summary":["TAGS_SET(a)"],"opstatus":["error"],"received_ts":[1795376099,180409],"start_ts":null,"end_ts":null,`,
		`"oplog":[[[1,[1795376100,0],"message","Ooops"]]],"opresult":[["OpExecError",["Ooops"]]]}`,
	} {
		if !strings.Contains(got, frag) {
			t.Errorf("missing %s in\n%s", frag, got)
		}
	}

	// The job decodes back (the opcode's unset parameters, all nullable but
	// priority, are null, which decodes to unset).
	var back rapiv2.Job
	if err := decodeBody(&back, got); err != nil {
		t.Fatal(err)
	}
	equalProto(t, &back, job)
}

func TestRAPIQueryResponse(t *testing.T) {
	resp := &rapiv2.QueryResponse{
		Fields: []*rapiv2.FieldDefinition{{Name: "name", Title: "Node", Kind: rapiv2.QueryFieldKind_QUERY_FIELD_KIND_TEXT, Doc: "Node name"}},
		Data: []*rapiv2.QueryRow{
			{Cells: []*rapiv2.QueryCell{{Status: rapiv2.QueryResultStatus_QUERY_RESULT_STATUS_NORMAL, Value: structpb.NewStringValue("x")},
				{Status: rapiv2.QueryResultStatus_QUERY_RESULT_STATUS_NORMAL, Value: structpb.NewNumberValue(1)}}},
			{Cells: []*rapiv2.QueryCell{{Status: rapiv2.QueryResultStatus_QUERY_RESULT_STATUS_NODATA}}},
			{},
		},
	}
	want := `{"fields":[{"name":"name","title":"Node","kind":"text","doc":"Node name"}],"data":[[[0,"x"],[0,1]],[[2,null]],[]]}`
	runEncodeCases(t, []encodeCase{{"query", resp, want}})
	var back rapiv2.QueryResponse
	checkErr(t, decodeBody(&back, want), "")
	equalProto(t, &back, resp)
}

func TestRAPICancelJob(t *testing.T) {
	runEncodeCases(t, []encodeCase{
		{"not found", &rapiv2.CancelJobResponse{Message: "Job 1 not found in queue"}, `[false,"Job 1 not found in queue"]`},
	})
	var back rapiv2.CancelJobResponse
	checkErr(t, decodeBody(&back, `[true, "Job 2 canceled"]`), "")
	equalProto(t, &back, &rapiv2.CancelJobResponse{Success: true, Message: "Job 2 canceled"})
	checkErr(t, decodeBody(&back, `[true]`), `Invalid body contents`)
}

func TestRAPIInstanceConsole(t *testing.T) {
	runEncodeCases(t, []encodeCase{
		{"msg", &rapiv2.InstanceConsole{Instance: "inst1", Kind: "msg", Message: proto.String("Instance inst1 is not running")},
			`{"instance":"inst1","kind":"msg","message":"Instance inst1 is not running"}`},
		{"ssh", &rapiv2.InstanceConsole{Instance: "inst1", Kind: "ssh", Host: proto.String("node1"), User: proto.String("root"),
			Command: []string{"xl", "console", "inst1"}},
			`{"instance":"inst1","kind":"ssh","host":"node1","user":"root","command":["xl","console","inst1"]}`},
	})
}

func TestRAPICreateInstanceBody(t *testing.T) {
	body := `{"__version__": 1, "mode": "create", "instance_name": "inst1.example.com", "disk_template": "plain",
		"disks": [{"size": 1024}], "nics": [{"ip": "192.0.2.10"}], "os_type": "debootstrap+default", "pnode": "node1"}`
	var got rapiv2.CreateInstanceBody
	checkErr(t, decodeBody(&got, body), "")
	if got.GetVersion() != 1 || got.GetOp().GetInstanceName() != "inst1.example.com" ||
		got.GetOp().GetMode() != rapiv2.InstanceCreateMode_INSTANCE_CREATE_MODE_CREATE ||
		got.GetOp().GetDiskTemplate() != rapiv2.DiskTemplate_DISK_TEMPLATE_PLAIN ||
		len(got.GetOp().GetDisks()) != 1 || got.GetOp().GetNics()[0].GetIp() != "192.0.2.10" || got.GetOp().GetPnode() != "node1" {
		t.Errorf("decoded %v", &got)
	}
	checkErr(t, CheckRequired(&got), "")

	checkErr(t, decodeBody(&rapiv2.CreateInstanceBody{}, `{"__version__": 1, "mode": "create", "bogus": 1}`),
		`Invalid body parameters: Object OpInstanceCreate doesn't support the parameter 'bogus'`)
	checkErr(t, decodeBody(&rapiv2.CreateInstanceBody{}, `{"__version__": 1, "mode": "nope"}`),
		`Invalid body parameters: ("Parameter 'OP_INSTANCE_CREATE.mode' fails validation", 'wrong_input')`)
	var partial rapiv2.CreateInstanceBody
	checkErr(t, decodeBody(&partial, `{"__version__": 1, "mode": "create"}`), "")
	checkErr(t, CheckRequired(&partial), `Invalid body parameters: ("Parameter 'OP_INSTANCE_CREATE.instance_name' fails validation", 'wrong_input')`)

	// Through the grpc-gateway body path: Decode(&protoReq.Body).
	var req rapiv2.CreateInstanceRequest
	if err := (Marshaler{}).NewDecoder(strings.NewReader(body)).Decode(&req.Body); err != nil {
		t.Fatal(err)
	}
	equalProto(t, req.Body, &got)
}

func TestRAPIFilterRuleSpec(t *testing.T) {
	var spec rapiv2.FilterRuleSpec
	checkErr(t, decodeBody(&spec, `{"priority": 1, "predicates": [["opcode", ["=", "OP_ID", "OP_TAGS_SET"]]], "action": "REJECT", "reason": []}`), "")
	if spec.GetPriority() != 1 || spec.GetAction().GetStringValue() != "REJECT" || len(spec.GetPredicates().GetValues()) != 1 {
		t.Errorf("decoded %v", &spec)
	}
	checkErr(t, decodeBody(&rapiv2.FilterRuleSpec{}, `{"priority": 1, "watermark": 5}`),
		`Invalid body parameters: filter rule doesn't support the parameter 'watermark'`)
	// Through the grpc-gateway body path: Decode(&protoReq.Rule).
	var req rapiv2.AddFilterRequest
	checkErr(t, (Marshaler{}).NewDecoder(strings.NewReader(`{"uuid": "x"}`)).Decode(&req.Rule),
		`Invalid body parameters: filter rule doesn't support the parameter 'uuid'`)
}

func TestRAPIOpResult(t *testing.T) {
	unknown := rapiv2.ErrorCode_ERROR_CODE_UNKNOWN_ENTITY
	errResult := &rapiv2.OpResult{Result: &rapiv2.OpResult_Error{Error: &rapiv2.OpError{ErrorClass: "OpPrereqError",
		Args: &rapiv2.OpErrorArgs{Message: "Instance 'x' not known", Code: &unknown}}}}
	list, _ := structpb.NewValue([]any{"a", []any{"b"}})
	for _, tc := range []struct {
		name string
		msg  *rapiv2.OpResult
		json string
	}{
		{"unset", &rapiv2.OpResult{}, `null`},
		{"error", errResult, `["OpPrereqError",["Instance 'x' not known","unknown_entity"]]`},
		{"error without code", &rapiv2.OpResult{Result: &rapiv2.OpResult_Error{Error: &rapiv2.OpError{ErrorClass: "OpExecError",
			Args: &rapiv2.OpErrorArgs{Message: "Preceding opcode failed"}}}}, `["OpExecError",["Preceding opcode failed"]]`},
		{"canceled", &rapiv2.OpResult{Result: &rapiv2.OpResult_Canceled{Canceled: "Job canceled by request"}}, `"Job canceled by request"`},
		{"string value", &rapiv2.OpResult{Result: &rapiv2.OpResult_Value{Value: structpb.NewStringValue("done")}}, `"done"`},
		{"number value", &rapiv2.OpResult{Result: &rapiv2.OpResult_Value{Value: structpb.NewNumberValue(3)}}, `3`},
		{"list value not an error", &rapiv2.OpResult{Result: &rapiv2.OpResult_Value{Value: list}}, `["a",["b"]]`},
		{"object value", &rapiv2.OpResult{Result: &rapiv2.OpResult_Value{Value: structpb.NewStructValue(&structpb.Struct{
			Fields: map[string]*structpb.Value{"jobs": structpb.NewListValue(&structpb.ListValue{})}})}}, `{"jobs":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustMarshal(t, Marshaler{}, tc.msg); got != tc.json {
				t.Errorf("encode: got %s, want %s", got, tc.json)
			}
			var back rapiv2.OpResult
			checkErr(t, decodeBody(&back, tc.json), "")
			equalProto(t, &back, tc.msg)
		})
	}
	// An error tuple whose args do not fit OpErrorArgs stays a value.
	var odd rapiv2.OpResult
	checkErr(t, decodeBody(&odd, `["OpExecError", [1, 2, 3]]`), "")
	if odd.GetValue() == nil {
		t.Errorf("odd error args: %v", &odd)
	}

	// OpError / OpErrorArgs on their own.
	var e rapiv2.OpError
	checkErr(t, decodeBody(&e, `["OpPrereqError", ["msg", "unknown_entity"]]`), "")
	equalProto(t, &e, &rapiv2.OpError{ErrorClass: "OpPrereqError", Args: &rapiv2.OpErrorArgs{Message: "msg", Code: &unknown}})
	var a rapiv2.OpErrorArgs
	checkErr(t, decodeBody(&a, `["Preceding opcode failed"]`), "")
	equalProto(t, &a, &rapiv2.OpErrorArgs{Message: "Preceding opcode failed"})
	runEncodeCases(t, []encodeCase{
		{"args", &rapiv2.OpErrorArgs{Message: "Instance 'x' not known", Code: &unknown}, `["Instance 'x' not known","unknown_entity"]`},
		{"args without code", &rapiv2.OpErrorArgs{Message: "Preceding opcode failed"}, `["Preceding opcode failed"]`},
	})
}

func TestRAPIOpCode(t *testing.T) {
	var op rapiv2.OpCode
	checkErr(t, decodeBody(&op, `{"OP_ID": "OP_TAGS_SET", "kind": "node", "name": "node1", "tags": ["a"]}`), "")
	equalProto(t, &op, &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{
		Kind: rapiv2.TagKind_TAG_KIND_NODE.Enum(), Name: proto.String("node1"), Tags: []string{"a"}}}})
	checkErr(t, decodeBody(&rapiv2.OpCode{}, `{"OP_ID": "OP_NOPE"}`), `Invalid body parameters: unknown opcode 'OP_NOPE'`)
	checkErr(t, decodeBody(&rapiv2.OpCode{}, `{"kind": "node"}`), `Invalid body parameters: missing OP_ID`)
	checkErr(t, decodeBody(&rapiv2.OpCode{}, `{"OP_ID": "OP_TAGS_SET", "bogus": 1}`),
		`Invalid body parameters: Object OpTagsSet doesn't support the parameter 'bogus'`)
}

func TestRAPIDecodeIntoFieldPointer(t *testing.T) {
	// grpc-gateway: marshaler.NewDecoder(req.Body).Decode(&protoReq.Op),
	// protoReq.Op a nil *rapiv2.OpInstanceRename.
	var r rapiv2.RenameInstanceRequest
	dec := Marshaler{}.NewDecoder(strings.NewReader(`{"new_name": "inst2", "name_check": false}`))
	if err := dec.Decode(&r.Op); err != nil {
		t.Fatal(err)
	}
	if r.Op == nil || r.Op.GetNewName() != "inst2" || r.Op.NameCheck == nil || r.Op.GetNameCheck() {
		t.Errorf("Op = %v", r.Op)
	}
	// An opcode error comes back as a DecodeError.
	var r2 rapiv2.RenameInstanceRequest
	checkErr(t, Marshaler{}.NewDecoder(strings.NewReader(`{"bogus": 1}`)).Decode(&r2.Op),
		`Invalid body parameters: Object OpInstanceRename doesn't support the parameter 'bogus'`)
	// An existing message is replaced, not merged into.
	r.Op = &rapiv2.OpInstanceRename{InstanceName: proto.String("old")}
	checkErr(t, Marshaler{}.Unmarshal([]byte(`{"new_name": "x"}`), &r.Op), "")
	if r.Op.GetInstanceName() != "" || r.Op.GetNewName() != "x" {
		t.Errorf("Op = %v", r.Op)
	}
}

func TestRAPINilMessage(t *testing.T) {
	for _, v := range []any{(*rapiv2.JobChange)(nil), (*rapiv2.OpResult)(nil), (*rapiv2.ListNodesResponse)(nil), (*rapiv2.OpCode)(nil)} {
		if got := mustMarshal(t, Marshaler{}, v); got != "null" {
			t.Errorf("Marshal(%T nil) = %s", v, got)
		}
		if got := mustMarshal(t, Marshaler{PythonStyle: true}, v); got != "null" {
			t.Errorf("Marshal(%T nil, Python style) = %s", v, got)
		}
		if got, err := ToValue(v.(proto.Message)); err != nil || got != nil {
			t.Errorf("ToValue(%T nil) = %v, %v", v, got, err)
		}
	}
	// WaitJobChangeResponse without a change: the gateway marshals GetChange().
	if got := mustMarshal(t, Marshaler{}, (&rapiv2.WaitJobChangeResponse{}).GetChange()); got != "null" {
		t.Errorf("no change = %s", got)
	}
}
