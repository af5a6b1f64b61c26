package opexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// IAllocatorTimeout bounds one run of an external allocator.
const IAllocatorTimeout = 30 * time.Second

// hailFallbackPath is where Debian's ganeti-htools-3.0 installs hail.
const hailFallbackPath = "/usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators/hail"

// ErrNoExternalIAllocator says the built-in allocator must be used.
var ErrNoExternalIAllocator = errors.New("no external iallocator")

// IAllocatorRunner finds and runs external iallocators (the engine's
// Config.IAllocator; tests give a fake).
type IAllocatorRunner interface {
	// Lookup returns the path of the named iallocator, or "" when it is
	// not installed (or not one this implementation runs).
	Lookup(name string) string
	// Run runs the iallocator at path on the request (a JSON document)
	// and returns what it printed on its standard output. A runner may
	// decline a request with an error wrapping ErrNoExternalIAllocator:
	// the built-in allocator then decides.
	Run(ctx context.Context, path string, request []byte) ([]byte, error)
}

// SubprocessIAllocators runs hail as a subprocess: `hail <request file>`.
type SubprocessIAllocators struct{}

// Lookup finds hail on PATH or where Debian installs it.
func (SubprocessIAllocators) Lookup(name string) string {
	if name != "hail" {
		return ""
	}
	if p, err := exec.LookPath("hail"); err == nil {
		return p
	}
	if st, err := os.Stat(hailFallbackPath); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return hailFallbackPath
	}
	return ""
}

// Run runs the allocator at path on request, within IAllocatorTimeout.
func (SubprocessIAllocators) Run(ctx context.Context, path string, request []byte) ([]byte, error) {
	f, err := os.CreateTemp("", "ganeti-iallocator-*.json")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(request); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, IAllocatorTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, f.Name())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s timed out after %s", path, IAllocatorTimeout)
		}
		return nil, fmt.Errorf("%v: %s", err, msg)
	}
	return out, nil
}
