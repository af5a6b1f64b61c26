package jobs

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// traced is an engine config with a span recorder and a manual metric
// reader.
type traced struct {
	sr     *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
}

func newTraced() *traced {
	sr := tracetest.NewSpanRecorder()
	r := sdkmetric.NewManualReader()
	return &traced{sr: sr, tp: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr)), reader: r}
}

func (tr *traced) configure(c *Config) {
	c.TracerProvider = tr.tp
	c.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tr.reader))
}

// request starts a span standing for the submitting request.
func (tr *traced) request(user string) (context.Context, trace.Span) {
	ctx := WithOrigin(context.Background(), Origin{User: user, Route: "PUT /2/tags", RPC: "/ganeti.rapi.v2.TagService/AddClusterTags"})
	return tr.tp.Tracer("test").Start(ctx, "request")
}

// spans returns the ended spans named name.
func (tr *traced) spans(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tr.sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// one returns the one ended span named name whose attributes include
// attr.
func (tr *traced) one(t *testing.T, name string, attr attribute.KeyValue) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range tr.spans(name) {
		if hasAttr(s, attr) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %q spans with %v; ended spans: %v", len(found), name, attr, spanNames(tr.sr.Ended()))
	}
	return found[0]
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func hasAttr(s sdktrace.ReadOnlySpan, kv attribute.KeyValue) bool {
	for _, a := range s.Attributes() {
		if a.Key == kv.Key && a.Value.String() == kv.Value.String() {
			return true
		}
	}
	return false
}

func attrOf(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, a := range s.Attributes() {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return ""
}

func sameSpan(a, b trace.SpanContext) bool {
	return a.TraceID() == b.TraceID() && a.SpanID() == b.SpanID()
}

func isChild(child, parent sdktrace.ReadOnlySpan) bool {
	return child.Parent().SpanID() == parent.SpanContext().SpanID() &&
		child.SpanContext().TraceID() == parent.SpanContext().TraceID()
}

// TestTraceJob checks the spans of a job: the submission is a child of the
// request, the job a root linked to the submission, the opcode a child of
// the job with the object it names, and the store transactions children
// of the submission and of the opcode.
func TestTraceJob(t *testing.T) {
	tr := newTraced()
	v := newEnv(t, 3, tr.configure)
	v.e.Start()
	ctx, req := tr.request("alice")
	id, err := v.e.Submit(ctx, []*rapiv2.OpCode{tagsSet(kInstance, "inst1.example.com", "traced")}, SubmitOptions{})
	req.End()
	if err != nil {
		t.Fatal(err)
	}
	if j := v.wait(id); j.Status != StatusSuccess {
		t.Fatalf("job: %s", j.Status)
	}
	request := tr.spans("request")[0]
	submit := tr.one(t, "job.submit", telemetry.AttrJobID.Int64(id))
	if !isChild(submit, request) || !hasAttr(submit, telemetry.AttrUser.String("alice")) || !hasAttr(submit, telemetry.AttrOpcode.String("OP_TAGS_SET")) {
		t.Errorf("submit span: parent %v (request %v), attributes %v", submit.Parent(), request.SpanContext(), submit.Attributes())
	}
	run := tr.one(t, "job.run", telemetry.AttrJobID.Int64(id))
	if run.Parent().IsValid() || run.SpanContext().TraceID() == request.SpanContext().TraceID() {
		t.Errorf("job span is not a root of its own trace: parent %v", run.Parent())
	}
	if links := run.Links(); len(links) != 1 || !sameSpan(links[0].SpanContext, submit.SpanContext()) {
		t.Errorf("job span links = %+v, want the submission %v", links, submit.SpanContext())
	}
	for _, kv := range []attribute.KeyValue{telemetry.AttrUser.String("alice"), telemetry.AttrRoute.String("PUT /2/tags"), telemetry.AttrJobStatus.String("success")} {
		if !hasAttr(run, kv) {
			t.Errorf("job span lacks %v: %v", kv, run.Attributes())
		}
	}
	op := tr.one(t, "opcode OP_TAGS_SET", telemetry.AttrJobID.Int64(id))
	if !isChild(op, run) {
		t.Errorf("opcode span parent %v, want the job %v", op.Parent(), run.SpanContext())
	}
	for _, kv := range []attribute.KeyValue{telemetry.AttrInstance.String("inst1.example.com"), telemetry.AttrOpStatus.String("success"), telemetry.AttrSummary.String("TAGS_SET")} {
		if !hasAttr(op, kv) {
			t.Errorf("opcode span lacks %v: %v", kv, op.Attributes())
		}
	}
	if op.Status().Code == codes.Error {
		t.Errorf("opcode span status %v", op.Status())
	}
	// The opcode's transaction ends just after the job is seen ended.
	var submitCommit, opCommit bool
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !(submitCommit && opCommit); time.Sleep(time.Millisecond) {
		for _, c := range tr.spans("store.commit") {
			submitCommit = submitCommit || isChild(c, submit)
			opCommit = opCommit || isChild(c, op)
		}
	}
	if !submitCommit || !opCommit {
		t.Errorf("store.commit spans: child of the submission %v, of the opcode %v", submitCommit, opCommit)
	}
	// The trace context is stored with the job.
	v.e.mu.Lock()
	tp := v.e.jobs[id].rec.Trace["traceparent"]
	v.e.mu.Unlock()
	if want := "00-" + submit.SpanContext().TraceID().String() + "-" + submit.SpanContext().SpanID().String() + "-01"; tp != want {
		t.Errorf("stored traceparent %q, want %q", tp, want)
	}
}

// TestTraceFailedOpcode: a failing opcode's span records Ganeti's error
// class and classification, and the job span its status.
func TestTraceFailedOpcode(t *testing.T) {
	tr := newTraced()
	v := newEnv(t, 3, tr.configure)
	v.e.Start()
	id := v.submit(tagsSet(kInstance, "nosuch.example.com", "x"))
	if j := v.wait(id); j.Status != StatusError {
		t.Fatalf("job: %s", j.Status)
	}
	j, _ := v.e.Get(id)
	class, msg, code := errorOf(j.OpResult[0])
	if class != "OpPrereqError" || code != "unknown_entity" {
		t.Fatalf("opresult %s", jsonOf(t, j.OpResult))
	}
	op := tr.one(t, "opcode OP_TAGS_SET", telemetry.AttrJobID.Int64(id))
	if !hasAttr(op, telemetry.AttrErrClass.String("OpPrereqError")) || !hasAttr(op, telemetry.AttrErrCode.String("unknown_entity")) ||
		!hasAttr(op, telemetry.AttrOpStatus.String("error")) || !hasAttr(op, telemetry.AttrInstance.String("nosuch.example.com")) {
		t.Errorf("opcode span attributes %v", op.Attributes())
	}
	if op.Status().Code != codes.Error || op.Status().Description != msg {
		t.Errorf("opcode span status %+v, want error %q", op.Status(), msg)
	}
	run := tr.one(t, "job.run", telemetry.AttrJobID.Int64(id))
	if !hasAttr(run, telemetry.AttrJobStatus.String("error")) || run.Status().Code != codes.Error {
		t.Errorf("job span: %v %v", run.Attributes(), run.Status())
	}
	// A submission outside a request is a trace of its own, which the job
	// links to.
	submit := tr.one(t, "job.submit", telemetry.AttrJobID.Int64(id))
	if submit.Parent().IsValid() || len(run.Links()) != 1 || !sameSpan(run.Links()[0].SpanContext, submit.SpanContext()) {
		t.Errorf("submit parent %v, job links %v", submit.Parent(), run.Links())
	}
}

// TestTraceLockWait: an opcode that waits for a lock gets a lock.wait span
// under its opcode span, and the wait is measured.
func TestTraceLockWait(t *testing.T) {
	tr := newTraced()
	v := newEnv(t, 3, tr.configure)
	hold := delay(0.3)
	hold.NoLocks = proto.Bool(false)
	first := v.submit(opOf(hold))
	v.e.Start()
	waitStatus(t, v.e, first, "running")
	wait := delay(0)
	wait.NoLocks = proto.Bool(false)
	second := v.submit(opOf(wait))
	v.wait(first)
	if j := v.wait(second); j.Status != StatusSuccess {
		t.Fatalf("second job: %s", j.Status)
	}
	op := tr.one(t, "opcode OP_TEST_DELAY", telemetry.AttrJobID.Int64(second))
	lw := tr.one(t, "lock.wait", telemetry.AttrJobID.Int64(second))
	if !isChild(lw, op) {
		t.Errorf("lock.wait parent %v, want the opcode %v", lw.Parent(), op.SpanContext())
	}
	if locks := attrOf(lw, telemetry.AttrLocks); locks == "" || attrOf(lw, telemetry.AttrBlockedOn) == "" {
		t.Errorf("lock.wait attributes %v", lw.Attributes())
	}
	if len(tr.spans("lock.wait")) != 1 {
		t.Errorf("%d lock.wait spans, want 1 (the first job got its locks at once)", len(tr.spans("lock.wait")))
	}
	h := histogram(t, tr.reader, "ganeti.lock.wait.duration", telemetry.AttrOpcode.String("OP_TEST_DELAY"))
	if h.Count != 2 || h.Sum < lw.EndTime().Sub(lw.StartTime()).Seconds()*0.5 {
		t.Errorf("lock wait histogram: count %d sum %v (span %v)", h.Count, h.Sum, lw.EndTime().Sub(lw.StartTime()))
	}
}

// TestTraceSurvivesRestart: a job submitted before a restart links to its
// submission when it runs after it.
func TestTraceSurvivesRestart(t *testing.T) {
	tr := newTraced()
	st := newTestStore(t)
	model := openModel(t, st, 3)
	e1, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Logger: quiet, TracerProvider: tr.tp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, req := tr.request("bob")
	id, err := e1.Submit(ctx, []*rapiv2.OpCode{tagsSet(kCluster, "", "later")}, SubmitOptions{})
	req.End()
	if err != nil {
		t.Fatal(err)
	}
	if err := e1.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	submit := tr.one(t, "job.submit", telemetry.AttrJobID.Int64(id))

	model2, err := cluster.Open(st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model2, Logger: quiet, TracerProvider: tr.tp})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Stop(context.Background())
	e2.Start()
	if j := waitJob(t, e2, id); j.Status != StatusSuccess {
		t.Fatalf("job: %s", j.Status)
	}
	run := tr.one(t, "job.run", telemetry.AttrJobID.Int64(id))
	if links := run.Links(); len(links) != 1 || !sameSpan(links[0].SpanContext, submit.SpanContext()) {
		t.Errorf("job span links after a restart = %+v, want %v", links, submit.SpanContext())
	}
	if !hasAttr(run, telemetry.AttrUser.String("bob")) {
		t.Errorf("job span attributes after a restart: %v", run.Attributes())
	}
}

// TestJobMetrics reads the job metrics after a known workload.
func TestJobMetrics(t *testing.T) {
	tr := newTraced()
	v := newEnv(t, 3, tr.configure)
	v.e.Start()
	var ids []int64
	for i := 0; i < 3; i++ {
		ids = append(ids, v.submit(tagsSet(kCluster, "", "m")))
	}
	ids = append(ids, v.submit(tagsSet(kInstance, "nosuch.example.com", "m")))
	ids = append(ids, v.submit(opOf(delay(0))))
	for _, id := range ids {
		v.wait(id)
	}
	rm := collect(t, tr.reader)
	sums := map[string]int64{}
	for _, dp := range sumPoints(t, rm, "ganeti.jobs.finished") {
		st, _ := dp.Attributes.Value(telemetry.AttrJobStatus)
		op, _ := dp.Attributes.Value(telemetry.AttrOpcode)
		sums[st.AsString()+" "+op.AsString()] += dp.Value
	}
	want := map[string]int64{"success OP_TAGS_SET": 3, "error OP_TAGS_SET": 1, "success OP_TEST_DELAY": 1}
	if !mapsEqual(sums, want) {
		t.Errorf("ganeti.jobs.finished = %v, want %v", sums, want)
	}
	submitted := map[string]int64{}
	for _, dp := range sumPoints(t, rm, "ganeti.jobs.submitted") {
		op, _ := dp.Attributes.Value(telemetry.AttrOpcode)
		submitted[op.AsString()] += dp.Value
	}
	if !mapsEqual(submitted, map[string]int64{"OP_TAGS_SET": 4, "OP_TEST_DELAY": 1}) {
		t.Errorf("ganeti.jobs.submitted = %v", submitted)
	}
	if h := histogram(t, tr.reader, "ganeti.opcode.duration", telemetry.AttrOpcode.String("OP_TAGS_SET"), telemetry.AttrOpStatus.String("error")); h.Count != 1 {
		t.Errorf("failed OP_TAGS_SET durations: %d", h.Count)
	}
	if h := histogram(t, tr.reader, "ganeti.job.duration", telemetry.AttrOpcode.String("OP_TAGS_SET"), telemetry.AttrJobStatus.String("success")); h.Count != 3 {
		t.Errorf("successful OP_TAGS_SET job durations: %d", h.Count)
	}
	// Nothing is left in the queue.
	for _, m := range testutil.MetricsNamed(rm, "ganeti.jobs.active") {
		for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
			if dp.Value != 0 {
				t.Errorf("ganeti.jobs.active %v = %d", dp.Attributes, dp.Value)
			}
		}
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func collect(t *testing.T, r *sdkmetric.ManualReader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

func sumPoints(t *testing.T, rm metricdata.ResourceMetrics, name string) []metricdata.DataPoint[int64] {
	t.Helper()
	ms := testutil.MetricsNamed(rm, name)
	if len(ms) != 1 {
		t.Fatalf("%d metrics named %s", len(ms), name)
	}
	return ms[0].Data.(metricdata.Sum[int64]).DataPoints
}

// histogram returns the data point of the histogram name whose attributes
// include attrs.
func histogram(t *testing.T, r *sdkmetric.ManualReader, name string, attrs ...attribute.KeyValue) metricdata.HistogramDataPoint[float64] {
	t.Helper()
	rm := collect(t, r)
	for _, m := range testutil.MetricsNamed(rm, name) {
		for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
			if slices.IndexFunc(attrs, func(kv attribute.KeyValue) bool {
				v, ok := dp.Attributes.Value(kv.Key)
				return !ok || v.String() != kv.Value.String()
			}) < 0 {
				return dp
			}
		}
	}
	t.Fatalf("no %s data point with %v", name, attrs)
	return metricdata.HistogramDataPoint[float64]{}
}

// TestTraceBuiltinAllocator: when the named iallocator is not installed,
// the built-in allocator's run is a span under the opcode, with the
// request type, the instance and the node it chose.
func TestTraceBuiltinAllocator(t *testing.T) {
	tr := newTraced()
	v := newEnv(t, 3, tr.configure)
	v.e.Start()
	j := v.run(createAlloc("traced.example.com", "file", "no-such-allocator", 1024))
	if j.Status != StatusSuccess {
		t.Fatalf("job: %s %s", j.Status, jsonOf(t, j.OpResult))
	}
	id := j.ID
	var pnode string
	for _, inst := range v.model.State().Config().Instances {
		if inst.Name == "traced.example.com" {
			pnode = v.model.State().Config().Nodes[inst.PrimaryNode].Name
		}
	}
	if pnode == "" {
		t.Fatal("no instance traced.example.com after the job")
	}
	op := tr.one(t, "opcode OP_INSTANCE_CREATE", telemetry.AttrJobID.Int64(id))
	alloc := tr.one(t, "iallocator builtin", telemetry.AttrJobID.Int64(id))
	if !isChild(alloc, op) {
		t.Errorf("allocator span's parent %v, want the opcode span %v", alloc.Parent().SpanID(), op.SpanContext().SpanID())
	}
	for _, kv := range []attribute.KeyValue{
		telemetry.AttrAllocator.String("no-such-allocator"), attribute.String("ganeti.iallocator.mode", "allocate"),
		telemetry.AttrInstance.StringSlice([]string{"traced.example.com"}), telemetry.AttrNode.StringSlice([]string{pnode}),
	} {
		if !hasAttr(alloc, kv) {
			t.Errorf("allocator span has no %v: %v", kv, alloc.Attributes())
		}
	}
}

// TestTraceFilterCommit: a change of the filter rules is a store.commit
// span in the caller's trace; a refused one carries its error class.
func TestTraceFilterCommit(t *testing.T) {
	tr := newTraced()
	v := newEnv(t, 3, tr.configure)
	v.e.Start()
	const uuid = "0000aaaa-0000-4000-8000-000000000001"
	ctx, req := tr.request("admin")
	if err := v.e.PutFilter(ctx, &cluster.FilterRule{UUID: uuid, Action: "CONTINUE", Predicates: []any{}, ReasonTrail: []any{}}); err != nil {
		t.Fatal(err)
	}
	if err := v.e.DeleteFilter(ctx, "0000AAAA-0000-4000-8000-000000000002"); err == nil {
		t.Fatal("deleting an unknown rule succeeded")
	}
	req.End()
	put := tr.one(t, "store.commit", attribute.String("ganeti.filter.change", "put"))
	del := tr.one(t, "store.commit", attribute.String("ganeti.filter.change", "delete"))
	for _, s := range []sdktrace.ReadOnlySpan{put, del} {
		if s.Parent().SpanID() != req.SpanContext().SpanID() || s.SpanContext().TraceID() != req.SpanContext().TraceID() {
			t.Errorf("%v: parent %v, want the request span", s.Attributes(), s.Parent())
		}
	}
	if !hasAttr(put, attribute.String("ganeti.filter.uuid", uuid)) || put.Status().Code == codes.Error {
		t.Errorf("put span %v %v", put.Attributes(), put.Status())
	}
	if !hasAttr(del, telemetry.AttrErrClass.String("OpPrereqError")) || !hasAttr(del, telemetry.AttrErrCode.String("unknown_entity")) || del.Status().Code != codes.Error {
		t.Errorf("delete span %v %v", del.Attributes(), del.Status())
	}
	if _, ok := v.model.State().Config().Filters[uuid]; !ok {
		t.Error("the rule was not committed")
	}
}
