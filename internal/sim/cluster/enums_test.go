package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// TestEnumerationsAreGanetis: every enumeration the model checks values
// against is Ganeti's (constants.json), in Ganeti's order: those derived
// from the proto's enums and the ones written here.
func TestEnumerationsAreGanetis(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "spec", "constants.json"))
	if err != nil {
		t.Fatal(err)
	}
	var consts map[string]json.RawMessage
	if err := json.Unmarshal(data, &consts); err != nil {
		t.Fatal(err)
	}
	codes := make([]string, 0, len(errs.Codes))
	for _, c := range errs.Codes {
		codes = append(codes, string(c))
	}
	slices.Sort(codes) // constants.json lists them sorted
	for _, tc := range []struct {
		key   string
		have  []string
		proto protoreflect.EnumDescriptor // nil: the proto has no such enum
	}{
		{"hypervisors", Hypervisors, rapiv2.Hypervisor(0).Descriptor()},
		{"disk_templates", DiskTemplates, rapiv2.DiskTemplate(0).Descriptor()},
		{"storage_types", StorageTypes, rapiv2.StorageType(0).Descriptor()},
		{"alloc_policies", allocPolicies, rapiv2.AllocPolicy(0).Descriptor()},
		{"nic_modes", nicModes, rapiv2.NetworkMode(0).Descriptor()},
		{"ssh_key_types", sshKeyTypes, rapiv2.SshKeyType(0).Descriptor()},
		{"instance_admin_states", adminStates, nil},
		{"disk_access_modes", diskModes, nil},
		{"import_export_compression", compressTools, nil},
		{"error_codes_all", codes, rapiv2.ErrorCode(0).Descriptor()},
	} {
		if tc.proto != nil {
			p := legacyenum.Strings(tc.proto)
			h := slices.Clone(tc.have)
			slices.Sort(p)
			slices.Sort(h)
			if !slices.Equal(h, p) {
				t.Errorf("%s: have %q, the proto's %s %q", tc.key, tc.have, tc.proto.FullName(), p)
			}
		}
		var want []string
		if err := json.Unmarshal(consts[tc.key], &want); err != nil {
			t.Fatalf("constants.json %s: %v", tc.key, err)
		}
		if !slices.Equal(tc.have, want) {
			t.Errorf("%s: have %q, Ganeti has %q", tc.key, tc.have, want)
		}
	}
}
