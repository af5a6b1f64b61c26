package lu

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// allocatorSpan starts the span of an iallocator run, a child of the
// opcode's span.
func startAllocatorSpan(x *opexec.ExecContext, name string, request map[string]any) (context.Context, trace.Span) {
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
	case errors.Is(err, opexec.ErrNoExternalIAllocator):
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
func traceBuiltinAllocator(x *opexec.ExecContext, name, mode string, instances ...string) func(nodes []string, err error) {
	parent := trace.SpanFromContext(x.Context())
	if !parent.IsRecording() || x.Plan().IsPlanning() { // the apply phase runs it again
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
		x.AfterCommit(func() {
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

// instrumentationName is the tracer of the allocator spans: the job
// engine's, whose opcode spans they belong to.
const instrumentationName = "github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"

// maxListAttr caps the values of a list attribute (as the engine's spans).
const maxListAttr = 32

func capList(s []string) []string {
	if len(s) > maxListAttr {
		return append(slices.Clone(s[:maxListAttr]), "...")
	}
	return s
}

// recordError marks span failed with err's Ganeti error class and code
// (the engine's rule: no internal error text in a span).
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
