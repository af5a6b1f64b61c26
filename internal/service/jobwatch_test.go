package service_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// logger is an executor (registered as OP_TEST_DELAY) that logs n entries
// once its gate opens, yielding every few entries so that watchers see
// the log grow.
type logger struct {
	n    int
	gate chan struct{}
	// mid, when set, is waited for (up to 10 s) halfway through the first
	// opcode's entries.
	mid chan struct{}
}

func (l *logger) Locks(proto.Message, *cluster.State) ([]opexec.Lock, error) { return nil, nil }

func (l *logger) Exec(*opexec.ExecContext, proto.Message) (any, error) { return "logged", nil }

func (l *logger) Run(x *opexec.ExecContext, _ proto.Message) error {
	<-l.gate
	for i := 0; i < l.n; i++ {
		if l.mid != nil && x.OpIndex == 0 && i == l.n/2 {
			select {
			case <-l.mid:
			case <-time.After(10 * time.Second):
			}
		}
		x.LogInfo("entry %d of opcode %d", i, x.OpIndex)
		if i%8 == 7 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	return nil
}

// newLogJobConn serves the job service with the logger executor.
func newLogJobConn(tb testing.TB, l *logger) (rapiv2.JobServiceClient, *jobs.Engine) {
	tb.Helper()
	s := newJobServer(tb, l, 0)
	return rapiv2.NewJobServiceClient(s.conn), s.eng
}

// jobServer is a job engine served on a bufconn.
type jobServer struct {
	model *cluster.Model
	eng   *jobs.Engine
	svcs  *service.Services
	conn  *grpc.ClientConn
}

// newJobServer serves the job service, with ex as OP_TEST_DELAY, and the
// health service, through the error and drain stream interceptors.
func newJobServer(tb testing.TB, ex opexec.Executor, maxWatchAge time.Duration) *jobServer {
	tb.Helper()
	model, eng := goldenEngine(tb, map[string]opexec.Executor{"OP_TEST_DELAY": ex})
	eng.Start()
	return serveJobs(tb, model, eng, maxWatchAge)
}

// serveJobs serves the job service of eng (and health) on a new server,
// as a second server of the same store would.
func serveJobs(tb testing.TB, model *cluster.Model, eng *jobs.Engine, maxWatchAge time.Duration) *jobServer {
	tb.Helper()
	svcs, err := service.New(service.Config{Backend: sim.New(model, eng), Logger: quiet, MaxWatchAge: maxWatchAge})
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainStreamInterceptor(gateway.ErrorStreamInterceptor(quiet), svcs.StreamInterceptor()),
		grpc.ChainUnaryInterceptor(gateway.ErrorUnaryInterceptor(quiet)))
	if err := gateway.RegisterServices(srv, svcs.Implementation); err != nil {
		tb.Fatal(err)
	}
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis := bufconn.Listen(4 << 20)
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &jobServer{model: model, eng: eng, svcs: svcs, conn: conn}
}

func submitLogJob(tb testing.TB, eng *jobs.Engine, ops int) int64 {
	tb.Helper()
	list := make([]*rapiv2.OpCode, ops)
	for i := range list {
		list[i] = &rapiv2.OpCode{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{Duration: proto.Float64(0)}}}
	}
	id, err := eng.Submit(context.Background(), list, jobs.SubmitOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// watched is a job as a WatchJob client rebuilds it from the messages.
type watched struct {
	// onMsg, when set, is called after each message with the count so far.
	onMsg       func(n int)
	msgs, bytes int
	job         *rapiv2.Job // without version
	version     int64       // of the last message
	countOnly   bool        // only count the messages and their bytes
}

// apply merges one message the way the proto documents it.
func (w *watched) apply(t testing.TB, m *rapiv2.Job) {
	w.msgs++
	w.bytes += proto.Size(m)
	if w.countOnly {
		return
	}
	if m.Version == nil || (w.job != nil && m.GetVersion() <= w.version) {
		t.Errorf("message %d: version %v after %d", w.msgs, m.Version, w.version)
	}
	w.version = m.GetVersion()
	m = proto.Clone(m).(*rapiv2.Job)
	m.Version = nil
	if w.job == nil {
		if m.LogSerialAfter != nil {
			t.Errorf("first message is a delta (log_serial_after %d)", m.GetLogSerialAfter())
		}
		w.job = proto.Clone(m).(*rapiv2.Job)
		return
	}
	if m.LogSerialAfter == nil {
		t.Errorf("message %d is not a delta", w.msgs)
		w.job = proto.Clone(m).(*rapiv2.Job)
		return
	}
	if len(m.GetSummary()) != 0 {
		t.Errorf("delta %d repeats the summary", w.msgs)
	}
	if len(m.GetOps()) > 0 {
		if len(m.GetOps()) == len(w.job.GetOps()) && proto.Equal(&rapiv2.SubmitJobRequest{Ops: m.Ops}, &rapiv2.SubmitJobRequest{Ops: w.job.Ops}) {
			t.Errorf("delta %d repeats unchanged opcodes", w.msgs)
		}
		w.job.Ops = m.Ops
	}
	last := int64(-1)
	for _, l := range w.job.GetOplog() {
		for _, e := range l.GetEntries() {
			last = max(last, e.GetSerial())
		}
	}
	if m.GetLogSerialAfter() != last {
		t.Errorf("delta %d: log_serial_after %d, highest serial received %d", w.msgs, m.GetLogSerialAfter(), last)
	}
	for i, l := range m.GetOplog() {
		for _, e := range l.GetEntries() {
			if e.GetSerial() <= m.GetLogSerialAfter() {
				t.Errorf("delta %d resends entry %d", w.msgs, e.GetSerial())
			}
		}
		w.job.Oplog[i].Entries = append(w.job.Oplog[i].Entries, l.GetEntries()...)
	}
	w.job.Status, w.job.Opstatus = m.Status, m.Opstatus
	w.job.ReceivedTs, w.job.StartTs, w.job.EndTs = m.ReceivedTs, m.StartTs, m.EndTs
	if len(m.GetOpresult()) > 0 {
		w.job.Opresult = m.Opresult
	}
}

// watch follows a job to its end; pause, when set, is waited for after
// the first message (a slow reader).
func watch(t testing.TB, js rapiv2.JobServiceClient, id int64, first chan<- struct{}, pause <-chan struct{}) *watched {
	return watchInto(t, js, id, first, pause, &watched{})
}

func watchInto(t testing.TB, js rapiv2.JobServiceClient, id int64, first chan<- struct{}, pause <-chan struct{}, w *watched) *watched {
	stream, err := js.WatchJob(context.Background(), &rapiv2.WatchJobRequest{JobId: id})
	if err != nil {
		t.Error(err)
		return nil
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return w
		}
		if err != nil {
			t.Error(err)
			return w
		}
		w.apply(t, m)
		if w.onMsg != nil {
			w.onMsg(w.msgs)
		}
		if w.msgs == 1 {
			first <- struct{}{}
			if pause != nil {
				<-pause
			}
		}
	}
}

// TestWatchJobDeltas: WatchJob sends the whole job once, then only what
// changed: every later message says after which log serial its entries
// come (log_serial_after), repeats no entry, no unchanged opcode and no
// summary;
// merged as the proto documents, the messages rebuild exactly the job
// GetJob returns at the end, for a reader that keeps up and for a slow one
// (whose changes are coalesced).
func TestWatchJobDeltas(t *testing.T) {
	// The job waits halfway through its first opcode until the fast
	// reader has had a message after the first: it sees the job change.
	l := &logger{n: 40, gate: make(chan struct{}), mid: make(chan struct{})}
	js, eng := newLogJobConn(t, l)
	id := submitLogJob(t, eng, 2)
	first := make(chan struct{}, 2)
	pause := make(chan struct{})
	var fast, slow *watched
	var wg sync.WaitGroup
	wg.Add(2)
	var midOnce sync.Once
	fastW := &watched{onMsg: func(n int) {
		if n == 2 {
			midOnce.Do(func() { close(l.mid) })
		}
	}}
	go func() { defer wg.Done(); fast = watchInto(t, js, id, first, nil, fastW) }()
	go func() { defer wg.Done(); slow = watch(t, js, id, first, pause) }()
	<-first
	<-first
	close(l.gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, _ := eng.Get(id)
		if j.Finalized() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(pause)
	wg.Wait()
	final, err := js.GetJob(context.Background(), &rapiv2.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(final.GetOplog()[0].GetEntries()) + len(final.GetOplog()[1].GetEntries()); n != 80 {
		t.Fatalf("the job logged %d entries, want 80", n)
	}
	for name, w := range map[string]*watched{"fast": fast, "slow": slow} {
		if w == nil || w.job == nil {
			t.Fatalf("%s watcher got nothing", name)
		}
		if !proto.Equal(w.job, final) {
			t.Errorf("%s watcher (%d messages) rebuilt\n%v\nwant\n%v", name, w.msgs, w.job, final)
		}
	}
	if fast.msgs < 3 {
		t.Errorf("the fast watcher got %d messages", fast.msgs)
	}
}

// BenchmarkWatchJob: w watchers follow a job that logs 5,000 entries, from
// its start to its end. With deltas the cost per watcher is about the
// job's log once; before, every change re-sent the whole log.
func BenchmarkWatchJob(b *testing.B) {
	for _, watchers := range []int{1, 128} {
		b.Run(fmt.Sprintf("watchers=%d", watchers), func(b *testing.B) {
			b.ReportAllocs()
			var msgs, bytes int
			for i := 0; i < b.N; i++ {
				l := &logger{n: 5000, gate: make(chan struct{})}
				js, eng := newLogJobConn(b, l)
				id := submitLogJob(b, eng, 1)
				first := make(chan struct{}, watchers)
				results := make([]*watched, watchers)
				var wg sync.WaitGroup
				for k := 0; k < watchers; k++ {
					wg.Add(1)
					go func() { defer wg.Done(); results[k] = watchInto(b, js, id, first, nil, &watched{countOnly: true}) }()
				}
				for k := 0; k < watchers; k++ {
					<-first
				}
				close(l.gate)
				wg.Wait()
				for _, w := range results {
					msgs += w.msgs
					bytes += w.bytes
				}
			}
			b.ReportMetric(float64(msgs)/float64(b.N*watchers), "msgs/watcher")
			b.ReportMetric(float64(bytes)/float64(b.N*watchers), "sentB/watcher")
		})
	}
}
