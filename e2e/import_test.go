package e2e

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// TestLocalExportImport exports an instance to a node (removing it) over
// the legacy surface, then creates it again with POST /2/instances in mode
// import, giving neither disks nor NICs nor OS: they come from the export.
func TestLocalExportImport(t *testing.T) {
	base := inProcess(t, "testdata/conformance-cluster.json")
	const name = "build1.example.com"
	get := func() map[string]any {
		t.Helper()
		status, _, body := do(t, "GET", base+"/2/instances/"+name, "", "")
		if status != 200 {
			t.Fatalf("GET instance: %d %s", status, body)
		}
		var inst map[string]any
		if err := json.Unmarshal(body, &inst); err != nil {
			t.Fatal(err)
		}
		return inst
	}
	submit := func(method, path, body string) map[string]any {
		t.Helper()
		status, _, resp := do(t, method, base+path, "application/json", body)
		var id int64
		if status != 200 || json.Unmarshal(resp, &id) != nil {
			t.Fatalf("%s %s: %d %s", method, path, status, resp)
		}
		return waitJob(t, base, id)
	}
	before := get()
	for _, k := range []string{"os", "disk.sizes", "nic.macs"} {
		if before[k] == nil {
			t.Fatalf("instance has no %s: %v", k, before)
		}
	}
	job := submit("PUT", "/2/instances/"+name+"/export", `{"mode": "local", "destination": "node5.example.com", "remove_instance": true}`)
	if job["status"] != "success" {
		t.Fatalf("export: %v", job["opresult"])
	}
	if status, _, _ := do(t, "GET", base+"/2/instances/"+name, "", ""); status != 404 {
		t.Fatalf("the exported instance was not removed (%d)", status)
	}
	job = submit("POST", "/2/instances", fmt.Sprintf(`{"__version__": 1, "mode": "import", "name": %q, "disk_template": "file",
		"disks": [], "nics": [], "pnode": "node6.example.com", "src_path": %q, "name_check": false, "ip_check": false}`, name, name))
	if job["status"] != "success" {
		t.Fatalf("import: %v", job["opresult"])
	}
	if got, want := fmt.Sprint(job["opresult"]), "[[node6.example.com]]"; got != want {
		t.Errorf("import result %s, want %s", got, want)
	}
	after := get()
	for _, k := range []string{"os", "disk.sizes", "disk_template", "nic.macs", "nic.ips", "hypervisor", "tags"} {
		if !reflect.DeepEqual(after[k], before[k]) {
			t.Errorf("%s: %v after the import, %v before the export", k, after[k], before[k])
		}
	}
	if after["pnode"] != "node6.example.com" {
		t.Errorf("pnode %v", after["pnode"])
	}
}
