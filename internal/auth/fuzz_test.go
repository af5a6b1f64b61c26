package auth

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseUsers parses arbitrary users files (seed corpus in
// testdata/fuzz/FuzzParseUsers): no panic; an error exactly for invalid
// UTF-8; user names without whitespace, never comments; options stripped
// and comma-free; comments and blank lines change nothing; warnings name
// lines that exist and are fixed texts (plus the user name), so they never
// carry a password.
func FuzzParseUsers(f *testing.F) {
	f.Add([]byte("reader {cleartext}readpass read\nwriter writepass write\n"))
	f.Add([]byte("hasher {HA1}" + HA1("hasher", "hashpass") + " read, write\n# comment\n\nlonely\n"))
	f.Add([]byte("a\u00a0b\u2028c d e,f ,\x1c g\rh i\r\nj k {}\vl m {x}y"))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, warns, err := ParseUsers(data)
		if !utf8.Valid(data) {
			if err != ErrNotUTF8 || tab != nil {
				t.Fatalf("invalid UTF-8: table %v, err %v", tab, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid UTF-8: err %v", err)
		}
		lines := splitLines(string(data))
		if tab.Len() > len(lines) {
			t.Fatalf("%d users from %d lines", tab.Len(), len(lines))
		}
		for name, u := range tab.users {
			if name == "" || name != u.Name || strings.IndexFunc(name, isPySpace) >= 0 || strings.HasPrefix(name, "#") {
				t.Fatalf("bad user name %q", name)
			}
			for _, o := range u.Options {
				if strings.Contains(o, ",") || strings.TrimFunc(o, isPySpace) != o {
					t.Fatalf("user %q: bad option %q", name, o)
				}
			}
		}
		for _, w := range warns {
			if w.Line < 1 || w.Line > len(lines) {
				t.Fatalf("warning for line %d of %d", w.Line, len(lines))
			}
			fields := splitFields(strings.TrimFunc(lines[w.Line-1], isPySpace), 3, isPySpace)
			if w.Msg == msgFewFields && len(fields) < 2 {
				continue
			}
			known := false
			for _, m := range []string{msgInvalidScheme, msgUnknownScheme, msgBadHA1} {
				known = known || len(fields) >= 2 && w.Msg == fmt.Sprintf("user %q: %s", fields[0], m)
			}
			if !known {
				t.Fatalf("warning %q for line %q", w.Msg, lines[w.Line-1])
			}
		}
		again, _, err := ParseUsers(append(append([]byte("# a comment\n\n"), data...), "\n   \n#x y z\n"...))
		if err != nil || !sameUsers(tab, again) {
			t.Fatalf("comments and blank lines changed the table")
		}
	})
}

func sameUsers(a, b *Table) bool {
	if a.Len() != b.Len() {
		return false
	}
	for name, u := range a.users {
		v, ok := b.users[name]
		if !ok || !reflect.DeepEqual(u, v) {
			return false
		}
	}
	return true
}

// FuzzParseAuthorization parses arbitrary Authorization values: no panic;
// credentials are ASCII and the user has no ':'; the canonical header of
// the credentials parses back to them; an unsupported scheme is never
// Basic.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"", "Basic", "Basic YWxpY2U6cHc=", "basic\xa0YWxpY2U6cHc= extra", "Digest username=reader",
		"Basic !!!notbase64", "Basic YTpiOg=x=", "Basic Y*W*x*p*Y2U6cHc=", "Basic w6k6eA==", "BASIC\x85\x1cYQ=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		user, password, err := ParseAuthorization(header)
		if err != nil {
			if user != "" || password != "" {
				t.Fatalf("error %v with credentials", err)
			}
			if err == ErrUnsupportedScheme {
				if f := splitLatin1Fields(header, 3); len(f) == 0 || asciiLower(f[0]) == "basic" {
					t.Fatalf("%q: unsupported scheme for %q", header, f)
				}
			}
			return
		}
		if strings.Contains(user, ":") || !isASCII(user) || !isASCII(password) {
			t.Fatalf("%q: credentials %q %q", header, user, password)
		}
		u2, p2, err := ParseAuthorization(BasicAuthorization(user, password))
		if err != nil || u2 != user || p2 != password {
			t.Fatalf("%q: canonical form gives %q %q %v", header, u2, p2, err)
		}
	})
}
