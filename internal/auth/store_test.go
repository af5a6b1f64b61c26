package auth

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the watcher goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func authenticates(s *Store, user, password string) func() bool {
	return func() bool { _, ok := s.Table().Authenticate(user, password); return ok }
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStoreReload edits, replaces, corrupts and deletes a users file while
// the store watches it: every change applies within 2 s (the watcher's
// promise), a file that cannot be decoded keeps the previous users, a
// missing file leaves none, and nothing logged shows a password.
func TestStoreReload(t *testing.T) {
	for _, polling := range []bool{false, true} {
		name := "notify"
		if polling {
			name = "poll-only"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "users")
			writeFile(t, path, "alice apass-1 read\n")
			var logs syncBuffer
			s := NewStore(path, slog.New(slog.NewJSONHandler(&logs, nil)))
			if polling {
				// Without notifications only the poll sees changes.
				s.PollInterval = 200 * time.Millisecond
				s.noNotify = true
				s.Start()
			} else {
				s.PollInterval = time.Hour
				s.Start()
			}
			defer s.Close()
			if !authenticates(s, "alice", "apass-1")() {
				t.Fatal("initial load")
			}

			writeFile(t, path, "alice apass-2 read\nbob bpass-1 write\n")
			waitFor(t, "edit in place", 2*time.Second, authenticates(s, "bob", "bpass-1"))
			if authenticates(s, "alice", "apass-1")() {
				t.Error("old password still works")
			}

			tmp := filepath.Join(dir, "users.tmp")
			writeFile(t, tmp, "carol cpass-1 read\n")
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "atomic replace", 2*time.Second, authenticates(s, "carol", "cpass-1"))

			writeFile(t, path, "dave dpass-1 read\n\xff\n")
			waitFor(t, "undecodable file logged", 2*time.Second, func() bool { return strings.Contains(logs.String(), "keeping the previous users") })
			if !authenticates(s, "carol", "cpass-1")() || authenticates(s, "dave", "dpass-1")() {
				t.Error("an undecodable file replaced the users")
			}

			writeFile(t, path, "erin epass-1 read\nmalformed\n")
			waitFor(t, "malformed line skipped", 2*time.Second, authenticates(s, "erin", "epass-1"))

			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "deleted file", 2*time.Second, func() bool { return s.Table().Len() == 0 })

			writeFile(t, path, "frank fpass-1 read\n")
			waitFor(t, "recreated file", 2*time.Second, authenticates(s, "frank", "fpass-1"))

			for _, secret := range []string{"apass", "bpass", "cpass", "dpass", "epass", "fpass"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the log shows a password (%s):\n%s", secret, logs.String())
				}
			}
		})
	}
}

func TestCreateInitial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rapi", "users")
	const password = "N6XQ4KJ2XGJH7B5ZVJ3S4QW2AE"
	created, err := CreateInitial(path, DefaultAdmin, password)
	if err != nil || !created {
		t.Fatalf("CreateInitial: %v %v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, err %v", info.Mode().Perm(), err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), password) || !strings.Contains(string(data), "{HA1}"+HA1(DefaultAdmin, password)) {
		t.Errorf("the file keeps the password other than as its {HA1} hash:\n%s", data)
	}
	tab, warns, err := ParseUsers(data)
	if err != nil || len(warns) != 0 || tab.Len() != 1 {
		t.Fatalf("created file: %v users, warnings %v, err %v", tab.Len(), warns, err)
	}
	u, ok := tab.Authenticate(DefaultAdmin, password)
	if !ok || !u.HasOption(OptionWrite) {
		t.Errorf("the created user: %+v %v", u, ok)
	}
	created, err = CreateInitial(path, DefaultAdmin, "other")
	if err != nil || created {
		t.Errorf("second call: %v %v", created, err)
	}
	if data2, _ := os.ReadFile(path); !bytes.Equal(data, data2) {
		t.Error("second call changed the file")
	}
}
