package legacyjson

import (
	"sync"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

var keysCache sync.Map // protoreflect.FullName -> []string

// Keys are the Ganeti field names a read message holds, in its order: the
// json_names of its fields, except those left out of the legacy object when
// empty (extras such as a node's secondary_ip, which are not query fields).
// The rlib2 field lists (N_FIELDS, I_FIELDS, ...) thus live only in the
// proto. The slice is shared: never modify it.
func Keys(msg proto.Message) []string {
	d := msg.ProtoReflect().Descriptor()
	if v, ok := keysCache.Load(d.FullName()); ok {
		return v.([]string)
	}
	fds := d.Fields()
	names := make([]string, 0, fds.Len())
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if empty, _ := getExtension(fd.Options(), rapiv2.E_Empty).(rapiv2.LegacyEmpty); empty == rapiv2.LegacyEmpty_LEGACY_EMPTY_OMIT {
			continue
		}
		names = append(names, fd.JSONName())
	}
	v, _ := keysCache.LoadOrStore(d.FullName(), names)
	return v.([]string)
}
