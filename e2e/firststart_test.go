package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/server/auth"
)

var noticePassword = regexp.MustCompile(`(?m)^\s+password: (\S+)$`)

// TestFirstStartUsersFile: without a users file the server creates one
// with a "write" user, prints its password once on stderr outside the JSON
// log, keeps only its {HA1} hash, and the password works; a restart prints
// nothing.
func TestFirstStartUsersFile(t *testing.T) {
	dataDir := t.TempDir()
	p := startServerRaw(t, dataDir, "--insecure")
	stderr := p.Logs()
	m := noticePassword.FindStringSubmatch(stderr)
	if m == nil || !strings.Contains(stderr, "user:     "+auth.DefaultAdmin) {
		t.Fatalf("no first-start notice on stderr:\n%s", stderr)
	}
	password := m[1]
	for _, line := range strings.Split(stderr, "\n") {
		if json.Valid([]byte(line)) && strings.Contains(line, password) {
			t.Errorf("a log line shows the password: %s", line)
		}
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

	p = startServerRaw(t, dataDir, "--insecure")
	if strings.Contains(p.Logs(), "password:") || strings.Contains(p.Logs(), password) {
		t.Errorf("second start printed a password:\n%s", p.Logs())
	}
	if code, _, _ := doHeaders(t, "GET", "http://"+p.Addr+"/2/info", admin, ""); code != 200 {
		t.Errorf("after a restart: %d", code)
	}
}
