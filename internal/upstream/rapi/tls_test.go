package rapi

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/selfsigned"
)

// TestUpstreamTLSResumesSessions: ganeti-rapi closes every connection, so
// each call opens a new one; after the first, the TLS session is resumed
// (no full handshake), and the certificate is still checked against the CA.
func TestUpstreamTLSResumesSessions(t *testing.T) {
	var full, resumed atomic.Int64
	f := &fakeRAPI{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.DidResume {
			resumed.Add(1)
		} else {
			full.Add(1)
		}
		w.Header().Set("Connection", "close") // as ganeti-rapi does
		f.ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "rapi.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{URLs: []string{srv.URL}, User: "svc", PasswordFile: passwordFile(t), CAFile: ca, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for i := range 5 {
		if _, err := b.Tags(context.Background(), backend.TagCluster, ""); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if full.Load() != 1 || resumed.Load() != 4 {
		t.Errorf("%d full handshakes and %d resumed, want 1 and 4", full.Load(), resumed.Load())
	}

	// With another CA the same server is refused: the check stays.
	other, err := selfsigned.LoadOrCreate(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(bad, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	b2, err := New(Config{URLs: []string{srv.URL}, User: "svc", PasswordFile: passwordFile(t), CAFile: bad, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b2.Close)
	if _, err := b2.Tags(context.Background(), backend.TagCluster, ""); err == nil {
		t.Error("a server whose certificate the CA did not sign answered")
	}
}
