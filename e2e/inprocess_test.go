package e2e

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/app"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// inProcess starts an App (plain HTTP + h2c) on 127.0.0.1:0 and returns its
// base URL.
func inProcess(t testing.TB, clusterFile string) string {
	t.Helper()
	if clusterFile != "" && !filepath.IsAbs(clusterFile) {
		clusterFile = filepath.Join(testutil.RepoRoot(t), clusterFile)
	}
	a, err := app.New(context.Background(), app.Config{
		DataDir:     t.TempDir(),
		ClusterFile: clusterFile,
		Insecure:    true,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Serve(lis) }()
	t.Cleanup(a.Close)
	return "http://" + lis.Addr().String()
}

// do sends one legacy request.
func do(t testing.TB, method, url, contentType, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
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
