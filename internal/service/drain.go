package service

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The causes that end a long poll or a stream before its time.
var (
	errDraining     = errors.New("server: draining")
	errMaxWatchAge  = errors.New("server: maximum watch age reached")
	errQueueStopped = errors.New("server: the job queue stopped")
)

// Reasons of the ErrorInfo of an UNAVAILABLE that ends a stream early.
const (
	ReasonDraining     = "SERVER_DRAINING"
	ReasonMaxWatchAge  = "MAX_WATCH_AGE"
	ReasonQueueStopped = "JOB_QUEUE_STOPPED"
)

// Metadata keys of the ErrorInfo of an interrupted WatchJob: what the
// client holds, to send back as WatchJobRequest.after_version and
// after_log_serial.
const (
	MetaJobID     = "jobId"
	MetaVersion   = "version"
	MetaLogSerial = "logSerial"
)

// Drain ends the long polls, now and from now on: a job wait answers "not
// changed" at once (what Ganeti's wait answers when nothing changed before
// its timeout: null on the legacy surface); a WatchJob stream ends with
// UNAVAILABLE carrying what the client holds (see WatchJob); every other
// stream that passes through StreamInterceptor (health Watch, reflection)
// ends with UNAVAILABLE. Requests that are not long polls are not
// affected. Drain may be called more than once.
func (s *Services) Drain() { s.drain() }

// StreamInterceptor ends the streams in progress with UNAVAILABLE when
// Drain is called (and those that start afterwards at once). It goes
// after the error interceptor, which lets the status pass.
func (s *Services) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, cancel := s.untilDrain(ss.Context())
		defer cancel()
		err := handler(srv, ctxStream{ss, ctx})
		if err != nil && ss.Context().Err() == nil && errors.Is(context.Cause(ctx), errDraining) &&
			status.Code(err) != codes.Unavailable {
			return drainedStatus(errDraining, nil).Err()
		}
		return err
	}
}

// untilDrain is ctx, canceled with the cause errDraining by Drain.
func (s *Services) untilDrain(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if s.draining.Err() != nil {
		cancel(errDraining) // at once: AfterFunc would call it in a goroutine of its own
	}
	stop := context.AfterFunc(s.draining, func() { cancel(errDraining) })
	return ctx, func() { stop(); cancel(nil) }
}

// watchContext is a WatchJob's context: canceled by Drain (errDraining)
// and after MaxWatchAge, less up to a tenth at random (errMaxWatchAge).
func (s *Services) watchContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, stopDrain := s.untilDrain(ctx)
	if s.cfg.MaxWatchAge <= 0 {
		return ctx, stopDrain
	}
	ctx, cancel := context.WithCancelCause(ctx)
	age := s.cfg.MaxWatchAge - time.Duration(rand.Int64N(int64(s.cfg.MaxWatchAge)/10+1))
	timer := time.AfterFunc(age, func() { cancel(errMaxWatchAge) })
	return ctx, func() { timer.Stop(); cancel(nil); stopDrain() }
}

// drainedStatus is the UNAVAILABLE that ends a long poll for cause
// (errDraining, errMaxWatchAge or errQueueStopped), with meta (what a
// WatchJob client holds) in its ErrorInfo.
func drainedStatus(cause error, meta map[string]string) *status.Status {
	msg, reason := "The server is shutting down", ReasonDraining
	switch {
	case errors.Is(cause, errMaxWatchAge):
		msg, reason = "The watch reached its maximum age", ReasonMaxWatchAge
	case errors.Is(cause, errQueueStopped):
		msg, reason = "The job queue stopped", ReasonQueueStopped
	}
	st := status.New(codes.Unavailable, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errs.Domain, Metadata: meta}); err == nil {
		st = d
	}
	return st
}

// watchEnded is the UNAVAILABLE of a WatchJob that ends early: what the
// client holds, when it has the job (sent false: nothing to resume from).
func watchEnded(cause error, id int64, w *watchState) error {
	meta := map[string]string{MetaJobID: strconv.FormatInt(id, 10)}
	if w.sent {
		meta[MetaVersion] = strconv.FormatInt(w.version, 10)
		meta[MetaLogSerial] = strconv.FormatInt(w.serial, 10)
	}
	return drainedStatus(cause, meta).Err()
}

// ResumeOf returns the after_version and after_log_serial with which to
// resume a WatchJob that ended with st (false when st does not say).
func ResumeOf(st *status.Status) (version, logSerial int64, ok bool) {
	for _, d := range st.Details() {
		info, isInfo := d.(*errdetails.ErrorInfo)
		if !isInfo || info.GetDomain() != errs.Domain {
			continue
		}
		v, err1 := strconv.ParseInt(info.GetMetadata()[MetaVersion], 10, 64)
		l, err2 := strconv.ParseInt(info.GetMetadata()[MetaLogSerial], 10, 64)
		if err1 == nil && err2 == nil {
			return v, l, true
		}
	}
	return 0, 0, false
}

// ctxStream is a server stream with another context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }
