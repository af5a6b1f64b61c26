// Package buildinfo tells which build of ganeti-gateway is running: the
// version, commit and build date stamped at build time (make build:
// go build -ldflags "-X ...buildinfo.Version=... -X ...Commit=... -X
// ...Date=..."), else what the Go toolchain recorded in the binary.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time with -ldflags -X; empty when not stamped (go run, go
// build, go test).
var (
	// Version is the release version, e.g. "v1.2.0" or git describe's
	// "v1.2.0-3-gabcdef0-dirty".
	Version string
	// Commit is the full commit hash.
	Commit string
	// Date is the build date, RFC 3339 in UTC.
	Date string
)

// Info describes the running build.
type Info struct {
	// Version: the stamped version, else the main module's version as the
	// Go toolchain recorded it ("devel" when it recorded none).
	Version string
	// Commit: the stamped commit, else vcs.revision ("unknown" when the
	// build recorded none, as with -buildvcs=false).
	Commit string
	// Date: the stamped build date, else the commit's date (vcs.time), else
	// "unknown". DateIsCommit tells which.
	Date         string
	DateIsCommit bool
	// Modified: the work tree had uncommitted changes (vcs.modified; only
	// known when not stamped).
	Modified bool
	// GoVersion is the toolchain that built the binary; Platform is
	// GOOS/GOARCH.
	GoVersion, Platform string
}

// Get returns the build's Info: the stamped values, and the toolchain's
// record (runtime/debug.ReadBuildInfo) for what was not stamped.
func Get() Info {
	return get(Version, Commit, Date, readBuildInfo)
}

var readBuildInfo = debug.ReadBuildInfo

func get(version, commit, date string, read func() (*debug.BuildInfo, bool)) Info {
	info := Info{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := read()
	if ok {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.Date == "" {
					info.Date, info.DateIsCommit = s.Value, true
				}
			case "vcs.modified":
				info.Modified = commit == "" && s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.Date == "" {
		info.Date = "unknown"
	}
	return info
}

// String is the one line "ganeti-gateway --version" prints, e.g.
// "ganeti-gateway v1.2.0 (commit 0123abc..., built 2026-01-02T03:04:05Z,
// go1.26.8 linux/amd64)".
func (i Info) String() string {
	commit := i.Commit
	if i.Modified {
		commit += " with uncommitted changes"
	}
	date := "built " + i.Date
	if i.DateIsCommit {
		date = "committed " + i.Date
	}
	return fmt.Sprintf("ganeti-gateway %s (commit %s, %s, %s %s)", i.Version, commit, date, i.GoVersion, i.Platform)
}
