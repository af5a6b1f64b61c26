package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Realm is the HTTP Basic realm of the RAPI.
const Realm = auth.Realm

// httpStatus maps gRPC codes to the legacy HTTP statuses (Ganeti's, where
// Ganeti has the case; see README "Deliberate differences" for the rest).
var httpStatus = map[codes.Code]int{
	codes.OK:                 http.StatusOK,
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.OutOfRange:         http.StatusBadRequest,
	codes.FailedPrecondition: http.StatusConflict,
	codes.AlreadyExists:      http.StatusConflict,
	codes.Aborted:            http.StatusConflict,
	codes.NotFound:           http.StatusNotFound,
	codes.Unauthenticated:    http.StatusUnauthorized,
	codes.PermissionDenied:   http.StatusForbidden,
	codes.Unimplemented:      http.StatusNotImplemented,
	codes.Unavailable:        http.StatusServiceUnavailable,
	codes.ResourceExhausted:  http.StatusTooManyRequests,
	codes.DeadlineExceeded:   http.StatusGatewayTimeout,
	codes.Canceled:           http.StatusServiceUnavailable,
	codes.Internal:           http.StatusInternalServerError,
	codes.Unknown:            http.StatusInternalServerError,
	codes.DataLoss:           http.StatusInternalServerError,
}

// classStatus overrides httpStatus for the Ganeti error classes whose HTTP
// status the gRPC code does not tell apart: ResourceExhausted is 429 for a
// rate or concurrency limit (retry later) but 413 for a size limit.
var classStatus = map[string]int{
	errs.ClassTooLarge:   http.StatusRequestEntityTooLarge,
	errs.ClassBadGateway: http.StatusBadGateway,
}

// explain is Python 3.11's long description of each status, which Ganeti
// sends as "explain".
var explain = map[int]string{
	400: "Bad request syntax or unsupported method",
	401: "No permission -- see authorization schemes",
	403: "Request forbidden -- authorization will not help",
	404: "Nothing matches the given URI",
	405: "Specified method is invalid for this resource",
	409: "Request conflict",
	413: "Entity is too large",
	415: "Entity body in unsupported format",
	429: "The user has sent too many requests in a given amount of time (\"rate limiting\")",
	500: "Server got itself in trouble",
	501: "Server does not support this operation",
	502: "Invalid responses from another server/proxy",
	503: "The server cannot process the request due to a high load",
	504: "The gateway server did not receive a timely response",
}

// safePrefixes are the beginnings of the messages the legacy decoders
// produce (Ganeti's own texts). A status without the server's ErrorInfo
// whose message does not start with one of these came from a library (for
// example grpc-gateway's path conversion) and may carry Go error text; it
// is replaced by the reason phrase.
var safePrefixes = []string{
	"Invalid body parameters:",
	"Body contents:",
	"Unable to parse JSON data",
	"Invalid value for the '",
	"Invalid disk index passed: ",
	"Can't ",
	"Invalid body contents",
	"The '",
	"Required parameter '",
	"Missing ",
	"Method ",
	"Request body too large",
}

// LegacyError is the Ganeti error body.
type LegacyError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Explain string `json:"explain"`
	// RetryAfter, when positive, is sent as the Retry-After header (whole
	// seconds, rounded up).
	RetryAfter time.Duration `json:"-"`
}

// legacyErrorFromStatus projects a gRPC status onto the legacy body.
func legacyErrorFromStatus(st *status.Status) LegacyError {
	code, ok := httpStatus[st.Code()]
	if !ok {
		code = http.StatusInternalServerError
	}
	msg := st.Message()
	class, _ := ErrorOf(st)
	if c, ok := classStatus[class]; ok {
		code = c
	}
	if class == "" && !isSafe(msg) {
		msg = ""
	}
	switch code {
	case http.StatusNotFound, http.StatusUnauthorized:
		msg = "" // Ganeti always says just the reason phrase for these
	case http.StatusInternalServerError:
		if st.Code() == codes.Internal || st.Code() == codes.Unknown {
			msg = ""
		}
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	e := LegacyError{Code: code, Message: msg, Explain: explain[code]}
	if d, ok := RetryDelayOf(st); ok {
		e.RetryAfter = d
	}
	return e
}

func isSafe(msg string) bool {
	for _, p := range safePrefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// WriteLegacyError writes a Ganeti error body with the given status.
func WriteLegacyError(w http.ResponseWriter, e LegacyError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.Code == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // Encode appends the newline Ganeti ends bodies with
	enc.SetEscapeHTML(false)
	_ = enc.Encode(LegacyError{Code: e.Code, Message: htmlEscape(e.Message), Explain: e.Explain})
	body := buf.Bytes()
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Code)
	_, _ = w.Write(body)
}

// errorHandler is the grpc-gateway error handler of the legacy surface.
func errorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	WriteLegacyError(w, legacyErrorFromStatus(status.Convert(err)))
}

// htmlEscape escapes like Python's html.escape(s, quote=True), which Ganeti
// applies to every error message.
func htmlEscape(s string) string {
	if !strings.ContainsAny(s, `&<>"'`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&#x27;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
