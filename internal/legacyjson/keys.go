package legacyjson

import (
	"sync"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

var (
	keysCache      sync.Map // protoreflect.FullName -> []string
	queryKeysCache sync.Map // protoreflect.FullName -> []string
)

// Keys are the Ganeti field names a read message holds, in its order: the
// json_names of its fields, except those left out of the legacy object when
// empty (extras such as a node's secondary_ip, which are not query fields)
// and (typed_only) ones. The rlib2 field lists (N_FIELDS, I_FIELDS, ...)
// thus live only in the proto. The slice is shared: never modify it.
func Keys(msg proto.Message) []string { return keys(msg, &keysCache, false) }

// QueryKeys are the query fields that fill a read message: Keys and the
// (typed_only) fields (an instance's hypervisor), in field order. The
// slice is shared: never modify it.
func QueryKeys(msg proto.Message) []string { return keys(msg, &queryKeysCache, true) }

func keys(msg proto.Message, cache *sync.Map, typedOnly bool) []string {
	d := msg.ProtoReflect().Descriptor()
	if v, ok := cache.Load(d.FullName()); ok {
		return v.([]string)
	}
	fds := d.Fields()
	names := make([]string, 0, fds.Len())
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if empty, _ := getExtension(fd.Options(), rapiv2.E_Empty).(rapiv2.LegacyEmpty); empty == rapiv2.LegacyEmpty_LEGACY_EMPTY_OMIT {
			continue
		}
		if only, _ := getExtension(fd.Options(), rapiv2.E_TypedOnly).(bool); only && !typedOnly {
			continue
		}
		names = append(names, fd.JSONName())
	}
	v, _ := cache.LoadOrStore(d.FullName(), names)
	return v.([]string)
}
