package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory (root only);
// the test is skipped where mounting is impossible, and fails under CI=true.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		skipOrFailInCI(t, fmt.Sprintf("cannot mount a tmpfs (needs root): %v %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the filesystem of dir is full, then gives back
// leave bytes.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				st, err := f.Stat()
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Truncate(max(st.Size()-leave, 0)); err != nil {
					t.Fatal(err)
				}
				return path
			}
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
}

var adminAddrRE = regexp.MustCompile(`"msg":"admin listener","addr":"([^"]+)"`)

// TestDiskFull puts the data dir on a small tmpfs and fills it while jobs
// are submitted: every submission is either refused or acknowledged; the
// server reports NOT_SERVING (gRPC health and /healthz) once the store
// refuses a commit; after space returns and a restart, every acknowledged
// job exists, any final status a client saw is the one it has, every job
// ends, and the cluster's tags are exactly those of the succeeded jobs.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server twice")
	}
	dir := mountTmpfs(t, 8<<20)
	data := filepath.Join(dir, "data")
	args := []string{"--insecure", "--write-rate", "off", "--max-waiters", "-1", "--admin-listen", "127.0.0.1:0", "--metrics-prometheus"}
	p := startServer(t, data, args...)
	admin := "http://" + adminAddr(t, p)
	client := &http.Client{Timeout: 20 * time.Second}
	base := "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr
	if code := httpStatus(t, client, admin+"/healthz"); code != 200 {
		t.Fatalf("/healthz before the disk is full: %d", code)
	}
	if v := healthServing(t, adminAddr(t, p)); v != 1 {
		t.Errorf("ganeti_gateway_health_serving before the disk is full: %v, want 1", v)
	}
	// Room for some jobs: the store fills it while jobs run.
	filler := fill(t, dir, 192<<10)

	type acked struct {
		id  int64
		tag string
	}
	var (
		mu      sync.Mutex
		ack     []acked
		refused int
		seen    = map[int64]string{} // final statuses clients saw
	)
	putTag := func(tag string) (int64, int) {
		req, _ := http.NewRequest("PUT", base+"/2/tags?tag="+tag, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("PUT %s: %v", tag, err)
			return 0, 0
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var id int64
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(body, &id); err != nil {
				t.Errorf("PUT %s: %s", tag, body)
			}
		} else if resp.StatusCode != 503 {
			t.Errorf("PUT %s: %d %s, want 200 or 503", tag, resp.StatusCode, body)
		}
		return id, resp.StatusCode
	}
	// Submit until the queue stops taking jobs (each job is a few KB of
	// records; the store grows until the filesystem refuses).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var stopOnce sync.Once
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tag := fmt.Sprintf("df-%d-%05d-%s", w, i, padding)
				id, code := putTag(tag)
				mu.Lock()
				if code == 200 {
					ack = append(ack, acked{id, tag})
				} else if code == 503 {
					refused++
					if refused >= 20 {
						stopOnce.Do(func() { close(stop) })
					}
				}
				mu.Unlock()
				if id > 0 {
					var j struct {
						Status string `json:"status"`
					}
					getJSON(t, client, fmt.Sprintf("%s/2/jobs/%d", base, id), &j)
					if j.Status == "success" || j.Status == "error" || j.Status == "canceled" {
						mu.Lock()
						seen[id] = j.Status
						mu.Unlock()
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		stopOnce.Do(func() { close(stop) })
		<-done
		t.Fatalf("the store never refused a write (%d jobs acknowledged)", len(ack))
	}
	t.Logf("%d jobs acknowledged, %d submissions refused", len(ack), refused)

	if code := httpStatus(t, client, admin+"/healthz"); code != 503 {
		t.Errorf("/healthz while the store refuses writes: %d, want 503", code)
	}
	if v := healthServing(t, adminAddr(t, p)); v != 0 {
		t.Errorf("ganeti_gateway_health_serving while the store refuses writes: %v, want 0", v)
	}
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hr, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health while the store refuses writes: %v %v, want NOT_SERVING", hr.GetStatus(), err)
	}
	// Reads still answer, from what was committed.
	if code := httpStatus(t, client, base+"/2/info"); code != 200 {
		t.Errorf("GET /2/info while the store refuses writes: %d", code)
	}
	p.Stop(t)

	// Space returns; the server restarts on the same store.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	p2 := startServer(t, data, args...)
	base = "http://" + e2eUser + ":" + e2ePassword + "@" + p2.Addr
	jobs := waitJobsEnded(t, client, base, 60*time.Second)
	byID := map[int64]k9Job{}
	for _, j := range jobs {
		byID[j.ID] = j
	}
	for _, a := range ack {
		j, ok := byID[a.id]
		if !ok {
			t.Errorf("acknowledged job %d (%s) is lost", a.id, a.tag)
			continue
		}
		if _, tag := j.tagOp(); tag != a.tag {
			t.Errorf("job %d: tag %q, submitted %q", a.id, tag, a.tag)
		}
		if s, ok := seen[a.id]; ok && s != j.Status {
			t.Errorf("job %d was shown %s, reads %s after the restart", a.id, s, j.Status)
		}
	}
	want := []string{}
	for _, j := range jobs {
		if _, tag := j.tagOp(); j.Status == "success" {
			want = append(want, tag)
		}
	}
	var tags []string
	getJSON(t, client, base+"/2/tags", &tags)
	tags = slices.DeleteFunc(tags, func(s string) bool { return !regexp.MustCompile(`^df-`).MatchString(s) })
	sort.Strings(tags)
	sort.Strings(want)
	if !slices.Equal(tags, want) {
		t.Errorf("tags after the restart: %d, succeeded tag jobs: %d", len(tags), len(want))
	}
	t.Logf("after the restart: %d jobs, %d succeeded", len(jobs), len(want))
}

// padding makes each job record larger, so the store fills the tmpfs
// sooner.
var padding = strings.Repeat("x", 80)

// adminAddr is the admin listener's address, from p's log.
func adminAddr(t *testing.T, p *serverProcess) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := adminAddrRE.FindStringSubmatch(p.Logs()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no admin listener address in the log:\n%s", p.Logs())
	return ""
}

func httpStatus(t *testing.T, client *http.Client, url string) int {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
