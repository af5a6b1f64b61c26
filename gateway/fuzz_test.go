package gateway

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
)

// FuzzQueryParse feeds arbitrary query strings to Ganeti's query rules for
// requests with every kind of query field: they never panic, and they fail
// only with Ganeti's "Invalid value" message.
func FuzzQueryParse(f *testing.F) {
	for _, seed := range []string{
		"bulk=1", "bulk=", "bulk=yes", "bulk=1&bulk=0", "dry-run=1&reason=x", "type=hard&ignore_secondaries=0",
		"fields=name,mtotal", "disks=0,1,2", "disks=a", "mode=replace_auto", "tag=a&tag=b", "lock=%20+1_0",
		"static=-0", "bulk=99999999999999999999", "%zz", "a=b;c=d",
	} {
		f.Add(seed)
	}
	msgs := []func() proto.Message{
		func() proto.Message { return &rapiv2.ListInstancesRequest{} },
		func() proto.Message { return &rapiv2.RebootInstanceRequest{} },
		func() proto.Message { return &rapiv2.ReplaceInstanceDisksRequest{} },
		func() proto.Message { return &rapiv2.QueryRequest{} },
		func() proto.Message { return &rapiv2.ChangeInstanceTagsRequest{} },
		func() proto.Message { return &rapiv2.GetNodeStorageRequest{} },
	}
	filter := utilities.NewDoubleArray(nil)
	f.Fuzz(func(t *testing.T, raw string) {
		values, err := url.ParseQuery(raw)
		if err != nil {
			return // the HTTP server rejects these before us
		}
		for _, newMsg := range msgs {
			err := queryParser{}.Parse(newMsg(), values, filter)
			var qe *queryError
			if err != nil && !errors.As(err, &qe) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			if err != nil && !isSafe(err.Error()) {
				t.Fatalf("message %q", err)
			}
		}
	})
}

// FuzzRouteMatch matches arbitrary paths: no panic, and a match always
// names a route whose template has the same number of segments.
func FuzzRouteMatch(f *testing.F) {
	for _, seed := range []string{"/", "/2", "/2/instances/x/disk/0/grow", "/2/jobs/1/wait", "/2/nodes/../x", "//2", "/2/instances/\u00e9t\u00e9"} {
		f.Add(seed)
	}
	routes, err := LoadRoutes()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r := routes.Match(path)
		if r != nil && strings.Count(r.Template, "/") != strings.Count(path, "/") {
			t.Fatalf("%q matched %q", path, r.Template)
		}
	})
}

// FuzzWaitBody decodes arbitrary job-wait bodies: no panic, and errors are
// Ganeti's messages.
func FuzzWaitBody(f *testing.F) {
	for _, seed := range []string{
		`{"fields": ["status"], "previous_job_info": null, "previous_log_serial": null}`,
		`{"fields": "status"}`, `{"fields": [], "previous_job_info": 1}`, `{"fields": [], "previous_log_serial": 1.5}`,
		`[]`, `null`, ``, `{"fields": [1]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		_, err := decodeWaitBody(strings.NewReader(body))
		if err != nil && !strings.HasPrefix(err.Error(), "The '") {
			t.Fatalf("message %q", err)
		}
	})
}

// FuzzForwardableAuthorization: the Authorization value the gateway
// forwards on its in-process call is valid gRPC metadata (printable ASCII)
// and authenticates exactly as the client's value does.
func FuzzForwardableAuthorization(f *testing.F) {
	for _, s := range []string{"", "Basic", "Basic\x85", "Basic YWxpY2U6cHc=", "basic\xa0YWxpY2U6cHc=\x01junk", "Digest x",
		"Basic\tYTpiOmM=", "Basic \x01", "\xff"} {
		f.Add(s)
	}
	verdict := func(v string) string {
		user, password, err := auth.ParseAuthorization(v)
		switch {
		case err == nil:
			return "ok " + user + ":" + password
		case errors.Is(err, auth.ErrNoCredentials):
			return "400"
		}
		return "401"
	}
	f.Fuzz(func(t *testing.T, v string) {
		fw := forwardableAuthorization(v)
		for i := 0; i < len(fw); i++ {
			if fw[i] < 0x20 || fw[i] > 0x7e {
				t.Fatalf("%q forwarded as %q", v, fw)
			}
		}
		if verdict(fw) != verdict(v) {
			t.Fatalf("%q (%s) forwarded as %q (%s)", v, verdict(v), fw, verdict(fw))
		}
	})
}
