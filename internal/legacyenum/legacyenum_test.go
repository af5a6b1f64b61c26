package legacyenum

import (
	"slices"
	"testing"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestSpellings(t *testing.T) {
	dt := rapiv2.DiskTemplate(0).Descriptor()
	prio := rapiv2.OpPriority(0).Descriptor()
	drbd, ok := Parse(dt, "drbd")
	if !ok {
		t.Fatal(`Parse(DiskTemplate, "drbd") failed`)
	}
	for _, tc := range []struct {
		name    string
		ed      protoreflect.EnumDescriptor
		n       protoreflect.EnumNumber
		value   any
		str     string
		hasSpel bool
	}{
		{"string value", dt, drbd, "drbd", "drbd", true},
		{"zero value", dt, 0, nil, "", false},
		{"unknown number", dt, 999, nil, "", false},
		{"number value", prio, protoreflect.EnumNumber(rapiv2.OpPriority_OP_PRIORITY_HIGH), int64(-10), "-10", true},
	} {
		v, ok := Value(tc.ed, tc.n)
		if ok != tc.hasSpel || v != tc.value {
			t.Errorf("%s: Value = %v, %v; want %v, %v", tc.name, v, ok, tc.value, tc.hasSpel)
		}
		s, ok := String(tc.ed, tc.n)
		if ok != tc.hasSpel || s != tc.str {
			t.Errorf("%s: String = %q, %v; want %q, %v", tc.name, s, ok, tc.str, tc.hasSpel)
		}
	}
	if n, ok := Num(prio, protoreflect.EnumNumber(rapiv2.OpPriority_OP_PRIORITY_LOW)); !ok || n != 10 {
		t.Errorf("Num(low) = %d, %v", n, ok)
	}
	if n, ok := ParseNum(prio, 0); !ok || n != protoreflect.EnumNumber(rapiv2.OpPriority_OP_PRIORITY_NORMAL) {
		t.Errorf("ParseNum(0) = %v, %v", n, ok)
	}
	if _, ok := Parse(dt, "DISK_TEMPLATE_DRBD"); ok {
		t.Error("the proto name parsed as a legacy spelling")
	}
	if got := Strings(rapiv2.Hypervisor(0).Descriptor()); !slices.Equal(got, []string{"chroot", "fake", "kvm", "lxc", "xen-hvm", "xen-pvm"}) {
		t.Errorf("Strings(Hypervisor) = %v", got)
	}
	var unset *rapiv2.DiskTemplate
	if s, ok := Of(unset); ok || s != "" {
		t.Errorf("Of(typed nil) = %q, %v", s, ok)
	}
	if s, ok := Of(rapiv2.DiskTemplate(drbd)); !ok || s != "drbd" {
		t.Errorf("Of(drbd) = %q, %v", s, ok)
	}
}
