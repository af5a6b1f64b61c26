package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// moveInstanceTool is Ganeti's unmodified move-instance (Debian's
// ganeti-3.0), run with Debian's python3 (its modules are beside it).
const moveInstanceTool = "/usr/share/ganeti/3.0/move-instance"

func requireMoveInstance(t *testing.T) {
	t.Helper()
	out, err := exec.Command(debianPython, moveInstanceTool, "--help").CombinedOutput()
	if err == nil {
		return
	}
	msg := "Ganeti's move-instance is needed (apt-get install ganeti-3.0 python3-pycurl): " + strings.TrimSpace(string(out))
	skipOrFailInCI(t, msg)
}

// miCluster is one of the two clusters of a move.
type miCluster struct {
	p      *serverProcess
	port   string
	client *http.Client
}

func startMICluster(t *testing.T, args ...string) *miCluster {
	t.Helper()
	p := startServer(t, "", args...)
	_, port, _ := strings.Cut(p.Addr, ":")
	pem, err := os.ReadFile(filepath.Join(p.DataDir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &miCluster{p: p, port: port, client: &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}}
}

// get reads a RAPI resource as e2eUser; it returns the status code and
// the decoded body.
func (c *miCluster) get(t *testing.T, path string) (int, any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://localhost:"+c.port+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(e2eUser, e2ePassword)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, v
}

func (c *miCluster) mustGet(t *testing.T, path string) any {
	t.Helper()
	code, v := c.get(t, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, code, v)
	}
	return v
}

// snapshot is what a failed move must leave unchanged: the instances and
// the nodes' free resources.
func (c *miCluster) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, i := range c.mustGet(t, "/2/instances?bulk=1").([]any) {
		m := i.(map[string]any)
		fmt.Fprintf(&b, "instance %v %v %v %v %v\n", m["name"], m["status"], m["pnode"], m["disk.sizes"], m["beparams"])
	}
	for _, n := range c.mustGet(t, "/2/nodes?bulk=1").([]any) {
		m := n.(map[string]any)
		fmt.Fprintf(&b, "node %v mfree=%v dfree=%v pinst=%v\n", m["name"], m["mfree"], m["dfree"], m["pinst_cnt"])
	}
	return b.String()
}

// checkNoRunningJobs fails if a job of c has not ended.
func (c *miCluster) checkNoRunningJobs(t *testing.T) {
	t.Helper()
	for _, j := range c.mustGet(t, "/2/jobs?bulk=1").([]any) {
		m := j.(map[string]any)
		switch m["status"] {
		case "success", "error", "canceled":
		default:
			t.Errorf("job %v is %v: %v", m["id"], m["status"], m["ops"])
		}
	}
}

// destClusterFile is the demo cluster without instances, named
// dest.example.com: the destination of the moves.
func destClusterFile(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "deploy", "demo-cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	c["cluster"].(map[string]any)["name"] = "dest.example.com"
	c["instances"] = []any{}
	out, _ := json.Marshal(c)
	path := filepath.Join(t.TempDir(), "dest-cluster.json")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runMoveInstance runs the unmodified tool from src to dst. The tool
// needs --opportunistic-tries (or --iallocator) under Python 3: without
// either it compares None with 0 and crashes before connecting.
func runMoveInstance(t *testing.T, src, dst *miCluster, instance string) (string, error) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(e2ePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython, moveInstanceTool, "--verbose", "--opportunistic-tries=0",
		"--src-rapi-port", src.port, "--src-ca-file", filepath.Join(src.p.DataDir, "tls.crt"),
		"--src-username", e2eUser, "--src-password-file", pw,
		"--dest-rapi-port", dst.port, "--dest-ca-file", filepath.Join(dst.p.DataDir, "tls.crt"),
		"localhost", "localhost", instance)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestMoveInstance moves an instance between two server processes with
// Ganeti's unmodified move-instance: prepare-export in remote mode, the
// X509 handshake, a remote-import create on the destination and a remote
// export (with removal) on the source, all through RAPI.
func TestMoveInstance(t *testing.T) {
	requireMoveInstance(t)
	secret := filepath.Join(t.TempDir(), "cluster-domain-secret")
	if err := os.WriteFile(secret, []byte("7c9e6679f1a2b3c4d5e6f708192a3b4c5d6e7f80\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	destFile := destClusterFile(t)
	src := startMICluster(t, "--cluster-domain-secret-file", secret)
	dst := startMICluster(t, "--cluster-file", destFile, "--cluster-domain-secret-file", secret)

	const name = "db1.example.com"
	before := src.mustGet(t, "/2/instances/"+name).(map[string]any)
	out, err := runMoveInstance(t, src, dst, name)
	if err != nil {
		t.Fatalf("move-instance: %v\n%s\nsource log:\n%s\ndestination log:\n%s", err, out, src.p.Logs(), dst.p.Logs())
	}
	if !strings.Contains(out, name+": Success") {
		t.Fatalf("move-instance did not report success:\n%s", out)
	}
	if code, v := src.get(t, "/2/instances/"+name); code != http.StatusNotFound {
		t.Errorf("source still has %s: %d %v", name, code, v)
	}
	after := dst.mustGet(t, "/2/instances/"+name).(map[string]any)
	if after["status"] != "running" || after["admin_state"] != "up" {
		t.Errorf("on the destination: status %v, admin_state %v", after["status"], after["admin_state"])
	}
	for _, field := range []string{"disk.sizes", "disk_template", "os", "hypervisor", "nic.macs"} {
		if !reflect.DeepEqual(after[field], before[field]) {
			t.Errorf("%s: %v on the destination, %v on the source", field, after[field], before[field])
		}
	}
	for _, p := range []string{"maxmem", "minmem", "vcpus"} {
		if a, b := after["beparams"].(map[string]any)[p], before["beparams"].(map[string]any)[p]; a != b {
			t.Errorf("beparams %s: %v on the destination, %v on the source", p, a, b)
		}
	}
	src.checkNoRunningJobs(t)
	dst.checkNoRunningJobs(t)
}

// TestMoveInstanceWrongSecret: clusters with different domain secrets
// (each generated its own on first start) do not trust each other; the
// move fails cleanly and changes neither cluster.
func TestMoveInstanceWrongSecret(t *testing.T) {
	requireMoveInstance(t)
	src := startMICluster(t)
	dst := startMICluster(t, "--cluster-file", destClusterFile(t))
	srcBefore, dstBefore := src.snapshot(t), dst.snapshot(t)

	out, err := runMoveInstance(t, src, dst, "db1.example.com")
	if err == nil {
		t.Fatalf("move-instance succeeded between clusters with different secrets:\n%s", out)
	}
	if !strings.Contains(out, "clusters don't share the same domain secret") {
		t.Errorf("move-instance output lacks the handshake error:\n%s", out)
	}
	if got := src.snapshot(t); got != srcBefore {
		t.Errorf("source changed:\n%s\nwas\n%s", got, srcBefore)
	}
	if got := dst.snapshot(t); got != dstBefore {
		t.Errorf("destination changed:\n%s\nwas\n%s", got, dstBefore)
	}
	src.checkNoRunningJobs(t)
	dst.checkNoRunningJobs(t)
}
