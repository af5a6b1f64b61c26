package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend/backendtest"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore/etcdtest"
)

// etcdReplica starts a replica on etcd at endpoint, serving on a loopback
// port, with a 1 s lease, its configuration changed by mods; it is closed
// when the test ends (or by the test).
func etcdReplica(t *testing.T, ctx context.Context, endpoint, name string, mods ...func(*Config)) *App {
	t.Helper()
	return etcdReplicaAt(t, ctx, endpoint, name, "127.0.0.1:0", 1, mods...)
}

type namedBackend struct {
	name string
	be   backend.Backend
}

// leaderAndFollower starts a leader and a follower on one embedded etcd
// member (fsync on).
func leaderAndFollower(b *testing.B, ctx context.Context) []namedBackend {
	endpoint := etcdtest.Start(b)
	leader := etcdReplicaAt(b, ctx, endpoint, "leader", "127.0.0.1:0", 2)
	for !leader.replica.fwd.IsLeader() {
		time.Sleep(10 * time.Millisecond)
	}
	follower := etcdReplicaAt(b, ctx, endpoint, "follower", "127.0.0.1:0", 2)
	return []namedBackend{{"leader", leader.replica.fwd}, {"follower", follower.replica.fwd}}
}

// BenchmarkEtcdJobRoundTrip: a trivial job (one cluster tag), submitted
// and watched to success, one at a time, through the leader and through
// a follower (forwarded), on one embedded etcd member (fsync on).
func BenchmarkEtcdJobRoundTrip(b *testing.B) {
	ctx := b.Context()
	for _, x := range leaderAndFollower(b, ctx) {
		b.Run(x.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				id, err := x.be.Submit(ctx, clusterTag(fmt.Sprintf("%s%d", x.name, i%1000)), backend.SubmitOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if j := waitFinal(b, ctx, x.be, id); j.Status != backend.StatusSuccess {
					b.Fatalf("job %d: %s", id, j.Status)
				}
			}
		})
	}
}

// etcdReplicaAt starts a replica listening at listen with a lease of ttl
// seconds, its configuration changed by configure.
func etcdReplicaAt(t testing.TB, ctx context.Context, endpoint, name, listen string, ttl int, configure ...func(*Config)) *App {
	t.Helper()
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DataDir: t.TempDir(), Insecure: true, Store: StoreEtcd, Listen: lis.Addr().String(),
		Logger: logShownOnFailure(t, name),
		Etcd:   EtcdConfig{DialConfig: etcdstore.DialConfig{Endpoints: []string{endpoint}}, LeaseTTL: ttl, Name: name}}
	for _, c := range configure {
		c(&cfg)
	}
	a, err := New(ctx, cfg)
	if err != nil {
		lis.Close()
		t.Fatalf("replica %s: %v", name, err)
	}
	go func() { _ = a.Serve(lis) }()
	t.Cleanup(a.Close)
	return a
}

// logShownOnFailure is a logger whose lines the test shows if it fails.
func logShownOnFailure(t testing.TB, name string) *slog.Logger {
	var mu sync.Mutex
	var lines []string
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() && len(lines) > 0 {
			t.Logf("log of replica %s:\n%s", name, strings.Join(lines, ""))
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		lines = append(lines, string(p))
		mu.Unlock()
		return len(p), nil
	}), nil))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func testDelay(seconds float64) []*rapiv2.OpCode {
	return []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{Duration: proto.Float64(seconds)}}}}
}

func clusterTag(tag string) []*rapiv2.OpCode {
	kind := rapiv2.TagKind_TAG_KIND_CLUSTER
	return []*rapiv2.OpCode{{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Kind: &kind, Tags: []string{tag}}}}}
}

// waitFinal watches job id on be until it ends and returns its last
// snapshot.
func waitFinal(t testing.TB, ctx context.Context, be backend.Backend, id int64) *backend.Job {
	t.Helper()
	ch, err := be.Watch(ctx, id)
	if err != nil {
		t.Fatalf("Watch(%d): %v", id, err)
	}
	var last *backend.Job
	for j := range ch {
		last = j
	}
	if last == nil || !backend.Finalized(last.Status) {
		t.Fatalf("job %d: the watch ended before the job (last %+v)", id, last)
	}
	return last
}

func healthOf(t *testing.T, ctx context.Context, a *App, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(a.cfg.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health %q: %v", service, err)
	}
	return resp.Status
}

// healthChanges watches a's health of service and sends the time it
// turns to want (once).
func healthChanges(t *testing.T, ctx context.Context, a *App, service string, want healthpb.HealthCheckResponse_ServingStatus) <-chan time.Time {
	t.Helper()
	conn, err := grpc.NewClient(a.cfg.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.Status == want {
		t.Fatalf("health %q before: %v %v", service, first.GetStatus(), err)
	}
	at := make(chan time.Time, 1)
	go func() {
		defer conn.Close()
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			if resp.Status == want {
				at <- time.Now()
				return
			}
		}
	}()
	return at
}

// TestEtcdReplicas runs three replicas on one etcd. The first leads (it
// seeds the cluster); the two others serve at once as followers: reads,
// the job watch, health per role. A job submitted through a follower is
// forwarded to the leader, and is visible on the other follower as soon
// as the submission returned (read your writes); so is its effect on the
// cluster. Then the leader dies: a follower takes over within a few lease
// times, the jobs submitted before survive (the queued one runs, the one
// that was running ends as after an unclean shutdown: it does not run
// again), a submission made through a follower while there is no leader
// waits for the new one, and ids keep growing.
func TestEtcdReplicas(t *testing.T) {
	endpoint := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	a := etcdReplica(t, ctx, endpoint, "a")
	deadline := time.Now().Add(10 * time.Second)
	for !a.replica.fwd.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the first replica does not lead")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b := etcdReplica(t, ctx, endpoint, "b")
	c := etcdReplica(t, ctx, endpoint, "c")
	if b.replica.fwd.IsLeader() || c.replica.fwd.IsLeader() {
		t.Fatal("a second leader")
	}
	fa, fb, fc := a.replica.fwd, b.replica.fwd, c.replica.fwd

	// Health per role.
	for _, x := range []struct {
		name   string
		app    *App
		leader healthpb.HealthCheckResponse_ServingStatus
	}{{"a", a, healthpb.HealthCheckResponse_SERVING}, {"b", b, healthpb.HealthCheckResponse_NOT_SERVING}} {
		if got := healthOf(t, ctx, x.app, ""); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("replica %s: overall health %v, want SERVING", x.name, got)
		}
		if got := healthOf(t, ctx, x.app, LeaderHealthService); got != x.leader {
			t.Errorf("replica %s: %s health %v, want %v", x.name, LeaderHealthService, got, x.leader)
		}
	}
	if err := a.leaderHealth(ctx); err != nil {
		t.Errorf("/healthz?role=leader on the leader: %v", err)
	}
	if err := b.leaderHealth(ctx); err == nil {
		t.Error("/healthz?role=leader on a follower: healthy")
	}
	if err := b.health(ctx); err != nil {
		t.Errorf("/healthz on a follower: %v", err)
	}

	// Reads on a follower: the leader's cluster.
	wantNodes, err := fa.Names(ctx, "node")
	if err != nil || len(wantNodes) == 0 {
		t.Fatalf("nodes on the leader: %v %v", wantNodes, err)
	}
	if got, err := fb.Names(ctx, "node"); err != nil || !slices.Equal(got, wantNodes) {
		t.Errorf("nodes on a follower = %v, %v; want %v", got, err, wantNodes)
	}

	// A write through a follower, read on the other follower at once.
	for i := range 20 {
		tag := "rw" + string(rune('a'+i))
		id, err := fb.Submit(ctx, clusterTag(tag), backend.SubmitOptions{})
		if err != nil {
			t.Fatalf("submit through a follower: %v", err)
		}
		if _, ok, err := fc.Job(ctx, id); err != nil || !ok {
			t.Fatalf("job %d submitted through b is not on c right after (%v)", id, err)
		}
		if j := waitFinal(t, ctx, fc, id); j.Status != backend.StatusSuccess {
			t.Fatalf("job %d watched on a follower: %s %v", id, j.Status, j.OpResult)
		}
		tags, err := fb.Tags(ctx, backend.TagCluster, "")
		if err != nil || !slices.Contains(tags, tag) {
			t.Fatalf("cluster tags on a follower after job %d = %v, %v; want %s", id, tags, err, tag)
		}
	}
	// Concurrent writes through both followers: every id once.
	var mu sync.Mutex
	var ids []int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := []backend.Backend{fb, fc}[i%2]
			id, err := f.Submit(ctx, testDelay(0), backend.SubmitOptions{})
			if err != nil {
				t.Errorf("concurrent submit: %v", err)
				return
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(ids)
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatalf("duplicate ids: %v", ids)
	}

	// The leader dies while a job runs and another is queued behind it.
	running, err := fb.Submit(ctx, append(testDelay(30), testDelay(0)...), backend.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		j, _, err := fc.Job(ctx, running)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == backend.StatusRunning {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Filter rules hold back new jobs: this one stays queued.
	uuid, err := fc.ReplaceFilter(ctx, "", backend.FilterRuleSpec{Priority: 0, Action: "PAUSE", Predicates: []any{}})
	if err != nil {
		t.Fatalf("a filter rule through a follower: %v", err)
	}
	queued, err := fb.Submit(ctx, testDelay(0), backend.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j, _, _ := fc.Job(ctx, queued); j == nil || j.Status != backend.StatusQueued {
		t.Fatalf("the paused job on c: %+v", j)
	}
	// Job watches on both followers, opened before the leader dies: the
	// one on the replica that takes the lead goes on (its copy stops).
	type watch struct {
		on  string
		id  int64
		ch  <-chan *backend.Job
		got []*backend.Job
	}
	var watches []*watch
	for _, f := range []struct {
		name string
		be   backend.Backend
	}{{"b", fb}, {"c", fc}} {
		for _, id := range []int64{running, queued} {
			ch, err := f.be.Watch(ctx, id)
			if err != nil {
				t.Fatalf("watch of job %d on %s: %v", id, f.name, err)
			}
			w := &watch{on: f.name, id: id, ch: ch}
			w.got = append(w.got, <-ch)
			watches = append(watches, w)
		}
	}
	killed := time.Now()
	a.Close()
	// A submission through a follower while there is no leader waits
	// for the next one.
	during, err := fc.Submit(ctx, testDelay(0), backend.SubmitOptions{})
	if err != nil {
		t.Fatalf("a submission during the failover: %v", err)
	}
	duringTook := time.Since(killed)
	var leader, follower *App
	for leader == nil {
		switch {
		case fb.IsLeader():
			leader, follower = b, c
		case fc.IsLeader():
			leader, follower = c, b
		case time.Since(killed) > 20*time.Second:
			t.Fatal("no replica took over")
		default:
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("failover: the submission made through a follower when the leader died returned after %v", duringTook)
	fl, ff := leader.replica.fwd, follower.replica.fwd
	if got := healthOf(t, ctx, leader, LeaderHealthService); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("the new leader's %s health: %v", LeaderHealthService, got)
	}
	if during <= queued {
		t.Errorf("the job submitted during the failover got id %d after %d", during, queued)
	}
	if err := ff.DeleteFilter(ctx, uuid); err != nil {
		t.Fatalf("deleting the filter rule through the follower: %v", err)
	}
	j := waitFinal(t, ctx, ff, running)
	if j.Status != backend.StatusError || !strings.Contains(jsonString(j.OpResult), "Unclean master daemon shutdown") {
		t.Errorf("the job running when the leader died: %s %v; want error, unclean shutdown", j.Status, j.OpResult)
	}
	for _, id := range []int64{queued, during} {
		if j := waitFinal(t, ctx, ff, id); j.Status != backend.StatusSuccess {
			t.Errorf("job %d after the failover: %s %v", id, j.Status, j.OpResult)
		}
	}
	for _, id := range ids {
		j, ok, err := fl.Job(ctx, id)
		if err != nil || !ok || j.Status != backend.StatusSuccess {
			t.Errorf("job %d on the new leader: %+v %v %v", id, j, ok, err)
		}
	}
	for _, w := range watches {
		for j := range w.ch {
			w.got = append(w.got, j)
		}
		last := w.got[len(w.got)-1]
		if !last.Finalized() {
			t.Errorf("the watch of job %d on %s ended at %s, before the job (leader now %s)", w.id, w.on, last.Status, leader.cfg.Etcd.Name)
		}
		for i := 1; i < len(w.got); i++ {
			if w.got[i].Version <= w.got[i-1].Version {
				t.Errorf("the watch of job %d on %s: version %d after %d", w.id, w.on, w.got[i].Version, w.got[i-1].Version)
			}
		}
	}
	next, err := ff.Submit(ctx, testDelay(0), backend.SubmitOptions{})
	if err != nil || next <= during {
		t.Errorf("a job after the failover: id %d (after %d), %v", next, during, err)
	}
}

// TestEtcdLeaderGivesUpAfterARefusedCommit: etcd refuses a commit of the
// leader (here its etcd user loses the write permission; in production the
// member its commit went to dies, and the outcome is unknown) while its
// lease stays alive. Its job queue stops (fail-stop), and it gives up the
// leadership: Lost fires (the process exits), and the other replica takes
// over and runs the jobs. Before, the leader kept its lease with a stopped
// queue, and no job ran until someone restarted it.
func TestEtcdLeaderGivesUpAfterARefusedCommit(t *testing.T) {
	endpoint := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	prefix := etcdstore.DefaultPrefix
	end := clientv3.GetPrefixRangeEnd(prefix)
	root, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	passwords := map[string]string{}
	for _, user := range []string{"root", "a", "b"} {
		passwords[user] = filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(passwords[user], []byte(user+"-password\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		role := "role-" + user
		if user == "root" {
			role = "root"
		} else if _, err := root.RoleAdd(ctx, role); err != nil {
			t.Fatal(err)
		} else if _, err := root.RoleGrantPermission(ctx, role, prefix, end, clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
			t.Fatal(err)
		}
		if _, err := root.UserAdd(ctx, user, user+"-password"); err != nil {
			t.Fatal(err)
		}
		if _, err := root.UserGrantRole(ctx, user, role); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		Username: "root", Password: "root-password"})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	as := func(user string) func(*Config) {
		return func(c *Config) { c.Etcd.User, c.Etcd.PasswordFile, c.Etcd.LeaseTTL = user, passwords[user], 3 }
	}
	a := etcdReplicaAt(t, ctx, endpoint, "a", "127.0.0.1:0", 1, as("a"))
	for deadline := time.Now().Add(10 * time.Second); !a.replica.fwd.IsLeader(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first replica does not lead")
		}
	}
	b := etcdReplicaAt(t, ctx, endpoint, "b", "127.0.0.1:0", 1, as("b"))
	fa, fb := a.replica.fwd, b.replica.fwd
	id, err := fb.Submit(ctx, clusterTag("before"), backend.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j := waitFinal(t, ctx, fb, id); j.Status != backend.StatusSuccess {
		t.Fatalf("job %d: %s %v", id, j.Status, j.OpResult)
	}

	// a may read but no longer write, but for its key in the election
	// (etcd renews a lease only for a user who may write its keys): its
	// next commit is refused, its lease lives on.
	if _, err := admin.RoleRevokePermission(ctx, "role-a", prefix, end); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RoleGrantPermission(ctx, "role-a", prefix, end, clientv3.PermissionType(clientv3.PermRead)); err != nil {
		t.Fatal(err)
	}
	election := prefix + "leader/"
	if _, err := admin.RoleGrantPermission(ctx, "role-a", election, clientv3.GetPrefixRangeEnd(election),
		clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
		t.Fatal(err)
	}
	if _, err := fa.Submit(ctx, clusterTag("refused"), backend.SubmitOptions{}); err == nil {
		t.Error("a submission whose commit etcd refused was acknowledged")
	}
	select {
	case err := <-a.Lost():
		t.Logf("the leader stops: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the leader whose commit was refused kept the leadership")
	}
	a.Close() // as the process does on Lost
	for deadline := time.Now().Add(20 * time.Second); !fb.IsLeader(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the other replica did not take over")
		}
	}
	id, err = fb.Submit(ctx, clusterTag("after"), backend.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j := waitFinal(t, ctx, fb, id); j.Status != backend.StatusSuccess {
		t.Fatalf("job %d after the takeover: %s %v", id, j.Status, j.OpResult)
	}
	if tags, err := fb.Tags(ctx, backend.TagCluster, ""); err != nil || slices.Contains(tags, "refused") || !slices.Contains(tags, "after") {
		t.Errorf("cluster tags after the takeover: %v, %v", tags, err)
	}
}

func jsonString(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			b.WriteString(x + " ")
		}
	}
	walk(v)
	return b.String()
}

// TestEtcdRetention: on etcd the leader removes the archived jobs past
// their retention, and the removal reaches the followers' copies (a
// follower answers GET /2/jobs/{id} as Ganeti answers an unknown job);
// it compacts etcd's history (an old revision is gone, the current data
// stays), and the follower still follows.
func TestEtcdRetention(t *testing.T) {
	endpoint := etcdtest.Start(t)
	cli := etcdtest.Client(t, endpoint)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	short := func(c *Config) {
		c.AllowAnonymousReads = true
		c.JobArchiveAfter = time.Millisecond    // archived within a second
		c.JobArchiveRetention = 2 * time.Second // removed a few seconds after it ended
		c.Etcd.CompactionInterval = 100 * time.Millisecond
	}
	leader := etcdReplica(t, ctx, endpoint, "leader", short)
	for !leader.replica.fwd.IsLeader() {
		time.Sleep(10 * time.Millisecond)
	}
	follower := etcdReplica(t, ctx, endpoint, "follower", short)
	f := follower.replica.fwd
	id, err := f.Submit(ctx, clusterTag("retention"), backend.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFinal(t, ctx, f, id)
	rev, err := cli.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	old := rev.Header.Revision

	// Archived, then removed: on the follower, found archived, then not.
	archived := false
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, ok, err := f.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		archived = archived || j.Archived
		if time.Now().After(deadline) {
			t.Fatalf("job %d still on the follower: %+v", id, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !archived {
		t.Errorf("job %d was never seen archived on the follower", id)
	}
	// Over RAPI, as Ganeti 3.0 answers an unknown job id (its golden
	// capture "GET unknown job id"): 200, every field null but the id.
	resp, err := http.Get(fmt.Sprintf("http://%s/2/jobs/%d", follower.cfg.Listen, id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != http.StatusOK ||
		got["id"] != float64(id) || got["status"] != nil || got["ops"] != nil {
		t.Errorf("GET /2/jobs/%d on the follower after the removal: %d %s; want an unknown job's answer", id, resp.StatusCode, body)
	}

	// The history before the compaction is gone; the data is not.
	for {
		_, err := cli.Get(ctx, "any", clientv3.WithRev(old))
		if errors.Is(err, rpctypes.ErrCompacted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("revision %d not compacted", old)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tags, err := f.Tags(ctx, backend.TagCluster, ""); err != nil || !slices.Contains(tags, "retention") {
		t.Errorf("cluster tags on the follower after the compaction = %v, %v", tags, err)
	}
	// The follower still follows.
	next, err := f.Submit(ctx, clusterTag("after"), backend.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j := waitFinal(t, ctx, f, next); j.Status != backend.StatusSuccess {
		t.Errorf("a job after the compaction: %s %v", j.Status, j.OpResult)
	}
	if err := follower.health(ctx); err != nil {
		t.Errorf("the follower's health after the compaction: %v", err)
	}
}

// TestFollowerCompactedMessage: a follower whose copy fell behind the
// history etcd keeps stops, saying why (the restart loads a fresh copy).
func TestFollowerCompactedMessage(t *testing.T) {
	m := &mirror{notify: make(chan struct{}), done: make(chan struct{})}
	commits := make(chan etcdstore.Commit, 1)
	commits <- etcdstore.Commit{Rev: 7, Err: fmt.Errorf("%w: %v", store.ErrCompacted, rpctypes.ErrCompacted)}
	close(commits)
	var got error
	m.follow(commits, func(err error) { got = err })
	if got == nil || !errors.Is(got, store.ErrCompacted) ||
		!strings.Contains(got.Error(), "compacted away") || !strings.Contains(got.Error(), "--etcd-compaction-interval") ||
		!strings.Contains(got.Error(), "restart it") {
		t.Errorf("the follower's failure: %v", got)
	}
	if !errors.Is(m.Err(), store.ErrCompacted) {
		t.Errorf("the copy's Err: %v", m.Err())
	}
}

// TestEtcdFollowerContract runs the backend contract suite
// (internal/backend/backendtest) on a follower's backend: its reads come
// from its copy of the store, its writes go to the leader.
func TestEtcdFollowerContract(t *testing.T) {
	endpoint := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	leader := etcdReplica(t, ctx, endpoint, "leader")
	for !leader.replica.fwd.IsLeader() {
		time.Sleep(10 * time.Millisecond)
	}
	follower := etcdReplica(t, ctx, endpoint, "follower")
	if follower.replica.fwd.IsLeader() {
		t.Fatal("the second replica leads")
	}
	backendtest.Run(t, func(*testing.T) backendtest.Harness {
		return backendtest.Harness{Backend: follower.replica.fwd}
	})
}

// BenchmarkEtcdReads compares a read (the node names) on the leader and on
// a follower, whose reads first wait for etcd's current revision (one etcd
// read shared by the concurrent callers): run with -cpu and -benchtime.
func BenchmarkEtcdReads(b *testing.B) {
	ctx := b.Context()
	for _, x := range leaderAndFollower(b, ctx) {
		b.Run(x.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := x.be.Names(ctx, "node"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestEtcdReplicaSuspended cuts a follower off from etcd for a moment
// while etcd goes on holding its lease (the test renews it in the
// follower's place, as etcd extends the leases while it elects its own
// leader): once half the lease passed unconfirmed the follower stops
// serving (every health status NOT_SERVING, reads and /healthz refused)
// rather than answer from a copy that may be stale, and once etcd
// answers again it serves again, without giving up.
func TestEtcdReplicaSuspended(t *testing.T) {
	endpoint := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	leader := etcdReplica(t, ctx, endpoint, "leader")
	for !leader.replica.fwd.IsLeader() {
		time.Sleep(10 * time.Millisecond)
	}
	px, via := etcdtest.Proxy(t, endpoint)
	follower := etcdReplica(t, ctx, via, "follower")
	lease := follower.replica.lease
	cli := etcdtest.Client(t, endpoint)
	services := []string{"", LeaderHealthService, "ganeti.rapi.v2.ClusterService"}
	if got := healthOf(t, ctx, follower, services[2]); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("%s before the cut: %v", services[2], got)
	}

	notServing := healthChanges(t, ctx, follower, "", healthpb.HealthCheckResponse_NOT_SERVING)
	renewing, stopRenewing := context.WithCancel(ctx)
	defer stopRenewing()
	go func() {
		for renewing.Err() == nil {
			_, _ = cli.KeepAliveOnce(renewing, lease.Lease())
			time.Sleep(100 * time.Millisecond)
		}
	}()
	px.PauseTx()
	px.PauseRx()
	cut := time.Now()
	select {
	case at := <-notServing:
		t.Logf("NOT_SERVING %v after the cut (lease %v)", at.Sub(cut), lease.TTL)
		if at.Sub(cut) > lease.TTL {
			t.Errorf("NOT_SERVING only %v after the cut, lease %v", at.Sub(cut), lease.TTL)
		}
	case <-time.After(5 * lease.TTL):
		t.Fatalf("still SERVING %v after the cut", 5*lease.TTL)
	}
	serving := healthChanges(t, ctx, follower, "", healthpb.HealthCheckResponse_SERVING)
	_, err := follower.replica.fwd.ClusterInfo(ctx)
	for _, svc := range services {
		if got := healthOf(t, ctx, follower, svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health %q while cut off: %v", svc, got)
		}
	}
	if err := follower.health(ctx); err == nil {
		t.Error("/healthz while cut off: healthy")
	}
	px.UnpauseTx()
	px.UnpauseRx()
	back := time.Now()
	if e, ok := errs.As(err); !ok || e.Class != errs.ClassUnavailable {
		t.Errorf("a read while cut off: %v, want Unavailable", err)
	}
	select {
	case at := <-serving:
		t.Logf("SERVING again %v after etcd answered again", at.Sub(back))
	case <-time.After(5 * lease.TTL):
		t.Fatalf("not SERVING again %v after etcd answered again", 5*lease.TTL)
	}
	stopRenewing()
	select {
	case err := <-follower.Lost():
		t.Fatalf("the follower gave up: %v", err)
	default:
	}
	for _, svc := range services {
		want := healthpb.HealthCheckResponse_SERVING
		if svc == LeaderHealthService {
			want = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if got := healthOf(t, ctx, follower, svc); got != want {
			t.Errorf("health %q after: %v, want %v", svc, got, want)
		}
	}
	id, err := follower.replica.fwd.Submit(ctx, clusterTag("after-the-cut"), backend.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j := waitFinal(t, ctx, follower.replica.fwd, id); j.Status != backend.StatusSuccess {
		t.Errorf("job %d after the cut: %s", id, j.Status)
	}
	if err := follower.health(ctx); err != nil {
		t.Errorf("/healthz after: %v", err)
	}
}

// TestEtcdReplicaCutOff cuts replicas off from etcd (a fault proxy between
// each and etcd holds its traffic both ways): a follower, then the leader.
// Each stops serving (health NOT_SERVING) within its lease (1 s asked, 2 s
// granted here), and gives up within the lease and the etcd client's
// one-second check: Lost delivers the reason (the process exits on it);
// meanwhile a read on it never answers from its stale copy. The replica
// still connected takes the lead.
func TestEtcdReplicaCutOff(t *testing.T) {
	endpoint := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	pxLeader, viaLeader := etcdtest.Proxy(t, endpoint)
	pxFollower, viaFollower := etcdtest.Proxy(t, endpoint)
	leader := etcdReplica(t, ctx, viaLeader, "leader")
	for !leader.replica.fwd.IsLeader() {
		time.Sleep(10 * time.Millisecond)
	}
	follower := etcdReplica(t, ctx, viaFollower, "follower")
	other := etcdReplica(t, ctx, endpoint, "other")
	lease := leader.replica.lease.TTL // etcdReplica's 1 s, as etcd raised it
	t.Logf("the lease etcd granted: %v", lease)

	// cutOff cuts a off and returns when: then when it stopped serving
	// (health), and when it gave up (Lost).
	cutOff := func(name string, a *App, px interface {
		PauseTx()
		PauseRx()
	}) (cut time.Time, notServing, lost <-chan time.Time) {
		t.Helper()
		if got := healthOf(t, ctx, a, ""); got != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%s before the cut: health %v", name, got)
		}
		lostAt := make(chan time.Time, 1)
		go func() {
			select {
			case err := <-a.Lost():
				t.Logf("%s: %v", name, err)
				lostAt <- time.Now()
			case <-ctx.Done():
			}
		}()
		ns := healthChanges(t, ctx, a, "", healthpb.HealthCheckResponse_NOT_SERVING)
		px.PauseTx()
		px.PauseRx()
		return time.Now(), ns, lostAt
	}
	stopped := func(name string, a *App, cut time.Time, notServing, lost <-chan time.Time) {
		t.Helper()
		select {
		case at := <-notServing:
			took := at.Sub(cut)
			t.Logf("%s cut off from etcd: NOT_SERVING after %v", name, took)
			if took > lease {
				t.Errorf("%s stopped serving %v after the cut, lease %v", name, took, lease)
			}
		case <-time.After(10 * lease):
			t.Fatalf("%s still serves %v after it was cut off from etcd", name, 10*lease)
		}
		select {
		case at := <-lost:
			took := at.Sub(cut)
			t.Logf("%s cut off from etcd: gave up after %v", name, took)
			if took > lease+1500*time.Millisecond { // the etcd client checks once a second
				t.Errorf("%s gave up %v after the cut, lease %v", name, took, lease)
			}
		case <-time.After(10 * lease):
			t.Fatalf("%s still runs %v after it was cut off from etcd", name, 10*lease)
		}
		if got := healthOf(t, ctx, a, ""); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("%s cut off: health %v, want NOT_SERVING", name, got)
		}
	}

	// The follower: a job committed after the cut is never read as
	// unknown on it.
	cut, notServing, lost := cutOff("the follower", follower, pxFollower)
	id, err := leader.replica.fwd.Submit(ctx, clusterTag("after-the-cut"), backend.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 3*lease)
	if _, ok, err := follower.replica.fwd.Job(rctx, id); err == nil && !ok {
		t.Errorf("job %d, committed after the follower was cut off, read there as unknown", id)
	}
	rcancel()
	stopped("the follower", follower, cut, notServing, lost)
	if _, ok, err := other.replica.fwd.Job(ctx, id); err != nil || !ok {
		t.Errorf("job %d on the replica still connected: %v %v", id, ok, err)
	}

	// The leader: the other replica takes over.
	cut, notServing, lost = cutOff("the leader", leader, pxLeader)
	stopped("the leader", leader, cut, notServing, lost)
	for !other.replica.fwd.IsLeader() {
		if time.Since(cut) > 10*lease {
			t.Fatal("the replica still connected did not take the lead")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the replica still connected leads %v after the leader was cut off", time.Since(cut))
	if j := waitFinal(t, ctx, other.replica.fwd, id); j.Status != backend.StatusSuccess {
		t.Errorf("job %d on the new leader: %s", id, j.Status)
	}
}

// leaderAmong waits until one of apps leads and returns it.
func leaderAmong(t *testing.T, within time.Duration, apps ...*App) *App {
	t.Helper()
	for deadline := time.Now().Add(within); ; {
		for _, a := range apps {
			if a.replica.fwd.IsLeader() {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica leads after %v", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEtcdLeaderGone: with a 10 s lease, a leader whose process is gone
// (its listener closed at once, as by kill -9) is deposed by the
// followers well before its lease expires, also when a new process (a
// follower, with another lease) took its address at once; a leader that
// shuts down gracefully finishes its running job (its followers wait
// while it drains) and resigns, so that a follower takes over at once.
func TestEtcdLeaderGone(t *testing.T) {
	const ttl = 10
	for _, how := range []string{"killed", "restarted", "shut down"} {
		t.Run(how, func(t *testing.T) {
			endpoint := etcdtest.Start(t)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			a := etcdReplicaAt(t, ctx, endpoint, "a", "127.0.0.1:0", ttl)
			leaderAmong(t, 10*time.Second, a)
			b := etcdReplicaAt(t, ctx, endpoint, "b", "127.0.0.1:0", ttl)
			c := etcdReplicaAt(t, ctx, endpoint, "c", "127.0.0.1:0", ttl)
			job, err := b.replica.fwd.Submit(ctx, testDelay(1), backend.SubmitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for {
				j, _, err := b.replica.fwd.Job(ctx, job)
				if err != nil {
					t.Fatal(err)
				}
				if j.Status == backend.StatusRunning {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			start := time.Now()
			switch how {
			case "killed":
				a.Close()
			case "restarted":
				a.Close()
				etcdReplicaAt(t, ctx, endpoint, "a", a.cfg.Listen, ttl)
			case "shut down":
				if err := a.Shutdown(ctx); err != nil {
					t.Fatalf("shutdown: %v", err)
				}
			}
			next := leaderAmong(t, ttl*time.Second, b, c)
			took := time.Since(start)
			t.Logf("leader %s: %s leads %v later (lease %v)", how, next.cfg.Etcd.Name, took, a.replica.lease.TTL)
			if took > ttl*time.Second/2 {
				t.Errorf("a replica took over %v after the leader was %s; lease %d s", took, how, ttl)
			}
			want := backend.StatusSuccess
			if how != "shut down" {
				want = backend.StatusError // cut while running
			}
			if j := waitFinal(t, ctx, next.replica.fwd, job); j.Status != want {
				t.Errorf("the job running when the leader was %s: %s %v, want %s", how, j.Status, j.OpResult, want)
			}
		})
	}
}

// TestEtcdShutdownWithoutEtcd: the leader is cut off from etcd while a
// submission's commit is in flight, then shut down. The shutdown returns
// (within the store's request timeout) instead of waiting for etcd
// forever.
func TestEtcdShutdownWithoutEtcd(t *testing.T) {
	endpoint := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	px, through := etcdtest.Proxy(t, endpoint)
	a := etcdReplicaAt(t, ctx, through, "a", "127.0.0.1:0", 30)
	leaderAmong(t, 10*time.Second, a)
	px.PauseTx()
	px.PauseRx()
	submitted := make(chan error, 1)
	go func() {
		_, err := a.replica.fwd.Submit(ctx, clusterTag("cut"), backend.SubmitOptions{})
		submitted <- err
	}()
	time.Sleep(200 * time.Millisecond) // the commit is in flight
	start := time.Now()
	sctx, scancel := context.WithTimeout(ctx, time.Second)
	defer scancel()
	done := make(chan error, 1)
	go func() { done <- a.Shutdown(sctx) }()
	select {
	case err := <-done:
		t.Logf("shutdown without etcd returned after %v: %v", time.Since(start), err)
	case <-time.After(etcdstore.DefaultRequestTimeout + 10*time.Second):
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		t.Fatal("the shutdown waits for etcd")
	}
	if err := <-submitted; err == nil {
		t.Error("the submission cut off from etcd succeeded")
	}
}
