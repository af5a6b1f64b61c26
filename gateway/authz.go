package gateway

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/membudget"
	"github.com/ganeti-gateway/ganeti-gateway/internal/telemetry"
)

// Metadata keys of the legacy gateway's in-process calls. They are trusted
// only on calls for which AuthConfig.InProcess is true; the listener strips
// them from external gRPC requests (InternalMetadataPrefix).
const (
	InternalMetadataPrefix = "x-ganeti-gateway-"
	mdPeer                 = InternalMetadataPrefix + "peer"
	mdProxy                = InternalMetadataPrefix + "proxy"
	mdClientCN             = InternalMetadataPrefix + "client-cn-bin"
	mdHTTPMethod           = InternalMetadataPrefix + "http-method"
	mdHTTPRoute            = InternalMetadataPrefix + "http-route"
	mdHTTPPath             = InternalMetadataPrefix + "http-path-bin"
	mdHold                 = InternalMetadataPrefix + "hold"
)

// LegacyCall describes a legacy HTTP request, for authentication and the
// audit log.
type LegacyCall struct {
	// Authorization holds the Authorization header values (nil when the
	// header is absent). On the in-process call it travels as the
	// "authorization" metadata key (the gateway's header matcher).
	Authorization []string
	// RemoteAddr is the HTTP client's address: the TCP peer's, or the
	// client a trusted proxy named (then Proxy is the peer's).
	RemoteAddr string
	// Proxy is the address of the trusted reverse proxy the request came
	// through (TrustedProxies); empty when RemoteAddr is the peer.
	Proxy string
	// ClientCert is set when the client presented a certificate verified
	// against the client CA; ClientCN is its subject's common name.
	ClientCert bool
	ClientCN   string
	// HTTPMethod, Route (the route template) and Path (the escaped path,
	// without the query) of the request.
	HTTPMethod, Route, Path string
	// Hold is the ticket of the request's memory budget Hold
	// (Hold.Ticket): the in-process call reserves on the request's behalf.
	Hold string
	// Cluster is the cluster the request is for (several clusters behind
	// the gateway; "" otherwise): a user's options scoped to it apply.
	Cluster string
}

// Metadata is the internal metadata that carries c on the gateway's
// in-process call (everything but Authorization).
func (c *LegacyCall) Metadata() metadata.MD {
	md := metadata.Pairs(
		mdPeer, c.RemoteAddr,
		mdHTTPMethod, c.HTTPMethod,
		mdHTTPRoute, c.Route,
		mdHTTPPath, c.Path,
	)
	if c.ClientCert {
		md.Set(mdClientCN, c.ClientCN)
	}
	if c.Hold != "" {
		md.Set(mdHold, c.Hold)
	}
	if c.Proxy != "" {
		md.Set(mdProxy, c.Proxy)
	}
	if c.Cluster != "" {
		md.Set(mdCluster, c.Cluster)
	}
	return md
}

func legacyCallFromMetadata(md metadata.MD) *LegacyCall {
	first := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	c := &LegacyCall{
		Authorization: md.Get("authorization"),
		RemoteAddr:    first(mdPeer),
		Proxy:         first(mdProxy),
		HTTPMethod:    first(mdHTTPMethod),
		Route:         first(mdHTTPRoute),
		Path:          first(mdHTTPPath),
		Hold:          first(mdHold),
	}
	if cn := md.Get(mdClientCN); len(cn) > 0 {
		c.ClientCert, c.ClientCN = true, cn[0]
	}
	return c
}

// AuthConfig configures authentication, authorization and the per-user
// limits.
type AuthConfig struct {
	// Users is the user table. Required.
	Users interface{ Table() *auth.Table }
	// AllowAnonymousReads lets requests without credentials call methods
	// whose access list is empty (upstream's default). Otherwise every
	// method needs an authenticated user (upstream's
	// --require-authentication).
	AllowAnonymousReads bool
	// WriteRate and WriteBurst make the per-user token bucket of writes;
	// a WriteRate <= 0 means no limit.
	WriteRate  rate.Limit
	WriteBurst int
	// MaxWaiters bounds the concurrent job waits (WaitJobChange, which
	// GET /2/jobs/{id}/wait calls); <= 0 means no limit.
	MaxWaiters int
	// MaxWatchers bounds the concurrent WatchJob streams, and
	// MaxWatchersPerUser those of one user; <= 0 means no limit. They do
	// not share MaxWaiters' places.
	MaxWatchers, MaxWatchersPerUser int
	// MaxAnonymousPerPeer bounds the concurrent requests without valid
	// credentials (health checks, reflection, anonymous reads) from one
	// client address (an IPv6 /64), and MaxAnonymous those of all
	// addresses (AdmitConnectionRequest); <= 0 means no limit.
	MaxAnonymousPerPeer, MaxAnonymous int
	// Budget is the memory budget of large answers; the legacy gateway's
	// in-process calls find their request's Hold in it.
	Budget *membudget.MemoryBudget
	// InProcess reports whether a call comes from the legacy gateway over
	// the in-process connection, whose internal metadata is trusted.
	InProcess func(context.Context) bool
	// Logger receives the audit log and the access log of gRPC calls;
	// default slog.Default().
	Logger *slog.Logger
	// MeterProvider records the authentication failures and the active
	// long polls (telemetry.go); nil: none.
	MeterProvider metric.MeterProvider
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *AuthConfig) CheckAndSetDefaults() error {
	if c.Users == nil {
		return errors.New("server: AuthConfig.Users is required")
	}
	if c.WriteRate > 0 && c.WriteBurst < 1 {
		c.WriteBurst = 1
	}
	if c.InProcess == nil {
		c.InProcess = func(context.Context) bool { return false }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Authorizer authenticates and authorizes every call, on both surfaces,
// with Ganeti's rules, applies the per-user write rate and the long-poll
// limit, puts the user in the context (auth.FromContext) and writes the
// audit log. Its interceptors go inside ErrorUnaryInterceptor /
// ErrorStreamInterceptor, which turn its domain errors into statuses.
type Authorizer struct {
	cfg     AuthConfig
	log     *slog.Logger
	methods sync.Map  // full method name -> *methodInfo
	waits   *slotPool // job waits
	watches *slotPool // job watches
	anon    *peerLimiter
	metrics *authMetrics

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// NewAuthorizer builds an Authorizer.
func NewAuthorizer(cfg AuthConfig) (*Authorizer, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	a := &Authorizer{cfg: cfg, log: cfg.Logger, limiters: map[string]*rate.Limiter{}}
	var err error
	if a.metrics, err = newAuthMetrics(cfg.MeterProvider); err != nil {
		return nil, err
	}
	a.waits = newSlotPool(cfg.MaxWaiters, 0)
	a.watches = newSlotPool(cfg.MaxWatchers, cfg.MaxWatchersPerUser)
	a.anon = newPeerLimiter(cfg.MaxAnonymousPerPeer, cfg.MaxAnonymous)
	return a, nil
}

// openServices need no authentication: gRPC health checking and server
// reflection (which only describes the API).
var openServices = map[string]bool{
	"grpc.health.v1.Health":                    true,
	"grpc.reflection.v1.ServerReflection":      true,
	"grpc.reflection.v1alpha.ServerReflection": true,
}

// longPollMethods wait for a job to change: MaxWaiters bounds the waits,
// MaxWatchers the watches.
var longPollMethods = map[string]bool{
	"/ganeti.rapi.v2.JobService/WaitJobChange": true,
	watchJobMethod: true,
}

const watchJobMethod = "/ganeti.rapi.v2.JobService/WatchJob"

type methodInfo struct {
	full string
	// access is the (ganeti.rapi.v2.access) list of the method.
	access []string
	// open: no authentication (openServices).
	open bool
	// write: the access list has "write" but not "read", and the method is
	// not a long poll. Writes are rate-limited per user and audited.
	write    bool
	longPoll bool
	// watch: the long poll is a job watch (else a job wait).
	watch bool
}

// method looks the method's access list up in the proto registry.
func (a *Authorizer) method(full string) *methodInfo {
	if m, ok := a.methods.Load(full); ok {
		return m.(*methodInfo)
	}
	m := &methodInfo{full: full, longPoll: longPollMethods[full], watch: full == watchJobMethod}
	svc, name, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	if openServices[svc] {
		m.open = true
	} else if d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc)); err == nil {
		if sd, ok := d.(protoreflect.ServiceDescriptor); ok {
			if md := sd.Methods().ByName(protoreflect.Name(name)); md != nil {
				m.access, _ = proto.GetExtension(md.Options(), rapiv2.E_Access).([]string)
			}
		}
	}
	m.write = slices.Contains(m.access, auth.OptionWrite) && !slices.Contains(m.access, auth.OptionRead) && !m.longPoll
	a.methods.Store(full, m)
	return m
}

// request is what the checks need to know of one call.
type request struct {
	method *methodInfo
	call   *LegacyCall
	// legacy: the call came through the legacy
	legacy bool
}

func (a *Authorizer) requestOf(ctx context.Context, m *methodInfo) *request {
	md, _ := metadata.FromIncomingContext(ctx)
	if a.cfg.InProcess(ctx) {
		c := legacyCallFromMetadata(md)
		c.Cluster = backend.ClusterFrom(ctx)
		return &request{method: m, call: c, legacy: true}
	}
	c := &LegacyCall{Authorization: md.Get("authorization"), Proxy: ProxyFromContext(ctx), Cluster: backend.ClusterFrom(ctx)}
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			c.RemoteAddr = p.Addr.String()
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			c.ClientCert, c.ClientCN = true, ti.State.VerifiedChains[0][0].Subject.CommonName
		}
	}
	return &request{method: m, call: c}
}

// Preflight runs the authentication and authorization step of a legacy
// request before its body is read, which is Ganeti's order of checks. The
// error is a gRPC status. The in-process call that follows is checked again
// by the interceptors.
func (a *Authorizer) Preflight(ctx context.Context, fullMethod string, call *LegacyCall) error {
	m := a.method(fullMethod)
	if m.open {
		return nil
	}
	user, err := a.authenticate(ctx, &request{method: m, call: call, legacy: true})
	if user != nil {
		if info := accessInfoFrom(ctx); info != nil {
			info.User = user.Name
		}
		trace.SpanFromContext(ctx).SetAttributes(attrUser.String(user.Name))
	}
	return ToStatus(a.log, err)
}

// authenticate applies Ganeti's rules (errors.md section 4): credentials
// are checked when the method's access list is non-empty, when
// authentication is required (no AllowAnonymousReads) and whenever they are
// sent (an Authorization header, or a verified client certificate); the
// user is allowed when the access list is empty or shares an option with
// the user. A nil user means an anonymous request that is allowed.
func (a *Authorizer) authenticate(ctx context.Context, r *request) (*auth.User, error) {
	access := r.method.access
	table := a.cfg.Users.Table()
	var user *auth.User
	switch {
	case len(r.call.Authorization) > 0:
		name, password, err := auth.ParseAuthorization(r.call.Authorization[0])
		if errors.Is(err, auth.ErrNoCredentials) {
			a.denied(ctx, r, "", codes.InvalidArgument, "Basic authentication without credentials")
			return nil, errs.BadRequest("Basic authentication requires credentials")
		}
		if err != nil {
			a.denied(ctx, r, "", codes.Unauthenticated, err.Error())
			return nil, errs.Unauthorized()
		}
		u, ok := table.Authenticate(name, password)
		if !ok {
			reason := "wrong password"
			if u == nil {
				reason = "unknown user"
			}
			a.denied(ctx, r, name, codes.Unauthenticated, reason)
			return nil, errs.Unauthorized()
		}
		user = u
	case r.call.ClientCert:
		u, ok := table.Lookup(r.call.ClientCN)
		if !ok {
			a.denied(ctx, r, r.call.ClientCN, codes.Unauthenticated, "client certificate names a user that is not in the users file")
			return nil, errs.Unauthorized()
		}
		user = u
	case len(access) > 0 || !a.cfg.AllowAnonymousReads:
		a.denied(ctx, r, "", codes.Unauthenticated, "no credentials")
		return nil, errs.Unauthorized()
	default:
		return nil, nil
	}
	// The user as it is on the request's cluster: its unscoped options
	// and those scoped to the cluster ("write@a").
	user = user.InCluster(r.call.Cluster)
	if len(access) == 0 || user.HasAny(access) {
		return user, nil
	}
	a.denied(ctx, r, user.Name, codes.PermissionDenied, "the user has none of the options "+strings.Join(access, ", "))
	return nil, errs.Forbidden()
}

// admit applies the per-user write rate and the long-poll limit; release
// must be called when the call ends.
func (a *Authorizer) admit(ctx context.Context, r *request, user *auth.User) (release func(), err error) {
	if r.method.write && a.cfg.WriteRate > 0 {
		name := ""
		if user != nil {
			name = user.Name
		}
		if wait := a.reserveWrite(name); wait > 0 {
			a.denied(ctx, r, name, codes.ResourceExhausted, "write rate limit")
			return nil, errs.TooManyRequests(wait, "Too many write requests, retry later")
		}
	}
	if r.method.longPoll {
		return a.longPoll(ctx, r, user)
	}
	return func() {}, nil
}

// reserveWrite takes a token from the user's bucket; it returns how long
// to wait when there is none (and takes nothing then).
func (a *Authorizer) reserveWrite(user string) time.Duration {
	a.mu.Lock()
	lim, ok := a.limiters[user]
	if !ok {
		lim = rate.NewLimiter(a.cfg.WriteRate, a.cfg.WriteBurst)
		a.limiters[user] = lim
	}
	a.mu.Unlock()
	now := time.Now()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// UnaryInterceptor checks every unary call.
func (a *Authorizer) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		m := a.method(info.FullMethod)
		if m.open {
			return handler(ctx, req)
		}
		r := a.requestOf(ctx, m)
		var user *auth.User
		if !r.legacy {
			defer a.accessLog(ctx, r, &user, time.Now(), &err)
		}
		defer func() { annotateError(ctx, err) }()
		user, err = a.authenticate(ctx, r)
		if err != nil {
			return nil, err
		}
		ctx = a.annotate(ctx, r, user)
		release, err := a.admit(ctx, r, user)
		if err != nil {
			return nil, err
		}
		defer release()
		resp, err = handler(ctx, req)
		if m.write {
			a.audit(ctx, r, user, req, resp, err)
		}
		return resp, err
	}
}

// StreamInterceptor checks every streaming call.
func (a *Authorizer) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		m := a.method(info.FullMethod)
		if m.open {
			return handler(srv, ss)
		}
		ctx := ss.Context()
		r := a.requestOf(ctx, m)
		var user *auth.User
		if !r.legacy {
			defer a.accessLog(ctx, r, &user, time.Now(), &err)
		}
		defer func() { annotateError(ctx, err) }()
		user, err = a.authenticate(ctx, r)
		if err != nil {
			return err
		}
		ctx = a.annotate(ctx, r, user)
		release, err := a.admit(ctx, r, user)
		if err != nil {
			return err
		}
		defer release()
		err = handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
		if m.write {
			a.audit(ctx, r, user, nil, nil, err)
		}
		return err
	}
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// attrs are the audit attributes common to every record. Passwords and
// Authorization headers are never among them.
func (r *request) attrs(user string) []slog.Attr {
	out := []slog.Attr{
		slog.String("user", user),
		slog.String("source", r.call.RemoteAddr),
		slog.String("rpc", r.method.full),
	}
	if r.call.Proxy != "" {
		out = append(out, slog.String("proxy", r.call.Proxy))
	}
	if r.legacy {
		out = append(out,
			slog.String("http_method", r.call.HTTPMethod),
			slog.String("http_route", r.call.Route),
			slog.String("http_path", r.call.Path))
	}
	if r.call.ClientCert {
		out = append(out, slog.String("client_cert_cn", r.call.ClientCN))
	}
	if r.call.Cluster != "" {
		out = append(out, slog.String("cluster", r.call.Cluster))
	}
	return out
}

// denied logs a request that authentication, authorization or a limit
// refused.
func (a *Authorizer) denied(ctx context.Context, r *request, user string, code codes.Code, reason string) {
	a.metrics.denied(ctx, code)
	attrs := append([]slog.Attr{slog.String("event", "denied")}, r.attrs(user)...)
	attrs = append(attrs, slog.String("code", code.String()), slog.String("reason", reason))
	a.log.LogAttrs(ctx, slog.LevelWarn, "audit", attrs...)
}

// audit logs a write once it has run.
func (a *Authorizer) audit(ctx context.Context, r *request, user *auth.User, req, resp any, err error) {
	name := ""
	if user != nil {
		name = user.Name
	}
	code := status.Code(ToStatus(nil, err))
	attrs := append([]slog.Attr{slog.String("event", "write")}, r.attrs(name)...)
	attrs = append(attrs, slog.String("code", code.String()))
	if id, ok := jobIDOf(req, resp); ok {
		attrs = append(attrs, slog.Int64("job_id", id))
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

type jobIDer interface{ GetJobId() int64 }

// jobIDOf is the job a write submitted (or names, for a cancel).
func jobIDOf(req, resp any) (int64, bool) {
	for _, v := range []any{resp, req} {
		if j, ok := v.(jobIDer); ok && j.GetJobId() != 0 {
			return j.GetJobId(), true
		}
	}
	return 0, false
}

// Attribute keys of the spans the authorizer annotates (shared with the
// job engine's).
var (
	attrUser = telemetry.AttrUser
)

// annotate puts the user in the context (auth.FromContext) and the job
// origin (backend.WithOrigin), and the user and the legacy route on the
// call's span.
func (a *Authorizer) annotate(ctx context.Context, r *request, user *auth.User) context.Context {
	o := backend.Origin{RPC: r.method.full}
	if r.legacy && r.call.Hold != "" {
		// The legacy request's Hold: what the call reserves is kept until
		// the gateway has written the answer.
		ctx = membudget.WithHold(ctx, a.cfg.Budget.Lookup(r.call.Hold))
	}
	if user != nil {
		ctx = auth.NewContext(ctx, user)
		o.User = user.Name
	}
	if r.legacy && r.call.Route != "" {
		o.Route = r.call.HTTPMethod + " " + r.call.Route
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		if o.User != "" {
			span.SetAttributes(attrUser.String(o.User))
		}
		if o.Route != "" {
			span.SetAttributes(attrRoute.String(o.Route))
		}
	}
	if !slices.Contains(r.method.access, auth.OptionWrite) {
		return ctx // submits no job
	}
	return backend.WithOrigin(ctx, o)
}

// annotateError puts the Ganeti error class and classification of a
// failed call on its span (the status code is otelgrpc's).
func annotateError(ctx context.Context, err error) {
	if err == nil {
		return
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if de, ok := errs.As(err); ok {
		span.SetAttributes(telemetry.AttrErrClass.String(de.Class))
		if de.Code != "" {
			span.SetAttributes(telemetry.AttrErrCode.String(string(de.Code)))
		}
	}
}

// accessLog writes the one access log line of a gRPC call that did not
// come through the legacy gateway (legacy requests get theirs from the
// gateway).
func (a *Authorizer) accessLog(ctx context.Context, r *request, user **auth.User, start time.Time, err *error) {
	if !a.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	name := ""
	if *user != nil {
		name = (*user).Name
	}
	attrs := []slog.Attr{
		slog.String("rpc", r.method.full),
		slog.String("code", status.Code(ToStatus(nil, *err)).String()),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("user", name),
		slog.String("source", r.call.RemoteAddr),
	}
	if r.call.Proxy != "" {
		attrs = append(attrs, slog.String("proxy", r.call.Proxy))
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "access", attrs...)
}

type proxyKey struct{}

// WithProxy records in ctx that the request came through the trusted
// reverse proxy at addr, and that its peer address (peer.FromContext, the
// HTTP request's RemoteAddr) is the client the proxy named. Only the
// listener (TrustedProxies) sets it.
func WithProxy(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, proxyKey{}, addr)
}

// ProxyFromContext is the trusted proxy's address that WithProxy set;
// empty when the request came straight from its client.
func ProxyFromContext(ctx context.Context) string {
	s, _ := ctx.Value(proxyKey{}).(string)
	return s
}

// AccessInfo is what the access log line of a legacy request learns from
// the authorizer's Preflight: the authenticated user.
type AccessInfo struct {
	User string
}

type accessInfoKey struct{}

// WithAccessInfo returns ctx with a new AccessInfo, which Preflight fills
// in.
func WithAccessInfo(ctx context.Context) (context.Context, *AccessInfo) {
	info := &AccessInfo{}
	return context.WithValue(ctx, accessInfoKey{}, info), info
}

func accessInfoFrom(ctx context.Context) *AccessInfo {
	info, _ := ctx.Value(accessInfoKey{}).(*AccessInfo)
	return info
}

// authMetrics are the authorizer's metrics.
type authMetrics struct {
	failures  metric.Int64Counter
	longPolls metric.Int64UpDownCounter
	window    failureWindow
}

const authMeterName = "github.com/ganeti-gateway/ganeti-gateway/internal/service"

func newAuthMetrics(mp metric.MeterProvider) (*authMetrics, error) {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	m := mp.Meter(authMeterName)
	am := &authMetrics{}
	var err error
	if am.failures, err = m.Int64Counter("rapi.auth.failures", metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused by authentication or authorization (401, 403, 400 for Basic without credentials), by gRPC code")); err != nil {
		return nil, err
	}
	if am.longPolls, err = m.Int64UpDownCounter("rapi.jobs.waiters", metric.WithUnit("{request}"),
		metric.WithDescription("Job long polls in progress (GET /2/jobs/{job_id}/wait, WaitJobChange, WatchJob)")); err != nil {
		return nil, err
	}
	_, err = m.Float64ObservableGauge("rapi.auth.failure.rate", metric.WithUnit("{request}/s"),
		metric.WithDescription("Authentication and authorization failures per second over the last minute"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(am.window.rate(time.Now()))
			return nil
		}))
	return am, err
}

func (m *authMetrics) denied(ctx context.Context, code codes.Code) {
	if code == codes.ResourceExhausted {
		return // a limit, not an authentication failure
	}
	m.failures.Add(ctx, 1, metric.WithAttributes(attribute.String("rpc.grpc.status_code", code.String())))
	m.window.add(time.Now())
}

func (m *authMetrics) longPollStart(ctx context.Context) { m.longPolls.Add(ctx, 1) }
func (m *authMetrics) longPollEnd(ctx context.Context)   { m.longPolls.Add(ctx, -1) }

// failureWindow counts events per second over the last minute.
type failureWindow struct {
	mu     sync.Mutex
	counts [60]int64
	secs   [60]int64 // the second each bucket counts
}

func (w *failureWindow) add(now time.Time) {
	s := now.Unix()
	i := s % 60
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.secs[i] != s {
		w.secs[i], w.counts[i] = s, 0
	}
	w.counts[i]++
}

// rate is the events per second over the minute before now.
func (w *failureWindow) rate(now time.Time) float64 {
	s := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for i := range w.secs {
		if s-w.secs[i] < 60 {
			n += w.counts[i]
		}
	}
	return float64(n) / 60
}
