package errs

import (
	"slices"
	"strings"
)

// Errors of Ganeti's RAPI layer (rlib2) that both the legacy surface and
// the services raise.

// StaticParams is Ganeti's "Can't overwrite static parameters {'a', 'b'}"
// (a Python set; sorted here).
func StaticParams(keys []string) error {
	slices.Sort(keys)
	keys = slices.Compact(keys)
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = "'" + k + "'"
	}
	return BadRequest("Can't overwrite static parameters {%s}", strings.Join(quoted, ", "))
}

// ForbiddenParam is Ganeti's 403 for a parameter RAPI may not set.
func ForbiddenParam(p string) error {
	return &Error{Class: ClassForbidden, Msg: "The parameter " + p + " cannot be set via RAPI"}
}
