package e2e

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// The users of the test servers: those of the golden captures (reader,
// writer, hasher) and e2eUser, which has every option and which the
// helpers' base URLs carry.
const (
	e2eUser     = "e2e"
	e2ePassword = "e2e-password"
)

// testUsersFile is the users file of the test servers.
func testUsersFile() string {
	return "# users of the golden captures\n" +
		"reader {cleartext}readpass read\n" +
		"writer writepass write\n" +
		"hasher {HA1}" + auth.HA1("hasher", "hashpass") + " read\n" +
		"# the e2e helpers' user\n" +
		e2eUser + " " + e2ePassword + " read,write,admin\n"
}

// writeTestUsers writes testUsersFile as <dataDir>/rapi/users.
func writeTestUsers(t testing.TB, dataDir string) string {
	t.Helper()
	path := filepath.Join(dataDir, "rapi", "users")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(testUsersFile()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// inProcess starts an App (plain HTTP + h2c) on 127.0.0.1:0 with the test
// users and returns its base URL, which carries e2eUser's credentials
// (net/http sends them as Basic authentication; dialGRPC as metadata).
func inProcess(t testing.TB, clusterFile string) string {
	t.Helper()
	return inProcessWith(t, clusterFile, nil)
}

// inProcessWith is inProcess with a chance to change the configuration.
func inProcessWith(t testing.TB, clusterFile string, configure func(*server.Config)) string {
	t.Helper()
	if clusterFile != "" && !filepath.IsAbs(clusterFile) {
		clusterFile = filepath.Join(testutil.RepoRoot(t), clusterFile)
	}
	dataDir := t.TempDir()
	writeTestUsers(t, dataDir)
	cfg := server.Config{
		DataDir:     dataDir,
		ClusterFile: clusterFile,
		Insecure:    true,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if configure != nil {
		configure(&cfg)
	}
	_, addr, _ := serveApp(t, cfg)
	base := withCreds(addr)
	if throughUpstream(t) {
		return upstreamFront(t, base, configure)
	}
	return base
}

// serveApp starts a server with cfg on a loopback port, and its admin
// listener when cfg.AdminListen is set; it is closed when the test ends.
// It returns the server and the two addresses.
func serveApp(t testing.TB, cfg server.Config) (a *server.App, addr, admin string) {
	t.Helper()
	a, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Serve(lis) }()
	if cfg.AdminListen != "" {
		adminLis, err := a.ListenAdmin()
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = a.ServeAdmin(adminLis) }()
		admin = adminLis.Addr().String()
	}
	return a, lis.Addr().String(), admin
}

// withCreds is the base URL of addr with the tests' user.
func withCreds(addr string) string { return "http://" + e2eUser + ":" + e2ePassword + "@" + addr }

// anonymous is a base URL without credentials.
func anonymous(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	u.User = nil
	return u.String()
}

// do sends one legacy request.
func do(t testing.TB, method, url, contentType, body string) (int, http.Header, []byte) {
	t.Helper()
	h := map[string]string{}
	if contentType != "" {
		h["Content-Type"] = contentType
	}
	return doHeaders(t, method, url, h, body)
}

// doHeaders sends one legacy request with the given headers.
func doHeaders(t testing.TB, method, url string, headers map[string]string, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}
