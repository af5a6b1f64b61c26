package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// TestDirectMatchesCodec is the differential test of the legacy surface's
// direct in-process calls (gateway.Direct, the default) against the
// general path (the gRPC codec over the in-process connection,
// server.Config.InProcessCodec): on the golden cluster, every GET of the
// golden captures (but the jobs', whose times differ) and the paths below get the same status, Content-Type
// and body, byte for byte, and the typed gRPC answers are the same
// messages.
func TestDirectMatchesCodec(t *testing.T) {
	direct := inProcess(t, "testdata/golden-cluster.json")
	codec := inProcessWith(t, "testdata/golden-cluster.json", func(c *server.Config) { c.InProcessCodec = true })
	type req struct {
		method, path, body string
		headers            map[string]string
	}
	var reqs []req
	for _, c := range loadCaptures(t) {
		if c.Method != "GET" || strings.Contains(c.Path, "/jobs") || strings.Contains(c.Path, "/query/job") {
			continue // jobs carry their times, which differ between servers
		}
		body := ""
		if c.RequestBody != nil {
			body = *c.RequestBody
		}
		reqs = append(reqs, req{c.Method, c.Path, body, c.requestHeaders()})
	}
	for _, p := range []string{
		"/2/info", "/2/instances?bulk=1", "/2/nodes?bulk=1", "/2/groups?bulk=1", "/2/networks?bulk=1",
		"/2/instances", "/2/os", "/2/tags", "/2/features", "/version", "/2/filters?bulk=1",
		"/2/instances/nosuch.example.com", "/2/nodes/nosuch", "/2/instances/%FF", "/2/instances/%FF/tags",
		"/2/instances?bulk=1&lock=1", "/2/query/instance?fields=name,status", "/2/query/nosuch",
	} {
		reqs = append(reqs, req{method: "GET", path: p})
	}
	reqs = append(reqs,
		req{method: "PUT", path: "/2/query/instance", body: `{"fields": ["name", "admin_state", "beparams"]}`,
			headers: map[string]string{"Content-Type": "application/json"}},
		req{method: "GET", path: "/2/info", headers: map[string]string{"Authorization": "Basic bm86cGFzcw=="}}, // wrong user
		req{method: "PUT", path: "/2/instances/nosuch.example.com/tags?tag=a%FF", headers: map[string]string{"Content-Type": "application/json"}},
	)
	for _, r := range reqs {
		sd, hd, bd := doHeaders(t, r.method, direct+r.path, r.headers, r.body)
		sc, hc, bc := doHeaders(t, r.method, codec+r.path, r.headers, r.body)
		if sd != sc || hd.Get("Content-Type") != hc.Get("Content-Type") || !bytes.Equal(bd, bc) {
			t.Errorf("%s %s: direct %d %q %s\ncodec %d %q %s", r.method, r.path, sd, hd.Get("Content-Type"), bd,
				sc, hc.Get("Content-Type"), bc)
		}
	}
	if len(reqs) < 60 {
		t.Errorf("only %d requests compared", len(reqs))
	}

	// The typed API: the same messages on both servers.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(e2eUser+":"+e2ePassword)))
	dial := func(base string) *grpc.ClientConn {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	cd, cc := dial(direct), dial(codec)
	for name, call := range map[string]func(*grpc.ClientConn) (proto.Message, error){
		"GetInfo": func(c *grpc.ClientConn) (proto.Message, error) {
			return rapiv2.NewClusterServiceClient(c).GetInfo(ctx, &rapiv2.GetInfoRequest{})
		},
		"ListInstances": func(c *grpc.ClientConn) (proto.Message, error) {
			return rapiv2.NewInstanceServiceClient(c).ListInstances(ctx, &rapiv2.ListInstancesRequest{Bulk: true})
		},
		"ListNodes": func(c *grpc.ClientConn) (proto.Message, error) {
			return rapiv2.NewNodeServiceClient(c).ListNodes(ctx, &rapiv2.ListNodesRequest{Bulk: true})
		},
	} {
		md, errD := call(cd)
		mc, errC := call(cc)
		if errD != nil || errC != nil || !proto.Equal(md, mc) {
			t.Errorf("%s: direct %v (%v), codec %v (%v)", name, md, errD, mc, errC)
		}
	}
}

// TestBulkListFollowsChanges: the bulk lists and cluster information the
// services share while the cluster state is the same (and the cached
// legacy encodings) give way to the new state after a change.
func TestBulkListFollowsChanges(t *testing.T) {
	base := inProcess(t, "") // the demo cluster
	for _, path := range []string{"/2/instances?bulk=1", "/2/nodes?bulk=1", "/2/info"} {
		if status, _, body := do(t, "GET", base+path, "", ""); status != 200 || strings.Contains(string(body), "cache-probe") {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
	}
	for _, obj := range []string{"instances/web1.example.com/", "nodes/node1.example.com/", ""} {
		status, _, body := do(t, "PUT", base+"/2/"+obj+"tags?tag=cache-probe", "", "")
		if status != 200 {
			t.Fatalf("PUT tags: %d %s", status, body)
		}
		id, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if job := waitJob(t, base, id); job["status"] != "success" {
			t.Fatalf("tag job: %v", job)
		}
	}
	for _, path := range []string{"/2/instances?bulk=1", "/2/nodes?bulk=1", "/2/info"} {
		if status, _, body := do(t, "GET", base+path, "", ""); status != 200 || !strings.Contains(string(body), "cache-probe") {
			t.Errorf("GET %s after the change: %d %s", path, status, body)
		}
	}
}
