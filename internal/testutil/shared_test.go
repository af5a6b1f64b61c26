package testutil

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestSharedCopyIsCurrent: every file of testdata/shared equals the
// project's shared folder, where that is present (always in CI).
func TestSharedCopyIsCurrent(t *testing.T) {
	src, ok := ProjectSharedDir(t)
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("the project's shared folder (../shared) is missing in CI")
		}
		t.Log("the project's shared folder (../shared) is absent: the committed copy is not compared")
		return
	}
	copyDir := SharedDir(t)
	n := 0
	err := filepath.WalkDir(copyDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "README.md" && filepath.Dir(path) == copyDir {
			return err
		}
		rel, _ := filepath.Rel(copyDir, path)
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			t.Errorf("%s: not in %s: %v", rel, src, err)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/shared/%s differs from %s: copy it again (see testdata/shared/README.md)", rel, filepath.Join(src, rel))
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 6 {
		t.Fatalf("compared %d files, want the 6 the tests read", n)
	}
}
