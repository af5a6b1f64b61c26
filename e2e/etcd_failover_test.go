package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// etcdMember is one etcd process of startEtcdCluster.
type etcdMember struct {
	client string // client URL
	cmd    *exec.Cmd
	done   chan struct{} // closed once the process exited
}

// startEtcdCluster runs three etcd members (Debian's etcd-server) on
// loopback ports and waits until each is healthy. Their election timeout
// is 500 ms (etcd's default is 1 s, for members on a network): an etcd
// leader change holds the renewals of the gateways' leases back for one
// or two of them, and the gateways' lease (--etcd-lease-ttl 2) must
// outlast that.
func startEtcdCluster(t *testing.T) []*etcdMember {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		skipOrFailInCI(t, "etcd is not installed (apt-get install etcd-server)")
	}
	var clients, peers, names []string
	for i := range 3 {
		names = append(names, fmt.Sprintf("m%d", i))
		clients = append(clients, "http://"+freePort(t))
		peers = append(peers, "http://"+freePort(t))
	}
	var initial []string
	for i := range 3 {
		initial = append(initial, names[i]+"="+peers[i])
	}
	var members []*etcdMember
	for i := range 3 {
		cmd := exec.Command(bin, "--name", names[i], "--data-dir", t.TempDir(),
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "e2e", "--log-level", "error",
			"--heartbeat-interval", "50", "--election-timeout", "500")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		m := &etcdMember{client: clients[i], cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(m.done) }()
		t.Cleanup(m.kill)
		members = append(members, m)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range clients {
		for {
			resp, err := http.Get(c + "/health")
			if err == nil {
				ok := resp.StatusCode == 200
				resp.Body.Close()
				if ok {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("etcd member %s did not become healthy", c)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return members
}

// kill ends the member with SIGKILL and waits until it exited.
func (m *etcdMember) kill() {
	_ = m.cmd.Process.Kill()
	<-m.done
}

func (m *etcdMember) alive() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// leads asks the member (etcd's HTTP gateway, POST
// /v3/maintenance/status) whether it is the etcd leader.
func (m *etcdMember) leads(client *http.Client) bool {
	resp, err := client.Post(m.client+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var st struct {
		Header struct {
			MemberID string `json:"member_id"`
		} `json:"header"`
		Leader string `json:"leader"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return false
	}
	return st.Leader != "" && st.Leader == st.Header.MemberID
}

// etcdLeader returns the member that leads, waiting up to timeout for one
// (nil then).
func etcdLeader(client *http.Client, members []*etcdMember, timeout time.Duration) *etcdMember {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, m := range members {
			if !m.alive() {
				continue
			}
			if m.leads(client) {
				return m
			}
		}
	}
	return nil
}

// gatewayReplica is a gateway process on the etcd members. One that exits
// on its own (it lost its lease, or gave up the leadership after etcd
// failed a commit of its) is restarted at once on the same ports, as
// systemd does (deploy/systemd: Restart=on-failure); one the test kills
// stays dead.
type gatewayReplica struct {
	name   string
	base   string // with credentials
	admin  string
	args   []string
	jobs   rapiv2.JobServiceClient
	killed atomic.Bool // by the test

	mu       sync.Mutex
	p        *serverProcess
	restarts []string // why it exited, each time
}

var healthClient = &http.Client{Timeout: 2 * time.Second}

func (g *gatewayReplica) proc() *serverProcess {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.p
}

func (g *gatewayReplica) leads() bool {
	resp, err := healthClient.Get(g.admin + "/healthz?role=leader")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// alive: the test did not kill it and the process runs.
func (g *gatewayReplica) alive() bool {
	select {
	case <-g.proc().done:
		return false
	default:
		return !g.killed.Load()
	}
}

// kill ends the process with SIGKILL, for good.
func (g *gatewayReplica) kill() {
	g.killed.Store(true)
	_ = g.proc().cmd.Process.Kill()
}

// supervise restarts the process whenever it exits on its own, until stop
// is closed; a start that fails (etcd has no leader yet) is tried again
// after a pause, as systemd does after RestartSec.
func (g *gatewayReplica) supervise(t *testing.T, bin string, stop <-chan struct{}) {
	for {
		p := g.proc()
		select {
		case <-p.done:
		case <-stop:
			return
		}
		if g.killed.Load() {
			return
		}
		g.mu.Lock()
		g.restarts = append(g.restarts, exitReason(p.Logs()))
		g.mu.Unlock()
		for attempt := 1; ; attempt++ {
			np, err := launchServer(bin, p.DataDir, g.args...)
			if np != nil {
				g.mu.Lock()
				g.p = np
				g.mu.Unlock()
			}
			if err == nil {
				break
			}
			if np != nil {
				np.Stop(t)
			}
			if attempt == 20 {
				t.Errorf("%s: does not restart: %v", g.name, err)
				return
			}
			select {
			case <-time.After(250 * time.Millisecond):
			case <-stop:
				return
			}
		}
	}
}

// startGatewayReplicas runs three gateway processes on the etcd members,
// each given every member's URL, under supervision, and returns them with
// the one that leads.
func startGatewayReplicas(t *testing.T, members []*etcdMember, extra ...string) ([]*gatewayReplica, *gatewayReplica) {
	t.Helper()
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.client)
	}
	var reps []*gatewayReplica
	for i := range 3 {
		port, admin := freePort(t), freePort(t)
		g := &gatewayReplica{name: fmt.Sprintf("gw%d", i), admin: "http://" + admin,
			args: append([]string{"--insecure", "--listen", port, "--admin-listen", admin,
				"--store", "etcd", "--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-advertise", port,
				"--etcd-lease-ttl", "2", "--etcd-name", fmt.Sprintf("gw%d", i)}, extra...)}
		g.p = startServer(t, "", g.args...)
		g.base = "http://" + e2eUser + ":" + e2ePassword + "@" + g.p.Addr
		g.jobs = rapiv2.NewJobServiceClient(dialGRPC(t, g.base))
		reps = append(reps, g)
	}
	stop := make(chan struct{})
	var supervisors sync.WaitGroup
	bin := serverBinary(t)
	for _, g := range reps {
		supervisors.Go(func() { g.supervise(t, bin, stop) })
	}
	t.Cleanup(func() { // before the processes' own cleanups
		close(stop)
		supervisors.Wait()
		for _, g := range reps {
			g.proc().Stop(t)
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		for _, r := range reps {
			if r.leads() {
				return reps, r
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no replica leads")
		}
	}
}

// TestEtcdFailoverUnderLoad: three gateway processes (each given the
// three members, restarted when they exit on their own) on a three-member
// cluster of real etcd processes. A burst of 500 concurrent jobs of mixed
// opcodes (tag additions and deletions on the cluster, nodes and
// instances, instance startups and shutdowns, jobs of several opcodes over
// gRPC, one of them failing in the middle, others pausing in the middle)
// goes through all replicas, while readers read the jobs' statuses on
// random replicas; at a third of it a process gets SIGKILL: the gateway
// that leads, or the etcd member that leads. Then every acknowledged job
// exists once, with its id, and ends; no submission is two jobs (every
// job's opcodes are unique); and the cluster (every tag of the cluster,
// the nodes and the instances, the instances' admin state) read on each
// running replica is the seeded cluster changed by exactly the opcodes
// that succeeded, in every job the queue holds (acknowledged or not). The
// history of submissions and reads is linearizable (porcupine, see
// linearizability_test.go).
func TestEtcdFailoverUnderLoad(t *testing.T) {
	t.Run("kill-gateway-leader", func(t *testing.T) { testFailover(t, false) })
	t.Run("kill-etcd-leader", func(t *testing.T) { testFailover(t, true) })
}

const (
	foJobs      = 500
	foParallel  = 32
	foReaders   = 3
	foInstances = 50
)

var foNodes = []string{"node1.example.com", "node2.example.com", "node3.example.com"}

func foInstance(k int) string { return fmt.Sprintf("fo%02d.example.com", k) }

// failoverClusterFile is the demo cluster with the tags the burst deletes
// (seed-c-K on the cluster, seed-n-K on node K%3, seed-i-K-a and -b on
// instance K) and foInstances more instances, the even ones up, the odd
// ones down.
func failoverClusterFile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "deploy", "demo-cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	cl := f["cluster"].(map[string]any)
	nodes := f["nodes"].([]any)
	for k := range foInstances {
		ctags, _ := cl["tags"].([]any)
		cl["tags"] = append(ctags, fmt.Sprintf("seed-c-%d", k))
		n := nodes[k%3].(map[string]any)
		if n["name"] != foNodes[k%3] {
			t.Fatalf("deploy/demo-cluster.json: node %d is %v", k%3, n["name"])
		}
		ntags, _ := n["tags"].([]any)
		n["tags"] = append(ntags, fmt.Sprintf("seed-n-%d", k))
		state := "up"
		if k%2 == 1 {
			state = "down"
		}
		f["instances"] = append(f["instances"].([]any), map[string]any{
			"name": foInstance(k), "os": "noop", "pnode": foNodes[k%3], "disk_template": "diskless",
			"beparams": map[string]any{"maxmem": 128, "minmem": 128, "vcpus": 1}, "admin_state": state,
			"tags": []any{fmt.Sprintf("seed-i-%d-a", k), fmt.Sprintf("seed-i-%d-b", k)}})
	}
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// foOp is one opcode of the burst, or of a job the queue holds.
type foOp struct {
	op    string // OP_TAGS_SET, OP_TAGS_DEL, OP_INSTANCE_STARTUP, OP_INSTANCE_SHUTDOWN, OP_TEST_DELAY
	kind  string // of the tags: cluster, node or instance
	name  string // the node or instance
	tags  []string
	delay float64 // OP_TEST_DELAY's duration (seconds)
}

func tagsOp(op, kind, name, tag string) foOp {
	return foOp{op: op, kind: kind, name: name, tags: []string{tag}}
}

// key identifies the opcode: every opcode of the burst is another.
func (o foOp) key() string {
	if o.op == "OP_TEST_DELAY" {
		return fmt.Sprintf("%s %g", o.op, o.delay)
	}
	return strings.Join([]string{o.op, o.kind, o.name, strings.Join(o.tags, ",")}, " ")
}

// object names what the opcode changes in the state (clusterState).
func (o foOp) object() string {
	if o.kind == "cluster" {
		return "cluster"
	}
	if o.kind == "" {
		return "instance " + o.name
	}
	return o.kind + " " + o.name
}

// effects are the facts of the state (clusterState) the opcode adds and
// those it removes.
func (o foOp) effects() (add, remove []string) {
	switch o.op {
	case "OP_TAGS_SET", "OP_TAGS_DEL":
		var facts []string
		for _, tag := range o.tags {
			facts = append(facts, o.object()+" tag "+tag)
		}
		if o.op == "OP_TAGS_SET" {
			return facts, nil
		}
		return nil, facts
	case "OP_INSTANCE_STARTUP":
		return []string{o.object() + " admin up"}, []string{o.object() + " admin down"}
	case "OP_INSTANCE_SHUTDOWN":
		return []string{o.object() + " admin down"}, []string{o.object() + " admin up"}
	}
	return nil, nil
}

// route is the legacy request of a job of this one opcode.
func (o foOp) route() (method, path string) {
	switch o.op {
	case "OP_INSTANCE_STARTUP":
		return "PUT", "/2/instances/" + o.name + "/startup"
	case "OP_INSTANCE_SHUTDOWN":
		return "PUT", "/2/instances/" + o.name + "/shutdown"
	}
	path = "/2/tags"
	if o.kind != "cluster" {
		path = "/2/" + o.kind + "s/" + o.name + "/tags"
	}
	method = "PUT"
	if o.op == "OP_TAGS_DEL" {
		method = "DELETE"
	}
	return method, path + "?tag=" + url.QueryEscape(o.tags[0])
}

// opCode is the opcode for the typed SubmitJob.
func (o foOp) opCode() *rapiv2.OpCode {
	kind := map[string]rapiv2.TagKind{"cluster": rapiv2.TagKind_TAG_KIND_CLUSTER,
		"node": rapiv2.TagKind_TAG_KIND_NODE, "instance": rapiv2.TagKind_TAG_KIND_INSTANCE}[o.kind]
	var name *string
	if o.kind != "cluster" {
		name = proto.String(o.name)
	}
	switch o.op {
	case "OP_TAGS_SET":
		return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Kind: kind.Enum(), Name: name, Tags: o.tags}}}
	case "OP_TAGS_DEL":
		return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsDel{TagsDel: &rapiv2.OpTagsDel{Kind: kind.Enum(), Name: name, Tags: o.tags}}}
	case "OP_INSTANCE_STARTUP":
		return &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceStartup{InstanceStartup: &rapiv2.OpInstanceStartup{InstanceName: proto.String(o.name)}}}
	case "OP_TEST_DELAY":
		return &rapiv2.OpCode{Op: &rapiv2.OpCode_TestDelay{TestDelay: &rapiv2.OpTestDelay{Duration: proto.Float64(o.delay)}}}
	}
	return &rapiv2.OpCode{Op: &rapiv2.OpCode_InstanceShutdown{InstanceShutdown: &rapiv2.OpInstanceShutdown{InstanceName: proto.String(o.name)}}}
}

// parseOp reads an opcode of a job as the legacy surface shows it.
func parseOp(m map[string]any) (foOp, error) {
	id, _ := m["OP_ID"].(string)
	switch id {
	case "OP_TAGS_SET", "OP_TAGS_DEL":
		o := foOp{op: id}
		o.kind, _ = m["kind"].(string)
		if o.kind != "cluster" {
			o.name, _ = m["name"].(string)
		}
		tags, _ := m["tags"].([]any)
		for _, tag := range tags {
			s, _ := tag.(string)
			o.tags = append(o.tags, s)
		}
		return o, nil
	case "OP_INSTANCE_STARTUP", "OP_INSTANCE_SHUTDOWN":
		name, _ := m["instance_name"].(string)
		return foOp{op: id, name: name}, nil
	case "OP_TEST_DELAY":
		d, _ := m["duration"].(float64)
		return foOp{op: id, delay: d}, nil
	}
	return foOp{}, fmt.Errorf("opcode %v is not one of the burst's", id)
}

// foJob is a job of the burst and what its submission got.
type foJob struct {
	ops     []foOp
	grpc    bool // submitted with the typed SubmitJob (else the legacy route of its one opcode)
	mayFail int  // the opcode that must fail (-1: none)

	via       string // the replica it went to
	call, ret int64  // on the history's clock
	id        int64  // 0: not acknowledged
	err       string
}

func (j *foJob) key() string {
	var keys []string
	for _, o := range j.ops {
		keys = append(keys, o.key())
	}
	return strings.Join(keys, " | ")
}

// burstJobs are the jobs of the burst: every opcode adds a tag of its
// own, deletes a seeded tag no other deletes, or starts or stops an
// instance no other touches, so their effects commute and the state after
// them does not depend on their order.
func burstJobs() []*foJob {
	var jobs []*foJob
	for i := range foJobs {
		k := i / 10
		node, inst := foNodes[k%3], foInstance(k)
		tag, multi := fmt.Sprintf("b%d", i), fmt.Sprintf("m%d", i)
		j := &foJob{mayFail: -1}
		switch i % 10 {
		case 0:
			j.ops = []foOp{tagsOp("OP_TAGS_SET", "cluster", "", tag)}
		case 1:
			j.ops, j.grpc = []foOp{tagsOp("OP_TAGS_SET", "cluster", "", tag)}, true
		case 2:
			j.ops = []foOp{tagsOp("OP_TAGS_SET", "node", node, tag)}
		case 3:
			j.ops = []foOp{tagsOp("OP_TAGS_SET", "instance", inst, tag)}
		case 4:
			j.ops = []foOp{tagsOp("OP_TAGS_DEL", "cluster", "", fmt.Sprintf("seed-c-%d", k))}
		case 5:
			j.ops = []foOp{tagsOp("OP_TAGS_DEL", "node", node, fmt.Sprintf("seed-n-%d", k))}
		case 6:
			j.ops = []foOp{tagsOp("OP_TAGS_DEL", "instance", inst, fmt.Sprintf("seed-i-%d-a", k))}
		case 7:
			op := "OP_INSTANCE_SHUTDOWN"
			if k%2 == 1 {
				op = "OP_INSTANCE_STARTUP"
			}
			j.ops = []foOp{{op: op, name: inst}}
		case 8:
			j.ops, j.grpc = []foOp{tagsOp("OP_TAGS_SET", "cluster", "", multi), tagsOp("OP_TAGS_SET", "node", node, multi),
				tagsOp("OP_TAGS_DEL", "instance", inst, fmt.Sprintf("seed-i-%d-b", k))}, true
		case 9:
			if k%2 == 0 {
				j.ops, j.grpc = []foOp{tagsOp("OP_TAGS_SET", "instance", inst, multi),
					tagsOp("OP_TAGS_DEL", "cluster", "", "never"+multi), // no such tag
					tagsOp("OP_TAGS_SET", "cluster", "", multi+"z")}, true
				j.mayFail = 1
				break
			}
			// A pause between two opcodes. The submissions before the
			// kill's are acknowledged some 0.5 s later: jobs with a longer
			// pause some sixty submissions before it are likely to be
			// running when it comes.
			delay := 0.2
			if i >= foJobs/3-60 && i < foJobs/3 {
				delay = 2
			}
			j.ops, j.grpc = []foOp{tagsOp("OP_TAGS_SET", "instance", inst, multi), {op: "OP_TEST_DELAY", delay: delay},
				tagsOp("OP_TAGS_SET", "cluster", "", multi+"z")}, true
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// failoverClient is the HTTP client of the burst: enough connections for
// every submitter and reader, and a bound on each request.
func failoverClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: foParallel + foReaders + 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}
}

// submit sends the job to g and returns its id, or what went wrong.
func (j *foJob) submit(client *http.Client, g *gatewayReplica) (int64, string) {
	if j.grpc {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var ops []*rapiv2.OpCode
		for _, o := range j.ops {
			ops = append(ops, o.opCode())
		}
		resp, err := g.jobs.SubmitJob(ctx, &rapiv2.SubmitJobRequest{Ops: ops})
		if err != nil {
			return 0, err.Error()
		}
		return resp.GetJobId(), ""
	}
	method, path := j.ops[0].route()
	return submitLegacy(client, method, g.base+path)
}

// readJob reads a job by id on g: ok is false when g gave no answer.
func readJob(client *http.Client, g *gatewayReplica, id int64) (out linOutput, ok bool) {
	resp, err := client.Get(fmt.Sprintf("%s/2/jobs/%d", g.base, id))
	if err != nil {
		return out, false
	}
	defer resp.Body.Close()
	var j struct {
		ID       *int64   `json:"id"`
		Status   string   `json:"status"`
		OpStatus []string `json:"opstatus"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&j) != nil {
		return out, false
	}
	if j.ID == nil {
		return out, true // Ganeti answers an unknown job with nulls
	}
	return linOutput{Exists: true, Status: j.Status, OpStatus: strings.Join(j.OpStatus, ",")}, true
}

// getJSONFrom decodes a GET's answer (200 only).
func getJSONFrom(client *http.Client, target string, v any) error {
	resp, err := client.Get(target)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d %s", resp.Request.URL.Redacted(), resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// clusterState reads what the burst may change, as a set of facts:
// "cluster tag T", "node N tag T", "instance I tag T", "instance I admin
// up|down".
func clusterState(client *http.Client, base string) (map[string]bool, error) {
	facts := map[string]bool{}
	var tags []string
	if err := getJSONFrom(client, base+"/2/tags", &tags); err != nil {
		return nil, err
	}
	for _, tag := range tags {
		facts["cluster tag "+tag] = true
	}
	var nodes []struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := getJSONFrom(client, base+"/2/nodes?bulk=1", &nodes); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		for _, tag := range n.Tags {
			facts["node "+n.Name+" tag "+tag] = true
		}
	}
	var insts []struct {
		Name       string   `json:"name"`
		Tags       []string `json:"tags"`
		AdminState string   `json:"admin_state"`
	}
	if err := getJSONFrom(client, base+"/2/instances?bulk=1", &insts); err != nil {
		return nil, err
	}
	for _, in := range insts {
		for _, tag := range in.Tags {
			facts["instance "+in.Name+" tag "+tag] = true
		}
		facts["instance "+in.Name+" admin "+in.AdminState] = true
	}
	return facts, nil
}

// listedJob is a job of /2/jobs?bulk=1.
type listedJob struct {
	ID       int64            `json:"id"`
	Status   string           `json:"status"`
	Ops      []map[string]any `json:"ops"`
	OpStatus []string         `json:"opstatus"`
}

// failoverRun is one run of TestEtcdFailoverUnderLoad.
type failoverRun struct {
	t       *testing.T
	members []*etcdMember
	reps    []*gatewayReplica
	leader  *gatewayReplica // before the kill
	client  *http.Client
	seed    map[string]bool // the cluster before the burst (clusterState)
	hist    *linHistory
	jobs    []*foJob

	mu    sync.Mutex
	acked []int64 // ids, in the order of the acknowledgements

	killAt int64 // on hist's clock
	victim string
}

func testFailover(t *testing.T, killEtcd bool) {
	start := time.Now()
	r := &failoverRun{t: t, members: startEtcdCluster(t), client: failoverClient(t), hist: newLinHistory(), jobs: burstJobs()}
	r.reps, r.leader = startGatewayReplicas(t, r.members, "--cluster-file", failoverClusterFile(t))
	var err error
	if r.seed, err = clusterState(r.client, r.leader.base); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cluster tag seed-c-49", "node node2.example.com tag seed-n-49", "instance fo49.example.com tag seed-i-49-b",
		"instance fo48.example.com admin up", "instance fo49.example.com admin down"} {
		if !r.seed[f] {
			t.Fatalf("the seeded cluster has no %q", f)
		}
	}
	t.Logf("etcd and three replicas up in %v; %s leads", time.Since(start).Round(time.Millisecond), r.leader.name)

	stopReaders := r.startReaders()
	burstTook, killed := r.burst(killEtcd)
	<-killed
	list, survivors := r.waitFinal()
	stopReaders()

	for _, g := range r.reps {
		g.mu.Lock()
		for _, why := range g.restarts {
			t.Logf("%s exited on its own and was restarted: %s", g.name, why)
		}
		g.mu.Unlock()
		if !g.killed.Load() && !g.alive() {
			t.Errorf("%s is not running:\n%s", g.name, lastLines(g.proc().Logs(), 15))
		}
	}
	expected, why := r.checkQueue(list, survivors)
	r.checkCluster(survivors, expected, why)

	failover := time.Duration(-1)
	for _, j := range r.jobs {
		if j.id != 0 && j.call >= r.killAt && (failover < 0 || time.Duration(j.ret-r.killAt) < failover) {
			failover = time.Duration(j.ret - r.killAt)
		}
	}
	if failover < 0 {
		t.Errorf("no job was accepted after the kill of %s", r.victim)
	}
	t.Logf("failover: killed %s after %d of %d submissions; the first job submitted after the kill was accepted %v after it",
		r.victim, foJobs/3, foJobs, failover.Round(time.Millisecond))
	t.Logf("the burst took %v", burstTook.Round(time.Millisecond))
	r.hist.check(t, 60*time.Second)
	t.Logf("whole run %v", time.Since(start).Round(time.Millisecond))
}

func (r *failoverRun) alive() []*gatewayReplica {
	var out []*gatewayReplica
	for _, g := range r.reps {
		if g.alive() {
			out = append(out, g)
		}
	}
	return out
}

// pick returns a random running replica, another than not if it can (nil
// when none runs).
func (r *failoverRun) pick(not *gatewayReplica) *gatewayReplica {
	live := r.alive()
	if len(live) > 1 && not != nil {
		live = slices.DeleteFunc(live, func(g *gatewayReplica) bool { return g == not })
	}
	if len(live) == 0 {
		return nil
	}
	return live[rand.IntN(len(live))]
}

// read reads job id on g into the history.
func (r *failoverRun) read(client int, g *gatewayReplica, id int64) {
	call := r.hist.now()
	if out, ok := readJob(r.client, g, id); ok {
		r.hist.read(client, g.name, id, call, r.hist.now(), out)
	}
}

// startReaders starts the readers: each reads a job already acknowledged
// (half of the time one of the last twenty) on a random replica, again
// and again, until the function it returns is called.
func (r *failoverRun) startReaders() (stop func()) {
	done := make(chan struct{})
	var readers sync.WaitGroup
	for n := range foReaders {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				r.mu.Lock()
				var id int64
				if len(r.acked) > 0 {
					i := rand.IntN(len(r.acked))
					if rand.IntN(2) == 0 {
						i = len(r.acked) - 1 - rand.IntN(min(len(r.acked), 20))
					}
					id = r.acked[i]
				}
				r.mu.Unlock()
				g := r.pick(nil)
				if id == 0 || g == nil {
					time.Sleep(5 * time.Millisecond) // nothing to read yet
					continue
				}
				r.read(foParallel+n, g, id)
			}
		})
	}
	return func() { close(done); readers.Wait() }
}

// burst submits the jobs, foParallel at a time, each through a random
// running replica, and reads each acknowledged one back at once on
// another; before the third of them it kills the leader (the gateway's or
// etcd's). killed is closed once the leader's successor is known.
func (r *failoverRun) burst(killEtcd bool) (took time.Duration, killed chan struct{}) {
	killed = make(chan struct{})
	var killOnce sync.Once
	work := make(chan int)
	var submitters sync.WaitGroup
	for w := range foParallel {
		submitters.Go(func() {
			for i := range work {
				if i == foJobs/3 {
					killOnce.Do(func() { r.kill(killEtcd, killed) })
				}
				j := r.jobs[i]
				g := r.pick(nil)
				if g == nil {
					j.err = "no replica runs"
					continue
				}
				j.via, j.call = g.name, r.hist.now()
				j.id, j.err = j.submit(r.client, g)
				j.ret = r.hist.now()
				r.hist.submitted(w, g.name, len(j.ops), j.call, j.ret, j.id)
				if j.id == 0 {
					continue
				}
				r.mu.Lock()
				r.acked = append(r.acked, j.id)
				r.mu.Unlock()
				if other := r.pick(g); other != nil {
					r.read(w, other, j.id)
				}
			}
		})
	}
	start := time.Now()
	for i := range foJobs {
		work <- i
	}
	close(work)
	submitters.Wait()
	return time.Since(start), killed
}

// kill sends SIGKILL to the gateway that leads, or to the etcd member
// that leads, and closes killed once another leads.
func (r *failoverRun) kill(killEtcd bool, killed chan struct{}) {
	t := r.t
	if !killEtcd {
		r.victim = "the gateway leader " + r.leader.name
		r.killAt = r.hist.now()
		r.leader.kill()
		start := time.Now()
		go func() {
			defer close(killed)
			for time.Since(start) < 30*time.Second {
				for _, g := range r.reps {
					if g != r.leader && g.leads() {
						t.Logf("%s leads %v after the kill", g.name, time.Since(start).Round(time.Millisecond))
						return
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Error("no replica took over within 30 s")
		}()
		return
	}
	m := etcdLeader(healthClient, r.members, 10*time.Second)
	if m == nil {
		t.Error("no etcd member leads")
		close(killed)
		return
	}
	r.victim = "the etcd leader " + m.client
	r.killAt = r.hist.now()
	m.kill()
	start := time.Now()
	go func() {
		defer close(killed)
		if etcdLeader(healthClient, r.members, 30*time.Second) == nil {
			t.Error("the surviving etcd members elected no leader within 30 s")
			return
		}
		t.Logf("the surviving etcd members have a leader %v after the kill", time.Since(start).Round(time.Millisecond))
	}()
}

// waitFinal waits until the queue holds every acknowledged job and every
// job it holds (also those whose submission was not acknowledged) ended,
// and returns them with the replicas that run.
func (r *failoverRun) waitFinal() ([]listedJob, []*gatewayReplica) {
	t := r.t
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		survivors := r.alive()
		if len(survivors) == 0 {
			t.Fatal("no replica runs")
		}
		var list []listedJob
		err := getJSONFrom(r.client, survivors[0].base+"/2/jobs?bulk=1", &list)
		var pending []string
		listed := map[int64]bool{}
		for _, j := range list {
			listed[j.ID] = true
			if !backend.Finalized(j.Status) {
				pending = append(pending, fmt.Sprintf("%d %s", j.ID, j.Status))
			}
		}
		for _, id := range r.acked {
			if !listed[id] {
				pending = append(pending, fmt.Sprintf("%d not listed", id))
			}
		}
		if err == nil && len(pending) == 0 {
			return list, survivors
		}
		if time.Now().After(deadline) {
			for _, g := range r.reps {
				t.Logf("%s: runs %v, leads %v; log:\n%s", g.name, g.alive(), g.leads(), lastLines(notAccess(g.proc().Logs()), 40))
			}
			t.Fatalf("the jobs did not end within 60 s (%v): %d: %s", err, len(pending), strings.Join(pending[:min(len(pending), 20)], ", "))
		}
	}
}

// checkQueue checks the jobs the queue holds against the submissions:
// each submission is at most one job, an acknowledged one is the job of
// its id, no job comes from elsewhere, no opcode succeeds after one
// failed, and none that cannot succeed did; every survivor lists the same
// jobs. It returns the cluster the opcodes that succeeded make of the
// seed, and for each fact the opcodes that change it.
func (r *failoverRun) checkQueue(list []listedJob, survivors []*gatewayReplica) (expected map[string]bool, why map[string][]string) {
	t := r.t
	expected, why = maps.Clone(r.seed), map[string][]string{}
	byKey := map[string]listedJob{}
	ids := map[int64]bool{}
	var succeeded, errored int
	for _, lj := range list {
		if ids[lj.ID] {
			t.Errorf("job %d listed twice", lj.ID)
		}
		ids[lj.ID] = true
		var ops []foOp
		for _, m := range lj.Ops {
			o, err := parseOp(m)
			if err != nil {
				t.Errorf("job %d: %v", lj.ID, err)
			}
			ops = append(ops, o)
		}
		if len(lj.OpStatus) != len(ops) {
			t.Errorf("job %d: %d opcodes, %d statuses", lj.ID, len(ops), len(lj.OpStatus))
			continue
		}
		k := (&foJob{ops: ops}).key()
		if prev, dup := byKey[k]; dup {
			t.Errorf("jobs %d and %d are the same submission (%s): it ran twice", prev.ID, lj.ID, k)
		}
		byKey[k] = lj
		failed := false
		for i, o := range ops {
			st := lj.OpStatus[i]
			if failed && st == "success" {
				t.Errorf("job %d: opcode %d succeeded after a failed one: %v", lj.ID, i, lj.OpStatus)
			}
			failed = failed || st != "success"
			add, remove := o.effects()
			for _, f := range append(add, remove...) {
				why[f] = append(why[f], fmt.Sprintf("job %d opcode %d %s", lj.ID, i, st))
			}
			if st != "success" {
				continue
			}
			for _, f := range remove {
				delete(expected, f)
			}
			for _, f := range add {
				expected[f] = true
			}
		}
		if lj.Status == "success" {
			succeeded++
		} else {
			errored++
		}
	}
	acked, created := 0, 0
	refusals := map[string]int{}
	for _, j := range r.jobs {
		lj, exists := byKey[j.key()]
		delete(byKey, j.key())
		switch {
		case j.id != 0 && !exists:
			t.Errorf("acknowledged job %d (%s, via %s) is lost", j.id, j.key(), j.via)
		case j.id != 0 && lj.ID != j.id:
			t.Errorf("the job acknowledged as %d (via %s) is job %d", j.id, j.via, lj.ID)
		case j.id == 0 && exists:
			created++
		}
		if j.id != 0 {
			acked++
		} else {
			e := j.err
			if i := strings.Index(e, "\": "); i > 0 && (strings.HasPrefix(e, "Put \"") || strings.HasPrefix(e, "Delete \"")) {
				e = e[i+3:] // without the URL
			}
			refusals[e[:min(len(e), 100)]]++
		}
		if exists && j.mayFail >= 0 && lj.OpStatus[j.mayFail] == "success" {
			t.Errorf("job %d: opcode %d (%s) cannot succeed: %v", lj.ID, j.mayFail, j.ops[j.mayFail].key(), lj.OpStatus)
		}
	}
	for k, lj := range byKey {
		t.Errorf("job %d (%s) was never submitted", lj.ID, k)
	}
	unclean, partly := uncleanJobs(t, r.client, survivors[0], list)
	t.Logf("%d jobs: %d acknowledged, %d not (%d of which exist); the queue holds %d: "+
		"%d succeeded, %d failed (%d by \"Unclean master daemon shutdown\", %d of them after opcodes that succeeded)",
		foJobs, acked, foJobs-acked, created, len(list), succeeded, errored, unclean, partly)
	for e, n := range refusals {
		t.Logf("  %d not acknowledged: %s", n, e)
	}
	if acked < foJobs/2 {
		t.Errorf("only %d of %d jobs acknowledged", acked, foJobs)
	}
	want := map[int64]string{}
	for _, lj := range list {
		want[lj.ID] = strings.Join(lj.OpStatus, ",")
	}
	for _, g := range survivors[1:] {
		var other []listedJob
		if err := getJSONFrom(r.client, g.base+"/2/jobs?bulk=1", &other); err != nil {
			t.Errorf("%s: %v", g.name, err)
			continue
		}
		got := map[int64]string{}
		for _, lj := range other {
			got[lj.ID] = strings.Join(lj.OpStatus, ",")
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s lists other jobs than %s", g.name, survivors[0].name)
		}
	}
	return expected, why
}

// checkCluster compares the cluster on every survivor with expected.
func (r *failoverRun) checkCluster(survivors []*gatewayReplica, expected map[string]bool, why map[string][]string) {
	for _, g := range survivors {
		got, err := clusterState(r.client, g.base)
		if err != nil {
			r.t.Errorf("%s: %v", g.name, err)
			continue
		}
		var diffs []string
		for f := range expected {
			if !got[f] {
				diffs = append(diffs, fmt.Sprintf("missing %q (%s)", f, strings.Join(why[f], "; ")))
			}
		}
		for f := range got {
			if !expected[f] {
				diffs = append(diffs, fmt.Sprintf("unexpected %q (%s)", f, strings.Join(why[f], "; ")))
			}
		}
		sort.Strings(diffs)
		if len(diffs) > 0 {
			r.t.Errorf("%s: the cluster is not the seed changed by the opcodes that succeeded: %d differences:\n%s",
				g.name, len(diffs), strings.Join(diffs[:min(len(diffs), 20)], "\n"))
		}
	}
}

// uncleanJobs counts the jobs a leader's crash ended ("Unclean master
// daemon shutdown"), and those of them with opcodes that succeeded before
// (partly applied), and checks that every failed opcode failed for a
// reason the burst expects.
func uncleanJobs(t *testing.T, client *http.Client, g *gatewayReplica, list []listedJob) (unclean, partly int) {
	t.Helper()
	for _, lj := range list {
		if lj.Status != "error" {
			continue
		}
		var j struct {
			OpResult []any `json:"opresult"`
		}
		if err := getJSONFrom(client, fmt.Sprintf("%s/2/jobs/%d", g.base, lj.ID), &j); err != nil {
			t.Error(err)
			continue
		}
		crashed, succeeded := false, false
		for i, res := range j.OpResult {
			if lj.OpStatus[i] == "success" {
				succeeded = true
				continue
			}
			b, _ := json.Marshal(res)
			switch s := string(b); {
			case strings.Contains(s, "Unclean master daemon shutdown"):
				crashed = true
			case strings.Contains(s, "Preceding opcode failed"), strings.Contains(s, "Tag(s) 'neverm"):
			default:
				t.Errorf("job %d opcode %d failed: %s", lj.ID, i, s)
			}
		}
		if crashed {
			unclean++
			if succeeded {
				partly++
			}
		}
	}
	return unclean, partly
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// exitReason is the error a server printed when it exited.
func exitReason(logs string) string {
	lines := strings.Split(strings.TrimRight(logs, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "ganeti-gateway: ") {
			return lines[i]
		}
	}
	return "(no error: " + lastLines(logs, 1) + ")"
}

// notAccess drops the access log lines.
func notAccess(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if !strings.Contains(l, `"msg":"access"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
