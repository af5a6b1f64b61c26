// Package auth reads Ganeti's RAPI users file and checks credentials the
// way Ganeti 3.0.2 does (ganeti/http/auth.py, ganeti/server/rapi.py). It
// knows nothing of the API: parsing, the user table, password and
// Authorization-header checks (constant time), the reloading store and the
// first-start users file.
package auth

import (
	"crypto/md5" //nolint:gosec // Ganeti's {HA1} scheme is MD5 by definition (RFC 2617 H(A1)).
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Realm is the HTTP Basic realm of the RAPI; {HA1} hashes include it.
const Realm = "Ganeti Remote API"

// The user options Ganeti recognises, and OptionAdmin, ours: it lets the
// typed SubmitJob submit opcodes no RAPI route submits (what Ganeti keeps
// for root on the master). Other options are kept but grant nothing.
const (
	OptionRead  = "read"
	OptionWrite = "write"
	OptionAdmin = "admin"
)

type scheme uint8

const (
	schemeCleartext scheme = iota + 1
	schemeHA1
	schemeInvalid // "{}", no closing brace, or an unknown scheme: never matches
)

// User is one line of the users file.
type User struct {
	// Name is the user name (case-sensitive).
	Name string
	// Options are the comma-separated options of the line, each stripped
	// of surrounding whitespace (case-sensitive; unknown ones are kept).
	Options []string

	scheme scheme
	// secret is the SHA-256 of the cleartext password (so that comparing
	// does not reveal its length), or the lower-case {HA1} hex digest.
	secret []byte
}

// HasOption reports whether the user has the option.
func (u *User) HasOption(opt string) bool {
	for _, o := range u.Options {
		if o == opt {
			return true
		}
	}
	return false
}

// HasAny reports whether the user's options intersect opts.
func (u *User) HasAny(opts []string) bool {
	for _, o := range opts {
		if u.HasOption(o) {
			return true
		}
	}
	return false
}

// Warning is a note about one line of a users file: a skipped line, or a
// password that can never match. It never contains a password.
type Warning struct {
	// Line is the 1-based line number (lines as Python's splitlines counts
	// them).
	Line int
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("line %d: %s", w.Line, w.Msg) }

// Table is an immutable user table.
type Table struct {
	users map[string]*User
}

// EmptyTable has no users: every authentication fails.
func EmptyTable() *Table { return &Table{users: map[string]*User{}} }

// Len is the number of users.
func (t *Table) Len() int { return len(t.users) }

// Lookup returns the user of that name.
func (t *Table) Lookup(name string) (*User, bool) {
	u, ok := t.users[name]
	return u, ok
}

// dummyHA1 is compared against when the user is unknown, so that an
// unknown user costs what a known one does.
var dummyHA1 = []byte("00000000000000000000000000000000")

// Authenticate checks a user name and password as Ganeti does and returns
// the user. Comparisons take constant time.
func (t *Table) Authenticate(name, password string) (*User, bool) {
	u, ok := t.users[name]
	if !ok {
		subtle.ConstantTimeCompare(ha1Hex(name, password), dummyHA1)
		return nil, false
	}
	switch u.scheme {
	case schemeCleartext:
		sum := sha256.Sum256([]byte(password))
		return u, subtle.ConstantTimeCompare(sum[:], u.secret) == 1
	case schemeHA1:
		return u, subtle.ConstantTimeCompare(ha1Hex(name, password), u.secret) == 1
	}
	return u, false
}

// HA1 is the {HA1} value of a user and password: the hex MD5 of
// "user:Ganeti Remote API:password".
func HA1(user, password string) string { return string(ha1Hex(user, password)) }

func ha1Hex(user, password string) []byte {
	sum := md5.Sum([]byte(user + ":" + Realm + ":" + password)) //nolint:gosec // see import
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum[:])
	return out
}

// ErrNotUTF8 is returned for a users file that is not valid UTF-8: Ganeti
// reads the file as text and fails to decode it.
var ErrNotUTF8 = errors.New("users file is not valid UTF-8")

// ParseUsers parses the contents of a users file exactly as Ganeti does:
// lines (as Python's str.splitlines splits them) are stripped, empty lines
// and lines starting with '#' are skipped, the rest is split on runs of
// whitespace into at most three fields: user name, password, and the rest
// of the line as the comma-separated options. A line with fewer than two
// fields is skipped with a warning; a later line for a user replaces an
// earlier one. The only error is ErrNotUTF8 (Ganeti then keeps its previous
// table).
func ParseUsers(data []byte) (*Table, []Warning, error) {
	if !utf8.Valid(data) {
		return nil, nil, ErrNotUTF8
	}
	t := EmptyTable()
	var warns []Warning
	for i, raw := range splitLines(string(data)) {
		line := strings.TrimFunc(raw, isPySpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := splitFields(line, 3, isPySpace)
		if len(parts) < 2 {
			warns = append(warns, Warning{Line: i + 1, Msg: msgFewFields})
			continue
		}
		u := &User{Name: parts[0], Options: []string{}}
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				u.Options = append(u.Options, strings.TrimFunc(o, isPySpace))
			}
		}
		if msg := u.setPassword(parts[1]); msg != "" {
			warns = append(warns, Warning{Line: i + 1, Msg: fmt.Sprintf("user %q: %s", u.Name, msg)})
		}
		t.users[u.Name] = u
	}
	return t, warns, nil
}

// The warnings: fixed texts (and the user name), never a password.
const (
	msgFewFields     = "ignoring a non-comment line with fewer than two fields"
	msgInvalidScheme = "invalid password scheme (authentication will fail)"
	msgUnknownScheme = "unknown password scheme (authentication will fail)"
	msgBadHA1        = "the {HA1} value is not 32 hexadecimal digits (authentication will fail)"
)

// setPassword classifies a stored password as Ganeti's
// VerifyBasicAuthPassword does; it returns a warning for a password that
// can never match.
func (u *User) setPassword(stored string) string {
	if !strings.HasPrefix(stored, "{") {
		u.scheme, u.secret = schemeCleartext, sha256Of(stored)
		return ""
	}
	end := strings.IndexByte(stored[1:], '}') + 1 // Python: expected.find("}", 1)
	if end <= 1 {
		u.scheme = schemeInvalid
		return msgInvalidScheme
	}
	name, value := asciiUpper(stored[:end+1]), stored[end+1:]
	switch name {
	case "{CLEARTEXT}":
		u.scheme, u.secret = schemeCleartext, sha256Of(value)
	case "{HA1}":
		u.scheme, u.secret = schemeHA1, []byte(asciiLower(value))
		if !isHexDigest(value) {
			return msgBadHA1
		}
	default:
		u.scheme = schemeInvalid
		return msgUnknownScheme
	}
	return ""
}

func sha256Of(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func isHexDigest(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// asciiUpper and asciiLower fold ASCII letters only. For the strings they
// are compared with ("{CLEARTEXT}", "{HA1}", hex digits) this is what
// Python's str.upper and str.lower give: no other character folds to them.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

// isPySpace is Python 3's str.isspace for one character: Unicode White_Space
// plus the information separators U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// span is one line of a text: its content s[start:end], its line end
// s[end:next] (empty for a last line without one).
type span struct{ start, end, next int }

// lineSpans splits s as Python's str.splitlines() does: \n, \r, \r\n,
// \v, \f, \x1c, \x1d, \x1e, \x85, U+2028 and U+2029 end a line; a final
// line ending adds no empty line.
func lineSpans(s string) []span {
	var spans []span
	start := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '\n', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			spans = append(spans, span{start, i, i + size})
			i += size
			start = i
		case '\r':
			end := i
			i += size
			if i < len(s) && s[i] == '\n' {
				i++
			}
			spans = append(spans, span{start, end, i})
			start = i
		default:
			i += size
		}
	}
	if start < len(s) {
		spans = append(spans, span{start, len(s), len(s)})
	}
	return spans
}

// splitLines is Python's str.splitlines(): the lines of lineSpans.
func splitLines(s string) []string {
	var lines []string
	for _, sp := range lineSpans(s) {
		lines = append(lines, s[sp.start:sp.end])
	}
	return lines
}

// splitFields is Python's s.split(None, n-1) for a string without leading
// whitespace: at most n fields, the last one holding the rest of the
// string (its leading whitespace removed).
func splitFields(s string, n int, space func(rune) bool) []string {
	var out []string
	for len(out) < n-1 {
		s = strings.TrimLeftFunc(s, space)
		if s == "" {
			return out
		}
		end := strings.IndexFunc(s, space)
		if end < 0 {
			return append(out, s)
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	s = strings.TrimLeftFunc(s, space)
	if s != "" {
		out = append(out, s)
	}
	return out
}
