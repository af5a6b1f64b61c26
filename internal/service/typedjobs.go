package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// The typed SubmitJob and Ganeti's access model.
//
// In Ganeti, RAPI users submit the jobs of the RAPI routes only; any other
// opcode is for root on the master (Luxi). SubmitJob keeps that model:
//
//   - its allow-list is the opcodes of the legacy routes' jobs, read from the
//     methods' (legacy_job) options (the route table): an opcode gets there
//     only by a legacy route submitting it, never by having an executor;
//   - each allowed opcode gets the rules of a legacy route that submits it:
//     the parameters that route lets a client choose (its path, query and
//     body parameters; for a body of the opcode's parameters, all but the
//     static and forbidden ones of its legacy_body option), the values its
//     handler fixes, the 403 on forbidden parameters, and the reason trail
//     it writes (["gnt:user", reason] from SubmitJobRequest.reason, then
//     "gnt:library:rlib2:<handler>"), built by the one builder of legacy
//     writes (buildOp). Where several routes submit the same opcode, the
//     opcode is checked against each in turn (the routes whose job is that
//     opcode alone first, then by method name) and the first it satisfies
//     is its route; when none does, the answer is the error of the first
//     route whose fixed values the opcode agrees with (else the first
//     route's). So OP_TAGS_SET with kind "instance" is PUT
//     /2/instances/{name}/tags's, OP_NODE_SET_PARAMS is POST
//     /2/nodes/{name}/modify's (whose body takes every parameter the role
//     route sets), OP_INSTANCE_STARTUP is PUT /2/instances/{name}/startup's;
//   - any other opcode needs a user with the "admin" option (our extension
//     of the users file; PERMISSION_DENIED before any job is created
//     otherwise). It gets the common rules (required parameters, no reason
//     trail of its own; the trail is "gnt:library:grpc:submit_job"), and
//     OP_TEST_DELAY's sleep is bounded (Config.MaxTestDelay, repeat at most
//     maxTestDelayRepeat).

// maxTestDelayRepeat bounds OP_TEST_DELAY's repeat: each repetition adds a
// log entry to the job.
const maxTestDelayRepeat = 1000

// DefaultMaxTestDelay is the default of Config.MaxTestDelay.
const DefaultMaxTestDelay = 60 * time.Second

// typedSource is the reason trail source of a typed opcode that no legacy
// route submits.
const typedSource = "gnt:library:grpc:submit_job"

// typedRoute is one legacy route's rules for one opcode of its job.
type typedRoute struct {
	// method is the gRPC method, route "PUT /2/..." (for messages).
	method, route string
	handler       string
	// single: the route's job is this opcode alone.
	single bool
	// body: the request body is the opcode's parameters.
	body bool
	// client are the parameters the client chooses in the path, the
	// query or a body that is not the opcode's.
	client map[string]bool
	// fixed are the values the handler sets (legacy JSON, re-encoded).
	fixed map[string]json.RawMessage
	// static and forbidden are the method's legacy_body lists.
	static, forbidden map[string]bool
}

var (
	typedOnce   sync.Once
	typedRoutes map[string][]*typedRoute // by OP_ID
	typedErr    error
)

// loadTypedRoutes reads the (legacy_job) options of the API's methods.
func loadTypedRoutes() (map[string][]*typedRoute, error) {
	typedOnce.Do(func() {
		routes := map[string][]*typedRoute{}
		protoregistry.GlobalFiles.RangeFilesByPackage("ganeti.rapi.v2", func(fd protoreflect.FileDescriptor) bool {
			for i := 0; i < fd.Services().Len() && typedErr == nil; i++ {
				mds := fd.Services().Get(i).Methods()
				for j := 0; j < mds.Len() && typedErr == nil; j++ {
					typedErr = addTypedRoutes(routes, mds.Get(j))
				}
			}
			return typedErr == nil
		})
		for _, rs := range routes {
			sort.Slice(rs, func(a, b int) bool {
				if rs[a].single != rs[b].single {
					return rs[a].single
				}
				return rs[a].method < rs[b].method
			})
		}
		typedRoutes = routes
	})
	return typedRoutes, typedErr
}

func addTypedRoutes(routes map[string][]*typedRoute, md protoreflect.MethodDescriptor) error {
	job, _ := proto.GetExtension(md.Options(), rapiv2.E_LegacyJob).(*rapiv2.LegacyJob)
	if job == nil {
		return nil
	}
	full := fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name())
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	verb, tmpl := HTTPBinding(rule)
	if verb == "" || job.GetHandler() == "" || len(job.GetOps()) == 0 {
		return fmt.Errorf("server: %s: legacy_job without a route, a handler or opcodes", full)
	}
	body := legacyjson.BodyRuleOf(full)
	bodyOp := bodyOpcode(md, rule.GetBody())
	for _, op := range job.GetOps() {
		r := &typedRoute{
			method: full, route: verb + " " + tmpl, handler: job.GetHandler(),
			single: len(job.GetOps()) == 1, body: bodyOp != "" && bodyOp == op.GetOpcode(),
			client: set(op.GetClientParams()), fixed: map[string]json.RawMessage{},
			static: set(body.Static), forbidden: set(body.Forbidden),
		}
		for _, f := range op.GetFixed() {
			var v any
			if err := json.Unmarshal([]byte(f.GetValueJson()), &v); err != nil {
				return fmt.Errorf("server: %s: fixed %s: %w", full, f.GetName(), err)
			}
			b, _ := json.Marshal(v)
			r.fixed[f.GetName()] = b
		}
		routes[op.GetOpcode()] = append(routes[op.GetOpcode()], r)
	}
	return nil
}

// HTTPBinding returns the HTTP method and path template of a
// google.api.http binding ("", "" for another pattern).
func HTTPBinding(rule *annotations.HttpRule) (verb, tmpl string) {
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

// bodyOpcode returns the OP_ID of the opcode whose parameters the method's
// body is: the body field's message is an opcode, or inlines one; "" for
// another body or none.
func bodyOpcode(md protoreflect.MethodDescriptor, bodyField string) string {
	if bodyField == "" || bodyField == "*" {
		return ""
	}
	fd := md.Input().Fields().ByName(protoreflect.Name(bodyField))
	if fd == nil || fd.Message() == nil {
		return ""
	}
	if id := opcodeID(fd.Message()); id != "" {
		return id
	}
	fields := fd.Message().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if inline, _ := proto.GetExtension(f.Options(), rapiv2.E_Inline).(bool); inline && f.Message() != nil {
			if id := opcodeID(f.Message()); id != "" {
				return id
			}
		}
	}
	return ""
}

func opcodeID(md protoreflect.MessageDescriptor) string {
	info, _ := proto.GetExtension(md.Options(), rapiv2.E_Opcode).(*rapiv2.OpcodeInfo)
	return info.GetId()
}

func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

// TypedAllowList is SubmitJob's allow-list: the OP_IDs of the opcodes the
// legacy routes submit, sorted.
func TypedAllowList() ([]string, error) {
	routes, err := loadTypedRoutes()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(routes))
	for id := range routes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// check reports whether op satisfies the route's rules: every parameter it
// sets is one the route lets the client choose, or a fixed one at the
// handler's value; never a forbidden one, never the reason trail. fits
// is false when op contradicts a value the handler fixes (the route is not
// the one for op).
func (r *typedRoute) check(msg proto.Message) (fits bool, err error) {
	m := msg.ProtoReflect()
	fields := m.Descriptor().Fields()
	var legacy legacyjson.Object
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !has(m, fd) {
			continue
		}
		name := fd.JSONName()
		if fixed, ok := r.fixed[name]; ok {
			if legacy == nil {
				v, err := legacyjson.ToValue(msg)
				if err != nil {
					return true, codecError(err)
				}
				legacy, _ = v.(legacyjson.Object)
			}
			got, _ := legacy.Get(name)
			b, err := json.Marshal(got)
			if err != nil || string(b) != string(fixed) {
				return false, errs.StaticParams([]string{name})
			}
		}
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !has(m, fd) {
			continue
		}
		name := fd.JSONName()
		switch {
		case r.fixed[name] != nil:
		case name == paramReason:
			return true, errs.StaticParams([]string{name})
		case r.forbidden[name]:
			return true, errs.ForbiddenParam(name)
		case r.client[name], r.body && !r.static[name]:
		default:
			return true, errs.ForbiddenParam(name)
		}
	}
	return true, nil
}

const paramReason = "reason"

// typedChecks are the checks a legacy handler makes on an opcode beyond
// its parameters' keys, shared with the typed path (by opcode message).
var typedChecks = map[protoreflect.FullName]func(proto.Message) (proto.Message, error){
	(*rapiv2.OpInstanceMultiAlloc)(nil).ProtoReflect().Descriptor().FullName(): func(msg proto.Message) (proto.Message, error) {
		op, _ := msg.(*rapiv2.OpInstanceMultiAlloc)
		return checkMultiAlloc(op)
	},
}

// typedJob builds the opcodes of a typed SubmitJob request (see the rules
// above). Every opcode is authorized before any is built, and nothing is
// queued here.
func (s *Services) typedJob(ctx context.Context, req *rapiv2.SubmitJobRequest) ([]*rapiv2.OpCode, error) {
	routes, err := loadTypedRoutes()
	if err != nil {
		return nil, err
	}
	if len(req.GetOps()) == 0 {
		return nil, errs.BadRequest("A job needs at least one opcode")
	}
	user, _ := auth.FromContext(ctx)
	admin := user != nil && user.HasOption(auth.OptionAdmin)
	msgs := make([]proto.Message, len(req.GetOps()))
	for i, op := range req.GetOps() {
		msg := opMessage(op)
		if msg == nil {
			return nil, errs.BadRequest("Opcode %d of the job is empty", i)
		}
		msgs[i] = msg
		if id := opcodeID(msg.ProtoReflect().Descriptor()); len(routes[id]) == 0 && !admin {
			return nil, &errs.Error{Class: errs.ClassForbidden,
				Msg: fmt.Sprintf("%s is not available via RAPI: it needs a user with the %q option", id, auth.OptionAdmin)}
		}
	}
	now := time.Now().UnixNano()
	out := make([]*rapiv2.OpCode, len(msgs))
	for i, msg := range msgs {
		id := opcodeID(msg.ProtoReflect().Descriptor())
		var built proto.Message
		if rs := routes[id]; len(rs) > 0 {
			built, err = s.routeOp(msg, rs, req.GetReason(), now)
		} else {
			built, err = s.adminOp(msg, req.GetReason(), now)
		}
		if err != nil {
			return nil, err
		}
		if out[i], err = wrapOp(built); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reasonTrail is the trail a write gives its opcodes: the client's reason,
// then the source.
func reasonTrail(reason, source string, now int64) []any {
	var trail []any
	if reason != "" {
		trail = append(trail, []any{"gnt:user", reason, now})
	}
	return append(trail, []any{source, "", now})
}

// routeOp checks msg against the routes that submit its opcode and builds
// it as the first it satisfies does.
func (s *Services) routeOp(msg proto.Message, routes []*typedRoute, reason string, now int64) (proto.Message, error) {
	var route *typedRoute
	var first, firstFitting error
	for _, r := range routes {
		fits, err := r.check(msg)
		if err == nil {
			route = r
			break
		}
		if first == nil {
			first = err
		}
		if fits && firstFitting == nil {
			firstFitting = err
		}
	}
	if route == nil {
		if firstFitting != nil {
			return nil, firstFitting
		}
		return nil, first
	}
	if check := typedChecks[msg.ProtoReflect().Descriptor().FullName()]; check != nil {
		var err error
		if msg, err = check(msg); err != nil {
			return nil, err
		}
	}
	// The handler's values for what the client left unset.
	static := params{}
	m := msg.ProtoReflect()
	for name, raw := range route.fixed {
		if fd := m.Descriptor().Fields().ByJSONName(name); fd != nil && !has(m, fd) {
			var v any
			_ = json.Unmarshal(raw, &v)
			static[name] = v
		}
	}
	return buildOp(opWrite{op: msg, static: static}, reasonTrail(reason, "gnt:library:rlib2:"+route.handler, now))
}

// adminOp builds an opcode no legacy route submits (the user is an
// administrator).
func (s *Services) adminOp(msg proto.Message, reason string, now int64) (proto.Message, error) {
	if d, ok := msg.(*rapiv2.OpTestDelay); ok {
		if err := checkTestDelay(d, s.cfg.MaxTestDelay); err != nil {
			return nil, err
		}
	}
	return buildOp(opWrite{op: msg}, reasonTrail(reason, typedSource, now))
}

// checkTestDelay bounds OP_TEST_DELAY: a finite duration, repeat at most
// maxTestDelayRepeat, and at most max of sleeping in all (duration, on the
// master and again for the nodes, times the repetitions).
func checkTestDelay(d *rapiv2.OpTestDelay, limit time.Duration) error {
	dur := d.GetDuration()
	if math.IsNaN(dur) || math.IsInf(dur, 0) {
		return errs.BadRequest("OP_TEST_DELAY.duration must be a finite number")
	}
	if d.GetRepeat() < 0 || d.GetRepeat() > maxTestDelayRepeat {
		return errs.BadRequest("OP_TEST_DELAY.repeat must be between 0 and %d, not %d", maxTestDelayRepeat, d.GetRepeat())
	}
	sleeps := 0.0
	if d.OnMaster == nil || d.GetOnMaster() {
		sleeps++
	}
	if len(d.GetOnNodes()) > 0 || len(d.GetOnNodeUuids()) > 0 {
		sleeps++
	}
	total := max(dur, 0) * sleeps * float64(max(d.GetRepeat(), 1))
	if total > limit.Seconds() {
		return errs.BadRequest("OP_TEST_DELAY would sleep %gs in all (duration × repeat, on the master and the nodes); the limit is %gs",
			total, limit.Seconds())
	}
	return nil
}

// opMessage returns the opcode message set in op (nil when none).
func opMessage(op *rapiv2.OpCode) proto.Message {
	if op == nil {
		return nil
	}
	m := op.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("op"))
	if fd == nil {
		return nil
	}
	return m.Get(fd).Message().Interface()
}

// checkMultiAlloc is the multi-allocation handler's check: instances are
// required, and each is an OP_INSTANCE_CREATE object with the legacy
// renames applied.
func checkMultiAlloc(op *rapiv2.OpInstanceMultiAlloc) (*rapiv2.OpInstanceMultiAlloc, error) {
	if len(op.GetInstances()) == 0 {
		return nil, errs.BadRequest("Request is missing required 'instances' field in body")
	}
	op = proto.Clone(op).(*rapiv2.OpInstanceMultiAlloc)
	for n, v := range op.GetInstances() {
		inst, err := instanceCreateValue(v)
		if err != nil {
			return nil, err
		}
		op.Instances[n] = inst
	}
	return op, nil
}
