// Package archtest holds the test that keeps the packages layered: requests
// flow one way (transport -> services -> domain -> store), and no package
// imports one above it. It has no code of its own.
package archtest
