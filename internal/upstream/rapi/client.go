// Package rapi is the RAPI upstream backend: a backend.Backend that fronts
// a real Ganeti cluster by talking HTTPS to its remote API (ganeti-rapi).
// Reads map to upstream reads (/2/query where it serves them), every
// opcode to the RAPI route that submits it (derived from the proto's route
// table, routes.go), job waits to /2/jobs/{id}/wait. The master is
// protected by a cap on concurrent calls, singleflight for identical
// concurrent reads, a per-call timeout, a circuit breaker, an optional
// read cache, and writes that are never retried unless they carry an
// idempotency key.
package rapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Defaults of Config.
const (
	DefaultMaxConcurrent  = 16
	DefaultTimeout        = 8 * time.Second // below clients' usual 10 s
	DefaultHealthInterval = 5 * time.Second
	DefaultIdempotencyTTL = 24 * time.Hour
	DefaultIdempotencyMax = 100000
	// BreakerFailures consecutive failures open the breaker for
	// BreakerOpen.
	BreakerFailures = 5
	BreakerOpen     = 5 * time.Second
	// maxBody bounds an upstream answer.
	maxBody = 256 << 20
)

// Config configures the upstream backend.
type Config struct {
	// URLs are the upstream's RAPI base URLs (https://host:5080), one per
	// node that may be master; the master is found with /2/info.
	URLs []string
	// User and PasswordFile are the service user's credentials (the
	// password file's first line).
	User, PasswordFile string
	// CAFile verifies the upstream certificate (Ganeti's rapi.pem);
	// Insecure skips verification.
	CAFile   string
	Insecure bool
	// MaxConcurrent caps the upstream calls in flight, and apart the job
	// waits in flight (each may hold its call for Ganeti's 10 s).
	MaxConcurrent int
	// Timeout bounds one upstream call (a job wait asks Ganeti for at
	// most its own 10 s and gets this plus that).
	Timeout time.Duration
	// CacheTTL, when positive, caches reads that long.
	CacheTTL time.Duration
	// HealthInterval is how often the master is checked (and found again
	// after a failover).
	HealthInterval time.Duration
	// IdempotencyTTL and IdempotencyMax bound the idempotency key -> job
	// id map.
	IdempotencyTTL time.Duration
	IdempotencyMax int
	Logger         *slog.Logger
	// OnHealth, when set, is called after every health check (nil: the
	// master answered).
	OnHealth func(error)
	// BreakerFailures consecutive failed calls open the circuit breaker
	// for BreakerOpen (defaults: the constants).
	BreakerFailures int
	BreakerOpen     time.Duration
	// Transport, when set, replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

// client is the HTTP side: master, limits, breaker, singleflight, cache.
type client struct {
	cfg      Config
	user     string
	password string
	http     *http.Client
	sem      chan struct{}
	// waitSem caps the job waits apart: a wait holds its call for up to
	// Ganeti's 10 s, and must not starve the reads.
	waitSem chan struct{}
	// breakers has one circuit breaker per address: a master failover
	// moves the calls to a closed one.
	breakers []*gobreaker.CircuitBreaker[*response]
	group    singleflight.Group
	cache    *cache
	master   atomic.Int32 // index into cfg.URLs
	healthy  atomic.Pointer[error]
	inflight atomic.Int64
	maxSeen  atomic.Int64
	calls    atomic.Int64
	log      *slog.Logger
	stop     chan struct{}
	stopOnce sync.Once
}

// response is an upstream answer.
type response struct {
	status int
	body   []byte
}

// errUpstream marks an upstream that did not answer usably (the breaker
// counts these); errs.Error answers of the upstream are not failures.
type upstreamError struct {
	msg string
	// notSent: the connection could not be made, the request never left.
	notSent bool
}

// errNotSent marks a write whose request never reached the upstream: the
// only kind a keyed write may retry.
var errNotSent = errors.New("upstream request not sent")

func (e *upstreamError) Error() string { return e.msg }

// unavailable is the error a client sees when the upstream cannot be
// reached: 502 / UNAVAILABLE, naming no address or credential.
func unavailable(what string) error {
	return errs.BadGateway("The upstream Ganeti cluster %s", what)
}

func newClient(cfg Config) (*client, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("upstream: no URL")
	}
	for _, u := range cfg.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return nil, fmt.Errorf("upstream: %q is not an https://host:port URL", redactURL(u))
		}
		if pu.User != nil {
			return nil, errors.New("upstream: credentials go in --upstream-user and --upstream-password-file, never in the URL")
		}
	}
	c := &client{cfg: cfg, user: cfg.User, log: cfg.Logger, stop: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--upstream-password-file: cannot read %s", cfg.PasswordFile)
		}
		c.password = strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if cfg.BreakerFailures <= 0 {
		cfg.BreakerFailures = BreakerFailures
	}
	if cfg.BreakerOpen <= 0 {
		cfg.BreakerOpen = BreakerOpen
	}
	if cfg.IdempotencyMax <= 0 {
		cfg.IdempotencyMax = DefaultIdempotencyMax
	}
	c.cfg = cfg
	rt := cfg.Transport
	if rt == nil {
		// ganeti-rapi closes every connection: resumed sessions spare a
		// full handshake per call.
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.Insecure, //nolint:gosec // explicit --upstream-insecure
			ClientSessionCache: tls.NewLRUClientSessionCache(len(cfg.URLs) * 4)}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("--upstream-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--upstream-ca: no PEM certificate in %s", cfg.CAFile)
			}
			tlsCfg.RootCAs = pool
			// Ganeti's rapi.pem is self-signed for the cluster with no
			// subject alternative names, which Go's host name check
			// refuses: the chain is verified against the CA bundle, and the
			// host name only when the certificate names hosts.
			tlsCfg.InsecureSkipVerify = true
			tlsCfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyPinned(cs, pool) }
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsCfg
		tr.MaxIdleConnsPerHost = cfg.MaxConcurrent
		tr.ResponseHeaderTimeout = 0 // the per-call context bounds it
		rt = tr
	}
	c.http = &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c.sem = make(chan struct{}, cfg.MaxConcurrent)
	c.waitSem = make(chan struct{}, cfg.MaxConcurrent)
	for range cfg.URLs {
		c.breakers = append(c.breakers, gobreaker.NewCircuitBreaker[*response](gobreaker.Settings{
			Name:    "upstream",
			Timeout: cfg.BreakerOpen,
			ReadyToTrip: func(counts gobreaker.Counts) bool {
				return counts.ConsecutiveFailures >= uint32(cfg.BreakerFailures)
			},
			IsSuccessful: func(err error) bool {
				var ue *upstreamError
				return !errors.As(err, &ue)
			},
			OnStateChange: func(_ string, from, to gobreaker.State) {
				c.log.Warn("upstream circuit breaker", "from", from.String(), "to", to.String())
			},
		}))
	}
	if cfg.CacheTTL > 0 {
		c.cache = newCache(cfg.CacheTTL)
	}
	return c, nil
}

// verifyPinned verifies the peer's chain against roots, and its host name
// when the certificate has subject alternative names.
func verifyPinned(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("upstream: no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter}
	if len(leaf.DNSNames) > 0 || len(leaf.IPAddresses) > 0 {
		opts.DNSName = cs.ServerName
	}
	_, err := leaf.Verify(opts)
	return err
}

// redactURL drops any user information from a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	return u.String()
}

// call makes one upstream request within the cap, the timeout and the
// breaker. A 2xx answer is returned; Ganeti's error answers become errs
// errors; a transport failure, a 5xx of the proxy kind or an open breaker
// become 502 / UNAVAILABLE.
func (c *client) call(ctx context.Context, method, path string, body any, timeout time.Duration) (*response, error) {
	return c.callWith(ctx, c.sem, method, path, body, timeout)
}

// callWith is call within the cap sem.
func (c *client) callWith(ctx context.Context, sem chan struct{}, method, path string, body any, timeout time.Duration) (*response, error) {
	if timeout <= 0 {
		timeout = c.cfg.Timeout
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	master := c.master.Load()
	base := strings.TrimRight(c.cfg.URLs[master], "/")
	resp, err := c.breakers[master].Execute(func() (*response, error) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// Deferred first, so run last: the slot frees after the count.
		defer func() { <-sem }()
		if sem == c.sem {
			n := c.inflight.Add(1)
			for {
				m := c.maxSeen.Load()
				if n <= m || c.maxSeen.CompareAndSwap(m, n) {
					break
				}
			}
			defer c.inflight.Add(-1)
		}
		c.calls.Add(1)
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(cctx, method, base+path, bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		req.ContentLength = int64(len(payload))
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "ganeti-gateway")
		if c.user != "" {
			req.SetBasicAuth(c.user, c.password)
		}
		hr, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err() // the caller gave up: not the upstream's failure
			}
			// err names the URL, never the credentials (they are in a
			// header); logged without it anyway.
			c.log.Warn("upstream call failed", "method", method, "path", pathOnly(path), "err", cleanErr(err))
			var op *net.OpError
			return nil, &upstreamError{msg: "unreachable", notSent: errors.As(err, &op) && op.Op == "dial"}
		}
		defer hr.Body.Close()
		b, err := io.ReadAll(io.LimitReader(hr.Body, maxBody))
		if err != nil {
			c.log.Warn("upstream answer cut", "method", method, "path", pathOnly(path), "err", cleanErr(err))
			return nil, &upstreamError{msg: "answer cut"}
		}
		if hr.StatusCode == http.StatusBadGateway || hr.StatusCode == http.StatusGatewayTimeout ||
			(hr.StatusCode == http.StatusServiceUnavailable && !ganetiError(b)) {
			return nil, &upstreamError{msg: fmt.Sprintf("status %d", hr.StatusCode)}
		}
		return &response{status: hr.StatusCode, body: b}, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, unavailable("is not answering (circuit breaker open)")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, err
	default:
		var ue *upstreamError
		if errors.As(err, &ue) {
			if ue.notSent {
				return nil, errors.Join(errNotSent, unavailable("did not answer"))
			}
			return nil, unavailable("did not answer")
		}
		return nil, err
	}
	if resp.status >= 200 && resp.status < 300 {
		return resp, nil
	}
	return nil, upstreamStatusError(resp)
}

// pathOnly is a request path without its query (query values may be a
// client's names; never credentials, which go in headers).
func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// cleanErr is an error's text without URLs' user information.
func cleanErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// forbiddenMsg is the error of a call the service user may not make.
const forbiddenMsg = "The upstream Ganeti cluster refused the gateway's service user (403)"

// upstreamStatusError maps a Ganeti error answer to the domain error a
// client sees: the same status class with Ganeti's message (unescaped).
func upstreamStatusError(r *response) error {
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(r.body, &e)
	msg := html.UnescapeString(e.Message)
	switch r.status {
	case http.StatusBadRequest:
		return errs.BadRequest("%s", msg)
	case http.StatusNotFound:
		return errs.Prereq(errs.CodeNoEnt, "%s", msg)
	case http.StatusConflict:
		return errs.Prereq(errs.CodeState, "%s", msg)
	case http.StatusUnauthorized, http.StatusForbidden:
		// The gateway's service user was refused: the operator's problem,
		// not the client's.
		if r.status == http.StatusForbidden {
			return errs.BadGateway("%s", forbiddenMsg)
		}
		return errs.BadGateway("The upstream Ganeti cluster refused the gateway's service user (401)")
	case http.StatusServiceUnavailable:
		return errs.Unavailable("%s", msg)
	case http.StatusNotImplemented:
		return errs.NotImplemented("%s", msg)
	case http.StatusRequestEntityTooLarge:
		return errs.TooLarge("%s", msg)
	}
	return errs.BadGateway("The upstream Ganeti cluster answered %d", r.status)
}

// callWrite is a write: no cache, no singleflight; errNotSent in the
// error when the request never left.
func (c *client) callWrite(ctx context.Context, method, path string, body any) (*response, error) {
	return c.call(ctx, method, path, body, 0)
}

// ganetiError reports whether b is Ganeti's error body (a 503 of Ganeti's
// own, e.g. the console of a stopped instance, is an answer, not a
// failure).
func ganetiError(b []byte) bool {
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	return json.Unmarshal(b, &e) == nil && e.Code != 0 && e.Message != ""
}

// parsed is a read's answer, parsed, and the size of its JSON.
type parsed struct {
	val  any
	size int64
}

// read is a read (GET, or PUT /2/query), parsed by parse: cached when the
// cache is on (parsed: a hit costs no decoding; the values are shared and
// never modified, see backend), singleflight for identical concurrent
// reads. A path's reads always use the same parse.
func (c *client) read(ctx context.Context, method, path string, body any, parse func([]byte) (any, error)) (parsed, error) {
	key := method + " " + path
	if body != nil {
		b, _ := json.Marshal(body)
		key += " " + string(b)
	}
	cacheable := c.cache != nil && !strings.Contains(path, "/2/jobs") && !strings.Contains(path, "/2/query/job")
	if cacheable {
		if p, ok := c.cache.get(key); ok {
			return p, nil
		}
	}
	// The flight runs on its own context (a caller leaving must not cut
	// the others' answer), bounded by the call timeout.
	ch := c.group.DoChan(key, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		r, err := c.call(ctx, method, path, body, 0)
		if err != nil {
			return nil, err
		}
		v, err := parse(r.body)
		if err != nil {
			return nil, err
		}
		p := parsed{val: v, size: int64(len(r.body))}
		if cacheable {
			c.cache.put(key, p)
		}
		return p, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return parsed{}, res.Err
		}
		return res.Val.(parsed), nil
	case <-ctx.Done():
		return parsed{}, ctx.Err()
	}
}

// decode decodes a JSON answer into JSON-like values (int64 numbers).
func decode(b []byte) (any, error) {
	v, err := backend.DecodeValue(b)
	if err != nil {
		return nil, errs.BadGateway("The upstream Ganeti cluster sent an answer that is not JSON")
	}
	return v, nil
}

// cache is the optional read cache: whole answers by request, for a TTL,
// dropped for the objects a job touches when it ends (invalidate).
type cache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cacheEntry
}

type cacheEntry struct {
	p       parsed
	expires time.Time
}

func newCache(ttl time.Duration) *cache { return &cache{ttl: ttl, m: map[string]cacheEntry{}} }

func (c *cache) get(key string) (parsed, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || time.Now().After(e.expires) {
		delete(c.m, key)
		return parsed{}, false
	}
	return e.p, true
}

func (c *cache) put(key string, p parsed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 10000 { // bounded: drop the expired, then everything
		now := time.Now()
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) > 10000 {
			clear(c.m)
		}
	}
	c.m[key] = cacheEntry{p: p, expires: time.Now().Add(c.ttl)}
}

// invalidate drops every cached read: a job may change any list, query,
// object or the cluster's info, so all of them go when the gateway sees a
// job end (job reads are never cached).
func (c *cache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
