package auth

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestAddUser(t *testing.T) {
	h := func(name, pw string) string { return "{HA1}" + HA1(name, pw) }
	for _, c := range []struct {
		name, in string
		user     string
		options  []string
		want     string
		err      error // nil: any error when wantErr
		wantErr  bool
	}{
		{"empty file", "", "ops", []string{"write"}, "ops " + h("ops", "pw") + " write\n", nil, false},
		{"keeps comments and lines", "# c\r\nadmin {HA1}00 write\r\n\n", "ro", nil,
			"# c\r\nadmin {HA1}00 write\r\n\nro " + h("ro", "pw") + "\n", nil, false},
		{"last line without line end", "# c\nadmin x", "b", []string{"read", "admin"},
			"# c\nadmin x\nb " + h("b", "pw") + " read,admin\n", nil, false},
		{"existing user", "admin secret write\n", "admin", nil, "", ErrUserExists, true},
		{"a commented-out user is not a user", "#ops secret\n", "ops", nil, "#ops secret\nops " + h("ops", "pw") + "\n", nil, false},
		{"name with a colon", "", "a:b", nil, "", nil, true},
		{"name with a space", "", "a b", nil, "", nil, true},
		{"comment name", "", "#a", nil, "", nil, true},
		{"bad option", "", "a", []string{"read,write"}, "", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := AddUser([]byte(c.in), c.user, "pw", c.options)
			if c.wantErr {
				if err == nil || (c.err != nil && !errors.Is(err, c.err)) {
					t.Errorf("got %q, %v; want error %v", got, err, c.err)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("got %q, %v\nwant %q", got, err, c.want)
			}
			tab, _, _ := ParseUsers(got)
			if u, ok := tab.Authenticate(c.user, "pw"); !ok || len(u.Options) != len(c.options) {
				t.Errorf("the added user does not authenticate with its options: %+v %v", u, ok)
			}
		})
	}
}

func TestSetPassword(t *testing.T) {
	h := func(name, pw string) string { return "{HA1}" + HA1(name, pw) }
	for _, c := range []struct {
		name, in, user, want string
		wantErr              bool
	}{
		{"cleartext to HA1, options kept", "# x\n  ops  old   read, write  \r\nb y\n", "ops",
			"# x\nops " + h("ops", "new") + " read, write\r\nb y\n", false},
		{"the last line of a user is the one Ganeti reads", "ops a\nops b write\n", "ops",
			"ops a\nops " + h("ops", "new") + " write\n", false},
		{"no line end at the end", "ops a", "ops", "ops " + h("ops", "new"), false},
		{"unknown user", "ops a\n#b x\n", "b", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := SetPassword([]byte(c.in), c.user, "new")
			if c.wantErr {
				if !errors.Is(err, ErrNoSuchUser) {
					t.Errorf("got %q, %v; want ErrNoSuchUser", got, err)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("got %q, %v\nwant %q", got, err, c.want)
			}
			tab, _, _ := ParseUsers(got)
			if _, ok := tab.Authenticate(c.user, "new"); !ok {
				t.Error("the new password does not authenticate")
			}
		})
	}
}

func TestUpdateUsersFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real", "users")
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("# keep\nadmin x write\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "users")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	add := func(data []byte) ([]byte, error) { return AddUser(data, "ops", "pw", []string{"write"}) }
	if err := UpdateUsersFile(link, add); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
	}
	fi, err := os.Stat(target)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v %v, want the old 0640", fi.Mode().Perm(), err)
	}
	data, _ := os.ReadFile(target)
	if want := "# keep\nadmin x write\nops {HA1}" + HA1("ops", "pw") + " write\n"; string(data) != want {
		t.Errorf("file:\n%s\nwant:\n%s", data, want)
	}
	if err := UpdateUsersFile(link, add); !errors.Is(err, ErrUserExists) {
		t.Errorf("second add: %v", err)
	}
	if after, _ := os.ReadFile(target); string(after) != string(data) {
		t.Error("a failed edit changed the file")
	}
	entries, _ := os.ReadDir(filepath.Dir(target))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}

	fresh := filepath.Join(dir, "new", "rapi", "users")
	if err := UpdateUsersFile(fresh, add); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new file: %v %v, want 0600", fi.Mode().Perm(), err)
	}
}
