// Package backendtest is the contract every backend.Backend must meet: Run
// is a test suite (the pattern of Vitess' topo test suite over memorytopo)
// that the simulated backend passes and any other backend (a real Ganeti
// behind its RAPI or luxi, a replicated store) must pass too. It also holds
// Fake, a small in-memory backend for the tests of the services.
//
// The suite assumes no fixture: it discovers the cluster's objects through
// Names and Query, and what it writes (a cluster tag, a filter rule, jobs)
// it names uniquely and removes or cancels at the end, so that it can run
// against a real cluster too.
package backendtest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Harness is a backend under test and what it lacks.
type Harness struct {
	// Backend is the backend under test (required). The suite stops
	// nothing: the factory registers its own cleanup with t.
	Backend backend.Backend
	// Lacks are the capabilities the backend does not have: the tests
	// that need one are skipped.
	Lacks []Capability
}

// Capability is something a backend may lack.
type Capability string

const (
	// PauseFilter is a filter rule with the action PAUSE holding the jobs
	// its predicates match in the queue (status queued) until it goes: the
	// suite's way to have a job that does not end by itself.
	PauseFilter Capability = "PAUSE filter rules"
	// TestDelay is a queue that runs OP_TEST_DELAY: the suite's way to
	// have a running job.
	TestDelay Capability = "OP_TEST_DELAY"
	// TagJobs is a queue that runs OP_TAGS_SET and OP_TAGS_DEL, after
	// which the tags show.
	TagJobs Capability = "tag jobs"
)

func (h Harness) lacks(c Capability) bool { return slices.Contains(h.Lacks, c) }

// need skips t when the harness lacks c.
func (h Harness) need(t *testing.T, c Capability) {
	t.Helper()
	if h.lacks(c) {
		t.Skipf("the backend lacks %s", c)
	}
}

// Resources with named objects: the resource, the field that names an
// object, and its tag kind ("" for none).
var named = []struct{ res, key, tag string }{
	{backend.ResNode, "name", backend.TagNode},
	{backend.ResInstance, "name", backend.TagInstance},
	{backend.ResGroup, "name", backend.TagNodeGroup},
	{backend.ResNetwork, "name", backend.TagNetwork},
	{backend.ResFilter, "uuid", ""},
}

// Node roles as NodeRole answers them.
var roles = []string{"master", "master-candidate", "regular", "drained", "offline"}

// Run runs the contract suite; newBackend makes a backend for one test
// (each subtest calls it once).
func Run(t *testing.T, newBackend func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"ClusterInfo", testClusterInfo},
		{"NamesAndGet", testNamesAndGet},
		{"GetUnknown", testGetUnknown},
		{"Query", testQuery},
		{"QueryErrors", testQueryErrors},
		{"QueryFields", testQueryFields},
		{"Tags", testTags},
		{"NodeRole", testNodeRole},
		{"InstanceConsole", testInstanceConsole},
		{"OSNames", testOSNames},
		{"SubmitTagJob", testSubmitTagJob},
		{"WaitForChangeFinished", testWaitFinished},
		{"WaitForChangeHeld", testWaitHeld},
		{"WatchFinished", testWatchFinished},
		{"WatchHeld", testWatchHeld},
		{"UnknownJob", testUnknownJob},
		{"CancelRunning", testCancelRunning},
		{"FilterRules", testFilterRules},
		{"FilterRuleErrors", testFilterRuleErrors},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newBackend(t)
			if h.Backend == nil {
				t.Fatal("the harness has no backend")
			}
			tc.fn(t, h)
		})
	}
}

// Error checks ------------------------------------------------------------------

// wantCode fails t unless err is a domain error classified code.
func wantCode(t *testing.T, what string, err error, code errs.Code) {
	t.Helper()
	de, ok := errs.As(err)
	if !ok || de.Code != code {
		t.Errorf("%s: error %v, want a %s error", what, err, code)
	}
}

// wantBadRequest fails t unless err is a client's mistake: a domain error
// that the transport answers with 400 (a malformed request or query
// filter, or one classified wrong_input).
func wantBadRequest(t *testing.T, what string, err error) {
	t.Helper()
	de, ok := errs.As(err)
	if !ok || (de.Class != errs.ClassRequest && de.Class != errs.ClassQuery && de.Code != errs.CodeInval) {
		t.Errorf("%s: error %v, want a bad request", what, err)
	}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// Reads -----------------------------------------------------------------------------

func testClusterInfo(t *testing.T, h Harness) {
	info := must[map[string]any](t, "ClusterInfo")(h.Backend.ClusterInfo(t.Context()))
	for _, k := range []string{"name", "master", "software_version"} {
		if s, _ := info[k].(string); s == "" {
			t.Errorf("ClusterInfo()[%q] = %v, want a string", k, info[k])
		}
	}
	nodes := must[[]string](t, "Names(node)")(h.Backend.Names(t.Context(), backend.ResNode))
	if m, _ := info["master"].(string); !slices.Contains(nodes, m) {
		t.Errorf("master %q is not one of the nodes %v", m, nodes)
	}
}

// fieldNames lists every field of resource.
func fieldNames(t *testing.T, h Harness, resource string) []string {
	t.Helper()
	defs := must[[]backend.FieldDef](t, "QueryFields("+resource+")")(h.Backend.QueryFields(t.Context(), resource, nil))
	out := make([]string, len(defs))
	for i, d := range defs {
		out[i] = d.Name
	}
	return out
}

func testNamesAndGet(t *testing.T, h Harness) {
	ctx := t.Context()
	for _, r := range named {
		names := must[[]string](t, "Names("+r.res+")")(h.Backend.Names(ctx, r.res))
		if r.res == backend.ResNode && len(names) == 0 {
			t.Error("Names(node) is empty: a cluster has a node")
		}
		seen := map[string]bool{}
		for _, n := range names {
			if n == "" || seen[n] {
				t.Errorf("Names(%s) = %q: empty or repeated name", r.res, names)
			}
			seen[n] = true
		}
		fields := fieldNames(t, h, r.res)
		key := slices.Index(fields, r.key)
		if key < 0 {
			t.Fatalf("resource %s has no field %s", r.res, r.key)
		}
		for _, n := range names {
			cells, err := h.Backend.Get(ctx, r.res, n, fields)
			if err != nil {
				t.Errorf("Get(%s, %s): %v", r.res, n, err)
				continue
			}
			if len(cells) != len(fields) {
				t.Errorf("Get(%s, %s): %d cells for %d fields", r.res, n, len(cells), len(fields))
				continue
			}
			if c := cells[key]; c.Status != backend.CellNormal || c.Value != n {
				t.Errorf("Get(%s, %s): %s is %+v", r.res, n, r.key, c)
			}
			for i, c := range cells {
				if c.Status < backend.CellNormal || c.Status > backend.CellOffline || c.Status == backend.CellUnknown {
					t.Errorf("Get(%s, %s): field %s has status %d", r.res, n, fields[i], c.Status)
				}
			}
		}
	}
}

func testGetUnknown(t *testing.T, h Harness) {
	for _, r := range named {
		name := "no-such-object.example.com"
		if r.res == backend.ResFilter {
			name = "00000000-0000-4000-8000-00000000dead"
		}
		_, err := h.Backend.Get(t.Context(), r.res, name, []string{r.key})
		wantCode(t, "Get("+r.res+", unknown)", err, errs.CodeNoEnt)
	}
}

func testQuery(t *testing.T, h Harness) {
	ctx := t.Context()
	for _, r := range named {
		names := must[[]string](t, "Names")(h.Backend.Names(ctx, r.res))
		res := must[*backend.QueryResult](t, "Query("+r.res+")")(h.Backend.Query(ctx, r.res, []string{r.key}, nil, backend.QueryLimits{}))
		if len(res.Fields) != 1 || res.Fields[0].Name != r.key {
			t.Errorf("Query(%s, [%s]): fields %+v", r.res, r.key, res.Fields)
		}
		got := rowValues(res)
		if !slices.Equal(got, names) {
			t.Errorf("Query(%s, [%s]) rows %q, Names %q", r.res, r.key, got, names)
		}
		if len(names) == 0 {
			continue
		}
		last := names[len(names)-1]
		filtered := must[*backend.QueryResult](t, "Query with a filter")(h.Backend.Query(ctx, r.res, []string{r.key}, []any{"=", r.key, last}, backend.QueryLimits{}))
		if got := rowValues(filtered); !slices.Equal(got, []string{last}) {
			t.Errorf("Query(%s, [%s], [= %s %s]) rows %q", r.res, r.key, r.key, last, got)
		}
		none := must[*backend.QueryResult](t, "Query with a filter")(h.Backend.Query(ctx, r.res, []string{r.key}, []any{"!", []any{"=", r.key, last}}, backend.QueryLimits{}))
		if got := rowValues(none); slices.Contains(got, last) || len(got) != len(names)-1 {
			t.Errorf("Query(%s, [%s], [! [= %s %s]]) rows %q", r.res, r.key, r.key, last, got)
		}
	}
	// Every resource answers a query of its first field, and an unknown
	// field is a column of unknown cells, not an error (as Ganeti).
	for _, res := range backend.QueryResources {
		fields := fieldNames(t, h, res)
		if len(fields) == 0 {
			t.Errorf("resource %s has no fields", res)
			continue
		}
		q, err := h.Backend.Query(ctx, res, []string{fields[0], "nosuchfield"}, nil, backend.QueryLimits{})
		if err != nil {
			t.Errorf("Query(%s, [%s nosuchfield]): %v", res, fields[0], err)
			continue
		}
		if len(q.Fields) != 2 || q.Fields[1].Kind != backend.KindUnknown {
			t.Errorf("Query(%s): fields %+v, want the second of kind unknown", res, q.Fields)
		}
		for _, row := range q.Data {
			if len(row) != 2 || row[1].Status != backend.CellUnknown {
				t.Errorf("Query(%s): row %+v, want the second cell unknown", res, row)
			}
		}
	}
}

// rowValues are the values of the first column of a result, as strings.
func rowValues(res *backend.QueryResult) []string {
	out := []string{}
	for _, row := range res.Data {
		if len(row) > 0 {
			out = append(out, fmt.Sprint(row[0].Value))
		}
	}
	return out
}

func testQueryErrors(t *testing.T, h Harness) {
	ctx := t.Context()
	_, err := h.Backend.Query(ctx, "nosuchresource", []string{"name"}, nil, backend.QueryLimits{})
	wantBadRequest(t, "Query of an unknown resource", err)
	_, err = h.Backend.QueryFields(ctx, "nosuchresource", nil)
	wantBadRequest(t, "QueryFields of an unknown resource", err)
	_, err = h.Backend.Query(ctx, backend.ResNode, []string{"name"}, []any{"~~", "name"}, backend.QueryLimits{})
	wantBadRequest(t, "Query with a malformed filter", err)
	_, err = h.Backend.Query(ctx, backend.ResNode, []string{"name"}, []any{"=", "nosuchfield", "x"}, backend.QueryLimits{})
	wantBadRequest(t, "Query filtering on an unknown field", err)
}

func testQueryFields(t *testing.T, h Harness) {
	ctx := t.Context()
	for _, res := range backend.QueryResources {
		all := must[[]backend.FieldDef](t, "QueryFields("+res+")")(h.Backend.QueryFields(ctx, res, nil))
		for _, d := range all {
			if d.Name == "" || d.Kind == "" || d.Kind == backend.KindUnknown {
				t.Errorf("QueryFields(%s): %+v", res, d)
			}
		}
		if len(all) == 0 {
			continue
		}
		one := must[[]backend.FieldDef](t, "QueryFields")(h.Backend.QueryFields(ctx, res, []string{all[0].Name, "nosuchfield"}))
		if len(one) != 2 || one[0] != all[0] || one[1].Name != "nosuchfield" || one[1].Kind != backend.KindUnknown {
			t.Errorf("QueryFields(%s, [%s nosuchfield]) = %+v", res, all[0].Name, one)
		}
	}
}

func testTags(t *testing.T, h Harness) {
	ctx := t.Context()
	check := func(kind, name string) {
		tags, err := h.Backend.Tags(ctx, kind, name)
		if err != nil {
			t.Errorf("Tags(%s, %s): %v", kind, name, err)
		}
		if !slices.IsSorted(tags) {
			t.Errorf("Tags(%s, %s) = %q: not sorted", kind, name, tags)
		}
	}
	check(backend.TagCluster, "")
	for _, r := range named {
		if r.tag == "" {
			continue
		}
		for _, n := range must[[]string](t, "Names")(h.Backend.Names(ctx, r.res)) {
			check(r.tag, n)
		}
		_, err := h.Backend.Tags(ctx, r.tag, "no-such-object.example.com")
		wantCode(t, "Tags("+r.tag+", unknown)", err, errs.CodeNoEnt)
	}
}

func testNodeRole(t *testing.T, h Harness) {
	ctx := t.Context()
	masters := 0
	for _, n := range must[[]string](t, "Names")(h.Backend.Names(ctx, backend.ResNode)) {
		role, err := h.Backend.NodeRole(ctx, n)
		if err != nil || !slices.Contains(roles, role) {
			t.Errorf("NodeRole(%s) = %q, %v", n, role, err)
		}
		if role == "master" {
			masters++
		}
	}
	if masters != 1 {
		t.Errorf("%d master nodes", masters)
	}
	_, err := h.Backend.NodeRole(ctx, "no-such-node.example.com")
	wantCode(t, "NodeRole(unknown)", err, errs.CodeNoEnt)
}

func testInstanceConsole(t *testing.T, h Harness) {
	ctx := t.Context()
	_, err := h.Backend.InstanceConsole(ctx, "no-such-instance.example.com")
	wantCode(t, "InstanceConsole(unknown)", err, errs.CodeNoEnt)
	res := must[*backend.QueryResult](t, "Query(instance)")(h.Backend.Query(ctx, backend.ResInstance,
		[]string{"name", "oper_state"}, nil, backend.QueryLimits{}))
	var stopped, running []string
	for _, row := range res.Data {
		name, _ := row[0].Value.(string)
		if up, ok := row[1].Value.(bool); ok && row[1].Status == backend.CellNormal {
			if up {
				running = append(running, name)
			} else {
				stopped = append(stopped, name)
			}
		}
	}
	for _, name := range stopped {
		// Ganeti's R_2_instances_name_console: "Instance console
		// unavailable" (503).
		_, err := h.Backend.InstanceConsole(ctx, name)
		if de, ok := errs.As(err); !ok || de.Class != errs.ClassUnavailable {
			t.Errorf("InstanceConsole(%s), a stopped instance: %v, want unavailable", name, err)
		}
	}
	for _, name := range running {
		info, err := h.Backend.InstanceConsole(ctx, name)
		if err != nil || info["instance"] != name || info["kind"] == nil {
			t.Errorf("InstanceConsole(%s) = %v, %v", name, info, err)
		}
	}
	if len(stopped) == 0 {
		t.Log("no stopped instance: the console error is not checked")
	}
}

func testOSNames(t *testing.T, h Harness) {
	names := must[[]string](t, "OSNames")(h.Backend.OSNames(t.Context()))
	for _, n := range names {
		if n == "" {
			t.Errorf("OSNames() = %q", names)
		}
	}
}

// Jobs --------------------------------------------------------------------------------

// jobFields are the fields the suite waits on.
var jobFields = []string{"id", "status"}

// unique returns a name unique to this run of the test.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// tagOp is an OP_TAGS_SET (or DEL) of the cluster tag tag, whose reason
// trail carries mark.
func tagOp(del bool, tag, mark string) *rapiv2.OpCode {
	kind, prio, dry := rapiv2.TagKind_TAG_KIND_CLUSTER, rapiv2.OpPriority_OP_PRIORITY_NORMAL, false
	reason := []*rapiv2.ReasonEntry{{Source: "gnt:library:backendtest", Reason: mark, TimestampNs: time.Now().UnixNano()}}
	if del {
		return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsDel{TagsDel: &rapiv2.OpTagsDel{
			Kind: &kind, Tags: []string{tag}, DryRun: &dry, Priority: &prio, Reason: reason}}}
	}
	return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{
		Kind: &kind, Tags: []string{tag}, DryRun: &dry, Priority: &prio, Reason: reason}}}
}

func submit(t *testing.T, h Harness, ops ...*rapiv2.OpCode) int64 {
	t.Helper()
	id, err := h.Backend.Submit(t.Context(), ops, backend.SubmitOptions{})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return id
}

// waitEnd waits until job id has ended and returns its final snapshot.
func waitEnd(t *testing.T, h Harness, id int64) *backend.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var prev []any
	for {
		info, _, changed, err := h.Backend.WaitForChange(ctx, id, jobFields, prev, -1, 5*time.Second)
		if err != nil {
			t.Fatalf("waiting for job %d: %v", id, err)
		}
		if changed {
			prev = info
			if s, _ := info[1].(string); backend.Finalized(s) {
				break
			}
		}
	}
	job, ok, err := h.Backend.Job(ctx, id)
	if err != nil || !ok || !job.Finalized() {
		t.Fatalf("Job(%d) after it ended: %+v, %v, %v", id, job, ok, err)
	}
	return job
}

// finishedJob submits a tag job and waits for its end.
func finishedJob(t *testing.T, h Harness) *backend.Job {
	t.Helper()
	h.need(t, TagJobs)
	tag := unique("backendtest")
	t.Cleanup(func() { removeTag(t, h, tag) })
	return waitEnd(t, h, submit(t, h, tagOp(false, tag, tag)))
}

// removeTag removes a cluster tag the suite added.
func removeTag(t *testing.T, h Harness, tag string) {
	tags, err := h.Backend.Tags(context.Background(), backend.TagCluster, "")
	if err != nil || !slices.Contains(tags, tag) {
		return
	}
	if _, err := h.Backend.Submit(context.Background(), []*rapiv2.OpCode{tagOp(true, tag, tag)}, backend.SubmitOptions{}); err != nil {
		t.Errorf("removing the tag %s: %v", tag, err)
	}
}

func testSubmitTagJob(t *testing.T, h Harness) {
	h.need(t, TagJobs)
	ctx := t.Context()
	tag := unique("backendtest")
	t.Cleanup(func() { removeTag(t, h, tag) })
	id := submit(t, h, tagOp(false, tag, tag))
	job, ok, err := h.Backend.Job(ctx, id)
	if err != nil || !ok || job.ID != id || len(job.Ops) != 1 || backend.OpID(job.Ops[0]) != "OP_TAGS_SET" {
		t.Fatalf("Job(%d) = %+v, %v, %v", id, job, ok, err)
	}
	if len(job.OpStatus) != 1 || job.ReceivedTS == nil {
		t.Errorf("Job(%d): opstatus %q, received %v", id, job.OpStatus, job.ReceivedTS)
	}
	if ids := must[[]int64](t, "JobIDs")(h.Backend.JobIDs(ctx)); !slices.Contains(ids, id) || !slices.IsSorted(ids) {
		t.Errorf("JobIDs() = %v, want sorted with %d", ids, id)
	}
	list := must[[]*backend.Job](t, "Jobs")(h.Backend.Jobs(ctx))
	if !slices.ContainsFunc(list, func(j *backend.Job) bool { return j.ID == id }) {
		t.Errorf("Jobs() lacks job %d", id)
	}
	if !slices.IsSortedFunc(list, func(a, b *backend.Job) int { return int(a.ID - b.ID) }) {
		t.Error("Jobs() not in id order")
	}
	end := waitEnd(t, h, id)
	if end.Status != backend.StatusSuccess || end.EndTS == nil || !slices.Equal(end.OpStatus, []string{backend.StatusSuccess}) {
		t.Errorf("job %d ended %s (opstatus %q, end %v)", id, end.Status, end.OpStatus, end.EndTS)
	}
	if tags := must[[]string](t, "Tags")(h.Backend.Tags(ctx, backend.TagCluster, "")); !slices.Contains(tags, tag) {
		t.Errorf("cluster tags %q lack %s after the job", tags, tag)
	}
	// A later id for the next job.
	if next := submit(t, h, tagOp(true, tag, tag)); next <= id {
		t.Errorf("job %d after job %d", next, id)
	} else {
		waitEnd(t, h, next)
	}
}

// elapsed runs fn and returns how long it took.
func elapsed(fn func()) time.Duration {
	start := time.Now()
	fn()
	return time.Since(start)
}

func testWaitFinished(t *testing.T, h Harness) {
	job := finishedJob(t, h)
	ctx := t.Context()
	// An ended job answers at once, even when nothing differs.
	var (
		info    []any
		changed bool
		err     error
	)
	took := elapsed(func() {
		info, _, changed, err = h.Backend.WaitForChange(ctx, job.ID, jobFields, []any{job.ID, job.Status}, -1, 20*time.Second)
	})
	if err != nil || !changed || len(info) != 2 || info[1] != job.Status {
		t.Errorf("WaitForChange of an ended job = %v, %v, %v", info, changed, err)
	}
	if took > 10*time.Second {
		t.Errorf("WaitForChange of an ended job took %v", took)
	}
	// Cancel of an ended job: Ganeti's answer (capture 80).
	ok, msg, err := h.Backend.Cancel(ctx, job.ID)
	if err != nil || ok || msg != fmt.Sprintf("Job %d not found in queue", job.ID) {
		t.Errorf("Cancel of an ended job = %v, %q, %v", ok, msg, err)
	}
}

// heldJob submits a tag job that a PAUSE filter rule holds in the queue;
// the cleanup cancels it and removes the rule.
func heldJob(t *testing.T, h Harness) int64 {
	t.Helper()
	h.need(t, PauseFilter)
	h.need(t, TagJobs)
	mark := unique("backendtest-hold")
	uuid, err := h.Backend.ReplaceFilter(t.Context(), "", backend.FilterRuleSpec{
		Predicates: []any{[]any{"reason", []any{"=", "reason", mark}}},
		Action:     backend.FilterPause,
	})
	if err != nil {
		t.Fatalf("ReplaceFilter (PAUSE): %v", err)
	}
	t.Cleanup(func() {
		if err := h.Backend.DeleteFilter(context.Background(), uuid); err != nil {
			t.Errorf("DeleteFilter(%s): %v", uuid, err)
		}
	})
	id := submit(t, h, tagOp(false, mark, mark))
	t.Cleanup(func() { _, _, _ = h.Backend.Cancel(context.Background(), id) })
	job, ok, err := h.Backend.Job(t.Context(), id)
	if err != nil || !ok || job.Status != backend.StatusQueued {
		t.Fatalf("the held job %d: %+v, %v, %v", id, job, ok, err)
	}
	return id
}

func testWaitHeld(t *testing.T, h Harness) {
	id := heldJob(t, h)
	ctx := t.Context()
	// prevInfo differs: the current values at once.
	info, _, changed, err := h.Backend.WaitForChange(ctx, id, jobFields, []any{id, "bogus"}, -1, 20*time.Second)
	if err != nil || !changed || len(info) != 2 || info[1] != backend.StatusQueued {
		t.Fatalf("WaitForChange with other previous values = %v, %v, %v", info, changed, err)
	}
	serial := int64(-1)
	if job, ok, _ := h.Backend.Job(ctx, id); ok {
		if log := job.LogSince(-1); len(log) > 0 {
			serial = log[len(log)-1].Serial
		}
	}
	// Nothing differs: changed is false once the timeout has passed.
	var logs [][]any
	took := elapsed(func() {
		info, logs, changed, err = h.Backend.WaitForChange(ctx, id, jobFields, info, serial, 300*time.Millisecond)
	})
	if err != nil || changed || info != nil || logs != nil {
		t.Errorf("WaitForChange without a change = %v, %v, %v, %v", info, logs, changed, err)
	}
	if took < 250*time.Millisecond || took > 10*time.Second {
		t.Errorf("WaitForChange with a timeout of 300ms took %v", took)
	}
	// A canceled context ends the wait promptly.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	took = elapsed(func() {
		_, _, changed, err = h.Backend.WaitForChange(cctx, id, jobFields, []any{id, backend.StatusQueued}, serial, 30*time.Second)
	})
	if err == nil || changed {
		t.Errorf("WaitForChange with a canceled context = %v, %v", changed, err)
	}
	if took > 5*time.Second {
		t.Errorf("WaitForChange took %v after its context was canceled", took)
	}
	// Canceling a queued job dequeues it (capture 81), and a waiter
	// sees it end.
	done := make(chan error, 1)
	go func() {
		info, _, changed, err := h.Backend.WaitForChange(ctx, id, jobFields, []any{id, backend.StatusQueued}, serial, 20*time.Second)
		if err == nil && (!changed || info[1] != backend.StatusCanceled) {
			err = fmt.Errorf("answered %v, %v", info, changed)
		}
		done <- err
	}()
	ok, msg, err := h.Backend.Cancel(ctx, id)
	if err != nil || !ok || msg != fmt.Sprintf("Dequeued job %d", id) {
		t.Errorf("Cancel of a queued job = %v, %q, %v", ok, msg, err)
	}
	if err := <-done; err != nil {
		t.Errorf("WaitForChange while the job is canceled: %v", err)
	}
}

// drain reads a watch until its channel closes (at most d).
func drain(t *testing.T, ch <-chan *backend.Job, d time.Duration) []*backend.Job {
	t.Helper()
	var out []*backend.Job
	timeout := time.After(d)
	for {
		select {
		case j, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, j)
		case <-timeout:
			t.Fatalf("the watch did not end within %v (%d snapshots)", d, len(out))
		}
	}
}

func testWatchFinished(t *testing.T, h Harness) {
	job := finishedJob(t, h)
	ch, err := h.Backend.Watch(t.Context(), job.ID)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	snaps := drain(t, ch, 10*time.Second)
	if len(snaps) != 1 || snaps[0].ID != job.ID || snaps[0].Status != job.Status {
		t.Errorf("Watch of an ended job delivered %d snapshots, want the final one", len(snaps))
	}
}

func testWatchHeld(t *testing.T, h Harness) {
	id := heldJob(t, h)
	// A canceled context closes the channel promptly.
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := h.Backend.Watch(ctx, id)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	first := <-ch
	if first == nil || first.ID != id || first.Status != backend.StatusQueued {
		t.Fatalf("first snapshot %+v", first)
	}
	cancel()
	drain(t, ch, 5*time.Second)
	// A watch sees the job end, its last snapshot the final one.
	ch, err = h.Backend.Watch(t.Context(), id)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	<-ch
	if ok, msg, err := h.Backend.Cancel(t.Context(), id); !ok || err != nil {
		t.Fatalf("Cancel: %v, %q, %v", ok, msg, err)
	}
	snaps := drain(t, ch, 10*time.Second)
	if len(snaps) == 0 || snaps[len(snaps)-1].Status != backend.StatusCanceled {
		t.Errorf("watch after the cancel: %d snapshots, the last not canceled", len(snaps))
	}
	for _, s := range snaps[:max(len(snaps)-1, 0)] {
		if s.Finalized() {
			t.Errorf("a final snapshot (%s) before the last", s.Status)
		}
	}
}

func testUnknownJob(t *testing.T, h Harness) {
	ctx := t.Context()
	const id = 1 << 40
	job, ok, err := h.Backend.Job(ctx, id)
	if job != nil || ok || err != nil {
		t.Errorf("Job(unknown) = %v, %v, %v", job, ok, err)
	}
	_, _, _, err = h.Backend.WaitForChange(ctx, id, jobFields, nil, -1, time.Second)
	wantCode(t, "WaitForChange(unknown)", err, errs.CodeNoEnt)
	_, err = h.Backend.Watch(ctx, id)
	wantCode(t, "Watch(unknown)", err, errs.CodeNoEnt)
	// Capture 82: DELETE /2/jobs/999999.
	ok, msg, err := h.Backend.Cancel(ctx, id)
	if ok || err != nil || msg != fmt.Sprintf("Job %d not found in queue", id) {
		t.Errorf("Cancel(unknown) = %v, %q, %v", ok, msg, err)
	}
	if ids := must[[]int64](t, "JobIDs")(h.Backend.JobIDs(ctx)); slices.Contains(ids, id) {
		t.Errorf("JobIDs() lists the unknown job")
	}
}

func testCancelRunning(t *testing.T, h Harness) {
	h.need(t, TestDelay)
	if !h.Backend.Supports("OP_TEST_DELAY") {
		t.Fatal("Supports(OP_TEST_DELAY) is false, and the harness does not say it lacks it")
	}
	ctx := t.Context()
	dur, onMaster := 1.0, true
	id := submit(t, h, &rapiv2.OpCode{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{Duration: &dur, OnMaster: &onMaster}}})
	ch, err := h.Backend.Watch(ctx, id)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	for j := range ch {
		if j.Status == backend.StatusRunning {
			ok, msg, err := h.Backend.Cancel(ctx, id)
			if ok || err != nil || msg != fmt.Sprintf("Job %d is no longer waiting in the queue", id) {
				t.Errorf("Cancel of a running job = %v, %q, %v", ok, msg, err)
			}
			break
		}
		if j.Finalized() {
			t.Fatalf("the job ended (%s) before it was seen running", j.Status)
		}
	}
	if end := waitEnd(t, h, id); end.Status != backend.StatusSuccess {
		t.Errorf("the delay job ended %s", end.Status)
	}
	if h.Backend.Supports("OP_NO_SUCH_OPCODE") {
		t.Error("Supports(OP_NO_SUCH_OPCODE) is true")
	}
}

// Filter rules ------------------------------------------------------------------------

// filterFields are the fields of a rule the suite reads.
var filterFields = []string{"uuid", "priority", "predicates", "action"}

func getRule(t *testing.T, h Harness, uuid string) []backend.Cell {
	t.Helper()
	cells, err := h.Backend.Get(t.Context(), backend.ResFilter, uuid, filterFields)
	if err != nil {
		t.Fatalf("Get(filter, %s): %v", uuid, err)
	}
	return cells
}

func testFilterRules(t *testing.T, h Harness) {
	ctx := t.Context()
	never := []any{[]any{"jobid", []any{"=", "id", int64(-1)}}}
	uuid, err := h.Backend.ReplaceFilter(ctx, "", backend.FilterRuleSpec{Priority: 7, Predicates: never, Action: backend.FilterAccept})
	if err != nil {
		t.Fatalf("ReplaceFilter(new): %v", err)
	}
	t.Cleanup(func() { _ = h.Backend.DeleteFilter(context.Background(), uuid) })
	if names := must[[]string](t, "Names(filter)")(h.Backend.Names(ctx, backend.ResFilter)); !slices.Contains(names, uuid) {
		t.Errorf("Names(filter) = %q lacks the new rule %s", names, uuid)
	}
	cells := getRule(t, h, uuid)
	if cells[0].Value != uuid || cells[1].Value != int64(7) || cells[3].Value != backend.FilterAccept {
		t.Errorf("the new rule: %+v", cells)
	}
	// Replaced by UUID: same UUID, new values.
	again, err := h.Backend.ReplaceFilter(ctx, uuid, backend.FilterRuleSpec{Priority: 9, Predicates: never, Action: []any{backend.FilterRateLimit, int64(3)}})
	if err != nil || again != uuid {
		t.Fatalf("ReplaceFilter(%s) = %s, %v", uuid, again, err)
	}
	cells = getRule(t, h, uuid)
	if cells[1].Value != int64(9) || fmt.Sprint(cells[3].Value) != "[RATE_LIMIT 3]" {
		t.Errorf("the replaced rule: %+v", cells)
	}
	// A UUID not known yet creates the rule with it.
	chosen := "0badc0de-0000-4000-8000-000000000001"
	if got, err := h.Backend.ReplaceFilter(ctx, chosen, backend.FilterRuleSpec{Predicates: never}); err != nil || got != chosen {
		t.Fatalf("ReplaceFilter(%s), a new UUID = %s, %v", chosen, got, err)
	}
	if c := getRule(t, h, chosen); c[3].Value != backend.FilterContinue {
		t.Errorf("a rule without action: action %v, want CONTINUE", c[3].Value)
	}
	for _, u := range []string{uuid, chosen} {
		if err := h.Backend.DeleteFilter(ctx, u); err != nil {
			t.Errorf("DeleteFilter(%s): %v", u, err)
		}
	}
	if names := must[[]string](t, "Names(filter)")(h.Backend.Names(ctx, backend.ResFilter)); slices.Contains(names, uuid) || slices.Contains(names, chosen) {
		t.Errorf("Names(filter) = %q after the deletes", names)
	}
	err = h.Backend.DeleteFilter(ctx, uuid)
	wantCode(t, "DeleteFilter of a deleted rule", err, errs.CodeNoEnt)
}

func testFilterRuleErrors(t *testing.T, h Harness) {
	ctx := t.Context()
	before := must[[]string](t, "Names(filter)")(h.Backend.Names(ctx, backend.ResFilter))
	cases := []struct {
		name string
		uuid string
		spec backend.FilterRuleSpec
	}{
		{"negative priority", "", backend.FilterRuleSpec{Priority: -1}},
		{"unknown action", "", backend.FilterRuleSpec{Action: "EXPLODE"}},
		{"rate limit without a number", "", backend.FilterRuleSpec{Action: []any{backend.FilterRateLimit}}},
		{"unknown predicate kind", "", backend.FilterRuleSpec{Predicates: []any{[]any{"weather", []any{"=", "sky", "blue"}}}}},
		{"malformed predicate filter", "", backend.FilterRuleSpec{Predicates: []any{[]any{"jobid", []any{"~~", "id"}}}}},
		{"malformed UUID", "not-a-uuid", backend.FilterRuleSpec{}},
	}
	for _, c := range cases {
		uuid, err := h.Backend.ReplaceFilter(ctx, c.uuid, c.spec)
		wantBadRequest(t, "ReplaceFilter with a "+c.name, err)
		if err == nil {
			_ = h.Backend.DeleteFilter(ctx, uuid)
		}
	}
	if after := must[[]string](t, "Names(filter)")(h.Backend.Names(ctx, backend.ResFilter)); !slices.Equal(before, after) {
		t.Errorf("refused rules changed the rules: %q, then %q", before, after)
	}
	err := h.Backend.DeleteFilter(ctx, "00000000-0000-4000-8000-00000000dead")
	wantCode(t, "DeleteFilter(unknown)", err, errs.CodeNoEnt)
}
