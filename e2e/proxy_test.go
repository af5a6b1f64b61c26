package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/selfsigned"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// spoofed is the address clients claim in their own forwarding headers;
// it must never become a request's source.
const spoofed = "6.6.6.6"

// logRecords returns the JSON log records of text whose msg is msg (other
// lines, such as the first-start notice, are skipped).
func logRecords(text, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(text, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitRecords waits (up to 10 s) until logs() has n records with msg for
// which match is true, and returns all such records.
func waitRecords(t *testing.T, logs func() string, msg string, n int, match func(map[string]any) bool) []map[string]any {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var out []map[string]any
		for _, r := range logRecords(logs(), msg) {
			if match(r) {
				out = append(out, r)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
	}
}

func str(r map[string]any, k string) string { s, _ := r[k].(string); return s }

// checkSources checks the source (and proxy) of every audit and access
// record of the log: wantSource(source, proxy) reports what is wrong. No
// record may have the spoofed address anywhere.
func checkSources(t *testing.T, logs string, want func(source, proxy string) error) {
	t.Helper()
	n := 0
	for _, msg := range []string{"audit", "access"} {
		for _, r := range logRecords(logs, msg) {
			n++
			if err := want(str(r, "source"), str(r, "proxy")); err != nil {
				t.Errorf("%s record %v: %v", msg, r, err)
			}
		}
	}
	if n == 0 {
		t.Error("no audit or access record")
	}
	if strings.Contains(logs, spoofed) {
		t.Errorf("the log names the spoofed address %s", spoofed)
	}
}

// TestTrustedProxiesDirect: a client that connects straight to the server
// cannot choose its source in the logs with forwarding headers (legacy) or
// metadata (gRPC: x-forwarded-for, forwarded, or the gateway's internal
// peer key), unless its own address is in TrustedProxies; then the right-most
// untrusted hop of the header is the source, and the peer is logged as the
// proxy.
func TestTrustedProxiesDirect(t *testing.T) {
	for _, c := range []struct {
		name    string
		trusted string
		// forwarded is what the client's headers say after its spoofed
		// entry; wantSource checks the logged source.
		forwarded  string
		wantSource func(source, proxy string) error
	}{
		{name: "no trusted proxies", trusted: "", forwarded: "203.0.113.5",
			wantSource: func(source, proxy string) error {
				if !strings.HasPrefix(source, "127.0.0.1:") || proxy != "" {
					return fmt.Errorf("source %q proxy %q, want the peer 127.0.0.1:port and no proxy", source, proxy)
				}
				return nil
			}},
		{name: "another trusted proxy", trusted: "192.0.2.0/24, ::1", forwarded: "203.0.113.5",
			wantSource: func(source, proxy string) error {
				if !strings.HasPrefix(source, "127.0.0.1:") || proxy != "" {
					return fmt.Errorf("source %q proxy %q, want the peer 127.0.0.1:port and no proxy", source, proxy)
				}
				return nil
			}},
		{name: "the peer is trusted", trusted: "127.0.0.1", forwarded: "203.0.113.5",
			wantSource: func(source, proxy string) error {
				if source != "203.0.113.5" || !strings.HasPrefix(proxy, "127.0.0.1:") {
					return fmt.Errorf("source %q proxy %q, want 203.0.113.5 through 127.0.0.1:port", source, proxy)
				}
				return nil
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			base, _, logs := authServer(t, authUsers(), func(cfg *server.Config) {
				var err error
				if cfg.TrustedProxies, err = gateway.ParseTrustedProxies(c.trusted); err != nil {
					t.Fatal(err)
				}
			})
			xff := spoofed + ", " + c.forwarded
			fwd := "for=" + spoofed + ", for=" + c.forwarded
			status, _, body := doHeaders(t, "PUT", base+"/2/tags?tag=direct", map[string]string{
				"Authorization":         string(creds("writer", "writer-secret")),
				"X-Forwarded-For":       xff,
				"Forwarded":             fwd,
				"X-Ganeti-Gateway-Peer": spoofed,
			}, "")
			if status != http.StatusOK {
				t.Fatalf("PUT /2/tags: %d %s", status, body)
			}
			// Refused, anonymous: the denial is audited too.
			if status, _, _ := doHeaders(t, "GET", base+"/2/info", map[string]string{"X-Forwarded-For": xff}, ""); status != http.StatusUnauthorized {
				t.Errorf("GET /2/info without credentials: %d", status)
			}
			conn := dialGRPC(t, base)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx,
				"authorization", string(creds("hashed", "hashed-secret")),
				"x-forwarded-for", xff, "forwarded", fwd,
				"x-ganeti-gateway-peer", spoofed)
			if _, err := rapiv2.NewTagServiceClient(conn).AddClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{"direct"}}); err != nil {
				t.Fatalf("gRPC AddClusterTags: %v", err)
			}
			// Every kind of record is there before the sources are checked.
			for _, want := range []struct{ msg, key, value string }{
				{"audit", "user", "writer"},
				{"audit", "user", "hashed"},
				{"audit", "reason", "no credentials"},
				{"access", "http_path", "/2/tags"},
				{"access", "rpc", "/ganeti.rapi.v2.TagService/AddClusterTags"},
			} {
				if len(waitRecords(t, logs.String, want.msg, 1, func(r map[string]any) bool { return str(r, want.key) == want.value })) == 0 {
					t.Errorf("no %s record with %s %q", want.msg, want.key, want.value)
				}
			}
			checkSources(t, logs.String(), c.wantSource)
		})
	}
}

// requireNginx returns Debian's nginx, skipping the test (failing under
// CI=true) without it.
func requireNginx(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	skipOrFailInCI(t, "nginx is needed for the reverse proxy test (Debian: apt-get install nginx)")
	return ""
}

// nginxProxy is an nginx process in front of a ganeti-gateway: TLS with
// HTTP/1.1 and HTTP/2 towards the clients; towards the server, the legacy
// routes with proxy_pass (HTTP/1.1, keepalive) and gRPC with grpc_pass
// (h2c), both from the address nginxSource.
type nginxProxy struct {
	// XFF is the address of the server block that appends the client to
	// X-Forwarded-For (and drops a Forwarded header), Forwarded that of
	// the one that appends it to Forwarded (and drops X-Forwarded-For).
	XFF, Forwarded string
	// CertFile is nginx's certificate (for localhost and 127.0.0.1).
	CertFile string
	dir      string
	cmd      *exec.Cmd
	done     chan struct{}
	stderr   *syncBuffer
}

// nginxSource is the address nginx connects to the server from, so that
// the server can tell nginx (a trusted proxy) from its clients, which
// connect from 127.0.0.1.
const nginxSource = "127.0.0.2"

// nginxConf is the configuration (fmt verbs: user line, temp dir, access
// log, certificate, key, upstream address twice, the two server blocks).
const nginxConf = `# generated by the ganeti-gateway e2e tests
worker_processes 1;
%s
events { worker_connections 256; }
http {
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    access_log %[3]s;
    ssl_certificate %[4]s;
    ssl_certificate_key %[5]s;
    client_max_body_size 16m;

    upstream ganeti_gateway_http {
        server %[6]s;
        keepalive 8;
    }
    upstream ganeti_gateway_grpc {
        server %[6]s;
        keepalive 8;
    }

    # RFC 7239 wants an IPv6 node quoted and in brackets.
    map $remote_addr $forwarded_node {
        ~:      "\"[$remote_addr]\"";
        default $remote_addr;
    }
    map $http_forwarded $proxy_add_forwarded {
        ""      "for=$forwarded_node";
        default "$http_forwarded, for=$forwarded_node";
    }
%[7]s
}
`

// nginxServer is one server block (fmt verbs: listen address, the header
// directives).
const nginxServer = `
    server {
        listen %s ssl http2;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_bind %[3]s;
        grpc_bind %[3]s;
%[2]s
        # Everything but gRPC is the legacy RAPI.
        location / {
            proxy_pass http://ganeti_gateway_http;
        }
        # gRPC: the API's services, health and reflection. A WatchJob
        # stream is silent while its job does not change.
        location /ganeti.rapi.v2. {
            grpc_pass grpc://ganeti_gateway_grpc;
            grpc_read_timeout 1h;
            grpc_send_timeout 1h;
        }
        location /grpc. {
            grpc_pass grpc://ganeti_gateway_grpc;
        }
    }
`

// The header directives of the two server blocks: each appends the client
// to one header and drops the other, which the client could have sent.
const (
	nginxXFF = `        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header Forwarded "";
        grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        grpc_set_header Forwarded "";
`
	nginxForwarded = `        proxy_set_header Forwarded $proxy_add_forwarded;
        proxy_set_header X-Forwarded-For "";
        grpc_set_header Forwarded $proxy_add_forwarded;
        grpc_set_header X-Forwarded-For "";
`
)

// freePort returns a loopback address with a free port.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startNginx runs nginx in front of the server at upstream (host:port,
// --insecure) as the current user, with its configuration in a temp dir.
func startNginx(t *testing.T, nginx, upstream string) *nginxProxy {
	t.Helper()
	dir := t.TempDir()
	if _, err := selfsigned.LoadOrCreate(dir, nil); err != nil {
		t.Fatal(err)
	}
	n := &nginxProxy{XFF: freePort(t), Forwarded: freePort(t), CertFile: filepath.Join(dir, selfsigned.CertFile),
		dir: dir, done: make(chan struct{}), stderr: &syncBuffer{}}
	user := "" // nginx ignores (with a warning) "user" unless started by root
	if os.Geteuid() == 0 {
		user = "user root;" // the temp dir is root's only
	}
	servers := fmt.Sprintf(nginxServer, n.XFF, nginxXFF, nginxSource) +
		fmt.Sprintf(nginxServer, n.Forwarded, nginxForwarded, nginxSource)
	conf := fmt.Sprintf(nginxConf, user, filepath.Join(dir, "tmp"), filepath.Join(dir, "access.log"),
		n.CertFile, filepath.Join(dir, selfsigned.KeyFile), upstream, servers)
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(nginx, "-p", dir, "-c", confFile, "-e", "stderr",
		"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;")
	n.cmd.Stdout, n.cmd.Stderr = n.stderr, n.stderr
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers go with it
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() { n.stop(t) })
	for _, addr := range []string{n.XFF, n.Forwarded} {
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-n.done:
				t.Fatalf("nginx exited:\n%s\nconfiguration:\n%s", n.stderr.String(), conf)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx does not listen on %s:\n%s", addr, n.stderr.String())
			}
		}
	}
	return n
}

// stop ends nginx (fast shutdown), and its workers with a SIGKILL of its
// process group if it does not end within 10 s.
func (n *nginxProxy) stop(t *testing.T) {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
	}
	if t.Failed() {
		access, _ := os.ReadFile(filepath.Join(n.dir, "access.log"))
		t.Logf("nginx stderr:\n%s\nnginx access log:\n%s", n.stderr.String(), access)
	}
}

// tlsConfig trusts nginx's certificate.
func (n *nginxProxy) tlsConfig(t *testing.T) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(n.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("nginx's certificate does not parse")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// spoofingRequests make a legacy write and a gRPC write through the
// server block at addr with forwarding headers (metadata) of the client's
// own, naming the spoofed address; nginx appends the client to one of
// them.
func spoofingRequests(t *testing.T, n *nginxProxy, addr, tag string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: n.tlsConfig(t), ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest("PUT", "https://"+addr+"/2/tags?tag="+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(e2eUser, e2ePassword)
	req.Header.Set("X-Forwarded-For", spoofed)
	req.Header.Set("Forwarded", "for="+spoofed)
	req.Header.Set("X-Ganeti-Gateway-Peer", spoofed)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /2/tags through nginx %s: %d %s", addr, resp.StatusCode, body)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(grpccreds.NewTLS(n.tlsConfig(t))),
		grpc.WithPerRPCCredentials(basicCreds{string(creds(e2eUser, e2ePassword))}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-forwarded-for", spoofed, "forwarded", "for="+spoofed,
		"x-ganeti-gateway-peer", spoofed)
	if _, err := rapiv2.NewTagServiceClient(conn).AddClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{tag}}); err != nil {
		t.Fatalf("gRPC AddClusterTags through nginx %s: %v", addr, err)
	}
}

// TestNginx runs the legacy and gRPC surfaces through Debian's nginx
// (TLS and HTTP/2 in front; proxy_pass over HTTP/1.1 keepalive and
// grpc_pass over h2c to an --insecure server): the official Python client
// (reads, a write, a job wait), the Node gRPC client (reads, a typed job
// followed with WatchJob), and Go clients that send forwarding headers of
// their own. With nginx's address in --trusted-proxies, the audit and
// access logs name the client nginx saw (127.0.0.1), never the address a
// client put in its headers, and nginx as the proxy; without, they name
// nginx (127.0.0.2) as the source.
func TestNginx(t *testing.T) {
	nginx := requireNginx(t)
	requireRapiClient(t)
	node := requireNodeGRPC(t)

	t.Run("trusted", func(t *testing.T) {
		p := startServer(t, "", "--insecure", "--trusted-proxies", nginxSource)
		n := startNginx(t, nginx, p.Addr)
		_, port, _ := net.SplitHostPort(n.XFF)

		// The official client through the X-Forwarded-For block.
		const pyTag = "through-nginx-python"
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "proxy_client.py"))
		cmd.Env = append(os.Environ(), "RAPI_HOST=localhost", "RAPI_PORT="+port, "RAPI_CAFILE="+n.CertFile,
			"RAPI_USER="+e2eUser, "RAPI_PASSWORD="+e2ePassword, "TAG="+pyTag)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("python client: %s", time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("python client through nginx: %v\n%s\nserver log:\n%s", err, out, p.Logs())
		}
		var py struct {
			Cluster   string
			Nodes     int
			Instances int
			JobID     int64 `json:"job_id"`
			Completed bool
			Status    string
			Tags      []string
		}
		resultLine(t, string(out), &py)
		want := demoExpectations(t)
		if py.Cluster != want.Cluster || py.Nodes == 0 || py.Instances == 0 || !py.Completed || py.Status != "success" || !slices.Contains(py.Tags, pyTag) {
			t.Errorf("python client through nginx: %+v", py)
		}

		// The Node gRPC client, with WatchJob, through the Forwarded block.
		const nodeTag = "through-nginx-node"
		cmd = exec.CommandContext(ctx, node, filepath.Join(testutil.RepoRoot(t), nodeClientDir, "client.js"))
		cmd.Env = append(os.Environ(),
			"GRPC_TARGET="+n.Forwarded, "GRPC_CA_FILE="+n.CertFile, "GRPC_SERVER_NAME=localhost",
			"RAPI_USER="+e2eUser, "RAPI_PASSWORD="+e2ePassword, "WRITER_USER=writer", "WRITER_PASSWORD=writepass", "TAG="+nodeTag,
			"TEST_DELAY=0.2")
		start = time.Now()
		out, err = cmd.CombinedOutput()
		t.Logf("node client: %s", time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("node client through nginx: %v\n%s\nserver log:\n%s", err, out, p.Logs())
		}
		var nd struct {
			Statuses []string
			Updates  int
			Tags     []string
			JobID    string `json:"job_id"`
		}
		resultLine(t, string(out), &nd)
		if len(nd.Statuses) == 0 || nd.Statuses[len(nd.Statuses)-1] != "JOB_STATUS_SUCCESS" || !slices.Contains(nd.Tags, nodeTag) {
			t.Errorf("node client through nginx: %+v", nd)
		}

		spoofingRequests(t, n, n.XFF, "spoof-xff")
		spoofingRequests(t, n, n.Forwarded, "spoof-forwarded")

		// Each client's writes are audited with the client nginx saw.
		for _, w := range []struct{ what, key, value string }{
			{"the python client's tag write", "http_path", "/2/tags"},
			{"the python client's job wait", "http_route", "/2/jobs/{job_id}/wait"},
			{"the node client's job", "rpc", "/ganeti.rapi.v2.JobService/SubmitJob"},
			{"the node client's WatchJob", "rpc", "/ganeti.rapi.v2.JobService/WatchJob"},
			{"the Go gRPC write", "rpc", "/ganeti.rapi.v2.TagService/AddClusterTags"},
		} {
			msg := "audit"
			if strings.Contains(w.what, "wait") || strings.Contains(w.what, "Watch") {
				msg = "access"
			}
			if len(waitRecords(t, p.Logs, msg, 1, func(r map[string]any) bool { return str(r, w.key) == w.value })) == 0 {
				t.Errorf("no %s record of %s", msg, w.what)
			}
		}
		// The node client's write user, refused OP_TEST_DELAY by the handler.
		if len(waitRecords(t, p.Logs, "audit", 1, func(r map[string]any) bool {
			return str(r, "user") == "writer" && str(r, "code") == "PermissionDenied"
		})) == 0 {
			t.Error("no audit record of the node client's refused writer")
		}
		checkSources(t, p.Logs(), func(source, proxy string) error {
			if source != "127.0.0.1" || !strings.HasPrefix(proxy, nginxSource+":") {
				return fmt.Errorf("source %q proxy %q, want 127.0.0.1 through %s:port", source, proxy, nginxSource)
			}
			return nil
		})
	})

	t.Run("untrusted", func(t *testing.T) {
		p := startServer(t, "", "--insecure", "--trusted-proxies", "127.0.0.1")
		n := startNginx(t, nginx, p.Addr)
		spoofingRequests(t, n, n.XFF, "spoof-xff")
		spoofingRequests(t, n, n.Forwarded, "spoof-forwarded")
		if len(waitRecords(t, p.Logs, "access", 2, func(r map[string]any) bool { return str(r, "http_path") == "/2/tags" })) != 2 {
			t.Error("want two access records of PUT /2/tags")
		}
		checkSources(t, p.Logs(), func(source, proxy string) error {
			if !strings.HasPrefix(source, nginxSource+":") || proxy != "" {
				return fmt.Errorf("source %q proxy %q, want nginx's %s:port and no proxy", source, proxy, nginxSource)
			}
			return nil
		})
	})
}

// resultLine decodes the JSON of the "RESULT " line of a client's output.
func resultLine(t *testing.T, out string, v any) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if j, ok := strings.CutPrefix(l, "RESULT "); ok {
			if err := json.Unmarshal([]byte(j), v); err != nil {
				t.Fatalf("RESULT line %q: %v", j, err)
			}
			return
		}
	}
	t.Fatalf("no RESULT line in\n%s", out)
}
