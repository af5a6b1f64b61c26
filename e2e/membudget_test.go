package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// procStatusKB reads a field (VmHWM, VmRSS) of /proc/<pid>/status, in kB.
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		skipOrFailInCI(t, "no /proc/<pid>/status to read the server's memory from: "+err.Error())
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestMemoryBudget is issue 10's memory budget, against the real binary
// (built without the race detector even when the tests run with -race:
// the server is a process of its own, and its memory is what is measured).
//
// Part 1: 50 concurrent worst-case requests of a read-only user, the
// largest query the default limits allow: every instance field of a
// cluster of 2,300 instances (a result of about 7.6 MB, just under the
// 8 MiB --max-query-result-bytes), 30 of them as GET and 10 as PUT with a
// filter of 8,000 comparisons (a body of about 200 KB, within the 256 KiB
// query body limit); 10 more GET half the fields (about 3.8 MB: two fit
// the query memory budget at once). Each is answered, or refused with 429 and
// Retry-After when it waited too long for the query memory budget; the
// server's peak RSS (VmHWM) stays under 512 MB.
//
// Part 2: 10,000 anonymous idle gRPC health watches, over 20 connections,
// against a fresh server: those beyond --max-anonymous-per-peer (64) are
// refused with ResourceExhausted, the others stay open, the server still
// answers, and its peak RSS stays under 256 MB. (Before these limits the
// server accepted every stream: 25,000 cost 545 MB.)
func TestMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("memory budget test skipped in -short mode")
	}
	t.Run("queries", testQueryMemoryBudget)
	t.Run("anonymous streams", testAnonymousStreamBudget)
}

func testQueryMemoryBudget(t *testing.T) {
	p := startServer(t, "", "--insecure", "--cluster-file", bigClusterFile(t, 2300))
	pid := p.cmd.Process.Pid
	base := "http://" + p.Addr

	defs, err := rapiv2.NewQueryServiceClient(dialGRPC(t, "http://reader:readpass@"+p.Addr)).QueryFields(context.Background(),
		&rapiv2.QueryFieldsRequest{Resource: "instance"})
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, d := range defs.GetFields() {
		fields = append(fields, d.GetName())
	}
	var filter strings.Builder
	filter.WriteString(`["|",["=","os","noop"]`)
	for i := 1; i < 8000; i++ {
		fmt.Fprintf(&filter, `,["=","os","other%d"]`, i)
	}
	filter.WriteString("]")
	fieldsJSON, _ := json.Marshal(fields)
	putBody := `{"fields":` + string(fieldsJSON) + `,"qfilter":` + filter.String() + `}`
	if len(putBody) > 256<<10 {
		t.Fatalf("the PUT body has %d bytes, over the query body limit", len(putBody))
	}
	getURL := base + "/2/query/instance?fields=" + strings.Join(fields, ",")
	// Half the fields: about half the size, so that two fit the budget at
	// once (the worst case for its accounting).
	halfURL := base + "/2/query/instance?fields=" + strings.Join(fields[:len(fields)/2], ",")
	before := procStatusKB(t, pid, "VmRSS")

	client := &http.Client{Timeout: 2 * time.Minute}
	var mu sync.Mutex
	statuses := map[int]int{}
	var sizes []int
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req *http.Request
			switch i % 5 {
			case 4:
				req, _ = http.NewRequest("PUT", base+"/2/query/instance", strings.NewReader(putBody))
				req.Header.Set("Content-Type", "application/json")
			case 3:
				req, _ = http.NewRequest("GET", halfURL, nil)
			default:
				req, _ = http.NewRequest("GET", getURL, nil)
			}
			req.SetBasicAuth("reader", "readpass")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("query %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			n, _ := io.Copy(io.Discard, resp.Body)
			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			switch resp.StatusCode {
			case http.StatusOK:
				sizes = append(sizes, int(n))
			case http.StatusTooManyRequests:
				if resp.Header.Get("Retry-After") == "" {
					t.Errorf("query %d: 429 without Retry-After", i)
				}
			default:
				t.Errorf("query %d: %d", i, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	peak := procStatusKB(t, pid, "VmHWM")
	t.Logf("50 queries in %v: statuses %v; server RSS %d MB before, peak %d MB",
		time.Since(start).Round(time.Millisecond), statuses, before>>10, peak>>10)
	if statuses[http.StatusOK] == 0 {
		t.Errorf("no query was answered")
	}
	largest := 0
	for _, n := range sizes {
		largest = max(largest, n)
	}
	if largest < 7<<20 {
		t.Errorf("the largest answer has %d bytes: not a worst case", largest)
	}
	if peak >= 512<<10 {
		t.Errorf("the server's peak RSS was %d MB, over 512 MB", peak>>10)
	}
}

func testAnonymousStreamBudget(t *testing.T) {
	p := startServer(t, "", "--insecure")
	pid := p.cmd.Process.Pid
	const total, conns, workers = 10000, 20, 400
	var cc []*grpc.ClientConn
	for i := 0; i < conns; i++ {
		c, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cc = append(cc, c)
	}
	// A stream that cannot even start (beyond every connection's stream
	// limit, had the admitted ones no cap) ends with the phase.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	admitted, refused := 0, 0
	others := map[string]int{}
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// An admitted stream stays open, idle, until the end.
				stream, err := healthpb.NewHealthClient(cc[i%conns]).Watch(ctx, &healthpb.HealthCheckRequest{})
				if err == nil {
					_, err = stream.Recv()
				}
				mu.Lock()
				switch {
				case err == nil:
					admitted++
				case status.Code(err) == codes.ResourceExhausted:
					refused++
				default:
					others[status.Code(err).String()]++
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < total; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	peak := procStatusKB(t, pid, "VmHWM")
	t.Logf("%d anonymous watches in %v: %d admitted, %d refused, others %v; server peak RSS %d MB",
		total, time.Since(start).Round(time.Millisecond), admitted, refused, others, peak>>10)
	if admitted == 0 || admitted > 64 || refused != total-admitted || len(others) > 0 {
		t.Errorf("admitted %d (cap 64), refused %d, others %v", admitted, refused, others)
	}
	if peak >= 256<<10 {
		t.Errorf("the server's peak RSS was %d MB, over 256 MB", peak>>10)
	}
	// The server still answers, anonymous callers included once others
	// have gone, and users at once.
	conn := dialGRPC(t, "http://"+e2eUser+":"+e2ePassword+"@"+p.Addr)
	if _, err := rapiv2.NewClusterServiceClient(conn).GetInfo(context.Background(), &rapiv2.GetInfoRequest{}); err != nil {
		t.Errorf("GetInfo with credentials while the anonymous streams are open: %v", err)
	}
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = healthpb.NewHealthClient(c).Check(context.Background(), &healthpb.HealthCheckRequest{})
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("anonymous health check after the watches ended: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
