package selfsigned

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	cert, err := LoadOrCreate(dir, []string{"gw.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", info.Mode().Perm())
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, host := range []string{"localhost", "gw.example.com", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: pool}); err == nil {
		t.Error("certificate verified for a host it does not name")
	}
	again, err := LoadOrCreate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(again) != Fingerprint(cert) {
		t.Error("second start created a new certificate instead of reusing it")
	}
	if len(Fingerprint(cert)) != 95 {
		t.Errorf("fingerprint %q has the wrong length", Fingerprint(cert))
	}
}
