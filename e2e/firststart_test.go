package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/deploy"
	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/server"
)

// TestFirstStartUsersFile: without a users file the server creates one
// with a "write" user, writes its password once to a 0600 file in the data
// dir, and nowhere else: not on stdout, not on stderr (the log under
// systemd and Kubernetes), whose log line names the file. The users file
// keeps only the {HA1} hash; the password works; a restart writes nothing.
// A restart with --cluster-file logs that the file is ignored.
func TestFirstStartUsersFile(t *testing.T) {
	dataDir := t.TempDir()
	p := startServerRaw(t, dataDir, "--insecure")
	pwFile := filepath.Join(dataDir, server.InitialPasswordFile)
	fi, err := os.Stat(pwFile)
	if err != nil {
		t.Fatalf("no password file: %v\n%s", err, p.Logs())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %o, want 0600", pwFile, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSuffix(string(raw), "\n")
	if len(password) < 20 || strings.ContainsAny(password, " \n") {
		t.Fatalf("password file holds %q", raw)
	}
	if out := p.Stdout() + p.Logs(); strings.Contains(out, password) {
		t.Errorf("the password appears on stdout or stderr:\n%s", out)
	}
	if !logHas(p.Logs(), "password_file", pwFile) {
		t.Errorf("no log line names the password file %s:\n%s", pwFile, p.Logs())
	}
	data, err := os.ReadFile(filepath.Join(dataDir, "rapi", "users"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), password) || !strings.Contains(string(data), auth.DefaultAdmin+" {HA1}"+auth.HA1(auth.DefaultAdmin, password)+" write") {
		t.Errorf("users file:\n%s", data)
	}

	base := "http://" + p.Addr
	admin := map[string]string{"Authorization": auth.BasicAuthorization(auth.DefaultAdmin, password)}
	if code, _, body := doHeaders(t, "GET", base+"/2/info", admin, ""); code != 200 {
		t.Errorf("GET /2/info as %s: %d %s", auth.DefaultAdmin, code, body)
	}
	if code, _, _ := doHeaders(t, "PUT", base+"/2/tags?tag=x", admin, ""); code != 200 && code != 501 {
		t.Errorf("write as %s: %d, want past authentication", auth.DefaultAdmin, code)
	}
	if code, _, _ := doHeaders(t, "GET", base+"/2/info", nil, ""); code != 401 {
		t.Errorf("anonymous GET /2/info: %d, want 401", code)
	}
	p.Stop(t)

	clusterFile := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(clusterFile, deploy.DemoCluster, 0o600); err != nil {
		t.Fatal(err)
	}
	p = startServerRaw(t, dataDir, "--insecure", "--cluster-file", clusterFile)
	if strings.Contains(p.Logs()+p.Stdout(), password) {
		t.Errorf("second start printed the password:\n%s", p.Logs())
	}
	if after, _ := os.ReadFile(pwFile); string(after) != string(raw) {
		t.Errorf("second start changed the password file")
	}
	if !logHas(p.Logs(), "cluster_file", clusterFile) || !strings.Contains(p.Logs(), `"level":"WARN"`) {
		t.Errorf("no warning that --cluster-file %s is ignored:\n%s", clusterFile, p.Logs())
	}
	if code, _, _ := doHeaders(t, "GET", "http://"+p.Addr+"/2/info", admin, ""); code != 200 {
		t.Errorf("after a restart: %d", code)
	}
}

// logHas tells whether a JSON log line has the attribute key = value.
func logHas(logs, key, value string) bool {
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec[key] == value {
			return true
		}
	}
	return false
}
