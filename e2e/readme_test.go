package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// The README test's markers and conventions (see TestREADME).
var (
	readmeMarker = regexp.MustCompile(`^\s*<!--\s*readme-test:(.*?)-->\s*$`)
	readmeFence  = regexp.MustCompile("^```([A-Za-z0-9_+-]*)\\s*$")
	// `cmd   # → text`: the command's output contains text.
	readmeExpect = regexp.MustCompile(`\s#\s*→\s*(.+?)\s*$`)
	readmeCurl   = regexp.MustCompile(`(^|[\s;&|(])curl\s`)
	readmeNode   = regexp.MustCompile(`(^|[\s;&|(])node\s`)
	// -f, or -f among short options (-fsS)
	readmeShortFail = regexp.MustCompile(`^-[a-zA-Z]*f[a-zA-Z]*$`)
	// make run serves until stopped; make test is the suite that runs the README.
	readmeLongRunning = regexp.MustCompile(`(^|[\s;&|(])make\s+(run|test)\b`)
	readmeInstall     = regexp.MustCompile(`^go install \S+@v\S+(\s+#.*)?$`)
	// A README address of the server, as `make run` or a server block has it.
	readmeAddr = regexp.MustCompile(`\b(127\.0\.0\.1|localhost):(\d+)\b`)
)

// readmeLangs: how the test treats a fenced block by its language.
var readmeLangs = map[string]string{
	"sh": "sh", "bash": "sh", "shell": "sh", "go": "go",
	// documentation, not run
	"": "doc", "text": "doc", "json": "doc", "yaml": "doc", "proto": "doc", "diff": "doc",
}

// readmeBlock is one fenced block of README.md.
type readmeBlock struct {
	Line   int    // of the opening fence
	Lang   string // the fence's language
	Text   string
	Marker string // "", "skip" or "server"
	Reason string // of a skip
}

// Kind is "sh", "go", "doc" or "" (a language the test cannot run).
func (b readmeBlock) Kind() string { return readmeLangs[b.Lang] }

// parseReadme returns the README's fenced blocks with their markers, and an
// error for each marker or block the test cannot honour.
func parseReadme(text string) ([]readmeBlock, error) {
	var blocks []readmeBlock
	var errs []error
	var pending *readmeBlock // a marker waiting for its block
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := readmeMarker.FindStringSubmatch(line); m != nil {
			if pending != nil {
				errs = append(errs, fmt.Errorf("README.md:%d: a readme-test marker without a block after it", pending.Line))
			}
			pending = &readmeBlock{Line: i + 1}
			switch arg := strings.TrimSpace(m[1]); {
			case arg == "server":
				pending.Marker = "server"
			case strings.HasPrefix(arg, "skip"):
				reason := strings.TrimSpace(strings.TrimPrefix(arg, "skip"))
				if !strings.HasPrefix(reason, "(") || !strings.HasSuffix(reason, ")") || strings.TrimSpace(reason[1:len(reason)-1]) == "" {
					errs = append(errs, fmt.Errorf("README.md:%d: a skip needs a reason: <!-- readme-test: skip (why) -->", i+1))
				}
				pending.Marker, pending.Reason = "skip", strings.TrimSuffix(strings.TrimPrefix(reason, "("), ")")
			default:
				errs = append(errs, fmt.Errorf("README.md:%d: unknown readme-test marker %q (skip (reason) or server)", i+1, arg))
			}
			continue
		}
		m := readmeFence.FindStringSubmatch(line)
		if m == nil {
			if pending != nil && strings.TrimSpace(line) != "" {
				errs = append(errs, fmt.Errorf("README.md:%d: a readme-test marker without a block after it", pending.Line))
				pending = nil
			}
			continue
		}
		b := readmeBlock{Line: i + 1, Lang: m[1]}
		if pending != nil {
			b.Marker, b.Reason = pending.Marker, pending.Reason
			pending = nil
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			errs = append(errs, fmt.Errorf("README.md:%d: the block is not closed", b.Line))
		}
		b.Text = strings.Join(body, "\n") + "\n"
		if err := b.check(); err != nil {
			errs = append(errs, fmt.Errorf("README.md:%d: %w", b.Line, err))
		}
		blocks = append(blocks, b)
	}
	if pending != nil {
		errs = append(errs, fmt.Errorf("README.md:%d: a readme-test marker without a block after it", pending.Line))
	}
	return blocks, errors.Join(errs...)
}

// check reports a block the test cannot run as marked.
func (b readmeBlock) check() error {
	switch {
	case b.Marker == "skip":
		if b.Kind() == "doc" {
			return errors.New("a skip marker on a block that is not run")
		}
		return nil
	case b.Kind() == "":
		return fmt.Errorf("the test cannot run a ```%s block: make it sh or go, or mark it <!-- readme-test: skip (why) -->", b.Lang)
	case b.Marker == "server":
		if b.Kind() != "sh" {
			return errors.New("a server block must be sh")
		}
		_, err := readmeServerCommand(b.Text)
		return err
	case b.Kind() == "sh":
		for _, l := range readmeLogicalLines(b.Text) {
			code := l
			if m := readmeExpect.FindStringIndex(l); m != nil {
				continue // the output is checked
			} else if j := strings.Index(l, " #"); j >= 0 {
				code = l[:j]
			}
			if readmeLongRunning.MatchString(code) {
				return fmt.Errorf("a command that does not end: mark the block server or skip: %s", l)
			}
			if readmeCurl.MatchString(code) && !readmeCurlFails(code) {
				return fmt.Errorf("curl without -f and without a `# → output` check: an HTTP error would pass: %s", l)
			}
		}
	case b.Kind() == "go":
		f, err := parser.ParseFile(token.NewFileSet(), "main.go", b.Text, 0)
		if err != nil || f.Name.Name != "main" || !slices.ContainsFunc(f.Decls, func(d ast.Decl) bool {
			fn, ok := d.(*ast.FuncDecl)
			return ok && fn.Recv == nil && fn.Name.Name == "main"
		}) {
			return fmt.Errorf("the Go block is not a complete program (package main, func main): %v", err)
		}
		if src, err := format.Source([]byte(b.Text)); err != nil || string(src) != b.Text {
			return errors.New("the Go block is not gofmt'ed")
		}
	}
	return nil
}

// readmeCurlFails reports whether a curl command line fails on an HTTP
// error (-f, --fail, --fail-with-body, or -f among short options).
func readmeCurlFails(code string) bool {
	for _, f := range strings.Fields(code) {
		if f == "--fail" || f == "--fail-with-body" || readmeShortFail.MatchString(f) {
			return true
		}
	}
	return false
}

// readmeLogicalLines joins lines continued with a backslash, or after a
// pipe or && and || (the shell reads on).
func readmeLogicalLines(text string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		cur += l
		if t := strings.TrimRight(l, " \t"); strings.HasSuffix(t, `\`) || strings.HasSuffix(t, "|") || strings.HasSuffix(t, "&&") {
			cur += "\n"
			continue
		}
		out = append(out, cur)
		cur = ""
	}
	return out
}

// readmeServerCommand returns the one command of a server block, split into
// fields: `make run [VAR=value ...]` or `go run ./cmd/ganeti-gateway [flags]`.
func readmeServerCommand(text string) ([]string, error) {
	var cmds []string
	for _, l := range readmeLogicalLines(text) {
		if j := strings.Index(l, "#"); j >= 0 {
			l = l[:j]
		}
		if strings.TrimSpace(l) != "" {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) != 1 || strings.ContainsAny(cmds[0], `'"$\`) {
		return nil, fmt.Errorf("a server block has one plain command: %q", cmds)
	}
	f := strings.Fields(cmds[0])
	if len(f) >= 2 && f[0] == "make" && f[1] == "run" || len(f) >= 3 && f[0] == "go" && f[1] == "run" && f[2] == "./cmd/ganeti-gateway" {
		return f, nil
	}
	return nil, fmt.Errorf("a server block runs `make run` or `go run ./cmd/ganeti-gateway`, not %q", cmds[0])
}

// TestReadmeMarkers checks the README parser: every block it cannot run
// and every malformed marker is an error.
func TestReadmeMarkers(t *testing.T) {
	for _, tc := range []struct {
		name, readme, err string // err: "" or a part of the error
	}{
		{"runnable blocks", "```sh\ncurl -fsS http://127.0.0.1:5080/2/info\n```\n\n```\ntree\n```\n", ""},
		{"skip with a reason", "<!-- readme-test: skip (needs two servers) -->\n```sh\nmove-instance a b\n```\n", ""},
		{"skip without a reason", "<!-- readme-test: skip -->\n```sh\nmake test\n```\n", "needs a reason"},
		{"skip with an empty reason", "<!-- readme-test: skip () -->\n```sh\nmake test\n```\n", "needs a reason"},
		{"unknown marker", "<!-- readme-test: ignore -->\n```sh\nls\n```\n", "unknown readme-test marker"},
		{"marker without a block", "<!-- readme-test: skip (x) -->\nsome text\n```sh\nls\n```\n", "without a block"},
		{"marker at the end", "```sh\nls\n```\n<!-- readme-test: server -->\n", "without a block"},
		{"a language it cannot run", "```python\nprint(1)\n```\n", "cannot run a ```python block"},
		{"a skipped language it cannot run", "<!-- readme-test: skip (no python here) -->\n```python\nprint(1)\n```\n", ""},
		{"curl that cannot fail", "```sh\ncurl -s http://127.0.0.1:5080/2/info\n```\n", "curl without -f"},
		{"curl with an output check", "```sh\ncurl -s http://127.0.0.1:5080/2/info   # → cluster\n```\n", ""},
		{"a pipe on two lines with a check", "```sh\ncurl -sS http://127.0.0.1:5080/2/info |\n  grep -c name   # → 1\n```\n", ""},
		{"curl with --fail-with-body", "```sh\nX=$(curl -sS --fail-with-body \\\n  http://127.0.0.1:5080/2/info)\n```\n", ""},
		{"make run unmarked", "```sh\nmake run   # serve\n```\n", "does not end"},
		{"make test unmarked", "```sh\nls && make test\n```\n", "does not end"},
		{"server block", "<!-- readme-test: server -->\n```sh\nmake run   # serve\n```\n", ""},
		{"server block with two commands", "<!-- readme-test: server -->\n```sh\nmake run\nmake test\n```\n", "one plain command"},
		{"server block with another command", "<!-- readme-test: server -->\n```sh\n./ganeti-gateway\n```\n", "runs `make run`"},
		{"Go that does not compile as shown", "```go\nconn, _ := grpc.NewClient(addr)\n```\n", "not a complete program"},
		{"Go without func main", "```go\npackage main\n\nfunc run() {}\n```\n", "not a complete program"},
		{"Go not gofmt'ed", "```go\npackage main\nfunc main() {  }\n```\n", "not gofmt'ed"},
		{"Go program", "```go\npackage main\n\nfunc main() {}\n```\n", ""},
		{"unclosed block", "```sh\nls\n", "not closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseReadme(tc.readme)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want one with %q", err, tc.err)
			}
		})
	}
}

// TestREADME runs every sh and go block of README.md, in order, against a
// server started the way the README says, in a directory that holds the
// repository (symbolic links) and the server's data dir, as the reader's
// clone does:
//   - a block after <!-- readme-test: server --> starts the server the later
//     blocks use (`make run`: the command `make -n run` prints; `go run
//     ./cmd/ganeti-gateway`: the flags), with the binary built once, on a
//     free loopback port: the only change is that blocks get its address
//     instead of the README's (127.0.0.1 or localhost with the README's port);
//   - a block after <!-- readme-test: skip (reason) --> is skipped;
//   - sh blocks run with bash `set -euo pipefail` (and inherit_errexit);
//     shell variables carry from one block to the next, as in one terminal;
//     a line `cmd  # → text` must print text; tools installed by a `go
//     install` block go to a temporary GOBIN on PATH;
//   - a go block is a complete program, run with `go run .` in a module of
//     its own that uses this repository (the steps the README gives), with
//     the shell's environment; its `// Output:` comment is its output.
//
// Blocks that need a tool that is missing (curl, python3, grpcurl, node
// and the npm packages, htools) are skipped, or fail under CI=true.
func TestREADME(t *testing.T) {
	root := testutil.RepoRoot(t)
	text, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseReadme(string(text))
	if err != nil {
		t.Fatal(err)
	}
	r := &readmeRun{root: root, work: t.TempDir(), tmp: t.TempDir(), bin: serverBinary(t)}
	r.linkRepo(t)
	t.Cleanup(r.stop)
	for _, b := range blocks {
		if b.Kind() == "doc" {
			continue
		}
		ok := t.Run(fmt.Sprintf("README.md:%d", b.Line), func(t *testing.T) {
			switch {
			case b.Marker == "skip":
				t.Skip(b.Reason)
			case b.Marker == "server":
				r.startServer(t, b)
			case b.Kind() == "sh":
				r.runShell(t, b)
			case b.Kind() == "go":
				r.runGo(t, b)
			}
		})
		if !ok && b.Marker == "server" {
			t.Fatal("the server did not start; the blocks after it cannot run")
		}
	}
}

// readmeRun is the state of one run of the README.
type readmeRun struct {
	root string // the repository
	work string // the reader's clone: links to root's files, and the data dir
	tmp  string // GOBIN, the shell's variables
	bin  string // cmd/ganeti-gateway, built once

	srv        *exec.Cmd
	srvDone    chan struct{}
	srvLogs    *syncBuffer
	readmePort string // the port the README gives the server
	addrPort   string // the port it listens on
}

// linkRepo fills the work dir with links to the repository's files, except
// the data dir (which the server creates) and .git.
func (r *readmeRun) linkRepo(t *testing.T) {
	entries, err := os.ReadDir(r.root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "data" || e.Name() == ".git" {
			continue
		}
		if err := os.Symlink(filepath.Join(r.root, e.Name()), filepath.Join(r.work, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// startServer stops the running server and starts the one the block names.
func (r *readmeRun) startServer(t *testing.T, b readmeBlock) {
	r.stop()
	f, err := readmeServerCommand(b.Text)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	if f[0] == "make" {
		args = r.makeRunArgs(t, f[2:])
	} else {
		args = f[3:] // go run ./cmd/ganeti-gateway ARGS
	}
	// The README's address, and a free loopback port instead.
	listen, hasListen := ":5080", false // the flag's default
	for i := 0; i < len(args); i++ {
		name, value, inline := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || name != "listen" {
			continue
		}
		if !inline && i+1 < len(args) {
			i++
			value = args[i]
		}
		listen, hasListen = value, true
		args[i] = "127.0.0.1:0"
		if inline {
			args[i] = "--listen=127.0.0.1:0"
		}
	}
	if !hasListen {
		args = append(args, "--listen", "127.0.0.1:0")
	}
	r.readmePort = listen[strings.LastIndex(listen, ":")+1:]

	cmd := exec.Command(r.bin, args...)
	cmd.Dir = r.work
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.srvLogs = &syncBuffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("started %s %s", filepath.Base(r.bin), strings.Join(args, " "))
	r.srv, r.srvDone = cmd, make(chan struct{})
	addrc := make(chan string, 1)
	go func(logs *syncBuffer, done chan struct{}) {
		defer close(done)
		sc := bufio.NewScanner(io.TeeReader(stderr, logs))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "ganeti-gateway listening" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}(r.srvLogs, r.srvDone)
	select {
	case addr := <-addrc:
		r.addrPort = addr[strings.LastIndex(addr, ":")+1:]
	case <-r.srvDone:
		t.Fatalf("the server exited before listening:\n%s", r.srvLogs.String())
	case <-time.After(time.Minute):
		t.Fatalf("the server did not start:\n%s", r.srvLogs.String())
	}
}

// makeRunArgs returns the server flags of `make run VARS`: the command
// `make -n run` prints, after the program's name.
func (r *readmeRun) makeRunArgs(t *testing.T, vars []string) []string {
	cmd := exec.Command("make", append([]string{"-s", "-n", "run"}, vars...)...)
	cmd.Dir = r.work
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make -n run: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	for i, w := range f {
		if strings.HasSuffix(w, "ganeti-gateway") {
			if strings.ContainsAny(strings.Join(f[i+1:], " "), `'"$\`) {
				t.Fatalf("make -n run: cannot split %q", lines[len(lines)-1])
			}
			return f[i+1:]
		}
	}
	t.Fatalf("make -n run does not run ganeti-gateway: %s", out)
	return nil
}

// stop ends the running server, if any.
func (r *readmeRun) stop() {
	if r.srv == nil {
		return
	}
	_ = r.srv.Process.Signal(os.Interrupt)
	select {
	case <-r.srvDone:
	case <-time.After(10 * time.Second):
		_ = r.srv.Process.Kill()
		<-r.srvDone
	}
	r.srv = nil
}

// addr puts the running server's port where the README has its own.
func (r *readmeRun) addr(text string) string {
	if r.srv == nil {
		return text
	}
	return readmeAddr.ReplaceAllStringFunc(text, func(a string) string {
		host, port, _ := strings.Cut(a, ":")
		if port != r.readmePort {
			return a
		}
		return host + ":" + r.addrPort
	})
}

// readmeShellPrelude and readmeShellSave run around every block: strict
// mode, the shell variables of the blocks before, and __expect.
const readmeShellPrelude = `set -euo pipefail
shopt -s inherit_errexit
if [[ -f $README_STATE ]]; then source "$README_STATE"; fi
__expect() {
  if [[ $2 != *"$1"* ]]; then printf 'README: the output does not contain %s\n' "$1" >&2; exit 1; fi
}
`

const readmeShellSave = `
for __v in $(compgen -v); do
  case $__v in
    __*|BASH*|COMP_*|DIRSTACK|EUID|FUNCNAME|GROUPS|HISTCMD|IFS|LINENO|OLDPWD|OPTARG|OPTIND|PIPESTATUS|PPID|PWD|RANDOM|SECONDS|SHELLOPTS|SHLVL|SRANDOM|UID|EPOCHREALTIME|EPOCHSECONDS|_) ;;
    *) declare -p "$__v" ;;
  esac
done >"$README_STATE"
`

// shellScript is the block as bash runs it: `cmd  # → text` lines capture
// and check their output.
func (r *readmeRun) shellScript(text string) string {
	var sb strings.Builder
	sb.WriteString(readmeShellPrelude)
	for _, l := range readmeLogicalLines(r.addr(text)) {
		m := readmeExpect.FindStringSubmatchIndex(l)
		if m == nil {
			sb.WriteString(l + "\n")
			continue
		}
		want := "'" + strings.ReplaceAll(l[m[2]:m[3]], "'", `'\''`) + "'"
		fmt.Fprintf(&sb, "__out=$(%s\n)\nprintf '%%s\\n' \"$__out\"\n__expect %s \"$__out\"\n", l[:m[0]], want)
	}
	sb.WriteString(readmeShellSave)
	return sb.String()
}

// readmeTools: the tools a block may need, how to find them, and why they
// may be missing.
var readmeTools = []struct {
	re    *regexp.Regexp
	names []string
	dirs  []string // searched after PATH
	why   string
}{
	{regexp.MustCompile(`(^|[\s;&|(])grpcurl\s`), []string{"grpcurl"}, nil, "the README's `go install` block did not install it"},
	{regexp.MustCompile(`(^|[\s;&|(])(hbal|hspace|hscan)\s`), []string{"hbal", "hspace", "hscan"},
		[]string{"/usr/lib/ganeti/3.0/usr/bin"}, "Debian: apt-get install ganeti-htools-3.0"},
	{regexp.MustCompile(`(^|[\s;&|(])python3\s`), []string{"python3"}, nil, "apt-get install python3"},
	{readmeCurl, []string{"curl"}, nil, "apt-get install curl"},
}

// requireTools skips the block (fails under CI=true) when a tool it uses
// is missing.
func (r *readmeRun) requireTools(t *testing.T, text string) {
	for _, tool := range readmeTools {
		if !tool.re.MatchString(text) {
			continue
		}
		dirs := append(filepath.SplitList(r.shellPath()), tool.dirs...)
		for _, name := range tool.names {
			found := false
			for _, d := range dirs {
				if fi, err := os.Stat(filepath.Join(d, name)); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
					found = true
					break
				}
			}
			if !found {
				skipOrFailInCI(t, fmt.Sprintf("%s is missing (%s)", name, tool.why))
			}
		}
	}
	if readmeNode.MatchString(text) {
		requireNodeGRPC(t)
	}
}

func (r *readmeRun) gobin() string { return filepath.Join(r.tmp, "gobin") }

func (r *readmeRun) shellPath() string {
	return r.gobin() + string(os.PathListSeparator) + os.Getenv("PATH")
}

// bash runs a script in dir with the README's environment: stdout, and
// stdout and stderr together.
func (r *readmeRun) bash(t *testing.T, dir, script string, env ...string) (stdout, all string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{
		"GOBIN=" + r.gobin(), "PATH=" + r.shellPath(), "README_STATE=" + filepath.Join(r.tmp, "state.sh"),
	}, env...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, both bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout = io.MultiWriter(&out, mutexWriter{&mu, &both})
	cmd.Stderr = mutexWriter{&mu, &both}
	err = cmd.Run()
	return out.String(), both.String(), err
}

// runShell runs a sh block.
func (r *readmeRun) runShell(t *testing.T, b readmeBlock) {
	r.requireTools(t, b.Text)
	_, out, err := r.bash(t, r.work, r.shellScript(b.Text))
	t.Logf("output:\n%s", out)
	if err == nil {
		return
	}
	install := true // a block of `go install pkg@version` lines only
	for _, l := range strings.Split(strings.TrimSpace(b.Text), "\n") {
		install = install && readmeInstall.MatchString(l)
	}
	if install {
		skipOrFailInCI(t, fmt.Sprintf("README.md:%d: cannot install: %v", b.Line, err))
	}
	t.Fatalf("README.md:%d: %v\n%s\nserver log:\n%s", b.Line, err, b.Text, r.logs())
}

// runGo runs a go block as a program of its own module that uses this
// repository, as the README says to.
func (r *readmeRun) runGo(t *testing.T, b readmeBlock) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(r.addr(b.Text)), 0o644); err != nil {
		t.Fatal(err)
	}
	const module = "github.com/ganeti-gateway/ganeti-gateway"
	script := readmeShellPrelude + `cd "$README_GO_DIR"
go mod init example 2>/dev/null
go mod edit -replace=` + module + `="$README_REPO" -require=` + module + `@v0.0.0
go mod tidy
go run .
`
	stdout, out, err := r.bash(t, dir, script, "README_GO_DIR="+dir, "README_REPO="+r.root)
	t.Logf("output:\n%s", out)
	if err != nil {
		t.Fatalf("README.md:%d: %v\nserver log:\n%s", b.Line, err, r.logs())
	}
	if want, ok := readmeGoOutput(b.Text); ok && strings.TrimSpace(stdout) != want {
		t.Errorf("README.md:%d: output %q, want %q (its // Output: comment)", b.Line, strings.TrimSpace(stdout), want)
	}
}

// readmeGoOutput returns the text of a program's `// Output:` comment.
func readmeGoOutput(src string) (string, bool) {
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		first, ok := strings.CutPrefix(strings.TrimSpace(l), "// Output:")
		if !ok {
			continue
		}
		want := []string{strings.TrimSpace(first)}
		for _, next := range lines[i+1:] {
			c, ok := strings.CutPrefix(strings.TrimSpace(next), "//")
			if !ok {
				break
			}
			want = append(want, strings.TrimSpace(c))
		}
		return strings.TrimSpace(strings.Join(want, "\n")), true
	}
	return "", false
}

func (r *readmeRun) logs() string {
	if r.srvLogs == nil {
		return "(no server)"
	}
	return r.srvLogs.String()
}

type mutexWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l mutexWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
