package auth

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Store holds the user table of a users file and reloads it when the file
// changes, the way Ganeti's RAPI daemon does:
//
//   - a missing or unreadable file gives an empty table: every
//     authentication fails (fail closed). A path that is not a regular
//     file (a FIFO, a device, a directory) is unreadable: it is opened
//     without blocking (a FIFO without a writer would otherwise block the
//     reload, and with it every later reload and the shutdown), refused
//     and logged, and the store keeps watching for a regular file;
//   - a file that is not valid UTF-8 (Ganeti fails to decode it) keeps the
//     previous table, and the error is logged;
//   - malformed lines are logged (line number and reason, never the line)
//     and skipped.
//
// Ganeti reloads on inotify's close-after-write, delete and move events.
// The store watches the file's directory with fsnotify and reloads once the
// events have been quiet for Debounce, so that a file being written is not
// read half-way; it also checks the file's size, time and inode every
// PollInterval, which catches what notifications miss (network file
// systems, a watch that could not be set up).
type Store struct {
	path string
	log  *slog.Logger

	table atomic.Pointer[Table]

	mu    sync.Mutex // serialises loads
	stamp fileStamp  // of the file as last loaded

	// Debounce and PollInterval; set before Start.
	Debounce     time.Duration
	PollInterval time.Duration

	// CloseTimeout bounds how long Close waits for the watcher (a read
	// stuck in the kernel, e.g. on a hung network file system, must not
	// hold the shutdown); set before Start.
	CloseTimeout time.Duration

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	// noNotify (tests) leaves polling only.
	noNotify bool
}

// Defaults of the reload watcher.
const (
	DefaultDebounce     = 100 * time.Millisecond
	DefaultPollInterval = time.Second
	DefaultCloseTimeout = 2 * time.Second
)

type fileStamp struct {
	exists  bool
	size    int64
	modTime int64 // UnixNano
	ino     uint64
}

func stampOf(path string) fileStamp {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{exists: true, size: info.Size(), modTime: info.ModTime().UnixNano(), ino: inode(info)}
}

// NewStore loads the users file at path.
func NewStore(path string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	s := &Store{path: filepath.Clean(path), log: log, Debounce: DefaultDebounce, PollInterval: DefaultPollInterval,
		CloseTimeout: DefaultCloseTimeout}
	s.table.Store(EmptyTable())
	s.Load()
	return s
}

// Path is the users file.
func (s *Store) Path() string { return s.path }

// Table returns the current table.
func (s *Store) Table() *Table { return s.table.Load() }

// Load reads the file now (see Store for what a failure does).
func (s *Store) Load() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stamp = stampOf(s.path)
	data, err := readUsersFile(s.path)
	if err != nil {
		var nr *notRegularError
		switch {
		case errors.As(err, &nr):
			s.log.Error("the users file is not a regular file: every authentication fails until it is one",
				"path", s.path, "type", nr.kind)
		case errors.Is(err, fs.ErrNotExist):
			s.log.Warn("no users file: every authentication fails", "path", s.path)
		default:
			s.log.Error("cannot read the users file: every authentication fails", "path", s.path, "err", err.Error())
		}
		s.table.Store(EmptyTable())
		return
	}
	t, warns, err := ParseUsers(data)
	if err != nil {
		s.log.Error("cannot parse the users file: keeping the previous users", "path", s.path, "err", err.Error())
		return
	}
	for _, w := range warns {
		s.log.Warn("users file", "path", s.path, "line", w.Line, "problem", w.Msg)
	}
	s.table.Store(t)
	s.log.Info("users file loaded", "path", s.path, "users", t.Len(), "warnings", len(warns))
}

// Start watches the file and reloads it on changes, until Close.
func (s *Store) Start() {
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
	var w *fsnotify.Watcher
	if !s.noNotify {
		var err error
		if w, err = fsnotify.NewWatcher(); err == nil {
			if err = w.Add(filepath.Dir(s.path)); err != nil {
				_ = w.Close()
				w = nil
			}
		}
		if err != nil {
			s.log.Warn("users file: no change notifications, polling only", "path", s.path, "err", err.Error())
		}
	}
	go s.watch(w)
}

// Close stops the watcher. It waits at most CloseTimeout for it (then
// logs and returns; the watcher ends by itself once its read returns).
func (s *Store) Close() {
	if s.stop == nil {
		return
	}
	s.stopOnce.Do(func() { close(s.stop) })
	timeout := s.CloseTimeout
	if timeout <= 0 {
		timeout = DefaultCloseTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.log.Warn("users file watcher did not stop in time; leaving it", "path", s.path, "timeout", timeout.String())
	}
}

// notRegularError is the error of a users file that is not a regular file.
type notRegularError struct{ kind string }

func (e *notRegularError) Error() string { return "not a regular file: " + e.kind }

// readUsersFile reads the users file without ever blocking on what it is:
// the file is opened non-blocking (openNoBlock), its type checked on the
// open descriptor (no race with a rename), and anything but a regular file
// refused.
func readUsersFile(path string) ([]byte, error) {
	f, err := openNoBlock(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, &notRegularError{kind: fileKind(info.Mode())}
	}
	return io.ReadAll(f)
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m.IsDir():
		return "directory"
	}
	return "irregular"
}

func (s *Store) watch(w *fsnotify.Watcher) {
	defer close(s.done)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	poll := time.NewTicker(s.PollInterval)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-s.stop:
			debounce.Stop()
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if filepath.Clean(ev.Name) == s.path {
				debounce.Reset(s.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			s.log.Warn("users file watcher", "err", err.Error())
		case <-debounce.C:
			s.Load()
		case <-poll.C:
			s.mu.Lock()
			changed := stampOf(s.path) != s.stamp
			s.mu.Unlock()
			if changed {
				debounce.Reset(s.Debounce)
			}
		}
	}
}
