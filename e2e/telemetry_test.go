package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// observed is a test server's telemetry: a span recorder, a manual metric
// reader and the JSON log.
type observed struct {
	base   string
	sr     *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	log    *syncBuffer
}

// logLines returns the JSON log records whose msg is msg.
func logLines(t *testing.T, s *syncBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitLogLines waits until the log has at least n records with msg that
// match (a request's line is written once its response has gone), and
// returns them.
func waitLogLines(t *testing.T, s *syncBuffer, msg string, n int, match func(map[string]any) bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		out = nil
		for _, l := range logLines(t, s, msg) {
			if match(l) {
				out = append(out, l)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
	}
}

// inProcessObserved starts a test server whose telemetry is recorded.
func inProcessObserved(t *testing.T) *observed {
	t.Helper()
	o := &observed{sr: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), log: &syncBuffer{}}
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.sr))
	mp := telemetry.NewMeterProvider(sdkmetric.WithReader(o.reader))
	o.base = inProcessWith(t, "", func(c *server.Config) {
		c.Telemetry = &telemetry.Providers{TracerProvider: o.tp, MeterProvider: mp}
		c.Logger = slog.New(slog.NewJSONHandler(o.log, nil))
	})
	return o
}

// span returns the one ended span named name with kind whose attributes
// include attrs (kind Unspecified: any). Spans may end just after the
// response that reported their work (a server span, a job's): it waits
// for one.
func (o *observed) span(t *testing.T, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(5 * time.Second); len(found) == 0 && time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		for _, s := range o.sr.Ended() {
			if s.Name() == name && (kind == trace.SpanKindUnspecified || s.SpanKind() == kind) && hasAttrs(s, attrs...) {
				found = append(found, s)
			}
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range o.sr.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("%d spans %q (%v) with %v; ended: %q", len(found), name, kind, attrs, names)
	}
	return found[0]
}

// waitSpan is span of any kind.
func (o *observed) waitSpan(t *testing.T, name string, attrs ...attribute.KeyValue) sdktrace.ReadOnlySpan {
	t.Helper()
	return o.span(t, name, trace.SpanKindUnspecified, attrs...)
}

func hasAttrs(s sdktrace.ReadOnlySpan, attrs ...attribute.KeyValue) bool {
	for _, kv := range attrs {
		found := false
		for _, a := range s.Attributes() {
			if a.Key == kv.Key && a.Value.String() == kv.Value.String() {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func checkChild(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.Parent().SpanID() != parent.SpanContext().SpanID() || child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("span %q: parent %s/%s, want %q %s/%s", child.Name(), child.Parent().TraceID(), child.Parent().SpanID(),
			parent.Name(), parent.SpanContext().TraceID(), parent.SpanContext().SpanID())
	}
}

// checkJobTrace checks the job's own trace: a root span linked to the
// submission, with an opcode child span naming the instance.
func (o *observed) checkJobTrace(t *testing.T, id int64, submit sdktrace.ReadOnlySpan, opcode string, attrs ...attribute.KeyValue) (run, op sdktrace.ReadOnlySpan) {
	t.Helper()
	run = o.waitSpan(t, "job.run", telemetry.AttrJobID.Int64(id))
	if run.Parent().IsValid() || run.SpanContext().TraceID() == submit.SpanContext().TraceID() {
		t.Errorf("job span: parent %v, trace %s (submission's %s): not a root of its own trace",
			run.Parent(), run.SpanContext().TraceID(), submit.SpanContext().TraceID())
	}
	links := run.Links()
	if len(links) != 1 || links[0].SpanContext.TraceID() != submit.SpanContext().TraceID() ||
		links[0].SpanContext.SpanID() != submit.SpanContext().SpanID() {
		t.Errorf("job span links %+v, want the submission %v", links, submit.SpanContext())
	}
	if !hasAttrs(run, telemetry.AttrUser.String(e2eUser), telemetry.AttrOpcode.String(opcode)) {
		t.Errorf("job span attributes %v", run.Attributes())
	}
	op = o.waitSpan(t, "opcode "+opcode, telemetry.AttrJobID.Int64(id))
	checkChild(t, op, run)
	if !hasAttrs(op, append(attrs, telemetry.AttrOpcode.String(opcode))...) {
		t.Errorf("opcode span attributes %v, want %v", op.Attributes(), attrs)
	}
	return run, op
}

// TestTraceLegacyInstanceCreate: POST /2/instances is one trace of HTTP
// server -> gRPC client -> gRPC server -> job submission; the job is a
// trace of its own linked to the submission, with the opcode as a child.
// The request makes one access log line, with the trace's ids.
func TestTraceLegacyInstanceCreate(t *testing.T) {
	o := inProcessObserved(t)
	body := `{"__version__": 1, "mode": "create", "disk_template": "diskless", "disks": [], "nics": [{}], ` +
		`"pnode": "node1.example.com", "os_type": "noop", "instance_name": "traced1.example.com"}`
	status, _, resp := do(t, "POST", o.base+"/2/instances", "application/json", body)
	var id int64
	if status != 200 || json.Unmarshal(resp, &id) != nil {
		t.Fatalf("POST /2/instances: %d %s", status, resp)
	}
	if job := waitJob(t, o.base, id); job["status"] != "success" {
		t.Fatalf("job: %v", job)
	}

	route := telemetry.AttrRoute.String("POST /2/instances")
	httpSpan := o.span(t, "POST /2/instances", trace.SpanKindServer)
	if !hasAttrs(httpSpan, route, attribute.String("http.route", "/2/instances"), telemetry.AttrUser.String(e2eUser),
		attribute.Int("http.response.status_code", 200)) {
		t.Errorf("HTTP span attributes %v", httpSpan.Attributes())
	}
	const rpc = "ganeti.rapi.v2.InstanceService/CreateInstance"
	client := o.span(t, rpc, trace.SpanKindClient)
	checkChild(t, client, httpSpan)
	server := o.span(t, rpc, trace.SpanKindServer)
	checkChild(t, server, client)
	if !hasAttrs(server, route, telemetry.AttrUser.String(e2eUser)) {
		t.Errorf("gRPC server span attributes %v", server.Attributes())
	}
	submit := o.span(t, "job.submit", trace.SpanKindUnspecified, telemetry.AttrJobID.Int64(id))
	checkChild(t, submit, server)
	if !hasAttrs(submit, route, telemetry.AttrUser.String(e2eUser), telemetry.AttrOpcode.String("OP_INSTANCE_CREATE")) {
		t.Errorf("submit span attributes %v", submit.Attributes())
	}
	_, op := o.checkJobTrace(t, id, submit, "OP_INSTANCE_CREATE",
		telemetry.AttrInstance.String("traced1.example.com"), telemetry.AttrNode.String("node1.example.com"),
		telemetry.AttrOpStatus.String("success"))
	if op.Status().Code == codes.Error {
		t.Errorf("opcode span status %v", op.Status())
	}

	// One access log line for the request (none for the in-process call),
	// joined to its trace.
	lines := waitLogLines(t, o.log, "access", 1, func(l map[string]any) bool {
		return l["http_method"] == "POST" || l["rpc"] == "/"+rpc
	})
	if len(lines) != 1 {
		t.Fatalf("access log lines of the request: %v", lines)
	}
	l := lines[0]
	if l["http_route"] != "/2/instances" || l["http_path"] != "/2/instances" || l["status"] != 200.0 || l["user"] != e2eUser ||
		l["trace_id"] != httpSpan.SpanContext().TraceID().String() || l["span_id"] != httpSpan.SpanContext().SpanID().String() {
		t.Errorf("access log line %v (HTTP span %v)", l, httpSpan.SpanContext())
	}
	// The audit line of the write is in the same trace.
	for _, a := range logLines(t, o.log, "audit") {
		if a["http_route"] == "/2/instances" && a["trace_id"] != httpSpan.SpanContext().TraceID().String() {
			t.Errorf("audit line outside the trace: %v", a)
		}
	}
}

// TestTraceGRPCStartup: a typed gRPC call gives the same shape, from the
// caller's client span.
func TestTraceGRPCStartup(t *testing.T) {
	o := inProcessObserved(t)
	conn := dialGRPC(t, o.base, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(o.tp), otelgrpc.WithPropagators(telemetry.DefaultPropagator()))))
	sub, err := rapiv2.NewInstanceServiceClient(conn).StartupInstance(context.Background(),
		&rapiv2.StartupInstanceRequest{InstanceName: "build1.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	id := sub.GetJobId()
	if job := waitJob(t, o.base, id); job["status"] != "success" {
		t.Fatalf("job: %v", job)
	}
	const rpc = "ganeti.rapi.v2.InstanceService/StartupInstance"
	server := o.span(t, rpc, trace.SpanKindServer)
	client := o.span(t, rpc, trace.SpanKindClient) // the test's own, a root
	if client.Parent().IsValid() {
		t.Errorf("the test's client span has a parent %v", client.Parent())
	}
	checkChild(t, server, client)
	if !hasAttrs(server, telemetry.AttrUser.String(e2eUser)) {
		t.Errorf("gRPC server span attributes %v", server.Attributes())
	}
	submit := o.span(t, "job.submit", trace.SpanKindUnspecified, telemetry.AttrJobID.Int64(id))
	checkChild(t, submit, server)
	if !hasAttrs(submit, telemetry.AttrRPC.String("/"+rpc)) {
		t.Errorf("submit span attributes %v", submit.Attributes())
	}
	o.checkJobTrace(t, id, submit, "OP_INSTANCE_STARTUP", telemetry.AttrInstance.String("build1.example.com"))

	lines := waitLogLines(t, o.log, "access", 1, func(l map[string]any) bool { return l["rpc"] == "/"+rpc })
	if len(lines) != 1 || lines[0]["code"] != "OK" || lines[0]["user"] != e2eUser ||
		lines[0]["trace_id"] != server.SpanContext().TraceID().String() {
		t.Errorf("access log lines of the call: %v", lines)
	}
}

// TestTraceFailingJob: a job whose opcode fails records Ganeti's error
// class and classification (those of the job's result) on the opcode
// span.
func TestTraceFailingJob(t *testing.T) {
	o := inProcessObserved(t)
	for _, c := range []struct {
		name, method, path, body, opcode string
		attrs                            []attribute.KeyValue
	}{
		{"tag error", "PUT", "/2/instances/build1.example.com/tags?tag=bad%20tag", "", "OP_TAGS_SET",
			[]attribute.KeyValue{telemetry.AttrInstance.String("build1.example.com")}},
		{"unknown node", "POST", "/2/instances", `{"__version__": 1, "mode": "create", "disk_template": "diskless", "disks": [], ` +
			`"nics": [{}], "pnode": "nosuch.example.com", "os_type": "noop", "instance_name": "new1.example.com"}`, "OP_INSTANCE_CREATE",
			[]attribute.KeyValue{telemetry.AttrInstance.String("new1.example.com"), telemetry.AttrNode.String("nosuch.example.com")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct := ""
			if c.body != "" {
				ct = "application/json"
			}
			status, _, resp := do(t, c.method, o.base+c.path, ct, c.body)
			var id int64
			if status != 200 || json.Unmarshal(resp, &id) != nil {
				t.Fatalf("%s %s: %d %s", c.method, c.path, status, resp)
			}
			job := waitJob(t, o.base, id)
			res, _ := job["opresult"].([]any)
			enc, _ := res[0].([]any)
			if job["status"] != "error" || len(enc) != 2 {
				t.Fatalf("job: %v", job)
			}
			class, _ := enc[0].(string)
			args, _ := enc[1].([]any)
			attrs := append(c.attrs, telemetry.AttrOpStatus.String("error"), telemetry.AttrErrClass.String(class))
			if len(args) > 1 {
				attrs = append(attrs, telemetry.AttrErrCode.String(fmt.Sprint(args[1])))
			}
			submit := o.span(t, "job.submit", trace.SpanKindUnspecified, telemetry.AttrJobID.Int64(id))
			_, op := o.checkJobTrace(t, id, submit, c.opcode, attrs...)
			if op.Status().Code != codes.Error || len(args) == 0 || op.Status().Description != fmt.Sprint(args[0]) {
				t.Errorf("opcode span status %+v, opresult %v", op.Status(), res)
			}
			run := o.waitSpan(t, "job.run", telemetry.AttrJobID.Int64(id))
			if run.Status().Code != codes.Error || !hasAttrs(run, telemetry.AttrJobStatus.String("error")) {
				t.Errorf("job span %v %v", run.Status(), run.Attributes())
			}
			t.Logf("%s: %v", c.name, res)
		})
	}
}

// TestTraceFailedRequest: a request that fails records the Ganeti error
// class and classification on its gRPC server span; the HTTP span has the
// status.
func TestTraceFailedRequest(t *testing.T) {
	o := inProcessObserved(t)
	if status, _, body := do(t, "GET", o.base+"/2/instances/nosuch.example.com", "", ""); status != 404 {
		t.Fatalf("GET unknown instance: %d %s", status, body)
	}
	httpSpan := o.span(t, "GET /2/instances/{instance_name}", trace.SpanKindServer)
	if !hasAttrs(httpSpan, attribute.Int("http.response.status_code", 404), telemetry.AttrRoute.String("GET /2/instances/{instance_name}")) {
		t.Errorf("HTTP span attributes %v", httpSpan.Attributes())
	}
	server := o.span(t, "ganeti.rapi.v2.InstanceService/GetInstance", trace.SpanKindServer)
	// (A client error: the span status stays unset, as the semantic
	// conventions have it for NOT_FOUND on a server.)
	if !hasAttrs(server, telemetry.AttrErrClass.String("OpPrereqError"), telemetry.AttrErrCode.String("unknown_entity"),
		attribute.String("rpc.response.status_code", "NOT_FOUND")) {
		t.Errorf("gRPC server span: %v %v", server.Attributes(), server.Status())
	}
}

// TestRequestMetrics reads the exported metrics after a known workload.
func TestRequestMetrics(t *testing.T) {
	o := inProcessObserved(t)
	for i := 0; i < 3; i++ {
		if status, _, _ := do(t, "GET", o.base+"/2/info", "", ""); status != 200 {
			t.Fatalf("GET /2/info: %d", status)
		}
	}
	for i := 0; i < 2; i++ {
		do(t, "GET", o.base+"/2/nosuch", "", "")
	}
	if status, _, _ := do(t, "GET", anonymous(o.base)+"/2/info", "", ""); status != 401 {
		t.Fatalf("anonymous GET /2/info: %d", status)
	}
	// And one typed gRPC call of the same method.
	if _, err := rapiv2.NewClusterServiceClient(dialGRPC(t, o.base)).GetInfo(context.Background(), &rapiv2.GetInfoRequest{}); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, tag := range []string{"a", "b"} {
		status, _, body := do(t, "PUT", o.base+"/2/tags?tag="+tag, "", "")
		var id int64
		if status != 200 || json.Unmarshal(body, &id) != nil {
			t.Fatalf("PUT /2/tags: %d %s", status, body)
		}
		ids = append(ids, id)
	}
	// One that fails: a tag with a character Ganeti refuses.
	status, _, body := do(t, "PUT", o.base+"/2/tags?tag=bad%20tag", "", "")
	var bad int64
	if status != 200 || json.Unmarshal(body, &bad) != nil {
		t.Fatalf("PUT /2/tags: %d %s", status, body)
	}
	for _, id := range append(ids, bad) {
		waitJob(t, o.base, id)
	}
	var rm metricdata.ResourceMetrics
	requests := func(method, route string, status int) uint64 {
		var n uint64
		for _, m := range testutil.MetricsNamed(rm, "http.server.request.duration") {
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				r, hasRoute := dp.Attributes.Value("http.route")
				mt, _ := dp.Attributes.Value("http.request.method")
				st, _ := dp.Attributes.Value("http.response.status_code")
				if mt.AsString() == method && int(st.AsInt64()) == status && (route == "" && !hasRoute || r.AsString() == route) {
					n += dp.Count
				}
			}
		}
		return n
	}
	// A request is measured once its response has gone, a job once it
	// has ended: let the last ones land.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		rm = metricdata.ResourceMetrics{}
		if err := o.reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		if sumOf(rm, "ganeti.jobs.finished", nil) == 3 && requests("PUT", "/2/tags", 200) == 3 || time.Now().After(deadline) {
			break
		}
	}
	for _, c := range []struct {
		method, route string
		status        int
		want          uint64
	}{
		{"GET", "/2/info", 200, 3},
		{"GET", "/2/info", 401, 1},
		{"GET", "", 404, 2}, // no route: never the raw path
		{"PUT", "/2/tags", 200, 3},
	} {
		if got := requests(c.method, c.route, c.status); got != c.want {
			t.Errorf("requests %s %q %d: %d, want %d", c.method, c.route, c.status, got, c.want)
		}
	}
	var rpcInfo uint64
	for _, m := range testutil.MetricsNamed(rm, "rpc.server.call.duration") {
		for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
			if v, _ := dp.Attributes.Value("rpc.method"); strings.HasSuffix(v.AsString(), "ClusterService/GetInfo") {
				rpcInfo += dp.Count
			}
		}
	}
	// The typed call only: the legacy requests, measured above by route,
	// are not counted a second time by the in-process gRPC call.
	if rpcInfo != 1 {
		t.Errorf("gRPC GetInfo calls: %d, want 1", rpcInfo)
	}
	for _, name := range []string{"http.server.request.body.size", "http.server.response.body.size"} {
		if ms := testutil.MetricsNamed(rm, name); len(ms) != 0 {
			t.Errorf("%s recorded (dropped by the server's views)", name)
		}
	}
	finished := map[string]int64{}
	for _, st := range []string{"success", "error"} {
		finished[st] = sumOf(rm, "ganeti.jobs.finished", &attrFilter{telemetry.AttrJobStatus, st})
	}
	if finished["success"] != 2 || finished["error"] != 1 {
		t.Errorf("jobs finished by status: %v, want 2 success, 1 error", finished)
	}
	if n := sumOf(rm, "ganeti.jobs.submitted", &attrFilter{telemetry.AttrOpcode, "OP_TAGS_SET"}); n != 3 {
		t.Errorf("jobs submitted: %d", n)
	}
	if n := sumOf(rm, "rapi.auth.failures", nil); n != 1 {
		t.Errorf("auth failures: %d", n)
	}
	if g := gaugeOf(rm, "rapi.auth.failure.rate"); g < 1.0/60-1e-9 {
		t.Errorf("auth failure rate %v, want >= 1/60", g)
	}
	if g := gaugeOf(rm, "ganeti.jobs.queue.depth"); g != 0 {
		t.Errorf("queue depth %v", g)
	}
	var ops uint64
	for _, m := range testutil.MetricsNamed(rm, "ganeti.opcode.duration") {
		for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
			ops += dp.Count
		}
	}
	if ops != 3 {
		t.Errorf("opcode durations: %d, want 3", ops)
	}
	if n := sumOf(rm, "rapi.jobs.waiters", nil); n != 0 {
		t.Errorf("long polls in progress: %d", n)
	}
}

type attrFilter struct {
	key   attribute.Key
	value string
}

// sumOf adds up the data points of an int64 sum, those matching f.
func sumOf(rm metricdata.ResourceMetrics, name string, f *attrFilter) int64 {
	var n int64
	for _, m := range testutil.MetricsNamed(rm, name) {
		if s, ok := m.Data.(metricdata.Sum[int64]); ok {
			for _, dp := range s.DataPoints {
				if v, _ := dp.Attributes.Value(f.keyOrEmpty()); f == nil || v.AsString() == f.value {
					n += dp.Value
				}
			}
		}
	}
	return n
}

func (f *attrFilter) keyOrEmpty() attribute.Key {
	if f == nil {
		return ""
	}
	return f.key
}

// gaugeOf is the sum of a gauge's data points.
func gaugeOf(rm metricdata.ResourceMetrics, name string) float64 {
	var g float64
	for _, m := range testutil.MetricsNamed(rm, name) {
		switch d := m.Data.(type) {
		case metricdata.Gauge[float64]:
			for _, dp := range d.DataPoints {
				g += dp.Value
			}
		case metricdata.Gauge[int64]:
			for _, dp := range d.DataPoints {
				g += float64(dp.Value)
			}
		}
	}
	return g
}

// TestAdminListener: health, pprof and the Prometheus metrics are on the
// admin listener, never on the public one.
func TestAdminListener(t *testing.T) {
	dataDir := t.TempDir()
	writeTestUsers(t, dataDir)
	_, addr, admin := serveApp(t, server.Config{
		DataDir: dataDir, Insecure: true,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		AdminListen: "127.0.0.1:0", MetricsPrometheus: true,
		Telemetry: nil, // from the environment, plus the Prometheus endpoint
	})
	base := withCreds(addr)
	adminURL := "http://" + admin
	if status, _, _ := do(t, "GET", base+"/2/info", "", ""); status != 200 {
		t.Fatalf("GET /2/info: %d", status)
	}
	if status, _, body := do(t, "GET", adminURL+"/healthz", "", ""); status != 200 || string(body) != "ok\n" {
		t.Errorf("healthz: %d %q", status, body)
	}
	status, _, body := do(t, "GET", adminURL+"/metrics", "", "")
	if status != 200 || !strings.Contains(string(body), `http_server_request_duration_seconds_count{`) ||
		!strings.Contains(string(body), `http_route="/2/info"`) {
		t.Errorf("metrics: %d\n%.2000s", status, body)
	}
	if status, _, _ := do(t, "GET", adminURL+"/debug/pprof/cmdline", "", ""); status != 200 {
		t.Errorf("pprof: %d", status)
	}
	for _, p := range []string{"/metrics", "/healthz", "/debug/pprof/"} {
		if status, _, _ := do(t, "GET", base+p, "", ""); status != 404 {
			t.Errorf("public %s: %d", p, status)
		}
	}
	c := server.Config{AdminListen: ":9464"}
	if err := c.CheckAndSetDefaults(); err != nil || c.AdminListen != "127.0.0.1:9464" {
		t.Errorf("a bare admin port binds %q (%v), want loopback", c.AdminListen, err)
	}
	if _, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), MetricsPrometheus: true}); err == nil ||
		!strings.Contains(err.Error(), "--admin-listen") {
		t.Errorf("--metrics-prometheus without --admin-listen: %v", err)
	}
}

// TestAccessLogOneLine: every request makes one access log line, gRPC
// calls too; refused ones included.
func TestAccessLogOneLine(t *testing.T) {
	var log syncBuffer
	base := inProcessWith(t, "", func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&log, nil))
	})
	do(t, "GET", base+"/2/info", "", "")
	do(t, "GET", anonymous(base)+"/2/info", "", "")
	do(t, "GET", base+"/2/nosuch", "", "")
	do(t, "GET", base+"/2/instances/web1.example.com", "", "")
	if _, err := rapiv2.NewClusterServiceClient(dialGRPC(t, base)).GetInfo(context.Background(), &rapiv2.GetInfoRequest{}); err != nil {
		t.Fatal(err)
	}
	lines := waitLogLines(t, &log, "access", 5, func(map[string]any) bool { return true })
	var got []string
	for _, l := range lines {
		if l["rpc"] != nil {
			got = append(got, fmt.Sprintf("%v %v %v", l["rpc"], l["code"], l["user"]))
		} else {
			got = append(got, fmt.Sprintf("%v %v %v %v %v", l["http_method"], l["http_route"], l["http_path"], l["status"], l["user"]))
		}
		if _, ok := l["trace_id"]; ok {
			t.Errorf("trace ids with tracing off: %v", l)
		}
	}
	want := []string{
		"GET /2/info /2/info 200 e2e",
		"GET /2/info /2/info 401 ",
		"GET  /2/nosuch 404 ",
		"GET /2/instances/{instance_name} /2/instances/web1.example.com 200 e2e",
		"/ganeti.rapi.v2.ClusterService/GetInfo OK e2e",
	}
	slices.Sort(got) // each line is written once its response has gone
	slices.Sort(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("access log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestProcessExportsOTLP runs the binary with the standard OTEL_*
// variables pointing at an OTLP/HTTP receiver on the loopback interface,
// and the admin listener with the Prometheus endpoint: a request's spans
// reach the receiver (flushed at shutdown), its metrics the scrape.
func TestProcessExportsOTLP(t *testing.T) {
	rcv := &otlpHTTPReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_METRICS_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "gw-under-test")
	p := startServer(t, "", "--insecure", "--admin-listen", "127.0.0.1:0", "--metrics-prometheus")
	base := "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr
	if status, _, body := do(t, "GET", base+"/2/info", "", ""); status != 200 {
		t.Fatalf("GET /2/info: %d %s", status, body)
	}
	var admin string
	for _, l := range strings.Split(p.Logs(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "admin listener" {
			admin = rec.Addr
		}
	}
	if !strings.HasPrefix(admin, "127.0.0.1:") {
		t.Fatalf("admin listener address %q:\n%s", admin, p.Logs())
	}
	status, _, body := do(t, "GET", "http://"+admin+"/metrics", "", "")
	if status != 200 || !strings.Contains(string(body), `http_route="/2/info"`) {
		t.Errorf("scrape: %d\n%.1500s", status, body)
	}
	p.Stop(t) // flushes the exporters
	spans, metrics, services := rcv.got()
	if !slices.Contains(spans, "GET /2/info") || !slices.Contains(spans, "ganeti.rapi.v2.ClusterService/GetInfo") {
		t.Errorf("exported spans %q", spans)
	}
	if !slices.Contains(metrics, "http.server.request.duration") {
		t.Errorf("exported metrics %q", metrics)
	}
	if !slices.Contains(services, "gw-under-test") {
		t.Errorf("service names %q", services)
	}
	// The access log line carries the trace id of the exported span.
	if !strings.Contains(p.Logs(), `"msg":"access"`) || !strings.Contains(p.Logs(), `"trace_id":"`) {
		t.Errorf("no access log line with a trace id:\n%s", p.Logs())
	}
}

// otlpHTTPReceiver is an OTLP/HTTP receiver that keeps the names of the
// spans, the metrics and the services it gets.
type otlpHTTPReceiver struct {
	mu                       sync.Mutex
	spans, metrics, services []string
}

func (r *otlpHTTPReceiver) got() (spans, metrics, services []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans), slices.Clone(r.metrics), slices.Clone(r.services)
}

func (r *otlpHTTPReceiver) service(attrs []*commonpb.KeyValue) {
	for _, kv := range attrs {
		if kv.GetKey() == "service.name" {
			r.services = append(r.services, kv.GetValue().GetStringValue())
		}
	}
}

func (r *otlpHTTPReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "read", 400)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out proto.Message
	switch req.URL.Path {
	case "/v1/traces":
		var in coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &in); err != nil {
			http.Error(w, "decode", 400)
			return
		}
		for _, rs := range in.GetResourceSpans() {
			r.service(rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					r.spans = append(r.spans, s.GetName())
				}
			}
		}
		out = &coltracepb.ExportTraceServiceResponse{}
	case "/v1/metrics":
		var in colmetricpb.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &in); err != nil {
			http.Error(w, "decode", 400)
			return
		}
		for _, rm := range in.GetResourceMetrics() {
			r.service(rm.GetResource().GetAttributes())
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					r.metrics = append(r.metrics, m.GetName())
				}
			}
		}
		out = &colmetricpb.ExportMetricsServiceResponse{}
	default:
		http.NotFound(w, req)
		return
	}
	b, _ := proto.Marshal(out)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}
