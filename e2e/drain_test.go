package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
)

// TestDrain drains the real process on SIGTERM while clients follow slow
// jobs, then restarts it on the same data dir:
//   - during --drain-delay the health checks (the server's and every
//     service's) answer NOT_SERVING while requests are still served;
//   - then every WatchJob stream ends with UNAVAILABLE carrying the
//     version and log serial its client holds, and every legacy
//     /2/jobs/{id}/wait in flight answers (null, or the change) without
//     waiting for its timeout; new connections are refused and a new RPC on
//     an open connection fails with UNAVAILABLE at once, never hangs;
//   - the process exits with status 0 within --shutdown-timeout;
//   - after the restart, the watchers resume with what they hold, the
//     legacy clients wait on, and each sees every update of its job
//     exactly once and in order up to the job's end, and rebuilds exactly
//     the job the server shows.
func TestDrain(t *testing.T) {
	const (
		jobCount       = 3
		watchersPerJob = 2
		drainDelay     = time.Second
		timeout        = 15 * time.Second
	)
	dataDir := t.TempDir()
	flags := []string{"--insecure", "--drain-delay", drainDelay.String(), "--shutdown-timeout", timeout.String()}
	p := startServer(t, dataDir, flags...)
	base := func(p *serverProcess) string { return "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr }
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Jobs of three opcodes of 3 s, each logging one entry as it starts:
	// SIGTERM finds them running, and the waits blocked (nothing changes
	// for 3 s).
	conn := dialGRPC(t, base(p))
	js := rapiv2.NewJobServiceClient(conn)
	slow := &rapiv2.OpCode{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{Duration: proto.Float64(3), Repeat: proto.Int64(1)}}}
	var ids []int64
	for range jobCount {
		sub, err := js.SubmitJob(ctx, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{slow, slow, slow}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sub.GetJobId())
	}

	// The clients: watchers and legacy long polls, each in a goroutine
	// that follows its job across the restart (addr gives the new
	// server's address).
	addr := &restartAddr{addr: p.Addr, changed: make(chan struct{})}
	var wg sync.WaitGroup
	var watchers []*drainWatcher
	var pollers []*drainPoller
	started := make(chan struct{}, jobCount*(watchersPerJob+1))
	for _, id := range ids {
		for range watchersPerJob {
			w := &drainWatcher{t: t, id: id, started: started, interrupted: make(chan time.Time, 1)}
			watchers = append(watchers, w)
			wg.Add(1)
			go func() { defer wg.Done(); w.run(ctx, conn, addr, base) }()
		}
		lp := &drainPoller{t: t, id: id, started: started}
		pollers = append(pollers, lp)
		wg.Add(1)
		go func() { defer wg.Done(); lp.run(ctx, addr) }()
	}
	for range cap(started) {
		<-started
	}
	time.Sleep(500 * time.Millisecond) // the polls are in flight, the jobs log

	sigterm := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// During the drain delay: NOT_SERVING (once the process handled the
	// signal, well within the delay), yet still serving.
	fresh := dialGRPC(t, base(p))
	for _, svc := range []string{"", "ganeti.rapi.v2.JobService", "ganeti.rapi.v2.ClusterService"} {
		for {
			res, err := healthpb.NewHealthClient(fresh).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err == nil && res.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
				break
			}
			if err != nil || time.Since(sigterm) > 500*time.Millisecond {
				t.Errorf("health of %q %v after SIGTERM, in the drain delay: %v %v", svc, time.Since(sigterm), res, err)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if _, err := rapiv2.NewClusterServiceClient(fresh).GetInfo(ctx, &rapiv2.GetInfoRequest{}); err != nil {
		t.Errorf("GetInfo during the drain delay: %v", err)
	}
	if time.Since(sigterm) > drainDelay {
		t.Fatalf("the checks of the drain delay took %v, longer than the delay", time.Since(sigterm))
	}
	// After it: refused, never hanging.
	waitLog(t, p, "draining: closing the listener")
	time.Sleep(100 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after the listener closed")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("new connection during the drain: %v, want connection refused", err)
	}
	callStart := time.Now()
	callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := rapiv2.NewClusterServiceClient(fresh).GetInfo(callCtx, &rapiv2.GetInfoRequest{})
	callCancel()
	if status.Code(err) != codes.Unavailable || time.Since(callStart) > 3*time.Second {
		t.Errorf("new RPC on an open connection during the drain: %v after %v, want UNAVAILABLE at once", err, time.Since(callStart))
	}

	select {
	case <-p.done:
	case <-time.After(timeout + 5*time.Second):
		t.Fatalf("the process did not exit within --shutdown-timeout %v", timeout)
	}
	exited := time.Since(sigterm)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || exited > timeout {
		t.Errorf("exit status %d after %v (--shutdown-timeout %v)\n%s", code, exited, timeout, p.Logs())
	}
	interrupted := 0
	for _, w := range watchers {
		select {
		case at := <-w.interrupted:
			interrupted++
			if d := at.Sub(sigterm); d > drainDelay+time.Second {
				t.Errorf("watcher of job %d: UNAVAILABLE %v after SIGTERM, drain delay %v", w.id, d, drainDelay)
			}
		default: // its job ended before
		}
	}
	// The waits in flight when the listener closed answered at once.
	closed := sigterm.Add(drainDelay)
	var pollAnswered time.Duration
	nulls := 0
	for _, lp := range pollers {
		a, ok := lp.answeredAt(closed)
		if !ok {
			t.Errorf("legacy wait on job %d: no wait in flight when the listener closed got its answer", lp.id)
			continue
		}
		if d := a.end.Sub(closed); d > time.Second {
			t.Errorf("legacy wait on job %d: the wait in flight answered %v after the listener closed", lp.id, d)
		}
		pollAnswered = max(pollAnswered, a.end.Sub(closed))
		if a.null {
			nulls++
		}
	}
	if nulls == 0 {
		t.Error("no wait in flight answered null: the drain did not end them (a job change did)")
	}
	if interrupted == 0 {
		t.Error("no WatchJob stream was interrupted: the jobs ended before SIGTERM")
	}
	t.Logf("SIGTERM -> exit: %v (drain delay %v); waits in flight answered within %v of the listener closing (%d of %d null); %d of %d watchers interrupted",
		exited, drainDelay, pollAnswered, nulls, len(pollers), interrupted, len(watchers))

	// The restart: the clients go on.
	p2 := startServer(t, dataDir, flags...)
	addr.set(p2.Addr)
	wg.Wait()
	final := rapiv2.NewJobServiceClient(dialGRPC(t, base(p2)))
	for _, id := range ids {
		job, err := final.GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
		if err != nil {
			t.Fatal(err)
		}
		if job.GetStatus() != rapiv2.JobStatus_JOB_STATUS_SUCCESS || countEntries(job) != 3 {
			t.Errorf("job %d after the restart: %v with %d log entries", id, job.GetStatus(), countEntries(job))
		}
		for _, w := range watchers {
			if w.id == id && !proto.Equal(w.job, job) {
				t.Errorf("a watcher of job %d rebuilt\n%v\nwant\n%v", id, w.job, job)
			}
		}
		for _, lp := range pollers {
			if lp.id == id && (lp.status != "success" || lp.serial != 3) {
				t.Errorf("legacy wait on job %d ended on %q with %d entries", id, lp.status, lp.serial)
			}
		}
	}
}

func countEntries(j *rapiv2.Job) int {
	n := 0
	for _, l := range j.GetOplog() {
		n += len(l.GetEntries())
	}
	return n
}

// waitLog waits until the process has logged a line containing s.
func waitLog(t *testing.T, p *serverProcess, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Logs(), s); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q:\n%s", s, p.Logs())
		}
	}
}

// restartAddr is the server address the clients use, replaced once by
// the restarted server's.
type restartAddr struct {
	mu      sync.Mutex
	addr    string
	changed chan struct{}
}

func (a *restartAddr) set(addr string) {
	a.mu.Lock()
	a.addr = addr
	a.mu.Unlock()
	close(a.changed)
}

// next waits for the restarted server's address.
func (a *restartAddr) next(ctx context.Context) (string, error) {
	select {
	case <-a.changed:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr, nil
}

// drainWatcher follows a job with WatchJob, across one interruption.
type drainWatcher struct {
	t           *testing.T
	id          int64
	started     chan<- struct{}
	job         *rapiv2.Job // rebuilt, without version
	version     int64
	serial      int64          // highest log serial held
	interrupted chan time.Time // when the first stream ended with UNAVAILABLE
}

func (w *drainWatcher) run(ctx context.Context, conn *grpc.ClientConn, addr *restartAddr, base func(*serverProcess) string) {
	t := w.t
	w.serial = -1
	req := &rapiv2.WatchJobRequest{JobId: w.id}
	js := rapiv2.NewJobServiceClient(conn)
	for attempt := 0; ; attempt++ {
		stream, err := js.WatchJob(ctx, req)
		if err != nil {
			t.Errorf("job %d: WatchJob: %v", w.id, err)
			return
		}
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if attempt > 0 {
					t.Errorf("job %d: the resumed watch ended with %v", w.id, err)
					return
				}
				w.interrupted <- time.Now()
				st := status.Convert(err)
				version, serial, ok := service.ResumeOf(st)
				if st.Code() != codes.Unavailable || !ok || version != w.version || serial != w.serial {
					t.Errorf("job %d: watch ended with %v (resume %d/%d %v); the client holds version %d, serial %d",
						w.id, st.Proto(), version, serial, ok, w.version, w.serial)
					return
				}
				next, err := addr.next(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				js = rapiv2.NewJobServiceClient(dialGRPC(t, base(&serverProcess{Addr: next})))
				req = &rapiv2.WatchJobRequest{JobId: w.id, AfterVersion: proto.Int64(version), AfterLogSerial: proto.Int64(serial)}
				break
			}
			w.apply(m)
			if w.started != nil {
				w.started <- struct{}{}
				w.started = nil
			}
		}
	}
}

// apply merges a message, checking that every log entry comes once and in
// order (the serials of a job are 1, 2, 3, ...).
func (w *drainWatcher) apply(m *rapiv2.Job) {
	if m.Version == nil || (w.job != nil && m.GetVersion() <= w.version) {
		w.t.Errorf("job %d: version %v after %d", w.id, m.Version, w.version)
	}
	w.version = m.GetVersion()
	m = proto.Clone(m).(*rapiv2.Job)
	m.Version = nil
	if m.LogSerialAfter != nil && m.GetLogSerialAfter() != w.serial {
		w.t.Errorf("job %d: delta after serial %d, the client holds %d", w.id, m.GetLogSerialAfter(), w.serial)
	}
	for _, l := range m.GetOplog() {
		for _, e := range l.GetEntries() {
			if e.GetSerial() != max(w.serial, 0)+1 {
				w.t.Errorf("job %d: log entry %d after %d", w.id, e.GetSerial(), w.serial)
			}
			w.serial = e.GetSerial()
		}
	}
	w.job = mergeWatched(w.job, m)
}

// drainPoller follows a job with the legacy long poll, as Ganeti's client
// does, across the restart.
type drainPoller struct {
	t       *testing.T
	id      int64
	started chan<- struct{}
	status  string
	serial  int64 // highest log serial received

	mu       sync.Mutex
	attempts []pollAttempt
}

// pollAttempt is one request of a drainPoller.
type pollAttempt struct {
	start, end time.Time
	err        error
	null       bool // answered null: nothing changed
}

// answeredAt is the wait in flight at t, which answered (false: none was,
// or it failed).
func (lp *drainPoller) answeredAt(t time.Time) (pollAttempt, bool) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	for _, a := range lp.attempts {
		if a.start.Before(t) && !a.end.Before(t) && a.err == nil {
			return a, true
		}
	}
	return pollAttempt{}, false
}

func (lp *drainPoller) record(a pollAttempt) {
	lp.mu.Lock()
	lp.attempts = append(lp.attempts, a)
	lp.mu.Unlock()
}

func (lp *drainPoller) run(ctx context.Context, addr *restartAddr) {
	t := lp.t
	client := &http.Client{Timeout: 30 * time.Second}
	host := addr.addr
	var prev any // previous_job_info
	for {
		body, _ := json.Marshal(map[string]any{"fields": []string{"status"}, "previous_job_info": prev, "previous_log_serial": lp.serial})
		url := fmt.Sprintf("http://%s:%s@%s/2/jobs/%d/wait", e2eUser, e2ePassword, host, lp.id)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		attempt := pollAttempt{start: start, end: time.Now(), err: err}
		if err != nil {
			lp.record(attempt)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("legacy wait on job %d: %v, want an answer or connection refused", lp.id, err)
				return
			}
			if host, err = addr.next(ctx); err != nil {
				t.Error(err)
				return
			}
			continue
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		attempt.null = string(bytes.TrimSpace(raw)) == "null"
		lp.record(attempt)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("legacy wait on job %d: %d %s %v", lp.id, resp.StatusCode, raw, err)
			return
		}
		if lp.started != nil {
			lp.started <- struct{}{}
			lp.started = nil
		}
		if attempt.null {
			continue // nothing changed
		}
		var change struct {
			JobInfo    []any   `json:"job_info"`
			LogEntries [][]any `json:"log_entries"`
		}
		if err := json.Unmarshal(raw, &change); err != nil || len(change.JobInfo) != 1 {
			t.Errorf("legacy wait on job %d: %s", lp.id, raw)
			return
		}
		for _, e := range change.LogEntries {
			serial, _ := e[0].(float64)
			if int64(serial) != lp.serial+1 {
				t.Errorf("legacy wait on job %d: log entry %v after %d", lp.id, serial, lp.serial)
			}
			lp.serial = int64(serial)
		}
		prev = change.JobInfo
		lp.status, _ = change.JobInfo[0].(string)
		if lp.status == "success" || lp.status == "error" || lp.status == "canceled" {
			return
		}
	}
}

// TestDrainTimeout: a running opcode longer than --shutdown-timeout does
// not hold the process: its watcher gets the resumable UNAVAILABLE at
// once, the process exits (status 1, the timeout said on stderr) within
// the timeout, and after the restart the job has ended in error (an
// opcode cut while running), which the resumed watcher receives.
func TestDrainTimeout(t *testing.T) {
	const timeout = 2 * time.Second
	dataDir := t.TempDir()
	flags := []string{"--insecure", "--shutdown-timeout", timeout.String()}
	p := startServer(t, dataDir, flags...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js := rapiv2.NewJobServiceClient(dialGRPC(t, "http://"+e2eUser+":"+e2ePassword+"@"+p.Addr))
	long := &rapiv2.OpCode{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{Duration: proto.Float64(30)}}}
	sub, err := js.SubmitJob(ctx, &rapiv2.SubmitJobRequest{Ops: []*rapiv2.OpCode{long}})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: sub.GetJobId()})
	if err != nil {
		t.Fatal(err)
	}
	var job *rapiv2.Job
	for job.GetStatus() != rapiv2.JobStatus_JOB_STATUS_RUNNING {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		job = mergeWatched(job, m)
	}
	sigterm := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	version, serial, ok := service.ResumeOf(status.Convert(err))
	if status.Code(err) != codes.Unavailable || !ok || time.Since(sigterm) > time.Second {
		t.Fatalf("watch after SIGTERM: %v after %v", err, time.Since(sigterm))
	}
	select {
	case <-p.done:
	case <-time.After(timeout + 5*time.Second):
		t.Fatalf("the process did not exit within --shutdown-timeout %v", timeout)
	}
	exited := time.Since(sigterm)
	if code := p.cmd.ProcessState.ExitCode(); code != 1 || exited > timeout+500*time.Millisecond ||
		!strings.Contains(p.Logs(), "the shutdown timeout passed") {
		t.Errorf("exit status %d after %v (--shutdown-timeout %v)\n%s", code, exited, timeout, p.Logs())
	}
	t.Logf("SIGTERM -> exit: %v with --shutdown-timeout %v and a 30 s opcode running", exited, timeout)

	p2 := startServer(t, dataDir, flags...)
	js2 := rapiv2.NewJobServiceClient(dialGRPC(t, "http://"+e2eUser+":"+e2ePassword+"@"+p2.Addr))
	resumed, err := js2.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: sub.GetJobId(), AfterVersion: proto.Int64(version), AfterLogSerial: proto.Int64(serial)})
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := resumed.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.LogSerialAfter == nil {
			t.Errorf("the resumed watch sent the whole job: %v", m)
		}
		job = mergeWatched(job, m)
	}
	if job.GetStatus() != rapiv2.JobStatus_JOB_STATUS_ERROR {
		t.Errorf("the cut job ended %v", job.GetStatus())
	}
}
