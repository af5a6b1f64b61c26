package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// serverBinary builds cmd/ganeti-gateway once per test run.
func serverBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ganeti-gateway-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ganeti-gateway")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/ganeti-gateway")
		cmd.Dir = testutil.RepoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// serverProcess is a ganeti-gateway process listening on a loopback port.
type serverProcess struct {
	Addr    string // host:port
	DataDir string
	// Back is, for a server started in front of an upstream
	// (viaUpstream), the simulated gateway it fronts.
	Back   *serverProcess
	cmd    *exec.Cmd
	done   chan struct{}
	logs   *strings.Builder
	stdout strings.Builder
	mu     sync.Mutex
}

// lockedWriter appends to p.stdout.
type lockedWriter struct{ p *serverProcess }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stdout.Write(b)
}

// Stdout returns what the server wrote on stdout so far.
func (p *serverProcess) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// startServer runs the binary with --listen 127.0.0.1:0 and the given
// flags, and waits for its "listening" log line. The data dir gets the
// test users file (testUsersFile) unless it has a users file.
func startServer(t *testing.T, dataDir string, args ...string) *serverProcess {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	if _, err := os.Stat(filepath.Join(dataDir, "rapi", "users")); os.IsNotExist(err) {
		writeTestUsers(t, dataDir)
	}
	if throughUpstream(t) {
		return startUpstreamPair(t, dataDir, args...)
	}
	return startServerRaw(t, dataDir, args...)
}

// startServerRaw is startServer without the test users file.
func startServerRaw(t *testing.T, dataDir string, args ...string) *serverProcess {
	t.Helper()
	bin := serverBinary(t)
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	p, err := launchServer(bin, dataDir, args...)
	if p != nil {
		t.Cleanup(func() { p.Stop(t) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launchServer runs bin with --listen 127.0.0.1:0, --data-dir dataDir and
// args, and waits for its "listening" log line. When the process started
// it is returned, also with an error (the caller stops it).
func launchServer(bin, dataDir string, args ...string) (*serverProcess, error) {
	args = append([]string{"--listen", "127.0.0.1:0", "--data-dir", dataDir}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GANETI_GATEWAY_LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &serverProcess{DataDir: dataDir, cmd: cmd, done: make(chan struct{}), logs: &strings.Builder{}}
	cmd.Stdout = lockedWriter{p}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addrc := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "ganeti-gateway listening" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	select {
	case p.Addr = <-addrc:
	case <-p.done:
		return p, fmt.Errorf("server exited before listening:\n%s", p.Logs())
	case <-ctx.Done():
		return p, fmt.Errorf("server did not start:\n%s", p.Logs())
	}
	return p, nil
}

// Logs returns what the server wrote on stderr so far: the JSON log lines.
func (p *serverProcess) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Stop ends the process with SIGTERM (SIGKILL after 10 s).
func (p *serverProcess) Stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// skipOrFailInCI skips the test with msg, or fails it under CI=true, where
// everything the tests need is installed by .ci/run.
func skipOrFailInCI(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
