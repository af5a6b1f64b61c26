package e2e

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestTagJobsLikeGaneti runs the cluster-tag write flow of the captures
// (seq 46–59) through the legacy surface and the job engine, and compares
// each job's status, opstatus and opresult with the captured job result.
func TestTagJobsLikeGaneti(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	captures := map[int]capture{}
	for _, c := range loadCaptures(t) {
		captures[c.Seq] = c
	}
	// submission seq -> job result seq
	flows := [][2]int{{46, 47}, {48, 49}, {51, 52}, {54, 55}, {56, 57}, {58, 59}}
	for _, f := range flows {
		sub, res := captures[f[0]], captures[f[1]]
		t.Run(sub.Label, func(t *testing.T) {
			status, _, body := do(t, sub.Method, base+sub.Path, "", "")
			if status != 200 {
				t.Fatalf("%s %s: %d %s", sub.Method, sub.Path, status, body)
			}
			var id int64
			if err := json.Unmarshal(body, &id); err != nil || id <= 0 {
				t.Fatalf("job id answer %q (captured %q)", body, sub.ResponseBody)
			}
			job := waitJob(t, base, id)
			var want map[string]any
			if err := json.Unmarshal([]byte(res.ResponseBody), &want); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"status", "opstatus", "opresult", "summary"} {
				if !reflect.DeepEqual(job[k], want[k]) {
					t.Errorf("%s: %v, captured %v", k, job[k], want[k])
				}
			}
		})
	}
	// The cluster's tags are those the successful jobs left (capture 53).
	_, _, body := do(t, "GET", base+"/2/tags", "", "")
	var tags []string
	if err := json.Unmarshal(body, &tags); err != nil {
		t.Fatal(err)
	}
	if strings.Join(tags, ",") != "anchor-tag1,multi-a" {
		t.Errorf("tags after the flow: %v, captured [anchor-tag1 multi-a]", tags)
	}
}

// waitJob polls GET /2/jobs/{id} until the job has ended.
func waitJob(t *testing.T, base string, id int64) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, body := do(t, "GET", fmt.Sprintf("%s/2/jobs/%d", base, id), "", "")
		var job map[string]any
		if status != 200 || json.Unmarshal(body, &job) != nil {
			t.Fatalf("GET job %d: %d %s", id, status, body)
		}
		switch job["status"] {
		case "success", "error", "canceled":
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d did not end: %s", id, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
