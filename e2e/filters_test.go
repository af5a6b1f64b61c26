package e2e

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFilterRulesLikeGaneti replays the job filter flow of the captures
// (seq 244–258) through the legacy surface, with the captures' own users
// and bodies: a PAUSE rule keeps a tag job queued until it is canceled,
// the rule replaced by REJECT cancels the next one, an invalid rule is
// refused, the rule is deleted. Statuses and bodies are compared with the
// captured ones, the rule's UUID, the job ids, the watermark and the
// timestamps normalized.
func TestFilterRulesLikeGaneti(t *testing.T) {
	authed := inProcess(t, "testdata/golden-cluster.json")
	base := anonymous(authed)
	captures := map[int]capture{}
	for _, c := range loadCaptures(t) {
		captures[c.Seq] = c
	}
	const capturedUUID = "8cf35981-83a9-4c91-a89a-3cc69f42efc2"
	var uuid string
	jobIDs := map[string]string{} // captured id -> ours
	rewrite := func(s string) string {
		if uuid != "" {
			s = strings.ReplaceAll(s, capturedUUID, uuid)
		}
		for from, to := range jobIDs {
			s = strings.ReplaceAll(s, "/2/jobs/"+from, "/2/jobs/"+to)
			s = strings.ReplaceAll(s, "job "+from+"\"", "job "+to+"\"")
		}
		return s
	}
	send := func(seq int) (capture, int, []byte) {
		t.Helper()
		c := captures[seq]
		body := ""
		if c.RequestBody != nil {
			body = *c.RequestBody
		}
		status, _, got := doHeaders(t, c.Method, base+rewrite(c.Path), c.requestHeaders(), body)
		return c, status, got
	}
	// expect sends a capture's request and compares status and body (the
	// captured body rewritten, both normalized by norm).
	expect := func(seq, wantStatus int, norm func(any)) any {
		t.Helper()
		c, status, got := send(seq)
		if status != wantStatus {
			t.Fatalf("%d %s %s (%s): status %d, want %d\n%s", seq, c.Method, c.Path, c.Label, status, wantStatus, got)
		}
		var want, have any
		if err := json.Unmarshal([]byte(rewrite(c.ResponseBody)), &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(got, &have); err != nil {
			t.Fatalf("%d: not JSON: %s", seq, got)
		}
		if wantStatus != c.Status { // a deliberate difference: Ganeti-shaped body
			e, _ := have.(map[string]any)
			if e["code"] != float64(wantStatus) || e["message"] == "" || e["explain"] == "" {
				t.Fatalf("%d: error body %s", seq, got)
			}
			return have
		}
		if norm != nil {
			norm(want)
			norm(have)
		}
		if !reflect.DeepEqual(want, have) {
			w, _ := json.Marshal(want)
			h, _ := json.Marshal(have)
			t.Fatalf("%d %s %s (%s): body differs\ncaptured %s\nours     %s", seq, c.Method, c.Path, c.Label, w, h)
		}
		return have
	}

	// 244: add the PAUSE rule.
	c, status, got := send(244)
	if status != 200 || json.Unmarshal(got, &uuid) != nil || len(uuid) != len(capturedUUID) {
		t.Fatalf("%s: %d %s", c.Label, status, got)
	}
	expect(245, 200, nil)
	// 246, 247: the rule as luxid stores it ("=" canonical "=="; the
	// reason trail with luxid's entry), watermark and luxid's timestamp
	// normalized.
	normRule := func(v any) {
		rules, ok := v.([]any)
		if !ok {
			rules = []any{v}
		}
		for _, r := range rules {
			m := r.(map[string]any)
			m["watermark"] = "W"
			trail := m["reason_trail"].([]any)
			last := trail[len(trail)-1].([]any)
			if ts, ok := last[2].(float64); !ok || ts < 1e18 {
				t.Errorf("luxid timestamp %v", last[2])
			}
			last[2] = "T"
		}
	}
	expect(246, 200, normRule)
	expect(247, 200, normRule)

	// 248: a tag job while the PAUSE rule is active.
	submit := func(seq int) {
		t.Helper()
		c, status, got := send(seq)
		if status != 200 {
			t.Fatalf("%s: %d %s", c.Label, status, got)
		}
		id, err := strconv.ParseInt(strings.TrimSpace(string(got)), 10, 64)
		if err != nil {
			t.Fatalf("%s: %s", c.Label, got)
		}
		jobIDs[strings.TrimSpace(c.ResponseBody)] = fmt.Sprint(id)
	}
	submit(248)
	time.Sleep(100 * time.Millisecond) // time to run, were it not paused
	jobKeys := func(v any) {
		m := v.(map[string]any)
		for _, k := range []string{"id", "ops", "received_ts"} {
			delete(m, k)
		}
		if m["end_ts"] != nil {
			m["end_ts"] = "set"
		}
	}
	expect(249, 200, jobKeys) // queued, not started
	expect(250, 200, nil)     // [true, "Dequeued job N"]
	expect(251, 200, jobKeys) // canceled, never started

	// 252: the rule replaced by REJECT; 253/254: the next tag job is
	// canceled.
	expect(252, 200, nil)
	submit(253)
	id, _ := strconv.ParseInt(jobIDs["82"], 10, 64)
	waitJob(t, authed, id)
	expect(254, 200, jobKeys)

	expect(255, 400, nil) // invalid action: Ganeti 502
	expect(256, 200, nil) // null
	expect(257, 404, nil)
	expect(258, 404, nil) // unknown rule: Ganeti 500
	if status, _, got := do(t, "GET", authed+"/2/filters", "", ""); status != 200 || strings.TrimSpace(string(got)) != "[]" {
		t.Errorf("rules after the deletion: %d %s", status, got)
	}
}
