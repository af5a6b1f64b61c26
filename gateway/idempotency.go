package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Idempotent writes: a job-creating call (a method that answers a
// JobSubmission) may carry an idempotency key, the "idempotency-key"
// metadata (the legacy surface's Idempotency-Key header, which the gateway
// forwards as that metadata). The key is scoped to the user; the request's
// fingerprint is its method and a hash of its message. The job engine
// keeps the key with the job (backend.SubmitOptions.Idempotency): a retry
// with the same key and message gets the first job's id and creates
// nothing, the same key with another message is a conflict (409 /
// ALREADY_EXISTS). Other calls ignore the key.

// MetadataIdempotencyKey is the metadata key of an idempotency key, and
// HeaderIdempotencyKey the legacy header (the IETF draft's name).
const (
	MetadataIdempotencyKey = "idempotency-key"
	HeaderIdempotencyKey   = "Idempotency-Key"
)

// MaxIdempotencyKeyLen is the longest idempotency key.
const MaxIdempotencyKeyLen = 255

// ParseIdempotencyKey validates the values of an idempotency key header
// or metadata key: one value, 1 to MaxIdempotencyKeyLen printable ASCII
// characters. A value in double quotes (the IETF draft's structured-field
// string, with \" and \\ escapes) is unquoted first, so "abc" and abc are
// the same key. No values is no key ("", nil).
func ParseIdempotencyKey(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", errs.BadRequest("Invalid %s: give it once", HeaderIdempotencyKey)
	}
	v := values[0]
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var ok bool
		if v, ok = unquoteSFString(v[1 : len(v)-1]); !ok {
			return "", errs.BadRequest("Invalid %s: malformed quoted string", HeaderIdempotencyKey)
		}
	}
	if len(v) == 0 || len(v) > MaxIdempotencyKeyLen {
		return "", errs.BadRequest("Invalid %s: it must have 1 to %d characters", HeaderIdempotencyKey, MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return "", errs.BadRequest("Invalid %s: only printable ASCII characters are allowed", HeaderIdempotencyKey)
		}
	}
	return v, nil
}

// unquoteSFString undoes the escapes of a structured-field string's
// content (RFC 8941 section 3.3.3): a backslash only before '"' or '\'.
func unquoteSFString(s string) (string, bool) {
	if !strings.ContainsAny(s, `\"`) {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return "", false
		case '\\':
			if i+1 == len(s) || (s[i+1] != '"' && s[i+1] != '\\') {
				return "", false
			}
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

var jobSubmissionName = (&rapiv2.JobSubmission{}).ProtoReflect().Descriptor().FullName()

var createsJob sync.Map // full method -> bool

// CreatesJob reports whether a gRPC method (e.g.
// "/ganeti.rapi.v2.TagService/AddClusterTags") submits a job: it answers
// a JobSubmission. Only those take an idempotency key.
func CreatesJob(fullMethod string) bool {
	if v, ok := createsJob.Load(fullMethod); ok {
		return v.(bool)
	}
	yes := false
	svc, name, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc)); err == nil {
		if sd, ok := d.(protoreflect.ServiceDescriptor); ok {
			if md := sd.Methods().ByName(protoreflect.Name(name)); md != nil {
				yes = md.Output().FullName() == jobSubmissionName
			}
		}
	}
	createsJob.Store(fullMethod, yes)
	return yes
}

// requestFingerprint identifies a request for its idempotency key: the
// method and the SHA-256 of the message's deterministic encoding.
func requestFingerprint(fullMethod string, req proto.Message) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return fullMethod + " sha256:" + hex.EncodeToString(sum[:]), nil
}

// IdempotencyUnaryInterceptor reads the idempotency key of job-creating
// calls, validates it (INVALID_ARGUMENT / 400) and hands it, with the
// user and the request's fingerprint, to the job submission. It goes after
// the authorizer's interceptor (it needs the user).
func IdempotencyUnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !CreatesJob(info.FullMethod) {
			return handler(ctx, req)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		key, err := ParseIdempotencyKey(md.Get(MetadataIdempotencyKey))
		if err != nil {
			return nil, err
		}
		msg, ok := req.(proto.Message)
		if key == "" || !ok {
			return handler(ctx, req)
		}
		fp, err := requestFingerprint(info.FullMethod, msg)
		if err != nil {
			return nil, err
		}
		k := &backend.Idempotency{Key: key, Fingerprint: fp}
		if u, ok := auth.FromContext(ctx); ok {
			k.Scope = u.Name
		}
		return handler(backend.WithIdempotency(ctx, k), req)
	}
}
