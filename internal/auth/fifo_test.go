//go:build unix

package auth

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStoreFIFO replaces the users file by a FIFO (nobody writes to it)
// while the store watches it: the FIFO is refused with a logged error and
// leaves no users, the store keeps reloading (a regular file put back
// applies within 2 s, a revocation in it included), and Close returns at
// once. Opening the FIFO for reading used to block the reload for good.
func TestStoreFIFO(t *testing.T) {
	for _, polling := range []bool{false, true} {
		name := "notify"
		if polling {
			name = "poll-only"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "users")
			writeFile(t, path, "alice apass-1 read\nbob bpass-1 write\n")
			var logs syncBuffer
			s := NewStore(path, slog.New(slog.NewJSONHandler(&logs, nil)))
			s.PollInterval = time.Hour
			if polling {
				s.PollInterval = 200 * time.Millisecond
				s.noNotify = true
			}
			s.Start()
			closed := false
			defer func() {
				if !closed {
					closeWithin(t, s, 3*time.Second)
				}
			}()
			if !authenticates(s, "alice", "apass-1")() {
				t.Fatal("initial load")
			}

			fifo := filepath.Join(dir, "users.fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			if err := os.Rename(fifo, path); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "FIFO refused", 2*time.Second, func() bool {
				return s.Table().Len() == 0 && strings.Contains(logs.String(), "not a regular file")
			})
			if !strings.Contains(logs.String(), `"type":"fifo"`) {
				t.Errorf("the log does not name the file type:\n%s", logs.String())
			}

			// A regular file again, without alice: bob authenticates and
			// alice's access is revoked.
			tmp := filepath.Join(dir, "users.tmp")
			writeFile(t, tmp, "bob bpass-1 write\n")
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "regular file after the FIFO", 2*time.Second, authenticates(s, "bob", "bpass-1"))
			if authenticates(s, "alice", "apass-1")() {
				t.Error("a revoked user still authenticates")
			}

			// A FIFO again, then Close: bounded.
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(fifo, path); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "second FIFO refused", 2*time.Second, func() bool { return s.Table().Len() == 0 })
			closed = true
			closeWithin(t, s, time.Second)
		})
	}
}

// TestNewStoreFIFO: a FIFO at start is refused at once (no users), not
// waited on.
func TestNewStoreFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan *Store, 1)
	go func() { done <- NewStore(path, slog.New(slog.DiscardHandler)) }()
	select {
	case s := <-done:
		if s.Table().Len() != 0 {
			t.Errorf("%d users from a FIFO", s.Table().Len())
		}
	case <-time.After(3 * time.Second):
		t.Fatal("NewStore blocked on a FIFO")
	}
}

// closeWithin closes s, failing (rather than hanging) when Close takes
// longer than d.
func closeWithin(t *testing.T, s *Store, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Errorf("Close did not return within %v", d)
	}
}
