package rapi

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// The opcode -> RAPI route table is the reverse of the route -> opcode
// mapping of the proto (the google.api.http and legacy_job options of the
// methods in proto/ganeti/rapi/v2): an opcode is reachable when a route's
// job is that opcode alone, and it is sent to the first such route (in
// method name order) that can carry every parameter the opcode sets:
//
//   - the handler's fixed values (legacy_job fixed) must equal the
//     opcode's;
//   - a path variable {x} carries the opcode parameter x; else {y_index}
//     the parameter y (disk); else {y_name} a one-element list parameter
//     ys (instances, nodes); else the parameter "name" (the tag opcodes);
//   - a query argument carries the parameter its (sets_param) option
//     names, else the parameter of its name with "-" as "_" (dry-run), else
//     its plural (tag -> tags); lists are repeated arguments (csv ones
//     joined with ","), booleans 1 or 0;
//   - a body that is the opcode's parameters (its message is, or inlines,
//     the opcode) carries the rest (with "__version__": 1 for a versioned
//     body); a body of job options carries "depends".
//
// A route that cannot carry one of the parameters is not the opcode's.
// e2e tests check the table by submitting through an upstream-mode gateway
// in front of a simulated one and comparing the jobs.

type route struct {
	method     string // the gRPC method, for messages
	verb, tmpl string
	vars       []string
	query      []protoreflect.FieldDescriptor
	bodyOp     bool
	versioned  bool
	bodyFields []string // json names of a non-opcode body message
	bodyScalar bool     // the body is a value no opcode parameter maps to
	fixed      map[string]string
	static     map[string]bool
}

var (
	routesOnce sync.Once
	routeTable map[string][]*route
	routesErr  error
)

var varPattern = regexp.MustCompile(`\{([a-z_]+)\}`)

func routes() (map[string][]*route, error) {
	routesOnce.Do(func() {
		table := map[string][]*route{}
		protoregistry.GlobalFiles.RangeFilesByPackage("ganeti.rapi.v2", func(fd protoreflect.FileDescriptor) bool {
			for i := 0; i < fd.Services().Len(); i++ {
				mds := fd.Services().Get(i).Methods()
				for j := 0; j < mds.Len(); j++ {
					if err := addRoute(table, mds.Get(j)); err != nil {
						routesErr = err
						return false
					}
				}
			}
			return true
		})
		for _, rs := range table {
			sort.Slice(rs, func(a, b int) bool { return rs[a].method < rs[b].method })
		}
		routeTable = table
	})
	return routeTable, routesErr
}

func addRoute(table map[string][]*route, md protoreflect.MethodDescriptor) error {
	job, _ := proto.GetExtension(md.Options(), rapiv2.E_LegacyJob).(*rapiv2.LegacyJob)
	if job == nil || len(job.GetOps()) != 1 {
		return nil // no job, or a job of several opcodes: none alone is reachable through it
	}
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	verb, tmpl := httpBinding(rule)
	if verb == "" {
		return nil
	}
	full := fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name())
	op := job.GetOps()[0]
	r := &route{method: full, verb: verb, tmpl: tmpl, fixed: map[string]string{}, static: map[string]bool{}}
	for _, m := range varPattern.FindAllStringSubmatch(tmpl, -1) {
		r.vars = append(r.vars, m[1])
	}
	for _, f := range op.GetFixed() {
		var v any
		if err := json.Unmarshal([]byte(f.GetValueJson()), &v); err != nil {
			return fmt.Errorf("upstream: %s: fixed %s: %w", full, f.GetName(), err)
		}
		b, _ := json.Marshal(v)
		r.fixed[f.GetName()] = string(b)
	}
	if rules, _ := proto.GetExtension(md.Options(), rapiv2.E_LegacyBody).(*rapiv2.LegacyBodyRules); rules != nil {
		for _, s := range rules.GetStaticParams() {
			r.static[s] = true
		}
		r.versioned = rules.GetVersioned()
	}
	bodyName := rule.GetBody()
	fields := md.Input().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		name := string(fd.Name())
		switch {
		case slices.Contains(r.vars, name):
		case name == bodyName:
			if fd.Message() == nil {
				r.bodyScalar = true
				continue
			}
			if id := bodyOpcode(fd.Message()); id != "" {
				r.bodyOp = id == op.GetOpcode()
				r.bodyScalar = !r.bodyOp
				continue
			}
			bf := fd.Message().Fields()
			for k := 0; k < bf.Len(); k++ {
				r.bodyFields = append(r.bodyFields, bf.Get(k).JSONName())
			}
		default:
			r.query = append(r.query, fd)
		}
	}
	if bodyName == "*" {
		r.bodyScalar = true // not a shape this table derives
	}
	table[op.GetOpcode()] = append(table[op.GetOpcode()], r)
	return nil
}

func httpBinding(rule *annotations.HttpRule) (verb, tmpl string) {
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return "GET", p.Get
	case *annotations.HttpRule_Put:
		return "PUT", p.Put
	case *annotations.HttpRule_Post:
		return "POST", p.Post
	case *annotations.HttpRule_Delete:
		return "DELETE", p.Delete
	}
	return "", ""
}

// bodyOpcode is the OP_ID of an opcode message, or of the opcode a
// message inlines ("" for neither).
func bodyOpcode(md protoreflect.MessageDescriptor) string {
	if info, _ := proto.GetExtension(md.Options(), rapiv2.E_Opcode).(*rapiv2.OpcodeInfo); info.GetId() != "" {
		return info.GetId()
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if inline, _ := proto.GetExtension(f.Options(), rapiv2.E_Inline).(bool); inline && f.Message() != nil {
			if info, _ := proto.GetExtension(f.Message().Options(), rapiv2.E_Opcode).(*rapiv2.OpcodeInfo); info.GetId() != "" {
				return info.GetId()
			}
		}
	}
	return ""
}

// reachable reports whether a route may submit the opcode opID.
func reachable(opID string) bool {
	t, err := routes()
	return err == nil && len(t[opID]) > 0
}

// request is an upstream write: method, path with query, JSON body (nil:
// none).
type request struct {
	verb, path string
	body       map[string]any
}

// unreachable is the error of an opcode RAPI cannot submit.
func unreachable(format string, args ...any) error {
	return errs.Prereq(errs.CodeState, "%s (the upstream transport is RAPI)", fmt.Sprintf(format, args...))
}

// buildRequest maps a job of opcodes to the RAPI request that submits it;
// reason is the text for the ?reason= argument (the reason trail's
// "gnt:user" entry upstream).
func buildRequest(ops []*rapiv2.OpCode, reason string) (*request, error) {
	if len(ops) != 1 {
		return nil, unreachable("A job of %d opcodes cannot be submitted over RAPI: every RAPI route submits one opcode", len(ops))
	}
	msg := backend.OpMember(ops[0])
	if msg == nil {
		return nil, errs.BadRequest("The job's opcode is empty")
	}
	opID := backend.OpcodeInfo(msg).GetId()
	t, err := routes()
	if err != nil {
		return nil, err
	}
	rs := t[opID]
	if len(rs) == 0 {
		return nil, unreachable("%s cannot be submitted over RAPI: no RAPI route submits it", opID)
	}
	v, err := legacyjson.ToValue(msg)
	if err != nil {
		return nil, err
	}
	obj, _ := v.(legacyjson.Object)
	m := msg.ProtoReflect()
	set := map[string]any{}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) || fd.JSONName() == "reason" {
			continue
		}
		if fd.IsList() && m.Get(fd).List().Len() == 0 {
			continue
		}
		val, _ := obj.Get(fd.JSONName())
		if isDefault(fd, val) {
			continue // Ganeti fills it in the same
		}
		set[fd.JSONName()] = val
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, r := range rs {
		if req, ok := r.build(m.Descriptor(), obj, set, reason); ok {
			return req, nil
		}
	}
	return nil, unreachable("%s with the parameters %s cannot be submitted over RAPI: no RAPI route takes them all", opID, strings.Join(names, ", "))
}

func (r *route) build(md protoreflect.MessageDescriptor, obj legacyjson.Object, set map[string]any, reason string) (*request, bool) {
	if r.bodyScalar {
		return nil, false
	}
	remaining := make(map[string]any, len(set))
	for k, v := range set {
		remaining[k] = v
	}
	has := func(p string) bool { return md.Fields().ByJSONName(p) != nil }
	for name, want := range r.fixed {
		got, _ := obj.Get(name)
		b, _ := json.Marshal(got)
		if string(b) != want {
			return nil, false
		}
		delete(remaining, name)
	}
	path := r.tmpl
	for _, v := range r.vars {
		s, p, ok := pathValue(obj, has, v)
		if !ok {
			return nil, false
		}
		path = strings.Replace(path, "{"+v+"}", url.PathEscape(s), 1)
		delete(remaining, p)
	}
	q := url.Values{}
	for _, fd := range r.query {
		name := fd.JSONName()
		if name == "reason" {
			continue
		}
		p := ""
		if sp, _ := proto.GetExtension(fd.Options(), rapiv2.E_SetsParam).(string); sp != "" {
			op, param, _ := strings.Cut(sp, ".")
			if op != backend.OpcodeInfo(dynamicMessage(md)).GetId() {
				continue
			}
			p = param
		} else if alt := strings.ReplaceAll(name, "-", "_"); has(alt) {
			p = alt
		} else if has(name + "s") {
			p = name + "s"
		}
		val, ok := remaining[p]
		if p == "" || !ok {
			continue
		}
		csv, _ := proto.GetExtension(fd.Options(), rapiv2.E_Csv).(bool)
		if !addQuery(q, name, val, csv) {
			return nil, false
		}
		delete(remaining, p)
	}
	// A dict parameter whose keys are all query arguments of the route
	// (the storage modify handler builds "changes" from ?allocatable=).
	for p, val := range remaining {
		keys, ok := objectKeys(val)
		if !ok || len(keys) == 0 {
			continue
		}
		args := url.Values{}
		for k, v := range keys {
			if !r.hasQuery(k) || q.Has(k) || !addQuery(args, k, v, false) {
				args = nil
				break
			}
		}
		if args != nil {
			for k, v := range args {
				q[k] = v
			}
			delete(remaining, p)
		}
	}
	if reason != "" {
		q.Set("reason", reason)
	}
	var body map[string]any
	switch {
	case r.bodyOp:
		body = map[string]any{}
		for k, v := range remaining {
			if r.static[k] {
				return nil, false
			}
			body[k] = v
		}
		clear(remaining)
		if r.versioned {
			body["__version__"] = 1
		}
	case len(r.bodyFields) > 0:
		for _, k := range r.bodyFields {
			if v, ok := remaining[k]; ok {
				if body == nil {
					body = map[string]any{}
				}
				body[k] = v
				delete(remaining, k)
			}
		}
	}
	if len(remaining) > 0 {
		return nil, false
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return &request{verb: r.verb, path: path, body: body}, true
}

// isDefault reports whether val is the parameter's default (its param
// spec's default_json).
func isDefault(fd protoreflect.FieldDescriptor, val any) bool {
	spec, _ := proto.GetExtension(fd.Options(), rapiv2.E_Param).(*rapiv2.ParamSpec)
	if spec == nil || spec.GetDefaultJson() == "" {
		return false
	}
	var def any
	if json.Unmarshal([]byte(spec.GetDefaultJson()), &def) != nil {
		return false
	}
	a, _ := json.Marshal(def)
	b, _ := json.Marshal(val)
	return string(a) == string(b)
}

// pathValue is the value of path variable v: the opcode parameter v, else
// "name" (the tag opcodes), else a one-element list parameter named for
// the object (instance_name -> instances, OP_INSTANCE_QUERY_DATA).
func pathValue(obj legacyjson.Object, has func(string) bool, v string) (string, string, bool) {
	str := func(p string) (string, bool) {
		val, _ := obj.Get(p)
		if _, isBool := val.(bool); isBool {
			return "", false
		}
		s, ok := scalarString(val)
		return s, ok && s != ""
	}
	if has(v) {
		s, ok := str(v)
		return s, v, ok
	}
	if kind, ok := strings.CutSuffix(v, "_index"); ok && has(kind) { // disk_index -> disk
		s, ok := str(kind)
		return s, kind, ok
	}
	if kind, ok := strings.CutSuffix(v, "_name"); ok && has(kind+"s") {
		val, _ := obj.Get(kind + "s")
		if l, _ := val.([]any); len(l) == 1 {
			s, ok := l[0].(string)
			return s, kind + "s", ok && s != ""
		}
	}
	if has("name") {
		s, ok := str("name")
		return s, "name", ok
	}
	return "", "", false
}

// hasQuery reports whether the route has the query argument name.
func (r *route) hasQuery(name string) bool {
	for _, fd := range r.query {
		if fd.JSONName() == name {
			return true
		}
	}
	return false
}

// objectKeys returns a JSON object value's members.
func objectKeys(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case map[string]any:
		return x, true
	case legacyjson.Object:
		m := make(map[string]any, len(x))
		for _, e := range x {
			m[e.Key] = e.Value
		}
		return m, true
	}
	return nil, false
}

func dynamicMessage(md protoreflect.MessageDescriptor) proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		return nil
	}
	return mt.New().Interface()
}

// addQuery adds a parameter's value as a query argument; false when the
// value has no query form.
func addQuery(q url.Values, name string, val any, csv bool) bool {
	switch x := val.(type) {
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := scalarString(e)
			if !ok {
				return false
			}
			parts = append(parts, s)
		}
		if csv {
			q.Set(name, strings.Join(parts, ","))
		} else {
			q[name] = append(q[name], parts...)
		}
		return true
	}
	s, ok := scalarString(val)
	if ok {
		q.Set(name, s)
	}
	return ok
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "1", true
		}
		return "0", true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int:
		return strconv.Itoa(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}
