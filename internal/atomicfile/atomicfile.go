// Package atomicfile replaces a file's content all at once: readers see the
// old file or the new one, never a part, and after a crash the path holds
// one of the two.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes path through a temporary file in its directory (created
// with mode 0600): fill writes the content, the file is synced and closed,
// check (when not nil) may inspect it by its temporary name, then it is
// renamed over path and the directory synced, so that the rename itself
// is durable. On any error the temporary file is removed and path is left
// as it was.
func Write(path string, fill func(f *os.File) error, check func(tmp string) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && check != nil {
		err = check(f.Name())
	}
	if err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteBytes is Write of data, with mode perm.
func WriteBytes(path string, data []byte, perm os.FileMode) error {
	return Write(path, func(f *os.File) error {
		if _, err := f.Write(data); err != nil {
			return err
		}
		return f.Chmod(perm)
	}, nil)
}
