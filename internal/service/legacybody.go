package service

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// legacyBodyRule is what Ganeti's rlib2 checks on the keys of a write's
// JSON body before it builds the opcode: forbidden parameters, renamed
// parameters, and static parameters (set from the path, the query or the
// handler) that the body may not give. The rules are the methods'
// (ganeti.rapi.v2.legacy_body) options; internal/specconform checks them
// against resources.json.
type legacyBodyRule struct {
	static    []string
	renames   [][2]string
	forbidden []string
	// version: the body is an instance creation request (__version__).
	version bool
	// nullDefault: keys whose null is read as absent (a deliberate
	// difference from Ganeti, see LegacyBodyRules.null_means_default).
	nullDefault []string
}

var (
	legacyBodyOnce  sync.Once
	legacyBodyRules map[string]legacyBodyRule // by full method name
)

// loadLegacyBodyRules reads the legacy_body options of the API's methods.
func loadLegacyBodyRules() map[string]legacyBodyRule {
	legacyBodyOnce.Do(func() {
		legacyBodyRules = map[string]legacyBodyRule{}
		protoregistry.GlobalFiles.RangeFilesByPackage("ganeti.rapi.v2", func(fd protoreflect.FileDescriptor) bool {
			for i := 0; i < fd.Services().Len(); i++ {
				mds := fd.Services().Get(i).Methods()
				for j := 0; j < mds.Len(); j++ {
					md := mds.Get(j)
					opt, _ := proto.GetExtension(md.Options(), rapiv2.E_LegacyBody).(*rapiv2.LegacyBodyRules)
					if opt == nil {
						continue
					}
					rule := legacyBodyRule{static: opt.GetStaticParams(), forbidden: opt.GetForbiddenParams(), version: opt.GetVersioned(),
						nullDefault: opt.GetNullMeansDefault()}
					for _, r := range opt.GetRenames() {
						rule.renames = append(rule.renames, [2]string{r.GetFrom(), r.GetTo()})
					}
					legacyBodyRules["/"+string(md.Parent().FullName())+"/"+string(md.Name())] = rule
				}
			}
			return true
		})
	})
	return legacyBodyRules
}

// bodyRule returns the legacy body rules of a method.
func bodyRule(fullMethod string) legacyBodyRule { return loadLegacyBodyRules()[fullMethod] }

// PrepareLegacyBody applies Ganeti's checks on the keys of a legacy write
// body (fullMethod's): the instance creation version, forbidden
// parameters (in the body or the query), renamed parameters (moved to
// their new names), static parameters, and the keys whose null means the
// default (left out). It returns the body to decode,
// or a gRPC status error with Ganeti's message. Bodies that are not JSON
// objects are returned as they are, for the codec to reject.
func PrepareLegacyBody(fullMethod string, query url.Values, body []byte) ([]byte, error) {
	rule, ok := loadLegacyBodyRules()[fullMethod]
	if !ok {
		return body, nil
	}
	for _, p := range rule.forbidden {
		if _, ok := query[p]; ok {
			return nil, ToStatus(nil, forbiddenParam(p))
		}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if rule.version && len(trimmed) == 0 {
			return nil, ToStatus(nil, errs.BadRequest("Instance creation request version 0 is no longer supported"))
		}
		return body, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil || obj == nil {
		return body, nil
	}
	if err := checkLegacyKeys(rule, obj); err != nil {
		return nil, ToStatus(nil, err)
	}
	changed := false
	for _, r := range rule.renames {
		if _, ok := obj[r[0]]; ok {
			changed = true
		}
	}
	for _, k := range rule.nullDefault {
		if v, ok := obj[k]; ok && string(bytes.TrimSpace(v)) == "null" {
			delete(obj, k)
			changed = true
		}
	}
	if !changed {
		return body, nil
	}
	for _, r := range rule.renames {
		if v, ok := obj[r[0]]; ok {
			delete(obj, r[0])
			obj[r[1]] = v
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return body, nil
	}
	return out, nil
}

func checkLegacyKeys(rule legacyBodyRule, obj map[string]json.RawMessage) error {
	if rule.version {
		raw, ok := obj["__version__"]
		v := strings.TrimSpace(string(raw))
		switch {
		case !ok || v == "0" || v == "false" || v == "null":
			return errs.BadRequest("Instance creation request version 0 is no longer supported")
		case v != "1" && v != "true":
			var str string
			if json.Unmarshal(raw, &str) == nil {
				v = str
			}
			return errs.BadRequest("Unsupported request data version %s", v)
		}
	}
	for _, p := range rule.forbidden {
		if _, ok := obj[p]; ok {
			return forbiddenParam(p)
		}
	}
	for _, r := range rule.renames {
		_, hasOld := obj[r[0]]
		_, hasNew := obj[r[1]]
		if hasOld && hasNew {
			return errs.BadRequest("Parameter '%s' was renamed to '%s', but both are specified", r[0], r[1])
		}
	}
	var overwritten []string
	for _, k := range rule.static {
		name := k
		for _, r := range rule.renames {
			if r[1] == k {
				if _, ok := obj[r[0]]; ok {
					overwritten = append(overwritten, k)
				}
			}
		}
		if _, ok := obj[name]; ok {
			overwritten = append(overwritten, k)
		}
	}
	if len(overwritten) > 0 {
		return staticError(overwritten)
	}
	return nil
}
