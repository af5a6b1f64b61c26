package backendtest

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// Fake is a small in-memory backend for the tests of the services: a
// cluster of a few objects (NewFake), answers a test can set (SetObject,
// SetJob, SetUnsupported ...), an error per method (SetErr), and a record
// of every call with its context and arguments (Calls).
//
// Its job queue runs a job at once, unless a filter rule with the action
// PAUSE holds it queued (REJECT cancels it): a tag opcode changes the
// tags, any other succeeds with a null result. It passes backendtest.Run
// but for the running job OP_TEST_DELAY makes (FakeLacks).
type Fake struct {
	mu          sync.Mutex
	calls       []Call
	errs        map[string]error
	info        map[string]any
	clusterTags []string
	objects     map[string][]map[string]any // by resource, in order
	extraFields map[string][]backend.FieldDef
	oses        []string
	jobs        map[int64]*backend.Job
	lastID      int64
	unsupported map[string]bool
	changed     chan struct{} // closed and replaced on every job change
	version     int64
}

// FakeLacks are the capabilities Fake lacks (its jobs do not run for a
// while).
var FakeLacks = []Capability{TestDelay}

var _ backend.Backend = (*Fake)(nil)

// Call is one call of a Fake's method.
type Call struct {
	Method string
	// Ctx is the context the caller passed.
	Ctx context.Context
	// Args are the other arguments, in order.
	Args []any
}

// key fields of the resources with named objects.
var keyOf = map[string]string{backend.ResNode: "name", backend.ResInstance: "name", backend.ResGroup: "name",
	backend.ResNetwork: "name", backend.ResFilter: "uuid"}

// NewFake returns a fake with a cluster of two nodes (the master and a
// candidate), a group, two instances (web1 running, build1 stopped), a
// network and one OS.
func NewFake() *Fake {
	f := &Fake{
		errs: map[string]error{},
		info: map[string]any{"name": "fake.example.com", "master": "node1.example.com",
			"software_version": "3.0.2", "protocol_version": int64(2020000), "architecture": []any{"64bit", "x86_64"}},
		objects:     map[string][]map[string]any{},
		extraFields: map[string][]backend.FieldDef{},
		oses:        []string{"noop"},
		jobs:        map[int64]*backend.Job{},
		unsupported: map[string]bool{},
		changed:     make(chan struct{}),
	}
	f.objects[backend.ResNode] = []map[string]any{
		{"name": "node1.example.com", "uuid": "8f3c2d10-0000-4000-8000-000000000001", "role": "M", "master_candidate": true,
			"offline": false, "drained": false, "group": "default", "mtotal": int64(32768), "mfree": int64(16384), "tags": []any{}},
		{"name": "node2.example.com", "uuid": "8f3c2d10-0000-4000-8000-000000000002", "role": "C", "master_candidate": true,
			"offline": false, "drained": false, "group": "default", "mtotal": int64(32768), "mfree": int64(30000), "tags": []any{"rack:b"}},
	}
	f.objects[backend.ResGroup] = []map[string]any{
		{"name": "default", "uuid": "8f3c2d10-0000-4000-8000-000000000010", "alloc_policy": "preferred",
			"node_cnt": int64(2), "node_list": []any{"node1.example.com", "node2.example.com"}, "tags": []any{}},
	}
	f.objects[backend.ResInstance] = []map[string]any{
		{"name": "build1.example.com", "uuid": "8f3c2d10-0000-4000-8000-000000000021", "status": "ADMIN_down",
			"oper_state": false, "admin_state": "down", "pnode": "node2.example.com", "tags": []any{}},
		{"name": "web1.example.com", "uuid": "8f3c2d10-0000-4000-8000-000000000020", "status": "running",
			"oper_state": true, "admin_state": "up", "pnode": "node1.example.com", "tags": []any{"web"}},
	}
	f.objects[backend.ResNetwork] = []map[string]any{
		{"name": "net1", "uuid": "8f3c2d10-0000-4000-8000-000000000030", "network": "192.0.2.0/24", "tags": []any{}},
	}
	f.objects[backend.ResFilter] = nil
	// Fields of the resources without objects here.
	f.extraFields[backend.ResFilter] = textFields("uuid", "priority", "predicates", "action", "reason_trail", "watermark")
	f.extraFields[backend.ResJob] = textFields(jobFieldNames...)
	f.extraFields[backend.ResLock] = textFields("name", "mode", "owner", "pending")
	f.extraFields[backend.ResExport] = textFields("node", "export")
	return f
}

var jobFieldNames = []string{"id", "ops", "status", "summary", "opstatus", "opresult", "oplog", "received_ts", "start_ts", "end_ts", "priority"}

func textFields(names ...string) []backend.FieldDef {
	out := make([]backend.FieldDef, len(names))
	for i, n := range names {
		out[i] = backend.FieldDef{Name: n, Title: n, Kind: backend.KindOther, Doc: "Field " + n}
	}
	return out
}

// Setting answers and errors --------------------------------------------------------

// SetErr makes method (a Backend method's name, e.g. "Query") fail with
// err (nil: succeed again). The call is recorded all the same.
func (f *Fake) SetErr(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

// SetClusterInfo sets what ClusterInfo answers.
func (f *Fake) SetClusterInfo(info map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.info = info
}

// SetObject adds an object of resource, or replaces the one of the same
// name (uuid for a filter rule); obj maps field names to values.
func (f *Fake) SetObject(resource string, obj map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := keyOf[resource]
	objs := f.objects[resource]
	if i := slices.IndexFunc(objs, func(o map[string]any) bool { return o[key] == obj[key] }); i >= 0 {
		objs[i] = obj
		return
	}
	f.objects[resource] = append(objs, obj)
}

// SetOSNames sets what OSNames answers.
func (f *Fake) SetOSNames(names []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.oses = names
}

// SetUnsupported makes Supports(opID) false.
func (f *Fake) SetUnsupported(opID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unsupported[opID] = true
}

// SetJob adds or replaces a job (the fake keeps j: do not modify it
// afterwards), waking its watchers.
func (f *Fake) SetJob(j *backend.Job) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putJob(j)
}

// putJob stores j and wakes the waiters (mu held).
func (f *Fake) putJob(j *backend.Job) {
	f.version++
	if j.Version == 0 {
		j.Version = f.version
	}
	f.jobs[j.ID] = j
	f.lastID = max(f.lastID, j.ID)
	close(f.changed)
	f.changed = make(chan struct{})
}

// Calls returns the calls so far, in order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// call records a call and returns the error set for its method (mu held).
func (f *Fake) call(ctx context.Context, method string, args ...any) error {
	f.calls = append(f.calls, Call{Method: method, Ctx: ctx, Args: args})
	return f.errs[method]
}

// Reader ------------------------------------------------------------------------------

func (f *Fake) ClusterInfo(ctx context.Context) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "ClusterInfo"); err != nil {
		return nil, err
	}
	info := make(map[string]any, len(f.info)+1)
	for k, v := range f.info {
		info[k] = v
	}
	info["tags"] = anyList(f.clusterTags)
	return info, nil
}

func (f *Fake) Names(ctx context.Context, resource string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "Names", resource); err != nil {
		return nil, err
	}
	key, ok := keyOf[resource]
	if !ok {
		return nil, errs.BadRequest("Unknown resource '%s'", resource)
	}
	out := []string{}
	for _, o := range f.objects[resource] {
		out = append(out, fmt.Sprint(o[key]))
	}
	return out, nil
}

// resourceKind is the name of a resource's objects in Ganeti's messages.
var resourceKind = map[string]string{backend.ResNode: "Node", backend.ResInstance: "Instance",
	backend.ResGroup: "Group", backend.ResNetwork: "Network", backend.ResFilter: "Filter"}

// object finds an object by name (mu held).
func (f *Fake) object(resource, name string) (map[string]any, error) {
	key := keyOf[resource]
	for _, o := range f.objects[resource] {
		if o[key] == name {
			return o, nil
		}
	}
	return nil, errs.NotFound(resourceKind[resource], name)
}

func (f *Fake) Get(ctx context.Context, resource, name string, fields []string) ([]backend.Cell, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "Get", resource, name, fields); err != nil {
		return nil, err
	}
	if _, ok := keyOf[resource]; !ok {
		return nil, errs.BadRequest("Unknown resource '%s'", resource)
	}
	o, err := f.object(resource, name)
	if err != nil {
		return nil, err
	}
	return f.row(resource, o, fields), nil
}

// row is the cells of fields of o: unknown for a field the resource does
// not have, unavailable for one o has no value of (mu held).
func (f *Fake) row(resource string, o map[string]any, fields []string) []backend.Cell {
	defs := f.fieldDefs(resource)
	out := make([]backend.Cell, len(fields))
	for i, name := range fields {
		v, ok := o[name]
		switch {
		case !slices.ContainsFunc(defs, func(d backend.FieldDef) bool { return d.Name == name }):
			out[i] = backend.Cell{Status: backend.CellUnknown}
		case !ok:
			out[i] = backend.Cell{Status: backend.CellUnavail}
		default:
			out[i] = backend.Cell{Status: backend.CellNormal, Value: v}
		}
	}
	return out
}

// fieldDefs are the fields of a resource, sorted by name: the fields of
// its objects (kind from their values) and the declared ones (mu held).
func (f *Fake) fieldDefs(resource string) []backend.FieldDef {
	defs := slices.Clone(f.extraFields[resource])
	for _, o := range f.objects[resource] {
		for k, v := range o {
			if !slices.ContainsFunc(defs, func(d backend.FieldDef) bool { return d.Name == k }) {
				defs = append(defs, backend.FieldDef{Name: k, Title: k, Kind: kindOf(v), Doc: "Field " + k})
			}
		}
	}
	slices.SortFunc(defs, func(a, b backend.FieldDef) int { return strings.Compare(a.Name, b.Name) })
	return defs
}

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return backend.KindText
	case bool:
		return backend.KindBool
	case int64:
		return backend.KindNumber
	case float64:
		return backend.KindFloat
	}
	return backend.KindOther
}

func (f *Fake) Query(ctx context.Context, resource string, fields []string, filter any, lim backend.QueryLimits) (*backend.QueryResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "Query", resource, fields, filter, lim); err != nil {
		return nil, err
	}
	objs, err := f.rows(resource)
	if err != nil {
		return nil, err
	}
	defs, err := f.defsOf(resource, fields)
	if err != nil {
		return nil, err
	}
	res := &backend.QueryResult{Fields: defs, Data: [][]backend.Cell{}}
	known := f.fieldDefs(resource)
	for _, o := range objs {
		ok, err := matches(filter, o, known)
		if err != nil {
			return nil, err
		}
		if ok {
			res.Data = append(res.Data, f.row(resource, o, fields))
		}
	}
	if lim.Admit != nil {
		b, _ := json.Marshal(res)
		if err := lim.Admit(int64(len(b))); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// rows are the objects of resource as field maps (mu held).
func (f *Fake) rows(resource string) ([]map[string]any, error) {
	switch resource {
	case backend.ResJob:
		var out []map[string]any
		for _, id := range sortedIDs(f.jobs) {
			j := f.jobs[id]
			row := map[string]any{}
			for _, name := range jobFieldNames {
				row[name], _ = jobField(j, name)
			}
			out = append(out, row)
		}
		return out, nil
	case backend.ResLock, backend.ResExport:
		return nil, nil
	}
	if _, ok := keyOf[resource]; !ok {
		return nil, errs.BadRequest("Unknown resource '%s'", resource)
	}
	return f.objects[resource], nil
}

// defsOf are the definitions of fields, "unknown" for those resource
// lacks (mu held).
func (f *Fake) defsOf(resource string, fields []string) ([]backend.FieldDef, error) {
	if _, err := f.rows(resource); err != nil {
		return nil, err
	}
	all := f.fieldDefs(resource)
	if len(fields) == 0 {
		return all, nil
	}
	out := make([]backend.FieldDef, len(fields))
	for i, name := range fields {
		if k := slices.IndexFunc(all, func(d backend.FieldDef) bool { return d.Name == name }); k >= 0 {
			out[i] = all[k]
		} else {
			out[i] = backend.FieldDef{Name: name, Title: name, Kind: backend.KindUnknown, Doc: fmt.Sprintf("Unknown field '%s'", name)}
		}
	}
	return out, nil
}

// matches evaluates the subset of Ganeti's query filters the fake knows:
// nil, "&", "|", "!", "=" ("=="), "!=".
func matches(filter any, row map[string]any, known []backend.FieldDef) (bool, error) {
	if filter == nil {
		return true, nil
	}
	l, ok := filter.([]any)
	if !ok || len(l) == 0 {
		return false, errs.QueryFilter("Invalid filter %v", filter)
	}
	op, _ := l[0].(string)
	switch op {
	case "&", "|":
		all := op == "&"
		for _, sub := range l[1:] {
			m, err := matches(sub, row, known)
			if err != nil {
				return false, err
			}
			if m != all {
				return m, nil
			}
		}
		return all, nil
	case "!":
		if len(l) != 2 {
			return false, errs.QueryFilter("Operator ! takes one operand")
		}
		m, err := matches(l[1], row, known)
		return !m, err
	case "=", "==", "!=":
		name, _ := l[1].(string)
		if len(l) != 3 || !slices.ContainsFunc(known, func(d backend.FieldDef) bool { return d.Name == name }) {
			return false, errs.QueryFilter("Unknown field or malformed comparison %v", filter)
		}
		eq := fmt.Sprint(row[name]) == fmt.Sprint(l[2])
		return eq == (op != "!="), nil
	}
	return false, errs.QueryFilter("Unknown operator '%v'", l[0])
}

func (f *Fake) QueryFields(ctx context.Context, resource string, fields []string) ([]backend.FieldDef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "QueryFields", resource, fields); err != nil {
		return nil, err
	}
	return f.defsOf(resource, fields)
}

// tagResource is the resource of a tag kind.
var tagResource = map[string]string{backend.TagNode: backend.ResNode, backend.TagNodeGroup: backend.ResGroup,
	backend.TagInstance: backend.ResInstance, backend.TagNetwork: backend.ResNetwork}

func (f *Fake) Tags(ctx context.Context, kind, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "Tags", kind, name); err != nil {
		return nil, err
	}
	return f.tags(kind, name)
}

// tags are the sorted tags of an object (mu held).
func (f *Fake) tags(kind, name string) ([]string, error) {
	if kind == backend.TagCluster {
		return slices.Sorted(slices.Values(f.clusterTags)), nil
	}
	res, ok := tagResource[kind]
	if !ok {
		return nil, errs.BadRequest("Invalid tag kind '%s'", kind)
	}
	o, err := f.object(res, name)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, t := range toList(o["tags"]) {
		out = append(out, fmt.Sprint(t))
	}
	slices.Sort(out)
	return out, nil
}

var roleNames = map[string]string{"M": "master", "C": "master-candidate", "R": "regular", "D": "drained", "O": "offline"}

func (f *Fake) NodeRole(ctx context.Context, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "NodeRole", name); err != nil {
		return "", err
	}
	n, err := f.object(backend.ResNode, name)
	if err != nil {
		return "", err
	}
	role, _ := n["role"].(string)
	return roleNames[role], nil
}

func (f *Fake) InstanceConsole(ctx context.Context, name string) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "InstanceConsole", name); err != nil {
		return nil, err
	}
	inst, err := f.object(backend.ResInstance, name)
	if err != nil {
		return nil, err
	}
	if up, _ := inst["oper_state"].(bool); !up {
		return nil, errs.Unavailable("Instance console unavailable")
	}
	return map[string]any{"instance": name, "kind": "msg", "message": "Console not available for the fake backend"}, nil
}

func (f *Fake) OSNames(ctx context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "OSNames"); err != nil {
		return nil, err
	}
	return slices.Clone(f.oses), nil
}

// JobQueue ----------------------------------------------------------------------------

func (f *Fake) Supports(opID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Method: "Supports", Args: []any{opID}})
	return strings.HasPrefix(opID, "OP_") && !f.unsupported[opID]
}

func (f *Fake) Submit(ctx context.Context, ops []*rapiv2.OpCode, opt backend.SubmitOptions) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "Submit", ops, opt); err != nil {
		return 0, err
	}
	if len(ops) == 0 {
		return 0, errs.Prereq(errs.CodeInval, "Job has no opcodes")
	}
	now := backend.TimestampOf(time.Now())
	j := &backend.Job{ID: f.lastID + 1, Ops: ops, ReceivedTS: &now, Status: backend.StatusQueued,
		OpLog: make([][]backend.LogEntry, len(ops))}
	for range ops {
		j.Summary = append(j.Summary, "")
		j.OpStatus = append(j.OpStatus, backend.StatusQueued)
		j.OpResult = append(j.OpResult, nil)
		j.OpPriority = append(j.OpPriority, 0)
		j.OpStart, j.OpExec, j.OpEnd = append(j.OpStart, nil), append(j.OpExec, nil), append(j.OpEnd, nil)
	}
	for i, op := range ops {
		j.Summary[i] = strings.TrimPrefix(backend.OpID(op), "OP_")
	}
	f.putJob(j)
	f.schedule(j)
	return j.ID, nil
}

// schedule runs a queued job unless a PAUSE filter rule holds it (mu
// held).
func (f *Fake) schedule(q *backend.Job) {
	switch f.filterAction(q) {
	case backend.FilterPause:
		return
	case backend.FilterReject:
		f.finish(q, backend.StatusCanceled)
		return
	}
	now := backend.TimestampOf(time.Now())
	j := &backend.Job{ID: q.ID, Ops: q.Ops, Summary: q.Summary, ReceivedTS: q.ReceivedTS, StartTS: &now, EndTS: &now,
		OpLog: q.OpLog}
	for _, op := range q.Ops {
		status, res := backend.StatusSuccess, any(nil)
		if err := f.run(op); err != nil {
			de, _ := errs.As(err)
			status, res = backend.StatusError, []any{de.Class, []any{de.Msg, string(de.Code)}}
		}
		j.OpStatus = append(j.OpStatus, status)
		j.OpResult = append(j.OpResult, res)
		j.OpPriority = append(j.OpPriority, 0)
		j.OpStart, j.OpExec, j.OpEnd = append(j.OpStart, &now), append(j.OpExec, &now), append(j.OpEnd, &now)
	}
	j.Status = backend.JobStatus(j.OpStatus)
	f.putJob(j)
}

// finish ends a queued job with status (mu held).
func (f *Fake) finish(j *backend.Job, status string) {
	c := *j
	c.Version = 0
	c.Status = status
	c.OpStatus = make([]string, len(j.OpStatus))
	for i := range c.OpStatus {
		c.OpStatus[i] = status
	}
	f.putJob(&c)
}

// filterAction is the action of the first filter rule, by priority, that
// applies to a job (its id above the rule's watermark and every predicate
// matching) and does not say CONTINUE: ACCEPT when none (mu held).
func (f *Fake) filterAction(j *backend.Job) any {
	rules := slices.Clone(f.objects[backend.ResFilter])
	slices.SortStableFunc(rules, func(a, b map[string]any) int { return int(a["priority"].(int64) - b["priority"].(int64)) })
	for _, r := range rules {
		if wm, _ := r["watermark"].(int64); j.ID <= wm {
			continue
		}
		all := true
		for _, p := range toList(r["predicates"]) {
			all = all && predicateMatches(j, toList(p))
		}
		if all && r["action"] != backend.FilterContinue {
			return r["action"]
		}
	}
	return backend.FilterAccept
}

// predicateMatches evaluates a [kind, filter] predicate of a filter rule
// on a job: "jobid" on its id, "opcode" on each opcode's OP_ID, "reason"
// on each entry of the opcodes' reason trails.
func predicateMatches(j *backend.Job, p []any) bool {
	var rows []map[string]any
	switch p[0] {
	case "jobid":
		rows = append(rows, map[string]any{"id": j.ID})
	case "opcode":
		for _, op := range j.Ops {
			rows = append(rows, map[string]any{"OP_ID": backend.OpID(op)})
		}
	case "reason":
		for _, op := range j.Ops {
			m := backend.OpMember(op).ProtoReflect()
			fd := m.Descriptor().Fields().ByName("reason")
			if fd == nil {
				continue
			}
			trail := m.Get(fd).List()
			for i := 0; i < trail.Len(); i++ {
				if e, ok := trail.Get(i).Message().Interface().(*rapiv2.ReasonEntry); ok {
					rows = append(rows, map[string]any{"source": e.GetSource(), "reason": e.GetReason(), "timestamp": e.GetTimestampNs()})
				}
			}
		}
	}
	for _, row := range rows {
		if ok, _ := matches(p[1], row, predicateFields); ok {
			return true
		}
	}
	return false
}

var predicateFields = textFields("id", "OP_ID", "source", "reason", "timestamp")

// reschedule runs the queued jobs the filter rules no longer hold (mu
// held).
func (f *Fake) reschedule() {
	for _, id := range sortedIDs(f.jobs) {
		if j := f.jobs[id]; j.Status == backend.StatusQueued {
			f.schedule(j)
		}
	}
}

// run runs one opcode (mu held): a tag change changes the tags.
func (f *Fake) run(op *rapiv2.OpCode) error {
	var (
		kind rapiv2.TagKind
		name string
		tags []string
		del  bool
	)
	switch o := op.GetOp().(type) {
	case *rapiv2.OpCode_TagsSet:
		kind, name, tags = o.TagsSet.GetKind(), o.TagsSet.GetName(), o.TagsSet.GetTags()
	case *rapiv2.OpCode_TagsDel:
		kind, name, tags, del = o.TagsDel.GetKind(), o.TagsDel.GetName(), o.TagsDel.GetTags(), true
	default:
		return nil
	}
	k := strings.ToLower(strings.TrimPrefix(kind.String(), "TAG_KIND_"))
	cur, err := f.tags(k, name)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if del {
			cur = slices.DeleteFunc(cur, func(c string) bool { return c == t })
		} else if !slices.Contains(cur, t) {
			cur = append(cur, t)
		}
	}
	if k == backend.TagCluster {
		f.clusterTags = cur
		return nil
	}
	o, _ := f.object(tagResource[k], name)
	o["tags"] = anyList(cur)
	return nil
}

func (f *Fake) Job(ctx context.Context, id int64) (*backend.Job, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "Job", id); err != nil {
		return nil, false, err
	}
	j, ok := f.jobs[id]
	return j, ok, nil
}

func (f *Fake) JobIDs(ctx context.Context) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "JobIDs"); err != nil {
		return nil, err
	}
	return sortedIDs(f.jobs), nil
}

func (f *Fake) Jobs(ctx context.Context) ([]*backend.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "Jobs"); err != nil {
		return nil, err
	}
	out := []*backend.Job{}
	for _, id := range sortedIDs(f.jobs) {
		out = append(out, f.jobs[id])
	}
	return out, nil
}

func sortedIDs(jobs map[int64]*backend.Job) []int64 {
	ids := []int64{}
	for id := range jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (f *Fake) Cancel(ctx context.Context, id int64) (bool, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "Cancel", id); err != nil {
		return false, "", err
	}
	j, ok := f.jobs[id]
	switch {
	case !ok || j.Finalized():
		return false, fmt.Sprintf("Job %d not found in queue", id), nil
	case j.Status != backend.StatusQueued && j.Status != backend.StatusWaiting:
		return false, fmt.Sprintf("Job %d is no longer waiting in the queue", id), nil
	}
	f.finish(j, backend.StatusCanceled)
	return true, fmt.Sprintf("Dequeued job %d", id), nil
}

// jobField is the value of a field of the "job" resource.
func jobField(j *backend.Job, name string) (any, error) {
	ts := func(t *backend.Timestamp) any {
		if t == nil {
			return nil
		}
		return t.Value()
	}
	switch name {
	case "id":
		return j.ID, nil
	case "status":
		return j.Status, nil
	case "summary":
		return anyList(j.Summary), nil
	case "opstatus":
		return anyList(j.OpStatus), nil
	case "opresult":
		return slices.Clone(j.OpResult), nil
	case "priority":
		return int64(j.Priority), nil
	case "received_ts":
		return ts(j.ReceivedTS), nil
	case "start_ts":
		return ts(j.StartTS), nil
	case "end_ts":
		return ts(j.EndTS), nil
	case "oplog":
		out := []any{}
		for _, l := range j.OpLog {
			entries := []any{}
			for _, e := range l {
				entries = append(entries, e.Value())
			}
			out = append(out, entries)
		}
		return out, nil
	case "ops":
		out := []any{}
		for _, op := range j.Ops {
			v, err := legacyjson.ToValue(op)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, errs.Prereq(errs.CodeInval, "Unknown job field '%s'", name)
}

func (f *Fake) WaitForChange(ctx context.Context, id int64, fields []string, prevInfo []any, prevSerial int64,
	timeout time.Duration) ([]any, [][]any, bool, error) {
	f.mu.Lock()
	err := f.call(ctx, "WaitForChange", id, fields, prevInfo, prevSerial, timeout)
	f.mu.Unlock()
	if err != nil {
		return nil, nil, false, err
	}
	prev, _ := json.Marshal(prevInfo)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		f.mu.Lock()
		j, ok := f.jobs[id]
		changed := f.changed
		f.mu.Unlock()
		if !ok {
			return nil, nil, false, backend.JobNotFound(id)
		}
		info := make([]any, len(fields))
		for i, name := range fields {
			v, err := jobField(j, name)
			if err != nil {
				return nil, nil, false, err
			}
			info[i] = v
		}
		var logs [][]any
		for _, e := range j.LogSince(prevSerial) {
			logs = append(logs, e.Value())
		}
		cur, _ := json.Marshal(info)
		if j.Finalized() || prevInfo == nil || string(cur) != string(prev) || len(logs) > 0 {
			return info, logs, true, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, nil, false, nil
		case <-ctx.Done():
			return nil, nil, false, ctx.Err()
		}
	}
}

func (f *Fake) Watch(ctx context.Context, id int64) (<-chan *backend.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "Watch", id); err != nil {
		return nil, err
	}
	if _, ok := f.jobs[id]; !ok {
		return nil, backend.JobNotFound(id)
	}
	out := make(chan *backend.Job)
	go func() {
		defer close(out)
		var sent int64 = -1
		for {
			f.mu.Lock()
			j, changed := f.jobs[id], f.changed
			f.mu.Unlock()
			if j.Version != sent {
				select {
				case out <- j:
					sent = j.Version
				case <-ctx.Done():
					return
				}
				if j.Finalized() {
					return
				}
				continue
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// FilterRules -------------------------------------------------------------------------

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

var actions = []any{backend.FilterAccept, backend.FilterContinue, backend.FilterPause, backend.FilterReject}

func (f *Fake) ReplaceFilter(ctx context.Context, uuid string, rule backend.FilterRuleSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "ReplaceFilter", uuid, rule); err != nil {
		return "", err
	}
	if uuid == "" {
		uuid = fmt.Sprintf("0fa4e000-0000-4000-8000-%012d", time.Now().UnixNano()%1e12)
	}
	if !uuidPattern.MatchString(uuid) {
		return "", errs.BadRequest("Invalid filter rule UUID '%s'", uuid)
	}
	if rule.Priority < 0 {
		return "", errs.BadRequest("Invalid filter rule: priority must be a non-negative integer")
	}
	action := rule.Action
	if action == nil {
		action = backend.FilterContinue
	}
	r := backend.FilterRule{Action: action}
	if _, ok := r.RateLimit(); !ok && !slices.Contains(actions, action) {
		return "", errs.BadRequest("Invalid filter rule: unknown action %v", action)
	}
	for i, p := range rule.Predicates {
		l, ok := p.([]any)
		if !ok || len(l) != 2 || !slices.Contains([]any{"jobid", "opcode", "reason"}, l[0]) {
			return "", errs.BadRequest("Invalid filter rule: predicates[%d] %v", i, p)
		}
		if _, err := matches(l[1], map[string]any{}, predicateFields); err != nil {
			return "", errs.BadRequest("Invalid filter rule: predicates[%d] %v", i, p)
		}
	}
	obj := map[string]any{"uuid": uuid, "priority": rule.Priority, "predicates": anyList(rule.Predicates),
		"action": action, "reason_trail": anyList(rule.Reason), "watermark": f.lastID}
	key := keyOf[backend.ResFilter]
	objs := f.objects[backend.ResFilter]
	if i := slices.IndexFunc(objs, func(o map[string]any) bool { return o[key] == uuid }); i >= 0 {
		objs[i] = obj
	} else {
		f.objects[backend.ResFilter] = append(objs, obj)
	}
	f.reschedule()
	return uuid, nil
}

func (f *Fake) DeleteFilter(ctx context.Context, uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "DeleteFilter", uuid); err != nil {
		return err
	}
	objs := f.objects[backend.ResFilter]
	i := slices.IndexFunc(objs, func(o map[string]any) bool { return o["uuid"] == uuid })
	if i < 0 {
		return errs.Prereq(errs.CodeNoEnt, "Filter rule with UUID %s does not exist", uuid)
	}
	f.objects[backend.ResFilter] = slices.Delete(objs, i, i+1)
	f.reschedule()
	return nil
}

func anyList[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func toList(v any) []any {
	l, _ := v.([]any)
	return l
}
