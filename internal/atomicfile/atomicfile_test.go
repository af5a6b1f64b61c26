package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused")
	for _, tc := range []struct {
		name  string
		fill  func(*os.File) error
		check func(string) error
		want  string
		err   error
	}{
		{"fill fails", func(f *os.File) error { f.WriteString("half"); return refused }, nil, "old", refused},
		{"check refuses", func(f *os.File) error { _, err := f.WriteString("bad"); return err },
			func(tmp string) error {
				if b, _ := os.ReadFile(tmp); string(b) != "bad" {
					t.Errorf("check sees %q", b)
				}
				return refused
			}, "old", refused},
		{"replaced", func(f *os.File) error { _, err := f.WriteString("new"); return err }, nil, "new", nil},
	} {
		err := Write(path, tc.fill, tc.check)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
		}
		if b, _ := os.ReadFile(path); string(b) != tc.want {
			t.Errorf("%s: content %q, want %q", tc.name, b, tc.want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("%s: %d files left in the directory, want 1", tc.name, len(ents))
		}
	}
	if err := WriteBytes(path, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
}
