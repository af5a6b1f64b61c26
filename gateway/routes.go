package gateway

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
)

// APIPackage is the proto package whose services make the legacy surface.
const APIPackage = "ganeti.rapi.v2"

// placeholders are the regular expressions Ganeti's router gives the path
// variables (resources.json routing.placeholders). Python's \w is
// Unicode-aware, hence the Unicode classes.
var placeholders = map[string]string{
	"job_id":     `\d+`,
	"disk_index": `\d+`,
}

const namePlaceholder = `[\p{L}\p{N}\p{M}_.\-]+`

// Method is one RPC bound to a legacy route and HTTP method.
type Method struct {
	// HTTPMethod is GET, PUT, POST or DELETE.
	HTTPMethod string
	// FullMethod is the gRPC method, e.g. /ganeti.rapi.v2.NodeService/GetNode.
	FullMethod string
	// Access is the RAPI access list: one of these user options is needed;
	// empty means anonymous access is allowed.
	Access []string
	// BodyField is the request field the body is bound to ("" for none).
	BodyField string
	// ResponseBody is the response field the answer is ("" for the whole
	// response message).
	ResponseBody string
}

// Route is one legacy path template with the methods bound to it.
type Route struct {
	// Template is the path template, e.g. /2/nodes/{node_name}/role.
	Template string
	pattern  *regexp.Regexp
	// Methods by HTTP method.
	Methods map[string]Method
}

// Routes is the legacy route table, derived from the google.api.http
// bindings of the API's services; it is the only route table.
type Routes struct {
	exact   map[string]*Route
	pattern []*Route
	all     []*Route
}

// LoadRoutes builds the route table from the registered proto files.
func LoadRoutes() (*Routes, error) {
	return buildRoutes(protoregistry.GlobalFiles)
}

func buildRoutes(files *protoregistry.Files) (*Routes, error) {
	byTemplate := map[string]*Route{}
	var err error
	files.RangeFilesByPackage(APIPackage, func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := 0; i < svcs.Len() && err == nil; i++ {
			mds := svcs.Get(i).Methods()
			for j := 0; j < mds.Len() && err == nil; j++ {
				err = addMethod(byTemplate, mds.Get(j))
			}
		}
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	rt := &Routes{exact: map[string]*Route{}}
	for _, r := range byTemplate {
		rt.all = append(rt.all, r)
		if r.pattern == nil {
			rt.exact[r.Template] = r
		} else {
			rt.pattern = append(rt.pattern, r)
		}
	}
	sort.Slice(rt.all, func(i, j int) bool { return rt.all[i].Template < rt.all[j].Template })
	sort.Slice(rt.pattern, func(i, j int) bool { return rt.pattern[i].Template < rt.pattern[j].Template })
	return rt, nil
}

func addMethod(byTemplate map[string]*Route, md protoreflect.MethodDescriptor) error {
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	if rule == nil {
		return nil // typed-only RPC (SubmitJob, WatchJob)
	}
	access, _ := proto.GetExtension(md.Options(), rapiv2.E_Access).([]string)
	full := fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name())
	for _, b := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
		method, tmpl := service.HTTPBinding(b)
		if method == "" {
			return fmt.Errorf("%s: unsupported http binding", full)
		}
		r := byTemplate[tmpl]
		if r == nil {
			re, err := compileTemplate(tmpl)
			if err != nil {
				return fmt.Errorf("%s: %w", full, err)
			}
			r = &Route{Template: tmpl, pattern: re, Methods: map[string]Method{}}
			byTemplate[tmpl] = r
		}
		if _, dup := r.Methods[method]; dup {
			return fmt.Errorf("%s: %s %s bound twice", full, method, tmpl)
		}
		r.Methods[method] = Method{HTTPMethod: method, FullMethod: full, Access: access, BodyField: b.GetBody(),
			ResponseBody: b.GetResponseBody()}
	}
	return nil
}

var varRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// compileTemplate returns nil for a template without variables (an exact
// route), else an anchored regular expression.
func compileTemplate(tmpl string) (*regexp.Regexp, error) {
	if !strings.Contains(tmpl, "{") {
		return nil, nil
	}
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, m := range varRE.FindAllStringSubmatchIndex(tmpl, -1) {
		b.WriteString(regexp.QuoteMeta(tmpl[last:m[0]]))
		name := tmpl[m[2]:m[3]]
		ph, ok := placeholders[name]
		if !ok {
			ph = namePlaceholder
		}
		b.WriteString("(?:" + ph + ")")
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(tmpl[last:]))
	b.WriteString("$")
	if strings.ContainsAny(tmpl[last:], "{}") {
		return nil, fmt.Errorf("bad template %q", tmpl)
	}
	return regexp.Compile(b.String())
}

// Match finds the route of a raw (not percent-decoded) request path, as
// Ganeti's router does: exact routes first, then the patterns.
func (rt *Routes) Match(path string) *Route {
	if r, ok := rt.exact[path]; ok {
		return r
	}
	for _, r := range rt.pattern {
		if r.pattern.MatchString(path) {
			return r
		}
	}
	return nil
}

// All lists every route, sorted by template.
func (rt *Routes) All() []*Route { return rt.all }
