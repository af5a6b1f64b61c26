package gateway

import (
	"context"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Direct is the legacy surface's connection to the gRPC services without
// a codec: a unary call runs the service's registered handler through the
// same interceptor chain and stats handlers as a call over the wire (and
// with what a server call carries: incoming metadata, the in-process peer,
// the method name), but hands over the request and response messages
// themselves instead of serialising them. Streams, methods not registered
// through Direct.Registrar, and the rare calls the gRPC codec or metadata
// rules would refuse (a string that is not UTF-8, a metadata value
// outside printable ASCII) take the Fallback connection, so that their
// answer stays the one of the wire.
type Direct struct {
	cfg     DirectConfig
	mu      sync.RWMutex
	methods map[string]directMethod
}

// DirectConfig configures a Direct connection.
type DirectConfig struct {
	// Unary are the server's unary interceptors, in the order given to
	// grpc.ChainUnaryInterceptor.
	Unary []grpc.UnaryServerInterceptor
	// ServerStats and ClientStats are the server's and the in-process
	// client's stats handlers (tracing, metrics); nil: none.
	ServerStats, ClientStats stats.Handler
	// Fallback carries what Direct does not (see Direct); required.
	Fallback grpc.ClientConnInterface
}

type directMethod struct {
	impl    any
	handler grpc.MethodHandler
}

// NewDirect returns a Direct connection; register the services with
// Registrar before the first call.
func NewDirect(cfg DirectConfig) *Direct {
	return &Direct{cfg: cfg, methods: map[string]directMethod{}}
}

// SetFallback sets DirectConfig.Fallback (the in-process connection is
// made once the services are registered).
func (d *Direct) SetFallback(c grpc.ClientConnInterface) { d.cfg.Fallback = c }

// Registrar returns a grpc.ServiceRegistrar that registers services on r
// and records their unary methods for Direct.
func (d *Direct) Registrar(r grpc.ServiceRegistrar) grpc.ServiceRegistrar {
	return directRegistrar{d: d, next: r}
}

type directRegistrar struct {
	d    *Direct
	next grpc.ServiceRegistrar
}

func (r directRegistrar) RegisterService(sd *grpc.ServiceDesc, impl any) {
	r.next.RegisterService(sd, impl)
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	for _, m := range sd.Methods {
		r.d.methods["/"+sd.ServiceName+"/"+m.MethodName] = directMethod{impl: impl, handler: m.Handler}
	}
}

// NewStream takes the fallback connection.
func (d *Direct) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return d.cfg.Fallback.NewStream(ctx, desc, method, opts...)
}

// Invoke runs a unary call in process.
func (d *Direct) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	d.mu.RLock()
	m, ok := d.methods[method]
	d.mu.RUnlock()
	in, okIn := args.(proto.Message)
	out, okOut := reply.(proto.Message)
	if !ok || !okIn || !okOut || !validUTF8(in.ProtoReflect()) {
		return d.cfg.Fallback.Invoke(ctx, method, args, reply, opts...)
	}
	begin := time.Now()
	info := &stats.RPCTagInfo{FullMethodName: method}
	if h := d.cfg.ClientStats; h != nil {
		// The client handler adds the trace context to the outgoing
		// metadata, as on the wire.
		ctx = h.TagRPC(ctx, info)
		h.HandleRPC(ctx, &stats.Begin{Client: true, BeginTime: begin})
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	if !validMetadata(md) {
		err := d.cfg.Fallback.Invoke(ctx, method, args, reply, opts...)
		d.endClient(ctx, begin, err)
		return err
	}
	sctx := metadata.NewIncomingContext(metadata.NewOutgoingContext(ctx, nil), md)
	sctx = peer.NewContext(sctx, &peer.Peer{Addr: inProcessAddr{}, LocalAddr: inProcessAddr{}})
	st := &directStream{method: method}
	sctx = grpc.NewContextWithServerTransportStream(sctx, st)
	if h := d.cfg.ServerStats; h != nil {
		sctx = h.TagRPC(sctx, info)
		h.HandleRPC(sctx, &stats.Begin{BeginTime: begin})
	}
	dec := func(v any) error {
		shallowCopy(v.(proto.Message).ProtoReflect(), in.ProtoReflect())
		return nil
	}
	resp, err := m.handler(m.impl, sctx, dec, d.chain)
	if err != nil {
		// As the gRPC server does: a non-status error is Unknown (a
		// context error keeps its code).
		if s, ok := status.FromError(err); ok {
			err = s.Err()
		} else {
			err = status.FromContextError(err).Err()
		}
	}
	if h := d.cfg.ServerStats; h != nil {
		h.HandleRPC(sctx, &stats.End{BeginTime: begin, EndTime: time.Now(), Error: err})
	}
	if err == nil && ctx.Err() != nil {
		// The client gave up first: it sees its context's error.
		err = status.FromContextError(ctx.Err()).Err()
	}
	if err == nil {
		if r, ok := resp.(proto.Message); ok && r.ProtoReflect().Descriptor() == out.ProtoReflect().Descriptor() {
			if res := directResult(ctx); res != nil {
				// The legacy answer is the response itself: streamResponse
				// encodes it (a shared, frozen one from its bytes), so
				// grpc-gateway's message stays empty.
				res.resp = r
			} else {
				shallowCopy(out.ProtoReflect(), r.ProtoReflect())
			}
		}
	}
	st.deliver(opts)
	d.endClient(ctx, begin, err)
	return err
}

func (d *Direct) endClient(ctx context.Context, begin time.Time, err error) {
	if h := d.cfg.ClientStats; h != nil {
		h.HandleRPC(ctx, &stats.End{Client: true, BeginTime: begin, EndTime: time.Now(), Error: err})
	}
}

// chain runs the unary interceptors in order, then the handler.
func (d *Direct) chain(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return d.next(0, ctx, req, info, handler)
}

func (d *Direct) next(i int, ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if i == len(d.cfg.Unary) {
		return handler(ctx, req)
	}
	return d.cfg.Unary[i](ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return d.next(i+1, ctx, req, info, handler)
	})
}

// shallowCopy sets dst's populated fields to src's values (sharing lists,
// maps and messages) and its unknown fields to src's: the handler's
// request is the caller's, as the response the caller gets is the
// handler's. Neither side changes a message after the call.
func shallowCopy(dst, src protoreflect.Message) {
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
}

// validUTF8 reports whether every string of m is valid UTF-8, which the
// gRPC codec requires of proto3 strings (a request that is not fails on
// the wire, and takes the fallback to fail the same way).
func validUTF8(m protoreflect.Message) bool {
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && ok; i++ {
				ok = validValue(fd, l.Get(i))
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				ok = validValue(fd.MapKey(), k.Value()) && validValue(fd.MapValue(), mv)
				return ok
			})
		default:
			ok = validValue(fd, v)
		}
		return ok
	})
	return ok
}

func validValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return utf8.ValidString(v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return validUTF8(v.Message())
	}
	return true
}

// validMetadata reports whether gRPC would send md: the values of keys
// other than binary ones ("-bin") in printable ASCII.
func validMetadata(md metadata.MD) bool {
	for k, vs := range md {
		if len(k) > 4 && k[len(k)-4:] == "-bin" {
			continue
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if v[i] < 0x20 || v[i] > 0x7e {
					return false
				}
			}
		}
	}
	return true
}

// directStream is the grpc.ServerTransportStream of a Direct call: the
// headers and trailers a handler sets reach the caller's grpc.Header and
// grpc.Trailer options.
type directStream struct {
	method          string
	mu              sync.Mutex
	header, trailer metadata.MD
	headerSent      bool
}

func (s *directStream) Method() string { return s.method }

func (s *directStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headerSent {
		return status.Error(codes.Internal, "transport: the stream is done or WriteHeader was already called")
	}
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *directStream) SendHeader(md metadata.MD) error {
	if err := s.SetHeader(md); err != nil {
		return err
	}
	s.mu.Lock()
	s.headerSent = true
	s.mu.Unlock()
	return nil
}

func (s *directStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// deliver hands the headers and trailers to the call options.
func (s *directStream) deliver(opts []grpc.CallOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = s.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = s.trailer
		}
	}
}
