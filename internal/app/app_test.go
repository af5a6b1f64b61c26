package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckAndSetDefaults(t *testing.T) {
	c := Config{DataDir: "/d"}
	if err := c.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.UsersFile != filepath.Join("/d", "rapi", "users") || c.ReadTimeout != DefaultReadTimeout ||
		c.WriteRate != 0 || c.WriteBurst != DefaultWriteBurst || c.MaxWaiters != DefaultMaxWaiters ||
		c.AllowAnonymousReads {
		t.Errorf("defaults: %+v", c)
	}
	unlimited := Config{WriteRate: -1, MaxWaiters: -1}
	if err := unlimited.CheckAndSetDefaults(); err != nil || unlimited.WriteRate != -1 || unlimited.MaxWaiters != -1 {
		t.Errorf("negative limits must stay (no limit): %+v %v", unlimited, err)
	}
	for _, bad := range []Config{
		{Insecure: true, ClientCA: "ca.pem"},
		{Insecure: true, TLSCert: "c", TLSKey: "k"},
		{TLSCert: "c"},
		{Listen: "5080"},
		{Listen: "127.0.0.1:http-nope"},
		{Listen: "[::1:5080"},
	} {
		if err := bad.CheckAndSetDefaults(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// TestValidateWritesNothing: a config naming a file that is missing or
// wrong is refused before the data dir is created or anything written.
func TestValidateWritesNothing(t *testing.T) {
	dir := t.TempDir()
	notCert := filepath.Join(dir, "not-a-cert.pem")
	if err := os.WriteFile(notCert, []byte("no PEM here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing cluster file", Config{ClusterFile: filepath.Join(dir, "nope.json"), Insecure: true}, "--cluster-file"},
		{"bad cluster file", Config{ClusterFile: notCert, Insecure: true}, "--cluster-file"},
		{"missing certificate", Config{TLSCert: filepath.Join(dir, "c.pem"), TLSKey: filepath.Join(dir, "k.pem")}, "--tls-cert"},
		{"client CA without certificates", Config{ClientCA: notCert}, "--client-ca"},
		{"missing domain secret", Config{ClusterDomainSecretFile: filepath.Join(dir, "secret"), Insecure: true}, "--cluster-domain-secret-file"},
		{"bad listen address", Config{Listen: "localhost", Insecure: true}, "--listen"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dataDir := filepath.Join(dir, "data-"+strings.ReplaceAll(c.name, " ", "-"))
			c.cfg.DataDir = dataDir
			if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate: %v, want an error about %s", err, c.want)
			}
			a, err := New(t.Context(), c.cfg)
			if err == nil {
				a.Close()
				t.Fatal("New accepted the config")
			}
			if _, err := os.Lstat(dataDir); err == nil {
				t.Errorf("New created the data dir %s before refusing the config", dataDir)
			}
		})
	}
}
