// Package e2e holds the end-to-end tests: golden replays of real Ganeti
// 3.0.2 captures, the official Python client and other real clients
// against a real ganeti-gateway process, and the full-stack benchmarks.
// Servers listen on 127.0.0.1 port 0 only.
package e2e
