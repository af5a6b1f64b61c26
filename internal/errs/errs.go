// Package errs is the one error type of the domain: a Ganeti error class
// (OpPrereqError, OpExecError, ...) with Ganeti's classification code
// (wrong_input, unknown_entity, ...). The service layer maps it to a gRPC
// status in one table (server/errmap.go); the gateway projects that status
// onto the legacy {"code","message","explain"} body.
package errs

import (
	"errors"
	"fmt"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
)

// Code is Ganeti's error classification (constants.json error_codes).
type Code string

// CodeNone is no classification.
const CodeNone Code = ""

// Ganeti's ECODE_* values, spelled as the proto's ErrorCode enum spells
// them on the legacy surface.
var (
	CodeResolver  = codeOf(rapiv2.ErrorCode_ERROR_CODE_RESOLVER_ERROR)
	CodeNoRes     = codeOf(rapiv2.ErrorCode_ERROR_CODE_INSUFFICIENT_RESOURCES)
	CodeTempNoRes = codeOf(rapiv2.ErrorCode_ERROR_CODE_TEMP_INSUFFICIENT_RESOURCES)
	CodeInval     = codeOf(rapiv2.ErrorCode_ERROR_CODE_WRONG_INPUT)
	CodeState     = codeOf(rapiv2.ErrorCode_ERROR_CODE_WRONG_STATE)
	CodeNoEnt     = codeOf(rapiv2.ErrorCode_ERROR_CODE_UNKNOWN_ENTITY)
	CodeExists    = codeOf(rapiv2.ErrorCode_ERROR_CODE_ALREADY_EXISTS)
	CodeNotUnique = codeOf(rapiv2.ErrorCode_ERROR_CODE_RESOURCE_NOT_UNIQUE)
	CodeFault     = codeOf(rapiv2.ErrorCode_ERROR_CODE_INTERNAL_ERROR)
	CodeEnviron   = codeOf(rapiv2.ErrorCode_ERROR_CODE_ENVIRONMENT_ERROR)
)

// Codes lists every ECODE_* value, in the proto's order.
var Codes = []Code{CodeResolver, CodeNoRes, CodeTempNoRes, CodeInval, CodeState, CodeNoEnt,
	CodeExists, CodeNotUnique, CodeFault, CodeEnviron}

func codeOf(c rapiv2.ErrorCode) Code { return Code(legacyenum.StringOf(c)) }

// Ganeti error class names (constants.json error_classes) used by the domain.
const (
	ClassPrereq  = "OpPrereqError"
	ClassExec    = "OpExecError"
	ClassProgram = "ProgrammerError"
	ClassQuery   = "QueryFilterParseError"
	// ClassHypervisor is Ganeti's HypervisorError: a hypervisor refused
	// its parameters (CheckParameterSyntax). It has no classification.
	ClassHypervisor = "HypervisorError"
	// ClassRequest marks a malformed request (bad query argument, bad body
	// shape) that Ganeti's HTTP layer rejects before any opcode exists.
	ClassRequest = "HttpBadRequest"
	// ClassNotImplemented marks a feature that this server does not offer yet.
	ClassNotImplemented = "HttpNotImplemented"
	// ClassUnavailable marks a resource that exists but cannot serve now
	// (Ganeti's 503, e.g. the console of a stopped instance).
	ClassUnavailable = "HttpServiceUnavailable"
	// ClassUnauthorized marks missing or wrong credentials (Ganeti's 401).
	ClassUnauthorized = "HttpUnauthorized"
	// ClassForbidden marks a user without the option a method needs
	// (Ganeti's 403).
	ClassForbidden = "HttpForbidden"
	// ClassTooManyRequests marks a request over one of this server's limits
	// (per-user write rate, concurrent long polls): 429, no Ganeti
	// equivalent.
	ClassTooManyRequests = "HttpTooManyRequests"
	// ClassTooLarge marks a request, or the answer it asks for, larger than
	// one of this server's size limits (body, fields, filter, query
	// result): 413 on the legacy surface, ResourceExhausted over gRPC.
	ClassTooLarge = "HttpRequestEntityTooLarge"
	// ClassConflict marks a request that conflicts with an earlier one
	// (Ganeti's HttpConflict, 409): an idempotency key used again for
	// another request. AlreadyExists over gRPC.
	ClassConflict = "HttpConflict"
	// ClassBadGateway marks an upstream cluster that did not answer
	// usably (unreachable, timed out, circuit breaker open, refused the
	// gateway's service user): 502 on the legacy surface, Unavailable
	// over gRPC.
	ClassBadGateway = "HttpBadGateway"
)

// Error is a domain error. Msg is safe to show to a client.
type Error struct {
	Class string
	Code  Code
	Msg   string
	// RetryAfter, when set, is how long the client should wait before
	// trying again (a RetryInfo detail; the legacy Retry-After header).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Code == CodeNone {
		return e.Class + ": " + e.Msg
	}
	return e.Class + ": " + e.Msg + " (" + string(e.Code) + ")"
}

// Prereq is a failed prerequisite check: nothing was changed.
func Prereq(code Code, format string, args ...any) *Error {
	return &Error{Class: ClassPrereq, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Exec is a failure while executing an opcode.
func Exec(format string, args ...any) *Error {
	return &Error{Class: ClassExec, Msg: fmt.Sprintf(format, args...)}
}

// Hypervisor is a hypervisor's refusal of its parameters (Ganeti's
// HypervisorError, which carries no classification).
func Hypervisor(format string, args ...any) *Error {
	return &Error{Class: ClassHypervisor, Msg: fmt.Sprintf(format, args...)}
}

// NotFound reports an unknown object, e.g. NotFound("Instance", "x").
func NotFound(kind, name string) *Error {
	return Prereq(CodeNoEnt, "%s '%s' not known", kind, name)
}

// BadRequest reports a malformed request with Ganeti's HTTP-layer message.
func BadRequest(format string, args ...any) *Error {
	return &Error{Class: ClassRequest, Code: CodeInval, Msg: fmt.Sprintf(format, args...)}
}

// Unavailable reports Ganeti's 503 conditions.
func Unavailable(format string, args ...any) *Error {
	return &Error{Class: ClassUnavailable, Msg: fmt.Sprintf(format, args...)}
}

// NotImplemented reports a feature this server does not offer.
func NotImplemented(format string, args ...any) *Error {
	return &Error{Class: ClassNotImplemented, Msg: fmt.Sprintf(format, args...)}
}

// Unauthorized reports missing or wrong credentials, with Ganeti's message.
func Unauthorized() *Error {
	return &Error{Class: ClassUnauthorized, Msg: "Unauthorized"}
}

// Forbidden reports an authenticated user without the option a method
// needs, with Ganeti's message.
func Forbidden() *Error {
	return &Error{Class: ClassForbidden, Msg: "Forbidden"}
}

// TooManyRequests reports a request over a limit; the client may retry
// after retryAfter.
func TooManyRequests(retryAfter time.Duration, format string, args ...any) *Error {
	return &Error{Class: ClassTooManyRequests, Msg: fmt.Sprintf(format, args...), RetryAfter: retryAfter}
}

// TooLarge reports a request, or the answer it would get, over a size
// limit; retrying the same request cannot help.
func TooLarge(format string, args ...any) *Error {
	return &Error{Class: ClassTooLarge, Msg: fmt.Sprintf(format, args...)}
}

// Conflict reports a request that conflicts with an earlier one; sending
// it again cannot help.
func Conflict(format string, args ...any) *Error {
	return &Error{Class: ClassConflict, Msg: fmt.Sprintf(format, args...)}
}

// BadGateway reports an upstream cluster that did not answer usably.
func BadGateway(format string, args ...any) *Error {
	return &Error{Class: ClassBadGateway, Msg: fmt.Sprintf(format, args...)}
}

// QueryFilter reports a malformed query filter, or one that cannot be
// evaluated (unknown field, operands of the wrong type).
func QueryFilter(format string, args ...any) *Error {
	return &Error{Class: ClassQuery, Code: CodeInval, Msg: fmt.Sprintf(format, args...)}
}

// As returns the domain error inside err, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
