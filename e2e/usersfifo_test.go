//go:build unix

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUsersFileFIFO runs the server binary, replaces its users file by a
// FIFO that nobody writes to, and checks that the server refuses it (no
// users: 401, an error logged), keeps reloading (a regular file put back
// applies within 2 s, the revocation of a user in it included), and that
// SIGTERM with the FIFO in place ends the process within a few seconds.
// Reading the FIFO used to block the reload for good and then the shutdown.
func TestUsersFileFIFO(t *testing.T) {
	p := startServer(t, "", "--insecure")
	users := filepath.Join(p.DataDir, "rapi", "users")
	url := func(user, password string) string {
		return "http://" + user + ":" + password + "@" + p.Addr + "/2/info"
	}
	status := func(user, password string) int {
		code, _, _ := do(t, "GET", url(user, password), "", "")
		return code
	}
	within := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v\nserver log:\n%s", what, d, p.Logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if c := status("writer", "writepass"); c != 200 {
		t.Fatalf("writer before: %d", c)
	}
	replaceByFIFO := func() {
		t.Helper()
		fifo := users + ".fifo"
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		if err := os.Rename(fifo, users); err != nil {
			t.Fatal(err)
		}
	}

	replaceByFIFO()
	within("the FIFO refused (no users)", 2*time.Second, func() bool { return status(e2eUser, e2ePassword) == 401 })
	if !strings.Contains(p.Logs(), "the users file is not a regular file") {
		t.Errorf("no error logged for the FIFO:\n%s", p.Logs())
	}

	// A regular file again, without the writer: e2e is back, writer revoked.
	tmp := users + ".tmp"
	if err := os.WriteFile(tmp, []byte(e2eUser+" "+e2ePassword+" read,write\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, users); err != nil {
		t.Fatal(err)
	}
	within("the regular file after the FIFO", 2*time.Second, func() bool { return status(e2eUser, e2ePassword) == 200 })
	if c := status("writer", "writepass"); c != 401 {
		t.Errorf("revoked writer: %d, want 401", c)
	}

	// The FIFO again, then SIGTERM: the process ends promptly.
	replaceByFIFO()
	within("the second FIFO refused", 2*time.Second, func() bool { return status(e2eUser, e2ePassword) == 401 })
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("no exit within 5 s of SIGTERM\nserver log:\n%s", p.Logs())
	}
}
