package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debianPython is Debian's interpreter, which has python3-ganeti-rapi.
const debianPython = "/usr/bin/python3"

// requireRapiClient skips (or fails under CI=true) when Debian's
// python3-ganeti-rapi is not installed.
func requireRapiClient(t *testing.T) {
	t.Helper()
	out, err := exec.Command(debianPython, "-c", "import ganeti.rapi.client, pycurl").CombinedOutput()
	if err == nil {
		return
	}
	msg := "Debian's python3-ganeti-rapi and python3-pycurl are needed (apt-get install python3-ganeti-rapi python3-pycurl): " + strings.TrimSpace(string(out))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestOfficialClientReads runs the official Python client's read methods
// against a server process on the embedded demo cluster, over verified TLS,
// authenticated as a user with the "read" option (authentication is
// required by default).
func TestOfficialClientReads(t *testing.T) {
	requireRapiClient(t)
	p := startServer(t, "")
	host, port, _ := strings.Cut(p.Addr, ":")
	expect, err := json.Marshal(demoExpectations(t))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(debianPython, filepath.Join("testdata", "rapi_reads.py"))
	cmd.Env = append(os.Environ(),
		"RAPI_HOST=localhost", "RAPI_PORT="+port,
		"RAPI_CAFILE="+filepath.Join(p.DataDir, "tls.crt"),
		"RAPI_USER=reader", "RAPI_PASSWORD=readpass",
		"EXPECT="+string(expect))
	_ = host
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("official client checks failed: %v\nserver log:\n%s", err, p.Logs())
	}
	if !strings.Contains(string(out), " 0 failed") {
		t.Fatal("no summary line from the client script")
	}
}
