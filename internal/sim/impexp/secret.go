package impexp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ReadSecret reads a cluster domain secret file as Ganeti does
// (utils.ReadOneLineFile(strict=True)): the file's one non-empty line.
func ReadSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var lines []string
	for _, l := range splitLines(string(data)) {
		if l != "" {
			lines = append(lines, l)
		}
	}
	switch {
	case len(lines) == 0:
		return "", fmt.Errorf("no data in one-liner file %s", path)
	case len(lines) > 1:
		return "", fmt.Errorf("too many lines in one-liner file %s", path)
	}
	return lines[0], nil
}

// EnsureSecret creates the cluster domain secret file with a new random
// secret when it does not exist, as Ganeti does at cluster init (20 random
// bytes in hex and a newline; mode 0600), and reports whether it did.
func EnsureSecret(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	secret, err := GenerateSecret(20)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil // created meanwhile
	} else if err != nil {
		return false, err
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		_ = os.Remove(path)
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		_ = os.Remove(path)
		return false, err
	}
	return true, f.Close()
}
