package auth

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseUsers(t *testing.T) {
	file := strings.Join([]string{
		"# a comment",
		"   # an indented comment",
		"",
		"reader {cleartext}rpass read",
		"writer wpass write",
		"both {HA1}" + HA1("both", "bpass") + " read,write",
		"spaced  spass   read ,  write  ",
		"extra xpass read,write extra", // the rest of the line is the options field
		"noopts npass",
		"upper upass WRITE",                    // options are case-sensitive
		"lonely",                               // one field: skipped
		"hash#tag h#pass read # not a comment", // '#' inside a line is text
		"dup first read",                       //
		"dup second write",                     // a later line replaces an earlier one
		"tabbed\tTpass\tread",                  //
		"crlf cpass read\r",                    //
		"vt vpass read\vsplit spl read",        // \v ends a line, as in Python
		"sep\x1cseppass\x1fread",               // \x1c ends a line ("sep" is skipped); \x1f is whitespace
		"nbsp\u00a0nbpass\u00a0read",           // Unicode whitespace separates fields
		"\ufeffbom bompass read",               // a BOM is part of the name
		"invalid {}x read",                     // kept, never authenticates
		"unknown {SHA}x read",                  //
		"badhex {HA1}xyz read",                 //
		"trailingcomma tpass read,",            // an empty option
		"ha1upper {ha1}" + strings.ToUpper(HA1("ha1upper", "p")) + " read",
	}, "\n")
	tab, warns, err := ParseUsers([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	options := map[string][]string{
		"reader":        {"read"},
		"writer":        {"write"},
		"both":          {"read", "write"},
		"spaced":        {"read", "write"},
		"extra":         {"read", "write extra"},
		"noopts":        {},
		"upper":         {"WRITE"},
		"hash#tag":      {"read # not a comment"},
		"dup":           {"write"},
		"tabbed":        {"read"},
		"crlf":          {"read"},
		"vt":            {"read"},
		"split":         {"read"},
		"seppass":       {},
		"nbsp":          {"read"},
		"\ufeffbom":     {"read"},
		"invalid":       {"read"},
		"unknown":       {"read"},
		"badhex":        {"read"},
		"trailingcomma": {"read", ""},
		"ha1upper":      {"read"},
	}
	if tab.Len() != len(options) {
		names := []string{}
		for n := range tab.users {
			names = append(names, n)
		}
		t.Errorf("%d users %q, want %d", tab.Len(), names, len(options))
	}
	for name, want := range options {
		u, ok := tab.Lookup(name)
		if !ok {
			t.Errorf("user %q missing", name)
			continue
		}
		if !reflect.DeepEqual(u.Options, want) {
			t.Errorf("user %q options %q, want %q", name, u.Options, want)
		}
	}
	wantWarnings := map[int]bool{11: true, 19: true, 23: true, 24: true, 25: true}
	for _, w := range warns {
		if !wantWarnings[w.Line] {
			t.Errorf("unexpected warning %v", w)
		}
		delete(wantWarnings, w.Line)
		for _, secret := range []string{"rpass", "wpass", "npass", "upass", "h#pass", "{}x", "xyz", "{SHA}x"} {
			if strings.Contains(w.Msg, secret) {
				t.Errorf("warning %q shows a password", w)
			}
		}
	}
	if len(wantWarnings) != 0 {
		t.Errorf("missing warnings for lines %v (got %v)", wantWarnings, warns)
	}

	auth := []struct {
		user, password string
		ok             bool
	}{
		{"reader", "rpass", true},
		{"reader", "{cleartext}rpass", false},
		{"reader", "rpas", false},
		{"writer", "wpass", true},
		{"writer", "WPASS", false},
		{"both", "bpass", true},
		{"both", HA1("both", "bpass"), false},
		{"ha1upper", "p", true}, // the scheme and the hex digits are case-insensitive
		{"hash#tag", "h#pass", true},
		{"dup", "second", true},
		{"dup", "first", false},
		{"seppass", "read", true},
		{"sep", "seppass", false},
		{"invalid", "x", false},
		{"invalid", "{}x", false},
		{"unknown", "x", false},
		{"badhex", "xyz", false},
		{"nobody", "x", false},
		{"", "", false},
	}
	for _, c := range auth {
		if _, ok := tab.Authenticate(c.user, c.password); ok != c.ok {
			t.Errorf("Authenticate(%q, %q) = %v, want %v", c.user, c.password, ok, c.ok)
		}
	}
	if u, _ := tab.Lookup("both"); !u.HasAny([]string{"write"}) || u.HasAny([]string{"admin"}) || u.HasAny(nil) {
		t.Error("HasAny")
	}
}

func TestParseUsersNotUTF8(t *testing.T) {
	if _, _, err := ParseUsers([]byte("alice pw read\n\xff\xfe\n")); !errors.Is(err, ErrNotUTF8) {
		t.Errorf("err %v, want ErrNotUTF8", err)
	}
	if _, _, err := ParseUsers([]byte("alice \xed\xa0\x80 read\n")); !errors.Is(err, ErrNotUTF8) { // a surrogate
		t.Errorf("surrogate: err %v, want ErrNotUTF8", err)
	}
}

func TestSplitLines(t *testing.T) {
	got := splitLines("a\nb\r\nc\rd\ve\ff\x1cg\x1dh\x1ei\u0085j\u2028k\u2029l\x1fm\n")
	want := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l\x1fm"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitLines = %q, want %q", got, want)
	}
	if got := splitLines("a\n\nb"); !reflect.DeepEqual(got, []string{"a", "", "b"}) {
		t.Errorf("splitLines(a,,b) = %q", got)
	}
}
