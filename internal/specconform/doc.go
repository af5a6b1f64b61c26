// Package specconform holds the tests that check the API (the proto, the
// single source of the opcode and field tables) against the Ganeti 3.0.2
// specification data in the shared folder (spec/opcodes.json,
// spec/fields.json).
package specconform
