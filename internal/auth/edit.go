package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ganeti-gateway/ganeti-gateway/internal/atomicfile"
)

// Errors of the users file edits.
var (
	ErrUserExists = errors.New("the user exists")
	ErrNoSuchUser = errors.New("no such user")
)

// CheckUserName tells whether name can be a user of the users file who can
// authenticate: one field (no whitespace), not a comment, no ':' (HTTP
// Basic splits there), no control character.
func CheckUserName(name string) error {
	switch {
	case name == "":
		return errors.New("empty user name")
	case !utf8.ValidString(name):
		return errors.New("user name is not valid UTF-8")
	case strings.HasPrefix(name, "#"):
		return errors.New("user name starts with '#' (a comment)")
	case strings.ContainsRune(name, ':'):
		return errors.New("user name contains ':'")
	case strings.ContainsFunc(name, func(r rune) bool { return isPySpace(r) || unicode.IsControl(r) }):
		return errors.New("user name contains whitespace or a control character")
	}
	return nil
}

// userLine is a users file line giving name the password's {HA1} hash.
func userLine(name, password, options string) string {
	line := name + " {HA1}" + HA1(name, password)
	if options != "" {
		line += " " + options
	}
	return line
}

// AddUser returns data (a users file) with a line for a new user appended:
// the password as its {HA1} hash, and the options. Every other line,
// comments included, is kept as it is. A user the file already has
// (ParseUsers's view) is ErrUserExists.
func AddUser(data []byte, name, password string, options []string) ([]byte, error) {
	if err := CheckUserName(name); err != nil {
		return nil, err
	}
	for _, o := range options {
		if o == "" || strings.ContainsFunc(o, func(r rune) bool { return r == ',' || isPySpace(r) || unicode.IsControl(r) }) {
			return nil, fmt.Errorf("bad option %q", o)
		}
	}
	t, _, err := ParseUsers(data)
	if err != nil {
		return nil, err
	}
	if _, ok := t.Lookup(name); ok {
		return nil, fmt.Errorf("user %q: %w", name, ErrUserExists)
	}
	out := append([]byte(nil), data...)
	if spans := lineSpans(string(data)); len(spans) > 0 && spans[len(spans)-1].end == spans[len(spans)-1].next {
		out = append(out, '\n') // the last line has no line end
	}
	return append(out, userLine(name, password, strings.Join(options, ","))+"\n"...), nil
}

// SetPassword returns data (a users file) with the password of user name
// replaced by the {HA1} hash of password, in the line that defines the
// user (the last one, as Ganeti reads it), keeping its options. Every
// other line is kept as it is. An unknown user is ErrNoSuchUser.
func SetPassword(data []byte, name, password string) ([]byte, error) {
	if !utf8.Valid(data) {
		return nil, ErrNotUTF8
	}
	s := string(data)
	found := -1
	var options string
	spans := lineSpans(s)
	for i, sp := range spans {
		line := strings.TrimFunc(s[sp.start:sp.end], isPySpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := splitFields(line, 3, isPySpace)
		if len(parts) >= 2 && parts[0] == name {
			found, options = i, ""
			if len(parts) == 3 {
				options = parts[2]
			}
		}
	}
	if found < 0 {
		return nil, fmt.Errorf("user %q: %w", name, ErrNoSuchUser)
	}
	sp := spans[found]
	return []byte(s[:sp.start] + userLine(name, password, options) + s[sp.end:]), nil
}

// UpdateUsersFile applies edit to the users file at path (a missing file
// is empty) and replaces the file atomically: a temporary file in the same
// directory, written, synced, given the old file's mode and owner (0600
// and the caller for a new file), renamed over it, the directory synced. A
// symbolic link is followed: its target is replaced. A server watching the
// file reloads it.
func UpdateUsersFile(path string, edit func([]byte) ([]byte, error)) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	mode := fs.FileMode(0o600)
	uid, gid, hasOwner := -1, -1, false
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", path)
		}
		mode = fi.Mode().Perm()
		uid, gid, hasOwner = owner(fi)
	}
	out, err := edit(data)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, func(f *os.File) error {
		if _, err := f.Write(out); err != nil {
			return err
		}
		if err := f.Chmod(mode); err != nil {
			return err
		}
		if hasOwner && (uid != os.Geteuid() || gid != os.Getegid()) {
			// Root editing the file of the server's user: the server must
			// still read it.
			if err := f.Chown(uid, gid); err != nil {
				return fmt.Errorf("keeping the owner %d:%d of %s: %w", uid, gid, path, err)
			}
		}
		return nil
	}, nil)
}
