package legacyjson

import (
	"sync"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The legacy body rules of the write methods: which keys of a legacy
// JSON body Ganeti forbids, renames or sets itself.

// BodyRule is what Ganeti's rlib2 checks on the keys of a write's
// JSON body before it builds the opcode: forbidden parameters, renamed
// parameters, and static parameters (set from the path, the query or the
// handler) that the body may not give. The rules are the methods'
// (ganeti.rapi.v2.legacy_body) options; internal/specconform checks them
// against resources.json.
type BodyRule struct {
	Static    []string
	Renames   [][2]string
	Forbidden []string
	// Versioned: the body is an instance creation request (__version__).
	Versioned bool
	// NullDefault: keys whose null is read as absent (a deliberate
	// difference from Ganeti, see LegacyBodyRules.null_means_default).
	NullDefault []string
}

var (
	legacyBodyOnce  sync.Once
	legacyBodyRules map[string]BodyRule // by full method name
)

// BodyRules are the legacy_body options of the API's methods, by full
// method name.
func BodyRules() map[string]BodyRule {
	legacyBodyOnce.Do(func() {
		legacyBodyRules = map[string]BodyRule{}
		protoregistry.GlobalFiles.RangeFilesByPackage("ganeti.rapi.v2", func(fd protoreflect.FileDescriptor) bool {
			for i := 0; i < fd.Services().Len(); i++ {
				mds := fd.Services().Get(i).Methods()
				for j := 0; j < mds.Len(); j++ {
					md := mds.Get(j)
					opt, _ := proto.GetExtension(md.Options(), rapiv2.E_LegacyBody).(*rapiv2.LegacyBodyRules)
					if opt == nil {
						continue
					}
					rule := BodyRule{Static: opt.GetStaticParams(), Forbidden: opt.GetForbiddenParams(), Versioned: opt.GetVersioned(),
						NullDefault: opt.GetNullMeansDefault()}
					for _, r := range opt.GetRenames() {
						rule.Renames = append(rule.Renames, [2]string{r.GetFrom(), r.GetTo()})
					}
					legacyBodyRules["/"+string(md.Parent().FullName())+"/"+string(md.Name())] = rule
				}
			}
			return true
		})
	})
	return legacyBodyRules
}

// BodyRuleOf returns the legacy body rules of a method.
func BodyRuleOf(fullMethod string) BodyRule { return BodyRules()[fullMethod] }
