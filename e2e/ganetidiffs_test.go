package e2e

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// Issue 14, section 2, over the legacy surface: Ganeti's messages for bad
// query arguments, ?lock=1, and rlib2's usb_devices conversion.

// legacyError sends one request and returns its status and unescaped
// message.
func legacyError(t *testing.T, method, url, ctype, body string) (int, string) {
	t.Helper()
	status, _, resp := do(t, method, url, ctype, body)
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(resp, &e); err != nil {
		t.Fatalf("%s %s: not an error body: %d %s", method, url, status, resp)
	}
	return status, htmlUnescape(e.Message)
}

// routeMethods calls fn for every legacy route and HTTP method whose
// request message has a field named field, with a path that matches it.
func routeMethods(t *testing.T, fn func(path, httpMethod string, fd protoreflect.FieldDescriptor)) {
	t.Helper()
	routes, err := gateway.LoadRoutes()
	if err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`\{[a-z_]+\}`)
	for _, r := range routes.All() {
		path := vars.ReplaceAllStringFunc(r.Template, func(v string) string {
			if v == "{job_id}" || v == "{disk_index}" {
				return "0"
			}
			return "inst1.example.com"
		})
		for httpMethod, m := range r.Methods {
			svc, name, _ := strings.Cut(strings.TrimPrefix(m.FullMethod, "/"), "/")
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
			if err != nil {
				t.Fatal(err)
			}
			fields := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name)).Input().Fields()
			for i := 0; i < fields.Len(); i++ {
				fn(path, httpMethod, fields.Get(i))
			}
		}
	}
}

// TestBadQueryArgumentMessages: an enum query argument with an unknown
// value fails as Ganeti's type check of the opcode parameter it sets;
// replace-disks' disk list has rlib2's message. Derived from the proto:
// every argument with the sets_param option is tried.
func TestBadQueryArgumentMessages(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	before := writeSnapshot(t, base)
	n := 0
	routeMethods(t, func(path, httpMethod string, fd protoreflect.FieldDescriptor) {
		param, _ := proto.GetExtension(fd.Options(), rapiv2.E_SetsParam).(string)
		if param == "" {
			return
		}
		n++
		status, msg := legacyError(t, httpMethod, base+path+"?"+fd.JSONName()+"=bogus", "", "")
		want := "Invalid body parameters: (\"Parameter '" + param + "' fails validation\", 'wrong_input')"
		if status != 400 || msg != want {
			t.Errorf("%s %s?%s=bogus: %d %q, want 400 %q", httpMethod, path, fd.JSONName(), status, msg, want)
		}
	})
	if n < 7 {
		t.Errorf("only %d enum query arguments tried", n)
	}
	for _, c := range []struct{ query, want string }{
		{"?mode=replace_on_primary&disks=a", "Invalid disk index passed: invalid literal for int() with base 10: 'a'"},
		{"?mode=replace_on_primary&disks=0,", "Invalid disk index passed: invalid literal for int() with base 10: ''"},
		{"?mode=replace_on_primary&disks=0,%201,x'y", "Invalid disk index passed: invalid literal for int() with base 10: \"x'y\""},
		{"?type=bogus", "Invalid body parameters: (\"Parameter 'OP_INSTANCE_REBOOT.reboot_type' fails validation\", 'wrong_input')"},
	} {
		path := "/2/instances/inst1.example.com/replace-disks"
		if strings.HasPrefix(c.query, "?type") {
			path = "/2/instances/inst1.example.com/reboot"
		}
		if status, msg := legacyError(t, "POST", base+path+c.query, "", ""); status != 400 || msg != c.want {
			t.Errorf("POST %s%s: %d %q, want 400 %q", path, c.query, status, msg, c.want)
		}
	}
	after := writeSnapshot(t, base)
	for p := range before {
		if before[p] != after[p] {
			t.Errorf("GET %s changed", p)
		}
	}
}

// TestSyncQueriesRefused: ?lock=1 on every read with a lock argument is
// Ganeti's "Sync queries are not allowed", checked before the lookup (an
// unknown name gets it too); 400 here, where Ganeti answers 500.
func TestSyncQueriesRefused(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	n := 0
	routeMethods(t, func(path, httpMethod string, fd protoreflect.FieldDescriptor) {
		if fd.Name() != "lock" {
			return
		}
		n++
		status, msg := legacyError(t, httpMethod, base+path+"?lock=1", "", "")
		if status != 400 || msg != "('Sync queries are not allowed', 'wrong_input')" {
			t.Errorf("%s %s?lock=1: %d %q", httpMethod, path, status, msg)
		}
		if status, _, body := do(t, httpMethod, base+strings.Replace(path, "inst1.example.com", "node1.example.com", 1)+"?lock=0", "", ""); status >= 500 {
			t.Errorf("%s %s?lock=0: %d %s", httpMethod, path, status, body)
		}
	})
	if n != 6 {
		t.Errorf("%d reads with a lock argument, want 6 (instances, instance, node, node role, group, network)", n)
	}
}

// TestUsbDevicesSeparators: rlib2 turns the spaces of the usb_devices
// hypervisor parameter into commas on creation and modification.
func TestUsbDevicesSeparators(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	const js = "application/json"
	submit := func(method, path, body string) map[string]any {
		t.Helper()
		status, _, resp := do(t, method, base+path, js, body)
		if status != 200 {
			t.Fatalf("%s %s: %d %s", method, path, status, resp)
		}
		id, err := strconv.ParseInt(strings.TrimSpace(string(resp)), 10, 64)
		if err != nil {
			t.Fatalf("job id %s", resp)
		}
		return waitJob(t, base, id)
	}
	usb := func(job map[string]any) any {
		ops, _ := job["ops"].([]any)
		op, _ := ops[0].(map[string]any)
		hv, _ := op["hvparams"].(map[string]any)
		return hv["usb_devices"]
	}
	create := `{"__version__": 1, "mode": "create", "instance_name": "usb.example.com", "os_type": "noop",
		"disk_template": "diskless", "disks": [], "nics": [{}], "pnode": "node1.example.com", "hypervisor": "fake",
		"beparams": {"memory": 128, "vcpus": 1}, "ip_check": false, "name_check": false, "start": false,
		"hvparams": {"usb_devices": "host:1 host:2  x"}}`
	job := submit("POST", "/2/instances", create)
	if got := usb(job); got != "host:1,host:2,,x" {
		t.Errorf("create: usb_devices %v", got)
	}
	// The fake hypervisor has no usb_devices parameter (Ganeti's answer).
	if got, _ := json.Marshal(job["opresult"]); string(got) != `[["HypervisorError",["Parameter 'usb_devices' is not supported"]]]` {
		t.Errorf("create: opresult %s", got)
	}
	create = strings.Replace(create, `"hvparams": {"usb_devices": "host:1 host:2  x"}`, `"hvparams": {}`, 1)
	if job := submit("POST", "/2/instances", create); job["status"] != "success" {
		t.Fatalf("create: %v", job["opresult"])
	}
	job = submit("PUT", "/2/instances/usb.example.com/modify", `{"hvparams": {"usb_devices": "a b"}}`)
	if got := usb(job); got != "a,b" {
		t.Errorf("modify: usb_devices %v", got)
	}
}
