// Package gateway is the transport layer: one listener that serves gRPC and
// the legacy RAPI JSON surface. Legacy requests pass Ganeti's HTTP-level
// checks here (routing, 404/501, authentication through Config.Authorize,
// Content-Type, JSON syntax, body size), go through grpc-gateway with the
// legacy JSON codec, and reach the gRPC services over an in-process
// connection, so they run the same interceptor chain and stats handlers as
// direct gRPC calls.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
	"github.com/ganeti-gateway/ganeti-gateway/internal/membudget"
)

// DefaultMaxBodyBytes caps legacy request bodies.
const DefaultMaxBodyBytes = 4 << 20

// Config configures the legacy surface.
type Config struct {
	// Conn reaches the gRPC services (an in-process connection: Direct,
	// or InProcess). Required.
	Conn grpc.ClientConnInterface
	// MaxBodyBytes caps request bodies; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Limits, when set, are the per-method limits (their BodyBytes
	// replaces MaxBodyBytes); default: MaxBodyBytes and the defaults.
	Limits *Limits
	// Budget is the memory budget of query answers: the in-process call
	// reserves in the request's Hold (SamePortWith opens it).
	Budget *membudget.MemoryBudget
	// RequestBudget, when set, is reserved for a query body before it is
	// decoded (service.RequestMemoryFactor per byte).
	RequestBudget *membudget.MemoryBudget
	// ReadTimeout bounds the reading of a request body (the headers are
	// bounded by the HTTP server's ReadHeaderTimeout); 0 means no bound.
	// It is a deadline on the body only, so long polls are not cut.
	ReadTimeout time.Duration
	// Authorize, when set, is Ganeti's authentication step: it runs after
	// the route and method checks and before the body is read. A non-nil
	// error (a gRPC status) is the response.
	Authorize func(ctx context.Context, fullMethod string, call *LegacyCall) error
	// Clusters, when the gateway fronts several clusters, picks each
	// request's by its Host header or TLS server name.
	Clusters *Clusters
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Conn == nil {
		return errors.New("gateway: Config.Conn is required")
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Limits == nil {
		c.Limits = &Limits{BodyBytes: c.MaxBodyBytes}
	}
	c.Limits.setDefaults()
	c.MaxBodyBytes = c.Limits.BodyBytes
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Legacy serves the RAPI 2 JSON surface.
type Legacy struct {
	cfg    Config
	routes *Routes
	mux    *runtime.ServeMux // the JobService's (the error handlers')
	// muxes are the grpc-gateway muxes by full method: one per service, so
	// that a request is matched against its service's patterns only.
	muxes map[string]*runtime.ServeMux
}

type routeKey struct{}

// RouteFromContext returns the legacy route template and method of a
// request being served, e.g. ("/2/nodes/{node_name}", "GET").
func RouteFromContext(ctx context.Context) (template, method string, ok bool) {
	m, ok := ctx.Value(routeKey{}).(routeInfo)
	return m.template, m.method, ok
}

type routeInfo struct{ template, method string }

type callKey struct{}

// legacyMetadata forwards what the services need to know of a legacy
// request (client address, verified client certificate, route) on the
// in-process call.
func legacyMetadata(_ context.Context, r *http.Request) metadata.MD {
	if c, ok := r.Context().Value(callKey{}).(*LegacyCall); ok {
		return c.Metadata()
	}
	return nil
}

// NewLegacy builds the legacy handler.
func NewLegacy(ctx context.Context, cfg Config) (*Legacy, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	routes, err := LoadRoutes()
	if err != nil {
		return nil, err
	}
	opts := []runtime.ServeMuxOption{
		// grpc-gateway keeps the query parser in a package variable; every
		// mux of the process sets the same one.
		runtime.SetQueryParameterParser(queryParser{}),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, legacyjson.Marshaler{}),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.WithDisableHTTPMethodOverride(),
		// Only the Authorization and Idempotency-Key headers are forwarded
		// (as gRPC metadata; ServeHTTP keeps the latter for job-creating
		// methods only).
		runtime.WithIncomingHeaderMatcher(func(h string) (string, bool) {
			switch {
			case strings.EqualFold(h, "Authorization"):
				return "authorization", true
			case strings.EqualFold(h, HeaderIdempotencyKey):
				return MetadataIdempotencyKey, true
			}
			return "", false
		}),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithMetadata(legacyMetadata),
		runtime.WithForwardResponseRewriter(streamResponse),
	}
	conn := cfg.Conn
	byService, err := registerLegacy(ctx, func() *runtime.ServeMux { return runtime.NewServeMux(opts...) }, conn)
	if err != nil {
		return nil, err
	}
	// GET /2/jobs/{job_id}/wait carries a JSON body, which grpc-gateway does
	// not read on GET; this handler (registered last, so it wins) does.
	mux := byService[rapiv2.JobService_ServiceDesc.ServiceName]
	jobs := rapiv2.NewJobServiceClient(conn)
	if err := mux.HandlePath("GET", "/2/jobs/{job_id}/wait", func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		serveWaitJobChange(mux, jobs, w, r, params)
	}); err != nil {
		return nil, err
	}
	muxes := map[string]*runtime.ServeMux{}
	for _, rt := range routes.All() {
		for _, m := range rt.Methods {
			svc, _, _ := strings.Cut(strings.TrimPrefix(m.FullMethod, "/"), "/")
			if muxes[m.FullMethod] = byService[svc]; muxes[m.FullMethod] == nil {
				return nil, fmt.Errorf("gateway: no legacy registration of %s", m.FullMethod)
			}
		}
	}
	return &Legacy{cfg: cfg, routes: routes, mux: mux, muxes: muxes}, nil
}

// Routes returns the legacy route table.
func (l *Legacy) Routes() *Routes { return l.routes }

// ServeHTTP applies Ganeti's order of checks: route (404), method (501),
// authentication and access (401, 403, 400: Config.Authorize), body (413,
// 415, 400), then the handler.
func (l *Legacy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := strings.ToUpper(r.Method)
	route := l.routes.Match(r.URL.EscapedPath())
	if route == nil {
		WriteLegacyError(w, LegacyError{Code: http.StatusNotFound, Message: "Not Found", Explain: explain[404]})
		return
	}
	// The route names the request's span and labels its metrics (otelhttp
	// reads the pattern once the handler returns) and its access log line.
	r.Pattern = method + " " + route.Template
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		span.SetAttributes(attrRoute.String(r.Pattern), semconv.HTTPRoute(route.Template))
	}
	if _, ok := route.Methods[method]; !ok {
		WriteLegacyError(w, LegacyError{
			Code:    http.StatusNotImplemented,
			Message: fmt.Sprintf("Method %s is unsupported for path %s", method, r.RequestURI),
			Explain: explain[501],
		})
		return
	}
	m := route.Methods[method]
	call := &LegacyCall{
		Authorization: r.Header.Values("Authorization"),
		RemoteAddr:    r.RemoteAddr,
		Proxy:         ProxyFromContext(r.Context()),
		HTTPMethod:    method,
		Route:         route.Template,
		Path:          r.URL.EscapedPath(),
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		call.ClientCert, call.ClientCN = true, r.TLS.VerifiedChains[0][0].Subject.CommonName
	}
	if !l.legacyCluster(w, r, call) {
		return
	}
	if l.cfg.Limits.kind(m.FullMethod) == kindQuery {
		// Only queries reserve memory for their answer.
		call.Hold = l.cfg.Budget.TicketOf(r.Context())
	}
	if l.cfg.Authorize != nil {
		if err := l.cfg.Authorize(r.Context(), m.FullMethod, call); err != nil {
			errorHandler(r.Context(), l.mux, nil, w, r, err)
			return
		}
	}
	// The Idempotency-Key of a job-creating write is checked here (a 400
	// in Ganeti's order of checks, and only printable ASCII can travel as
	// metadata); other requests ignore it.
	if keys := r.Header.Values(HeaderIdempotencyKey); len(keys) > 0 {
		if !CreatesJob(m.FullMethod) {
			r.Header.Del(HeaderIdempotencyKey)
		} else if _, err := ParseIdempotencyKey(keys); err != nil {
			errorHandler(r.Context(), l.mux, nil, w, r, ToStatus(l.cfg.Logger, err))
			return
		}
	}
	limit := l.cfg.Limits.BodyLimit(m.FullMethod)
	body, err := l.readBody(w, r, limit)
	if err != nil {
		WriteLegacyError(w, LegacyError{Code: http.StatusBadRequest, Message: "Unable to read request body", Explain: explain[400]})
		return
	}
	if int64(len(body)) > limit {
		WriteLegacyError(w, LegacyError{Code: http.StatusRequestEntityTooLarge, Message: "Request body too large", Explain: explain[413]})
		return
	}
	// A query body waits for room in the request budget before it is
	// decoded.
	release, err := l.cfg.Limits.reserveRequest(r.Context(), l.cfg.RequestBudget, m.FullMethod, int64(len(body)))
	if err != nil {
		errorHandler(r.Context(), l.mux, nil, w, r, err)
		return
	}
	defer release()
	if len(body) > 0 {
		if !strings.EqualFold(strings.TrimSpace(r.Header.Get("Content-Type")), "application/json") {
			WriteLegacyError(w, LegacyError{Code: http.StatusUnsupportedMediaType, Message: "Unsupported Media Type", Explain: explain[415]})
			return
		}
		if !json.Valid(body) {
			WriteLegacyError(w, LegacyError{Code: http.StatusBadRequest, Message: "Unable to parse JSON data", Explain: explain[400]})
			return
		}
	}
	// Writes whose body only carries job options (Ganeti's handlers that
	// ignore the body but for an object's "depends") accept any JSON: the
	// official client sends AddNodeTags' tags as a list body, for one.
	if m.BodyField == optionsBody && !isJSONObject(body) {
		body = nil
	}
	// Ganeti's checks on the keys of a write body (renamed, static and
	// forbidden parameters) need the body as the client sent it.
	if body, err = PrepareLegacyBody(m.FullMethod, r.URL.Query(), body); err != nil {
		errorHandler(r.Context(), l.mux, nil, w, r, err)
		return
	}
	ctx := context.WithValue(r.Context(), routeKey{}, routeInfo{route.Template, method})
	ctx = context.WithValue(ctx, writerKey{}, &legacyResult{w: w, whole: m.ResponseBody == ""})
	r2 := r.WithContext(context.WithValue(ctx, callKey{}, call))
	r2.Method = method
	if len(call.Authorization) > 0 {
		r2.Header["Authorization"] = []string{forwardableAuthorization(call.Authorization[0])}
	}
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.Header.Set("Content-Type", "application/json")
	l.muxes[m.FullMethod].ServeHTTP(w, r2)
}

type writerKey struct{}

// legacyResult is what a legacy request's context carries to its answer:
// the client's writer and, when the answer is the whole response message,
// the service's own response (set by Direct, which then skips copying it
// into grpc-gateway's message: see directResult).
type legacyResult struct {
	w     http.ResponseWriter
	whole bool
	resp  proto.Message
}

// directResult returns the slot of ctx that a Direct call may hand its
// response to instead of copying it, nil when there is none.
func directResult(ctx context.Context) *legacyResult {
	if r, ok := ctx.Value(writerKey{}).(*legacyResult); ok && r != nil && r.whole && r.resp == nil {
		return r
	}
	return nil
}

// withoutDirectResult is ctx for a call whose response its caller reads
// itself (not through streamResponse).
func withoutDirectResult(ctx context.Context) context.Context {
	return context.WithValue(ctx, writerKey{}, (*legacyResult)(nil))
}

// streamResponse has the legacy marshaler write a service's answer to the
// client as it encodes it (legacyjson.Streamed), rather than into one
// buffer the size of the answer: a bulk list of a large cluster costs a
// chunk per request. Errors (google.rpc.Status) are not streamed.
func streamResponse(ctx context.Context, resp proto.Message) (any, error) {
	res, ok := ctx.Value(writerKey{}).(*legacyResult)
	if !ok || res == nil || !strings.HasPrefix(string(resp.ProtoReflect().Descriptor().FullName()), "ganeti.") {
		return resp, nil
	}
	var body any = resp
	if res.resp != nil && res.resp.ProtoReflect().Descriptor() == resp.ProtoReflect().Descriptor() {
		// The service's own answer (a frozen one is encoded once).
		body = res.resp
	} else if rb, ok := resp.(interface{ XXX_ResponseBody() any }); ok {
		body = rb.XXX_ResponseBody()
	}
	return legacyjson.Streamed{Value: body, W: res.w}, nil
}

// optionsBody is the request field of bodies that only carry job options.
const optionsBody = "options"

func isJSONObject(body []byte) bool {
	b := bytes.TrimSpace(body)
	return len(b) > 0 && b[0] == '{'
}

// readBody reads the body, up to limit+1 bytes, within ReadTimeout. After
// a failed read the connection is closed with the response.
func (l *Legacy) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var rc *http.ResponseController
	if l.cfg.ReadTimeout > 0 {
		rc = http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(l.cfg.ReadTimeout)) != nil {
			rc = nil
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		w.Header().Set("Connection", "close")
		return nil, err
	}
	if rc != nil {
		// Clear the deadline once the body is in: the server keeps reading
		// the connection to notice a client that goes away during a long
		// poll.
		_ = rc.SetReadDeadline(time.Time{})
	}
	return body, nil
}

// forwardableAuthorization is the Authorization value sent on the
// in-process call: the client's, unless it has bytes that gRPC metadata
// cannot carry (outside printable ASCII), in which case it is replaced by
// a value that authenticates the same way: the canonical form of its
// credentials, a bare "Basic", or an unsupported scheme.
func forwardableAuthorization(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			user, password, err := auth.ParseAuthorization(v)
			switch {
			case err == nil:
				return auth.BasicAuthorization(user, password)
			case errors.Is(err, auth.ErrNoCredentials):
				return "Basic"
			}
			return "Invalid"
		}
	}
	return v
}

// routingErrorHandler only runs for requests that passed the route table
// but that grpc-gateway does not route (a path the table accepts with
// characters grpc-gateway decodes differently): answer as Ganeti would.
func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	if code == http.StatusMethodNotAllowed {
		WriteLegacyError(w, LegacyError{Code: http.StatusNotImplemented, Message: fmt.Sprintf("Method %s is unsupported for path %s", r.Method, r.RequestURI), Explain: explain[501]})
		return
	}
	WriteLegacyError(w, LegacyError{Code: http.StatusNotFound, Message: "Not Found", Explain: explain[404]})
}

// serveWaitJobChange decodes the GET body of /2/jobs/{job_id}/wait with
// Ganeti's checks and messages.
func serveWaitJobChange(mux *runtime.ServeMux, jobs rapiv2.JobServiceClient, w http.ResponseWriter, r *http.Request, params map[string]string) {
	m := legacyjson.Marshaler{}
	ctx, err := runtime.AnnotateContext(withoutDirectResult(r.Context()), mux, r, "/ganeti.rapi.v2.JobService/WaitJobChange", runtime.WithHTTPPathPattern("/2/jobs/{job_id}/wait"))
	if err != nil {
		errorHandler(r.Context(), mux, m, w, r, err)
		return
	}
	req, err := decodeWaitBody(r.Body)
	if err != nil {
		errorHandler(ctx, mux, m, w, r, status.Error(codes.InvalidArgument, err.Error()))
		return
	}
	id, ok := pyInt(params["job_id"])
	if !ok {
		errorHandler(ctx, mux, m, w, r, status.Error(codes.NotFound, "Not Found"))
		return
	}
	req.JobId = id
	resp, err := jobs.WaitJobChange(ctx, req)
	if err != nil {
		errorHandler(ctx, mux, m, w, r, err)
		return
	}
	out, err := m.Marshal(resp.GetChange())
	if err != nil {
		errorHandler(ctx, mux, m, w, r, err)
		return
	}
	w.Header().Set("Content-Type", m.ContentType(nil))
	_, _ = w.Write(out)
}

// decodeWaitBody checks {"fields": [...], "previous_job_info": [...]|null,
// "previous_log_serial": n|null} as Ganeti does.
func decodeWaitBody(body io.Reader) (*rapiv2.WaitJobChangeRequest, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if len(data) == 0 || dec.Decode(&obj) != nil || obj == nil {
		//lint:ignore ST1005 Ganeti's wire text
		return nil, errors.New("The 'fields' parameter should be a list")
	}
	if _, ok := obj["fields"].([]any); !ok {
		//lint:ignore ST1005 Ganeti's wire text
		return nil, errors.New("The 'fields' parameter should be a list")
	}
	if v := obj["previous_job_info"]; v != nil {
		if _, ok := v.([]any); !ok {
			//lint:ignore ST1005 Ganeti's wire text
			return nil, errors.New("The 'previous_job_info' parameter should be a list")
		}
	}
	if v := obj["previous_log_serial"]; v != nil {
		if n, ok := v.(json.Number); !ok || strings.ContainsAny(n.String(), ".eE") {
			//lint:ignore ST1005 Ganeti's wire text
			return nil, errors.New("The 'previous_log_serial' parameter should be a number")
		}
	}
	req := &rapiv2.WaitJobChangeRequest{}
	known := map[string]any{}
	for _, k := range []string{"fields", "previous_job_info", "previous_log_serial"} {
		if v, ok := obj[k]; ok {
			known[k] = v
		}
	}
	if err := legacyjson.FromValue(req, known); err != nil {
		//lint:ignore ST1005 Ganeti's wire text
		return nil, errors.New("The 'fields' parameter should be a list")
	}
	return req, nil
}
