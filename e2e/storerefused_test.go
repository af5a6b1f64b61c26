package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runServerToExit runs the binary on dataDir and waits for it to exit
// (it must: the test expects a refused start); it returns the exit status
// and what it wrote on stderr.
func runServerToExit(t *testing.T, dataDir string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"--listen", "127.0.0.1:0", "--data-dir", dataDir}, args...)
	cmd := exec.CommandContext(ctx, serverBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the server did not exit with an error (%v):\n%s", err, stderr.String())
	}
	return exit.ExitCode(), stderr.String()
}

// submitTags submits n cluster tag jobs and waits until they succeeded.
func submitTags(t *testing.T, base string, n int) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		code, _, body := do(t, "PUT", fmt.Sprintf("%s/2/tags?tag=t%d", base, i), "", "")
		var id int64
		if code != 200 || json.Unmarshal(body, &id) != nil {
			t.Fatalf("PUT /2/tags: %d %s", code, body)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, _, body := do(t, "GET", fmt.Sprintf("%s/2/jobs/%d", base, id), "", "")
			var j struct{ Status string }
			_ = json.Unmarshal(body, &j)
			if j.Status == "success" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %d: %s", id, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return ids
}

// TestRefusedStoreProcess: after jobs ran, a removed, emptied or
// truncated state.db makes the real binary refuse to start (exit status 3,
// the file and the way out on stderr and in the JSON log) without creating
// a new cluster; restoring the file brings everything back, and --reinit
// begins a new cluster, keeping the refused file aside.
func TestRefusedStoreProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server several times")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "state.db")
	p := startServer(t, dir, "--insecure")
	base := "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr
	ids := submitTags(t, base, 5)
	p.Stop(t)
	backup, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}

	refused := func(name, want string) {
		t.Helper()
		code, stderr := runServerToExit(t, dir, "--insecure")
		if code != 3 {
			t.Errorf("%s: exit status %d, want 3:\n%s", name, code, stderr)
		}
		plain := ""
		logged := false
		for _, line := range strings.Split(stderr, "\n") {
			if strings.HasPrefix(line, "ganeti-gateway: refusing to start") {
				plain = line
			}
			var rec struct{ Msg, Path string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "store refused" && rec.Path == db {
				logged = true
			}
		}
		for _, w := range []string{db, want, "--reinit", "from a backup"} {
			if !strings.Contains(plain, w) {
				t.Errorf("%s: the message %q lacks %q (stderr:\n%s)", name, plain, w, stderr)
			}
		}
		if !logged {
			t.Errorf("%s: no \"store refused\" log line:\n%s", name, stderr)
		}
	}

	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	refused("removed", "is missing")
	if _, err := os.Stat(db); err == nil {
		t.Fatal("a refused start created state.db")
	}
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refused("emptied", "is empty (0 bytes)")
	if err := os.WriteFile(db, backup[:len(backup)/2+100], 0o600); err != nil {
		t.Fatal(err)
	}
	refused("truncated", "is damaged")

	// Restoring the file is a way out: the jobs are all there.
	if err := os.WriteFile(db, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	p = startServer(t, dir, "--insecure")
	base = "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr
	for _, id := range ids {
		if code, _, body := do(t, "GET", fmt.Sprintf("%s/2/jobs/%d", base, id), "", ""); code != 200 || !strings.Contains(string(body), `"success"`) {
			t.Errorf("restored job %d: %d %s", id, code, body)
		}
	}
	next := submitTags(t, base, 1)
	if next[0] <= ids[len(ids)-1] {
		t.Errorf("a job after the restore got id %d, not above %d", next[0], ids[len(ids)-1])
	}
	p.Stop(t)

	// --reinit is the other: a new cluster, the old file kept.
	if err := os.Truncate(db, 0); err != nil {
		t.Fatal(err)
	}
	p = startServer(t, dir, "--insecure", "--reinit")
	if !strings.Contains(p.Logs(), "--reinit: beginning a new cluster") {
		t.Errorf("no --reinit log line:\n%s", p.Logs())
	}
	base = "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr
	if code, _, body := do(t, "GET", base+"/2/jobs", "", ""); code != 200 || string(bytes.TrimSpace(body)) != "[]" {
		t.Errorf("GET /2/jobs after --reinit: %d %s", code, body)
	}
	p.Stop(t)
	if kept, _ := filepath.Glob(db + ".reinit-*"); len(kept) != 1 {
		t.Errorf("refused file kept as %v", kept)
	}
}

// TestDamagedArchivedJobProcess: an archived job record damaged while the
// server runs is a 500 with Ganeti's error body (no Go error text), never
// "not found" or other data; at the next start the damage refuses the
// start, naming the record.
func TestDamagedArchivedJobProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server twice")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "state.db")
	p := startServer(t, dir, "--insecure", "--job-archive-after", "1ms")
	base := "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr
	id := submitTags(t, base, 1)[0]
	// Archived: no longer listed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, body := do(t, "GET", base+"/2/jobs", "", "")
		if !strings.Contains(string(body), fmt.Sprintf(`"id": %d`, id)) && !strings.Contains(string(body), fmt.Sprintf(`"id":%d`, id)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d not archived: %s", id, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Damage every copy of the record on disk (bbolt keeps older ones in
	// free pages), under the running server.
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	rec := []byte(fmt.Sprintf(`{"id":%d,"ops":`, id))
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for off := 0; ; {
		i := bytes.Index(data[off:], rec)
		if i < 0 {
			break
		}
		// A status of the record, not its id: the damage is in the value.
		j := bytes.Index(data[off+i:], []byte(`"success"`))
		if j < 0 {
			break
		}
		if _, err := f.WriteAt([]byte(`"sUccess"`), int64(off+i+j)); err != nil {
			t.Fatal(err)
		}
		n++
		off += i + len(rec)
	}
	f.Close()
	if n == 0 {
		t.Fatal("the job record is not in state.db")
	}
	code, _, body := do(t, "GET", fmt.Sprintf("%s/2/jobs/%d", base, id), "", "")
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if code != 500 || json.Unmarshal(body, &e) != nil || e.Code != 500 {
		t.Errorf("GET /2/jobs/%d of a damaged record: %d %s, want 500 with Ganeti's error body", id, code, body)
	}
	for _, leak := range []string{"checksum", "jobs-archive", "record", "boltstore", "sUccess"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("the answer shows %q: %s", leak, body)
		}
	}
	for end := time.Now().Add(5 * time.Second); !strings.Contains(p.Logs(), "reading an archived job failed"); {
		if time.Now().After(end) {
			t.Errorf("the damage was not logged:\n%s", p.Logs())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Stop(t)
	exit, stderr := runServerToExit(t, dir, "--insecure")
	if want := fmt.Sprintf("record jobs-archive/%020d: checksum mismatch", id); exit != 3 || !strings.Contains(stderr, want) {
		t.Errorf("restart: exit %d, want 3 and %q:\n%s", exit, want, stderr)
	}
}
