package gateway

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestServiceTableIsTheProto: the table of services holds every service of
// the API's proto package, once.
func TestServiceTableIsTheProto(t *testing.T) {
	want := map[string]bool{}
	protoregistry.GlobalFiles.RangeFilesByPackage("ganeti.rapi.v2", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			want[string(fd.Services().Get(i).FullName())] = true
		}
		return true
	})
	if len(want) == 0 {
		t.Fatal("no services in package ganeti.rapi.v2")
	}
	seen := map[string]bool{}
	for _, svc := range apiServices {
		name := svc.desc.ServiceName
		if seen[name] {
			t.Errorf("%s is in the table twice", name)
		}
		seen[name] = true
		if !want[name] {
			t.Errorf("%s is in the table, not in the proto", name)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s is in the proto, not in the table", name)
		}
	}
}
