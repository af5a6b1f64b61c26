package app

import (
	"path/filepath"
	"testing"
)

func TestCheckAndSetDefaults(t *testing.T) {
	c := Config{DataDir: "/d"}
	if err := c.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.UsersFile != filepath.Join("/d", "rapi", "users") || c.ReadTimeout != DefaultReadTimeout ||
		c.WriteRate != DefaultWriteRate || c.WriteBurst != DefaultWriteBurst || c.MaxWaiters != DefaultMaxWaiters ||
		c.Console == nil || c.AllowAnonymousReads {
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
	} {
		if err := bad.CheckAndSetDefaults(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
