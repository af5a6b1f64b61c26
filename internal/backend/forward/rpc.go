package forward

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// The Replica service: one unary method per write, each taking and
// returning a JSON document in a google.protobuf.BytesValue (it is
// internal to the replicas of one version: no public proto). The caller
// authenticates with the replicas' shared secret in the metadata
// MetadataSecret; the transport's users and access lists do not apply
// (the caller checked them for its client).
const (
	ServiceName = "ganeti.gateway.v1.Replica"
	// MethodPrefix is the prefix of the service's full method names.
	MethodPrefix = "/" + ServiceName + "/"
	// MetadataSecret carries the shared secret.
	MetadataSecret = "x-ganeti-replica-secret"
)

// autoFingerprint is the fingerprint of the keys a follower adds to a
// submission without one.
const autoFingerprint = "replica-forward"

func autoKey() string { return "replica-" + rand.Text() }

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// request is the JSON of every method's request.
type request struct {
	Origin      backend.Origin       `json:"origin"`
	Ops         [][]byte             `json:"ops,omitempty"`
	Priority    *int                 `json:"priority,omitempty"`
	Idempotency *backend.Idempotency `json:"idempotency,omitempty"`
	ID          int64                `json:"id,omitempty"`
	UUID        string               `json:"uuid,omitempty"`
	Rule        *ruleJSON            `json:"rule,omitempty"`
}

type ruleJSON struct {
	Priority   int64 `json:"priority"`
	Predicates []any `json:"predicates"`
	Action     any   `json:"action"`
	Reason     []any `json:"reason"`
}

// response is the JSON of every method's answer.
type response struct {
	ID   int64  `json:"id,omitempty"`
	OK   bool   `json:"ok,omitempty"`
	Msg  string `json:"msg,omitempty"`
	UUID string `json:"uuid,omitempty"`
	// Lease is the answering replica's etcd lease (Identity).
	Lease int64 `json:"lease,omitempty"`
	// NotLeader: this replica does not lead; nothing was done.
	NotLeader bool       `json:"not_leader,omitempty"`
	Err       *errorJSON `json:"err,omitempty"`
}

type errorJSON struct {
	Class      string        `json:"class,omitempty"`
	Code       errs.Code     `json:"code,omitempty"`
	Msg        string        `json:"msg"`
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// Internal: not a domain error (its text is not for clients).
	Internal bool `json:"internal,omitempty"`
}

func encodeErr(err error) *errorJSON {
	if e, ok := errs.As(err); ok {
		return &errorJSON{Class: e.Class, Code: e.Code, Msg: e.Msg, RetryAfter: e.RetryAfter}
	}
	return &errorJSON{Msg: err.Error(), Internal: true}
}

func (e *errorJSON) err() error {
	if e.Internal {
		return fmt.Errorf("the leader: %s", e.Msg)
	}
	return &errs.Error{Class: e.Class, Code: e.Code, Msg: e.Msg, RetryAfter: e.RetryAfter}
}

// Handler serves the Replica service on the leader.
type Handler struct {
	// Leader returns the backend of the writes while this replica leads.
	Leader func() (backend.Backend, bool)
	// Secret returns the shared secret (nil: every call is refused).
	Secret func() []byte
	// Lease is this replica's etcd lease, the answer of Identity.
	Lease func() int64
}

type handlerFunc func(h *Handler, ctx context.Context, be backend.Backend, req *request) (*response, error)

// identity is the method any replica answers: its lease, which tells a
// follower whether the process at the leader's address is the leader.
const identity = "Identity"

var methods = map[string]handlerFunc{
	"Submit": func(_ *Handler, ctx context.Context, be backend.Backend, req *request) (*response, error) {
		ops := make([]*rapiv2.OpCode, len(req.Ops))
		for i, b := range req.Ops {
			ops[i] = &rapiv2.OpCode{}
			if err := proto.Unmarshal(b, ops[i]); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "opcode %d: %v", i, err)
			}
		}
		id, err := be.Submit(ctx, ops, backend.SubmitOptions{Priority: req.Priority, Idempotency: req.Idempotency})
		if err != nil {
			return &response{Err: encodeErr(err)}, nil
		}
		return &response{ID: id}, nil
	},
	"Cancel": func(_ *Handler, ctx context.Context, be backend.Backend, req *request) (*response, error) {
		ok, msg, err := be.Cancel(ctx, req.ID)
		if err != nil {
			return &response{Err: encodeErr(err)}, nil
		}
		return &response{OK: ok, Msg: msg}, nil
	},
	"ReplaceFilter": func(_ *Handler, ctx context.Context, be backend.Backend, req *request) (*response, error) {
		if req.Rule == nil {
			return nil, status.Error(codes.InvalidArgument, "no rule")
		}
		uuid, err := be.ReplaceFilter(ctx, req.UUID, backend.FilterRuleSpec{Priority: req.Rule.Priority,
			Predicates: req.Rule.Predicates, Action: req.Rule.Action, Reason: req.Rule.Reason})
		if err != nil {
			return &response{Err: encodeErr(err)}, nil
		}
		return &response{UUID: uuid}, nil
	},
	"DeleteFilter": func(_ *Handler, ctx context.Context, be backend.Backend, req *request) (*response, error) {
		if err := be.DeleteFilter(ctx, req.UUID); err != nil {
			return &response{Err: encodeErr(err)}, nil
		}
		return &response{}, nil
	},
}

// Register registers the Replica service of h on s.
func Register(s grpc.ServiceRegistrar, h *Handler) {
	desc := grpc.ServiceDesc{ServiceName: ServiceName, HandlerType: (*any)(nil), Metadata: "internal/backend/forward"}
	all := maps.Clone(methods)
	all[identity] = nil
	for name, fn := range all {
		desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: name,
			Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
				in := &wrapperspb.BytesValue{}
				if err := dec(in); err != nil {
					return nil, err
				}
				call := func(ctx context.Context, req any) (any, error) {
					return h.serve(ctx, fn, req.(*wrapperspb.BytesValue))
				}
				if icpt == nil {
					return call(ctx, in)
				}
				return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: MethodPrefix + name}, call)
			}})
	}
	s.RegisterService(&desc, h)
}

func (h *Handler) serve(ctx context.Context, fn handlerFunc, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	if err := h.authenticate(ctx); err != nil {
		return nil, err
	}
	var req request
	d := json.NewDecoder(bytes.NewReader(in.GetValue()))
	d.UseNumber()
	if err := d.Decode(&req); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "replica request: %v", err)
	}
	if req.Rule != nil {
		req.Rule.Predicates, _ = backend.NormalizeNumbers(req.Rule.Predicates).([]any)
		req.Rule.Action = backend.NormalizeNumbers(req.Rule.Action)
		req.Rule.Reason, _ = backend.NormalizeNumbers(req.Rule.Reason).([]any)
	}
	var resp *response
	be, leads := h.Leader()
	switch {
	case fn == nil: // identity
		resp = &response{Lease: h.Lease()}
	case !leads:
		resp = &response{NotLeader: true}
	default:
		var err error
		if resp, err = fn(h, backend.WithOrigin(ctx, req.Origin), be, &req); err != nil {
			return nil, err
		}
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	return wrapperspb.Bytes(out), nil
}

// Authenticated reports whether ctx carries the replicas' shared secret.
func (h *Handler) authenticate(ctx context.Context) error {
	secret := h.Secret()
	md, _ := metadata.FromIncomingContext(ctx)
	got := md.Get(MetadataSecret)
	if len(secret) == 0 || len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), secret) != 1 {
		return status.Error(codes.Unauthenticated, "replica: not authenticated")
	}
	return nil
}

// Client is the Remote of a follower: it finds the leader, calls its
// Replica service, and retries while there is none or it changes.
type Client struct {
	// Leader returns the leader's address (host:port); an error while
	// there is none.
	Leader func(ctx context.Context) (string, error)
	// Dial connects to a replica's address.
	Dial func(addr string) (*grpc.ClientConn, error)
	// Secret is the shared secret.
	Secret []byte
	// RetryFor bounds how long a write waits for a leader that answers
	// (default 15 s, within the caller's deadline).
	RetryFor time.Duration
	// Logger receives why the leader could not be reached (default
	// slog.Default()).
	Logger *slog.Logger

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

var _ Remote = (*Client)(nil)

// Close closes the connections.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		_ = cc.Close()
	}
	c.conns = nil
}

func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	cc, err := c.Dial(addr)
	if err != nil {
		return nil, err
	}
	if c.conns == nil {
		c.conns = map[string]*grpc.ClientConn{}
	}
	c.conns[addr] = cc
	return cc, nil
}

var errNotLeader = errors.New("the replica called does not lead")

// call sends req to the leader's method, retrying (with a growing pause)
// while no leader answers; the answer's domain error is returned as is.
func (c *Client) call(ctx context.Context, method string, req *request) (*response, error) {
	req.Origin = backend.OriginFrom(ctx)
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	retryFor := c.RetryFor
	if retryFor <= 0 {
		retryFor = 15 * time.Second
	}
	deadline := time.Now().Add(retryFor)
	pause := 20 * time.Millisecond
	for {
		resp, err := c.once(ctx, method, body)
		if err == nil {
			if resp.Err != nil {
				return nil, resp.Err.err()
			}
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !retriable(err) || time.Now().Add(pause).After(deadline) {
			logger := c.Logger
			if logger == nil {
				logger = slog.Default()
			}
			logger.Warn("replica: the leader could not be reached", "method", method, "err", err)
			return nil, errs.Unavailable("The leader replica could not be reached")
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

func retriable(err error) bool {
	if errors.Is(err, errNotLeader) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Unknown:
		return true
	}
	return !strings.HasPrefix(err.Error(), "rpc error")
}

func (c *Client) once(ctx context.Context, method string, body []byte) (*response, error) {
	addr, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	actx = metadata.AppendToOutgoingContext(actx, MetadataSecret, string(c.Secret))
	out := &wrapperspb.BytesValue{}
	if err := cc.Invoke(actx, MethodPrefix+method, wrapperspb.Bytes(body), out); err != nil {
		return nil, err
	}
	var resp response
	d := json.NewDecoder(bytes.NewReader(out.GetValue()))
	d.UseNumber()
	if err := d.Decode(&resp); err != nil {
		return nil, err
	}
	if resp.NotLeader {
		return nil, errNotLeader
	}
	return &resp, nil
}

// Identity asks the replica at addr for its lease.
func (c *Client) Identity(ctx context.Context, addr string) (int64, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return 0, err
	}
	ctx = metadata.AppendToOutgoingContext(ctx, MetadataSecret, string(c.Secret))
	out := &wrapperspb.BytesValue{}
	if err := cc.Invoke(ctx, MethodPrefix+identity, wrapperspb.Bytes([]byte("{}")), out); err != nil {
		return 0, err
	}
	var resp response
	if err := json.Unmarshal(out.GetValue(), &resp); err != nil {
		return 0, err
	}
	return resp.Lease, nil
}

// Gone reports whether nothing listens at addr: a connection to it is
// refused (its process is gone, or another took its port and answers
// Identity with another lease). A timeout is not an answer: false.
func Gone(ctx context.Context, addr string) bool {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	_ = conn.Close()
	return false
}

func (c *Client) Submit(ctx context.Context, ops []*rapiv2.OpCode, opt backend.SubmitOptions) (int64, error) {
	req := &request{Priority: opt.Priority, Idempotency: opt.Idempotency}
	for _, op := range ops {
		b, err := proto.Marshal(op)
		if err != nil {
			return 0, err
		}
		req.Ops = append(req.Ops, b)
	}
	resp, err := c.call(ctx, "Submit", req)
	if err != nil {
		return 0, err
	}
	return resp.ID, nil
}

func (c *Client) Cancel(ctx context.Context, id int64) (bool, string, error) {
	resp, err := c.call(ctx, "Cancel", &request{ID: id})
	if err != nil {
		return false, "", err
	}
	return resp.OK, resp.Msg, nil
}

func (c *Client) ReplaceFilter(ctx context.Context, uuid string, rule backend.FilterRuleSpec) (string, error) {
	resp, err := c.call(ctx, "ReplaceFilter", &request{UUID: uuid, Rule: &ruleJSON{Priority: rule.Priority,
		Predicates: rule.Predicates, Action: rule.Action, Reason: rule.Reason}})
	if err != nil {
		return "", err
	}
	return resp.UUID, nil
}

func (c *Client) DeleteFilter(ctx context.Context, uuid string) error {
	_, err := c.call(ctx, "DeleteFilter", &request{UUID: uuid})
	return err
}
