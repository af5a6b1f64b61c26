package gateway

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/membudget"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
)

// Defaults of the per-method request size limits.
const (
	// DefaultMaxQueryBodyBytes bounds PUT /2/query/{resource} bodies and
	// QueryService messages: a filter naming about 4,000 objects.
	DefaultMaxQueryBodyBytes = 256 << 10
	// DefaultMaxHeaderBytes bounds request headers (and the request line:
	// a GET's query string) and the gRPC messages of read methods, whose
	// legacy form is a URL. Ganeti allows 8,192 bytes of request line and
	// 4,096 of headers.
	DefaultMaxHeaderBytes = 64 << 10
)

// Limits are the request size limits, per method: a method's request is
// refused with 413 / ResourceExhausted beyond its limit, before it is
// decoded.
type Limits struct {
	// BodyBytes bounds the bodies of legacy requests and the gRPC messages
	// of the methods with a body or the write option (default
	// DefaultMaxBodyBytes).
	BodyBytes int64
	// QueryBodyBytes bounds the bodies and messages of the QueryService
	// methods (default DefaultMaxQueryBodyBytes).
	QueryBodyBytes int64
	// ReadMessageBytes bounds the gRPC messages of every other method:
	// reads, health checking, reflection (default DefaultMaxHeaderBytes).
	ReadMessageBytes int64

	kinds sync.Map // full method -> methodKind
}

type methodKind int

const (
	kindRead methodKind = iota
	kindBody
	kindQuery
)

func (l *Limits) setDefaults() {
	if l.BodyBytes <= 0 {
		l.BodyBytes = DefaultMaxBodyBytes
	}
	if l.QueryBodyBytes <= 0 {
		l.QueryBodyBytes = DefaultMaxQueryBodyBytes
	}
	if l.ReadMessageBytes <= 0 {
		l.ReadMessageBytes = DefaultMaxHeaderBytes
	}
}

// kind classifies a method by its proto definition.
func (l *Limits) kind(fullMethod string) methodKind {
	if k, ok := l.kinds.Load(fullMethod); ok {
		return k.(methodKind)
	}
	k := kindRead
	svc, name, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc)); err == nil {
		if sd, ok := d.(protoreflect.ServiceDescriptor); ok {
			if md := sd.Methods().ByName(protoreflect.Name(name)); md != nil {
				rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
				access, _ := proto.GetExtension(md.Options(), rapiv2.E_Access).([]string)
				switch {
				case sd.Name() == "QueryService":
					k = kindQuery
				case rule.GetBody() != "" || slices.Contains(access, auth.OptionWrite):
					k = kindBody
				}
			}
		}
	}
	l.kinds.Store(fullMethod, k)
	return k
}

// BodyLimit is the largest legacy request body of a method: the query
// limit for the QueryService, BodyBytes for the others (Ganeti reads the
// body of every request, so reads keep the general limit).
func (l *Limits) BodyLimit(fullMethod string) int64 {
	if l.kind(fullMethod) == kindQuery {
		return l.QueryBodyBytes
	}
	return l.BodyBytes
}

// MessageLimit is the largest gRPC request message of a method.
func (l *Limits) MessageLimit(fullMethod string) int64 {
	switch l.kind(fullMethod) {
	case kindQuery:
		return l.QueryBodyBytes
	case kindBody:
		return l.BodyBytes
	}
	return l.ReadMessageBytes
}

// reserveRequest reserves the request budget for a query body or message
// of n bytes before it is decoded (nothing for other methods, or small
// ones). The error is a gRPC status.
func (l *Limits) reserveRequest(ctx context.Context, b *membudget.MemoryBudget, fullMethod string, n int64) (release func(), err error) {
	if b == nil || n < service.RequestMemoryMin || l.kind(fullMethod) != kindQuery {
		return func() {}, nil
	}
	release, err = b.Reserve(ctx, n*service.RequestMemoryFactor)
	if err != nil {
		return nil, ToStatus(nil, err)
	}
	return release, nil
}

// SamePortConfig configures the limits SamePortWith applies.
type SamePortConfig struct {
	// Limits bound gRPC request messages per method (see Limits).
	Limits *Limits
	// ReadTimeout is the receive deadline of a gRPC request message: each
	// message must arrive within it once it has begun (the first one,
	// once the request has begun); 0 means none. Between messages (a
	// server stream after its request) there is no deadline.
	ReadTimeout time.Duration
	// Budget is the memory budget of query answers, RequestBudget that of
	// query requests being decoded: every request gets a Hold in each,
	// released when it has been answered. A gRPC query message reserves
	// the request budget before gRPC receives it.
	Budget, RequestBudget *membudget.MemoryBudget
	// Admit, when set, is called for every request before anything else
	// (Authorizer.AdmitConnectionRequest): its error (a gRPC status)
	// refuses the request; release is called when the request ends.
	Admit func(ctx context.Context, call *LegacyCall) (release func(), err error)
	// TrustedProxies are the reverse proxies whose Forwarded or
	// X-Forwarded-For header names the client of a request (see
	// TrustedProxies.ClientAddr); from any other peer these headers are
	// dropped.
	TrustedProxies TrustedProxies
}

// SamePortWith is SamePort with limits: the client address behind a
// trusted proxy, the per-peer admission, the memory budget's Hold of each
// request, and for gRPC requests the per-method message size limit and the
// receive deadline of incomplete messages.
func SamePortWith(grpcServer *grpc.Server, legacy http.Handler, cfg SamePortConfig) http.Handler {
	if cfg.Limits != nil {
		cfg.Limits.setDefaults()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Everything below (and gRPC's peer.FromContext) sees the client
		// as r.RemoteAddr.
		withConnTLS(r.Context(), &r.TLS)
		r = cfg.TrustedProxies.resolveClient(r)
		isGRPC := r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
		if isGRPC {
			// The native interceptors let this call pass.
			r = r.WithContext(context.WithValue(r.Context(), samePortKey{}, true))
		}
		if cfg.Admit != nil {
			call := &LegacyCall{Authorization: r.Header.Values("Authorization"), RemoteAddr: r.RemoteAddr,
				Proxy: ProxyFromContext(r.Context())}
			if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
				call.ClientCert, call.ClientCN = true, r.TLS.VerifiedChains[0][0].Subject.CommonName
			}
			release, err := cfg.Admit(r.Context(), call)
			if err != nil {
				if isGRPC {
					writeGRPCStatus(w, status.Convert(err))
				} else {
					WriteLegacyError(w, legacyErrorFromStatus(status.Convert(err)))
				}
				return
			}
			defer release()
		}
		ctx := r.Context()
		for _, b := range []*membudget.MemoryBudget{cfg.Budget, cfg.RequestBudget} {
			if hold := b.NewHold(); hold != nil {
				defer hold.Release()
				ctx = membudget.WithHold(ctx, hold)
			}
		}
		if ctx != r.Context() {
			r = r.WithContext(ctx)
		}
		if !isGRPC {
			legacy.ServeHTTP(w, r)
			return
		}
		stripInternalMetadata(r)
		var limit int64
		if cfg.Limits != nil {
			limit = cfg.Limits.MessageLimit(r.URL.Path)
		}
		if limit > 0 || cfg.ReadTimeout > 0 {
			fr := &frameReader{body: r.Body, limit: limit, timeout: cfg.ReadTimeout, method: r.URL.Path}
			if cfg.Limits != nil && cfg.RequestBudget != nil {
				ctx := r.Context()
				fr.reserve = func(n int64) error {
					_, err := cfg.Limits.reserveRequest(ctx, cfg.RequestBudget, fr.method, n) // kept by the Hold
					return err
				}
			}
			if cfg.ReadTimeout > 0 {
				fr.rc = http.NewResponseController(w)
				if fr.rc.SetReadDeadline(time.Now().Add(cfg.ReadTimeout)) != nil {
					fr.rc = nil
				}
			}
			// The first message's length is checked before gRPC sees it, so
			// that an oversized or missing message gets a proper status.
			if st := fr.start(); st != nil {
				writeGRPCStatus(w, st)
				return
			}
			r.Body = fr
		}
		grpcServer.ServeHTTP(w, r)
	})
}

func stripInternalMetadata(r *http.Request) {
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), InternalMetadataPrefix) {
			delete(r.Header, k)
		}
	}
}

// frameReader reads a gRPC request body (messages framed as a compressed
// flag, a 4-byte big-endian length and the message): it refuses a message
// longer than limit before gRPC allocates it, and keeps a read deadline
// armed while a message is incomplete.
type frameReader struct {
	body    io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	limit   int64
	method  string
	// reserve, when set, reserves memory for a message of n bytes before
	// it is received (it may wait).
	reserve func(n int64) error

	pending   []byte  // read by start, not yet returned
	prefix    [5]byte // the prefix being read
	pn        int     // bytes of prefix read
	remaining int64   // bytes of the current message still to come
	armed     bool    // the read deadline is set
}

// start reads the first message's prefix; a non-nil status is the answer.
func (f *frameReader) start() *status.Status {
	var buf [5]byte
	n, err := io.ReadFull(f.body, buf[:])
	f.pending = buf[:n:n]
	f.armed = f.rc != nil
	if ferr := f.scan(buf[:n]); ferr != nil {
		return status.Convert(ferr)
	}
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil // gRPC answers a missing or truncated message itself
	case errors.Is(err, os.ErrDeadlineExceeded):
		return f.deadlineStatus()
	}
	return status.New(codes.Canceled, "request canceled")
}

func (f *frameReader) Read(p []byte) (int, error) {
	if len(f.pending) > 0 {
		n := copy(p, f.pending)
		f.pending = f.pending[n:]
		return n, nil
	}
	n, err := f.body.Read(p)
	if n > 0 {
		if serr := f.scan(p[:n]); serr != nil {
			return 0, serr
		}
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// A message begun and not finished in time (gRPC reports the
		// code of this status; the text of the read error is Go's).
		return n, f.deadlineStatus().Err()
	}
	return n, err
}

func (f *frameReader) deadlineStatus() *status.Status {
	return status.Newf(codes.DeadlineExceeded, "The request message did not arrive within %s", f.timeout)
}

func (f *frameReader) Close() error { return f.body.Close() }

// scan follows the framing over b, checks each message's length and arms
// the deadline when a message begins, clears it when one is complete.
func (f *frameReader) scan(b []byte) error {
	for len(b) > 0 {
		if f.remaining > 0 {
			k := min(int64(len(b)), f.remaining)
			f.remaining -= k
			b = b[k:]
			if f.remaining == 0 {
				f.messageDone()
			}
			continue
		}
		if f.pn == 0 && !f.armed && f.rc != nil {
			_ = f.rc.SetReadDeadline(time.Now().Add(f.timeout))
			f.armed = true
		}
		k := copy(f.prefix[f.pn:], b)
		f.pn += k
		b = b[k:]
		if f.pn < len(f.prefix) {
			continue
		}
		f.pn = 0
		length := int64(binary.BigEndian.Uint32(f.prefix[1:]))
		if f.limit > 0 && length > f.limit {
			return ToStatus(nil, errs.TooLarge("The request message of %d bytes is larger than the %d bytes %s accepts", length, f.limit, f.method))
		}
		if f.reserve != nil {
			if err := f.reserve(length); err != nil {
				return err
			}
		}
		f.remaining = length
		if length == 0 {
			f.messageDone()
		}
	}
	return nil
}

func (f *frameReader) messageDone() {
	if f.armed && f.rc != nil {
		_ = f.rc.SetReadDeadline(time.Time{})
	}
	f.armed = false
}

// writeGRPCStatus answers a gRPC request with a status only (a
// trailers-only response).
func writeGRPCStatus(w http.ResponseWriter, st *status.Status) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(int(st.Code())))
	h.Set("Grpc-Message", encodeGRPCMessage(st.Message()))
	if p := st.Proto(); len(p.GetDetails()) > 0 {
		if b, err := proto.Marshal(p); err == nil {
			h.Set("Grpc-Status-Details-Bin", base64.RawStdEncoding.EncodeToString(b))
		}
	}
	w.WriteHeader(http.StatusOK)
}

// encodeGRPCMessage percent-encodes a grpc-message value.
func encodeGRPCMessage(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
