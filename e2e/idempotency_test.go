package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestIdempotencyKeyRetries is the retry storm of a client (or a mesh)
// behind a flaky network, on the real binary: 100 concurrent copies of one
// write with one Idempotency-Key give one job; after kill -9 and a restart
// on the same data dir, the same request answers the same job id, the
// same key with another request is 409, and there is still one job.
func TestIdempotencyKeyRetries(t *testing.T) {
	const copies = 100
	p := startServerInRepo(t, "", "--insecure", "--write-rate", "off", "--cluster-file", "testdata/golden-cluster.json")
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: copies}}
	put := func(addr, tag string) (int, string) {
		req, _ := http.NewRequest("PUT", "http://"+addr+"/2/tags?tag="+tag, nil)
		req.SetBasicAuth(e2eUser, e2ePassword)
		req.Header.Set("Idempotency-Key", "e2e-retry-7f3a")
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	jobCount := func(addr string) int {
		var ids []json.RawMessage
		getJSON(t, client, "http://"+e2eUser+":"+e2ePassword+"@"+addr+"/2/jobs", &ids)
		return len(ids)
	}

	bodies := make([]string, copies)
	codes := make([]int, copies)
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() { codes[i], bodies[i] = put(p.Addr, "retried") })
	}
	wg.Wait()
	for i := range copies {
		if codes[i] != 200 || bodies[i] != bodies[0] {
			t.Fatalf("copy %d: %d %s; copy 0 got %d %s", i, codes[i], bodies[i], codes[0], bodies[0])
		}
	}
	if n := jobCount(p.Addr); n != 1 {
		t.Fatalf("%d jobs after %d copies of one keyed write, want 1", n, copies)
	}

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p2 := startServer(t, p.DataDir, "--insecure", "--write-rate", "off")
	if code, body := put(p2.Addr, "retried"); code != 200 || body != bodies[0] {
		t.Errorf("after kill -9 and a restart: %d %s, want 200 %s", code, body, bodies[0])
	}
	if code, body := put(p2.Addr, "another"); code != 409 {
		t.Errorf("same key, another request, after the restart: %d %s, want 409", code, body)
	}
	if n := jobCount(p2.Addr); n != 1 {
		t.Errorf("%d jobs after the restart, want 1", n)
	}
}
