// Package telemetry sets up OpenTelemetry for ganeti-gateway: the tracer
// provider, the meter provider and the propagator, built from the standard
// OTEL_* environment variables, plus the Prometheus scrape handler, the
// admin listener (health, pprof, metrics) and the slog handler that puts
// trace and span ids in the logs.
//
// Everything is off unless configured: without OTEL_TRACES_EXPORTER (or an
// OTLP endpoint) there is no tracer provider, without OTEL_METRICS_EXPORTER
// (or an OTLP endpoint, or the Prometheus endpoint) no meter provider, and
// the servers then install no instrumentation at all.
//
// The providers are passed explicitly (Providers) to the packages that use
// them; the otel global state is never set.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the default service.name (OTEL_SERVICE_NAME overrides it).
const ServiceName = "ganeti-gateway"

// Providers are the telemetry providers of a server. The zero value is
// "off": no tracing, no metrics.
type Providers struct {
	// TracerProvider traces requests and jobs; nil means no tracing.
	TracerProvider trace.TracerProvider
	// MeterProvider records the metrics; nil means no metrics.
	MeterProvider metric.MeterProvider
	// Propagator carries trace context in and out of requests; nil means
	// W3C trace context and baggage.
	Propagator propagation.TextMapPropagator
	// Metrics is the Prometheus scrape handler (for the admin listener);
	// nil unless the Prometheus endpoint is enabled.
	Metrics http.Handler

	shutdown []func(context.Context) error
}

// Enabled reports whether anything is traced or measured: without it the
// servers install no instrumentation.
func (p *Providers) Enabled() bool {
	return p != nil && (p.TracerProvider != nil || p.MeterProvider != nil)
}

// Tracer returns the tracer provider, a no-op one when tracing is off.
func (p *Providers) Tracer() trace.TracerProvider {
	if p == nil || p.TracerProvider == nil {
		return tracenoop.NewTracerProvider()
	}
	return p.TracerProvider
}

// Meter returns the meter provider, a no-op one when metrics are off.
func (p *Providers) Meter() metric.MeterProvider {
	if p == nil || p.MeterProvider == nil {
		return metricnoop.NewMeterProvider()
	}
	return p.MeterProvider
}

// Propagators returns the propagator (W3C trace context and baggage by
// default).
func (p *Providers) Propagators() propagation.TextMapPropagator {
	if p == nil || p.Propagator == nil {
		return DefaultPropagator()
	}
	return p.Propagator
}

// DefaultPropagator is W3C trace context and baggage.
func DefaultPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Shutdown flushes and stops the exporters New created (the providers of
// a hand-made Providers are the caller's to stop).
func (p *Providers) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	var errs []error
	for i := len(p.shutdown) - 1; i >= 0; i-- {
		errs = append(errs, p.shutdown[i](ctx))
	}
	p.shutdown = nil
	return errors.Join(errs...)
}

// Options configure New.
type Options struct {
	// ServiceVersion is the service.version resource attribute.
	ServiceVersion string
	// Prometheus enables the Prometheus scrape handler (Providers.Metrics).
	Prometheus bool
	// Getenv reads the environment (default os.Getenv). The exporters
	// themselves (autoexport, the OTLP exporters, the SDK's sampler) read
	// the process environment.
	Getenv func(string) string
}

// New builds the providers from the OTEL_* environment:
//
//   - OTEL_SDK_DISABLED=true turns tracing and the OTLP/console metrics off.
//   - OTEL_TRACES_EXPORTER: otlp, console (stdout) or none. Unset, tracing
//     is off, unless OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (then otlp).
//   - OTEL_METRICS_EXPORTER: otlp, console, prometheus (the admin
//     listener's /metrics, as Options.Prometheus) or none; unset, the same
//     rule with the METRICS endpoint.
//   - OTEL_EXPORTER_OTLP_PROTOCOL (and the per-signal variants): grpc or
//     http/protobuf (the default); endpoints, headers, timeouts and TLS
//     as the OTLP exporters read them.
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG: the sampler
//     (default parentbased_always_on); OTEL_BSP_* the batch processor.
//   - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: the resource.
//
// With metrics on, the Go runtime metrics and ganeti_gateway.build_info
// are recorded too, and the Prometheus endpoint adds the process metrics
// (process_*).
func New(ctx context.Context, o Options) (_ *Providers, err error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	p := &Providers{Propagator: DefaultPropagator()}
	defer func() {
		if err != nil {
			_ = p.Shutdown(context.Background())
		}
	}()
	disabled, _ := strconv.ParseBool(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")))
	traces, metrics := "none", "none"
	if !disabled {
		traces = exporterName(getenv, "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
		metrics = exporterName(getenv, "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
	}
	if err := checkExporter("OTEL_TRACES_EXPORTER", traces, "otlp", "console", "none"); err != nil {
		return nil, err
	}
	if err := checkExporter("OTEL_METRICS_EXPORTER", metrics, "otlp", "console", "prometheus", "none"); err != nil {
		return nil, err
	}
	if metrics == "prometheus" {
		o.Prometheus, metrics = true, "none"
	}
	if traces == "none" && metrics == "none" && !o.Prometheus {
		return p, nil
	}
	res, err := newResource(ctx, o.ServiceVersion)
	if err != nil {
		return nil, err
	}
	if traces != "none" {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: traces exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		p.TracerProvider = tp
		p.shutdown = append(p.shutdown, tp.Shutdown)
	}
	var readers []sdkmetric.Option
	if metrics != "none" {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: metrics exporter: %w", err)
		}
		readers = append(readers, sdkmetric.WithReader(r))
	}
	if o.Prometheus {
		reg := prometheus.NewRegistry()
		// The process's CPU time, memory, open and maximum file
		// descriptors and start time (process_*), as every Prometheus
		// dashboard names them; scraped here only (not over OTLP).
		if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, fmt.Errorf("telemetry: process metrics: %w", err)
		}
		exp, err := promexporter.New(promexporter.WithRegisterer(reg))
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		readers = append(readers, sdkmetric.WithReader(exp))
		p.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	if len(readers) > 0 {
		mp := NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
		p.MeterProvider = mp
		p.shutdown = append(p.shutdown, mp.Shutdown)
		if err := startProcessMetrics(mp, buildInfo()); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// NewMeterProvider is the SDK's meter provider with opts and the server's
// views: otelhttp's request and response body size histograms are
// dropped (every legacy request would record both, for figures Ganeti's
// clients do not vary); http.server.request.duration is kept.
func NewMeterProvider(opts ...sdkmetric.Option) *sdkmetric.MeterProvider {
	drop := sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}}
	return sdkmetric.NewMeterProvider(append(opts,
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "http.server.request.body.size"}, drop)),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "http.server.response.body.size"}, drop)),
	)...)
}

// exporterName is the exporter an OTEL_*_EXPORTER variable names; unset,
// "otlp" when an OTLP endpoint is configured, else "none".
func exporterName(getenv func(string) string, key, signalEndpoint string) string {
	v := strings.ToLower(strings.TrimSpace(getenv(key)))
	if v != "" {
		return v
	}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv(signalEndpoint) != "" {
		return "otlp"
	}
	return "none"
}

func checkExporter(key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("telemetry: %s=%q: want one of %s", key, v, strings.Join(allowed, ", "))
}

// newResource is service.name (OTEL_SERVICE_NAME overrides it),
// service.version, the SDK's attributes and OTEL_RESOURCE_ATTRIBUTES.
func newResource(ctx context.Context, version string) (*resource.Resource, error) {
	attrs := []resource.Option{
		resource.WithAttributes(semconv.ServiceName(ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(),
	}
	if version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(version)))
	}
	res, err := resource.New(ctx, attrs...)
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}
