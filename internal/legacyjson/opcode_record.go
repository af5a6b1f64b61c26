package legacyjson

import rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"

// Opcodes in job records.
//
// Ganeti 3.0 stores each opcode of a job as its Haskell type serializes it
// (src/Ganeti/OpCodes.hs), and that is what GET /2/jobs/[job_id], the wait
// body and the job query show: a parameter that was never given and has no
// default (Python's None, Haskell's optionalField) is left out, except the
// two optionalNullSerField parameters, "depends" and "comment", which are
// null. The encoder writes every opcode of an "any opcode" message that way
// (opSwitch sets omitUnset and opRecord for the opcode's members and what
// they hold); the job engine fills in the defaults when the job is
// submitted.

// nullWhenUnset reports whether an unset field is written as null even
// where unset fields are left out: (empty) = LEGACY_EMPTY_NULL.
func (e *encoder) nullWhenUnset(f *fieldInfo) bool {
	return f.empty == rapiv2.LegacyEmpty_LEGACY_EMPTY_NULL
}

// omitEmptyParam reports whether f, when empty, is left out of an object
// whose unset fields are left out: a list or map opcode parameter that is
// not required and whose default is null (the proto cannot tell an empty
// list from a missing one; Ganeti's record has the key only when the
// parameter was given).
func (e *encoder) omitEmptyParam(f *fieldInfo) bool {
	if !e.opRecord || f.spec == nil || f.empty != rapiv2.LegacyEmpty_LEGACY_EMPTY_UNSPECIFIED {
		return false
	}
	if !f.fd.IsList() && !f.fd.IsMap() {
		return false
	}
	return !f.spec.GetRequired() && f.spec.GetDefaultJson() == ""
}
