package gateway

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// codeTable is the one mapping from Ganeti's error classification to gRPC
// codes. Errors of classes that carry no classification use classTable.
var codeTable = map[errs.Code]codes.Code{
	errs.CodeInval:     codes.InvalidArgument,
	errs.CodeNoEnt:     codes.NotFound,
	errs.CodeExists:    codes.AlreadyExists,
	errs.CodeNotUnique: codes.AlreadyExists,
	errs.CodeState:     codes.FailedPrecondition,
	errs.CodeNoRes:     codes.ResourceExhausted,
	errs.CodeTempNoRes: codes.ResourceExhausted,
	errs.CodeResolver:  codes.FailedPrecondition,
	errs.CodeFault:     codes.Internal,
	errs.CodeEnviron:   codes.Internal,
}

var classTable = map[string]codes.Code{
	errs.ClassRequest:         codes.InvalidArgument,
	errs.ClassQuery:           codes.InvalidArgument,
	errs.ClassHypervisor:      codes.InvalidArgument,
	errs.ClassNotImplemented:  codes.Unimplemented,
	errs.ClassUnavailable:     codes.Unavailable,
	errs.ClassExec:            codes.Aborted,
	errs.ClassUnauthorized:    codes.Unauthenticated,
	errs.ClassForbidden:       codes.PermissionDenied,
	errs.ClassTooManyRequests: codes.ResourceExhausted,
	errs.ClassTooLarge:        codes.ResourceExhausted,
	errs.ClassConflict:        codes.AlreadyExists,
	errs.ClassBadGateway:      codes.Unavailable,
}

// ToStatus converts any error into a gRPC status that is safe to show a
// client. Domain errors keep their message and carry an ErrorInfo with
// Ganeti's error class and classification; existing statuses pass through;
// context errors become Canceled / DeadlineExceeded; anything else becomes
// an opaque Internal error (its text is logged, never returned).
func ToStatus(log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if de, ok := errs.As(err); ok {
		code, ok := classTable[de.Class]
		if !ok {
			code, ok = codeTable[de.Code]
		}
		if !ok {
			code = codes.Internal
		}
		st := status.New(code, de.Msg)
		reason := "GANETI_ERROR"
		if de.Code != errs.CodeNone {
			reason = upperSnake(string(de.Code))
		}
		info := &errdetails.ErrorInfo{
			Reason:   reason,
			Domain:   errs.Domain,
			Metadata: map[string]string{errs.MetaErrorClass: de.Class, errs.MetaErrorCode: string(de.Code)},
		}
		details := []protoadapt.MessageV1{info}
		if de.RetryAfter > 0 {
			details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(de.RetryAfter)})
		}
		if withDetails, derr := st.WithDetails(details...); derr == nil {
			st = withDetails
		}
		return st.Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	if log != nil {
		log.Error("internal error", "err", err)
	}
	return status.Error(codes.Internal, "internal error")
}

// ErrorOf returns the Ganeti error class and code carried by a status
// produced by ToStatus ("" when there are none).
func ErrorOf(st *status.Status) (class, code string) {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errs.Domain {
			return info.GetMetadata()[errs.MetaErrorClass], info.GetMetadata()[errs.MetaErrorCode]
		}
	}
	return "", ""
}

// RetryDelayOf returns the delay of a status's RetryInfo detail (set by
// ToStatus for errors with a RetryAfter).
func RetryDelayOf(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

func upperSnake(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// ErrorUnaryInterceptor maps every error a handler returns through ToStatus,
// and turns a handler panic into an Internal error.
func ErrorUnaryInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("handler panic", "method", info.FullMethod, "panic", r)
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
		}()
		resp, err = handler(ctx, req)
		return resp, ToStatus(log, err)
	}
}

// ErrorStreamInterceptor is ErrorUnaryInterceptor for streams.
func ErrorStreamInterceptor(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("handler panic", "method", info.FullMethod, "panic", r)
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return ToStatus(log, handler(srv, ss))
	}
}
