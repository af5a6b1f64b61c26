package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultAdmin is the user CreateInitial creates.
const DefaultAdmin = "admin"

// InitialHeader is the first line of the users file CreateInitial writes
// (how a data dir shows that a server started in it before).
const InitialHeader = "# Ganeti RAPI users file, created by ganeti-gateway on first start."

// CreateInitial creates a users file at path holding one user with the
// "write" option and the given password, stored only as its {HA1} hash.
// It does nothing when the file exists, and tells whether it created it.
func CreateInitial(path, user, password string) (created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	content := fmt.Sprintf(InitialHeader+`
#
# One user per line: <name> <password> [<options>]
#   password: <cleartext>, {cleartext}<cleartext>, or {HA1}<hex MD5 of
#             "<name>:%s:<password>">
#   options:  comma-separated; "read" and "write" are recognised, and
#             "admin" (ganeti-gateway's): the typed SubmitJob may then
#             submit opcodes no RAPI route submits, such as OP_TEST_DELAY
# Lines starting with '#' are comments. Changes apply without a restart.
#
# The password of %s was written once to a file readable only by its owner.
%s {HA1}%s %s
`, Realm, user, user, HA1(user, password), OptionWrite)
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		_ = os.Remove(path)
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		_ = os.Remove(path)
		return false, err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return false, err
	}
	return true, nil
}
