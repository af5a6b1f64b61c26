package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// capture is one record of golden/captures.jsonl.
type capture struct {
	Seq             int               `json:"seq"`
	Label           string            `json:"label"`
	User            *string           `json:"user"`
	Method          string            `json:"method"`
	Path            string            `json:"path"`
	RequestHeaders  map[string]string `json:"request_headers"`
	RequestBody     *string           `json:"request_body"`
	Status          int               `json:"status"`
	ResponseHeaders map[string]string `json:"response_headers"`
	ResponseBody    string            `json:"response_body"`
}

// requestHeaders are the capture's request headers, with the credentials
// the capture wrote as "Basic <user:password>" encoded again.
func (c capture) requestHeaders() map[string]string {
	h := map[string]string{}
	for k, v := range c.RequestHeaders {
		if m := capturedCreds.FindStringSubmatch(v); m != nil && strings.EqualFold(k, "Authorization") {
			v = "Basic " + base64.StdEncoding.EncodeToString([]byte(m[1]))
		}
		h[k] = v
	}
	return h
}

var capturedCreds = regexp.MustCompile(`^Basic <([^>]*)>$`)

// anonymousReadsCapture: captures 293-317 were taken from a daemon without
// --require-authentication (the others with it, which is
// ganeti-gateway's default).
func anonymousReadsCapture(c capture) bool { return c.Seq >= 293 && c.Seq <= 317 }

func loadCaptures(t testing.TB) []capture {
	t.Helper()
	f, err := os.Open(filepath.Join(testutil.SharedDir(t), "golden", "captures.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []capture
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var c capture
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// firstWrite is the seq of the first capture that changed the cluster;
// reads before it see the state testdata/golden-cluster.json mirrors.
const firstWrite = 46

// notReplayed says why a capture is not replayed by TestGoldenReads.
func notReplayed(c capture) string {
	switch {
	case c.Method != "GET" && c.Status < 400:
		return "a write: replayed by the job engine's golden test"
	case c.Seq == 22 || c.Seq == 301:
		return "lists the jobs the real cluster ran at init (cluster init, master IP, OS diagnose)"
	case c.Method != "GET" && c.Status == 400 && !strings.Contains(c.ResponseBody, "Unable to parse JSON data"):
		return "a write's body or parameter validation: replayed by the job engine's golden test"
	case c.Status >= 500 && c.Status != 501:
		return fmt.Sprintf("Ganeti answers %d to a client mistake; ganeti-gateway answers a 4xx (TestGoldenDeliberateDifferences)", c.Status)
	case c.Seq >= firstWrite && c.Status < 400 && !stateIndependent[c.Seq]:
		return "reads state that earlier write captures created"
	case strings.HasPrefix(c.Path, "/2/jobs/") && c.Status < 400 && c.Seq != 241:
		return "reads a job that earlier write captures created"
	}
	return ""
}

// stateIndependent are late captures whose answer does not depend on the
// writes before them.
var stateIndependent = map[int]bool{
	241: true, // unknown job id: all fields null
	243: true, // cancel an unknown job
	294: true, // /version
	293: true, // /
	296: true, // /2/features
	305: true, // /2/query/node/fields
}

// TestGoldenReads replays every capture that the mirrored cluster file can
// reproduce, with the capture's own request headers and users (reader,
// writer, hasher; see testUsersFile), and compares the parsed JSON, the
// status and the WWW-Authenticate header. The captures of a daemon without
// --require-authentication go to a server with AllowAnonymousReads.
func TestGoldenReads(t *testing.T) {
	strict := anonymous(inProcess(t, "testdata/golden-cluster.json"))
	lenient := anonymous(inProcessWith(t, "testdata/golden-cluster.json", func(c *server.Config) { c.AllowAnonymousReads = true }))
	var replayed, skipped int
	reasons := map[string][]int{}
	for _, c := range loadCaptures(t) {
		if why := notReplayed(c); why != "" {
			reasons[why] = append(reasons[why], c.Seq)
			skipped++
			continue
		}
		replayed++
		t.Run(fmt.Sprintf("%03d_%s", c.Seq, c.Method), func(t *testing.T) {
			body := ""
			if c.RequestBody != nil {
				body = *c.RequestBody
			}
			base := strict
			if anonymousReadsCapture(c) {
				base = lenient
			}
			status, hdr, got := doHeaders(t, c.Method, base+c.Path, c.requestHeaders(), body)
			if status != c.Status {
				t.Fatalf("%s %s (%s): status %d, captured %d\nbody: %s", c.Method, c.Path, c.Label, status, c.Status, got)
			}
			if want, have := c.ResponseHeaders["WWW-Authenticate"], hdr.Get("WWW-Authenticate"); want != have {
				t.Errorf("%s %s (%s): WWW-Authenticate %q, captured %q", c.Method, c.Path, c.Label, have, want)
			}
			if c.Method == "HEAD" {
				return // no body on HEAD
			}
			compareJSON(t, c, got)
		})
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("not replayed (%d): %s: seq %v", len(reasons[k]), k, reasons[k])
	}
	t.Logf("replayed %d captures, %d not replayed", replayed, skipped)
	if replayed < 40 {
		t.Errorf("only %d captures replayed", replayed)
	}
}

// compareJSON compares the parsed bodies. Two documented normalisations:
// /2/features is a Python set (its order varies between daemon runs), and
// a node's free memory drifts on the real machine between captures.
func compareJSON(t *testing.T, c capture, got []byte) {
	t.Helper()
	var want, have any
	if err := json.Unmarshal([]byte(c.ResponseBody), &want); err != nil {
		t.Fatalf("capture %d body: %v", c.Seq, err)
	}
	if err := json.Unmarshal(got, &have); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, got)
	}
	if strings.HasPrefix(c.Path, "/2/features") {
		want, have = sortedStrings(want), sortedStrings(have)
	}
	if c.Seq == 32 { // mfree 23575 here vs 23588 in seq 8, same cluster state
		maskQueryColumn(want, "mfree")
		maskQueryColumn(have, "mfree")
	}
	if !reflect.DeepEqual(want, have) {
		w, _ := json.MarshalIndent(want, "", " ")
		h, _ := json.MarshalIndent(have, "", " ")
		t.Errorf("%s %s (%s): body differs\n--- captured\n%s\n--- ours\n%s", c.Method, c.Path, c.Label, w, h)
	}
}

func sortedStrings(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	s := make([]string, 0, len(list))
	for _, x := range list {
		s = append(s, fmt.Sprint(x))
	}
	sort.Strings(s)
	return s
}

func maskQueryColumn(v any, field string) {
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	fields, _ := obj["fields"].([]any)
	col := -1
	for i, f := range fields {
		if m, ok := f.(map[string]any); ok && m["name"] == field {
			col = i
		}
	}
	if col < 0 {
		return
	}
	rows, _ := obj["data"].([]any)
	for _, r := range rows {
		if cells, ok := r.([]any); ok && col < len(cells) {
			cells[col] = "masked"
		}
	}
}

// deliberateDifferences are the captures where Ganeti answers a client
// mistake with 5xx and ganeti-gateway with the right 4xx (README,
// "Deliberate differences").
var deliberateDifferences = map[int]int{
	227: 400, // unknown query resource: Ganeti 502 (luxid parse error)
	228: 400, // /2/query/os: Ganeti 500 (not supported via RAPI)
	238: 400, // job wait without a body: Ganeti 500
	263: 404, // tags of an unknown instance: Ganeti 500
	229: 400, // invalid query filter: Ganeti 502
	255: 400, // invalid filter rule action: Ganeti 502 (luxid parse error)
	258: 404, // delete an unknown filter rule: Ganeti 500
}

// TestGoldenDeliberateDifferences checks the documented 4xx answers where
// Ganeti fails with 5xx, with a Ganeti-shaped error body.
func TestGoldenDeliberateDifferences(t *testing.T) {
	base := anonymous(inProcess(t, "testdata/golden-cluster.json"))
	for _, c := range loadCaptures(t) {
		want, ok := deliberateDifferences[c.Seq]
		if !ok {
			continue
		}
		t.Run(fmt.Sprintf("%03d", c.Seq), func(t *testing.T) {
			body := ""
			if c.RequestBody != nil {
				body = *c.RequestBody
			}
			status, _, got := doHeaders(t, c.Method, base+c.Path, c.requestHeaders(), body)
			if status != want {
				t.Fatalf("%s %s: status %d, want %d (Ganeti: %d)\n%s", c.Method, c.Path, status, want, c.Status, got)
			}
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Explain string `json:"explain"`
			}
			if err := json.Unmarshal(got, &e); err != nil || e.Code != want || e.Message == "" || e.Explain == "" {
				t.Fatalf("error body %s", got)
			}
		})
	}
}
