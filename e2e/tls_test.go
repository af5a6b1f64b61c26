package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/selfsigned"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// tlsServer starts an App with TLS (a self-signed certificate in a fresh
// data dir, the test users) on 127.0.0.1:0; it returns the port and a pool
// holding the server certificate.
func tlsServer(t *testing.T, configure func(*server.Config)) (port string, roots *x509.CertPool) {
	t.Helper()
	dataDir := t.TempDir()
	writeTestUsers(t, dataDir)
	cfg := server.Config{
		DataDir:     dataDir,
		ClusterFile: filepath.Join("..", "testdata", "golden-cluster.json"),
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if configure != nil {
		configure(&cfg)
	}
	_, addr, _ := serveApp(t, cfg)
	pemData, err := os.ReadFile(filepath.Join(dataDir, selfsigned.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		t.Fatal("bad server certificate")
	}
	_, port, _ = net.SplitHostPort(addr)
	return port, roots
}

// TestTLSVersions: TLS 1.2 is the minimum; the self-signed certificate
// verifies for localhost.
func TestTLSVersions(t *testing.T) {
	port, roots := tlsServer(t, nil)
	for _, c := range []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS10, tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{
				ServerName: "localhost", RootCAs: roots, MinVersion: c.min, MaxVersion: c.max,
			})
			if c.ok {
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				if v := conn.ConnectionState().Version; v != c.max {
					t.Errorf("negotiated %x", v)
				}
				conn.Close()
				return
			}
			if err == nil {
				conn.Close()
				t.Fatalf("%s accepted", c.name)
			}
			if !strings.Contains(err.Error(), "protocol version") {
				t.Errorf("%s refused for another reason: %v", c.name, err)
			}
		})
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Get("https://" + e2eUser + ":" + e2ePassword + "@localhost:" + port + "/version")
	if err != nil {
		t.Fatalf("verified HTTPS to localhost: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /version: %d", resp.StatusCode)
	}
}

// testCA is a throw-away certificate authority for client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// client issues a client certificate for a common name.
func (ca *testCA) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestClientCertificates: with a client CA, a client without a certificate
// (or with one from another CA) is refused at the handshake; a verified
// certificate authenticates as the user its CN names, with that user's
// options from the users file, on both surfaces; a CN that is not in the
// users file gets 401; an Authorization header, when sent, decides.
func TestClientCertificates(t *testing.T) {
	ca, other := newTestCA(t, "test client CA"), newTestCA(t, "another CA")
	caFile := filepath.Join(t.TempDir(), "client-ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	port, roots := tlsServer(t, func(c *server.Config) { c.ClientCA = caFile })
	base := "https://localhost:" + port

	httpClient := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}
	grpcConn := func(certs ...tls.Certificate) *grpc.ClientConn {
		conn, err := grpc.NewClient("localhost:"+port, grpc.WithTransportCredentials(grpccreds.NewTLS(&tls.Config{RootCAs: roots, Certificates: certs})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	get := func(c *http.Client, method, path, authorization string) (int, http.Header, error) {
		req, _ := http.NewRequest(method, base+path, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("no certificate", func(t *testing.T) {
		if _, _, err := get(httpClient(), "GET", "/version", ""); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("HTTPS without a client certificate: %v", err)
		}
		conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{ServerName: "localhost", RootCAs: roots, MaxVersion: tls.VersionTLS12})
		if err == nil {
			conn.Close()
			t.Error("TLS 1.2 handshake without a client certificate succeeded")
		}
		_, err = rapiv2.NewVersionServiceClient(grpcConn()).GetVersion(ctx, &rapiv2.GetVersionRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("gRPC without a client certificate: %v", err)
		}
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		if _, _, err := get(httpClient(other.client(t, "reader")), "GET", "/version", ""); err == nil {
			t.Error("a certificate of another CA was accepted")
		}
	})
	t.Run("reader", func(t *testing.T) {
		c, cert := httpClient(ca.client(t, "reader")), ca.client(t, "reader")
		if code, _, err := get(c, "GET", "/2/query/node?fields=name", ""); err != nil || code != 200 {
			t.Errorf("query as reader: %d %v", code, err)
		}
		if code, _, err := get(c, "PUT", "/2/tags?tag=x", ""); err != nil || code != 403 {
			t.Errorf("write as reader: %d %v, want 403", code, err)
		}
		conn := grpcConn(cert)
		if _, err := rapiv2.NewQueryServiceClient(conn).Query(ctx, &rapiv2.QueryRequest{Resource: "node", Fields: []string{"name"}}); err != nil {
			t.Errorf("typed query as reader: %v", err)
		}
		_, err := rapiv2.NewTagServiceClient(conn).AddClusterTags(ctx, &rapiv2.ChangeClusterTagsRequest{Tag: []string{"x"}})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("typed write as reader: %v", err)
		}
		// A Basic header wins over the certificate.
		if code, _, err := get(c, "PUT", "/2/tags?tag=x", string(creds("writer", "writepass"))); err != nil || (code != 200 && code != 501) {
			t.Errorf("write with the writer's password: %d %v", code, err)
		}
	})
	t.Run("writer", func(t *testing.T) {
		if code, _, err := get(httpClient(ca.client(t, "writer")), "PUT", "/2/tags?tag=x", ""); err != nil || (code != 200 && code != 501) {
			t.Errorf("write as writer: %d %v, want past authentication", code, err)
		}
	})
	t.Run("user not in the users file", func(t *testing.T) {
		code, hdr, err := get(httpClient(ca.client(t, "stranger")), "GET", "/version", "")
		if err != nil || code != 401 || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("unknown user: %d %v %v", code, hdr, err)
		}
		_, err = rapiv2.NewVersionServiceClient(grpcConn(ca.client(t, "stranger"))).GetVersion(ctx, &rapiv2.GetVersionRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("typed call of an unknown user: %v", err)
		}
	})
}
