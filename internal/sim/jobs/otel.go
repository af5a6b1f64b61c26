package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
)

// Tracing and metrics of the job engine (OpenTelemetry API only; the
// server wires the SDK).
//
// A submission is a span ("job.submit") in the submitting request's trace;
// its trace context is stored with the job (record.Trace), so it survives
// a restart. When a job runs it gets a root span of its own ("job.run")
// that links back to the submission; each opcode is a child span
// ("opcode OP_...") of it, covering its dependency and lock waits and its
// execution; a lock wait ("lock.wait"), an allocator run ("iallocator
// ...") and the store transaction that commits an opcode ("store.commit")
// are children of the opcode.

// instrumentationName names the tracer and the meter.
const instrumentationName = "github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"

// maxListAttr caps the values of a list attribute.
const maxListAttr = 32

// originAttrs are the span attributes of the origin of a job.
func originAttrs(o Origin) []attribute.KeyValue {
	var out []attribute.KeyValue
	if o.User != "" {
		out = append(out, telemetry.AttrUser.String(o.User))
	}
	if o.Route != "" {
		out = append(out, telemetry.AttrRoute.String(o.Route))
	}
	if o.RPC != "" {
		out = append(out, telemetry.AttrRPC.String(o.RPC))
	}
	return out
}

// instruments holds the engine's tracer and metric instruments.
type instruments struct {
	tracing bool // a tracer provider was configured
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator

	submitted metric.Int64Counter
	ended     metric.Int64Counter
	jobDur    metric.Float64Histogram
	opDur     metric.Float64Histogram
	lockWait  metric.Float64Histogram

	sets sync.Map // attrKey -> metric.MeasurementOption
}

// attrKey names a metric attribute set: an opcode, and a status when key
// is set.
type attrKey struct {
	opcode string
	key    attribute.Key
	status string
}

// attrs is the measurement option of an opcode (and a status), computed
// once: building an attribute set sorts and hashes it.
func (t *instruments) attrs(opcode string, key attribute.Key, status string) metric.MeasurementOption {
	k := attrKey{opcode, key, status}
	if o, ok := t.sets.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	kvs := []attribute.KeyValue{telemetry.AttrOpcode.String(opcode)}
	if key != "" {
		kvs = append(kvs, key.String(status))
	}
	o := metric.WithAttributeSet(attribute.NewSet(kvs...))
	t.sets.Store(k, o)
	return o
}

// durationBuckets (seconds) cover fast in-store opcodes to long runs.
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

func newTelemetry(e *Engine, tp trace.TracerProvider, mp metric.MeterProvider) (*instruments, error) {
	t := &instruments{tracing: tp != nil, prop: propagation.TraceContext{}}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	t.tracer = tp.Tracer(instrumentationName)
	m := mp.Meter(instrumentationName)
	var err error
	if t.submitted, err = m.Int64Counter("ganeti.jobs.submitted", metric.WithUnit("{job}"),
		metric.WithDescription("Jobs submitted, by first opcode")); err != nil {
		return nil, err
	}
	if t.ended, err = m.Int64Counter("ganeti.jobs.finished", metric.WithUnit("{job}"),
		metric.WithDescription("Jobs that reached a final status, by status and first opcode")); err != nil {
		return nil, err
	}
	if t.jobDur, err = m.Float64Histogram("ganeti.job.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a job's submission to its end, by first opcode and status"),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, err
	}
	if t.opDur, err = m.Float64Histogram("ganeti.opcode.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from an opcode's start (dependency and lock waits included) to its end, by opcode and status"),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, err
	}
	if t.lockWait, err = m.Float64Histogram("ganeti.lock.wait.duration", metric.WithUnit("s"),
		metric.WithDescription("Time an opcode waited for its locks, by opcode"),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, err
	}
	active, err := m.Int64ObservableGauge("ganeti.jobs.active", metric.WithUnit("{job}"),
		metric.WithDescription("Unfinished jobs in the queue, by status"))
	if err != nil {
		return nil, err
	}
	depth, err := m.Int64ObservableGauge("ganeti.jobs.queue.depth", metric.WithUnit("{job}"),
		metric.WithDescription("Jobs ready to run that wait for a worker"))
	if err != nil {
		return nil, err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		counts, ready := e.queueStats()
		for _, s := range []string{StatusQueued, StatusWaiting, StatusRunning, StatusCanceling} {
			o.ObserveInt64(active, int64(counts[s]), metric.WithAttributes(telemetry.AttrJobStatus.String(s)))
		}
		o.ObserveInt64(depth, int64(ready))
		return nil
	}, active, depth)
	return t, err
}

// queueStats counts the unfinished jobs by status, and the jobs in the
// run queue.
func (e *Engine) queueStats() (map[string]int, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	counts := map[string]int{}
	for _, j := range e.jobs {
		if s := j.rec.status(); !j.pending && !Finalized(s) {
			counts[s]++
		}
	}
	return counts, len(e.runq)
}

// jobTrace is the in-memory tracing state of a job (mu held to use it).
type jobTrace struct {
	span      trace.Span      // the job's root span while it runs
	ctx       context.Context // carries span
	op        trace.Span      // the current opcode's span
	opCtx     context.Context // carries op
	opIdx     int
	opStart   time.Time
	lock      trace.Span // the current lock wait
	lockStart time.Time
	done      bool // the job's end was recorded
}

// startSubmit starts the submission span.
func (e *Engine) startSubmit(ctx context.Context, ops int) (context.Context, trace.Span) {
	if !e.tel.tracing {
		return ctx, tracenoop.Span{}
	}
	return e.tel.tracer.Start(ctx, "job.submit", trace.WithAttributes(
		append(originAttrs(originFrom(ctx)), attribute.Int("ganeti.job.opcodes", ops))...))
}

// endSubmit ends the submission span and counts the job.
// A replayed submission (an idempotency key seen before) created no job:
// it is marked on the span and not counted.
func (e *Engine) endSubmit(ctx context.Context, span trace.Span, id int64, ids []string, replayed bool, err error) {
	if err != nil {
		if span.IsRecording() {
			recordError(span, err)
		}
		span.End()
		return
	}
	if replayed {
		if span.IsRecording() {
			span.SetAttributes(telemetry.AttrJobID.Int64(id), telemetry.AttrReplayed.Bool(true))
		}
		span.End()
		return
	}
	first := ""
	if len(ids) > 0 {
		first = ids[0]
	}
	if span.IsRecording() {
		span.SetAttributes(telemetry.AttrJobID.Int64(id), telemetry.AttrOpcode.String(first))
	}
	span.End()
	e.tel.submitted.Add(ctx, 1, e.tel.attrs(first, "", ""))
}

// setOrigin stores the submitter and the trace context of the submission
// in the job's record.
func (e *Engine) setOrigin(ctx context.Context, r *record) {
	o := originFrom(ctx)
	r.User, r.Route, r.RPC = o.User, o.Route, o.RPC
	r.Trace = e.traceCarrier(ctx)
}

// traceCarrier is the W3C trace context of ctx's span (nil when none).
func (e *Engine) traceCarrier(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	c := propagation.MapCarrier{}
	e.tel.prop.Inject(ctx, c)
	return c
}

// inheritOrigin gives a follow-up job the origin of the job that submits
// it, and the submitting opcode's trace context.
func (e *Engine) inheritOrigin(it *execItem, r *record) {
	r.User, r.Route, r.RPC = it.j.rec.User, it.j.rec.Route, it.j.rec.RPC
	r.Trace = e.traceCarrier(it.x.Context())
}

// startJobTrace starts the job's root span, linked to its submission (mu
// held).
func (e *Engine) startJobTrace(j *job) {
	t := &j.tr
	if !e.tel.tracing || t.span != nil || t.done {
		return
	}
	r := j.rec
	attrs := append([]attribute.KeyValue{telemetry.AttrJobID.Int64(r.ID), telemetry.AttrOpcode.String(j.ids[0]),
		attribute.Int("ganeti.job.opcodes", len(j.ids))},
		originAttrs(Origin{User: r.User, Route: r.Route, RPC: r.RPC})...)
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithAttributes(attrs...)}
	if len(r.Trace) > 0 {
		sub := e.tel.prop.Extract(context.Background(), propagation.MapCarrier(r.Trace))
		if l := trace.LinkFromContext(sub, attribute.String("ganeti.link", "submit")); l.SpanContext.IsValid() {
			opts = append(opts, trace.WithLinks(l))
		}
	}
	t.ctx, t.span = e.tel.tracer.Start(context.Background(), "job.run", opts...)
}

// startOpTrace starts the span of opcode i, a child of the job's span (mu
// held).
func (e *Engine) startOpTrace(j *job, i int) {
	t := &j.tr
	if t.op != nil {
		e.endOp(j, "")
	}
	t.opIdx, t.opStart = i, time.Now()
	if t.span == nil {
		return
	}
	attrs := []attribute.KeyValue{telemetry.AttrJobID.Int64(j.rec.ID), telemetry.AttrOpcode.String(j.ids[i]), telemetry.AttrOpIndex.Int(i)}
	if i < len(j.rec.Summary) {
		attrs = append(attrs, telemetry.AttrSummary.String(j.rec.Summary[i]))
	}
	attrs = append(attrs, objectAttrs(j.msgs[i])...)
	t.opCtx, t.op = e.tel.tracer.Start(t.ctx, "opcode "+j.ids[i], trace.WithAttributes(attrs...))
}

// opContext is the context of opcode executions: canceled when the engine
// gives up on them, carrying the opcode's span.
func (e *Engine) opContext(j *job) context.Context {
	if j.tr.op == nil {
		return e.runCtx
	}
	return trace.ContextWithSpan(e.runCtx, j.tr.op)
}

// observe records what a change of j ended: its current opcode, the job
// itself (mu held; called by changed).
func (e *Engine) observe(j *job) {
	t := &j.tr
	r := j.rec
	if t.opStart != (time.Time{}) && t.opIdx < len(r.OpStatus) && Finalized(r.OpStatus[t.opIdx]) {
		e.endOp(j, r.OpStatus[t.opIdx])
	}
	if t.done || !Finalized(r.status()) {
		return
	}
	t.done = true
	status := r.status()
	attrs := e.tel.attrs(j.ids[0], telemetry.AttrJobStatus, status)
	ctx := context.Background()
	e.tel.ended.Add(ctx, 1, attrs)
	if r.Received != nil && r.End != nil {
		e.tel.jobDur.Record(ctx, r.End.Time().Sub(r.Received.Time()).Seconds(), attrs)
	}
	if t.span != nil {
		t.span.SetAttributes(telemetry.AttrJobStatus.String(status))
		if status == StatusError {
			t.span.SetStatus(codes.Error, "job failed")
		}
		t.span.End()
		t.span, t.ctx = nil, nil
	}
}

// endOp ends the current opcode's span with its final status ("" when it
// did not finish: the job is being abandoned).
func (e *Engine) endOp(j *job, status string) {
	t := &j.tr
	i := t.opIdx
	if t.lock != nil {
		t.lock.SetStatus(codes.Error, "opcode ended while waiting for its locks")
		t.lock.End()
		t.lock = nil
	}
	if status != "" {
		e.tel.opDur.Record(context.Background(), time.Since(t.opStart).Seconds(), e.tel.attrs(j.ids[i], telemetry.AttrOpStatus, status))
	}
	if t.op != nil {
		t.op.SetAttributes(telemetry.AttrOpStatus.String(status))
		if status == StatusError {
			class, msg, code := errorOf(j.rec.OpResult[i])
			t.op.SetAttributes(telemetry.AttrErrClass.String(class))
			if code != "" {
				t.op.SetAttributes(telemetry.AttrErrCode.String(code))
			}
			t.op.SetStatus(codes.Error, msg)
		}
		t.op.End()
	}
	t.op, t.opCtx, t.opStart = nil, nil, time.Time{}
}

// lockWaitStart starts the lock wait span of j's current opcode (mu held).
func (e *Engine) lockWaitStart(j *job) {
	t := &j.tr
	t.lockStart = time.Now()
	if t.op == nil {
		return
	}
	attrs := []attribute.KeyValue{telemetry.AttrJobID.Int64(j.rec.ID), telemetry.AttrOpcode.String(j.ids[t.opIdx]),
		telemetry.AttrLocks.StringSlice(capList(j.req.names))}
	if b := j.req.blockedOn; b != nil {
		attrs = append(attrs, telemetry.AttrBlockedOn.String(b.lock.FullName()))
	}
	_, t.lock = e.tel.tracer.Start(t.opCtx, "lock.wait", trace.WithAttributes(attrs...))
}

// lockAcquired records that j got its locks, after waiting or at once (mu
// held).
func (e *Engine) lockAcquired(j *job, waited bool) {
	t := &j.tr
	wait := 0.0
	if waited && t.lockStart != (time.Time{}) {
		wait = time.Since(t.lockStart).Seconds()
	}
	e.tel.lockWait.Record(context.Background(), wait, e.tel.attrs(j.ids[j.rec.current()], "", ""))
	if t.lock != nil {
		t.lock.End()
		t.lock = nil
	}
	t.lockStart = time.Time{}
}

// lockAbandoned ends a lock wait that will not be granted (mu held).
func (e *Engine) lockAbandoned(j *job) {
	t := &j.tr
	if t.lock != nil {
		t.lock.SetStatus(codes.Error, "lock wait abandoned")
		t.lock.End()
		t.lock = nil
	}
	t.lockStart = time.Time{}
}

// commitTrace is what the committer needs to trace one transaction: the
// spans it serves.
type commitTrace struct{ links []trace.Link }

func (c *commitTrace) add(ctx context.Context) {
	if ctx == nil {
		return
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && sc.IsSampled() {
		c.links = append(c.links, trace.Link{SpanContext: sc})
	}
}

// startCommit starts the span of a store transaction: the child of the one
// span it serves, or a root linked to several; none when it serves no
// traced span.
func (e *Engine) startCommit(links []trace.Link, records, execs, archived int) trace.Span {
	if !e.tel.tracing || len(links) == 0 {
		return nil
	}
	attrs := trace.WithAttributes(
		attribute.Int("ganeti.store.records", records),
		attribute.Int("ganeti.store.opcodes", execs),
		attribute.Int("ganeti.store.archived", archived),
		attribute.String("db.system.name", "bbolt"),
		attribute.String("db.operation.name", "update"))
	if len(links) == 1 {
		ctx := trace.ContextWithSpanContext(context.Background(), links[0].SpanContext)
		_, span := e.tel.tracer.Start(ctx, "store.commit", attrs)
		return span
	}
	_, span := e.tel.tracer.Start(context.Background(), "store.commit", attrs, trace.WithNewRoot(), trace.WithLinks(links...))
	return span
}

func endCommit(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetAttributes(telemetry.AttrErrClass.String("StoreError"))
		span.SetStatus(codes.Error, "store transaction failed")
	}
	span.End()
}

// recordError marks span failed with err's Ganeti error class and
// classification; other errors' text is not recorded.
func recordError(span trace.Span, err error) {
	if de, ok := errs.As(err); ok {
		span.SetAttributes(telemetry.AttrErrClass.String(de.Class))
		if de.Code != "" {
			span.SetAttributes(telemetry.AttrErrCode.String(string(de.Code)))
		}
		span.SetStatus(codes.Error, de.Msg)
		return
	}
	span.SetStatus(codes.Error, "internal error")
}

// errorOf decodes an encoded opcode error [class, [message, code]].
func errorOf(res any) (class, msg, code string) {
	l, ok := res.([]any)
	if !ok || len(l) != 2 {
		return "", "", ""
	}
	class, _ = l[0].(string)
	if args, ok := l[1].([]any); ok {
		if len(args) > 0 {
			msg, _ = args[0].(string)
		}
		if len(args) > 1 {
			code, _ = args[1].(string)
		}
	}
	return class, msg, code
}

// objectFields map opcode parameters to the attribute of the objects they
// name.
var objectFields = map[protoreflect.Name]attribute.Key{
	"instance_name": telemetry.AttrInstance, "instances": telemetry.AttrInstance,
	"node_name": telemetry.AttrNode, "pnode": telemetry.AttrNode, "snode": telemetry.AttrNode, "target_node": telemetry.AttrNode,
	"remote_node": telemetry.AttrNode, "src_node": telemetry.AttrNode, "nodes": telemetry.AttrNode, "node_names": telemetry.AttrNode,
	"group_name": telemetry.AttrGroup, "target_groups": telemetry.AttrGroup,
	"network_name": telemetry.AttrNetwork,
}

// tagKinds map the tag opcodes' kinds to the attribute of their "name".
var tagKinds = map[string]attribute.Key{
	"TAG_KIND_INSTANCE": telemetry.AttrInstance, "TAG_KIND_NODE": telemetry.AttrNode,
	"TAG_KIND_NODEGROUP": telemetry.AttrGroup, "TAG_KIND_NETWORK": telemetry.AttrNetwork,
}

// objectAttrs are the instance, node, group and network names an opcode
// names.
func objectAttrs(msg proto.Message) []attribute.KeyValue {
	m := msg.ProtoReflect()
	vals := map[attribute.Key][]string{}
	fds := m.Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		key, ok := objectFields[fd.Name()]
		if !ok || fd.Kind() != protoreflect.StringKind || fd.IsMap() {
			continue
		}
		if fd.IsList() {
			l := m.Get(fd).List()
			for k := 0; k < l.Len(); k++ {
				vals[key] = append(vals[key], l.Get(k).String())
			}
		} else if s := m.Get(fd).String(); s != "" {
			vals[key] = append(vals[key], s)
		}
	}
	if kind, name := fds.ByName("kind"), fds.ByName("name"); kind != nil && name != nil &&
		kind.Kind() == protoreflect.EnumKind && name.Kind() == protoreflect.StringKind && m.Has(name) {
		if ev := kind.Enum().Values().ByNumber(m.Get(kind).Enum()); ev != nil {
			if key, ok := tagKinds[string(ev.Name())]; ok {
				vals[key] = append(vals[key], m.Get(name).String())
			}
		}
	}
	var out []attribute.KeyValue
	for _, key := range []attribute.Key{telemetry.AttrInstance, telemetry.AttrNode, telemetry.AttrGroup, telemetry.AttrNetwork} {
		v := vals[key]
		switch {
		case len(v) == 1:
			out = append(out, key.String(v[0]))
		case len(v) > 1:
			slices.Sort(v)
			out = append(out, key.StringSlice(capList(slices.Compact(v))))
		}
	}
	return out
}

func capList(s []string) []string {
	if len(s) > maxListAttr {
		return append(slices.Clone(s[:maxListAttr]), "...")
	}
	return s
}

// allocatorSpan starts the span of an iallocator run, a child of the
// opcode's span.
func startAllocatorSpan(x *ExecContext, name string, request map[string]any) (context.Context, trace.Span) {
	ctx := x.Context()
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, parent
	}
	mode, _ := request["type"].(string)
	attrs := []attribute.KeyValue{telemetry.AttrAllocator.String(name), attribute.String("ganeti.iallocator.mode", mode),
		telemetry.AttrJobID.Int64(x.JobID), telemetry.AttrOpIndex.Int(x.OpIndex)}
	var insts []string
	if n, ok := request["name"].(string); ok {
		insts = append(insts, n)
	}
	switch l := request["instances"].(type) {
	case []string:
		insts = append(insts, l...)
	case []any:
		for _, v := range l {
			switch v := v.(type) {
			case string:
				insts = append(insts, v)
			case map[string]any:
				if n, ok := v["name"].(string); ok {
					insts = append(insts, n)
				}
			}
		}
	}
	if len(insts) > 0 {
		attrs = append(attrs, telemetry.AttrInstance.StringSlice(capList(insts)))
	}
	if g, ok := request["group"].(string); ok && g != "" {
		attrs = append(attrs, telemetry.AttrGroup.String(g))
	}
	return parent.TracerProvider().Tracer(instrumentationName).Start(ctx, "iallocator "+name, trace.WithAttributes(attrs...))
}

// endAllocatorSpan ends an iallocator span with its outcome: the nodes it
// chose, the built-in allocator taking over, or the error.
func endAllocatorSpan(span trace.Span, res json.RawMessage, err error) {
	switch {
	case errors.Is(err, errNoExternalIAllocator):
		span.SetAttributes(attribute.Bool("ganeti.iallocator.builtin", true))
	case err != nil:
		recordError(span, err)
	default:
		if nodes := allocatorNodes(res); len(nodes) > 0 {
			span.SetAttributes(telemetry.AttrNode.StringSlice(nodes))
		}
	}
	span.End()
}

// allocatorNodes are the node names of an allocation result (a list of
// names), for the span; nil for other results.
func allocatorNodes(result []byte) []string {
	var names []string
	if json.Unmarshal(result, &names) != nil {
		return nil
	}
	return capList(names)
}

// traceBuiltinAllocator starts the span of a run of the built-in allocator
// ("iallocator builtin"), which stands in for the iallocator name when it
// is not installed; mode is the IAllocator request type it answers. The returned func ends the span
// with the chosen node names or the error. Inside a transaction the span is
// recorded once the opcode's outcome is final, with the times of the run
// that counts (Exec may run more than once).
func traceBuiltinAllocator(x *ExecContext, name, mode string, instances ...string) func(nodes []string, err error) {
	parent := trace.SpanFromContext(x.Context())
	if !parent.IsRecording() || x.plan.isPlanning() { // the apply phase runs it again
		return func([]string, error) {}
	}
	attrs := []attribute.KeyValue{telemetry.AttrAllocator.String(name), attribute.String("ganeti.iallocator.mode", mode),
		attribute.Bool("ganeti.iallocator.builtin", true), telemetry.AttrJobID.Int64(x.JobID), telemetry.AttrOpIndex.Int(x.OpIndex)}
	if len(instances) > 0 {
		attrs = append(attrs, telemetry.AttrInstance.StringSlice(capList(instances)))
	}
	ctx, start := x.Context(), time.Now()
	return func(nodes []string, err error) {
		end := time.Now()
		x.afterCommit(func() {
			_, span := parent.TracerProvider().Tracer(instrumentationName).Start(ctx, "iallocator builtin",
				trace.WithAttributes(attrs...), trace.WithTimestamp(start))
			if err != nil {
				recordError(span, err)
			} else if len(nodes) > 0 {
				span.SetAttributes(telemetry.AttrNode.StringSlice(capList(nodes)))
			}
			span.End(trace.WithTimestamp(end))
		})
	}
}

func nodeNames(nodes []*cluster.Node) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

func instanceNames(insts []*cluster.Instance) []string {
	out := make([]string, 0, len(insts))
	for _, i := range insts {
		out = append(out, i.Name)
	}
	return out
}

// startFilterCommit starts the span of the store transaction that changes
// a filter rule, a child of ctx's span; none when ctx is not traced.
func (e *Engine) startFilterCommit(ctx context.Context, op, uuid string) trace.Span {
	if !e.tel.tracing || !trace.SpanFromContext(ctx).IsRecording() {
		return nil
	}
	_, span := e.tel.tracer.Start(ctx, "store.commit", trace.WithAttributes(
		attribute.String("ganeti.filter.uuid", uuid),
		attribute.String("ganeti.filter.change", op),
		attribute.String("db.system.name", "bbolt"),
		attribute.String("db.operation.name", "update")))
	return span
}

// endFilterCommit ends a filter-rule transaction's span: a refused change
// records its Ganeti error class, a failed transaction a store error.
func endFilterCommit(span trace.Span, err error) {
	if span == nil {
		return
	}
	if _, ok := errs.As(err); ok {
		recordError(span, err)
		span.End()
		return
	}
	endCommit(span, err)
}
