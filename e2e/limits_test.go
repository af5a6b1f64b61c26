package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// legacyErrorBody checks a Ganeti error body and returns its message.
func legacyErrorBody(t *testing.T, what string, code int, gotCode int, body []byte) string {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Explain string `json:"explain"`
	}
	if gotCode != code || json.Unmarshal(body, &e) != nil || e.Code != code || e.Explain == "" {
		t.Errorf("%s: %d %s, want a %d error body", what, gotCode, body, code)
	}
	return e.Message
}

// orFilter is ["|", ["=", field, "x0"], ...] with n comparisons.
func orFilter(field string, n int) string {
	var b strings.Builder
	b.WriteString(`["|"`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `,["=","%s","x%d"]`, field, i)
	}
	b.WriteString("]")
	return b.String()
}

// TestQueryLimits: /2/query and the QueryService are bounded before
// anything large is built: the number of fields (400 / InvalidArgument),
// the length of a field name (400), the filter's size (400) and the
// regular expressions in it, the request body (413 / ResourceExhausted),
// and the estimated size of the result (413 / ResourceExhausted), each
// with Ganeti's error body on the legacy surface and an ErrorInfo over
// gRPC; queries within the limits, such as every field of every instance
// of the golden cluster, are answered as before. Before, a 3.6 MB list of
// fields cost about 1 GB.
func TestQueryLimits(t *testing.T) {
	base := inProcessWith(t, "", func(c *server.Config) { // the demo cluster
		c.MaxQueryResultBytes = 96 << 10
	})
	ctx := context.Background()
	q := rapiv2.NewQueryServiceClient(dialGRPC(t, base))

	// Every instance field, once: allowed (about 44 KB here).
	defs, err := q.QueryFields(ctx, &rapiv2.QueryFieldsRequest{Resource: "instance"})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, d := range defs.GetFields() {
		all = append(all, d.GetName())
	}
	if res, err := q.Query(ctx, &rapiv2.QueryRequest{Resource: "instance", Fields: all}); err != nil || len(res.GetData()) == 0 {
		t.Fatalf("every instance field: %v", err)
	}
	code, _, body := do(t, "GET", base+"/2/query/instance?fields="+strings.Join(all, ","), "", "")
	if code != 200 {
		t.Fatalf("legacy, every instance field: %d %s", code, body)
	}

	// Too many fields.
	many := make([]string, service.DefaultMaxQueryFields+1)
	for i := range many {
		many[i] = "name"
	}
	_, err = q.Query(ctx, &rapiv2.QueryRequest{Resource: "instance", Fields: many})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "Too many fields") {
		t.Errorf("%d fields: %v", len(many), err)
	}
	code, _, body = do(t, "GET", base+"/2/query/instance?fields="+strings.Join(many, ","), "", "")
	legacyErrorBody(t, "legacy, too many fields", 400, code, body)
	code, _, body = do(t, "PUT", base+"/2/query/node", "application/json", `{"fields": ["`+strings.Join(many, `","`)+`"]}`)
	legacyErrorBody(t, "legacy PUT, too many fields", 400, code, body)
	_, err = q.QueryFields(ctx, &rapiv2.QueryFieldsRequest{Resource: "instance", Fields: many})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("field definitions of %d fields: %v", len(many), err)
	}

	// A job wait names fields too.
	waitFields, _ := json.Marshal(map[string]any{"fields": many})
	code, _, body = do(t, "GET", base+"/2/jobs/1/wait", "application/json", string(waitFields))
	legacyErrorBody(t, "legacy job wait of too many fields", 400, code, body)

	// A field name too long (an unknown name is echoed back three times).
	long := strings.Repeat("x", service.MaxFieldNameLength+1)
	code, _, body = do(t, "GET", base+"/2/query/instance?fields=name,"+long, "", "")
	legacyErrorBody(t, "legacy, long field name", 400, code, body)

	// Duplicates pass the field count but not the result size: the demo
	// cluster's instances, every field three times, are over 96 KiB.
	thrice := append(append(append([]string{}, all...), all...), all...)
	_, err = q.Query(ctx, &rapiv2.QueryRequest{Resource: "instance", Fields: thrice})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "larger than 98304 bytes") {
		t.Errorf("result over the limit: %v", err)
	}
	if class, _ := gateway.ErrorOf(status.Convert(err)); class != "HttpRequestEntityTooLarge" {
		t.Errorf("result over the limit: error class %q", class)
	}
	code, hdr, body := do(t, "GET", base+"/2/query/instance?fields="+strings.Join(thrice, ","), "", "")
	if msg := legacyErrorBody(t, "legacy, result over the limit", 413, code, body); !strings.Contains(msg, "request fewer fields") || hdr.Get("Retry-After") != "" {
		t.Errorf("legacy, result over the limit: %q, Retry-After %q", msg, hdr.Get("Retry-After"))
	}

	// Filters: too many nodes, a regular expression too long; a filter of
	// 4,000 comparisons is fine.
	code, _, body = do(t, "PUT", base+"/2/query/instance", "application/json", `{"fields":["name"],"qfilter":`+orFilter("os", 9000)+`}`)
	if msg := legacyErrorBody(t, "legacy, filter of 9000 nodes", 400, code, body); !strings.Contains(msg, "Filter has more than") {
		t.Errorf("filter of 9000 nodes: %q", msg)
	}
	re := `["=~","name","` + strings.Repeat("a", 5000) + `"]`
	code, _, body = do(t, "PUT", base+"/2/query/instance", "application/json", `{"fields":["name"],"qfilter":`+re+`}`)
	legacyErrorBody(t, "legacy, long regular expression", 400, code, body)
	code, _, body = do(t, "PUT", base+"/2/query/instance", "application/json", `{"fields":["name"],"qfilter":`+orFilter("os", 4000)+`}`)
	if code != 200 {
		t.Errorf("filter of 4000 comparisons: %d %s", code, body)
	}
	var filter structpb.Value
	if err := filter.UnmarshalJSON([]byte(orFilter("os", 9000))); err != nil {
		t.Fatal(err)
	}
	_, err = q.QueryWithFilter(ctx, &rapiv2.QueryWithFilterRequest{Resource: "instance", Body: &rapiv2.QueryBody{Fields: []string{"name"}, Qfilter: &filter}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("typed filter of 9000 nodes: %v", err)
	}

	// The body of a query, and a query message, over 256 KiB.
	big := `{"fields":["name"],"qfilter":["=","name","` + strings.Repeat("n", 300<<10) + `"]}`
	code, _, body = do(t, "PUT", base+"/2/query/instance", "application/json", big)
	legacyErrorBody(t, "legacy, 300 KiB query body", http.StatusRequestEntityTooLarge, code, body)
	_, err = q.Query(ctx, &rapiv2.QueryRequest{Resource: "instance", Fields: []string{"name", strings.Repeat("n", 300<<10)}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("300 KiB query message: %v", err)
	}
	// A read's message is bounded like its URL would be (64 KiB).
	_, err = rapiv2.NewInstanceServiceClient(dialGRPC(t, base)).GetInstance(ctx, &rapiv2.GetInstanceRequest{InstanceName: strings.Repeat("i", 100<<10)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("100 KiB instance name: %v", err)
	}
	// A write's body keeps the general limit.
	code, _, body = do(t, "PUT", base+"/2/instances/"+"nonexistent.example.com"+"/modify", "application/json", `{"beparams":{},"hvparams":{},"x":"`+strings.Repeat("y", 300<<10)+`"}`)
	if code == http.StatusRequestEntityTooLarge {
		t.Errorf("300 KiB write body refused: %s", body)
	}
}
