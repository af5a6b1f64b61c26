package main

import (
	"flag"
	"testing"
	"time"
)

// TestEnvironment checks that every flag has an environment variable and
// that the command line wins over it.
func TestEnvironment(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	listen := fs.String("listen", ":5080", "")
	insecure := fs.Bool("insecure", false, "")
	timeout := fs.Duration("idle-timeout", time.Minute, "")
	dataDir := fs.String("data-dir", "./data", "")
	t.Setenv("GANETI_GATEWAY_LISTEN", "127.0.0.1:9999")
	t.Setenv("GANETI_GATEWAY_INSECURE", "true")
	t.Setenv("GANETI_GATEWAY_IDLE_TIMEOUT", "5s")
	t.Setenv("GANETI_GATEWAY_DATA_DIR", "/from/env")
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--data-dir", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:9999" || !*insecure || *timeout != 5*time.Second || *dataDir != "/from/flag" {
		t.Errorf("got listen %q insecure %v timeout %v data-dir %q", *listen, *insecure, *timeout, *dataDir)
	}
	t.Setenv("GANETI_GATEWAY_INSECURE", "maybe")
	if err := applyEnv(fs); err == nil {
		t.Error("a non-boolean value for a boolean flag was accepted")
	}
	if got := envName("read-header-timeout"); got != "GANETI_GATEWAY_READ_HEADER_TIMEOUT" {
		t.Errorf("envName = %q", got)
	}
}
