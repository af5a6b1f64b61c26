package main

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/gateway"
	"github.com/ganeti-gateway/ganeti-gateway/internal/buildinfo"
	"github.com/ganeti-gateway/ganeti-gateway/server"
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

func TestRateFlag(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"20/s", 20, true},
		{"20", 20, true},
		{"120/m", 2, true},
		{"3600/h", 1, true},
		{"0.5/s", 0.5, true},
		{"off", -1, true},
		{"OFF", -1, true},
		{"0", 0, false},
		{"-1/s", 0, false},
		{"20/d", 0, false},
		{"x/s", 0, false},
		{"NaN", 0, false},
		{"Inf/s", 0, false},
	} {
		var r rateFlag
		err := r.Set(c.in)
		if (err == nil) != c.ok || (c.ok && float64(r) != c.want) {
			t.Errorf("Set(%q) = %v, %v; want %v ok=%v", c.in, float64(r), err, c.want, c.ok)
		}
	}
	t.Setenv("GANETI_GATEWAY_WRITE_RATE", "60/m")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var r rateFlag = 20
	fs.Var(&r, "write-rate", "")
	if err := applyEnv(fs); err != nil || r != 1 {
		t.Errorf("from the environment: %v %v", float64(r), err)
	}
}

// TestTrustedProxiesFlag: --trusted-proxies takes a list from the command
// line or GANETI_GATEWAY_TRUSTED_PROXIES, and a bad item stops the server
// before it starts.
func TestTrustedProxiesFlag(t *testing.T) {
	t.Setenv("GANETI_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var tp gateway.TrustedProxies
	fs.Var(&tp, "trusted-proxies", "")
	if err := applyEnv(fs); err != nil || tp.String() != "10.0.0.0/8,192.0.2.7/32" {
		t.Errorf("from the environment: %q, %v", tp.String(), err)
	}
	var errb bytes.Buffer
	code := run([]string{"--data-dir", t.TempDir(), "--trusted-proxies", "10.0.0.0/8,proxy.example.com"},
		stdio{in: strings.NewReader(""), out: io.Discard, err: &errb})
	if code != ExitUsage || !strings.Contains(errb.String(), "proxy.example.com") {
		t.Errorf("run with a bad --trusted-proxies: exit %d, %s", code, errb.String())
	}
}

// TestVersionStamped: the values make build stamps are what version and
// --version print.
func TestVersionStamped(t *testing.T) {
	old := [3]string{buildinfo.Version, buildinfo.Commit, buildinfo.Date}
	t.Cleanup(func() { buildinfo.Version, buildinfo.Commit, buildinfo.Date = old[0], old[1], old[2] })
	buildinfo.Version, buildinfo.Commit, buildinfo.Date = "v9.8.7", "0123abcd", "2026-01-02T03:04:05Z"
	for _, args := range [][]string{{"version"}, {"--version"}, {"--insecure", "-version"}} {
		var out, errb bytes.Buffer
		code := run(args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
		want := "ganeti-gateway v9.8.7 (commit 0123abcd, built 2026-01-02T03:04:05Z, "
		if code != 0 || !strings.HasPrefix(out.String(), want) || errb.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	for _, c := range []struct {
		args  []string
		pos   []string
		write bool
		dir   string
	}{
		{[]string{"ops", "--write"}, []string{"ops"}, true, ""},
		{[]string{"--data-dir", "/d", "ops"}, []string{"ops"}, false, "/d"},
		{[]string{"a", "--write", "b", "--data-dir=/x"}, []string{"a", "b"}, true, "/x"},
		{[]string{"--", "--write"}, []string{"--write"}, false, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		write := fs.Bool("write", false, "")
		dir := fs.String("data-dir", "", "")
		pos, err := parseInterleaved(fs, c.args, stdio{out: io.Discard, err: io.Discard})
		if err != nil || strings.Join(pos, " ") != strings.Join(c.pos, " ") || *write != c.write || *dir != c.dir {
			t.Errorf("%v: %v %v %v %v", c.args, pos, *write, *dir, err)
		}
	}
}

func TestDialAddr(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"9090", "127.0.0.1:9090"},
		{":9090", "127.0.0.1:9090"},
		{"0.0.0.0:9090", "127.0.0.1:9090"},
		{"[::]:9090", "[::1]:9090"},
		{"10.0.0.1:9090", "10.0.0.1:9090"},
		{"localhost:9090", "localhost:9090"},
		{"x", ""},
	} {
		got, err := server.AdminDialAddr(c.in)
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("AdminDialAddr(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
