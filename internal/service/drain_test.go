package service_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// stepper is an executor (registered as OP_TEST_DELAY) whose Run logs one
// entry per true sent on steps, and returns on a false or once steps is
// closed (with an error when fail is set), or when it is canceled.
type stepper struct {
	steps chan bool
	fail  bool
}

func (s *stepper) Locks(proto.Message, *cluster.State) ([]opexec.Lock, error) { return nil, nil }

func (s *stepper) Exec(*opexec.ExecContext, proto.Message) (any, error) { return "stepped", nil }

func (s *stepper) Run(x *opexec.ExecContext, _ proto.Message) error {
	for {
		select {
		case more, ok := <-s.steps:
			if !ok || !more {
				if s.fail {
					return errors.New("step failed")
				}
				return nil
			}
			x.LogInfo("step")
		case <-x.Context().Done():
			return x.Context().Err()
		}
	}
}

// step logs one more entry of job id and waits until it is visible.
func (s *stepper) step(t *testing.T, eng *jobs.Engine, id int64) {
	t.Helper()
	before := logCount(t, eng, id)
	s.steps <- true
	waitFor(t, func() bool { return logCount(t, eng, id) > before })
}

func logCount(t *testing.T, eng *jobs.Engine, id int64) int {
	j, ok := eng.Get(id)
	if !ok {
		t.Fatalf("job %d not found", id)
	}
	return len(j.LogSince(-1))
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// interruption is the ErrorInfo of the UNAVAILABLE that ended a stream.
func interruption(t *testing.T, err error) *errdetails.ErrorInfo {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		t.Fatalf("stream ended with %v, want UNAVAILABLE", err)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errs.Domain {
			return info
		}
	}
	t.Fatalf("UNAVAILABLE without ErrorInfo: %v", st.Proto())
	return nil
}

// TestDrainEndsLongPolls: Drain makes every long poll answer at once. The
// WatchJob streams end with UNAVAILABLE (reason SERVER_DRAINING) carrying
// the version and log serial each client holds; a job wait in flight, and
// one that starts later, answers "not changed" (empty change: null on the
// legacy surface); the health Watch stream ends with UNAVAILABLE; a new
// WatchJob is refused with UNAVAILABLE. The clients then resume on
// another server of the same engine (a restart, or another replica): each
// gets one delta with only the log entry it lacks (opresult and ops
// empty: no opcode changed since), then follows the job to its end, and
// rebuilds exactly the job GetJob returns.
func TestDrainEndsLongPolls(t *testing.T) {
	ex := &stepper{steps: make(chan bool)}
	srv := newJobServer(t, ex, 0)
	eng := srv.eng
	js := rapiv2.NewJobServiceClient(srv.conn)
	id := submitLogJob(t, eng, 1)
	stepsOpen := true
	defer func() {
		if stepsOpen {
			close(ex.steps)
		}
	}()
	ex.step(t, eng, id)
	ex.step(t, eng, id)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const watchers = 3
	streams := make([]rapiv2.JobService_WatchJobClient, watchers)
	clients := make([]*watched, watchers)
	for i := range streams {
		var err error
		if streams[i], err = js.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: id}); err != nil {
			t.Fatal(err)
		}
		m, err := streams[i].Recv()
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = &watched{}
		clients[i].apply(t, m)
	}
	hw, err := healthpb.NewHealthClient(srv.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hw.Recv(); err != nil {
		t.Fatal(err)
	}
	running, _ := structpb.NewList([]any{"running"})
	wait := func() (*rapiv2.WaitJobChangeResponse, error) {
		return js.WaitJobChange(ctx, &rapiv2.WaitJobChangeRequest{JobId: id, Fields: []string{"status"},
			PreviousJobInfo: running, PreviousLogSerial: proto.Int64(2), TimeoutSeconds: 30})
	}
	type answer struct {
		resp *rapiv2.WaitJobChangeResponse
		err  error
	}
	waited := make(chan answer, 1)
	go func() { r, err := wait(); waited <- answer{r, err} }()
	time.Sleep(50 * time.Millisecond) // the wait is blocked on the job

	start := time.Now()
	srv.svcs.Drain()
	for i, s := range streams {
		_, err := s.Recv()
		info := interruption(t, err)
		version, serial, ok := service.ResumeOf(status.Convert(err))
		if info.GetReason() != service.ReasonDraining || !ok || version != clients[i].version || serial != 2 ||
			info.GetMetadata()[service.MetaJobID] != "1" {
			t.Errorf("watcher %d ended with %v; it holds version %d, serial 2", i, info, clients[i].version)
		}
	}
	if a := <-waited; a.err != nil || a.resp.GetChange() != nil {
		t.Errorf("job wait in flight: %v %v, want no change", a.resp, a.err)
	}
	if _, err := hw.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("health Watch: %v, want UNAVAILABLE", err)
	}
	if r, err := wait(); err != nil || r.GetChange() != nil {
		t.Errorf("job wait after the drain: %v %v, want no change", r, err)
	}
	late, err := js.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	_, err = late.Recv()
	if interruption(t, err).GetReason() != service.ReasonDraining {
		t.Errorf("WatchJob after the drain: %v", err)
	}
	if _, _, ok := service.ResumeOf(status.Convert(err)); ok {
		t.Error("a watch that sent nothing gave a version to resume from")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the long polls took %v to end", d)
	}

	// The job goes on (a log entry only), the clients resume elsewhere.
	ex.step(t, eng, id)
	other := rapiv2.NewJobServiceClient(serveJobs(t, srv.model, eng, 0).conn)
	done := make(chan struct{})
	for i, w := range clients {
		req := &rapiv2.WatchJobRequest{JobId: id, AfterVersion: proto.Int64(w.version), AfterLogSerial: proto.Int64(2)}
		s, err := other.WatchJob(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.GetLogSerialAfter() != 2 || len(m.GetOplog()) != 1 || len(m.GetOplog()[0].GetEntries()) != 1 ||
			m.GetOplog()[0].GetEntries()[0].GetSerial() != 3 || len(m.GetOpresult()) != 0 || len(m.GetOps()) != 0 {
			t.Errorf("watcher %d: first message after resuming: %v", i, m)
		}
		w.apply(t, m)
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				m, err := s.Recv()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				w.apply(t, m)
			}
		}()
	}
	ex.step(t, eng, id)
	close(ex.steps)
	stepsOpen = false
	for range clients {
		<-done
	}
	final, err := other.GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	if final.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS || len(final.GetOplog()[0].GetEntries()) != 4 {
		t.Fatalf("final job: %v", final)
	}
	for i, w := range clients {
		if !proto.Equal(w.job, final) {
			t.Errorf("watcher %d rebuilt\n%v\nwant\n%v", i, w.job, final)
		}
	}
}

// TestWatchJobMaxAge: with a maximum watch age, a stream ends with
// UNAVAILABLE (reason MAX_WATCH_AGE) within that age; a client that
// resumes each time with what the status says follows the job to its end,
// every log entry once and in order, and rebuilds exactly the job GetJob
// returns.
func TestWatchJobMaxAge(t *testing.T) {
	const maxAge = 80 * time.Millisecond
	ex := &stepper{steps: make(chan bool)}
	srv := newJobServer(t, ex, maxAge)
	js := rapiv2.NewJobServiceClient(srv.conn)
	id := submitLogJob(t, srv.eng, 1)
	go func() {
		for range 40 {
			ex.steps <- true
			time.Sleep(10 * time.Millisecond)
		}
		close(ex.steps)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := &watched{}
	req := &rapiv2.WatchJobRequest{JobId: id}
	streams := 0
	for {
		s, err := js.WatchJob(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		streams++
		opened := time.Now()
		for err == nil {
			var m *rapiv2.Job
			if m, err = s.Recv(); err == nil {
				w.apply(t, m)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if info := interruption(t, err); info.GetReason() != service.ReasonMaxWatchAge {
			t.Fatalf("stream %d ended with %v", streams, info)
		}
		if age := time.Since(opened); age > maxAge+time.Second {
			t.Errorf("stream %d lasted %v, max age %v", streams, age, maxAge)
		}
		version, serial, ok := service.ResumeOf(status.Convert(err))
		if !ok || version != w.version {
			t.Fatalf("stream %d: resume at %d (%v), the client holds version %d", streams, version, ok, w.version)
		}
		req = &rapiv2.WatchJobRequest{JobId: id, AfterVersion: proto.Int64(version), AfterLogSerial: proto.Int64(serial)}
	}
	final, err := js.GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(final.GetOplog()[0].GetEntries()) != 40 || !proto.Equal(w.job, final) {
		t.Errorf("rebuilt\n%v\nwant\n%v", w.job, final)
	}
	if streams < 3 {
		t.Errorf("%d streams: the max age did not end them", streams)
	}
}

// TestWatchJobResume: what a resumed WatchJob sends first, from every
// state a client may hold of an ended job (each message of a full watch),
// and for a client ahead of the server or one whose state is current.
func TestWatchJobResume(t *testing.T) {
	ex := &stepper{steps: make(chan bool)}
	srv := newJobServer(t, ex, 0)
	js := rapiv2.NewJobServiceClient(srv.conn)
	id := submitLogJob(t, srv.eng, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A full watch, keeping the job the client held after each message.
	stream, err := js.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	full := &watched{}
	var held []*watched
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		full.apply(t, m)
		held = append(held, &watched{job: proto.Clone(full.job).(*rapiv2.Job), version: full.version, msgs: full.msgs})
		if len(held) == 1 {
			go func() { // per opcode, three entries
				for _, more := range []bool{true, true, true, false, true, true, true, false} {
					ex.steps <- more
				}
			}()
		}
	}
	final, err := js.GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(held) < 3 || !proto.Equal(full.job, final) {
		t.Fatalf("full watch: %d messages, rebuilt %v", len(held), full.job)
	}
	recvAll := func(req *rapiv2.WatchJobRequest) ([]*rapiv2.Job, error) {
		s, err := js.WatchJob(ctx, req)
		if err != nil {
			return nil, err
		}
		var out []*rapiv2.Job
		for {
			m, err := s.Recv()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, m)
		}
	}
	for k, h := range held[:len(held)-1] {
		serial := int64(-1)
		for _, l := range h.job.GetOplog() {
			for _, e := range l.GetEntries() {
				serial = e.GetSerial()
			}
		}
		msgs, err := recvAll(&rapiv2.WatchJobRequest{JobId: id, AfterVersion: proto.Int64(h.version), AfterLogSerial: proto.Int64(serial)})
		if err != nil || len(msgs) != 1 {
			t.Fatalf("resumed after message %d: %d messages, %v", k+1, len(msgs), err)
		}
		if msgs[0].LogSerialAfter == nil || msgs[0].GetLogSerialAfter() != serial {
			t.Errorf("resumed after message %d: log_serial_after %v, want %d", k+1, msgs[0].LogSerialAfter, serial)
		}
		opsChanged := !proto.Equal(&rapiv2.Job{Opstatus: h.job.Opstatus}, &rapiv2.Job{Opstatus: final.Opstatus})
		if got := len(msgs[0].GetOpresult()) > 0; got != opsChanged {
			t.Errorf("resumed after message %d: opresult sent %v, opcode statuses changed since %v", k+1, got, opsChanged)
		}
		h.apply(t, msgs[0])
		if !proto.Equal(h.job, final) {
			t.Errorf("resumed after message %d: rebuilt\n%v\nwant\n%v", k+1, h.job, final)
		}
	}
	for _, c := range []struct {
		name          string
		version, log  *int64
		code          codes.Code
		msgs          int
		wholeJobFirst bool
	}{
		{name: "current", version: proto.Int64(full.version), log: proto.Int64(6), code: codes.OK, msgs: 0},
		{name: "ahead of the server", version: proto.Int64(full.version + 10), log: proto.Int64(6), code: codes.OK, msgs: 1, wholeJobFirst: true},
		{name: "log beyond the job's", version: proto.Int64(1), log: proto.Int64(60), code: codes.OK, msgs: 1, wholeJobFirst: true},
		{name: "version alone", version: proto.Int64(1), code: codes.InvalidArgument},
		{name: "log serial alone", log: proto.Int64(1), code: codes.InvalidArgument},
	} {
		msgs, err := recvAll(&rapiv2.WatchJobRequest{JobId: id, AfterVersion: c.version, AfterLogSerial: c.log})
		if status.Code(err) != c.code || len(msgs) != c.msgs {
			t.Errorf("%s: %d messages, %v; want %d, %v", c.name, len(msgs), err, c.msgs, c.code)
			continue
		}
		if c.wholeJobFirst {
			m := proto.Clone(msgs[0]).(*rapiv2.Job)
			m.Version = nil
			if m.LogSerialAfter != nil || !proto.Equal(m, final) {
				t.Errorf("%s: first message %v, want the whole job", c.name, msgs[0])
			}
		}
	}
}

// TestWatchJobResumeFailed: an opcode that fails while running ends the
// job with a commit of its own (not an opcode's execution): a watch resumed
// from the running state gets the new statuses and results.
func TestWatchJobResumeFailed(t *testing.T) {
	ex := &stepper{steps: make(chan bool), fail: true}
	w := watchRunningJob(t, ex, 2)
	srv, js, ctx, id, m := w.srv, w.js, w.ctx, w.id, w.first
	held := &watched{}
	held.apply(t, m)
	close(ex.steps)
	waitFor(t, func() bool { j, _ := srv.eng.Get(id); return j.Finalized() })
	resumed, err := js.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: id, AfterVersion: proto.Int64(held.version), AfterLogSerial: proto.Int64(1)})
	if err != nil {
		t.Fatal(err)
	}
	if m, err = resumed.Recv(); err != nil {
		t.Fatal(err)
	}
	held.apply(t, m)
	if _, err := resumed.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after the final state: %v", err)
	}
	final, err := js.GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	if final.GetStatus() != rapiv2.JobStatus_JOB_STATUS_ERROR || !proto.Equal(held.job, final) {
		t.Errorf("rebuilt\n%v\nwant\n%v", held.job, final)
	}
}

// TestWatchJobQueueStopped: when the job engine stops before the job has
// ended (a store failure, or a shutdown without drain), the stream ends
// with a resumable UNAVAILABLE (reason JOB_QUEUE_STOPPED), not with OK.
func TestWatchJobQueueStopped(t *testing.T) {
	ex := &stepper{steps: make(chan bool)}
	w := watchRunningJob(t, ex, 1)
	srv, ctx, m := w.srv, w.ctx, w.first
	stopCtx, stopCancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stopCancel()
	_ = srv.eng.Stop(stopCtx) // the running opcode is canceled
	_, err := w.stream.Recv()
	version, serial, ok := service.ResumeOf(status.Convert(err))
	if interruption(t, err).GetReason() != service.ReasonQueueStopped || !ok || version != m.GetVersion() || serial != 1 {
		t.Errorf("stream ended with %v; the client holds version %d, serial 1", err, m.GetVersion())
	}
}

// runningWatch is a WatchJob stream on a running job (watchRunningJob).
type runningWatch struct {
	srv    *jobServer
	js     rapiv2.JobServiceClient
	ctx    context.Context // the test's, 20 s
	id     int64
	stream grpc.ServerStreamingClient[rapiv2.Job]
	first  *rapiv2.Job // the stream's first message
}

// watchRunningJob serves ex's engine, submits a job of logs log entries,
// lets its first step run and watches it. The stream stays open until the
// test ends.
func watchRunningJob(t *testing.T, ex *stepper, logs int) *runningWatch {
	t.Helper()
	w := &runningWatch{srv: newJobServer(t, ex, 0)}
	w.js = rapiv2.NewJobServiceClient(w.srv.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	w.ctx = ctx
	w.id = submitLogJob(t, w.srv.eng, logs)
	ex.step(t, w.srv.eng, w.id)
	var err error
	if w.stream, err = w.js.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: w.id}); err != nil {
		t.Fatal(err)
	}
	if w.first, err = w.stream.Recv(); err != nil {
		t.Fatal(err)
	}
	return w
}
