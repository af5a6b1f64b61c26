// Package testutil helps tests find the project's shared reference
// material (../shared from the repository root: spec/, golden/).
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedDir returns the absolute path of the shared folder. When it cannot
// be found the test is skipped, or fails under CI (CI=true), where the
// folder is always present.
func SharedDir(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("GANETI_GATEWAY_SHARED"); dir != "" {
		return dir
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			shared := filepath.Join(filepath.Dir(dir), "shared")
			if _, err := os.Stat(filepath.Join(shared, "spec")); err == nil {
				return shared
			}
			break
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the shared folder (../shared from the repository root) is missing")
	}
	t.Skip("the shared folder (../shared from the repository root) is missing")
	return ""
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
