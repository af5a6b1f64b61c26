// Package testutil helps tests find the project's reference material: the
// RAPI contract (spec/) and Ganeti 3.0.2's captured answers (golden/).
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedDir returns the absolute path of the reference material the tests
// use: the copy committed under testdata/shared, so that a plain clone runs
// the whole suite. TestSharedCopyIsCurrent keeps it equal to the project's
// shared folder (../shared from the repository root) where that is present.
// A missing copy fails the test, never skips it.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "testdata", "shared")
	if _, err := os.Stat(filepath.Join(dir, "spec")); err != nil {
		t.Fatalf("the reference material is missing: %v", err)
	}
	return dir
}

// ProjectSharedDir returns the project's shared folder (../shared from the
// repository root, or $GANETI_GATEWAY_SHARED), and false when it is absent.
func ProjectSharedDir(t testing.TB) (string, bool) {
	t.Helper()
	dir := os.Getenv("GANETI_GATEWAY_SHARED")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(RepoRoot(t)), "shared")
	}
	if _, err := os.Stat(filepath.Join(dir, "spec")); err != nil {
		return "", false
	}
	return dir, true
}

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("go.mod not found above " + wd)
		}
	}
}
