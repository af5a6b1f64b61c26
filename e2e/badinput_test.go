package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// leak matches text that must never reach a client: Go error strings,
// panics, stack traces, file paths.
var leak = regexp.MustCompile(`goroutine \d|panic|runtime error|\.go:\d|strconv\.|json: |proto: |grpc: |rpc error|/home/|/root/|/tmp/|unexpected EOF|invalid character`)

// TestBadRequests lists client mistakes with the status and message Ganeti
// gives them (or the documented 4xx where Ganeti fails with 5xx).
func TestBadRequests(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		message                         string
	}{
		{"unknown path", "GET", "/2/nosuch", "", "", 404, "Not Found"},
		{"unknown top-level path", "GET", "/nonexistent", "", "", 404, "Not Found"},
		{"unknown version prefix", "GET", "/3/info", "", "", 404, "Not Found"},
		{"trailing slash", "GET", "/2/instances/", "", "", 404, "Not Found"},
		{"non-numeric job id", "GET", "/2/jobs/notanumber", "", "", 404, "Not Found"},
		{"non-numeric disk index", "POST", "/2/instances/x/disk/a/grow", "", "", 404, "Not Found"},
		{"percent-encoded name", "GET", "/2/nodes/n%201", "", "", 404, "Not Found"},
		{"path traversal", "GET", "/2/nodes/../info", "", "", 404, "Not Found"},
		{"unknown instance", "GET", "/2/instances/nosuch.example.com", "", "", 404, "Not Found"},
		{"unknown node", "GET", "/2/nodes/nosuch.example.com", "", "", 404, "Not Found"},
		{"unknown group", "GET", "/2/groups/nosuch", "", "", 404, "Not Found"},
		{"unknown network", "GET", "/2/networks/nosuch", "", "", 404, "Not Found"},
		{"unknown filter", "GET", "/2/filters/00000000-0000-0000-0000-000000000000", "", "", 404, "Not Found"},
		{"role of unknown node", "GET", "/2/nodes/nosuch.example.com/role", "", "", 404, "Not Found"},
		{"tags of unknown instance", "GET", "/2/instances/nosuch.example.com/tags", "", "", 404, "Not Found"},
		{"console of unknown instance", "GET", "/2/instances/nosuch.example.com/console", "", "", 404, "Not Found"},
		{"DELETE on a read-only resource", "DELETE", "/2/info", "", "", 501, "Method DELETE is unsupported for path /2/info"},
		{"POST /version", "POST", "/version", "", "", 501, "Method POST is unsupported for path /version"},
		{"PUT /2/instances", "PUT", "/2/instances", "", "", 501, "Method PUT is unsupported for path /2/instances"},
		{"PATCH", "PATCH", "/2/instances", "", "", 501, "Method PATCH is unsupported for path /2/instances"},
		{"OPTIONS", "OPTIONS", "/2/info", "", "", 501, "Method OPTIONS is unsupported for path /2/info"},
		{"query string in 501 message", "DELETE", "/2/info?x=1", "", "", 501, "Method DELETE is unsupported for path /2/info?x=1"},
		{"bulk=yes", "GET", "/2/instances?bulk=yes", "", "", 400, "Invalid value for the 'bulk' parameter"},
		{"bulk=1.5", "GET", "/2/nodes?bulk=1.5", "", "", 400, "Invalid value for the 'bulk' parameter"},
		{"lock=x", "GET", "/2/nodes/node1.example.com?lock=x", "", "", 400, "Invalid value for the 'lock' parameter"},
		{"query without fields", "GET", "/2/query/instance", "", "", 400, "Missing 'fields' query argument"},
		{"query unknown resource", "GET", "/2/query/nosuchresource?fields=name", "", "", 400, ""},
		{"query os", "GET", "/2/query/os?fields=name", "", "", 400, ""},
		{"query fields unknown resource", "GET", "/2/query/nosuch/fields", "", "", 400, ""},
		{"invalid query filter", "PUT", "/2/query/instance", "application/json", `{"fields": ["name"], "qfilter": ["~~", "name"]}`, 400, ""},
		{"query body not an object", "PUT", "/2/query/instance", "application/json", `["name"]`, 400, ""},
		{"body without content type", "GET", "/", "", "{}", 415, "Unsupported Media Type"},
		{"content type with charset", "GET", "/", "application/json; charset=utf-8", "{}", 415, "Unsupported Media Type"},
		{"content type text/plain", "GET", "/2/info", "text/plain", "{}", 415, "Unsupported Media Type"},
		{"malformed JSON", "GET", "/", "application/json", "{nope", 400, "Unable to parse JSON data"},
		{"truncated JSON", "GET", "/2/info", "application/json", `{"a": [1, 2`, 400, "Unable to parse JSON data"},
		{"job wait without body", "GET", "/2/jobs/1/wait", "", "", 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, hdr, body := do(t, c.method, base+c.path, c.ctype, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d; body %s", status, c.status, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Explain string `json:"explain"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body is not a Ganeti error: %v: %s", err, body)
			}
			if e.Code != c.status || e.Explain == "" || e.Message == "" {
				t.Errorf("error body %s", body)
			}
			unescaped := strings.NewReplacer("&#x27;", "'", "&quot;", `"`, "&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(e.Message)
			if c.message != "" && unescaped != c.message {
				t.Errorf("message %q, want %q", unescaped, c.message)
			}
			if leak.Match(body) {
				t.Errorf("body leaks internals: %s", body)
			}
		})
	}
}

// TestHTMLEscapedMessages checks Ganeti's html.escape of error messages.
func TestHTMLEscapedMessages(t *testing.T) {
	base := inProcess(t, "testdata/golden-cluster.json")
	_, _, body := do(t, "GET", base+"/2/instances?bulk=yes", "", "")
	if !strings.Contains(string(body), `"Invalid value for the &#x27;bulk&#x27; parameter"`) {
		t.Errorf("message not escaped as Ganeti does: %s", body)
	}
}
