package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
)

// runBinary runs the server binary with args and stdin, and returns its
// stdout, stderr and exit status.
func runBinary(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(serverBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestCommandLine: --version and version print the version; --help
// exits 0; unknown commands, stray arguments and unknown flags exit 2
// with one line and a usage hint; a setting that names a missing file is
// refused before the data dir is created.
func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	missingData := filepath.Join(dir, "data")
	for _, c := range []struct {
		args     []string
		code     int
		stdout   string // a substring, "" for empty
		stderr   string
		noStdout bool
	}{
		{args: []string{"--version"}, stdout: "ganeti-gateway "},
		{args: []string{"version"}, stdout: "ganeti-gateway "},
		{args: []string{"--help"}, stdout: "Usage: ganeti-gateway [flags]"},
		{args: []string{"-h"}, stdout: "--write-rate"},
		{args: []string{"users", "--help"}, stdout: "users add NAME"},
		{args: []string{"backup", "--help"}, stdout: "backup -o FILE"},
		{args: []string{"bogus"}, code: 2, stderr: `unknown command "bogus"`, noStdout: true},
		{args: []string{"--insecure", "stray"}, code: 2, stderr: `unexpected argument "stray"`, noStdout: true},
		{args: []string{"--no-such-flag"}, code: 2, stderr: "flag provided but not defined: -no-such-flag", noStdout: true},
		{args: []string{"version", "extra"}, code: 2, stderr: `unexpected argument "extra"`, noStdout: true},
		{args: []string{"--data-dir", missingData, "--cluster-file", filepath.Join(dir, "nope.json")}, code: 2, stderr: "--cluster-file", noStdout: true},
		{args: []string{"--data-dir", missingData, "--tls-cert", filepath.Join(dir, "c.pem")}, code: 2, stderr: "--tls-cert and --tls-key go together", noStdout: true},
		{args: []string{"--data-dir", missingData, "--listen", "5080"}, code: 2, stderr: "--listen", noStdout: true},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			stdout, stderr, code := runBinary(t, nil, "", c.args...)
			if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) || (c.noStdout && stdout != "") {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, c.code, stdout, stderr)
			}
			if c.code == 2 && (!strings.HasSuffix(stderr, "Run 'ganeti-gateway --help' for usage.\n") || strings.Count(stderr, "\n") != 2) {
				t.Errorf("want one line and the usage hint, got:\n%s", stderr)
			}
		})
	}
	if _, err := os.Lstat(missingData); err == nil {
		t.Errorf("a refused command line created the data dir %s", missingData)
	}
}

// TestDefaultWritesUnlimited: with default flags, 200 writes at once from
// one user all succeed, as on Ganeti (no per-user write rate limit by
// default; it was 20/s with a burst of 40).
func TestDefaultWritesUnlimited(t *testing.T) {
	p := startServer(t, "", "--insecure")
	base := "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr
	const writes = 200
	ids := make([]int64, writes)
	errs := make([]string, writes)
	var wg sync.WaitGroup
	work := make(chan int)
	start := time.Now()
	for range 20 {
		wg.Go(func() {
			for i := range work {
				ids[i], errs[i] = putTag(base, fmt.Sprintf("burst-%d", i))
			}
		})
	}
	for i := range writes {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	seen := map[int64]bool{}
	for i := range writes {
		if errs[i] != "" {
			t.Errorf("write %d: %s", i, errs[i])
		} else if seen[ids[i]] {
			t.Errorf("write %d: job id %d given twice", i, ids[i])
		}
		seen[ids[i]] = true
	}
	t.Logf("%d writes in %v", writes, elapsed)
}

// putTag adds a cluster tag and returns the job id, or what went wrong.
func putTag(base, tag string) (int64, string) {
	return submitLegacy(http.DefaultClient, "PUT", base+"/2/tags?tag="+tag)
}

// submitLegacy calls a legacy route that answers a job id, and returns it, or
// what went wrong.
func submitLegacy(client *http.Client, method, url string) (int64, string) {
	req, _ := http.NewRequest(method, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var id int64
	if resp.StatusCode != 200 || json.Unmarshal(body, &id) != nil || id <= 0 {
		return 0, fmt.Sprintf("%d %s", resp.StatusCode, body)
	}
	return id, ""
}

// TestUsersCommand: users add writes an {HA1} line (keeping the other
// lines) with the options given, the password read from stdin; the server
// authenticates the user with those options; users passwd changes the
// password of a running server's user, which applies without a restart.
func TestUsersCommand(t *testing.T) {
	dataDir := t.TempDir()
	usersFile := writeTestUsers(t, dataDir)
	before, _ := os.ReadFile(usersFile)
	users := func(stdin string, args ...string) (string, int) {
		t.Helper()
		_, stderr, code := runBinary(t, []string{"GANETI_GATEWAY_DATA_DIR=" + dataDir}, stdin, append([]string{"users"}, args...)...)
		return stderr, code
	}
	if stderr, code := users("s3cret\n", "add", "ops", "--write"); code != 0 {
		t.Fatalf("users add: exit %d: %s", code, stderr)
	}
	if stderr, code := users("other\n", "add", "--read", "viewer", "--data-dir", dataDir); code != 0 {
		t.Fatalf("users add --read: exit %d: %s", code, stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "ops"}, "the user exists"},
		{[]string{"passwd", "nobody"}, "no such user"},
		{[]string{"add", "a:b"}, "':'"},
		{[]string{"add"}, "want one user name"},
	} {
		if stderr, code := users("x\n", c.args...); code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("users %v: exit %d: %s; want an error about %s", c.args, code, stderr, c.want)
		}
	}
	if stderr, code := users("", "passwd", "ops"); code == 0 || !strings.Contains(stderr, "no password") {
		t.Errorf("users passwd with nothing on stdin: exit %d: %s", code, stderr)
	}
	data, _ := os.ReadFile(usersFile)
	if !strings.HasPrefix(string(data), string(before)) || strings.Contains(string(data), "s3cret") ||
		!strings.Contains(string(data), "\nops {HA1}"+auth.HA1("ops", "s3cret")+" write\n") {
		t.Errorf("users file:\n%s", data)
	}

	p := startServer(t, dataDir, "--insecure")
	as := func(user, password string) string { return "http://" + user + ":" + password + "@" + p.Addr }
	if _, msg := putTag(as("ops", "s3cret"), "from-ops"); msg != "" {
		t.Errorf("ops (write) could not write: %s", msg)
	}
	if _, msg := putTag(as("viewer", "other"), "from-viewer"); !strings.HasPrefix(msg, "403") {
		t.Errorf("viewer (read) write: %q, want 403", msg)
	}
	if code, _, body := doHeaders(t, "GET", as("viewer", "other")+"/2/info", nil, ""); code != 200 {
		t.Errorf("viewer read: %d %s", code, body)
	}

	if stderr, code := users("n3w\n", "passwd", "ops"); code != 0 {
		t.Fatalf("users passwd: exit %d: %s", code, stderr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, msg := putTag(as("ops", "n3w"), "after-passwd")
		if msg == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new password was not taken without a restart: %s", msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, msg := putTag(as("ops", "s3cret"), "old"); !strings.HasPrefix(msg, "401") {
		t.Errorf("the old password: %q, want 401", msg)
	}
}

// TestBackupDuringJobs: a backup taken from the running server's admin
// listener during a burst of jobs verifies; restored into a new data dir,
// the server starts on it and has every job acknowledged before the
// backup began. A backup from the data dir of a running server is
// refused; of a stopped one, it works.
func TestBackupDuringJobs(t *testing.T) {
	dataDir := t.TempDir()
	p := startServer(t, dataDir, "--insecure", "--admin-listen", "127.0.0.1:0")
	admin := adminAddr(t, p)
	base := "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr

	var (
		mu    sync.Mutex
		acked []int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, msg := putTag(base, fmt.Sprintf("b%d-%d", w, i))
				if msg != "" {
					t.Errorf("write: %s", msg)
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	before := append([]int64(nil), acked...)
	mu.Unlock()
	backup := filepath.Join(t.TempDir(), "backup.db")
	stdout, stderr, code := runBinary(t, nil, "", "backup", "--admin", admin, "-o", backup)
	time.Sleep(200 * time.Millisecond) // jobs go on after the backup
	close(stop)
	wg.Wait()
	if code != 0 || !strings.Contains(stdout, "verified") {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}
	if len(before) < 10 || len(acked) <= len(before) {
		t.Fatalf("%d jobs before the backup, %d in all: not a burst around it", len(before), len(acked))
	}
	if rep, err := boltstore.Verify(backup); err != nil || !rep.Checksums {
		t.Fatalf("the backup: %+v %v", rep, err)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v %v, want mode 0600", fi.Mode().Perm(), err)
	}
	if _, stderr, code := runBinary(t, nil, "", "backup", "--data-dir", dataDir, "-o", backup+".2"); code != 1 || !strings.Contains(stderr, "--admin") {
		t.Errorf("backup from a running server's data dir: exit %d: %s", code, stderr)
	}
	p.Stop(t)
	if stdout, stderr, code := runBinary(t, nil, "", "backup", "--data-dir", dataDir, "-o", backup+".offline"); code != 0 {
		t.Errorf("backup from a stopped server's data dir: exit %d: %s%s", code, stdout, stderr)
	}

	restored := t.TempDir()
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, boltstore.FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	p2 := startServer(t, restored, "--insecure")
	base2 := "http://" + e2eUser + ":" + e2ePassword + "@" + p2.Addr
	for _, id := range before {
		if code, _, body := doHeaders(t, "GET", fmt.Sprintf("%s/2/jobs/%d", base2, id), nil, ""); code != 200 {
			t.Errorf("job %d, acknowledged before the backup: %d %s", id, code, body)
		}
	}
	t.Logf("%d jobs acknowledged before the backup, %d in all; all of the first found after the restore", len(before), len(acked))
}
