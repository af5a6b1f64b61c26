package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpstreamPasswordNeverShown runs a gateway in front of a simulated
// one with a service user whose password is unique, through reads,
// writes, a job wait, upstream errors, an unreachable upstream and a
// refused start (credentials in the URL); then greps every log line,
// every answer body and every file the gateway wrote for the password.
func TestUpstreamPasswordNeverShown(t *testing.T) {
	const secret = "Upstream-Pw-7c1e5b90"
	backDir := t.TempDir()
	writeTestUsers(t, backDir)
	users := filepath.Join(backDir, "rapi", "users")
	f, err := os.OpenFile(users, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("svc " + secret + " write\n")
	_ = f.Close()
	back := startServerRaw(t, backDir, "--insecure")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	frontDir := t.TempDir()
	writeTestUsers(t, frontDir)
	front := startServerRaw(t, frontDir, "--insecure", "--upstream", "http://"+back.Addr,
		"--upstream-user", "svc", "--upstream-password-file", pwFile, "--log-level", "debug")
	base := "http://" + e2eUser + ":" + e2ePassword + "@" + front.Addr

	var bodies []string
	req := func(method, path, ctype, body string) {
		_, _, b := do(t, method, base+path, ctype, body)
		bodies = append(bodies, string(b))
	}
	req("GET", "/2/info", "", "")
	req("GET", "/2/instances?bulk=1", "", "")
	req("GET", "/2/instances/no-such-instance", "", "")
	req("PUT", "/2/tags?tag=secret-test", "", "")
	req("GET", "/2/jobs/1/wait", "application/json", `{"fields": ["status"], "previous_job_info": null, "previous_log_serial": null}`)
	req("PUT", "/2/query/instance", "application/json", `{"fields": ["name"], "qfilter": ["=", "name"]}`)
	back.Stop(t) // the upstream goes away
	req("GET", "/2/info", "", "")
	req("PUT", "/2/tags?tag=secret-test-2", "", "")

	// A start with the credentials in the URL is refused, without echoing
	// them.
	cmd := exec.Command(serverBinary(t), "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--insecure",
		"--upstream", "http://svc:"+secret+"@"+back.Addr)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Error("a start with credentials in --upstream succeeded")
	}
	front.Stop(t)

	check := func(where, text string) {
		if strings.Contains(text, secret) {
			t.Errorf("%s shows the upstream password", where)
		}
	}
	check("the refused start's output", string(out))
	check("the front's log", front.Logs()+front.Stdout())
	check("the back's log", back.Logs()+back.Stdout())
	for i, b := range bodies {
		check("answer "+string(rune('0'+i)), b)
	}
	if len(front.Logs()) == 0 {
		t.Error("the front logged nothing")
	}
	err = filepath.WalkDir(frontDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.Contains(d.Name(), secret) {
			t.Errorf("file name %s has the password", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		check("file "+path, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
