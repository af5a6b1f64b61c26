package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// TestKill9 checks the job engine's crash semantics (internal/sim/jobs/doc.go,
// "Crash safety") on the real binary: 500 tag jobs are submitted
// concurrently over the legacy surface, the process gets SIGKILL after about
// half of them were acknowledged, and a new process on the same data dir
// must end every job: none is lost, queued jobs run to success, a job that
// was running ends as error "Unclean master daemon shutdown", and the
// cluster's tags are exactly those of the successful jobs.
// It runs five times: each kill comes at another point of the queue's
// work.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server ten times")
	}
	for run := range 5 {
		t.Run(fmt.Sprintf("run%d", run), testKill9Once)
	}
}

func testKill9Once(t *testing.T) {
	const (
		total    = 500
		killAt   = 250 // acknowledgements before SIGKILL
		parallel = 48
		node     = "node1.example.com"
	)
	args := []string{"--insecure", "--write-rate", "off", "--max-waiters", "-1",
		"--cluster-file", "testdata/golden-cluster.json"}
	p := startServerInRepo(t, "", args...)

	type sub struct {
		id   int64
		kind string // "cluster" or "node"
		tag  string
	}
	var (
		mu     sync.Mutex
		acked  []sub
		perSeq = map[int][]int64{} // submitter -> ids, in submission order
		killed atomic.Bool
		killMu sync.Mutex
	)
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: parallel}}
	base := "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr
	kill := func() {
		killMu.Lock()
		defer killMu.Unlock()
		if killed.Load() {
			return
		}
		killed.Store(true)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Errorf("SIGKILL: %v", err)
		}
	}
	work := make(chan int, total)
	for i := range total {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for w := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if killed.Load() {
					return
				}
				s := sub{kind: "cluster", tag: fmt.Sprintf("k9-c-%03d", i)}
				path := "/2/tags?tag=" + s.tag
				if i%2 == 1 {
					s.kind, s.tag = "node", fmt.Sprintf("k9-n-%03d", i)
					path = "/2/nodes/" + node + "/tags?tag=" + s.tag
				}
				req, _ := http.NewRequest("PUT", base+path, nil)
				resp, err := client.Do(req)
				if err != nil {
					if !killed.Load() {
						t.Errorf("PUT %s: %v", path, err)
					}
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					if !killed.Load() {
						t.Errorf("PUT %s: %d %s %v", path, resp.StatusCode, body, err)
					}
					return
				}
				if err := json.Unmarshal(body, &s.id); err != nil || s.id <= 0 {
					t.Errorf("PUT %s: job id %q", path, body)
					return
				}
				mu.Lock()
				acked = append(acked, s)
				perSeq[w] = append(perSeq[w], s.id)
				n := len(acked)
				mu.Unlock()
				if n >= killAt {
					kill()
				}
			}
		}()
	}
	wg.Wait()
	kill() // in case fewer than killAt were acknowledged
	<-p.done
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d jobs acknowledged before SIGKILL", len(acked))
	if len(acked) < killAt {
		t.Fatalf("only %d acknowledgements", len(acked))
	}

	// Job ids are unique, and each submitter saw them increase.
	seen := map[int64]sub{}
	for _, s := range acked {
		if prev, dup := seen[s.id]; dup {
			t.Errorf("job id %d acknowledged twice (%s and %s)", s.id, prev.tag, s.tag)
		}
		seen[s.id] = s
	}
	for w, ids := range perSeq {
		if !slices.IsSorted(ids) {
			t.Errorf("submitter %d got decreasing job ids %v", w, ids)
		}
	}

	restartTS := time.Now()
	p2 := startServerInRepo(t, p.DataDir, args...)
	base = "http://" + e2eUser + ":" + e2ePassword + "@" + p2.Addr

	// Wait until every job has ended.
	jobs := waitJobsEnded(t, client, base, 30*time.Second)

	// No acknowledged job is lost; each has its opcode.
	byID := map[int64]k9Job{}
	for _, j := range jobs {
		if _, dup := byID[j.ID]; dup {
			t.Errorf("job %d listed twice", j.ID)
		}
		byID[j.ID] = j
	}
	ids := make([]int64, 0, len(jobs))
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	if !slices.IsSorted(ids) {
		t.Errorf("GET /2/jobs is not in increasing id order")
	}
	for _, s := range acked {
		var one k9Job
		getJSON(t, client, fmt.Sprintf("%s/2/jobs/%d", base, s.id), &one)
		if one.Status == "" {
			t.Errorf("acknowledged job %d (%s) is lost: %+v", s.id, s.tag, one)
			continue
		}
		if _, ok := byID[s.id]; !ok {
			t.Errorf("acknowledged job %d (%s) missing from GET /2/jobs", s.id, s.tag)
		}
		if kind, tag := one.tagOp(); kind != s.kind || tag != s.tag {
			t.Errorf("job %d: opcode tags %s %q, submitted %s %q", s.id, kind, tag, s.kind, s.tag)
		}
	}

	// Every job ended with success or with the unclean-shutdown error;
	// the jobs that had not started at the kill ran after the restart and
	// succeeded. The cluster's tags are those of the successful jobs, and
	// only those (acknowledged or not: a job whose answer the kill cut off
	// may have been persisted).
	unclean := `[["OpExecError",["Unclean master daemon shutdown"]]]`
	want := map[string][]string{"cluster": {}, "node": {}}
	var nSuccess, nUnclean, nAfterRestart int
	for _, j := range jobs {
		kind, tag := j.tagOp()
		if !strings.HasPrefix(tag, "k9-") {
			t.Errorf("unexpected job %d: %s", j.ID, tag)
			continue
		}
		// restartTS is after the old process died: a job that started
		// after it was queued at the kill.
		started := j.startedBefore(restartTS)
		switch j.Status {
		case "success":
			nSuccess++
			want[kind] = append(want[kind], tag)
			if !started {
				nAfterRestart++
			}
		case "error":
			if got := string(j.OpResult); got != unclean {
				t.Errorf("job %d: error %s, want %s", j.ID, got, unclean)
			}
			if !started {
				t.Errorf("job %d had not started at the kill but ended with %s", j.ID, j.OpResult)
			}
			nUnclean++
		default:
			t.Errorf("job %d: status %s", j.ID, j.Status)
		}
	}
	t.Logf("%d jobs after restart: %d success (%d ran after the restart), %d unclean shutdown; restart took %v",
		len(jobs), nSuccess, nAfterRestart, nUnclean, time.Since(restartTS).Round(time.Millisecond))
	var clusterTags, nodeTags []string
	getJSON(t, client, base+"/2/tags", &clusterTags)
	getJSON(t, client, base+"/2/nodes/"+node+"/tags", &nodeTags)
	for kind, have := range map[string][]string{"cluster": clusterTags, "node": nodeTags} {
		w := want[kind]
		sort.Strings(w)
		sort.Strings(have)
		if !reflect.DeepEqual(have, w) && !(len(have) == 0 && len(w) == 0) {
			t.Errorf("%s tags: %d, successful %s tag jobs: %d\nhave %v\nwant %v", kind, len(have), kind, len(w), have, w)
		}
	}

	// A job submitted after the restart gets a new, larger id.
	var next int64
	req, _ := http.NewRequest("PUT", base+"/2/tags?tag=k9-after", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(body, &next); err != nil {
		t.Fatalf("PUT after restart: %d %s", resp.StatusCode, body)
	}
	if len(ids) > 0 && next <= ids[len(ids)-1] {
		t.Errorf("job id after restart %d, not above the last id %d", next, ids[len(ids)-1])
	}
}

// startServerInRepo is startServer with the repository root as working
// directory, so relative --cluster-file paths resolve.
func startServerInRepo(t *testing.T, dataDir string, args ...string) *serverProcess {
	t.Helper()
	for i, a := range args {
		if i > 0 && args[i-1] == "--cluster-file" && !strings.HasPrefix(a, "/") {
			args[i] = filepath.Join(testutil.RepoRoot(t), a)
		}
	}
	return startServer(t, dataDir, args...)
}

// k9Job is the part of GET /2/jobs?bulk=1 that TestKill9 checks.
type k9Job struct {
	ID       int64             `json:"id"`
	Status   string            `json:"status"`
	Ops      []json.RawMessage `json:"ops"`
	OpResult json.RawMessage   `json:"opresult"`
	StartTS  []float64         `json:"start_ts"`
}

// tagOp returns the kind ("cluster" or "node") and the one tag of the
// job's one opcode.
func (j k9Job) tagOp() (kind, tag string) {
	if len(j.Ops) != 1 {
		return "", fmt.Sprintf("<%d opcodes>", len(j.Ops))
	}
	var op struct {
		OpID string   `json:"OP_ID"`
		Kind string   `json:"kind"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(j.Ops[0], &op); err != nil || op.OpID != "OP_TAGS_SET" || len(op.Tags) != 1 {
		return "", string(j.Ops[0])
	}
	return op.Kind, op.Tags[0]
}

// startedBefore says whether the job's start_ts ([sec, usec]) is before t.
func (j k9Job) startedBefore(t time.Time) bool {
	if len(j.StartTS) != 2 {
		return false
	}
	start := time.Unix(int64(j.StartTS[0]), int64(j.StartTS[1])*1000)
	return start.Before(t)
}

func getJSON(t *testing.T, client *http.Client, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s %v", url, resp.StatusCode, body, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}

// waitJobsEnded polls GET /2/jobs?bulk=1 until every job has ended, and
// returns them; it fails the test after timeout.
func waitJobsEnded(t *testing.T, client *http.Client, base string, timeout time.Duration) []k9Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var jobs []k9Job
		getJSON(t, client, base+"/2/jobs?bulk=1", &jobs)
		pending := 0
		for _, j := range jobs {
			if !slices.Contains([]string{"success", "error", "canceled"}, j.Status) {
				pending++
			}
		}
		if pending == 0 {
			return jobs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs did not end after the restart", pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
